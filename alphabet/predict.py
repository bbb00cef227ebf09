"""Predict letters from image files with a trained checkpoint or an ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alphabet.data.emnist_style import IMAGE_SUFFIXES, is_blank, load_letter_image
from alphabet.engine import pick_device
from alphabet.ensemble import load_classifier
from alphabet.errors import UserError


def image_paths(paths: list[str | Path]) -> list[Path]:
    """The files named, with each directory replaced by the image files in it (sorted, not recursive)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not inside:
            raise UserError(f"{path}: directory holds no image files; expected "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))} files")
        found.extend(inside)
    return found


def predict_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False
                  ) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image file (a directory stands for its images), the ``top_k`` letters with their
    probabilities (``tta``: averaged over the test-time views). A blank image gets an empty list."""
    paths = image_paths(images)
    # Read every image first, so a bad file fails before any model work.
    pixels = np.stack([load_letter_image(p) for p in paths])
    inked = [i for i, image in enumerate(pixels) if not is_blank(image)]
    results: list[tuple[str, list[tuple[str, float]]]] = [(str(p), []) for p in paths]
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # checked even if all are blank
    if not inked:
        return results
    classes = classifier.classes
    probs = classifier.predict_probs(torch.from_numpy(pixels[inked]))
    top = probs.topk(min(top_k, len(classes)), dim=1)
    for i, values, index in zip(inked, top.values.tolist(), top.indices.tolist(), strict=True):
        results[i] = (str(paths[i]), [(classes[c], p) for p, c in zip(values, index, strict=True)])
    return results
