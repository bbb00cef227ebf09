"""What ASHA's rungs can see: how well a trial's value after a few epochs ranks its best.

Reads searches that ran every trial to the end (FIFO: the random + FIFO arms that
``benchmarks/run.py --only search`` keeps under runs/), and prints a Markdown table:
for each rung epoch, the Spearman rank correlation between the trials' values there
and their best over all epochs (ties, such as trials stuck at chance, share a rank),
the rank there of the trial that ended best, and whether successive halving with
hindsight (the top 1/reduction_factor kept at each rung) would have kept that trial.
The metric, its direction and the rungs are the search's own (its experiment.yaml:
the rungs its ``asha`` section would have placed).

    python benchmarks/rung_signal.py runs/bench-search-efficiency_wide_32trials_grace1*/*/seed*/arm1
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr  # scikit-learn's own dependency

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphabet.errors import UserError  # noqa: E402
from search.runner import load_saved_experiment  # noqa: E402
from search.storage import RunLocation  # noqa: E402


def full_curves(run_dir: Path, metric: str) -> list[list[float]]:
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


def rung_signal(curves: list[list[float]], rungs: list[int], reduction_factor: float = 3,
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
    args = parser.parse_args()
    print("| search | trials | rungs: rho, best's rank, kept |")
    print("|---|---|---|")
    for run_dir in args.run_dirs:
        try:
            experiment = load_saved_experiment(RunLocation.parse(str(run_dir)))
            curves = full_curves(run_dir, experiment.search.metric)
        except (UserError, KeyError) as e:
            sys.exit(f"rung_signal.py: {e.args[0]}")
        # Ray judges a trial at its first report at or past a rung
        rungs = [math.ceil(epoch) for epoch in experiment.asha.rungs()]
        if len(curves) < 3 or not rungs or len(curves[0]) < rungs[-1]:
            sys.exit(f"rung_signal.py: {run_dir}: expected at least 3 trials that all ran past the last rung "
                     f"({rungs[-1] if rungs else 'none: grace_period >= max_t'})")
        rows = rung_signal(curves, rungs, experiment.asha.reduction_factor, experiment.mode == "min")
        cells = [f"epoch {r['epoch']}: {r['rho']:.2f}, {r['rank']}, {'yes' if r['kept'] else 'no'}" for r in rows]
        print(f"| {run_dir} | {len(curves)} | " + "; ".join(cells) + " |")


if __name__ == "__main__":
    main()
