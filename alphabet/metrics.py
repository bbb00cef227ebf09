"""Classification metrics from predicted probabilities.

``summary_metrics`` is cheap enough for every epoch; ``ClassReport`` adds
per-class scores, one-vs-rest ROC AUC on the softmax probabilities, the most
confused pairs and how far the top probability can be trusted (``Calibration``).
Definitions follow scikit-learn: balanced accuracy averages recall over the
classes present in the labels; macro F1 averages over the classes present in
labels or predictions.

A test set of a few thousand letters leaves balanced accuracy uncertain by a
point or so, so reports carry a bootstrap interval. It resamples writers where
the data names them: one writer's letters err together, and resampling single
letters would draw the interval too narrow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from alphabet.errors import counted


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(true, predicted) counts."""
    flat = labels.long() * num_classes + predictions.long()
    # index_add_, not bincount: bincount on CUDA reads the maximum back to the host, a sync per step.
    counts = torch.zeros(num_classes**2, dtype=torch.long, device=flat.device)
    return counts.index_add_(0, flat, torch.ones_like(flat)).view(num_classes, num_classes)


def summary_from_confusion(cm: torch.Tensor) -> dict[str, float]:
    cm = cm.double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    total = cm.sum().clamp_min(1)
    present = support > 0
    recall = tp / support.clamp_min(1)
    precision = tp / predicted.clamp_min(1)
    f1 = 2 * tp / (support + predicted).clamp_min(1)
    seen = present | (predicted > 0)
    return {
        "accuracy": float(tp.sum() / total),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "macro_precision": float(precision[seen].mean()) if seen.any() else 0.0,
    }


