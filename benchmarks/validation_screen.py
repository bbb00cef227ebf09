"""The screen a femnist recipe passes before it may be scored on the test writers.

Trains a training config on the training writers only, once per seed, and scores
each model and their average on the validation writers only (``data.val_fraction``
of the training writers, writer-disjoint). The test writers are never loaded into
a model here. Prints one Markdown row per seed and one for the average, and with
``--save`` the validation probabilities, so that later mixes need no retraining; with
``--keep`` each seed's checkpoint and an ensemble of them (to start or teach other runs).

    python benchmarks/validation_screen.py benchmarks/configs/femnist_best.yaml --seeds 0 1 \\
        --set train.schedule=cosine train.logit_adjustment=1 train.ema_decay=0.998

With ``--folds K`` it cross-validates instead: the training and validation writers
together (the letters a retrain trains on) are cut into K folds of writers, and each
seed trains K times, each fold held out once, so that every one of those letters is
scored once by a model that never saw its writer. ``--against DIR`` then compares
with another screen's ``--save`` folder on the same folds: the difference in balanced
accuracy with a bootstrap interval over writers.

    python benchmarks/validation_screen.py benchmarks/configs/femnist_best.yaml --folds 5 --seeds 0 \\
        --save runs/cv-recipe --set train.schedule=cosine train.logit_adjustment=1

With ``--save`` each fold's outputs are written as soon as it ends (``SAVE/runs/``): a screen
stopped part-way, by a session's end say, goes on from them when the same command runs again.
``--keep`` with ``--folds`` keeps each fold's model (``KEEP/seed-S/fold-K``), for ways of reading
letters that need no retraining (``benchmarks/writer_adaptation.py``).

Each run (a seed, or a seed and a fold) has its own process on one thread, as many
at once as ``--jobs`` (the cores, by default): on 2 cores that is the fastest way to
train small CNNs, and on a GPU the runs share it (15 folds of the recipe at once took
85 s each on an H200: docs/BENCHMARKS.md, "Fourteenth"). ``--smoke-test`` runs the same
path on synthetic letters in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphabet.checkpoint import RUN_CHECKPOINT, save_checkpoint  # noqa: E402
from alphabet.config import load_config  # noqa: E402
from alphabet.data.splits import Splits, fold_split, load_splits, of_the_writers_of  # noqa: E402
from alphabet.engine import Trainer, predict_probs  # noqa: E402
from alphabet.ensemble import ENSEMBLE_FILE, write_ensemble  # noqa: E402
from alphabet.errors import UserError  # noqa: E402
from alphabet.finetune import initial_weights  # noqa: E402
from alphabet.metrics import (  # noqa: E402
    confusion_matrix,
    interval_of,
    interval_text,
    resampled_balanced_accuracy,
    summary_from_confusion,
    summary_metrics,
)
from alphabet.train_ensemble import member_name  # noqa: E402

SMOKE = ["data.source=synthetic", "data.case=lower", "data.synthetic_size=600", "data.synthetic_test_size=60",
         "model.width=8", "model.stages=2", "model.classifier_width=32", "train.batch_size=32"]


def held_out_fold(splits: Splits, folds: int, fold: int, seed: int) -> Splits:
    """Fold ``fold`` of the training letters as the validation set; the other case's letters (with
    ``data.auxiliary_case``) kept only from the writers left to train on."""
    train, held = fold_split(splits.train, folds, fold, seed)
    auxiliary = None if splits.auxiliary is None else of_the_writers_of(splits.auxiliary, train)
    return Splits(train=train, val=held, test=splits.test, auxiliary=auxiliary)


def screen_one(path: str | None, overrides: list[str], seed: int, also_at: tuple[int, ...] = (),
               keep: Path | None = None, fold: tuple[int, int] | None = None) -> dict:
    """One seed: trained on the training writers, its softmax outputs on the validation writers;
    its checkpoint written to ``kept_checkpoint(keep, seed)`` when ``keep`` is given. With ``fold``
    (k, K), the validation writers are fold k of K of all training writers instead."""
    torch.set_num_threads(1)
    config = load_config(path, [*overrides, f"train.seed={seed}"])
    splits = load_splits(config.data)
    if fold is not None:  # the same folds for every config and seed: they depend on the data only
        splits = held_out_fold(splits, fold[1], fold[0], config.data.split_seed + 1)
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
        path = kept_checkpoint(keep, seed, None if fold is None else fold[0])
        save_checkpoint(path, config, trainer.classes, trainer.state_dict())
    return {"seed": seed, "fold": None if fold is None else fold[0], "probs": trainer.predict(splits.val).numpy(),
            "labels": labels, "midway": midway, "writers": splits.val.writers, "seconds": seconds}


def run_file(save: Path, seed: int, fold: int) -> Path:
    """Where ``--save`` keeps one fold's outputs as soon as it ends."""
    return save / "runs" / f"seed{seed}-fold{fold}.npz"


