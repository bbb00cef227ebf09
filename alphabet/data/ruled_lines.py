"""Find the lines of ruled and squared paper under a letter, so that framing can take them off.

A line is a thin band of ink that runs from edge to edge, level or tilted by up to
``MAX_LINE_TILT`` degrees (a page photographed a little askew), and reaches well past
the rest of the ink: at least 1.5 times the letter's height, or the tallest row's on a
page of several rows (for the lines of squared paper that run down the page, the width
of the widest letter or the tallest row's height, whichever is less: letters set close
can measure as one). A tightly cropped t or z has an edge-to-edge crossbar too, but
no longer than the letter, so it stays; a tightly cropped l is a stroke from edge to edge
down the page, which with no line across is no squared paper, so it stays too. Where the
lines are printed clearly fainter than the letters are written, what is as faint as a line
is taken off and the darker ink kept, wherever it runs; otherwise, where a stroke crosses a
line, the stroke is kept whole.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage  # scikit-learn's own dependency

# Lines tilted by up to this many degrees are found; the search steps by half a degree.
MAX_LINE_TILT = 3.0
# Lines whose ink is this many times fainter than the strokes' are told apart by it.
FAINT_LINES = 1.5


def _shift(width: int, degrees: float) -> np.ndarray:
    """How many rows a line tilted by ``degrees`` (positive: falling to the right) lies below its height at
    the middle column, at each of ``width`` columns, in whole pixels."""
    return np.round(np.tan(np.radians(degrees)) * (np.arange(width) - (width - 1) / 2)).astype(int)


def _level_view(shape: tuple[int, int], degrees: float) -> np.ndarray:
    """For each pixel of a view in which lines tilted by ``degrees`` run level, the image row it
    shows (the column is the same), or -1 where the view runs off the image."""
    h, w = shape
    rows = np.arange(h)[:, None] + _shift(w, degrees)[None, :]
    return np.where((rows >= 0) & (rows < h), rows, -1)


def _seen(inked: np.ndarray, view: np.ndarray) -> np.ndarray:
    """``inked`` as ``view`` shows it (``_level_view``), blank where the view runs off the image."""
    return np.where(view >= 0, inked[view.clip(0), np.arange(inked.shape[1])[None, :]], False)


def _inked_pixels(inked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows and columns of ``inked``'s pixels, and whether the pixel one row and two rows above each is
    inked too: what ``_line_bands`` needs at every tilt it tries."""
    ys, xs = np.nonzero(inked)
    return ys, xs, (ys >= 1) & inked[np.maximum(ys - 1, 0), xs], (ys >= 2) & inked[np.maximum(ys - 2, 0), xs]


def _line_bands(pixels: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], shape: tuple[int, int],
                degrees: float) -> list[np.ndarray]:
    """Rows of each band of ink (``_inked_pixels``) that runs from edge to edge in the view where lines
    tilted by ``degrees`` run level (``_level_view``; at least half the image's width where the line runs off
    the top or bottom)."""
    h, w = shape
    shift = _shift(w, degrees)
    # The view's row r holds column c where 0 <= r + shift[c] < h: count the columns by where they start and stop.
    starts, stops = np.clip(-shift, 0, h), np.clip(h - shift, 0, h)
    inside = np.cumsum(np.bincount(starts, minlength=h + 1) - np.bincount(stops, minlength=h + 1))[:h]
    inside = np.maximum(inside, 1)
    # A row's ink, with a pixel of play either way, so that a line between two tilts still counts. A
    # column counts once for a row, through the topmost of its inked pixels within a row of it: a pixel
    # counts for the row below it, for its own unless the pixel above is inked, and for the row above
    # unless either of the two above is. Pixels off the view's top are not seen.
    ys, xs, one_above, two_above = pixels
    rows = ys - shift[xs]
    seen = (rows >= 0) & (rows < h)
    rows = rows[seen]
    one_above = one_above[seen] & (rows >= 1)
    two_above = two_above[seen] & (rows >= 2)
    counted = np.concatenate([rows[rows + 1 < h] + 1, rows[~one_above],
                              rows[(rows >= 1) & ~one_above & ~two_above] - 1])
    near = np.bincount(counted, minlength=h)
    rows = np.flatnonzero((inside >= 0.5 * w) & (near >= 0.9 * inside))
    return np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []


