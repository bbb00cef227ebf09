"""Split an image of a word written in separate letters into one EMNIST-style image per letter,
or an image of several rows of them into rows of letters, and rows into words at wide gaps.

The ink is found as for one letter (``emnist_style.ink_layer``), over the whole image, turned
level where the page was photographed askew (``levelling``), then cut into rows where blank
pixel rows part the ink, and each row into its connected strokes.
Strokes that share most of their columns belong to one letter: the dot of an i or a j, a t's
crossbar drawn apart, a pencil line that broke. The letters are read left to right.

Two letters whose strokes touch are one piece of ink. A piece much wider than the
word's letters are tall also comes cut in two at a few columns of its middle
third, as ``Letter.cuts``; the reader (``alphabet.predict``) keeps the best cut where
the classifier is surer of both halves than of the whole, so an m stays an m and
touching ll come apart (in a word list, the cut that spells the likeliest listed word).
Cursive handwriting needs a different reader.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage  # scikit-learn's own dependency

from alphabet.data.emnist_style import frame_ink, page_ink_layer, working_copy
from alphabet.data.levelling import Levelling, ink_slant
from alphabet.data.ruled_lines import runs_of
from alphabet.errors import UserError

# Strokes overlapping by this share of the narrower one's width are one letter.
SAME_LETTER_OVERLAP = 0.5
# A group of strokes this small beside the median letter is a dot, a speck or a broken-off piece.
SPECK_SHARE = 0.25
# A stroke's core is what stands above this share of the brightest ink.
CORE = 0.35
# A letter this much wider than the word's letters are tall may be two letters touching.
WIDE = 1.4
# A band of inked pixel rows at least this share of the tallest band's height is a row of letters;
# a lower one (an i's dot, a speck, a stray mark) belongs to the nearest row.
ROW_SHARE = 0.3
# A gap between letters wider than this share of the page's median letter height is a space between
# words (chosen on the training writers' letters laid out as notes: docs/BENCHMARKS.md, "Text").
SPACE = 0.6
# With a word list (``--lexicon``), a gap between these shares of that height may be a space or not, and
# the list decides; outside them the gap alone does. On the training writers' letters laid out as notes
# four ways, no gap between words was under 0.49 and none inside a word over 0.63 (docs/BENCHMARKS.md,
# "Lexicon text").
MAYBE_SPACE = (0.45, 0.75)
# Where the list decides, how likely a gap is a space before the list has its say: even odds at
# SPACE_EVEN of that height, the log-odds rising by SPACE_SLOPE per unit of it, so that a wide gap parts
# two listed words rather than joining them into one (chosen on the training writers' letters, as the
# band was: docs/BENCHMARKS.md, "Lexicon text").
SPACE_EVEN, SPACE_SLOPE = 0.4, 20.0
# In a note with no gap wider than MAYBE_SPACE[1], a stretch of a row this many letters long that no gap
# of MAYBE_SPACE[0] parts is more likely words written close together than one word (few English words
# are as long); there the list also decides the gaps down to CLOSE_SPACE of that height. A note with a
# sure space somewhere is by a writer who spaces words, and its long stretches are long words.
LONG_STRETCH, CLOSE_SPACE = 12, 0.25


@dataclass(frozen=True)
class Letter:
    """One letter cut from a word: where it is, and its EMNIST-style pixels."""

    box: tuple[int, int, int, int]  # left, top, right, bottom in the image's pixels; right and bottom exclusive
    # Its box on the page turned level (``levelling``), at the image's scale: gaps between letters are
    # measured there. The same as ``box`` where the page was level.
    upright: tuple[int, int, int, int]
    pixels: np.ndarray  # (28, 28) uint8, framed as ``to_emnist_style`` frames a whole image
    cuts: tuple[tuple[Letter, Letter], ...] = ()  # for a wide piece: the same ink cut in two, a few ways


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> float:
    """How much of the narrower of two column spans the other covers, from 0 to 1."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    return max(shared, 0) / max(min(a[1] - a[0], b[1] - b[0]), 1)


