"""Turn any image of one letter into an EMNIST-style 28x28 sample.

EMNIST's recipe: grey, white ink on black, cropped to the ink, centred in a
square with a 2 px pad, resized to 28 and stretched so the brightest pixel is 255.
Its 2 px pad is nominal: EMNIST blurs before it crops, so its letters' longer
side spans about 20 of the 28 pixels (median 20-21 at a 5-20% ink threshold on
the real letters in femnist_letters.npz). Letters framed here span the same.

An image with no ink (blank, or flat to within ``MIN_INK_CONTRAST`` grey
levels) frames to all zeros, which ``is_blank`` tells apart: a classifier
would still name a letter for it, confidently and wrongly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage  # scikit-learn's own dependency

from alphabet.data.levelling import MAX_TILT, page_tilt
from alphabet.data.ruled_lines import MAX_LINE_TILT, may_hold_lines, ruled_lines
from alphabet.errors import UserError
from alphabet.processes import map_over_processes

# Refuse absurd images before decoding them fully (a decompression bomb, say).
MAX_PIXELS = 40_000_000
LETTER_SPAN = 20  # pixels of the longer side of the letter, as in real EMNIST images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".pgm", ".ppm",
                  ".heic", ".heif"}
# An iPhone camera's own format, which Pillow reads only through the pillow-heif package.
HEIF_SUFFIXES = {".heic", ".heif"}
# Above the grey-level noise of JPEG and of a scanned blank page, below a faint pencil stroke.
MIN_INK_CONTRAST = 12
# Fine ruled lines photographed askew spread their ink over two rows, often under a tenth of the strongest
# ink (``_inked``'s bar), and come apart there: where no line is found, lines are looked for again in the
# ink above this share of it.
FINE_LINE_SHARE = 0.05
# Images are framed at most this many pixels a side: a letter ends up 20 px tall, and a phone
# photo's 12 megapixels took seconds (8 s on 2 cores with ruled lines to find, 0.6 s without).
WORKING_SIDE = 1024
# A page's curved light is fitted only where this share of the pixels fits as page (tight crops: 0.2-0.43).
MIN_PAGE_SHARE = 0.6
# A shadow is page light that changes over areas wider than any stroke: everything narrower than this
# share of the image's longer side is taken for ink (42 px on a 170 px page whose strokes are 8-12 px).
SHADOW_SCALE = 0.25
# ... and found on a copy at most this many pixels a side, pixels averaged: at full size the opening took
# 0.46 s on a 1024 px photo, and a shadow's light changes over tens of pixels.
SHADOW_GRID = 128
# A piece of ink that touches the border and holds at most this share of the strokes is a leftover of a
# shadow's edge or of a neighbouring letter, not part of this one.
BORDER_SPECK_SHARE = 0.02
# ... and so is one that lies farther from the largest piece than that piece is long and holds under this
# share of its size: on a large photo a shadow's leftover can outweigh 2% of a small letter's strokes.
FAR_SPECK_SHARE = 0.1
# The grain is read from border pixels this far apart along the border: JPEG's 8 px blocks smooth
# neighbours together, and the grain read from adjacent pixels came out too low.
GRAIN_LAG = 8
# On an evenly lit page the grain about the border's plane is at most 1.7 times the grain read along it
# (80 training letters in each framing case); beyond 3 times, the plane may cut through a shadow's edge.
GRAIN_CAP = 3.0


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as greyscale, turned upright as its EXIF orientation says, with a one-line error
    for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found; expected an image file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes); expected an image")
    if path.suffix.lower() in HEIF_SUFFIXES:
        _let_pillow_read_heif(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns of a "decompression bomb" past 89 million pixels: those are refused below in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"{path}: image is {img.width}x{img.height}; expected at most "
                                f"{MAX_PIXELS:,} pixels")
            img.load()
            # A phone stores a photo as its sensor lay and notes in EXIF how to turn it upright, as every
            # viewer does: the letters are read as the user sees them.
            return greyscale(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError:  # past twice its warning, Pillow refuses before the size can be read
        raise UserError(f"{path}: image of more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; expected at "
                        f"most {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}); expected PNG, JPEG, "
                        "BMP, GIF, TIFF, WebP, AVIF or HEIC") from None


def _let_pillow_read_heif(path: Path) -> None:
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        raise UserError(f"{path}: a HEIC photo, which needs the pillow-heif package (pip install pillow-heif); "
                        "expected it installed, or the photo saved as JPEG") from None
    register_heif_opener()  # Pillow's registry of formats; registering again is harmless


def greyscale(img: Image.Image) -> Image.Image:
    """The image in 8-bit greyscale (``_eight_bit`` for deeper ones), with any transparency laid on a
    page that contrasts with the ink.

    Drawing apps and icons often save a letter as opaque strokes on a transparent
    background whose hidden colour is the ink's own: dropping the alpha would leave
    a blank image. The strokes' own brightness picks the page: white under dark ink.
    """
    if img.mode.startswith("I") or img.mode == "F":
        return _eight_bit(img)
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return img.convert("L")
    grey_alpha = np.asarray(img.convert("LA"), np.float32)
    grey, alpha = grey_alpha[..., 0], grey_alpha[..., 1] / 255.0
    if alpha.min() == 1.0:
        return Image.fromarray(grey.astype(np.uint8))
    ink = float((grey * alpha).sum() / max(alpha.sum(), 1e-6))
    page = 255.0 if ink < 128 else 0.0
    return Image.fromarray((grey * alpha + page * (1 - alpha)).round().astype(np.uint8))


def _eight_bit(img: Image.Image) -> Image.Image:
    """A greyscale image of more than 8 bits (a scanner's 16-bit PNG or TIFF, a float TIFF) as 8 bits, by
    the range its values are stored in: Pillow's own conversion clips every value over 255 to white. That
    range is the smallest of the usual ones that holds the values: a 16-bit file may hold 8- or 12-bit
    values (a camera's), which scaled from 65535 would leave the ink a level or two off the page, as blank."""
    values = np.asarray(img, np.float64)
    top = next((t for t in (1.0, 255.0, 4095.0, 65535.0) if values.max() <= t), values.max())
    return Image.fromarray((np.clip(values, 0, None) * (255.0 / top)).round().astype(np.uint8))


def is_blank(framed: np.ndarray) -> bool:
    """Whether ``to_emnist_style`` found no ink in the image it framed."""
    return not framed.any()


def _border(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and value of every pixel on the image's edge."""
    h, w = img.shape
    mask = np.zeros((h, w), bool)
    mask[[0, -1], :] = mask[:, [0, -1]] = True
    ys, xs = np.nonzero(mask)
    return ys, xs, img[ys, xs]


def _on_border(pieces: np.ndarray) -> np.ndarray:
    """The labels (``ndimage.label``'s, 0 left out) of the pieces that touch the image's edge."""
    labels = np.unique(_border(pieces)[2])
    return labels[labels > 0]


def _terms(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], curved: bool) -> list[np.ndarray]:
    """A plane's or a quadratic's terms but the constant, at pixel rows ``ys`` and columns ``xs`` of an
    image of ``shape``, in coordinates that run from -0.5 to 0.5 across it."""
    h, w = shape
    y, x = ys / max(h - 1, 1) - 0.5, xs / max(w - 1, 1) - 0.5
    return [x, y, x * x, x * y, y * y] if curved else [x, y]


def _design(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], curved: bool) -> np.ndarray:
    """The fit's matrix at the pixels ``ys``, ``xs`` (1-D): the constant, then ``_terms``."""
    return np.stack([np.ones(len(ys)), *_terms(ys, xs, shape, curved)], 1)


def _surface(coef: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The plane or quadratic fitted as ``coef`` at every pixel of an image of ``shape``."""
    h, w = shape
    # Rows and columns apart, broadcast, not meshed: the constant joins a row, and one sum fills the image.
    terms = _terms(np.arange(h)[:, None], np.arange(w)[None, :], shape, curved=len(coef) > 3)
    return sum((c * t for c, t in zip(coef[1:], terms, strict=True)), coef[0]).astype(np.float32)


def _grain_below(residual: np.ndarray) -> float:
    """The grain's sigma from the pixels below the page fitted to them (ink lies only above it)."""
    below = residual[residual < 0]
    return 1.4826 * float(np.median(-below)) if below.size else 0.0


def _page_surface(img: np.ndarray, left_out: np.ndarray | None = None, start: float = 0.5
                  ) -> tuple[np.ndarray, float]:
    """The page under the ink, and the noise on it, as the border pixels show them.

    A phone photo lights the page unevenly: a fixed threshold takes the darker side
    of the page for ink. A plane fitted to the border (refitted without the pixels
    where ink touches it) follows the light falling off across a letter's crop; a
    curved surface would follow vignetting too, but fitted to the border alone it can
    bulge inside, where the letter is. The border pixels marked in ``left_out`` (a
    shadow's) are not fitted. The first fit is to the darkest ``start`` of the border.
    """
    ys, xs, values = _border(img)
    terms = _design(ys, xs, img.shape, curved=False)
    fitted = np.ones(len(values), bool) if left_out is None else ~left_out[ys, xs]
    # Ink is brighter than the page here, and a tight crop's ink runs along its edges: start from the
    # darker part of the border, and measure the grain below the surface only, where no ink is.
    keep = fitted & (values <= np.quantile(values[fitted], start))
    for _ in range(4):
        coef = np.linalg.lstsq(terms[keep], values[keep], rcond=None)[0]
        residual = values - terms @ coef
        noise = _grain_below(residual[fitted])
        keep = fitted & (residual < 2 * noise + 1.0)  # the page's own upper tail goes too: ink edges hide in it
    return _surface(coef, img.shape), noise


def _grain(img: np.ndarray) -> float:
    """The grain's sigma read along the border, from pixels ``GRAIN_LAG`` apart: a shadow's edge, which
    a plane fitted to the border cuts through, spoils only the few differences that span it."""
    h, w = img.shape
    if min(h, w) < 2:
        return 0.0
    ring = np.concatenate([img[0, :], img[1:, -1], img[-1, -2::-1], img[-2:0:-1, 0]])  # once round
    steps = ring - np.roll(ring, GRAIN_LAG)
    return 1.4826 * float(np.median(np.abs(steps - np.median(steps)))) / np.sqrt(2)


def _shade(img: np.ndarray, noise: float) -> np.ndarray:
    """The light the plane misses (vignetting, a photo's bright middle), as a quadratic surface.

    Fitted over the whole page, not its border alone, so that it cannot bulge where the letter
    is: the pixels within the grain of the current fit are page, the rest ink, and the fit is
    repeated on the page pixels. It is taken where light stands above the plane, and then whole:
    the plane fitted to a vignetted page's border lies above the page's bright middle, and a
    shade kept only above the plane took the difference off the ink there, and the strokes' edges
    with it. Light that stays under the grain's floor (three noise sigmas) would not be taken for
    ink, and is left alone, and so is an image that is mostly ink: on tight crops, where a third of the
    pixels or fewer fitted as page, the surface made some letters worse and none better.
    Nor is light lost by half the ink's strength or more (the letter would barely show).
    """
    h, w = img.shape
    step = max(1, round(np.sqrt(h * w / 3000)))  # some 3,000 pixels fix six coefficients
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    values = img[ys, xs].ravel()
    terms = _design(ys.ravel(), xs.ravel(), img.shape, curved=True)
    fit = np.zeros_like(values)
    for _ in range(6):
        page = values - fit < 2 * noise + 1.0
        # Normal equations summed by einsum, then solved 6x6: least squares on all the pixels, threaded,
        # stalled for 20 ms a word behind torch's own threads (docs/BENCHMARKS.md, "Framing"). Least
        # squares, not solve, so that a tiny or degenerate image gets a fit and not an error.
        sub = terms[page]
        gram, moments = np.einsum("ij,ik->jk", sub, sub), np.einsum("ij,i->j", sub, values[page])
        coef = np.linalg.lstsq(gram, moments, rcond=None)[0]
        fit = np.einsum("ij,j->i", terms, coef)
    # A surface as strong as the ink is the letter itself, as a quadratic follows a thin crop's stroke.
    if not (3 * noise < fit.max() < 0.5 * img.max() and page.mean() >= MIN_PAGE_SHARE):
        return np.zeros_like(img)
    return _surface(coef, img.shape)


def _continued(img: np.ndarray, reach: int, axis: int) -> np.ndarray:
    """``img`` continued ``reach`` pixels past both ends of ``axis``, each line across it going on as
    the trend of the two bands of pixels nearest its end (their medians, so that a ruled line or a
    stroke along the border does not tilt it): light that falls off towards the border goes on falling."""
    img = np.moveaxis(img, axis, 0)
    band = max(1, min(4, len(img) // 2))

    def beyond(end: np.ndarray) -> np.ndarray:  # the pixels past end[0], nearest first
        near = np.median(end[:band], 0)
        far = np.median(end[band: 2 * band], 0) if len(end) > band else near
        return near + (near - far) * ((np.arange(1, reach + 1)[:, None] + (band - 1) / 2) / band)

    return np.moveaxis(np.concatenate([beyond(img)[::-1], img, beyond(img[::-1])]), 0, axis)


def _shadow(img: np.ndarray, noise: float) -> np.ndarray:
    """The light a shadow takes off the page beyond its edge, which neither a plane nor a quadratic follows.

    The page is what a grey opening leaves: strokes and ruled lines are narrower than its square
    (``SHADOW_SCALE`` of the longer side), a shadow is wider, and its edge stays where it is. The
    square must reach past the border, where a shadow darkening outward would otherwise be cut short
    and its edge taken for ink; there the image goes on as its trend (``_continued``). A minimum
    over grain sits below the page: the median of what is left where the page is takes the offset
    back. As with ``_shade``, a correction under the grain floor is left alone, and so is an image
    that is not mostly page after it (a tight crop, whose strokes may be as wide as the square).
    """
    h, w = img.shape
    factor = -(-max(h, w) // SHADOW_GRID)
    if min(h, w) < 3 * factor:  # a sliver of a few pixels: no page to follow
        return np.zeros_like(img)
    small = img[: h // factor * factor, : w // factor * factor]
    small = small.reshape(h // factor, factor, w // factor, factor).mean((1, 3))
    size = max(3, round(SHADOW_SCALE * max(h, w) / factor) | 1)
    reach = size  # the erosion's half and the dilation's half
    continued = _continued(_continued(small, reach, 0), reach, 1)
    page = ndimage.grey_opening(continued, size=(size, size), mode="nearest")[reach:-reach, reach:-reach]
    # Back to full size over the pixels the copy averaged, then the few rows and columns left over held
    # at the edge: stretched over all of them, the page slid 3 px off a shadow's edge on a 700 px photo.
    page = Image.fromarray(page.astype(np.float32)).resize((w // factor * factor, h // factor * factor),
                                                            Image.Resampling.BILINEAR)
    page = np.pad(np.asarray(page), [(0, h % factor), (0, w % factor)], mode="edge")
    left = img - page
    near = left < 3 * noise + 1.0
    shadow = np.clip(page + (float(np.median(left[near])) if near.any() else 0.0), 0, None)
    # A shadow falls from outside the picture: what the opening kept away from the border is ink,
    # where strokes meet in a blob wider than the square (a letter that fills the image).
    pieces, _ = ndimage.label(shadow > 3 * noise + 1.0)
    shadow = np.where(np.isin(pieces, _on_border(pieces)), shadow, 0.0)
    if not shadow.any() or np.mean(img - shadow < 2 * noise + 1.0) < MIN_PAGE_SHARE:
        return np.zeros_like(img)
    return shadow


def _lighting(img: np.ndarray, surface: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The page's light over the plane ``surface`` (with ``_shade``'s), and ``_shadow``'s apart."""
    flat = img - surface
    shade = _shade(flat, noise)
    return surface + shade, _shadow(flat - shade, noise)


def _refitted(img: np.ndarray, shadow: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``_page_surface`` without the border under ``shadow``; None where there is none, or where under a
    tenth of the border is left lit to fit."""
    shadowed = shadow > 0
    if not shadowed.any() or np.mean(_border(shadowed)[2]) > 0.9:
        return None
    return _page_surface(img, left_out=shadowed)


def _page(img: np.ndarray) -> tuple[np.ndarray, float]:
    """The page under the ink, with its shade and shadows, and the grain's sigma on it.

    A shadow across much of the border tilts the plane fitted to it, and the grain measured about
    that plane comes out many times too large: enough to hide the shadow's edge from ``_shadow``,
    and the ink in the shadow. Where the grain read along the border is far smaller, the shadow is
    looked for at that grain and the plane fitted again to the border the shadow leaves lit. That is
    kept only if the lit border then fits as closely as the grain along it says it should: where
    the shadow was not found whole, what was missed would be taken for ink at the smaller grain.
    Failing that, the plane is fitted again from the border's darkest quarter, not its darker
    half, and kept on the same condition: squared paper cropped along two of its lines has them
    along half its border, and cropped along three, from its darkest tenth.
    """
    surface, noise = _page_surface(img)
    # A grain under one grey level reads as none (where lines drawn in one flat grey fill half the
    # border, most differences along it are nought); it is at least the pixels' own rounding.
    bound = GRAIN_CAP * max(_grain(img), 1.0)
    if bound < noise:
        lit, shadow = _lighting(img, surface, bound)
        refit = _refitted(img, shadow)
        if refit is not None and refit[1] <= bound:
            lit, shadow = _lighting(img, *refit)
            return lit + shadow, refit[1]
        quarter, tenth = (_page_surface(img, start=q) for q in (0.25, 0.1))
        # Where lines hold three quarters of the border, the fit from its darkest quarter settles on
        # them; lines stand above the page, so a fit from its darkest tenth that lies clearly lower wins.
        if tenth[1] <= bound and (quarter[1] > bound or tenth[0].mean() < quarter[0].mean() - bound):
            surface, noise = tenth
        elif quarter[1] <= bound:
            surface, noise = quarter
    lit, shadow = _lighting(img, surface, noise)
    if (lit != surface).any():
        # The grain about the plane holds the curve the plane missed (up to 2.5 times the grain on a
        # vignetted page), and three times it took the strokes' edges off: read it about the shade.
        noise = min(noise, _grain_below(_border(img - lit - shadow)[2]))
    return lit + shadow, noise


def _strokes(ink: np.ndarray) -> np.ndarray:
    """The ink pixels with at least two inked neighbours: grain and JPEG speckle that outlive the
    noise floor are single pixels or pairs, and would stretch the frame to the page's corners."""
    padded = np.pad(ink, 1).astype(np.uint8)
    h, w = ink.shape
    neighbours = sum(padded[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    strokes = ink & (neighbours >= 2)
    return strokes if strokes.any() else ink


def _clear_of_border_specks(strokes: np.ndarray) -> np.ndarray:
    """``strokes`` without the small pieces that touch the image's border: where a shadow's edge meets
    the border, what is left of it can outlive the page's fit by a few grey levels, and a speck in a
    corner stretches the frame across the whole page. On a large photo such a leftover can outweigh
    ``BORDER_SPECK_SHARE`` of a small letter's strokes: there it is told apart by lying farther from the
    largest piece than that piece is long, and being under ``FAR_SPECK_SHARE`` of its size."""
    pieces, count = ndimage.label(strokes, np.ones((3, 3)))
    if count < 2:
        return strokes
    sizes = np.bincount(pieces.ravel())
    largest = int(np.argmax(sizes[1:])) + 1
    boxes = ndimage.find_objects(pieces)
    body = boxes[largest - 1]
    span = max(body[0].stop - body[0].start, body[1].stop - body[1].start)

    def gap(piece: int) -> int:  # how far the boxes of ``piece`` and of the largest lie apart, on either axis
        box = boxes[piece - 1]
        return max(0, *(max(b.start - a.stop, a.start - b.stop) for a, b in zip(box, body, strict=True)))

    specks = [p for p in _on_border(pieces) if p != largest and (
        sizes[p] <= BORDER_SPECK_SHARE * sizes[1:].sum()
        or (sizes[p] <= FAR_SPECK_SHARE * sizes[largest] and gap(p) > span))]
    return strokes & ~np.isin(pieces, specks) if specks else strokes


def _inked(ink: np.ndarray, noise: float) -> np.ndarray:
    """The pixels clearly inked: above a tenth of the strongest ink, and clear of the grain."""
    peak = float(ink.max())
    return ink > max(0.1 * peak, min(2 * noise, 0.5 * peak))


def _faintly_inked(ink: np.ndarray) -> np.ndarray:
    """The pixels inked above the grain and above a twentieth of the strongest ink: where fine lines are
    looked for, which ``_inked`` sees only in part on a page photographed askew."""
    return ink > FINE_LINE_SHARE * float(ink.max())


def ink_layer(grey: np.ndarray, tilt: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """The ink standing above the page, and the mask of its strokes; None for a blank image.

    The first is float, white ink on black with the page at zero and the ink at full
    strength; the second marks the pixels clearly inked, without lone specks. Ruled
    and squared paper's lines are taken off as part of the page, looked for within
    ``MAX_LINE_TILT`` degrees of ``tilt`` (the page's, where it was photographed askew), and
    where none is found in the clear ink, in the fainter ink (``FINE_LINE_SHARE``).
    """
    img = grey.astype(np.float32)
    # Dark ink on a light page is the common case for photos and scans: invert it.
    if _border(img)[2].mean() > 127:
        img = 255.0 - img
    page, noise = _page(img)
    # Within three noise sigmas of the page is grain, not ink. The frame and the blank test go by
    # what stands above it; the image drops the grain, and the ink keeps its strength.
    img = img - page
    ink = np.clip(img - 3 * noise, 0, None)
    if ink.max() < MIN_INK_CONTRAST:
        return None
    inked = _inked(ink, noise)
    lines = ruled_lines(inked, tilt, ink)
    if not lines.any():
        # Fine lines photographed askew come apart where their ink is spread over two rows: look for them in
        # the fainter ink too.
        lines = ruled_lines(_faintly_inked(ink), tilt, ink)
    if lines.any():
        ink[lines] = 0
        if ink.max() < MIN_INK_CONTRAST:
            return None
        inked = _inked(ink, noise)
    return np.where(ink > 0, img, 0.0), _clear_of_border_specks(_strokes(inked))


def frame_ink(img: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """Crop ``img`` to the box of ``strokes`` and frame it as EMNIST does: (28, 28) uint8, centred."""
    ys, xs = np.nonzero(strokes)
    crop = img[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    side = max(crop.shape)
    square = np.zeros((side, side), np.float32)
    oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[oy: oy + crop.shape[0], ox: ox + crop.shape[1]] = crop
    small = np.asarray(Image.fromarray(square).resize((LETTER_SPAN, LETTER_SPAN), Image.Resampling.BICUBIC))
    out = np.zeros((28, 28), np.float32)
    pad = (28 - LETTER_SPAN) // 2
    out[pad: pad + LETTER_SPAN, pad: pad + LETTER_SPAN] = np.clip(small, 0, None)
    out *= 255.0 / max(out.max(), 1e-6)
    return out.round().astype(np.uint8)


def working_copy(grey: np.ndarray) -> tuple[np.ndarray, int]:
    """``grey`` shrunk by a whole factor (pixels averaged) to at most ``WORKING_SIDE`` a side, and the factor."""
    factor = -(-max(grey.shape) // WORKING_SIDE)
    if factor <= 1:
        return grey, 1
    return np.asarray(Image.fromarray(grey.astype(np.uint8)).reduce(factor)), factor


def page_ink_layer(grey: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray] | None, float]:
    """``ink_layer`` of a page that may have been photographed askew, and the page's tilt in degrees
    (``levelling.page_tilt``, counter-clockwise; 0.0 for a blank page)."""
    layer = ink_layer(grey)
    return (None, 0.0) if layer is None else _askew_lines_taken_off(grey, layer)


def _askew_lines_taken_off(grey: np.ndarray, layer: tuple[np.ndarray, np.ndarray]
                           ) -> tuple[tuple[np.ndarray, np.ndarray] | None, float]:
    """``ink_layer(grey)`` (given as ``layer``) with ruled lines taken off about the page's tilt too, and the
    tilt. ``ink_layer`` looks for lines within MAX_LINE_TILT of level, in steps of half a degree: on a page
    turned further they are still ink, and set its tilt themselves."""
    # Lines are looked for in the fainter ink too, as ``ink_layer`` looks for fine ones.
    strokes, above = layer[1], _faintly_inked(layer[0])
    if all(may_hold_lines(mask, within=MAX_TILT) for mask in (above, above.T)):
        # Squared paper's lines down the page ink every row at any angle near level: its lines across give
        # the tilt. It stands where taking lines off about it takes a tenth of the ink or more (all of it, on
        # a blank page): a word's letters packed close may pass for lines, at an angle of no meaning.
        tilt = page_tilt(above, squared=True)
        if abs(tilt) > MAX_LINE_TILT - 0.5:
            relined = ink_layer(grey, tilt)
            if relined is None or relined[1].sum() <= 0.9 * strokes.sum():
                return relined, tilt
    tilt = page_tilt(strokes)
    if abs(tilt) > MAX_LINE_TILT - 0.5 and (may_hold_lines(above, -tilt) or may_hold_lines(above.T, tilt)):
        return ink_layer(grey, tilt), tilt
    return layer, tilt


def to_emnist_style(grey: np.ndarray) -> np.ndarray:
    """Greyscale array of any size -> (28, 28) uint8, white ink on black, centred."""
    small = working_copy(grey)[0]
    layer = ink_layer(small)
    # A letter on ruled paper photographed further askew than lines are first looked for keeps them as ink,
    # from edge to edge; most letters have no such band, and skip the page's tilt.
    if layer is not None and any(may_hold_lines(mask, within=MAX_TILT) for mask in (layer[1], layer[1].T)):
        layer, _ = _askew_lines_taken_off(small, layer)
    return np.zeros((28, 28), np.uint8) if layer is None else frame_ink(*layer)


def load_letter_image(path: str | Path) -> np.ndarray:
    """Read an image file and make it an EMNIST-style (28, 28) uint8 array."""
    return to_emnist_style(np.asarray(read_image(path)))


def load_letter_images(paths: Sequence[str | Path], processes: int | None = None) -> list[np.ndarray]:
    """``load_letter_image`` of each path, in order, over one process per core where there are files
    enough (``alphabet.processes``), or over ``processes``."""
    return map_over_processes(load_letter_image, paths, processes)
