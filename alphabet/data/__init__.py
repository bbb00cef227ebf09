"""Data sources and splits. Everything is in memory as 28x28 uint8 arrays."""

from alphabet.data.letterset import LetterSet
from alphabet.data.splits import Splits, load_splits

__all__ = ["LetterSet", "Splits", "load_splits"]
