"""Classification metrics from predicted probabilities.

``summary_metrics`` is cheap enough for every epoch; ``ClassReport`` adds
per-class scores, one-vs-rest ROC AUC on the softmax probabilities and the most
confused pairs. Definitions follow scikit-learn: balanced accuracy averages
recall over the classes present in the labels; macro F1 averages over the
classes present in labels or predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


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
        return {**self.summary, "per_class": per_class, "most_confused": confused,
                "confusion_matrix": self.confusion.tolist()}


def class_report(probs: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> ClassReport:
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
    return ClassReport(list(classes), cm, recall, precision, f1, support, auc, roc, summary)