def summary_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and macro precision."""
    cm = confusion_matrix(labels, probs.argmax(1), probs.shape[1])
    return summary_from_confusion(cm)


RESAMPLES = 1000
LEVEL = 0.95


def _groups(count: int, groups: Any | None) -> tuple[np.ndarray, str]:
    """Each sample's group index (its writer's, else its own) and what a group is."""
    if groups is None:
        return np.arange(count), "images"
    return np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1), "writers"


def resampled_balanced_accuracy(labels: np.ndarray, predictions: list[np.ndarray], num_classes: int,
                                groups: Any | None = None, resamples: int = RESAMPLES,
                                seed: int = 0) -> np.ndarray:
    """Balanced accuracy of each of ``predictions`` on the same bootstrap resamples of the groups:
    shape (len(predictions), resamples). Shared resamples make differences between them paired."""
    labels = np.asarray(labels)
    right = [np.asarray(predicted) == labels for predicted in predictions]
    if groups is None:
        # Drawing images is drawing their kinds (class, and right or wrong by each prediction) in
        # proportion: the same resampling, with a few dozen weights per draw instead of one per image.
        kind = labels * 2 ** len(right) + sum(r.astype(np.int64) << j for j, r in enumerate(right))
        _, first, counts = np.unique(kind, return_index=True, return_counts=True)
        support = np.eye(num_classes)[labels[first]]
        correct = [support * r[first, None] for r in right]
        draws, chance = len(labels), counts / max(len(labels), 1)
    else:
        index, _ = _groups(len(labels), groups)
        draws = int(index.max()) + 1 if len(index) else 0
        support = np.zeros((draws, num_classes))
        np.add.at(support, (index, labels), 1)
        correct = []
        for r in right:
            counts = np.zeros((draws, num_classes))
            np.add.at(counts, (index, labels), r.astype(float))
            correct.append(counts)
        chance = np.full(draws, 1 / max(draws, 1))
    rng = np.random.default_rng(seed)
    out = np.empty((len(predictions), resamples))
    for start in range(0, resamples, 100):  # chunks bound the memory of the weights on large test sets
        weights = rng.multinomial(draws, chance, size=min(100, resamples - start))
        drawn = weights @ support
        present = drawn > 0
        for k, counts in enumerate(correct):
            recall = np.divide(weights @ counts, drawn, out=np.zeros_like(drawn), where=present)
            out[k, start:start + len(weights)] = recall.sum(1) / present.sum(1).clip(min=1)
    return out


@dataclass
class Interval:
    """A percentile bootstrap interval: of balanced accuracy, or of a difference in it."""

    low: float
    high: float
    unit: str  # what was resampled: writers or images
    groups: int
    level: float = LEVEL
    resamples: int = RESAMPLES

    def to_json(self) -> dict:
        return {"low": self.low, "high": self.high, "level": self.level, "resampled": self.unit,
                "groups": self.groups, "resamples": self.resamples}


def interval_of(samples: np.ndarray, labels: np.ndarray, groups: Any | None) -> Interval:
    """The central ``LEVEL`` share of bootstrap ``samples`` drawn by ``resampled_balanced_accuracy``."""
    index, unit = _groups(len(labels), groups)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high), unit, int(index.max()) + 1 if len(index) else 0,
                    resamples=len(samples))


def balanced_accuracy_interval(labels: np.ndarray, predicted: np.ndarray, num_classes: int,
                               writers: np.ndarray | None = None) -> Interval:
    """The bootstrap interval of the balanced accuracy of ``predicted``, over ``writers`` where given."""
    samples = resampled_balanced_accuracy(labels, [predicted], num_classes, writers)[0]
    return interval_of(samples, labels, writers)


CALIBRATION_BINS = 15  # equal-width bins of the top probability, as ECE is usually reported
ACCEPT_AT = (0.5, 0.8, 0.9, 0.95, 0.99)  # top-probability thresholds a pipeline might accept letters at
SHOWN_ACCEPT = 0.9  # the one of them a one-line summary shows


@dataclass
class Calibration:
    """How far a letter's top probability can be trusted. An OCR pipeline that sends unsure letters
    to a person picks its threshold from ``accepted``: the share of letters whose top probability
    reaches it, and how many of those are read right."""

    edges: np.ndarray  # (bins + 1,) over [0, 1]
    count: np.ndarray  # letters per bin
    confidence: np.ndarray  # mean top probability per bin; nan where a bin is empty
    accuracy: np.ndarray  # share read right per bin; nan where a bin is empty
    ece: float  # expected calibration error: the letter-weighted mean |accuracy - confidence| over bins
    mean_confidence: float
    mean_accuracy: float
    accepted: list[dict]  # {"threshold", "share", "accuracy"} at each of ACCEPT_AT
    curve: tuple[np.ndarray, np.ndarray] = field(repr=False)  # (share accepted, its accuracy), surest first

    def to_json(self) -> dict:
        bins = [{"low": float(lo), "high": float(hi), "count": int(n),
                 "confidence": None if n == 0 else float(c), "accuracy": None if n == 0 else float(a)}
                for lo, hi, n, c, a in zip(self.edges[:-1], self.edges[1:], self.count, self.confidence,
                                           self.accuracy, strict=True)]
        return {"ece": self.ece, "mean_confidence": self.mean_confidence, "accuracy": self.mean_accuracy,
                "bins": bins, "accepted": self.accepted}


def _binned(probs: np.ndarray, labels: np.ndarray, bins: int) -> tuple:
    """Top probability and rightness per letter; bin edges, counts, mean confidence and accuracy per bin; ECE."""
    top = probs.max(1).astype(np.float64)
    right = (probs.argmax(1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bins are (low, high], the first [0, high]: a top probability of exactly 1 falls in the last.
    which = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, top, bins) / count
        accuracy = np.bincount(which, right, bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(accuracy[filled] - confidence[filled])) / max(len(top), 1))
    return top, right, edges, count, confidence, accuracy, ece


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """``calibration(...).ece`` alone, cheap enough for every epoch."""
    return _binned(probs, labels, bins)[-1]


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS,
                thresholds: tuple[float, ...] = ACCEPT_AT) -> Calibration:
    """Top-label calibration of ``probs`` (N, C) against ``labels`` (N,), with what accepting the
    letters whose top probability reaches each of ``thresholds`` gives."""
    top, right, edges, count, confidence, accuracy, ece = _binned(probs, labels, bins)
    order = np.argsort(-top, kind="stable")
    share = np.arange(1, len(top) + 1) / max(len(top), 1)
    curve = (share, np.cumsum(right[order]) / np.arange(1, len(top) + 1))
    accepted = []
    for threshold in thresholds:
        kept = top >= threshold
        accepted.append({"threshold": threshold, "share": float(kept.mean()) if len(top) else 0.0,
                         "accuracy": float(right[kept].mean()) if kept.any() else None})
    return Calibration(edges, count, confidence, accuracy, ece, float(top.mean()) if len(top) else float("nan"),
                       float(right.mean()) if len(top) else float("nan"), accepted, curve)


def calibration_text(shown: dict, threshold: float = SHOWN_ACCEPT) -> str:
    """One line of a ``Calibration.to_json()``: ECE, which way it errs, and what accepting at ``threshold`` gives."""
    gap = shown["mean_confidence"] - shown["accuracy"]
    leaning = "over-confident" if gap > 0.01 else "under-confident" if gap < -0.01 else "about right"
    line = (f"calibration: ECE {shown['ece']:.4f}; mean top probability {shown['mean_confidence']:.4f} against "
            f"accuracy {shown['accuracy']:.4f} ({leaning})")
    at = next((a for a in shown["accepted"] if a["threshold"] == threshold), None)
    if at and at["accuracy"] is not None:
        line += (f"; top probability >= {threshold:g}: {at['share']:.1%} of the letters, "
                 f"{at['accuracy']:.2%} of them right")
    return line


@dataclass
class ClassReport:
    """Everything the figures and ``metrics.json`` show about one evaluation."""

    classes: list[str]
    confusion: np.ndarray  # (C, C) counts, rows are true classes
    recall: np.ndarray
    precision: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    auc: np.ndarray  # one-vs-rest ROC AUC per class; nan where a class has no positives
    roc: dict[int, tuple[np.ndarray, np.ndarray]] = field(repr=False)  # class -> (fpr, tpr)
    summary: dict[str, float] = field(default_factory=dict)
    interval: Interval | None = None  # of balanced accuracy
    calibration: Calibration | None = None

    def most_confused(self, k: int = 10) -> list[tuple[str, str, int]]:
        """The k largest off-diagonal cells as (true, predicted, count)."""
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(off, axis=None)[::-1][:k]
        pairs = [np.unravel_index(i, off.shape) for i in order]
        return [(self.classes[t], self.classes[p], int(off[t, p])) for t, p in pairs if off[t, p] > 0]

    def to_json(self) -> dict:
        per_class = {
            c: {"recall": float(self.recall[i]), "precision": float(self.precision[i]), "f1": float(self.f1[i]),
                "auc": None if np.isnan(self.auc[i]) else float(self.auc[i]), "support": int(self.support[i])}
            for i, c in enumerate(self.classes)
        }
        confused = [{"true": t, "predicted": p, "count": n} for t, p, n in self.most_confused()]
        interval = {"balanced_accuracy_interval": self.interval.to_json()} if self.interval else {}
        calibrated = {"calibration": self.calibration.to_json()} if self.calibration else {}
        return {**self.summary, **interval, **calibrated, "per_class": per_class, "most_confused": confused,
                "confusion_matrix": self.confusion.tolist()}


def interval_text(interval: dict, signed: bool = False) -> str:
    """An ``Interval.to_json()`` as text: "95% CI 0.9241 to 0.9467" (with signs for a difference)."""
    form = "+.4f" if signed else ".4f"
    return f"{interval['level']:.0%} CI {interval['low']:{form}} to {interval['high']:{form}}"


def headline(scores: dict) -> str:
    """One line of a report's ``to_json()``: balanced accuracy with its interval, then the others."""
    interval, shown = scores.get("balanced_accuracy_interval"), ""
    if interval:
        over = counted(interval["groups"], interval["resampled"].removesuffix("s"), interval["resampled"])
        shown = f" ({interval_text(interval)}, over {over})"
    return (f"balanced accuracy {scores['balanced_accuracy']:.4f}{shown}, accuracy {scores['accuracy']:.4f}, "
            f"macro F1 {scores['macro_f1']:.4f}, macro AUC {auc_text(scores['macro_auc'])}")


