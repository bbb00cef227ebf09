"""Predict letters from image files, or from images in memory, with a trained checkpoint or an ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alphabet.data.emnist_style import (
    IMAGE_SUFFIXES,
    greyscale,
    is_blank,
    load_letter_image,
    read_image,
    to_emnist_style,
)
from alphabet.data.segment import Letter, split_letters, split_rows, word_starts
from alphabet.data.sources import is_letter_folder
from alphabet.engine import pick_device
from alphabet.ensemble import Classifier, load_classifier
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
            labelled = any(is_letter_folder(d) for d in path.iterdir())
            hint = (f" (its letters' folders are a labelled set: `alphabet evaluate CHECKPOINT --data "
                    f"folder:{path} --split all` scores them)" if labelled else "")
            raise UserError(f"{path}: directory holds no image files; expected "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))} files{hint}")
        found.extend(inside)
    return found


def _grey(image: np.ndarray | Image.Image) -> np.ndarray:
    """A PIL image or an array (greyscale, or RGB/RGBA in the last axis) as a greyscale array."""
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise UserError(f"image: expected a uint8 array (H, W) or (H, W, 3|4), got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    return np.asarray(greyscale(image))


def frame(image: np.ndarray | Image.Image) -> np.ndarray:
    """One letter as a PIL image or an array (greyscale, or RGB/RGBA in the last axis), EMNIST-style."""
    return to_emnist_style(_grey(image))


def top_letters(classifier: Classifier, pixels: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """For each framed (28, 28) image, the ``top_k`` letters with their probabilities; [] if it is blank."""
    results: list[list[tuple[str, float]]] = [[] for _ in pixels]
    inked = [i for i, image in enumerate(pixels) if not is_blank(image)]
    if not inked:
        return results
    probs = classifier.predict_probs(torch.from_numpy(pixels[inked]))
    top = probs.topk(min(top_k, len(classifier.classes)), dim=1)
    for i, values, index in zip(inked, top.values.tolist(), top.indices.tolist(), strict=True):
        results[i] = [(classifier.classes[c], p) for p, c in zip(values, index, strict=True)]
    return results


def predict_images(classifier: Classifier, images: list[np.ndarray | Image.Image], top_k: int = 3
                   ) -> list[list[tuple[str, float]]]:
    """Letters for images already in memory (crops from an OCR pipeline, say), framed as files are."""
    return top_letters(classifier, np.stack([frame(image) for image in images]), top_k)


def predict_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False
                  ) -> list[tuple[str, list[tuple[str, float]]]]:
    """For each image file (a directory stands for its images), the ``top_k`` letters with their
    probabilities (``tta``: averaged over the test-time views). A blank image gets an empty list."""
    # The model first: it loads in a second, while reading a folder of photos can take minutes, and a
    # mistyped checkpoint should not wait for that.
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)
    paths = image_paths(images)
    pixels = np.stack([load_letter_image(p) for p in paths])
    return list(zip(map(str, paths), top_letters(classifier, pixels, top_k), strict=True))


# One letter of a word: its box in the image (left, top, right, bottom) and its top-k letters.
WordLetter = tuple[tuple[int, int, int, int], list[tuple[str, float]]]


def _read_words(classifier: Classifier, words: list[list[Letter]], top_k: int) -> list[list[WordLetter]]:
    """Each word's letters with their top-k. A wide piece of ink is read as two touching letters where,
    at its best cut, the classifier is surer of both halves (the product of their top probabilities)
    than of the whole."""
    pieces = [piece for word in words for letter in word
              for piece in (letter, *(half for cut in letter.cuts for half in cut))]
    if not pieces:
        return [[] for _ in words]
    tops = iter(top_letters(classifier, np.stack([piece.pixels for piece in pieces]), top_k))
    read = []
    for word in words:
        letters: list[WordLetter] = []
        for letter in word:
            whole = next(tops)
            best, sureness = [(letter.box, whole)], whole[0][1]
            for (left, right) in letter.cuts:
                left_top, right_top = next(tops), next(tops)
                if left_top[0][1] * right_top[0][1] > sureness:
                    best = [(left.box, left_top), (right.box, right_top)]
                    sureness = left_top[0][1] * right_top[0][1]
            letters.extend(best)
        read.append(letters)
    return read


def _split_named(name: str, grey: np.ndarray) -> list[Letter]:
    try:
        return split_letters(grey)
    except UserError as e:
        raise UserError(f"{name}: {e}") from None


def predict_words(classifier: Classifier, images: list[np.ndarray | Image.Image], top_k: int = 3
                  ) -> list[list[WordLetter]]:
    """For each image of a word written in separate letters, its letters left to right: each one's box
    and ``top_k`` letters. A blank image gives an empty list."""
    return _read_words(classifier, [_split_named(f"image {i}", _grey(image)) for i, image in enumerate(images)], top_k)


def predict_word_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False
                       ) -> list[tuple[str, list[WordLetter]]]:
    """``predict_words`` for image files (a directory stands for its images)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    paths = image_paths(images)
    words = [_split_named(str(p), np.asarray(read_image(p))) for p in paths]
    return list(zip(map(str, paths), _read_words(classifier, words, top_k), strict=True))


# A line of text: its words left to right, each its letters as ``WordLetter``s.
TextLine = list[list[WordLetter]]


def _read_lines(classifier: Classifier, images_rows: list[list[list[Letter]]], top_k: int) -> list[list[TextLine]]:
    """Each image's rows read as ``_read_words`` reads a word (all rows in one batch), then parted into
    words where the letters stand far apart (``segment.word_starts``)."""
    read = iter(_read_words(classifier, [row for rows in images_rows for row in rows], top_k))
    texts = []
    for rows in images_rows:
        lines = [next(read) for _ in rows]
        starts = word_starts([[box for box, _ in letters] for letters in lines])
        texts.append([[letters[a:b] for a, b in zip(first, [*first[1:], len(letters)], strict=True)]
                      for letters, first in zip(lines, starts, strict=True)])
    return texts


def text_of(lines: list[TextLine]) -> str:
    """The top letters as text: words parted by a space, lines by a newline."""
    return "\n".join(" ".join("".join(top[0][0] for _, top in word) for word in line) for line in lines)


def predict_text(classifier: Classifier, images: list[np.ndarray | Image.Image], top_k: int = 3
                 ) -> list[list[TextLine]]:
    """For each image of rows of separate letters (a note printed by hand), its lines top to bottom, each
    its words left to right, each word its letters' boxes and ``top_k`` letters. A blank image gives []."""
    return _read_lines(classifier, [split_rows(_grey(image)) for image in images], top_k)


def predict_text_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False
                       ) -> list[tuple[str, list[TextLine]]]:
    """``predict_text`` for image files (a directory stands for its images)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    paths = image_paths(images)
    rows = [split_rows(np.asarray(read_image(p))) for p in paths]
    return list(zip(map(str, paths), _read_lines(classifier, rows, top_k), strict=True))
