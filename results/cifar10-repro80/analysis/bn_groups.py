#!/usr/bin/env python3
"""Summarise bn_groups.sh's CSV: per checkpoints label and selection, the mean test top-1 and
the share of the lag (all re-estimated − as trained) that re-estimating the selection alone
recovers, (selection − as trained) / (all − as trained), averaged over the epochs whose lag
is at least MIN_LAG points (default 5), of those in FIRST-LAST when given.

    bn_groups.py CSV [MIN_LAG [FIRST-LAST]]
"""
import csv
import statistics
import sys
from collections import defaultdict


def main(path, min_lag=5.0, span=(0, 10**9)):
    top1 = defaultdict(dict)  # (label, epoch) -> selection -> top-1
    order = []
    for row in csv.DictReader(open(path)):
        if not span[0] <= int(row["epoch"]) <= span[1]:
            continue
        top1[(row["checkpoints"], int(row["epoch"]))][row["recalibrated"]] = float(row["test_top1"])
        if row["recalibrated"] not in order:
            order.append(row["recalibrated"])
    labels = sorted({label for label, _ in top1})
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["checkpoints", "selection", "epochs", "test_top1_mean",
                  "lag_share_mean", "lag_share_min", "lag_share_max"])
    for label in labels:
        epochs = [v for (l, _), v in sorted(top1.items()) if l == label and "-" in v and "all" in v]
        lagging = [v for v in epochs if v["all"] - v["-"] >= min_lag]
        for sel in order:
            have = [v for v in lagging if sel in v]
            if not have:
                continue
            shares = [(v[sel] - v["-"]) / (v["all"] - v["-"]) for v in have]
            mean = statistics.mean(v[sel] for v in have)
            out.writerow([label, sel, len(have), f"{mean:.2f}", f"{statistics.mean(shares):.2f}",
                          f"{min(shares):.2f}", f"{max(shares):.2f}"])


if __name__ == "__main__":
    lag = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    span = tuple(map(int, sys.argv[3].split("-"))) if len(sys.argv) > 3 else (0, 10**9)
    main(sys.argv[1], lag, span)
