#!/usr/bin/env python3
"""Times one RepOpt-VGG case with the official RepOptimizers PyTorch code, on the CPU.

The PyTorch counterpart of `repopt-bench measure`: one case per process, one line of JSON on
stdout in the schema of the Rust `Measurement` (plus a `framework` record); everything else goes
to stderr. The official code is imported from `--official-code DIR` and never copied.

Exit status: 0 measured, 1 the measurement failed (non-finite loss), 2 bad arguments or official
code not found, 3 the mode is not available in the official code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:  # after the OpenMP setting, which torch reads when it loads
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as missing:
    print(f"PyTorch is not importable by {sys.executable} ({missing}); "
          "install benches/pytorch/requirements.txt", file=sys.stderr)
    sys.exit(2)

#: Preset name -> (blocks per stage, width multiplier per stage), as in the Rust project.
PRESETS = {
    "tiny": ([2, 2, 1, 1], [0.125, 0.125, 0.125, 0.125]),
    "a0": ([2, 4, 14, 1], [0.75, 0.75, 0.75, 2.5]),
    "a1": ([2, 4, 14, 1], [1.0, 1.0, 1.0, 2.5]),
    "b0": ([4, 6, 16, 1], [1.0, 1.0, 1.0, 2.5]),
    "b1": ([4, 6, 16, 1], [2.0, 2.0, 2.0, 4.0]),
    "b2": ([4, 6, 16, 1], [2.5, 2.5, 2.5, 5.0]),
    "l1": ([8, 14, 24, 1], [2.0, 2.0, 2.0, 4.0]),
    "l2": ([8, 14, 24, 1], [2.5, 2.5, 2.5, 5.0]),
}

#: Mode name -> block mode of the official `RepOptVGG` it builds.
TRAIN_MODES = {
    "train-repopt": "target",
    "train-sgd": "target",
    "train-repvgg": "repvgg",
    "train-hs": "hs",
}
INFER_MODES = {
    "infer-target": "target",
    "infer-target-fused": "target",
    "infer-repvgg-unfused": "repvgg",
    "infer-repvgg-fused": "repvgg",
}

LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class BenchExit(Exception):
    """Ends the process with `code` after printing `message` as one line on stderr."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Case:
    """What is measured; `to_json` gives the Rust `Case` record."""

    preset: str
    width: list[float] | None
    num_blocks: list[int]
    width_multiplier: list[float]
    image_size: int
    batch_size: int
    classes: int
    mode: str
    warmup_steps: int
    measured_steps: int
    seed: int

    @property
    def training(self) -> bool:
        """Whether the mode times training steps."""
        return self.mode in TRAIN_MODES

    @property
    def block_mode(self) -> str:
        """The `mode` argument of the official `RepOptVGG`."""
        return {**TRAIN_MODES, **INFER_MODES}[self.mode]

    def to_json(self) -> dict:
        """The case as the Rust `Case` deserialises it."""
        return {
            "preset": self.preset,
            "width": self.width,
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "classes": self.classes,
            "mode": self.mode,
            "backend": "pytorch",
            "conv": "native",
            "warmup_steps": self.warmup_steps,
            "measured_steps": self.measured_steps,
            "seed": self.seed,
        }


@dataclass
class Timing:
    """What the training or inference loop recorded."""

    params: int
    setup_resident_bytes: int | None = None
    setup_peak_resident_bytes: int | None = None
    load_average: list[float] | None = None
    step_seconds: list[float] = field(default_factory=list)
    phases: dict | None = None
    final_loss: float | None = None

    def start(self) -> None:
        """Notes the memory and the load once everything is built, before the first step."""
        memory = resident_memory()
        if memory is not None:
            self.setup_resident_bytes, self.setup_peak_resident_bytes = memory
        self.load_average = load_average()


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def default_official_code() -> Path:
    """`REPOPT_OFFICIAL_CODE`, else `../shared/official_code` beside the repository root."""
    from_env = os.environ.get("REPOPT_OFFICIAL_CODE")
    if from_env:
        return Path(from_env)
    repository_root = Path(__file__).resolve().parent.parent.parent
    return repository_root.parent / "shared" / "official_code"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (argparse exits 2 on malformed options)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, help=", ".join(PRESETS))
    parser.add_argument("--width", help="four width multipliers a,b,c,d replacing the preset's")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--mode", required=True, help=", ".join([*TRAIN_MODES, *INFER_MODES]))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--official-code", type=Path, default=None,
                        help="folder of the official RepOptimizers code "
                             "(default: $REPOPT_OFFICIAL_CODE or ../shared/official_code "
                             "beside the repository root)")
    return parser.parse_args(argv)


