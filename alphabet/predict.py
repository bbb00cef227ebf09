"""Predict letters from image files, or from images in memory, with a trained checkpoint or an ensemble."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alphabet.data.emnist_style import (
    IMAGE_SUFFIXES,
    greyscale,
    is_blank,
    load_letter_images,
    read_image,
    to_emnist_style,
)
from alphabet.data.segment import (
    CLOSE_SPACE,
    LONG_STRETCH,
    MAYBE_SPACE,
    SPACE_EVEN,
    SPACE_SLOPE,
    Letter,
    letter_gaps,
    spaced_starts,
    split_letters,
    split_rows,
    word_starts,
)
from alphabet.data.sources import is_letter_folder
from alphabet.engine import pick_device
from alphabet.ensemble import Classifier, load_classifier
from alphabet.errors import UserError
from alphabet.lexicon import Lexicon, read_lexicon
from alphabet.processes import map_over_processes

# Files a system leaves in folders of scans; nobody means them as letters.
SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini"})


def image_paths(paths: list[str | Path]) -> list[Path]:
    """The files named, with each directory replaced by the image files in it (sorted, not recursive).
    What else a directory holds is said on stderr: a scan saved as PDF, silently unread, would be missed."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        entries = list(path.iterdir())
        inside = sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        read = set(inside)  # a folder may hold many thousand scans
        others = sorted(p for p in entries if p not in read and not p.name.startswith(".")
                        and p.name.lower() not in SYSTEM_FILES)
        if inside and others:
            shown = ", ".join(p.name + "/" * p.is_dir() for p in others[:3]) + (", ..." if len(others) > 3 else "")
            count = f"{len(others)} {'entry' if len(others) == 1 else 'entries'}"
            print(f"alphabet: warning: {path}: {count} not read ({shown}): only the image files directly in a "
                  "folder are read", file=sys.stderr, flush=True)
        if not inside:
            labelled = any(is_letter_folder(d) for d in entries)
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
    pixels = np.stack(load_letter_images(paths))
    return list(zip(map(str, paths), top_letters(classifier, pixels, top_k), strict=True))


# One letter of a word: its box in the image (left, top, right, bottom) and its top-k letters.
WordLetter = tuple[tuple[int, int, int, int], list[tuple[str, float]]]
# A word's readings in a word list (``--lexicon``): its likeliest words there with their probabilities,
# surest first; [] when the list has no word of as many letters as any reading of it.
WordChoices = list[tuple[str, float]]
# A letter before it is shown: the piece of ink read, and its probabilities over the classes (None: blank).
_Read = tuple[Letter, np.ndarray | None]
# The ways one piece of ink can be read: whole, as one letter, then cut in two at each of its cuts.
_PieceReadings = list[list[_Read]]

# A word whose touching letters could be cut in more ways than this is read in a word list only as the
# classifier cuts it (three wide pieces of five readings each are 125).
MAX_READINGS = 128


def _piece_readings(classifier: Classifier, words: list[list[Letter]]) -> list[list[_PieceReadings]]:
    """Each word's pieces of ink, each with its readings: whole, then cut in two at each of its cuts."""
    pieces = [piece for word in words for letter in word
              for piece in (letter, *(half for cut in letter.cuts for half in cut))]
    probs = iter(_letter_probs(classifier, np.stack([piece.pixels for piece in pieces])) if pieces else [])
    return [[[[(letter, next(probs))],
              *([(left, next(probs)), (right, next(probs))] for left, right in letter.cuts)]
             for letter in word] for word in words]


def _sureness(reading: list[_Read]) -> float:
    return float(np.prod([0.0 if probs is None else probs.max() for _, probs in reading]))


def _classifier_reading(pieces: list[_PieceReadings]) -> list[_Read]:
    """A word's letters as the classifier cuts them: a wide piece of ink is read as two touching letters
    where, at its best cut, the classifier is surer of both halves (the product of their top
    probabilities) than of the whole."""
    return [read for readings in pieces for read in max(readings, key=_sureness)]


