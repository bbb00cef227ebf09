"""TensorBoard logging plus the same figures as PNG files and ``metrics.json`` in the run directory."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from alphabet.metrics import ClassReport, confident_mistakes
from alphabet.rundir import replaced_whole

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from alphabet.data.letterset import LetterSet


def flatten(tree: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, default=float, allow_nan=True) + "\n"
    with replaced_whole(path) as tmp:
        tmp.write_text(text)


def write_mistakes(path: Path, data: LetterSet, probs: torch.Tensor, source: str) -> int:
    """Every misread letter of ``data`` as a CSV row, the label believed least first (where wrong labels
    in the data show up): where it came from, its writer, the true and the read letter and both
    probabilities. Returns how many rows."""
    order = confident_mistakes(probs, torch.from_numpy(data.labels), len(data))
    predicted = probs.argmax(1).numpy()
    with replaced_whole(path) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["origin", "writer", "true", "predicted", "p_true", "p_predicted"])
        for i in order:
            true, read = int(data.labels[i]), int(predicted[i])
            out.writerow([origin_of(data, i, source), "" if data.writers is None else data.writers[i],
                          data.classes[true], data.classes[read], f"{probs[i, true]:.4f}", f"{probs[i, read]:.4f}"])
    return len(order)


def origin_of(data: LetterSet, i: int, source: str) -> str:
    """Where letter ``i`` of ``data`` can be found again: its file, its row in an archive, or else
    its place among the letters of ``data``."""
    if data.origins is None:
        return f"{source} #{i}"
    if data.origins.dtype.kind in "iu":
        return f"{source} row {data.origins[i]}"
    return str(data.origins[i])


def mistakes_figure(images: np.ndarray, labels: torch.Tensor, probs: torch.Tensor, classes: list[str], title: str,
                    limit: int = 48) -> Figure:
    """A grid of the first ``limit`` misread letters, the label believed least first, each captioned
    label→read and the label's probability."""
    from alphabet.figures import image_grid_figure  # matplotlib, 0.7 s: only where figures are drawn

    wrong = confident_mistakes(probs, labels, limit)
    predicted = probs.argmax(1)
    captions = [f"{classes[labels[i]]}→{classes[predicted[i]]} {probs[i, labels[i]]:.2f}" for i in wrong]
    return image_grid_figure(images[wrong], captions, title)


class RunReporter:
    """Writes one run's TensorBoard events and figure files. matplotlib is imported with the first
    figure (0.7 s on 2 cores): a search's trials log scalars alone, and each trial's process imports anew."""

    def __init__(self, run_dir: str | Path, purge_step: int | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.figure_dir = self.run_dir / "figures"  # made with its first figure
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # purge_step drops events a killed run wrote after its last checkpoint.
        self.writer = SummaryWriter(str(self.run_dir), purge_step=purge_step)

    def scalars(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def _figure(self, tag: str, fig: Figure, step: int, png: str) -> None:
        from alphabet.figures import render

        # Render once, then use the pixels for both the PNG file and TensorBoard.
        pixels = render(fig)
        self.figure_dir.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(self.figure_dir / f"{png}.png")
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def evaluation(self, split: str, report: ClassReport, probs: torch.Tensor, labels: torch.Tensor,
                   images: np.ndarray, step: int, figures: bool = True) -> None:
        """Confusion matrix, per-class bars, ROC, calibration, PR curves, misclassified grid, confused pairs;
        without ``figures``, the PR curves, AUCs and confused pairs alone."""
        if figures:
            self._figures(split, report, probs, labels, images, step)
        for c, name in enumerate(report.classes):
            if report.support[c]:
                self.writer.add_pr_curve(f"{split}_pr/{name}", labels == c, probs[:, c], step)
        for c, name in enumerate(report.classes):
            self.writer.add_scalar(f"{split}_auc/{name}", float(np.nan_to_num(report.auc[c])), step)
        pairs = report.most_confused(10)
        text = "\n".join(f"| {t} → {p} | {n} |" for t, p, n in pairs) or "| none | 0 |"
        self.writer.add_text(f"{split}/most_confused", "| true → predicted | count |\n|---|---|\n" + text, step)
        self.scalars(split, {"macro_auc": report.summary["macro_auc"]}, step)

    def _figures(self, split: str, report: ClassReport, probs: torch.Tensor, labels: torch.Tensor,
                 images: np.ndarray, step: int) -> None:
        from alphabet.figures import calibration_figure, confusion_figure, per_class_figure, roc_figure

        title = f"{split}, epoch {step}: "
        self._figure(f"{split}/confusion_matrix", confusion_figure(report, title), step, f"{split}_confusion_matrix")
        self._figure(f"{split}/per_class_scores", per_class_figure(report, title), step, f"{split}_per_class")
        self._figure(f"{split}/roc", roc_figure(report, title), step, f"{split}_roc")
        if report.calibration is not None:
            self._figure(f"{split}/calibration", calibration_figure(report.calibration, title), step,
                         f"{split}_calibration")
        grid = mistakes_figure(images, labels, probs, report.classes, f"{title}misclassified, the label believed "
                               "least first (true→predicted, its probability)")
        self._figure(f"{split}/misclassified", grid, step, f"{split}_misclassified")

    def augmented_batch(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str], step: int) -> None:
        """Training images as the model sees them, after augmentation."""
        from alphabet.figures import image_grid_figure

        pixels = (images[:48, 0].float().clamp(0, 1) * 255).byte().cpu().numpy()
        captions = [classes[i] for i in labels[:48].tolist()]
        fig = image_grid_figure(pixels, captions, f"training batch after augmentation, epoch {step}")
        self._figure("train/augmented_batch", fig, step, "train_augmented_batch")

    def hparams(self, params: dict, metrics: dict[str, float | None]) -> None:
        """One HParams entry: the run's settings against metric tags.

        Values given here are logged as scalars; a None value means the tag is
        logged elsewhere (e.g. every epoch) and the latest value is shown.
        """
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()}
        for item in hparams_summary(clean, dict.fromkeys(metrics, 0.0)):
            self.writer.file_writer.add_summary(item)
        for tag, value in metrics.items():
            if value is not None and not math.isnan(value):
                self.writer.add_scalar(tag, value, 0)

    def close(self) -> None:
        self.writer.close()
