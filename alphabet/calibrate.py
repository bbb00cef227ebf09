"""Temperature scaling: one number that makes a classifier's probabilities mean what they say.

Label smoothing, augmentation and averaging leave a model's top probability far from how often it
is right: the femnist recipe gives the letters of unseen writers 0.79 on average and reads 93-95%
of them right (docs/BENCHMARKS.md, "Calibration"). Dividing the log-probabilities by a
temperature fitted on letters the model never trained on mends that without changing a single
reading. The result is a classifier file, an ensemble file with a ``temperature`` (one member
for one model), which every command that takes a checkpoint takes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import yaml

from alphabet.data import LetterSet, load_splits
from alphabet.engine import pick_device
from alphabet.ensemble import (
    Classifier,
    is_ensemble,
    load_classifier,
    member_paths,
    run_checkpoint,
    with_temperature,
)
from alphabet.errors import UserError
from alphabet.evaluate import classifier_data, same_source, training_data
from alphabet.metrics import calibration, calibration_text
from alphabet.rundir import claim_new_file, free_name

CALIBRATED_FILE = "calibrated.yaml"
LOWEST, HIGHEST = 0.05, 20.0  # the temperatures searched; a fit at either end says the letters are odd


def fit_temperature(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature whose ``with_temperature(probs, T)`` gives ``labels`` the least negative
    log-likelihood. It is convex in 1/T, so a golden-section search over log T finds it."""
    logp = np.log(np.clip(probs.double().cpu().numpy(), 1e-12, None))
    y = labels.cpu().numpy()

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        top = z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z - top).sum(1)) + top[:, 0] - z[np.arange(len(y)), y]))

    low, high = np.log(LOWEST), np.log(HIGHEST)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(80):  # the bracket shrinks to 1e-16 of its width
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2))


def calibration_letters(classifier: Classifier, classifier_path: str, source: str | None, case: str | None,
                        root: str | None, download: bool) -> tuple[LetterSet, str]:
    """The letters to fit on and what they are: ``source``'s letters of the model's classes, or by
    default the validation letters the model's training run held out."""
    if source is not None:
        if same_source(source, classifier.config.data.source):
            raise UserError(f"--data {source}: the source {classifier_path} trained on, so most of its letters "
                            "are ones the model has seen; expected other letters (for held-out writers of it, "
                            "train with data.val_fraction > 0 and calibrate without --data)")
        return classifier_data(classifier, source, "all", case, root, download), f"all of {source}"
    held_out = load_splits(training_data(classifier, root=root, download=download)).val
    if held_out is None or len(held_out) == 0:
        raise UserError(f"{classifier_path}: its training run held out no validation letters (data.val_fraction "
                        f"is {classifier.config.data.val_fraction:g}, as in a retrain); expected letters it never "
                        "trained on: --data SOURCE")
    writers = "" if held_out.writers is None else f", {len(set(held_out.writers))} writers"
    return held_out, f"the validation letters its training run held out ({classifier.config.data.source}{writers})"


def calibrate(model: str, source: str | None = None, out: str | None = None, case: str | None = None,
              root: str | None = None, download: bool = False, log: Callable[[str], None] = print) -> Path:
    """Fit ``model``'s temperature and write a classifier file with it; returns the file."""
    target = _output_file(model, out)
    classifier = load_classifier(model, pick_device("auto"))
    classifier.temperature = 1.0  # fitted afresh from the models' own probabilities
    letters, described = calibration_letters(classifier, model, source, case, root, download)
    probs = classifier.predict_probs(letters).float().cpu()
    labels = torch.from_numpy(letters.labels)
    temperature = fit_temperature(probs, labels)
    before = calibration(probs.numpy(), letters.labels).to_json()
    after = calibration(with_temperature(probs, temperature).numpy(), letters.labels).to_json()
    members = member_paths(model) if is_ensemble(model) else [run_checkpoint(model)]
    header = (f"# {model} with a temperature, fitted by `alphabet calibrate` on {time.strftime('%Y-%m-%d')}\n"
              f"# on {len(letters)} letters: {described}.\n"
              f"# On them, before: {calibration_text(before)}\n"
              f"# after: {calibration_text(after)}\n"
              "# Predictions: the mean of the members' softmax probabilities, then softmax(log p / temperature).\n")
    body = {"members": [os.path.relpath(Path(m).resolve(), target.parent.resolve()) for m in members],
            "temperature": round(temperature, 4)}
    with claim_new_file(target, log=log) as target:
        target.write_text(header + yaml.safe_dump(body, sort_keys=False))
    inside = LOWEST * 1.01 < temperature < HIGHEST * 0.99
    edge = "" if inside else " (at the end of the range searched: look at these letters)"
    log(f"temperature {temperature:.4f}{edge}, fitted on {len(letters)} letters: {described}")
    log(f"before: {calibration_text(before)}")
    log(f"after (on the same letters): {calibration_text(after)}")
    log(f"wrote {target}; it goes wherever a checkpoint does: alphabet predict {target} IMAGE...")
    return target


def _output_file(model: str, out: str | None) -> Path:
    """``--out``, which must be new, or calibrated.yaml (then -2, -3 ...) beside the model."""
    if out is not None:
        path = Path(out)
        if path.suffix not in (".yaml", ".yml") or path.exists():
            raise UserError(f"--out: {path}: expected a new .yaml file"
                            + (" (it exists; nothing is overwritten)" if path.exists() else ""))
        return path
    given = Path(model)
    if not given.exists():
        raise UserError(f"{model}: not found; expected a checkpoint .pt, a run directory or an ensemble")
    folder = given if given.is_dir() else given.parent
    stem = Path(CALIBRATED_FILE).stem
    return folder / free_name(stem, lambda name: (folder / name).exists(), ".yaml")