def _readings(pieces: list[_PieceReadings]) -> list[list[_Read]]:
    """Every way of cutting a word's touching letters (up to ``MAX_READINGS``, else the classifier's cut)."""
    if math.prod(len(r) for r in pieces) > MAX_READINGS:
        return [_classifier_reading(pieces)]
    return [[read for option in cut for read in option] for cut in itertools.product(*pieces)]


def _listed_reading(lexicon: Lexicon, pieces: list[_PieceReadings], top_k: int) -> tuple[list[_Read], WordChoices]:
    """A word's letters as cut where they spell its likeliest word of the list (``_readings``), and its
    choices there; without a listed word of any reading's length, the classifier's cut and []."""
    own = _classifier_reading(pieces)
    if not pieces:
        return own, []
    readings = _readings(pieces)
    best, choices = lexicon.rank_readings([_matrix(reading, len(lexicon.classes)) for reading in readings], top_k)
    return (readings[best] if choices else own), choices


def _matrix(reading: list[_Read], classes: int) -> np.ndarray:
    return np.stack([np.zeros(classes) if probs is None else probs for _, probs in reading])


def _shown(classes: list[str], reading: list[_Read], top_k: int) -> list[WordLetter]:
    return [(letter.box, _top(classes, probs, top_k)) for letter, probs in reading]


def _read_word(classifier: Classifier, lexicon: Lexicon | None, pieces: list[_PieceReadings], top_k: int
               ) -> tuple[list[WordLetter], WordChoices | None]:
    """A word's letters with their top-k, as the classifier cuts them, or with a lexicon as cut where
    they spell the likeliest listed word, with its choices there (None without a lexicon)."""
    if lexicon is None:
        return _shown(classifier.classes, _classifier_reading(pieces), top_k), None
    reading, choices = _listed_reading(lexicon, pieces, top_k)
    return _shown(classifier.classes, reading, top_k), choices


def _split_named(name: str, grey: np.ndarray) -> list[Letter]:
    try:
        return split_letters(grey)
    except UserError as e:
        raise UserError(f"{name}: {e}") from None


def _letters_of_file(path: Path) -> list[Letter]:
    return _split_named(str(path), np.asarray(read_image(path)))


def _rows_of_file(path: Path) -> list[list[Letter]]:
    return split_rows(np.asarray(read_image(path)))


def _split_images(images: list[np.ndarray | Image.Image]) -> list[list[Letter]]:
    return [_split_named(f"image {i}", _grey(image)) for i, image in enumerate(images)]


def predict_words(classifier: Classifier, images: list[np.ndarray | Image.Image], top_k: int = 3
                  ) -> list[list[WordLetter]]:
    """For each image of a word written in separate letters, its letters left to right: each one's box
    and ``top_k`` letters. A blank image gives an empty list."""
    return [_read_word(classifier, None, pieces, top_k)[0]
            for pieces in _piece_readings(classifier, _split_images(images))]


def predict_listed_words(classifier: Classifier, images: list[np.ndarray | Image.Image], lexicon: Lexicon,
                         top_k: int = 3) -> list[tuple[list[WordLetter], WordChoices]]:
    """``predict_words`` in a word list (``alphabet.lexicon.read_lexicon``): for each image, its letters
    as cut where they spell its likeliest listed word, and its ``top_k`` listed words with their
    probabilities ([] when the list has no word of its length)."""
    read = [_read_word(classifier, lexicon, pieces, top_k)
            for pieces in _piece_readings(classifier, _split_images(images))]
    return [(letters, choices or []) for letters, choices in read]


