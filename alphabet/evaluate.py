"""Evaluate a checkpoint or an ensemble on any data source: metrics, figures, TensorBoard, ``metrics.json``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from alphabet.config import DataConfig
from alphabet.data.letterset import LetterSet, concat
from alphabet.data.sources import load_source
from alphabet.data.splits import holdout, load_splits, select_classes
from alphabet.engine import evaluate_loss, pick_device
from alphabet.ensemble import Classifier, load_classifier
from alphabet.environment import environment
from alphabet.errors import UserError, counted
from alphabet.metrics import ACCEPT_AT, SHOWN_ACCEPT, calibration_text, class_report, headline
from alphabet.reporting import RunReporter, write_json, write_mistakes


def evaluation_set(source: str, split: str, data_config: DataConfig, classes: list[str]) -> LetterSet:
    """The images to score: the source's test partition (or its seeded held-out
    writers, as training used) with ``split='test'``, or everything with ``'all'``."""
    loaded = load_source(source, data_config, "--data")
    pool = select_classes(loaded.pool, data_config, source)
    if split == "all":
        data = pool if loaded.test is None else concat(pool, select_classes(loaded.test, data_config, source)
                                                       .relabel(pool.classes))
    elif loaded.test is not None:
        data = select_classes(loaded.test, data_config, source)
    else:
        data = holdout(pool, data_config.test_fraction, data_config.split_seed)[1]
    data = data.relabel(classes)
    if len(data) == 0:
        raise UserError(f"--data {source}: no images of the checkpoint's classes {''.join(classes)}")
    return data


def training_data(classifier: Classifier, case: str | None = None, root: str | None = None,
                  download: bool = False) -> DataConfig:
    """The data config of the classifier's training run; ``case`` and ``root`` override its data.case and
    data.root."""
    config = classifier.config.data
    return dataclasses.replace(config, case=case or config.case, root=root or config.root, download=download)


def classifier_data(classifier: Classifier, source: str | None, split: str = "test", case: str | None = None,
                    root: str | None = None, download: bool = False) -> LetterSet:
    """``evaluation_set`` read as the classifier's training run read its data or, with no ``source``, the
    test letters that run was scored on (the same letters, so that its report can be read again, with
    ``--tta`` or ``--accept``, say); ``case`` and ``root`` override its data.case and data.root."""
    config = training_data(classifier, case, root, download)
    if source is None:
        if split == "all":
            # The rest of a run's own letters trained it: scored, they would say nothing of new letters.
            raise UserError("--split all: expected --data SOURCE with it; without --data the letters scored are "
                            "the test letters of the model's training run, and its other letters trained it")
        try:
            return load_splits(config).test.relabel(classifier.classes)
        except UserError as e:  # a setting the user did not type here: say whose it is
            raise UserError(f"{e}; that is where the model's training run read its letters (--data SOURCE scores "
                            "others)") from None
    return evaluation_set(source, split, dataclasses.replace(config, source=source, test_source=None),
                          classifier.classes)


def same_source(a: str, b: str) -> bool:
    """Whether two data sources name the same letters: the same name, or files at the same path."""
    kind_a, _, path_a = a.partition(":")
    kind_b, _, path_b = b.partition(":")
    if kind_a != kind_b or bool(path_a) != bool(path_b):
        return False
    return not path_a or Path(path_a).expanduser().resolve() == Path(path_b).expanduser().resolve()


def source_scored(classifier: Classifier, source: str | None) -> str:
    """The source whose letters ``classifier_data`` scores."""
    data = classifier.config.data
    return source or data.test_source or data.source


def split_shown(split: str, tta: str = "", own: bool = False) -> str:
    """Which letters were scored, as the printed line says it; ``tta`` what test-time augmentation there
    was; ``own`` that they are the test letters of the model's training run (no ``--data``)."""
    if own:
        return f"the test letters its training run was scored on{tta}"
    # Of a folder of one's own, the test split is a fifth: the line says how to score it all.
    return f"its test split{tta}; --split all scores every letter" if split == "test" else f"all of it{tta}"


def evaluate_checkpoint(checkpoint: str | Path, source: str | None, out_dir: Path, split: str = "test",
                        case: str | None = None, tta: bool = False, root: str | None = None,
                        download: bool = False, accept: float | None = None,
                        log: Callable[[str], None] = print) -> dict:
    """Score ``checkpoint`` (a file, or an ensemble) on ``source`` (None: its training run's test letters,
    as ``classifier_data`` says); ``case`` and ``root`` override the training run's data.case and
    data.root; ``tta`` averages each image's test-time views; ``accept`` is a top probability to measure
    accepting letters at, beside the usual ones (``ACCEPT_AT``)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)
    classes = classifier.classes
    data = classifier_data(classifier, source, split, case, root, download)
    probs = classifier.predict_probs(data)
    labels = torch.from_numpy(data.labels)
    accept_at = tuple(sorted({*ACCEPT_AT, accept})) if accept is not None else ACCEPT_AT
    report = class_report(probs, labels, classes, data.writers, accept_at=accept_at)
    reporter = RunReporter(out_dir)
    reporter.evaluation("eval", report, probs, labels, data.images, 0)
    reporter.close()
    named = source_scored(classifier, source)
    result = {"checkpoint": str(checkpoint), "source": named, "split": split, "own_test": source is None,
              "tta": tta, "images": len(data),
              "loss": evaluate_loss(probs, labels), **report.to_json(), "environment": environment(classifier.device)}
    write_json(out_dir / "metrics.json", result)
    misread = write_mistakes(out_dir / "mistakes.csv", data, probs, named)
    present = int((report.support > 0).sum())
    shown = split_shown(split, ", test-time augmentation" if tta else "", own=source is None)
    scored = f"{counted(len(data), 'image')} of {counted(present, 'class', 'classes')}"
    log(f"{scored} from {named} ({shown}): {headline(result)}")
    log(calibration_text(result["calibration"], threshold=SHOWN_ACCEPT if accept is None else accept))
    log(f"wrote {out_dir / 'metrics.json'}, figures in {out_dir / 'figures'} and the "
        f"{counted(misread, 'misread letter')} in {out_dir / 'mistakes.csv'} (the label believed least first)")
    return result