def _group_strokes(spans: list[tuple[int, int]], areas: list[float]) -> list[list[int]]:
    """Indices of the strokes of each letter, left to right."""
    groups = [[i] for i in np.argsort([left for left, _ in spans])]

    def span(group: list[int]) -> tuple[int, int]:
        return min(spans[i][0] for i in group), max(spans[i][1] for i in group)

    # Merge neighbours until no two groups share most of their columns; sorted by their left
    # edge, a group can only overlap the ones just after it.
    merged = True
    while merged:
        merged = False
        for k in range(len(groups) - 1):
            if _overlap(span(groups[k]), span(groups[k + 1])) >= SAME_LETTER_OVERLAP:
                groups[k] += groups.pop(k + 1)
                merged = True
                break
    # A dot, a speck or a broken-off piece beside the letters (an i's dot set off to the right) joins the
    # nearest letter.
    ink = [sum(areas[i] for i in g) for g in groups]
    least = SPECK_SHARE * np.median(ink)
    letters = [g for g, a in zip(groups, ink, strict=True) if a >= least]
    for g in (g for g, a in zip(groups, ink, strict=True) if a < least):
        centre = sum(span(g)) / 2
        min(letters, key=lambda other: abs(sum(span(other)) / 2 - centre)).extend(g)
    return sorted(letters, key=lambda g: span(g)[0])


def split_letters(grey: np.ndarray) -> list[Letter]:
    """The letters of a greyscale image of one row of separate letters, left to right; [] if blank."""
    rows = split_rows(grey)
    if len(rows) > 1:
        # Letters of two rows would be merged where their columns overlap: refuse, rather than misread.
        raise UserError(f"found {len(rows)} rows of letters; expected one row (crop each row to its own image, "
                        "or read them as lines of text: predict --text)")
    return rows[0] if rows else []


def split_rows(grey: np.ndarray) -> list[list[Letter]]:
    """The rows of letters of a greyscale image, top to bottom, each its letters left to right; [] if blank.
    Rows are parted by pixel rows without ink, so a descender touching the ascender below joins two rows."""
    small, factor = working_copy(grey)
    layer, tilt = page_ink_layer(small)
    if layer is None:
        return []
    img, strokes = layer
    levelling = Levelling(strokes.shape, tilt)
    ink = strokes.astype(np.uint8)
    level = levelling.level(ink, order=0) > 0
    rows = row_spans(level)
    # Handwriting leaning far is set upright: its letters then stand apart and read as the training's.
    slant = ink_slant(level, rows)
    if slant:
        levelling = Levelling(strokes.shape, tilt, slant)
        level = levelling.level(ink, order=0) > 0
        rows = row_spans(level)
    img, strokes = levelling.level(img, order=1), level
    # Each row is split on its own band of the image; its boxes are then placed in the image's pixels.
    return [[_placed(letter, top, factor, levelling, grey.shape)
             for letter in _split_row(img[top:bottom], strokes[top:bottom])]
            for top, bottom in rows]