def auc_text(macro_auc: float) -> str:
    """Macro AUC as shown: undefined where every image is of one letter, as a letter's one-vs-rest AUC
    needs images of other letters too."""
    return f"{macro_auc:.4f}" if np.isfinite(macro_auc) else "n/a (one letter only)"


def confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, limit: int) -> np.ndarray:
    """Indices of up to ``limit`` misread letters, those whose label the model believes least first.

    The top of this list is where wrong labels in the data show up, so it is what a label
    audit reads first; the rest are the letters the model finds hardest."""
    probs_np, labels_np = probs.float().cpu().numpy(), labels.cpu().numpy()
    wrong = np.flatnonzero(probs_np.argmax(1) != labels_np)
    belief = probs_np[wrong, labels_np[wrong]]
    return wrong[np.argsort(belief, kind="stable")][:limit]


def class_report(probs: torch.Tensor, labels: torch.Tensor, classes: list[str],
                 writers: np.ndarray | None = None, accept_at: tuple[float, ...] = ACCEPT_AT) -> ClassReport:
    """Per-class scores, AUC, a bootstrap interval of balanced accuracy over ``writers`` where given,
    and calibration, with what accepting at each of ``accept_at`` gives."""
    from sklearn.metrics import roc_auc_score, roc_curve

    probs_np = probs.float().cpu().numpy()
    labels_np = labels.cpu().numpy()
    n = len(classes)
    cm_t = confusion_matrix(labels.cpu(), probs.argmax(1).cpu(), n)
    cm = cm_t.numpy()
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros(n), where=(support + predicted) > 0)
    auc = np.full(n, np.nan)
    roc = {}
    for c in range(n):
        positive = labels_np == c
        if positive.any() and not positive.all():
            auc[c] = roc_auc_score(positive, probs_np[:, c])
            fpr, tpr, _ = roc_curve(positive, probs_np[:, c])
            roc[c] = (fpr, tpr)
    summary = summary_from_confusion(cm_t)
    summary["macro_auc"] = float(np.nanmean(auc)) if roc else float("nan")
    interval = balanced_accuracy_interval(labels_np, probs_np.argmax(1), n, writers)
    calibrated = calibration(probs_np, labels_np, thresholds=accept_at)
    summary["ece"] = calibrated.ece
    return ClassReport(list(classes), cm, recall, precision, f1, support, auc, roc, summary, interval, calibrated)
