"""``alphabet data info|preview``: what a data config yields, before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alphabet.data.splits import Splits
from alphabet.figures import image_grid_figure, render


def info_table(splits: Splits) -> str:
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    counts = {name: (part.counts() if part is not None else np.zeros(len(splits.classes), int))
              for name, part in parts.items()}
    lines = [f"{'class':>5} {'train':>7} {'val':>7} {'test':>7}"]
    for i, c in enumerate(splits.classes):
        lines.append(f"{c:>5} " + " ".join(f"{counts[n][i]:>7}" for n in parts))
    lines.append(f"{'total':>5} " + " ".join(f"{counts[n].sum():>7}" for n in parts))
    writers = splits.train.writers
    if writers is not None:
        held = {n: len(np.unique(p.writers)) for n, p in parts.items() if p is not None and p.writers is not None}
        lines.append("writers: " + ", ".join(f"{n} {k}" for n, k in held.items()) + " (disjoint)")
    if splits.auxiliary is not None:
        aux = splits.auxiliary
        lines.append(f"auxiliary (training only, never scored): {len(aux)} images of {len(aux.classes)} classes "
                     f"{''.join(aux.classes)}")
    return "\n".join(lines)


def preview_png(splits: Splits, path: Path, per_class: int = 8) -> Path:
    """A grid with ``per_class`` training images of every class, one class per row."""
    train = splits.train
    rng = np.random.default_rng(0)
    images, captions = [], []
    for c, name in enumerate(train.classes):
        idx = np.flatnonzero(train.labels == c)
        for i in rng.permutation(idx)[:per_class]:
            images.append(train.images[i])
            captions.append(name)
    from PIL import Image

    pixels = render(image_grid_figure(np.array(images), captions, "training images", columns=per_class))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path
