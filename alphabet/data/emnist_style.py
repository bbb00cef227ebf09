"""Turn any image of one letter into an EMNIST-style 28x28 sample.

EMNIST's recipe: grey, white ink on black, cropped to the ink, centred in a
square with a 2 px pad, resized to 28 and stretched so the brightest pixel is 255.
Its 2 px pad is nominal: EMNIST blurs before it crops, so its letters' longer
side spans about 20 of the 28 pixels (median 20-21 at a 5-20% ink threshold on
the real letters in femnist_letters.npz). Letters framed here span the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from alphabet.errors import UserError

# Refuse absurd images before decoding them fully (a decompression bomb, say).
MAX_PIXELS = 40_000_000
LETTER_SPAN = 20  # pixels of the longer side of the letter, as in real EMNIST images
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def read_image(path: str | Path) -> Image.Image:
    """Open an image file as greyscale, with a one-line error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes); expected an image")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"{path}: image is {img.width}x{img.height}; expected at most "
                                f"{MAX_PIXELS:,} pixels")
            img.load()
            return img.convert("L")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__}); expected PNG, JPEG, "
                        "BMP, GIF, TIFF or WebP") from None


def to_emnist_style(grey: np.ndarray) -> np.ndarray:
    """Greyscale array of any size -> (28, 28) uint8, white ink on black, centred."""
    img = grey.astype(np.float32)
    # Dark ink on a light page is the common case for photos and scans: invert it.
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if border.mean() > 127:
        img = 255.0 - img
    img -= np.median(border) if border.mean() <= 127 else 255.0 - np.median(border)
    img = np.clip(img, 0, None)
    peak = img.max()
    if peak <= 0:
        return np.zeros((28, 28), np.uint8)
    ys, xs = np.nonzero(img > 0.1 * peak)
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


def load_letter_image(path: str | Path) -> np.ndarray:
    """Read an image file and make it an EMNIST-style (28, 28) uint8 array."""
    return to_emnist_style(np.asarray(read_image(path)))
