"""Level a page of handwriting photographed askew, so that its rows of letters run level.

Rows of letters are found where blank pixel rows part them (``segment.row_spans``). On a
page turned by a few degrees, a long row drifts across the blank rows under it and the
rows run together. The page's tilt is the angle along which its ink leaves the most
blank pixel rows: the rows of letters are then thinnest and the blank between them widest
(a projection profile, as for scanned pages, with the blank counted rather than the
profile's sharpness, which one short word's letters fooled). Where the tilt is at least
``MIN_TILT``, the ink is turned level before it is split, and each letter's box is turned
back into the image's pixels. Handwriting that leans far (``ink_slant``) is sheared upright
with the same turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage  # scikit-learn's own dependency

# Pages turned by up to this many degrees either way are levelled: a photo framed by hand is rarely
# further off, and each angle searched costs time.
MAX_TILT = 10.0
# Below this, rows part as they do on a level page (notes of 1,500 letters 1,000 px wide parted as
# well at 2 degrees as at 0: docs/BENCHMARKS.md, "Text"), and the letters are left unturned.
MIN_TILT = 1.0
# A page is turned only where that leaves this share fewer inked pixel rows than level: one short word
# (a tall l beside an o) reads about as thin at any angle, and its best angle is noise.
MIN_GAIN = 0.1
# The search's step, in degrees: across a page 1,000 px wide, a row then drifts by at most 2 px.
TILT_STEP = 0.25
# Handwriting leaning by up to this many degrees either way is set upright before it is split and read,
# from MIN_SLANT on (a lean within it is a hand's own, as the training letters have), where upright
# leaves MIN_SLANT_GAIN fewer inked pixel columns in its rows than as written (a smaller gain set
# letters touching in upright words aslant: docs/BENCHMARKS.md, "Words"); searched in steps of
# SLANT_STEP degrees.
MAX_SLANT, MIN_SLANT, MIN_SLANT_GAIN, SLANT_STEP = 40.0, 10.0, 0.15, 1.0


def _edge_pixels(strokes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the strokes' edge pixels. A row or column of pixels across the ink meets a
    stroke's edge wherever it meets the stroke: the edges alone tell which rows or columns are inked,
    at a third or less of the pixels to turn or shear."""
    return np.nonzero(strokes & ~ndimage.binary_erosion(strokes))


