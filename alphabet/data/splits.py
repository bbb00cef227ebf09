"""From a source to train / validation / test sets: case, class subsets, limits, splits.

The test set is only ever reported on; validation is what training and search
choose by. Splits are writer-disjoint whenever writer ids exist, so validation
and test writers are unseen in training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alphabet.config import DataConfig
from alphabet.data.letterset import LetterSet
from alphabet.data.sources import CASE_LETTERS, SourceData, load_source
from alphabet.errors import UserError


@dataclass
class Splits:
    train: LetterSet
    val: LetterSet | None  # None when data.val_fraction is 0 (e.g. a final retrain)
    test: LetterSet
    auxiliary: LetterSet | None = None  # extra training classes (data.auxiliary_case), never scored

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def select_classes(data: LetterSet, config: DataConfig, origin: str) -> LetterSet:
    """Apply ``data.case`` and ``data.classes`` to a set."""
    mapping: dict[str, str] = {}
    names = list(data.classes)
    if config.case == "lower":
        names = [c for c in names if c.islower()]
    elif config.case == "upper":
        names = [c for c in names if c.isupper()]
    elif config.case == "merged":
        mapping = {c: c.lower() for c in names}
        names = sorted(set(mapping.values()))
    if config.classes:
        wanted = config.wanted_letters()
        names = [c for c in names if c in wanted]
    if not names:
        raise UserError(f"{origin}: data.case={config.case!r} and data.classes={config.classes!r} leave no "
                        f"class; the source has {''.join(data.classes)}")
    return data.relabel(names, mapping)


def check_task(pool: LetterSet, config: DataConfig) -> None:
    """The classes a training run gets are the ones asked for, and at least two. (Scoring a model on
    data that has only some of its letters is fine; training on fewer than were asked for is not.)"""
    missing = sorted(set(config.wanted_letters()) - set(pool.classes))
    if missing:  # a letter asked for and silently absent would leave a smaller task than the user thinks
        raise UserError(f"{config.source}: data.classes={config.classes!r}: no {''.join(missing)} with "
                        f"data.case={config.case!r}; expected some of {''.join(pool.classes)}")
    if len(pool.classes) < 2:
        raise UserError(f"{config.source}: data.case={config.case!r} and data.classes={config.classes!r} leave "
                        f"{''.join(pool.classes)}; expected at least two letters")


def holdout(data: LetterSet, fraction: float, seed: int) -> tuple[LetterSet, LetterSet]:
    """Split off ``fraction`` of ``data``: by writer where writers exist, else per class."""
    rng = np.random.default_rng(seed)
    if data.writers is not None:
        writers = np.unique(data.writers)
        rng.shuffle(writers)
        held_writers = writers[: max(1, round(fraction * len(writers)))]
        held = np.isin(data.writers, held_writers)
    else:
        held = np.zeros(len(data), bool)
        for c in range(len(data.classes)):
            idx = np.flatnonzero(data.labels == c)
            rng.shuffle(idx)
            held[idx[: round(fraction * len(idx))]] = True
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def none_held_out(data: LetterSet, key: str, fraction: float) -> str:
    """Why ``holdout`` held out none of ``data`` (its writers hold out one at least): a class's share
    rounds to no image in every class. Says so, and the least fraction that holds out some."""
    most = int(np.bincount(data.labels).max()) if len(data) else 0
    if data.writers is not None or most < 2:
        return f"{key} {fraction:g} of {len(data)} images holds out none; expected more images"
    least = math.ceil(50 / most) / 100
    while round(least * most) < 1:  # round() halves to even: 0.5 of an image is none
        least += 0.01
    return (f"{key} {fraction:g} of at most {most} images a class rounds to none; expected {key} of at "
            f"least {least:.2f}, or more images a class")


def fold_split(data: LetterSet, folds: int, fold: int, seed: int) -> tuple[LetterSet, LetterSet]:
    """Cross-validation: ``data`` cut into ``folds`` parts (by writer where writers exist, else per
    class), part ``fold`` held out; over the folds every sample is held out exactly once."""
    rng = np.random.default_rng(seed)
    if data.writers is not None:
        writers = np.unique(data.writers)
        rng.shuffle(writers)
        held = np.isin(data.writers, np.array_split(writers, folds)[fold])
    else:
        held = np.zeros(len(data), bool)
        for c in range(len(data.classes)):
            idx = np.flatnonzero(data.labels == c)
            rng.shuffle(idx)
            held[np.array_split(idx, folds)[fold]] = True
    return data.subset(np.flatnonzero(~held)), data.subset(np.flatnonzero(held))


def limit_per_class(data: LetterSet, limit: int | None, seed: int) -> LetterSet:
    """Keep at most ``limit`` random samples of each class."""
    if limit is None:
        return data
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(data.classes)):
        idx = np.flatnonzero(data.labels == c)
        keep.append(rng.permutation(idx)[:limit])
    return data.subset(np.sort(np.concatenate(keep)))


def of_the_writers_of(data: LetterSet, other: LetterSet) -> LetterSet:
    """The samples of ``data`` whose writers wrote in ``other`` (all of them where either names none)."""
    if data.writers is None or other.writers is None:
        return data
    return data.subset(np.flatnonzero(np.isin(data.writers, np.unique(other.writers))))


def auxiliary_letters(source: SourceData, config: DataConfig, train: LetterSet) -> LetterSet:
    """The other case's letters of the training writers (of the whole pool when it has no writers:
    then they share no image with validation or test, which hold only the task's classes)."""
    if config.case not in CASE_LETTERS or config.auxiliary_case == config.case:
        other = [c for c in CASE_LETTERS if c != config.case] if config.case in CASE_LETTERS else []
        expected = " or ".join(["none", *other])
        raise UserError(f"data.auxiliary_case: expected {expected} with data.case={config.case!r}, "
                        f"got {config.auxiliary_case!r}")
    aux = source.pool.relabel([c for c in source.pool.classes if c in CASE_LETTERS[config.auxiliary_case]])
    aux = of_the_writers_of(aux, train)
    if len(aux) == 0:
        raise UserError(f"data.auxiliary_case: {config.source!r} has no {config.auxiliary_case}case letters "
                        "from the training writers; expected a source with both cases")
    return limit_per_class(aux, config.train_per_class, config.split_seed)