def parse_width(text: str) -> list[float]:
    """Four comma-separated positive width multipliers."""
    try:
        width = [float(v) for v in text.split(",")]
    except ValueError:
        width = []
    if len(width) != 4 or not all(math.isfinite(w) and w > 0 for w in width):
        raise BenchExit(EXIT_USAGE, f"--width must be four positive numbers a,b,c,d, not `{text}`")
    return width


def case_from_args(args: argparse.Namespace) -> Case:
    """Validates the arguments into a `Case`."""
    preset = PRESETS.get(args.preset.lower())
    if preset is None:
        raise BenchExit(EXIT_USAGE, f"unknown preset `{args.preset}` (expected {', '.join(PRESETS)})")
    if args.mode not in TRAIN_MODES and args.mode not in INFER_MODES:
        modes = ", ".join([*TRAIN_MODES, *INFER_MODES])
        raise BenchExit(EXIT_USAGE, f"unknown mode `{args.mode}` (expected {modes})")
    for name, value, least in [("--image-size", args.image_size, 1), ("--batch-size", args.batch_size, 1),
                               ("--classes", args.classes, 1), ("--warmup", args.warmup, 0),
                               ("--steps", args.steps, 1), ("--seed", args.seed, 0),
                               ("--threads", args.threads, 1)]:
        if value < least:
            raise BenchExit(EXIT_USAGE, f"{name} must be at least {least}, not {value}")
    width = parse_width(args.width) if args.width is not None else None
    num_blocks, preset_width = preset
    return Case(
        preset=args.preset, width=width, num_blocks=list(num_blocks),
        width_multiplier=list(width if width is not None else preset_width),
        image_size=args.image_size, batch_size=args.batch_size, classes=args.classes,
        mode=args.mode, warmup_steps=args.warmup, measured_steps=args.steps, seed=args.seed,
    )


# ---------------------------------------------------------------------------------------------
# The official code
# ---------------------------------------------------------------------------------------------


def load_official(directory: Path) -> SimpleNamespace:
    """Imports the official model, handler, optimizer and decay rule from `directory`."""
    directory = directory.resolve()
    if not (directory / "repoptimizer" / "repoptvgg_model.py").is_file():
        raise BenchExit(EXIT_USAGE, f"official RepOptimizers code not found in {directory} "
                                    "(no repoptimizer/repoptvgg_model.py; "
                                    "pass --official-code DIR or set REPOPT_OFFICIAL_CODE)")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    try:
        model = importlib.import_module("repoptimizer.repoptvgg_model")
        impl = importlib.import_module("repoptimizer.repoptvgg_impl")
        sgd = importlib.import_module("repoptimizer.repoptimizer_sgd")
        decay = importlib.import_module("optimizer")
        return SimpleNamespace(
            directory=directory,
            RepOptVGG=model.RepOptVGG,
            RealVGGBlock=model.RealVGGBlock,
            RepVGGBlock=model.RepVGGBlock,
            RepOptVGGHandler=impl.RepOptVGGHandler,
            extract_blocks_into_list=impl.extract_blocks_into_list,
            RepOptimizerSGD=sgd.RepOptimizerSGD,
            set_weight_decay=decay.set_weight_decay,
        )
    except (ImportError, AttributeError) as error:
        raise BenchExit(EXIT_USAGE, f"cannot import the official RepOptimizers code from "
                                    f"{directory}: {error}") from error


# ---------------------------------------------------------------------------------------------
# Models and optimizers
# ---------------------------------------------------------------------------------------------


def build_model(official: SimpleNamespace, case: Case, block_mode: str) -> nn.Module:
    """The official `RepOptVGG` of the case in `block_mode` (exit 3 if it has no such mode)."""
    try:
        return official.RepOptVGG(num_blocks=case.num_blocks, num_classes=case.classes,
                                  width_multiplier=case.width_multiplier, mode=block_mode)
    except AssertionError as error:
        raise BenchExit(EXIT_UNAVAILABLE, "mode not available in the official code") from error


