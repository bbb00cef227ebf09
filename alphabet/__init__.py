"""alphabet: handwritten English-letter recognition. This package never imports Ray."""

__version__ = "0.1.0"
