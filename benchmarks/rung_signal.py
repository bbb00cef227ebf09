"""What ASHA's rungs can see: how well a trial's value after a few epochs ranks its best.

Reads searches that ran every trial to the end (FIFO: the random + FIFO arms that
``benchmarks/run.py --only search`` keeps under runs/), and prints a Markdown table:
for each rung epoch, the Spearman rank correlation between the trials' values there
and their best over all epochs (ties, such as trials stuck at chance, share a rank),
the rank there of the trial that ended best, and whether successive halving with
hindsight (the top third kept at each rung) would have kept that trial.

    python benchmarks/rung_signal.py runs/bench-search-efficiency_wide_32trials_grace1*/*/seed*/arm1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr  # scikit-learn's own dependency

METRIC = "val_balanced_accuracy"


def full_curves(run_dir: Path, metric: str = METRIC) -> list[list[float]]:
    """Each trial's metric per epoch, for the trials that ran as many epochs as the longest one."""
    curves = []
    for path in sorted(run_dir.glob("trial_*/result.json")):
        reports = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        reports.sort(key=lambda r: r["training_iteration"])
        if any(metric not in r for r in reports):
            raise KeyError(f"{path}: no {metric!r} in its reports")
        curves.append([r[metric] for r in reports])
    longest = max((len(c) for c in curves), default=0)
    return [c for c in curves if len(c) == longest]


def rung_signal(curves: list[list[float]], rungs: list[int], reduction_factor: int = 3,
                lower_is_better: bool = False) -> list[dict]:
    """Per rung epoch: rho, the final best trial's rank there (1 = first), and whether keeping the
    top 1/reduction_factor at this rung and every earlier one keeps it."""
    values = -np.array(curves) if lower_is_better else np.array(curves)  # higher is better from here on
    final = values.max(1)
    best = int(final.argmax())
    rows, kept = [], True
    for k, epoch in enumerate(rungs):
        at = values[:, epoch - 1]
        rank = int((at > at[best]).sum()) + 1
        kept = kept and rank <= len(curves) / reduction_factor ** (k + 1)
        rows.append({"epoch": epoch, "rho": float(spearmanr(at, final).statistic), "rank": rank, "kept": kept})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="searches whose trials all ran to the end")
    parser.add_argument("--rungs", default="1,3,9", help="rung epochs (default: 1,3,9, ASHA's at grace 1)")
    parser.add_argument("--metric", default=METRIC, help=f"the search's metric (default: {METRIC}; "
                        "lower is better for a loss)")
    args = parser.parse_args()
    try:
        rungs = [int(r) for r in args.rungs.split(",")]
    except ValueError:
        sys.exit(f"rung_signal.py: --rungs: expected comma-separated epochs, got {args.rungs!r}")
    print("| search | trials | " + " | ".join(f"epoch {e}: rho, best's rank, kept" for e in rungs) + " |")
    print("|---|---|" + "---|" * len(rungs))
    for run_dir in args.run_dirs:
        try:
            curves = full_curves(run_dir, args.metric)
        except KeyError as e:
            sys.exit(f"rung_signal.py: {e.args[0]}; expected --metric to name the search's metric")
        if len(curves) < 3 or len(curves[0]) < max(rungs):
            sys.exit(f"rung_signal.py: {run_dir}: expected at least 3 trials of {max(rungs)}+ epochs each")
        rows = rung_signal(curves, rungs, lower_is_better=args.metric.endswith("loss"))
        cells = [f"{r['rho']:.2f}, {r['rank']}, {'yes' if r['kept'] else 'no'}" for r in rows]
        print(f"| {run_dir} | {len(curves)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