def save_run(path: Path, run: dict, settings: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {} if run["writers"] is None else {"writers": run["writers"]}
    np.savez(path, probs=run["probs"], labels=run["labels"], seconds=run["seconds"], settings=settings, **extra)


def load_run(path: Path, seed: int, fold: int, settings: str) -> dict:
    """A fold an earlier, stopped run of the same screen finished; refused if its settings differ."""
    saved = np.load(path)
    if str(saved["settings"]) != settings:
        raise UserError(f"--save: {path} holds a fold screened with other settings ({saved['settings']}); expected "
                        f"{settings}, or another --save folder")
    return {"seed": seed, "fold": fold, "probs": saved["probs"], "labels": saved["labels"], "midway": {},
            "writers": saved["writers"] if "writers" in saved else None, "seconds": float(saved["seconds"])}


def kept_checkpoint(keep: Path, seed: int, fold: int | None = None) -> Path:
    """Where ``--keep`` puts a seed's model: laid out as ``alphabet train --seeds`` lays out its members;
    with folds, one run directory per fold inside the seed's (``seed-0/fold-1``, numbered from 0)."""
    seed_dir = keep / member_name(seed)
    return (seed_dir if fold is None else seed_dir / f"fold-{fold}") / RUN_CHECKPOINT


def balanced_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return summary_metrics(torch.from_numpy(probs), torch.from_numpy(labels))["balanced_accuracy"]


def pooled(runs: list[dict], seed: int) -> dict:
    """One seed's runs over the folds, in fold order: every training letter's outputs once."""
    mine = sorted((r for r in runs if r["seed"] == seed), key=lambda r: r["fold"])
    writers = None if mine[0]["writers"] is None else np.concatenate([r["writers"] for r in mine])
    return {"probs": np.concatenate([r["probs"] for r in mine]), "y": np.concatenate([r["labels"] for r in mine]),
            "fold": np.concatenate([np.full(len(r["labels"]), r["fold"]) for r in mine]), "writers": writers,
            "by_fold": [balanced_accuracy(r["probs"], r["labels"]) for r in mine],
            "seconds": sum(r["seconds"] for r in mine)}


def load_against(folder: Path, y: np.ndarray, writers: np.ndarray | None) -> list[np.ndarray]:
    """The predictions saved by another ``--folds --save`` screen, checked to be of the same letters."""
    files = sorted(folder.glob("seed*.npz")) if folder.is_dir() else []
    if not files:
        raise UserError(f"--against: {folder}: no seed*.npz; expected the --save folder of a --folds screen")
    predictions = []
    for file in files:
        saved = np.load(file)
        same = "fold" in saved and np.array_equal(saved["y"], y) and (
            writers is None or ("writers" in saved and np.array_equal(saved["writers"], writers)))
        if not same:
            raise UserError(f"--against: {file}: not the same letters in the same folds; expected a --folds "
                            "screen of the same data, data.split_seed and --folds")
        predictions.append(saved["probs"].argmax(1))
    return predictions


def difference_line(against: list[np.ndarray], ours: list[np.ndarray], y: np.ndarray,
                    writers: np.ndarray | None, classes: int) -> str:
    """Ours minus theirs, each side the mean over its seeds, on the same bootstrap draws of writers."""
    samples = resampled_balanced_accuracy(y, [*against, *ours], classes, writers)
    gap = samples[len(against):].mean(0) - samples[:len(against)].mean(0)
    mean = (np.mean([balanced_accuracy_of(p, y, classes) for p in ours])
            - np.mean([balanced_accuracy_of(p, y, classes) for p in against]))
    interval = interval_of(gap, y, writers).to_json()
    # The bootstrap draws writers only: on femnist's folds a second seed of the same recipe moved the
    # pooled figure by +0.0038 with an interval clear of 0 (docs/BENCHMARKS.md, Thirteenth, R1).
    luck = "" if min(len(against), len(ours)) > 1 else "; one seed a side: the seed's own luck is not in it"
    return (f"difference from --against ({len(against)} seed(s)): {mean:+.4f} "
            f"({interval_text(interval, signed=True)}, over {interval['groups']} {interval['resampled']}{luck})")


def balanced_accuracy_of(predicted: np.ndarray, labels: np.ndarray, classes: int) -> float:
    cm = confusion_matrix(torch.from_numpy(labels), torch.from_numpy(predicted), classes)
    return summary_from_confusion(cm)["balanced_accuracy"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", help="a training config YAML (e.g. benchmarks/configs/femnist_best.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--folds", type=int, metavar="K", help="cross-validate over K folds of the training and "
                        "validation writers together, instead of scoring the validation writers")
    parser.add_argument("--against", type=Path, metavar="DIR", help="with --folds: the --save folder of another "
                        "--folds screen, to compare with")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once, one thread each "
                        "(default: the cores)")
    parser.add_argument("--also-at", type=int, nargs="+", default=[], metavar="EPOCH",
                        help="score at these epochs too (the weights themselves as well, with train.ema_decay)")
    parser.add_argument("--save", type=Path, help="a folder for each seed's validation probabilities (.npz)")
    parser.add_argument("--keep", type=Path, help="a folder for each seed's checkpoint (seed-N/checkpoints/last.pt) "
                        "and their ensemble.yaml; with --folds, each fold's (seed-N/fold-K/checkpoints/last.pt)")
    parser.add_argument("--smoke-test", action="store_true", help="synthetic letters, 2 epochs")
    args = parser.parse_args(argv)
    epochs, smoke = (2, SMOKE) if args.smoke_test else (args.epochs, [])
    # With folds the validation writers are a fold: the config's own validation writers train too.
    overrides = [f"train.epochs={epochs}", "log.progress=never", *smoke, *args.overrides,
                 *(["data.val_fraction=0"] if args.folds else [])]
    if not args.smoke_test and args.config is None:
        parser.error("a config is needed, except with --smoke-test")
    if args.folds is not None and args.folds < 2:
        parser.error(f"--folds: expected an integer >= 2, got {args.folds}")
    if args.against and args.folds is None:
        parser.error("--against: only with --folds")
    if args.also_at and args.folds is not None:
        parser.error("--also-at: only without --folds")
    if args.jobs < 1:
        parser.error(f"--jobs: expected an integer >= 1, got {args.jobs}")
    against = None
    try:
        config = load_config(args.config, overrides)
        if args.against:  # checked against the folds' letters now, not after an hour of training
            splits = load_splits(config.data)
            held = [held_out_fold(splits, args.folds, k, config.data.split_seed + 1).val for k in range(args.folds)]
            y = np.concatenate([h.labels for h in held])
            writers = None if splits.train.writers is None else np.concatenate([h.writers for h in held])
            against = load_against(args.against, y, writers)
    except UserError as e:
        parser.exit(2, f"validation_screen: error: {e}\n")
    if config.data.val_fraction <= 0 and not args.folds:
        parser.exit(2, f"validation_screen: error: {args.config or '--smoke-test'}: data.val_fraction: "
                       f"expected a value > 0 (the screen scores the validation writers), "
                       f"got {config.data.val_fraction}\n")
    # Checked first, so that no hour of training is lost; a file there is refused as a full folder is.
    # A fold screen's folder may hold the folds a stopped run of it finished (see below).
    if args.keep and args.keep.exists() and (not args.keep.is_dir() or (any(args.keep.iterdir()) and not args.folds)):
        parser.exit(2, f"validation_screen: error: --keep: {args.keep}: not empty; expected a new folder "
                       "(kept models are never overwritten)\n")
    taken = [path for path in (args.save / f"seed{s}.npz" for s in args.seeds) if path.exists()] if args.save else []
    if taken:  # saved outputs (perhaps the very ones --against reads) are never overwritten
        parser.exit(2, f"validation_screen: error: --save: {taken[0]} exists; expected a folder without "
                       "this screen's seeds\n")
    work = [(seed, None if args.folds is None else (k, args.folds))
            for seed in args.seeds for k in range(args.folds or 1)]
    # Folds an earlier run of this screen finished, if it was stopped: only those left are trained.
    settings = json.dumps({"config": args.config, "folds": args.folds, "settings": overrides})
    resumable = args.save is not None and args.folds is not None
    runs = []
    for seed, fold in work if resumable else []:
        path = run_file(args.save, seed, fold[0])
        if not path.exists():
            continue
        try:
            runs.append(load_run(path, seed, fold[0], settings))
        except UserError as e:
            parser.exit(2, f"validation_screen: error: {e}\n")
        print(f"seed {seed}, fold {fold[0] + 1} of {args.folds}: "
              f"{balanced_accuracy(runs[-1]['probs'], runs[-1]['labels']):.4f}, from {path}",
              file=sys.stderr, flush=True)
    finished = {(r["seed"], r["fold"]) for r in runs}
    work = [(seed, fold) for seed, fold in work if fold is None or (seed, fold[0]) not in finished]
    kept = [kept_checkpoint(args.keep, seed, fold[0]) for seed, fold in work if fold] if args.keep else []
    if any(path.exists() for path in kept):  # kept models are never overwritten
        parser.exit(2, f"validation_screen: error: --keep: {next(p for p in kept if p.exists())} exists, but "
                       "--save holds no outputs of its fold; expected a new --keep folder, or that model moved away\n")
    with ProcessPoolExecutor(max(1, min(args.jobs, len(work)))) as pool:
        futures = [pool.submit(screen_one, args.config, overrides, seed, tuple(args.also_at), args.keep, fold)
                   for seed, fold in work]
        for done in as_completed(futures):  # a line as each run ends: a 5-fold screen takes an hour or so
            run = done.result()
            if resumable:
                save_run(run_file(args.save, run["seed"], run["fold"]), run, settings)
            where = "" if run["fold"] is None else f", fold {run['fold'] + 1} of {args.folds}"
            print(f"seed {run['seed']}{where}: {balanced_accuracy(run['probs'], run['labels']):.4f} "
                  f"in {run['seconds']:.0f} s", file=sys.stderr, flush=True)
        runs += [f.result() for f in futures]
    if args.keep and args.folds is None:  # fold models score different letters: no ensemble of them
        write_ensemble(args.keep / ENSEMBLE_FILE, [kept_checkpoint(args.keep, s) for s in args.seeds])
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    scores = report_folds(runs, args, overrides, against) if args.folds else report_seeds(runs, args, overrides)
    print(json.dumps({"seeds": args.seeds, "folds": args.folds, "scores": [round(s, 4) for s in scores]}))
    return 0


def report_seeds(runs: list[dict], args: argparse.Namespace, overrides: list[str]) -> list[float]:
    """Each seed's validation score, their mean and their average's, as Markdown; the scores."""
    labels, writers = runs[0]["labels"], runs[0]["writers"]
    print(f"validation: {len(labels)} letters"
          + (f", {len(set(writers))} writers" if writers is not None else "") + f"; settings: {' '.join(overrides)}")
    print("| seed | balanced accuracy | seconds |\n|---|---|---|")
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
    return scores


def report_folds(runs: list[dict], args: argparse.Namespace, overrides: list[str],
                 against: list[np.ndarray] | None) -> list[float]:
    """Each seed's score on every fold and on all of them pooled, as Markdown; the pooled scores."""
    seeds = [pooled(runs, seed) for seed in args.seeds]
    y, writers = seeds[0]["y"], seeds[0]["writers"]
    print(f"cross-validation: {len(y)} letters" + (f", {len(set(writers))} writers" if writers is not None else "")
          + f", in {args.folds} folds; settings: {' '.join(overrides)}")
    print("| seed | " + " | ".join(f"fold {k + 1}" for k in range(args.folds)) + " | all pooled | seconds |")
    print("|---" * (args.folds + 3) + "|")
    scores = []
    for seed, run in zip(args.seeds, seeds, strict=True):
        scores.append(balanced_accuracy(run["probs"], y))
        print(f"| {seed} | " + " | ".join(f"{s:.4f}" for s in run["by_fold"])
              + f" | {scores[-1]:.4f} | {run['seconds']:.0f} |")
        if args.save:
            extra = {} if writers is None else {"writers": writers}
            np.savez(args.save / f"seed{seed}.npz", probs=run["probs"], y=y, fold=run["fold"], **extra)
    blank = " |" * args.folds
    print(f"| mean |{blank} {np.mean(scores):.4f} | |")
    if len(seeds) > 1:
        print(f"| the {len(seeds)} averaged |{blank} {balanced_accuracy(sum(r['probs'] for r in seeds), y):.4f} | |")
    if against is not None:
        classes = seeds[0]["probs"].shape[1]
        print(difference_line(against, [r["probs"].argmax(1) for r in seeds], y, writers, classes))
    return scores


if __name__ == "__main__":
    sys.exit(main())