def row_spans(strokes: np.ndarray) -> list[tuple[int, int]]:
    """(top, bottom) pixel rows of each row of letters, top to bottom, meeting halfway across the blank
    rows between them, so that a dot or speck in that gap goes with its nearer row."""
    bands = runs_of(strokes.any(1))
    if not bands:  # faint ink with no clear stroke: nothing to read
        return []
    tallest = max(bottom - top for top, bottom in bands)
    rows = [band for band in bands if band[1] - band[0] >= ROW_SHARE * tallest]
    middles = [(rows[k][1] + rows[k + 1][0]) // 2 for k in range(len(rows) - 1)]
    return list(zip([0, *middles], [*middles, strokes.shape[0]], strict=True))


def letter_gaps(rows: list[list[tuple[int, int, int, int]]]) -> list[list[float]]:
    """Each row of letters' upright boxes (``Letter.upright``, left to right): the gaps between neighbours,
    in the median letter height of all the rows (a writer's letters keep their size down a page; one short
    row's median is noise)."""
    heights = [bottom - top for row in rows for _, top, _, bottom in row]
    if not heights:
        return [[] for _ in rows]
    height = float(np.median(heights))
    return [[(row[k][0] - row[k - 1][2]) / height for k in range(1, len(row))] for row in rows]


def spaced_starts(gaps: list[float]) -> list[int]:
    """Where the words of a row of letters with these ``letter_gaps`` begin: index 0, then every letter
    whose gap from the one before is wider than ``SPACE``."""
    return [0, *(k for k, gap in enumerate(gaps, start=1) if gap > SPACE)]


def word_starts(rows: list[list[tuple[int, int, int, int]]]) -> list[list[int]]:
    """``spaced_starts`` of each row of letters' boxes (left to right); [] for an empty row."""
    return [spaced_starts(gaps) if row else [] for row, gaps in zip(rows, letter_gaps(rows), strict=True)]


def _placed(letter: Letter, down: int, factor: int, levelling: Levelling, shape: tuple[int, ...]) -> Letter:
    """``letter`` found in a band starting ``down`` rows into an image shrunk by ``factor`` and turned by
    ``levelling``, with its boxes in the full image's pixels (and, where the page was turned, on the
    levelled page at the image's scale)."""
    left, top, right, bottom = letter.box
    level = (left, top + down, right, bottom + down)
    left, top, right, bottom = levelling.box_back(level)
    box = (left * factor, top * factor, min(right * factor, shape[1]), min(bottom * factor, shape[0]))
    cuts = tuple((_placed(a, down, factor, levelling, shape), _placed(b, down, factor, levelling, shape))
                 for a, b in letter.cuts)
    upright = tuple(x * factor for x in level) if levelling.turned else box
    return Letter(box, upright, letter.pixels, cuts)


def _split_row(img: np.ndarray, strokes: np.ndarray) -> list[Letter]:
    """The letters of one row: ``img`` and ``strokes`` are that row's band of the image."""
    # Strokes are cut apart where they are strong: the soft edges of letters written close together
    # touch, their cores do not. The soft edges join the letter again below.
    core = strokes & (img > CORE * img.max())
    labels, count = ndimage.label(core, structure=np.ones((3, 3), bool))
    slices = ndimage.find_objects(labels)
    spans = [(s[1].start, s[1].stop) for s in slices]
    areas = ndimage.sum_labels(core, labels, index=np.arange(1, count + 1)).tolist()
    # Every inked pixel goes with its nearest stroke: a letter keeps its soft edges, not its neighbour's.
    nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)[1]
    owner = labels[nearest[0], nearest[1]]
    groups = _group_strokes(spans, areas)
    masks = [np.isin(owner, np.asarray(group) + 1) for group in groups]
    letters = [_letter(img, strokes, mine) for mine in masks]
    height = float(np.median([letter.box[3] - letter.box[1] for letter in letters]))
    for i, (letter, mine) in enumerate(zip(letters, masks, strict=True)):
        left, _, right, _ = letter.box
        if right - left > WIDE * height:
            letters[i] = _with_cuts(letter, img, strokes, core & mine, mine)
    return letters


def _letter(img: np.ndarray, strokes: np.ndarray, mine: np.ndarray) -> Letter:
    ys, xs = np.nonzero(strokes & mine)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return Letter(box=box, upright=box,
                  pixels=frame_ink(np.where(mine, img, 0.0), strokes & mine))


def _with_cuts(letter: Letter, img: np.ndarray, strokes: np.ndarray, core: np.ndarray, mine: np.ndarray
               ) -> Letter:
    """``letter`` with its ink cut in two at the column of least core ink in its middle third, and at
    a few evenly spaced columns there: where round letters touch, their joint is the inkiest column."""
    left, _, right, _ = letter.box
    width = right - left
    middle = np.arange(width // 3, width - width // 3)
    thinnest = int(middle[np.argmin(core[:, left:right].sum(0)[middle])])
    columns = sorted({thinnest, *(round(width * f) for f in (0.4, 0.5, 0.6))})
    cuts = []
    for column in columns:
        before = np.zeros_like(mine)
        before[:, : left + column] = True
        parts = (mine & before, mine & ~before)
        if all((strokes & part).any() for part in parts):
            cuts.append((_letter(img, strokes, parts[0]), _letter(img, strokes, parts[1])))
    return replace(letter, cuts=tuple(cuts))
