"""Per-layer epoch step of the 3x3 kernels and their size, averaged over a span of epochs, for
runs side by side (`kernel_steps.py` gives the same reduced over layers, epoch by epoch).

For every conv layer but the first: the median over output channels c of
||W_c(e+1) - W_c(e)|| / ||W_c(e)||, and the root-mean-square channel norm, each averaged over
the epochs e of the span. Usage:

    python3 layer_steps.py DIR RUN@FIRST-LAST ...   # DIR/RUN/model-E.bpk for E in FIRST..LAST+1
"""
import math
import statistics as st
import sys

import bpk
from kernel_steps import channels, norm


def layers(dir, run, e):
    """{layer: (median relative step, rms channel norm)} from epoch e to e + 1."""
    t0, t1 = bpk.load(f"{dir}/{run}/model-{e}.bpk"), bpk.load(f"{dir}/{run}/model-{e + 1}.bpk")
    out = {}
    for name, (shape, a) in t0.items():
        if not name.endswith("conv.weight") or name.startswith("model.stage0."):
            continue
        per = [norm([x - y for x, y in zip(c0, c1)]) / (norm(c0) or 1e-12)
               for c0, c1 in zip(channels(shape, a), channels(shape, t1[name][1]))]
        out[name] = (st.median(per), norm(a) / math.sqrt(shape[0]))
    return out


def span(dir, spec):
    run, epochs = spec.split("@")
    lo, hi = map(int, epochs.split("-"))
    per_epoch = [layers(dir, run, e) for e in range(lo, hi + 1)]
    return {name: tuple(st.mean(p[name][i] for p in per_epoch) for i in range(2))
            for name in per_epoch[0]}


def main():
    dir, specs = sys.argv[1], sys.argv[2:]
    spans = [span(dir, s) for s in specs]
    print("layer," + ",".join(f"{s} step,{s} norm" for s in specs))
    for name in spans[0]:
        short = name.removeprefix("model.").removesuffix(".conv.weight")
        print(short + "," + ",".join(f"{s[name][0]:.4f},{s[name][1]:.4f}" for s in spans))


if __name__ == "__main__":
    main()
