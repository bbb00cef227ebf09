"""Predict letters from image files with a trained checkpoint or an ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alphabet.data.emnist_style import load_letter_image
from alphabet.engine import pick_device
from alphabet.ensemble import load_classifier


def predict_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False
                  ) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image file, the ``top_k`` letters with their probabilities (``tta``: averaged
    over the test-time views)."""
    # Read every image first, so a bad file fails before any model work.
    pixels = np.stack([load_letter_image(p) for p in images])
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)
    classes = classifier.classes
    probs = classifier.predict_probs(torch.from_numpy(pixels))
    k = min(top_k, len(classes))
    top = probs.topk(k, dim=1)
    return [(str(path), [(classes[i], float(p)) for p, i in zip(values.tolist(), index.tolist(), strict=False)])
            for path, values, index in zip(images, top.values, top.indices, strict=False)]