def may_hold_lines(inked: np.ndarray, about: float = 0.0, within: float = MAX_LINE_TILT) -> bool:
    """Whether ``inked`` may hold a line from edge to edge tilted by ``about`` degrees (positive: falling to
    the right), give or take ``within``: the cheap test before the search. Such a line fills nearly every
    column of some band of rows as tall as its drift across the image."""
    drift = int(np.ceil(np.tan(np.radians(within)) * inked.shape[1] / 2)) + 1
    seen = inked if about == 0 else _seen(inked, _level_view(inked.shape, about))
    return bool((ndimage.maximum_filter1d(seen, 2 * drift + 1, axis=0).mean(1) >= 0.9).any())


def _straight_lines(inked: np.ndarray, about: float = 0.0) -> list[tuple[float, float, float]]:
    """Each thin line of ink from edge to edge, level or tilted by ``about`` degrees (positive: falling
    to the right), give or take ``MAX_LINE_TILT``, as (row at column 0, rise per column, half its
    thickness)."""
    h, w = inked.shape
    centres = sorted({0.0, about}, key=abs)
    # Most images have no line, and skip the search.
    if not any(may_hold_lines(inked, centre) for centre in centres):
        return []
    best: tuple[float, list[np.ndarray]] = (0.0, [])
    pixels = _inked_pixels(inked)
    steps = np.arange(-MAX_LINE_TILT, MAX_LINE_TILT + 0.1, 0.5)
    for degrees in sorted({float(centre + step) for centre in centres for step in steps}, key=lambda d: (abs(d), d)):
        bands = _line_bands(pixels, inked.shape, degrees)
        if sum(b.size for b in bands) > sum(b.size for b in best[1]):
            best = (degrees, bands)
    view, bands = _level_view(inked.shape, best[0]), best[1]
    lines = []
    # The tilt is chosen before this, so that a thick stroke seen askew does not pass for a thin line.
    for band in (b for b in bands if b.size <= max(6, 0.05 * h)):
        rows = view[band[0]: band[-1] + 1]
        on_line = (rows >= 0) & inked[rows.clip(0), np.arange(w)[None, :]]
        ys, xs = rows[on_line], np.nonzero(on_line)[1]
        if xs.size < 2:  # found through the pixel of play alone: ink that zigzags about a row, no line
            continue
        rise, start = np.polyfit(xs, ys, 1)
        half = float(np.percentile(np.abs(ys - (start + rise * xs)), 95)) + 0.5
        lines.append((float(start), float(rise), half))
    return lines


def _offsets(line: tuple[float, float, float], shape: tuple[int, int], reach: float) -> tuple[slice, np.ndarray]:
    """The image rows within ``reach`` of ``line``'s edges (start, rise, half its thickness) at some column,
    and how far each of their pixels lies below the line's middle: a tilted line crosses a band of rows,
    and the rest of the image is too far from it to matter."""
    start, rise, half = line
    ends = (start, start + rise * (shape[1] - 1))
    top = int(np.clip(np.floor(min(ends) - half - reach) - 1, 0, shape[0]))
    bottom = int(np.clip(np.ceil(max(ends) + half + reach) + 2, top, shape[0]))
    ys, xs = np.ogrid[top:bottom, : shape[1]]
    return slice(top, bottom), ys - (start + rise * xs)


def _line_pixels(inked: np.ndarray, lines: list[tuple[float, float, float]], strokes: np.ndarray,
                 faint: np.ndarray | None = None) -> np.ndarray:
    """The inked pixels of ``lines``, except where one of ``strokes`` crosses a line (ink just above
    and just below it), so that the stroke stays whole, and, where ``faint`` marks the pixels as faint
    as the lines, except the darker ones: a stroke that runs along a line for a while."""
    pixels, near = np.zeros_like(inked), np.zeros_like(inked)
    for line in lines:
        rows, off = _offsets(line, inked.shape, 4)
        half = line[2]
        above = (strokes[rows] & (off < -half - 1) & (off >= -half - 3)).any(0)
        below = (strokes[rows] & (off > half + 1) & (off <= half + 3)).any(0)
        pixels[rows] |= inked[rows] & (np.abs(off) <= half + 1) & ~(above & below)[None, :]
        near[rows] |= np.abs(off) <= half + 4
    if faint is not None:
        pixels &= faint
    # The soft edges of a line fitted a little off are left as slivers beside it: pieces of ink
    # that lie wholly along a line (and are as faint, where that is known) go with it.
    labels, count = ndimage.label(inked & ~pixels, structure=np.ones((3, 3), bool))
    index = np.arange(1, count + 1)
    if faint is not None:
        near &= faint
    along = ndimage.sum_labels(near, labels, index) == ndimage.sum_labels(np.ones_like(near), labels, index)
    return pixels | np.isin(labels, index[along])


