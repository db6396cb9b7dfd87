"""Checks of bench.py: the BN fold, the RepVGG deploy conversion, the scales, the median rule and
the command line. Run from this folder with `python -m unittest`."""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

import torch
import torch.nn as nn

import bench

HERE = Path(__file__).resolve().parent
OFFICIAL = bench.default_official_code()
HAS_OFFICIAL = (OFFICIAL / "repoptimizer" / "repoptvgg_model.py").is_file()
TOLERANCE = 1e-4


def tiny_case(mode: str = "infer-target", classes: int = 10) -> bench.Case:
    """The tiny preset at 16 px, batch 4."""
    num_blocks, width = bench.PRESETS["tiny"]
    return bench.Case(preset="tiny", width=None, num_blocks=num_blocks, width_multiplier=width,
                      image_size=16, batch_size=4, classes=classes, mode=mode,
                      warmup_steps=0, measured_steps=1, seed=0)


@torch.no_grad()
def randomize_batch_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Gives every BN non-trivial running statistics and affine parameters."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
            module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.copy_(torch.rand(n, generator=generator) - 0.5)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs bench.py in a fresh process."""
    return subprocess.run([sys.executable, str(HERE / "bench.py"), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


class MedianTest(unittest.TestCase):
    def test_odd_count_is_the_middle(self):
        self.assertEqual(bench.median([3.0, 1.0, 2.0]), 2.0)

    def test_even_count_is_the_upper_middle(self):
        self.assertEqual(bench.median([4.0, 1.0, 3.0, 2.0]), 3.0)
        self.assertEqual(bench.median([1.0, 2.0]), 2.0)

    def test_single_value(self):
        self.assertEqual(bench.median([5.0]), 5.0)


@unittest.skipUnless(HAS_OFFICIAL, f"official code not found in {OFFICIAL}")
class FusionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.official = bench.load_official(OFFICIAL)

    def assert_fusion_keeps_outputs(self, block_mode: str, fuse_block) -> None:
        """The fused eval model gives the unfused eval model's logits."""
        generator = torch.Generator().manual_seed(1)
        torch.manual_seed(1)
        model = bench.build_model(self.official, tiny_case(), block_mode)
        randomize_batch_norms(model, generator)
        model.eval()
        images = torch.randn(4, 3, 16, 16, generator=generator)
        with torch.no_grad():
            expected = model(images)
            fused = bench.fuse_model(model, fuse_block).eval()
            actual = fused(images)
        self.assertFalse(any(isinstance(m, nn.BatchNorm2d) for m in fused.modules()))
        self.assertLess((actual - expected).abs().max().item(), TOLERANCE)

    def test_target_bn_fold(self):
        self.assert_fusion_keeps_outputs("target", bench.fuse_target_block)

    def test_repvgg_deploy_conversion(self):
        self.assert_fusion_keeps_outputs("repvgg", bench.fuse_repvgg_block)

    def test_fused_models_have_the_same_params(self):
        target = bench.fuse_model(bench.build_model(self.official, tiny_case(), "target").eval(),
                                  bench.fuse_target_block)
        repvgg = bench.fuse_model(bench.build_model(self.official, tiny_case(), "repvgg").eval(),
                                  bench.fuse_repvgg_block)
        self.assertEqual(bench.trainable_params(target), bench.trainable_params(repvgg))


@unittest.skipUnless(HAS_OFFICIAL, f"official code not found in {OFFICIAL}")
class ScalesTest(unittest.TestCase):
    def test_scales_fit_the_official_handler(self):
        official = bench.load_official(OFFICIAL)
        model = bench.build_model(official, tiny_case(), "target")
        scales = bench.random_scales(official, model, torch.Generator().manual_seed(0))
        blocks = official.extract_blocks_into_list(model)
        self.assertEqual(len(scales), len(blocks))
        for block, scale in zip(blocks, scales):
            conv = block.conv
            identity = conv.in_channels == conv.out_channels and conv.stride == (1, 1)
            self.assertEqual(len(scale), 3 if identity else 2)
            for s in scale:
                self.assertEqual(s.shape, (conv.out_channels,))
                self.assertTrue(bool(((s >= -1) & (s < 1)).all()))
        optimizer = bench.repopt_optimizer(official, model, scales)
        self.assertEqual(len(optimizer.grad_mult_map), len(blocks))
        self.assertEqual([g["weight_decay"] for g in optimizer.param_groups], [bench.WEIGHT_DECAY, 0.0])


@unittest.skipUnless(HAS_OFFICIAL, f"official code not found in {OFFICIAL}")
class CommandLineTest(unittest.TestCase):
    COMMON = ["--preset", "tiny", "--image-size", "16", "--batch-size", "2", "--classes", "5",
              "--warmup", "1", "--steps", "2", "--threads", "1"]

    def test_one_json_line_with_every_key(self):
        for mode in ["train-repopt", "infer-repvgg-fused"]:
            with self.subTest(mode=mode):
                done = run_cli(*self.COMMON, "--mode", mode)
                self.assertEqual(done.returncode, 0, done.stderr)
                lines = done.stdout.splitlines()
                self.assertEqual(len(lines), 1)
                record = json.loads(lines[0])
                self.assertEqual(set(record), {
                    "case", "params", "step_seconds", "median_step_seconds", "images_per_second",
                    "phases", "final_loss", "setup_resident_bytes", "setup_peak_resident_bytes",
                    "peak_resident_bytes", "threads", "load_average", "wall_seconds", "framework"})
                self.assertEqual(record["case"]["mode"], mode)
                self.assertEqual(record["case"]["backend"], "pytorch")
                self.assertEqual(len(record["step_seconds"]), 2)
                self.assertEqual(record["threads"], 1)
                training = mode.startswith("train")
                self.assertEqual(record["phases"] is not None, training)
                self.assertEqual(record["final_loss"] is not None, training)

    def test_unknown_preset_and_mode_exit_2(self):
        for args in (["--preset", "zz", "--mode", "infer-target"],
                     ["--preset", "tiny", "--mode", "zz"]):
            with self.subTest(args=args):
                done = run_cli(*args)
                self.assertEqual(done.returncode, 2)
                self.assertEqual(done.stdout, "")
                self.assertEqual(len(done.stderr.strip().splitlines()), 1)

    def test_missing_official_code_exits_2_naming_the_folder(self):
        done = run_cli(*self.COMMON, "--mode", "infer-target", "--official-code", "/nonexistent/code")
        self.assertEqual(done.returncode, 2)
        self.assertIn("/nonexistent/code", done.stderr)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