def load_splits(config: DataConfig) -> Splits:
    """Everything training needs, from a data config."""
    source = load_source(config.source, config)
    pool = select_classes(source.pool, config, config.source)
    check_task(pool, config)
    if config.test_source:
        other = load_source(config.test_source, config, "data.test_source")
        test = select_classes(other.test if other.test is not None else other.pool, config, config.test_source)
        test = test.relabel(pool.classes)
        if len(test) == 0:
            raise UserError(f"data.test_source: {config.test_source!r} has no samples of the training classes "
                            f"{''.join(pool.classes)}")
    elif source.test is not None:
        test = select_classes(source.test, config, config.source).relabel(pool.classes)
    else:
        whole = pool
        pool, test = holdout(pool, config.test_fraction, config.split_seed)
        if len(test) == 0:
            raise UserError(f"data.source: {config.source!r} leaves the test split empty: "
                            f"{none_held_out(whole, 'data.test_fraction', config.test_fraction)}")
    train = limit_per_class(pool, config.train_per_class, config.split_seed)
    test = limit_per_class(test, config.test_per_class, config.split_seed)
    val = None
    if config.val_fraction > 0:
        left = train
        train, val = holdout(train, config.val_fraction, config.split_seed + 1)
        if len(val) == 0:
            raise UserError(f"data.source: {config.source!r} leaves the validation split empty: "
                            f"{none_held_out(left, 'data.val_fraction', config.val_fraction)}")
    for name, part in (("train", train), ("test", test)):
        if len(part) == 0:
            raise UserError(f"data.source: {config.source!r} leaves the {name} split empty; "
                            "expected at least one sample per split (check data.*_fraction and limits)")
    auxiliary = None if config.auxiliary_case == "none" else auxiliary_letters(source, config, train)
    return Splits(train=train, val=val, test=test, auxiliary=auxiliary)
