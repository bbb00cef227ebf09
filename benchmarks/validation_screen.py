"""The screen a femnist recipe passes before it may be scored on the test writers.

Trains a training config on the training writers only, once per seed, and scores
each model and their average on the validation writers only (``data.val_fraction``
of the training writers, writer-disjoint). The test writers are never loaded into
a model here. Prints one Markdown row per seed and one for the average, and with
``--save`` the validation probabilities, so that later mixes need no retraining; with
``--keep`` each seed's checkpoint and an ensemble of them (to start or teach other runs).

    python benchmarks/validation_screen.py benchmarks/configs/femnist_best.yaml --seeds 0 1 \\
        --set train.schedule=cosine train.logit_adjustment=1 train.ema_decay=0.998

Each seed runs in its own process on one thread, the seeds at once: on 2 cores
that is the fastest way to train two small CNNs. ``--smoke-test`` runs the same
path on synthetic letters in seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphabet.checkpoint import RUN_CHECKPOINT, save_checkpoint  # noqa: E402
from alphabet.config import load_config  # noqa: E402
from alphabet.data.splits import load_splits  # noqa: E402
from alphabet.engine import Trainer, predict_probs  # noqa: E402
from alphabet.ensemble import ENSEMBLE_FILE, write_ensemble  # noqa: E402
from alphabet.errors import UserError  # noqa: E402
from alphabet.finetune import initial_weights  # noqa: E402
from alphabet.metrics import summary_metrics  # noqa: E402
from alphabet.train_ensemble import member_name  # noqa: E402

SMOKE = ["data.source=synthetic", "data.case=lower", "data.synthetic_size=600", "data.synthetic_test_size=60",
         "model.width=8", "model.stages=2", "model.classifier_width=32", "train.batch_size=32"]


def screen_one(path: str | None, overrides: list[str], seed: int, also_at: tuple[int, ...] = (),
               keep: Path | None = None) -> dict:
    """One seed: trained on the training writers, its softmax outputs on the validation writers;
    its checkpoint written to ``kept_checkpoint(keep, seed)`` when ``keep`` is given."""
    torch.set_num_threads(1)
    config = load_config(path, [*overrides, f"train.seed={seed}"])
    splits = load_splits(config.data)
    trainer = Trainer(config, splits.train, auxiliary=splits.auxiliary, initial=initial_weights(config))
    labels = np.asarray(splits.val.labels)
    midway = {}  # epoch -> (what the run scores, the trained weights themselves where that is an average)
    start = time.time()
    while trainer.epoch < config.train.epochs:
        trainer.train_epoch()
        if trainer.epoch in also_at:
            scored = balanced_accuracy(trainer.predict(splits.val).numpy(), labels)
            weights = (balanced_accuracy(predict_probs(trainer.model, splits.val, trainer.device).numpy(), labels)
                       if trainer.ema is not None else None)
            midway[trainer.epoch] = (scored, weights)
    seconds = time.time() - start
    if keep is not None:
        save_checkpoint(kept_checkpoint(keep, seed), config, trainer.classes, trainer.state_dict())
    return {"seed": seed, "probs": trainer.predict(splits.val).numpy(), "labels": labels, "midway": midway,
            "writers": None if splits.val.writers is None else len(set(splits.val.writers)),
            "seconds": seconds}


def kept_checkpoint(keep: Path, seed: int) -> Path:
    """Where ``--keep`` puts a seed's model: laid out as ``alphabet train --seeds`` lays out its members."""
    return keep / member_name(seed) / RUN_CHECKPOINT


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return summary_metrics(torch.from_numpy(probs), torch.from_numpy(labels))["balanced_accuracy"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="a training config YAML (e.g. benchmarks/configs/femnist_best.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--also-at", type=int, nargs="+", default=[], metavar="EPOCH",
                        help="score at these epochs too (the weights themselves as well, with train.ema_decay)")
    parser.add_argument("--save", type=Path, help="a folder for each seed's validation probabilities (.npz)")
    parser.add_argument("--keep", type=Path, help="a folder for each seed's checkpoint (seed-N/checkpoints/last.pt) "
                        "and their ensemble.yaml")
    parser.add_argument("--smoke-test", action="store_true", help="synthetic letters, 2 epochs")
    args = parser.parse_args(argv)
    epochs, smoke = (2, SMOKE) if args.smoke_test else (args.epochs, [])
    overrides = [f"train.epochs={epochs}", "log.progress=never", *smoke, *args.overrides]
    if not args.smoke_test and args.config is None:
        parser.error("a config is needed, except with --smoke-test")
    try:
        config = load_config(args.config, overrides)
    except UserError as e:
        parser.exit(2, f"validation_screen: error: {e}\n")
    if config.data.val_fraction <= 0:
        parser.exit(2, f"validation_screen: error: {args.config or '--smoke-test'}: data.val_fraction: "
                       f"expected a value > 0 (the screen scores the validation writers), "
                       f"got {config.data.val_fraction}\n")
    # Checked first, so that no hour of training is lost; a file there is refused as a full folder is.
    if args.keep and args.keep.exists() and (not args.keep.is_dir() or any(args.keep.iterdir())):
        parser.exit(2, f"validation_screen: error: --keep: {args.keep}: not empty; expected a new folder "
                       "(kept models are never overwritten)\n")
    with ProcessPoolExecutor(len(args.seeds)) as pool:
        n = len(args.seeds)
        runs = list(pool.map(screen_one, [args.config] * n, [overrides] * n, args.seeds, [tuple(args.also_at)] * n,
                             [args.keep] * n))
    if args.keep:
        write_ensemble(args.keep / ENSEMBLE_FILE, [kept_checkpoint(args.keep, s) for s in args.seeds])
    labels = runs[0]["labels"]
    print(f"validation: {len(labels)} letters"
          + (f", {runs[0]['writers']} writers" if runs[0]["writers"] else "") + f"; settings: {' '.join(overrides)}")
    print("| seed | balanced accuracy | seconds |\n|---|---|---|")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    scores = []
    for run in runs:
        scores.append(balanced_accuracy(run["probs"], labels))
        print(f"| {run['seed']} | {scores[-1]:.4f} | {run['seconds']:.0f} |")
        if args.save:
            np.savez(args.save / f"seed{run['seed']}.npz", probs=run["probs"], y=labels)
    print(f"| mean | {np.mean(scores):.4f} | |")
    if len(runs) > 1:
        print(f"| the {len(runs)} averaged | {balanced_accuracy(sum(r['probs'] for r in runs), labels):.4f} | |")
    if args.also_at:
        print("\n| seed | epoch | scored | the weights themselves |\n|---|---|---|---|")
        for run in runs:
            for epoch, (scored, weights) in sorted(run["midway"].items()):
                shown = "" if weights is None else f"{weights:.4f}"
                print(f"| {run['seed']} | {epoch} | {scored:.4f} | {shown} |")
    print(json.dumps({"seeds": args.seeds, "scores": [round(s, 4) for s in scores]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