def page_tilt(strokes: np.ndarray, squared: bool = False) -> float:
    """The angle in degrees by which the rows of ink in ``strokes`` rise to the right (negative: fall),
    within ``MAX_TILT``; 0.0 for a page without ink. With ``squared`` (the lines of squared paper are
    still in ``strokes``), the angle of the lines across: those down the page ink every row at any
    angle near level, and the lines across are found where the rows' ink is most sharply peaked."""
    ys, xs = _edge_pixels(strokes)
    if ys.size == 0:
        return 0.0
    angles = np.arange(-MAX_TILT, MAX_TILT + TILT_STEP / 2, TILT_STEP)
    scores = []
    for degrees in angles:
        radians = np.radians(degrees)
        # Each inked pixel's distance across rows rising by ``degrees``, in whole pixels.
        across = np.round(ys * np.cos(radians) + xs * np.sin(radians)).astype(np.int64)
        profile = np.bincount(across - across.min())
        # Fewest inked rows; for lines, the sharpest profile (so the most negative sum of squares).
        scores.append(-np.square(profile, dtype=np.float64).sum() if squared else np.count_nonzero(profile))
    scores = np.asarray(scores)
    if not squared and scores[angles.size // 2] * (1 - MIN_GAIN) <= scores.min():
        return 0.0  # level, or a row too short to show its slant
    # Several angles may score as well: their middle.
    return float(np.round(angles[scores == scores.min()].mean() / TILT_STEP) * TILT_STEP)


def ink_slant(strokes: np.ndarray, rows: list[tuple[int, int]]) -> float:
    """The angle in degrees by which the strokes of a level page's ``rows`` of letters lean to the right
    of upright (negative: to the left), within ``MAX_SLANT``: the lean that, undone, leaves the most blank
    pixel columns row by row, where the letters' upright strokes are thinnest and the gaps between them
    widest. 0.0 under ``MIN_SLANT``, or where undoing it gains under ``MIN_SLANT_GAIN``."""
    ys, xs = _edge_pixels(strokes)
    if ys.size == 0:
        return 0.0
    row = np.searchsorted([bottom for _, bottom in rows], ys, side="right")  # each pixel's row of letters
    angles = np.arange(-MAX_SLANT, MAX_SLANT + SLANT_STEP / 2, SLANT_STEP)
    inked = []
    for degrees in angles:
        # Where each inked pixel stands across its row with the lean undone (top moved left for a lean right).
        across = np.round(xs + np.tan(np.radians(degrees)) * ys).astype(np.int64)
        across -= across.min()
        inked.append(np.count_nonzero(np.bincount(row * (across.max() + 1) + across)))
    inked = np.asarray(inked)
    best = float(angles[np.argmin(inked)])
    if abs(best) < MIN_SLANT or inked[angles.size // 2] * (1 - MIN_SLANT_GAIN) <= inked.min():
        return 0.0
    return best


@dataclass(frozen=True)
class Levelling:
    """The turn that levels a page of ``shape`` whose rows rise by ``degrees``, then the shear that sets
    its handwriting upright where it leans ``slant`` degrees to the right (``ink_slant``): ``level``
    turns an image of that page, and ``box_back`` places a box of the levelled page in the page's own
    pixels."""

    shape: tuple[int, int]
    degrees: float
    slant: float = 0.0

    @property
    def turned(self) -> bool:
        return abs(self.degrees) >= MIN_TILT or self.slant != 0.0

    @cached_property  # worked out once per page, not once per letter's box
    def _geometry(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """The matrix and offset that take a levelled pixel to the page's, and the levelled page's shape
        (large enough to hold the whole page turned)."""
        radians = np.radians(self.degrees) if abs(self.degrees) >= MIN_TILT else 0.0
        cos, sin = np.cos(radians), np.sin(radians)
        h, w = self.shape
        turned = (int(np.ceil(h * cos + w * abs(sin))), int(np.ceil(w * cos + h * abs(sin))))
        # A levelled row runs along (-sin, cos) on the page; the levelled page's centre is the page's.
        turn = np.array([[cos, -sin], [sin, cos]])
        # Set upright, a pixel's column on the turned page is its own less the lean times its row; the
        # page is widened by the lean across its height.
        lean = np.tan(np.radians(self.slant))
        out = (turned[0], turned[1] + int(np.ceil(abs(lean) * turned[0])))
        matrix = turn @ np.array([[1.0, 0.0], [-lean, 1.0]])
        offset = (np.array(self.shape) - 1) / 2 - matrix @ ((np.array(out) - 1) / 2)
        return matrix, offset, out

    def level(self, image: np.ndarray, order: int) -> np.ndarray:
        """``image`` (of ``shape``, zero where blank) turned level, interpolated to ``order``; as it is
        where the page is not turned."""
        if not self.turned:
            return image
        matrix, offset, out = self._geometry
        return ndimage.affine_transform(image, matrix, offset=offset, output_shape=out, order=order, cval=0)

    def box_back(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (left, top, right, bottom; right and bottom exclusive) of the levelled page, as the box
        around it on the page."""
        if not self.turned:
            return box
        matrix, offset, _ = self._geometry
        left, top, right, bottom = box
        corners = matrix @ np.array([[top, top, bottom, bottom], [left, right, left, right]], float) + offset[:, None]
        h, w = self.shape
        return (max(int(np.floor(corners[1].min())), 0), max(int(np.floor(corners[0].min())), 0),
                min(int(np.ceil(corners[1].max())), w), min(int(np.ceil(corners[0].max())), h))