def _as_faint_as_lines(inked: np.ndarray, ink: np.ndarray, rows: list[tuple[float, float, float]],
                       cols: list[tuple[float, float, float]]) -> np.ndarray | None:
    """The pixels of ``ink`` (its strength) no stronger than lines printed clearly fainter than the
    strokes are written: below halfway from the lines' median to the strokes'. None where the lines
    are not at least ``FAINT_LINES`` times fainter: pencil on squared paper, say."""
    def band(shape: tuple[int, int], lines: list[tuple[float, float, float]], reach: float) -> np.ndarray:
        out = np.zeros(shape, bool)
        for line in lines:
            rows, off = _offsets(line, shape, reach)
            out[rows] |= np.abs(off) <= line[2] + reach
        return out

    on = band(inked.shape, rows, 1) | band(inked.shape[::-1], cols, 1).T
    near = band(inked.shape, rows, 4) | band(inked.shape[::-1], cols, 4).T
    off_lines = inked & ~near
    if not off_lines.any():  # the lines alone
        return None
    # Strokes cross the lines only here and there: the median on them is the lines'.
    line, stroke = np.median(ink[inked & on]), np.median(ink[off_lines])
    if stroke < FAINT_LINES * line:
        return None
    return ink <= (line + stroke) / 2


def ruled_lines(inked: np.ndarray, tilt: float = 0.0, ink: np.ndarray | None = None) -> np.ndarray:
    """The pixels of ruled or squared paper's lines: thin lines of ink from edge to edge, level or
    tilted by up to ``MAX_LINE_TILT`` degrees, running well past the rest of the ink. A tightly
    cropped t or z has an edge-to-edge crossbar too, but no longer than the letter. On a page turned
    by ``tilt`` degrees (counter-clockwise, ``levelling.page_tilt``), the lines are looked for about
    that tilt as well as about level. Given the ink's strength (``ink``), lines printed clearly
    fainter than the strokes leave every stroke's darker pixels."""
    # Turned counter-clockwise, the page's lines across rise to the right, and its lines down lean right.
    rows = _straight_lines(inked, -tilt)
    # Lines down the page come with lines across on squared paper, and ruled paper has only those across:
    # a stroke from edge to edge with no line across is a letter cropped tightly (an l, the l's of "all").
    if not rows:
        return np.zeros_like(inked)
    cols = _straight_lines(inked.T, tilt)
    faint = None if ink is None else _as_faint_as_lines(inked, ink, rows, cols)
    faint_t = None if faint is None else faint.T
    # Where the lines of squared paper cross, neither line is a stroke crossing the other.
    across = inked & ~_line_pixels(inked.T, cols, np.zeros_like(inked.T), faint_t).T
    down = inked & ~_line_pixels(inked, rows, np.zeros_like(inked), faint)
    rest = across & down
    # A tilted line that runs off the top or bottom edge is too short to be found; what is left of it
    # is no letter either.
    loose = rest if faint is None else rest & faint
    # Where a fine line comes apart, its short pieces beside a crossing line went with that line too.
    cut_rows = _cut_off_lines(loose, _gap(cols, 4), _angle(rows)) if rows else np.zeros_like(inked)
    cut_cols = _cut_off_lines(loose.T, _gap(rows, 4), _angle(cols)).T if cols else np.zeros_like(inked)
    rest &= ~cut_rows & ~cut_cols
    # Where lines cross near a corner, a pixel or two of them is left on the border: it is no letter,
    # and would stretch the letter's extent to the whole page.
    # Measured where the rows run level: on a page turned by several degrees, a long row drifts across
    # the blank under it, and the rows run together.
    letters = rest & ~_border_specks(rest, 0.02 * rest.sum())
    tall, wide = _extent(_sheared(letters, _angle(rows))[0] if rows else letters, _gap(rows), _gap(cols))
    lines = np.zeros_like(inked)
    # A cut-off line crosses the found lines of the other way as a stroke would, but is none.
    if rows and inked.shape[1] >= 1.5 * tall:
        lines |= _line_pixels(inked, rows, across & ~cut_cols, faint) | cut_rows
    # A stroke down a letter is no taller than its row: a line down the page that reaches well past the
    # tallest row is no stroke, though letters set close may measure wider than the line is long.
    if cols and inked.shape[0] >= 1.5 * min(wide, tall):
        lines |= _line_pixels(inked.T, cols, (down & ~cut_rows).T, faint_t).T | cut_cols
    if lines.any():
        # The ends of lines that leave across a corner are specks on the border; on a page with lines
        # (not a tight crop, whose letter touches the border) no letter is cut there.
        lines |= _border_specks(inked & ~lines, 0.02 * inked.sum())
    return lines


