"""Each writer's own batch-norm statistics (AdaBN), scored on the models a fold screen kept.

A model's batch norms normalise with means and variances measured over all its training
writers. Re-measuring them on one writer's letters before classifying those letters (AdaBN,
Li et al. 2016) needs no labels and no training, only letters known to come from one hand.
It is transductive: a letter's answer depends on its writer's other letters. On femnist it
gained +0.2 points over five folds of writers, an interval that holds 0, so it is measured
here and not offered by the library (docs/BENCHMARKS.md, "Sixteenth").

Reads the models ``validation_screen.py --folds K --keep KEEP`` kept (KEEP/seed-S/fold-K),
rebuilds each one's held-out fold from the config inside its checkpoint, and scores the fold's
letters twice with the same weights: as they are, and with batch norm's statistics re-estimated
from each held-out writer's own letters, blended with the training ones by ``--strength`` (0:
the training statistics, 1: the writer's own). Both are pooled over the folds, and their
difference comes with a bootstrap interval over writers, paired: the same models on the same
letters, so that neither the seed's luck nor the folds' is in it.

    python benchmarks/writer_adaptation.py runs/cv-keep/R28 --strength 1 \\
        --leave-out benchmarks/configs/femnist_best.yaml

``--leave-out CONFIG`` scores without that config's validation writers (those a choice, such as
the strength, was made on). ``--smoke-test`` keeps and scores a 2-fold screen on synthetic letters.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alphabet.checkpoint import model_from_checkpoint  # noqa: E402
from alphabet.config import load_config  # noqa: E402
from alphabet.data import LetterSet  # noqa: E402
from alphabet.data.splits import load_splits  # noqa: E402
from alphabet.engine import predict_probs, to_input  # noqa: E402
from alphabet.errors import UserError  # noqa: E402
from alphabet.metrics import interval_of, interval_text, resampled_balanced_accuracy  # noqa: E402
from benchmarks.validation_screen import balanced_accuracy_of, held_out_fold, kept_checkpoint  # noqa: E402
from benchmarks.validation_screen import main as screen_main  # noqa: E402


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def adapted_to(model: nn.Module, images: torch.Tensor, device: torch.device, strength: float = 1.0
               ) -> Iterator[nn.Module]:
    """Within it, ``model``'s batch norms normalise with their training statistics blended towards those
    of ``images`` (uint8 (N, 28, 28), one writer's letters) by ``strength``; restored on leaving."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength: expected a value in [0, 1], got {strength}")
    norms = batch_norms(model)
    trained = [(m.running_mean.clone(), m.running_var.clone(), m.momentum, m.num_batches_tracked.clone())
               for m in norms]
    try:
        if norms and strength > 0.0:
            model.eval()  # dropout stays off; only the norms measure the batch
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: after one batch, that batch's statistics
                m.train()
            with torch.no_grad():
                model(to_input(images.to(device)))
            model.eval()
            for m, (mean, var, _, _) in zip(norms, trained, strict=True):
                m.running_mean.copy_(torch.lerp(mean, m.running_mean, strength))
                m.running_var.copy_(torch.lerp(var, m.running_var, strength))
        yield model
    finally:
        for m, (mean, var, momentum, batches) in zip(norms, trained, strict=True):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.momentum = momentum
            m.num_batches_tracked.copy_(batches)
        model.eval()


def predict_probs_per_writer(model: nn.Module, data: LetterSet, device: torch.device, strength: float = 1.0
                             ) -> torch.Tensor:
    """Softmax probabilities (N, C) as ``alphabet.engine.predict_probs`` gives them, but each writer's
    letters classified ``adapted_to`` that writer's own; without writer ids, all as one writer's."""
    images = torch.from_numpy(data.images)
    groups = (np.zeros(len(data), dtype=np.int64) if data.writers is None
              else np.unique(data.writers, return_inverse=True)[1].reshape(-1))
    order, parts = [], []
    for group in np.unique(groups):
        index = np.flatnonzero(groups == group)
        with adapted_to(model, images[index], device, strength):
            parts.append(predict_probs(model, images[index], device))
        order.append(index)
    probs = torch.cat(parts)
    out = torch.empty_like(probs)
    out[torch.from_numpy(np.concatenate(order))] = probs
    return out


def kept_folds(keep: Path) -> dict[int, list[Path]]:
    """seed -> its fold checkpoints in fold order, as ``validation_screen.py --folds --keep`` lays them out."""
    seeds = {}
    for seed_dir in sorted(keep.glob("seed-*")):
        seed = int(seed_dir.name.split("-")[1])
        folds = sorted(int(p.parts[-3].split("-")[1]) for p in seed_dir.glob("fold-*/checkpoints/last.pt"))
        # A fold's number says which writers it held out: a gap would score a model on another fold's letters.
        if folds != list(range(len(folds))):
            raise UserError(f"{seed_dir}: kept folds {folds}; expected every fold from 0, with none missing")
        if folds:
            seeds[seed] = [kept_checkpoint(keep, seed, fold) for fold in folds]
    if not seeds:
        raise UserError(f"{keep}: no seed-N/fold-K/checkpoints/last.pt; expected the --keep folder of "
                        "validation_screen.py --folds")
    if len({len(f) for f in seeds.values()}) != 1:
        raise UserError(f"{keep}: the seeds kept different numbers of folds; expected every fold of every seed")
    return seeds


def score_seed(checkpoints: list[Path], strength: float) -> dict:
    """One seed's folds: the held-out letters' outputs plain and adapted, pooled in fold order."""
    device = torch.device("cpu")
    plain, adapted, labels, writers = [], [], [], []
    splits = None
    for fold, path in enumerate(checkpoints):
        model, _, config = model_from_checkpoint(path, device)
        if splits is None:  # read once: every fold of a screen trained on the same data
            splits = load_splits(config.data)
        held = held_out_fold(splits, len(checkpoints), fold, config.data.split_seed + 1).val
        plain.append(predict_probs(model, held, device).numpy())
        adapted.append(predict_probs_per_writer(model, held, device, strength=strength).numpy())
        labels.append(held.labels)
        writers.append(held.writers)
    # Without writer ids (synthetic letters) a fold's letters count as one writer's.
    return {"plain": np.concatenate(plain), "adapted": np.concatenate(adapted), "y": np.concatenate(labels),
            "writers": None if writers[0] is None else np.concatenate(writers)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keep", nargs="?", type=Path, help="the --keep folder of validation_screen.py --folds")
    parser.add_argument("--strength", type=float, default=1.0, help="0: the training statistics; 1: the writer's own")
    parser.add_argument("--leave-out", metavar="CONFIG", help="score without this config's validation writers")
    parser.add_argument("--smoke-test", action="store_true", help="a 2-fold screen on synthetic letters, kept")
    args = parser.parse_args(argv)
    if not 0.0 <= args.strength <= 1.0:
        parser.error(f"--strength: expected a value in [0, 1], got {args.strength}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke_test:
            args.keep = Path(scratch) / "keep"
            screen_main(["--smoke-test", "--folds", "2", "--seeds", "0", "--keep", str(args.keep)])
        elif args.keep is None:
            parser.error("a --keep folder is needed, except with --smoke-test")
        try:
            kept = kept_folds(args.keep)
            seeds = {seed: score_seed(paths, args.strength) for seed, paths in kept.items()}
            first = next(iter(seeds.values()))
            y, writers = first["y"], first["writers"]
            mask = np.ones(len(y), dtype=bool)
            if args.leave_out and writers is None:
                raise UserError(f"--leave-out: the letters of {args.keep}'s folds have no writer ids to leave out")
            if args.leave_out:
                left_out = load_splits(load_config(args.leave_out).data).val.writers
                mask = ~np.isin(writers, left_out)
        except UserError as e:
            parser.exit(2, f"writer_adaptation: error: {e}\n")
    classes = first["plain"].shape[1]
    y, writers = y[mask], None if writers is None else writers[mask]
    scored = f"{mask.sum()} letters" + ("" if writers is None else f", {len(set(writers))} writers")
    print(f"{scored}, {len(next(iter(kept.values())))} folds; strength {args.strength:g}")
    print("| seed | plain | each writer's statistics | difference |\n|---|---|---|---|")
    plain, adapted, differences = [], [], []
    for seed, run in seeds.items():
        plain.append(run["plain"][mask].argmax(1))
        adapted.append(run["adapted"][mask].argmax(1))
        a, b = balanced_accuracy_of(plain[-1], y, classes), balanced_accuracy_of(adapted[-1], y, classes)
        differences.append(b - a)
        print(f"| {seed} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    samples = resampled_balanced_accuracy(y, [*plain, *adapted], classes, writers)
    gap = samples[len(plain):].mean(0) - samples[:len(plain)].mean(0)
    mean = np.mean(differences)
    interval = interval_of(gap, y, writers).to_json()
    print(f"difference, the mean over {len(seeds)} seed(s): {mean:+.4f} "
          f"({interval_text(interval, signed=True)}, over {interval['groups']} {interval['resampled']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