def predict_word_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False,
                       lexicon: str | Path | None = None
                       ) -> list[tuple[str, list[WordLetter], WordChoices | None]]:
    """``predict_words`` for image files (a directory stands for its images), each with its choices in
    the word list ``lexicon`` (None without one), as ``predict_listed_words`` reads them."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    words_list = None if lexicon is None else read_lexicon(lexicon, classifier.classes)
    paths = image_paths(images)
    words = map_over_processes(_letters_of_file, paths)
    return [(str(path), *_read_word(classifier, words_list, pieces, top_k))
            for path, pieces in zip(paths, _piece_readings(classifier, words), strict=True)]


# A line of text: its words left to right, each its letters as ``WordLetter``s.
TextLine = list[list[WordLetter]]
# A text's choices in a word list: each line's, each word's ``WordChoices``.
TextChoices = list[list[WordChoices]]


def _words_of_row(pieces: list[_PieceReadings], starts: list[int]) -> list[list[_PieceReadings]]:
    """A row's pieces of ink parted into words: a piece goes with the word of its first letter as the
    classifier cuts it (``starts``: the index of each word's first letter in that reading). A space
    between the two halves of one piece parts nothing: the piece stays whole, and no word is empty."""
    words: list[list[_PieceReadings]] = [[] for _ in starts]
    letter = 0
    for readings in pieces:
        words[int(np.searchsorted(starts, letter, side="right")) - 1].append(readings)
        letter += len(max(readings, key=_sureness))
    return [word for word in words if word]


def _space_floors(before: list[float], firsts: np.ndarray, close: bool) -> list[float]:
    """For each gap between a row's pieces (``before[k]``: between pieces k and k + 1, which start at
    letters ``firsts[k]`` and ``firsts[k + 1]``), the narrowest gap a word list may take for a space there:
    ``MAYBE_SPACE[0]``, or, where the note's words may be written ``close`` together, ``CLOSE_SPACE``
    inside a stretch of at least ``LONG_STRETCH`` letters that no wider gap parts."""
    low = MAYBE_SPACE[0]
    floors = [low] * len(before)
    if not close:
        return floors
    stretch = 0  # the piece the current stretch starts at
    for end in range(1, len(before) + 2):
        if end > len(before) or before[end - 1] >= low:
            if firsts[end] - firsts[stretch] >= LONG_STRETCH:
                floors[stretch: end - 1] = [CLOSE_SPACE] * (end - 1 - stretch)
            stretch = end
    return floors


def _listed_words_of_row(lexicon: Lexicon, pieces: list[_PieceReadings], gaps: list[float], close: bool
                         ) -> list[list[_PieceReadings]]:
    """A row's pieces of ink parted into words with a word list: always at a gap (``letter_gaps``, between
    the letters as the classifier cuts them) wider than ``MAYBE_SPACE``, never at one narrower (or narrower
    than ``CLOSE_SPACE`` in a long stretch of a ``close`` note: ``_space_floors``), and at those between
    where the words so parted are likeliest in the list together: the sum of their
    ``Lexicon.log_evidence`` and of each such gap's log-probability of being a space or not by its width
    (``SPACE_EVEN``), found by dynamic programming over where words end. Where no parting spells listed
    words throughout, the row is parted as without a list (``spaced_starts``)."""
    firsts = np.cumsum([0] + [len(max(readings, key=_sureness)) for readings in pieces])
    before = [gaps[first - 1] for first in firsts[1:-1]]  # before[k - 1]: the gap before piece k
    floors = _space_floors(before, firsts, close)
    high = MAYBE_SPACE[1]
    decided = [floor <= gap <= high for gap, floor in zip(before, floors, strict=True)]
    odds = [SPACE_SLOPE * (gap - SPACE_EVEN) for gap in before]
    # Log-probabilities of a space, and of none, at each gap the list decides (0 where the gap alone does);
    # joined summed, so that a word's inner gaps add up in one subtraction.
    spaced = [-float(np.logaddexp(0, -o)) if d else 0.0 for o, d in zip(odds, decided, strict=True)]
    unspaced = [-float(np.logaddexp(0, o)) if d else 0.0 for o, d in zip(odds, decided, strict=True)]
    joined = np.cumsum([0.0, *unspaced])
    longest = max(lexicon.words)
    best = [0.0] + [-math.inf] * len(pieces)  # best[j]: the likeliest parting of pieces[:j] into words
    start = [0] * (len(pieces) + 1)
    for end in range(1, len(pieces) + 1):
        if end < len(pieces) and before[end - 1] < floors[end - 1]:
            continue  # too close to the next piece for a word to end here
        for first in range(end - 1, -1, -1):
            if end - first > longest:
                break  # more letters than any listed word, even with every wide piece read whole
            if best[first] > -math.inf and (first == 0 or before[first - 1] >= floors[first - 1]):
                words = [_matrix(r, len(lexicon.classes)) for r in _readings(pieces[first:end])]
                score = (best[first] + lexicon.log_evidence(words) + joined[end - 1] - joined[first]
                         + (spaced[end - 1] if end < len(pieces) else 0.0))
                if score > best[end]:
                    best[end], start[end] = score, first
            if first > 0 and before[first - 1] > high:
                break  # a sure space: no word reaches across it
    if best[-1] == -math.inf:
        return _words_of_row(pieces, spaced_starts(gaps))
    ends = [len(pieces)]
    while ends[-1] > 0:
        ends.append(start[ends[-1]])
    ends.reverse()
    return [pieces[a:b] for a, b in itertools.pairwise(ends)]


def _read_lines(classifier: Classifier, lexicon: Lexicon | None, images_rows: list[list[list[Letter]]], top_k: int
                ) -> tuple[list[list[TextLine]], list[TextChoices] | None]:
    """Each image's rows parted into words where the letters, as the classifier cuts them, stand far
    apart (``segment.word_starts``; all rows read in one batch), or with a lexicon where it decides
    (``_listed_words_of_row``), each word read as ``_read_word`` reads it; with a lexicon, each word's
    choices in it."""
    rows_pieces = iter(_piece_readings(classifier, [row for rows in images_rows for row in rows]))
    texts, texts_choices = [], []
    for rows in images_rows:
        pieces = [next(rows_pieces) for _ in rows]
        # Gaps are measured on the page turned level, where a row's letters stand side by side.
        boxes = [[letter.upright for letter, _ in _classifier_reading(row)] for row in pieces]
        if lexicon is None:
            words = [_words_of_row(row, first) for row, first in zip(pieces, word_starts(boxes), strict=True)]
        else:
            gaps = letter_gaps(boxes)
            # A writer who leaves a sure space somewhere in the note writes words apart: a long stretch
            # of letters there is one long word, and only a note without one may hold words written close.
            close = not any(gap > MAYBE_SPACE[1] for row in gaps for gap in row)
            words = [_listed_words_of_row(lexicon, row, row_gaps, close)
                     for row, row_gaps in zip(pieces, gaps, strict=True)]
        read = [[_read_word(classifier, lexicon, word, top_k) for word in row_words] for row_words in words]
        texts.append([[letters for letters, _ in line] for line in read])
        texts_choices.append([[choices or [] for _, choices in line] for line in read])
    return texts, (None if lexicon is None else texts_choices)


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


def predict_listed_text(classifier: Classifier, images: list[np.ndarray | Image.Image], lexicon: Lexicon,
                        top_k: int = 3) -> list[tuple[list[TextLine], TextChoices]]:
    """``predict_text`` in a word list, each word read as ``predict_listed_words`` reads one: for each
    image, its lines, and each line's words' choices in the list."""
    texts, choices = _read_lines(classifier, lexicon, [split_rows(_grey(image)) for image in images], top_k)
    return list(zip(texts, choices or [], strict=True))


def predict_text_files(checkpoint: str | Path, images: list[str | Path], top_k: int = 3, tta: bool = False,
                       lexicon: str | Path | None = None
                       ) -> list[tuple[str, list[TextLine], TextChoices | None]]:
    """``predict_text`` for image files (a directory stands for its images), each with its words' choices
    in the word list ``lexicon`` (None without one)."""
    classifier = load_classifier(checkpoint, pick_device("auto"), tta=tta)  # first, as in predict_files
    words_list = None if lexicon is None else read_lexicon(lexicon, classifier.classes)
    paths = image_paths(images)
    rows = map_over_processes(_rows_of_file, paths)
    texts, choices = _read_lines(classifier, words_list, rows, top_k)
    return list(zip(map(str, paths), texts, choices or [None] * len(texts), strict=True))
