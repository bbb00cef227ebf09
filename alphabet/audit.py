"""``alphabet data audit``: the training letters whose labels a cross-validated model doubts.

A model scoring letters it trained on has learnt their labels, wrong ones included, so the
audit cuts the letters a run trains on (training and validation; never the test letters) into
K folds, by writer where the data names writers, trains the config's model on K-1 of them and
reads the one held out. Every letter is then read once by a model that never saw it (nor its
writer), and the letters read as another letter are listed, the label believed least first:
on femnist's training letters, most of the 60 at the top were labelled as another letter
(docs/BENCHMARKS.md, "Thirteenth").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from alphabet.config import Config
from alphabet.data.letterset import LetterSet, concat
from alphabet.data.splits import fold_split, load_splits, of_the_writers_of
from alphabet.engine import Trainer
from alphabet.errors import UserError
from alphabet.figures import render
from alphabet.finetune import initial_weights
from alphabet.metrics import balanced_accuracy_interval, interval_text, summary_metrics
from alphabet.reporting import mistakes_figure, write_mistakes
from alphabet.train import duration

GRID = 48  # letters the picture shows: the top of the list, which is what a person checks by eye


@dataclass
class Audit:
    letters: LetterSet  # the audited letters, in fold order
    probs: torch.Tensor  # each one's out-of-fold softmax, in the same order
    folds: int

    @property
    def misread(self) -> int:
        return int((self.probs.argmax(1).numpy() != self.letters.labels).sum())


def audit_letters(config: Config, folds: int, log: Callable[[str], None] = print) -> Audit:
    """Out-of-fold probabilities for every letter a run of ``config`` trains on."""
    if folds < 2:
        raise ValueError("an audit needs at least 2 folds")
    # The validation writers are audited too: they are the user's letters, as the training ones are.
    splits = load_splits(replace(config.data, val_fraction=0.0))
    # Folds are cut by writer, else class by class: more folds than that leaves one holding nothing out.
    data = splits.train
    most, parts = ((len(np.unique(data.writers)), "the training letters' writers") if data.writers is not None else
                   (int(np.bincount(data.labels, minlength=len(data.classes)).min()), "the smallest class's letters"))
    if folds > most:
        raise UserError(f"--folds: expected at most {most} ({parts}), got {folds}")
    initial = initial_weights(config)
    held_parts, probs = [], []
    for k in range(folds):
        start = time.time()
        train, held = fold_split(splits.train, folds, k, config.data.split_seed + 1)
        auxiliary = None if splits.auxiliary is None else of_the_writers_of(splits.auxiliary, train)
        trainer = Trainer(config, train, auxiliary=auxiliary, initial=initial)
        while trainer.epoch < config.train.epochs:
            trainer.train_epoch()
            if k == 0 and trainer.epoch == 1:  # an audit of real data takes a while: say how long
                total = (time.time() - start) * config.train.epochs * folds
                log(f"the first epoch took {time.time() - start:.1f} s: about {duration(total)} in all")
        held_probs = trainer.predict(held)
        score = summary_metrics(held_probs, torch.from_numpy(held.labels))["balanced_accuracy"]
        log(f"fold {k + 1} of {folds}: trained on {len(train):,} letters, read the {len(held):,} held out at "
            f"balanced accuracy {score:.4f} ({time.time() - start:.0f} s)")
        held_parts.append(held)
        probs.append(held_probs)
    letters = held_parts[0]
    for part in held_parts[1:]:
        letters = concat(letters, part)
    return Audit(letters, torch.cat(probs), folds)


def write_audit(audit: Audit, csv_path: Path, source: str) -> Path:
    """The CSV of every misread letter (as ``evaluate``'s mistakes.csv) and a PNG of the first
    ``GRID`` beside it; returns the PNG's path."""
    from PIL import Image

    write_mistakes(csv_path, audit.letters, audit.probs, source)
    title = f"labels doubted by {audit.folds}-fold cross-validation (label→read, the label's probability)"
    grid = mistakes_figure(audit.letters.images, torch.from_numpy(audit.letters.labels), audit.probs,
                           audit.letters.classes, title, GRID)
    png = csv_path.with_suffix(".png")
    Image.fromarray(render(grid)).save(png)
    return png


def score_line(audit: Audit) -> str:
    """The config's balanced accuracy over every audited letter, each read by a model that never saw
    it (nor its writer, where the data names writers). Over all of them it is steadier than one test
    split's figure: on femnist one ensemble scored 0.925 to 0.951 on single folds of the test's size,
    0.937 over all of them (docs/BENCHMARKS.md, "Fourteenth")."""
    labels = audit.letters.labels
    score = summary_metrics(audit.probs, torch.from_numpy(labels))["balanced_accuracy"]
    interval = balanced_accuracy_interval(labels, audit.probs.argmax(1).numpy(), audit.probs.shape[1],
                                          audit.letters.writers).to_json()
    unseen = "of writers it never saw" if audit.letters.writers is not None else "it never saw"
    return (f"cross-validated balanced accuracy {score:.4f} ({interval_text(interval)}, over "
            f"{interval['groups']:,} {interval['resampled']}): what this config scores on letters {unseen}")


def summary_line(audit: Audit) -> str:
    n = len(audit.letters)
    share = audit.misread / n if n else 0.0
    unseen = "them nor their writers" if audit.letters.writers is not None else "them"
    return (f"{audit.misread:,} of {n:,} letters ({share:.1%}) were read as another letter by a model that "
            f"never saw {unseen}")
