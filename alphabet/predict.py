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
from alphabet.lexicon import Lexicon, read_lexicon


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


def _letter_probs(classifier: Classifier, pixels: np.ndarray) -> list[np.ndarray | None]:
    """For each framed (28, 28) image, its probabilities over ``classifier.classes``; None if it is blank."""
    results: list[np.ndarray | None] = [None for _ in pixels]
    inked = [i for i, image in enumerate(pixels) if not is_blank(image)]
    if inked:
        probs = classifier.predict_probs(torch.from_numpy(pixels[inked])).numpy()
        for i, row in zip(inked, probs, strict=True):
            results[i] = row
    return results


def _top(classes: list[str], probs: np.ndarray | None, top_k: int) -> list[tuple[str, float]]:
    if probs is None:
        return []
    best = np.argsort(-probs, kind="stable")[:top_k]
    return [(classes[c], float(probs[c])) for c in best]


def top_letters(classifier: Classifier, pixels: np.ndarray, top_k: int = 3) -> list[list[tuple[str, float]]]:
    """For each framed (28, 28) image, the ``top_k`` letters with their probabilities; [] if it is blank."""
    return [_top(classifier.classes, probs, top_k) for probs in _letter_probs(classifier, pixels)]


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


# A word's readings in a word list (``--lexicon``): its likeliest words there with their probabilities
# among the list's words of its length, surest first; [] when the list has no word of that length.
WordChoices = list[tuple[str, float]]


def _read_words_in(classifier: Classifier, lexicon: Lexicon | None, words: list[list[Letter]], top_k: int
                   ) -> tuple[list[list[WordLetter]], list[WordChoices] | None]:
    """``_read_words``, and with a lexicon each word's choices in it (ranked on all of every letter's
    probabilities, then shown with the top-k letters)."""
    if lexicon is None:
        return _read_words(classifier, words, top_k), None
    read = _read_words(classifier, words, len(classifier.classes))
    choices = [lexicon.rank_letters(letters, top_k) if letters else [] for letters in read]
    return [[(box, top[:top_k]) for box, top in letters] for letters in read], choices


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


def predict_word_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False,
                       lexicon: str | Path | None = None
                       ) -> list[tuple[str, list[WordLetter], WordChoices | None]]:
    """``predict_words`` for image files (a directory stands for its images), each with its choices in
    the word list ``lexicon`` (None without one)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    words_list = None if lexicon is None else read_lexicon(lexicon, classifier.classes)
    paths = image_paths(images)
    words = [_split_named(str(p), np.asarray(read_image(p))) for p in paths]
    read, choices = _read_words_in(classifier, words_list, words, top_k)
    return list(zip(map(str, paths), read, choices or [None] * len(read), strict=True))


# A line of text: its words left to right, each its letters as ``WordLetter``s.
TextLine = list[list[WordLetter]]


# A text's choices in a word list: each line's, each word's ``WordChoices``.
TextChoices = list[list[WordChoices]]


def _read_lines(classifier: Classifier, lexicon: Lexicon | None, images_rows: list[list[list[Letter]]], top_k: int
                ) -> tuple[list[list[TextLine]], list[TextChoices] | None]:
    """Each image's rows read as ``_read_words`` reads a word (all rows in one batch), then parted into
    words where the letters stand far apart (``segment.word_starts``); with a lexicon, each word's
    choices in it, as ``_read_words_in`` gives them."""
    read = iter(_read_words(classifier, [row for rows in images_rows for row in rows],
                            top_k if lexicon is None else len(classifier.classes)))
    texts = []
    for rows in images_rows:
        lines = [next(read) for _ in rows]
        starts = word_starts([[box for box, _ in letters] for letters in lines])
        texts.append([[letters[a:b] for a, b in zip(first, [*first[1:], len(letters)], strict=True)]
                      for letters, first in zip(lines, starts, strict=True)])
    if lexicon is None:
        return texts, None
    choices = [[[lexicon.rank_letters(word, top_k) for word in line] for line in lines] for lines in texts]
    shown = [[[[(box, top[:top_k]) for box, top in word] for word in line] for line in lines] for lines in texts]
    return shown, choices


def word_of(word: list[WordLetter], choices: WordChoices | None = None) -> str:
    """A word as read: its likeliest word in the lexicon where it has one, else its top letters."""
    return choices[0][0] if choices else "".join(top[0][0] for _, top in word)


def text_of(lines: list[TextLine], choices: TextChoices | None = None) -> str:
    """The words read (``word_of``) as text: words parted by a space, lines by a newline."""
    return "\n".join(" ".join(word_of(word, choices[n][w] if choices else None) for w, word in enumerate(line))
                     for n, line in enumerate(lines))


def predict_text(classifier: Classifier, images: list[np.ndarray | Image.Image], top_k: int = 3
                 ) -> list[list[TextLine]]:
    """For each image of rows of separate letters (a note printed by hand), its lines top to bottom, each
    its words left to right, each word its letters' boxes and ``top_k`` letters. A blank image gives []."""
    return _read_lines(classifier, None, [split_rows(_grey(image)) for image in images], top_k)[0]


def predict_text_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False,
                       lexicon: str | Path | None = None
                       ) -> list[tuple[str, list[TextLine], TextChoices | None]]:
    """``predict_text`` for image files (a directory stands for its images), each with its words' choices
    in the word list ``lexicon`` (None without one)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    words_list = None if lexicon is None else read_lexicon(lexicon, classifier.classes)
    paths = image_paths(images)
    rows = [split_rows(np.asarray(read_image(p))) for p in paths]
    texts, choices = _read_lines(classifier, words_list, rows, top_k)
    return list(zip(map(str, paths), texts, choices or [None] * len(texts), strict=True))