def random_scales(official: SimpleNamespace, model: nn.Module,
                  generator: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
    """Scales in `[-1, 1)` shaped as `RepOptVGGHandler` takes them (see `extract_scales`).

    One entry per block of the target model, in forward order: `(identity, 1x1, 3x3)` for a
    block with an identity branch (same channels, stride 1), else `(1x1, 3x3)`; each a vector
    over the block's output channels.
    """
    scales = []
    for block in official.extract_blocks_into_list(model):
        conv = block.conv
        channels = conv.out_channels
        has_identity = conv.in_channels == channels and tuple(conv.stride) == (1, 1)
        count = 3 if has_identity else 2
        scales.append(tuple(torch.rand(channels, generator=generator) * 2 - 1 for _ in range(count)))
    return scales


def repopt_optimizer(official: SimpleNamespace, model: nn.Module,
                     scales: list[tuple[torch.Tensor, ...]]) -> torch.optim.Optimizer:
    """The official RepOptimizer SGD, wired as `build_RepOptVGG_SGD_optimizer` wires it.

    That helper creates its handler without `cpu_mode` (Grad Mults moved to CUDA) and fixes no
    dampening, so its steps are repeated here with `cpu_mode=True`: re-initialise the 3×3
    kernels from the scales, split the parameters with the official decay rule, and build
    `RepOptimizerSGD` from the handler's Grad Mults.
    """
    handler = official.RepOptVGGHandler(model, scales, reinit=True, cpu_mode=True, update_rule="sgd")
    handler.reinitialize()
    return official.RepOptimizerSGD(handler.generate_grad_mults(), official.set_weight_decay(model),
                                    lr=LEARNING_RATE, momentum=MOMENTUM, dampening=0,
                                    weight_decay=WEIGHT_DECAY, nesterov=True)


def plain_sgd(official: SimpleNamespace, model: nn.Module) -> torch.optim.Optimizer:
    """`torch.optim.SGD` with the official decay groups and the RepOptimizer's settings."""
    return torch.optim.SGD(official.set_weight_decay(model), lr=LEARNING_RATE, momentum=MOMENTUM,
                           dampening=0, weight_decay=WEIGHT_DECAY, nesterov=True)


def fold_bn(kernel: torch.Tensor, bias: torch.Tensor | None,
            bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of `bn(conv(x))` as one conv, with the BN's running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv_bias = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return kernel * scale.view(-1, 1, 1, 1), bn.bias + (conv_bias - bn.running_mean) * scale


class FusedBlock(nn.Module):
    """A deployed block: one 3×3 conv with bias, ReLU, then the block's post-SE (if any)."""

    def __init__(self, like: nn.Conv2d, kernel: torch.Tensor, bias: torch.Tensor, post_se: nn.Module):
        super().__init__()
        self.conv = nn.Conv2d(like.in_channels, kernel.shape[0], kernel_size=3, stride=like.stride,
                              padding=1, bias=True)
        self.conv.weight.data.copy_(kernel)
        self.conv.bias.data.copy_(bias)
        self.relu = nn.ReLU()
        self.post_se = post_se

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`post_se(relu(conv(inputs)))`."""
        return self.post_se(self.relu(self.conv(inputs)))


@torch.no_grad()
def fuse_target_block(block: nn.Module) -> FusedBlock:
    """A `RealVGGBlock` with its BN folded into the 3×3 conv."""
    kernel, bias = fold_bn(block.conv.weight, block.conv.bias, block.bn)
    return FusedBlock(block.conv, kernel, bias, block.post_se)


@torch.no_grad()
def fuse_repvgg_block(block: nn.Module) -> FusedBlock:
    """A `RepVGGBlock`'s 3×3, 1×1 and identity branches (each with its BN) as one 3×3 conv."""
    kernel, bias = fold_bn(block.conv_3x3.weight, block.conv_3x3.bias, block.bn_3x3)
    kernel_1x1, bias_1x1 = fold_bn(block.conv_1x1.weight, block.conv_1x1.bias, block.bn_1x1)
    kernel = kernel + F.pad(kernel_1x1, [1, 1, 1, 1])
    bias = bias + bias_1x1
    if hasattr(block, "bn_identity"):
        channels = block.conv_3x3.in_channels
        identity = torch.zeros_like(kernel)
        identity[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
        kernel_id, bias_id = fold_bn(identity, None, block.bn_identity)
        kernel, bias = kernel + kernel_id, bias + bias_id
    return FusedBlock(block.conv_3x3, kernel, bias, block.post_se)


def fuse_model(model: nn.Module, fuse_block) -> nn.Module:
    """Replaces every block of a `RepOptVGG` (stage0, stages 1–4) by `fuse_block(block)`."""
    model.stage0 = fuse_block(model.stage0)
    for name in ["stage1", "stage2", "stage3", "stage4"]:
        setattr(model, name, nn.Sequential(*[fuse_block(b) for b in getattr(model, name)]))
    return model


def trainable_params(model: nn.Module) -> int:
    """Number of trainable parameter values."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def resident_memory() -> tuple[int, int] | None:
    """`(VmRSS, VmHWM)` of this process in bytes, from `/proc/self/status`."""
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return tuple(int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM"))
    except (OSError, KeyError, ValueError, IndexError):
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages from `/proc/loadavg`."""
    try:
        with open("/proc/loadavg") as text:
            return [float(v) for v in text.read().split()[:3]]
    except (OSError, ValueError):
        return None


def median(values: list[float]) -> float:
    """Median of a non-empty list: the upper middle value for an even count."""
    return sorted(values)[len(values) // 2]


def random_batch(case: Case, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images drawn from N(0, 1) and labels uniform in `[0, classes)`."""
    images = torch.randn(case.batch_size, 3, case.image_size, case.image_size, generator=generator)
    labels = torch.randint(0, case.classes, (case.batch_size,), generator=generator)
    return images, labels


def configure_threads(threads: int) -> None:
    """Intra-op threads as asked, one inter-op thread."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work has started


def train(case: Case, official: SimpleNamespace) -> Timing:
    """Builds the model and optimizer of a training mode and times its steps."""
    generator = torch.Generator().manual_seed(case.seed)
    torch.manual_seed(case.seed)
    model = build_model(official, case, case.block_mode)
    if case.mode == "train-repopt":
        optimizer = repopt_optimizer(official, model, random_scales(official, model, generator))
    else:
        optimizer = plain_sgd(official, model)
    model.train()
    images, labels = random_batch(case, generator)
    timing = Timing(params=trainable_params(model))
    timing.start()

    phases: tuple[list[float], list[float], list[float]] = ([], [], [])
    for step in range(case.warmup_steps + case.measured_steps):
        start = time.perf_counter()
        loss = F.cross_entropy(model(images), labels)
        forward_end = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        backward_end = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()

        value = loss.item()
        if not math.isfinite(value):
            raise BenchExit(EXIT_FAILED, f"the loss is {value} at step {step}: "
                                         "the timing would not be meaningful")
        timing.final_loss = value
        if step >= case.warmup_steps:
            timing.step_seconds.append(end - start)
            parts = (forward_end - start, backward_end - forward_end, end - backward_end)
            for record, part in zip(phases, parts):
                record.append(part)
    timing.phases = {
        "forward_seconds": median(phases[0]),
        "backward_seconds": median(phases[1]),
        "optimizer_seconds": median(phases[2]),
    }
    return timing


def inference_model(case: Case, official: SimpleNamespace) -> nn.Module:
    """The eval-mode model of an inference mode, fused where the mode says so."""
    torch.manual_seed(case.seed)
    model = build_model(official, case, case.block_mode).eval()
    if case.mode == "infer-target-fused":
        model = fuse_model(model, fuse_target_block)
    elif case.mode == "infer-repvgg-fused":
        model = fuse_model(model, fuse_repvgg_block)
    return model.eval()


def infer(case: Case, official: SimpleNamespace) -> Timing:
    """Builds the model of an inference mode and times its forward passes."""
    generator = torch.Generator().manual_seed(case.seed)
    model = inference_model(case, official)
    images, _ = random_batch(case, generator)
    timing = Timing(params=trainable_params(model))
    timing.start()
    with torch.no_grad():
        for step in range(case.warmup_steps + case.measured_steps):
            start = time.perf_counter()
            model(images)
            end = time.perf_counter()
            if step >= case.warmup_steps:
                timing.step_seconds.append(end - start)
    return timing


def measure(case: Case, official: SimpleNamespace) -> dict:
    """Builds, warms up and times `case`; returns the measurement record."""
    started = time.perf_counter()
    timing = train(case, official) if case.training else infer(case, official)
    memory = resident_memory()
    median_step = median(timing.step_seconds)
    return {
        "case": case.to_json(),
        "params": timing.params,
        "step_seconds": timing.step_seconds,
        "median_step_seconds": median_step,
        "images_per_second": case.batch_size / median_step,
        "phases": timing.phases,
        "final_loss": timing.final_loss,
        "setup_resident_bytes": timing.setup_resident_bytes,
        "setup_peak_resident_bytes": timing.setup_peak_resident_bytes,
        "peak_resident_bytes": memory[1] if memory is not None else None,
        "threads": torch.get_num_threads(),
        "load_average": timing.load_average,
        "wall_seconds": time.perf_counter() - started,
        "framework": {
            "name": "pytorch",
            "version": torch.__version__,
            "official_code": str(official.directory),
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Measures the case on the command line and prints its JSON line on the real stdout.

    The official code prints progress with `print`; stdout is pointed at stderr for the whole
    run so that the JSON line is the only thing on stdout.
    """
    sys.stdout.flush()
    result_stream = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        args = parse_args(argv)
        case = case_from_args(args)
        official = load_official(args.official_code or default_official_code())
        configure_threads(args.threads)
        record = measure(case, official)
    except BenchExit as stop:
        sys.stdout.flush()
        print(stop.message, file=sys.stderr)
        return stop.code
    sys.stdout.flush()
    result_stream.write(json.dumps(record) + "\n")
    result_stream.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
