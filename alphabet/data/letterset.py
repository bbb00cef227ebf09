"""The in-memory dataset every source yields: 28x28 uint8 upright white-on-black images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LetterSet:
    images: np.ndarray  # (N, 28, 28) uint8, white strokes on black, upright
    labels: np.ndarray  # (N,) int64 in 0..len(classes)-1
    classes: list[str]  # class names, one character each
    writers: np.ndarray | None = None  # (N,) writer ids where the source has them
    origins: np.ndarray | None = None  # (N,) where each letter came from, for reports: its file or archive row

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> LetterSet:
        writers = None if self.writers is None else self.writers[index]
        origins = None if self.origins is None else self.origins[index]
        return LetterSet(self.images[index], self.labels[index], list(self.classes), writers, origins)

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    def relabel(self, classes: list[str], mapping: dict[str, str] | None = None) -> LetterSet:
        """Express labels in another class list, dropping samples whose class it lacks.

        ``mapping`` renames this set's classes first (e.g. ``{"A": "a"}`` to merge cases).
        """
        mapping = mapping or {}
        position = {name: i for i, name in enumerate(classes)}
        lookup = np.array([position.get(mapping.get(c, c), -1) for c in self.classes], dtype=np.int64)
        new = lookup[self.labels] if len(self.labels) else self.labels
        keep = np.flatnonzero(new >= 0)
        out = self.subset(keep)
        out.labels = new[keep]
        out.classes = list(classes)
        return out


def concat(a: LetterSet, b: LetterSet) -> LetterSet:
    """Join two sets with the same classes (used to retrain on train plus validation)."""
    if a.classes != b.classes:
        raise ValueError("cannot join sets with different classes")
    writers = None
    if a.writers is not None and b.writers is not None:
        writers = np.concatenate([a.writers, b.writers])
    origins = None
    if a.origins is not None and b.origins is not None:
        origins = np.concatenate([a.origins, b.origins])
    return LetterSet(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]),
                     list(a.classes), writers, origins)