def _border_specks(mask: np.ndarray, most: float) -> np.ndarray:
    """Pieces of ``mask`` that touch the image's border and hold fewer than ``most`` pixels."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    index = np.arange(1, count + 1)
    border = np.zeros_like(mask)
    border[[0, -1], :] = border[:, [0, -1]] = True
    small = ndimage.sum_labels(np.ones_like(mask), labels, index) < most
    on_border = ndimage.maximum(border, labels, index).astype(bool)
    return np.isin(labels, index[small & on_border])


def runs_of(flags: np.ndarray, gap: int = 0) -> list[tuple[int, int]]:
    """(start, stop) of each run of ``flags`` (one per row or column of an image), bridging blanks up to
    ``gap`` long: where lines are taken off, a stroke that crossed one is cut by about that much."""
    at = np.flatnonzero(flags)
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(at, np.flatnonzero(np.diff(at) > gap + 1) + 1)
            if run.size]


def _extent(ink: np.ndarray, row_gap: int, col_gap: int) -> tuple[int, int]:
    """How tall and how wide the letter is, or on a page of several rows of letters the tallest row and
    the widest letter of any row: a note is taller than its lines are long, but none of its rows is."""
    tall = max((stop - start for a, b in runs_of(ink.any(0), col_gap)
                for start, stop in runs_of(ink[:, a:b].any(1), row_gap)), default=0)
    wide = max((stop - start for a, b in runs_of(ink.any(1), row_gap)
                for start, stop in runs_of(ink[a:b].any(0), col_gap)), default=0)
    return tall, wide


def _angle(lines: list[tuple[float, float, float]]) -> float:
    """The tilt of ``lines`` in degrees, as ``_straight_lines`` takes it: the lines of one page are parallel."""
    return float(np.degrees(np.arctan(np.median([rise for _, rise, _ in lines]))))


def _gap(lines: list[tuple[float, float, float]], reach: int = 1) -> int:
    """How wide a gap taking off ``lines`` leaves where they cross others: ``_line_pixels`` takes the pixels
    within ``reach`` of a line's edge (1), and pieces that lie wholly within 4 (``reach=4``)."""
    return 2 * int(np.ceil(max((half for _, _, half in lines), default=0.0))) + 2 * reach + 1


def _sheared(mask: np.ndarray, about: float) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` seen where lines tilted by ``about`` degrees (as ``_straight_lines`` takes it) run level, as
    ``_level_view`` shows it but tall enough to hold every pixel; and each pixel's row in that view."""
    h, w = mask.shape
    levelled = np.arange(h)[:, None] - _shift(w, about)[None, :]
    levelled -= levelled.min()
    view = np.zeros((levelled.max() + 1, w), bool)
    view[levelled[mask], np.nonzero(mask)[1]] = True
    return view, levelled


def _cut_off_lines(mask: np.ndarray, gap: int, about: float = 0.0) -> np.ndarray:
    """Pieces of ``mask`` touching its top or bottom edge that are as thin as a line (seen along lines tilted
    by ``about`` degrees, as ``_straight_lines`` takes it) and at least a tenth of the image wide, once gaps
    up to ``gap`` wide along them are bridged: the lines that cross a cut-off line of squared paper were
    taken off, and cut it into short pieces."""
    h, w = mask.shape
    # The gaps are bridged where such lines run level: a line tilted by more than a degree or two steps
    # to the next row within a gap. One a little off ``about`` still steps a row somewhere, maybe within a
    # gap, so the ends either side are bridged with a row of play, and a piece's thickness is its own
    # pixels'. The closing erodes what it bridges at the image's sides, where these lines end: keep the
    # mask too.
    view, levelled = _sheared(mask, about)
    near = ndimage.binary_dilation(view, structure=np.ones((3, 1), bool))
    gaps = ndimage.binary_closing(near, structure=np.ones((1, gap + 1), bool)) & ~near
    joined = mask | gaps[levelled, np.arange(w)[None, :]]
    labels, _ = ndimage.label(joined, structure=np.ones((3, 3), bool))
    pieces = np.zeros_like(mask)
    for i, (ys, xs) in enumerate(ndimage.find_objects(labels), 1):
        rows = levelled[ys, xs][(labels[ys, xs] == i) & mask[ys, xs]]
        thin = rows.size > 0 and rows.max() - rows.min() + 1 <= max(6, 0.05 * h)  # a bridge alone is nothing
        if thin and (ys.start == 0 or ys.stop == h) and xs.stop - xs.start >= 0.1 * w:
            pieces[ys, xs] |= (labels[ys, xs] == i) & mask[ys, xs]
    return pieces
