"""Matplotlib figures of an evaluation. Each function returns a Figure; callers save or log it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files and TensorBoard images; never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from alphabet.metrics import Calibration, ClassReport, auc_text  # noqa: E402


def render(fig: Figure, dpi: int = 110) -> np.ndarray:
    """The figure as an RGB array (H, W, 3); the figure is closed."""
    fig.set_dpi(dpi)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def confusion_figure(report: ClassReport, title: str = "") -> Figure:
    cm = report.confusion
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(report.classes)
    fig, ax = plt.subplots(figsize=(0.32 * n + 3, 0.32 * n + 2.5))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), report.classes)
    ax.set_yticks(range(n), report.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for t in range(n):
            for p in range(n):
                if cm[t, p]:
                    ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=6,
                            color="white" if rows[t, p] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of true class")
    ax.set_title(f"{title}confusion matrix (balanced acc {report.summary['balanced_accuracy']:.4f})")
    fig.tight_layout()
    return fig


def per_class_figure(report: ClassReport, title: str = "") -> Figure:
    n = len(report.classes)
    x = np.arange(n)
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * n + 2), 3.5))
    for i, (name, values) in enumerate((("recall", report.recall), ("precision", report.precision),
                                        ("F1", report.f1))):
        ax.bar(x + (i - 1) * 0.27, values, width=0.27, label=name)
    ax.set_xticks(x, report.classes)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", ncols=3)
    ax.set_title(f"{title}per-class recall, precision and F1 (macro F1 {report.summary['macro_f1']:.4f})")
    fig.tight_layout()
    return fig


def roc_figure(report: ClassReport, title: str = "") -> Figure:
    fig, ax = plt.subplots(figsize=(6, 5.5))
    cmap = plt.get_cmap("tab20")
    for i, (c, (fpr, tpr)) in enumerate(report.roc.items()):
        ax.plot(fpr, tpr, lw=1, color=cmap(i % 20), label=f"{report.classes[c]} {report.auc[c]:.3f}")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}one-vs-rest ROC, macro AUC {auc_text(report.summary['macro_auc'])}")
    if report.roc:  # none where no letter has both its own and others among these (a split of a few letters)
        ax.legend(fontsize=6, ncols=2, loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(calibration: Calibration, title: str = "") -> Figure:
    """Left: accuracy against top probability per bin (a calibrated model's bars meet the diagonal).
    Right: the accuracy of the letters kept when only the surest are accepted, against their share."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    edges, filled = calibration.edges, calibration.count > 0
    width = np.diff(edges)
    left.bar(edges[:-1][filled], calibration.accuracy[filled], width=width[filled], align="edge",
             edgecolor="black", lw=0.5, label="share read right")
    left.plot(calibration.confidence[filled], calibration.confidence[filled], "o", color="tab:red", ms=3,
              label="mean top probability")
    left.plot([0, 1], [0, 1], "k--", lw=0.8)
    for low, w, n, a in zip(edges[:-1][filled], width[filled], calibration.count[filled],
                            calibration.accuracy[filled], strict=True):
        left.text(low + w / 2, min(a, 0.93) + 0.02, str(n), ha="center", fontsize=6)
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.05)
    left.set_xlabel("top probability (bins; the number of letters above each)")
    left.set_ylabel("share read right")
    left.legend(loc="upper left", fontsize=8)
    left.set_title(f"{title}calibration, ECE {calibration.ece:.4f}")
    share, accuracy = calibration.curve
    right.plot(share, accuracy, lw=1.2)
    for at in calibration.accepted:
        if at["accuracy"] is not None and at["share"] > 0:
            right.plot(at["share"], at["accuracy"], "o", color="tab:red", ms=4)
            right.annotate(f"p >= {at['threshold']:g}", (at["share"], at["accuracy"]), fontsize=7,
                           xytext=(4, -10), textcoords="offset points")
    right.set_xlim(0, 1.02)
    right.set_xlabel("share of letters accepted, surest first")
    right.set_ylabel("accuracy of the accepted letters")
    right.set_title("accepting only the surest letters")
    fig.tight_layout()
    return fig


def image_grid_figure(images: np.ndarray, captions: list[str], title: str, columns: int = 12) -> Figure:
    """A grid of 28x28 images with a caption above each, drawn as one mosaic (fast)."""
    n = len(images)
    rows = max(1, (n + columns - 1) // columns)
    cell = 36  # 28 px image plus room for its caption
    mosaic = np.zeros((rows * cell, columns * 28 + (columns - 1) * 2), np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        mosaic[r * cell + 8: r * cell + 36, c * 30: c * 30 + 28] = images[i]
    fig, ax = plt.subplots(figsize=(columns * 0.75, rows * 0.95 + 0.5))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255)
    for i, caption in enumerate(captions[:n]):
        r, c = divmod(i, columns)
        ax.text(c * 30 + 14, r * cell + 3, caption, color="yellow", fontsize=7, ha="center", va="center")
    ax.axis("off")
    ax.set_title(title if n else title + ": none")
    fig.tight_layout()
    return fig
