"""Per-epoch step of the 3x3 kernels relative to their size, from two consecutive epochs' model
checkpoints (`checkpoint/model-E.bpk`) of a run.

For every conv layer but the first and every output channel c:
    step_c = ||W_c(e+1) - W_c(e)|| / ||W_c(e)||,
reduced to the median over the layer's channels, then the median (and max) over layers; also
the root-mean-square channel norm averaged over layers. Usage:

    python3 kernel_steps.py DIR EPOCHS RUN...   # DIR/RUN/model-E.bpk, EPOCHS like 573-639
"""
import functools
import math
import statistics as st
import sys

import bpk


def channels(shape, data):
    n = len(data) // shape[0]
    return [data[i * n:(i + 1) * n] for i in range(shape[0])]


def norm(v):
    return math.sqrt(sum(x * x for x in v))


@functools.lru_cache(maxsize=2)
def model(dir, run, e):
    """One epoch's checkpoint; kept while the next epoch's step needs it again."""
    return bpk.load(f"{dir}/{run}/model-{e}.bpk")


def step(dir, run, e):
    t0, t1 = model(dir, run, e), model(dir, run, e + 1)
    sizes, steps = [], []
    for name, (shape, a) in t0.items():
        if not name.endswith("conv.weight") or name.startswith("model.stage0."):
            continue
        b = t1[name][1]
        sizes.append(norm(a) / math.sqrt(shape[0]))
        per = [norm([x - y for x, y in zip(c0, c1)]) / (norm(c0) or 1e-12)
               for c0, c1 in zip(channels(shape, a), channels(shape, b))]
        steps.append(st.median(per))
    return st.mean(sizes), st.median(steps), max(steps)


def main():
    dir, span, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    lo, hi = map(int, span.split("-"))
    print("run,epoch,kernel_rms_norm,median_step,max_layer_step")
    for run in runs:
        for e in range(lo, hi + 1):
            try:
                size, med, top = step(dir, run, e)
            except FileNotFoundError:
                continue
            print(f"{run},{e},{size:.5f},{med:.5f},{top:.5f}")


if __name__ == "__main__":
    main()
