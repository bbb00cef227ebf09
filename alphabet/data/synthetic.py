"""Synthetic handwriting-like letters from the fonts that ship with matplotlib.

Each sample is a font glyph with a random stroke width, an affine and an elastic
distortion, then framed as EMNIST frames its images (cropped to the ink,
centred, 28 px). Deterministic for a given seed, any size. Size, width/height
and stroke softness are matched to real NIST letters (measured on femnist).
"""

from __future__ import annotations

import functools
import string
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from alphabet.augment import affine_matrices, elastic_offsets, warp
from alphabet.data.emnist_style import LETTER_SPAN
from alphabet.data.letterset import LetterSet
from alphabet.errors import UserError

if TYPE_CHECKING:
    from PIL import ImageFont

CANVAS = 64  # glyphs are rendered and distorted at this size, then framed to 28
GLYPH = 44  # longest side of a glyph on the canvas, leaving room for distortion
# Symbol-only faces: they carry no Latin letters worth learning.
SKIP_PREFIXES = ("STIXSiz", "cmex", "cmsy", "LastResort", "STIXNonUni")
LETTERS = string.ascii_uppercase + string.ascii_lowercase


def font_files() -> list[Path]:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise UserError("data.source: synthetic needs matplotlib's fonts; pip install matplotlib") from None
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(p for p in folder.glob("*.ttf") if not p.name.startswith(SKIP_PREFIXES))


def _render(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray | None:
    """One glyph, cropped to its ink and fitted into the canvas centre; None if the font lacks it."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (3 * CANVAS, 3 * CANVAS), 0)
    ImageDraw.Draw(img).text((1.5 * CANVAS, 1.5 * CANVAS), char, fill=255, font=font, anchor="mm")
    ink = np.asarray(img)
    ys, xs = np.nonzero(ink > 32)
    if len(ys) == 0:
        return None
    crop = Image.fromarray(ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])
    factor = GLYPH / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * factor)), max(1, round(crop.height * factor))),
                       Image.Resampling.LANCZOS)
    out = np.zeros((CANVAS, CANVAS), np.float32)
    top, left = (CANVAS - crop.height) // 2, (CANVAS - crop.width) // 2
    out[top: top + crop.height, left: left + crop.width] = np.asarray(crop, np.float32) / 255
    return out


@functools.lru_cache(maxsize=1)
def glyph_bank() -> tuple[torch.Tensor, tuple[str, ...]]:
    """(fonts, 52, CANVAS, CANVAS) glyphs for every font that has all 52 distinct letters."""
    from PIL import ImageFont

    bank, names = [], []
    for path in font_files():
        font = ImageFont.truetype(str(path), size=CANVAS)
        glyphs = [_render(font, c) for c in LETTERS]
        missing = _render(font, "\ue000")  # what the font draws for a glyph it lacks
        if any(g is None for g in glyphs):
            continue
        if missing is not None and any(np.array_equal(g, missing) for g in glyphs):
            continue
        if len({g.tobytes() for g in glyphs}) < len(LETTERS) - 4:  # e.g. only capitals
            continue
        bank.append(np.stack(glyphs))
        names.append(path.stem)
    if not bank:
        raise UserError("data.source: synthetic found no usable font in matplotlib's font folder")
    return torch.from_numpy(np.stack(bank)), tuple(names)


@functools.lru_cache(maxsize=1)
def pen_distance_bank() -> torch.Tensor:
    """How far (in canvas pixels, chessboard) each pixel of each bank glyph lies from the glyph's
    one-pixel centre line: a uniform pen's strokes are drawn from it. Computed once, for the bank,
    rather than for every sample drawn with a pen."""
    bank, _ = glyph_bank()
    skeletons = skeletonize(bank.flatten(0, 1).unsqueeze(1) > 0.5)
    return _distance_field(skeletons).view(bank.shape).to(torch.uint8)  # 0 to 7: a quarter of the memory


@functools.lru_cache(maxsize=1)
def blurred_bank() -> torch.Tensor:
    """The glyph bank blurred as each sample's strokes are before they are cut at a level."""
    bank, _ = glyph_bank()
    return _blur(bank.flatten(0, 1).unsqueeze(1), 2.0).view(bank.shape)


def _neighbours(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 neighbours P2..P9 of every pixel, clockwise from north (Zhang-Suen order)."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    at = lambda dy, dx: p[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]  # noqa: E731
    return [at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1), at(-1, -1)]


@functools.lru_cache(maxsize=1)
def _thinning_tables() -> torch.Tensor:
    """(2, 256): whether Zhang-Suen's first and second sub-step remove an ink pixel whose neighbours
    P2..P9 are the bits of the column's index. Its tests read the 8 neighbours alone, so a table of
    every neighbourhood replaces some 30 whole-image operations a sub-step by one lookup."""
    n = [(torch.arange(256) >> i) & 1 for i in range(8)]
    count = sum(n)
    ring = n + [n[0]]
    transitions = sum((1 - ring[i]) * ring[i + 1] for i in range(8))
    p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
    keep_shape = (count >= 2) & (count <= 6) & (transitions == 1)
    first = keep_shape & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
    second = keep_shape & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
    return torch.stack([first, second])


def skeletonize(ink: torch.Tensor, max_iter: int = 40) -> torch.Tensor:
    """Zhang-Suen thinning of a batch of binary images (N, 1, H, W), in tensor operations."""
    out = ink.to(torch.uint8, copy=True)  # written image by image below, never the caller's
    tables = _thinning_tables()
    # Each image thins on its own: those already thin leave the batch (half of the bank by the 4th pass).
    active, x = torch.arange(len(out)), out
    for _ in range(max_iter):
        before = x
        for step in (0, 1):
            code = sum((1 << i) * neighbour for i, neighbour in enumerate(_neighbours(x)))  # at most 255
            x = x.masked_fill((x > 0) & tables[step][code.long()], 0)
        changed = (x != before).flatten(1).any(1)
        out[active] = x
        if not changed.any():
            break
        active, x = active[changed], x[changed]
    return out.float()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x)
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(radius, 0))


def _frame_like_emnist(x: torch.Tensor, fill: torch.Tensor, blur: float) -> torch.Tensor:
    """Crop each (N, 1, S, S) image to its ink and centre it at 28 px, its longer side ``fill`` px."""
    n, s = x.shape[0], x.shape[-1]
    ink = x[:, 0] > 0.15
    rows, cols = ink.any(2), ink.any(1)
    idx = torch.arange(s, dtype=torch.float32)
    big = float(s)
    y0 = torch.where(rows, idx, big).amin(1)
    y1 = torch.where(rows, idx, -1.0).amax(1)
    x0 = torch.where(cols, idx, big).amin(1)
    x1 = torch.where(cols, idx, -1.0).amax(1)
    empty = y1 < 0
    y0, y1 = torch.where(empty, 0.0, y0), torch.where(empty, s - 1.0, y1)
    x0, x1 = torch.where(empty, 0.0, x0), torch.where(empty, s - 1.0, x1)
    side = torch.maximum(y1 - y0, x1 - x0) + 1
    half = side / 2 * 28 / fill
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = half * 2 / s
    theta[:, 0, 2] = (x0 + x1 + 1) / s - 1
    theta[:, 1, 2] = (y0 + y1 + 1) / s - 1
    # Anti-alias before shrinking, as EMNIST blurs before it downsamples.
    grid = F.affine_grid(theta, [n, 1, 28, 28], align_corners=False)
    return F.grid_sample(_blur(x, blur), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _pen(dist: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Redraw centre lines, given each pixel's distance from them, with a pen of a per-sample radius
    (in canvas pixels)."""
    return ((radius.view(-1, 1, 1, 1) + 0.5 - dist) * 1.5).clamp(0, 1)


def _grown(reach: torch.Tensor) -> torch.Tensor:
    """A boolean image grown by one pixel into its 8 neighbours: along rows, then along columns."""
    rows = reach.clone()
    rows[..., 1:] |= reach[..., :-1]
    rows[..., :-1] |= reach[..., 1:]
    grown = rows.clone()
    grown[..., 1:, :] |= rows[..., :-1, :]
    grown[..., :-1, :] |= rows[..., 1:, :]
    return grown


def _distance_field(skeleton: torch.Tensor, steps: int = 6) -> torch.Tensor:
    """Chessboard distance (pixels) to the nearest skeleton pixel, up to ``steps``; the
    blur before framing rounds the square pen this gives."""
    # A pixel's distance is how many growths leave it unreached. Boolean shifts, not max_pool2d on
    # floats, which took 25 times as long on CPU.
    reach = skeleton > 0
    dist = (~reach).to(torch.uint8)
    for _ in range(steps):
        reach = _grown(reach)
        dist += ~reach
    return dist.float()


def _generate_chunk(blurred: torch.Tensor, distances: torch.Tensor, fonts: torch.Tensor, labels: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
    n = len(labels)
    # Stroke width, two ways: the font's own strokes cut at a random level (low level =
    # thick), or, for half the samples, its centre line redrawn with a uniform round
    # pen, as handwriting is drawn.
    level = 0.25 + 0.5 * torch.rand(n, generator=gen)
    x = ((blurred[fonts, labels].unsqueeze(1) - level.view(n, 1, 1, 1)) * 6 + 0.5).clamp(0, 1)
    pen = torch.rand(n, generator=gen) < 0.5
    if pen.any():
        radius = 1.0 + 2.5 * torch.rand(int(pen.sum()), generator=gen)
        x[pen] = _pen(distances[fonts[pen], labels[pen]].unsqueeze(1), radius)
    theta = affine_matrices(n, rotate=12, shear=0.4, scale=0.08, translate=0.03, gen=gen,
                            device=x.device, aspect=0.3)
    # Handwritten lowercase is wider than type: real letters' width/height is about
    # 1.2x the fonts' (a 1.26 vs 0.95, n 1.17 vs 0.99), so stretch widths more often.
    theta[:, :, 0] /= 0.9 + 0.6 * torch.rand(n, 1, generator=gen)
    offsets = elastic_offsets(n, CANVAS, 2.5, gen, x.device, coarse=3)
    x = warp(x, theta, offsets)
    # Real letters span 19-22 of 28 pixels (see emnist_style.LETTER_SPAN), and their
    # strokes are soft: a 2 px blur on the canvas matches femnist's share of
    # saturated pixels (16 vs 14 per image; 49 with the former 1 px).
    x = _frame_like_emnist(x, fill=LETTER_SPAN - 1.5 + 2.5 * torch.rand(n, generator=gen), blur=2.0)
    peak = x.flatten(1).amax(1).clamp_min(1e-6).view(n, 1, 1, 1)
    return (x / peak * 255).round().clamp(0, 255).to(torch.uint8)[:, 0]


def generate(size: int, seed: int = 0, classes: list[str] | None = None, chunk: int = 4096) -> LetterSet:
    """``size`` synthetic letters of ``classes`` (default all 52), balanced, deterministic by seed."""
    classes = list(classes or LETTERS)
    bank, _ = glyph_bank()
    columns = torch.tensor([LETTERS.index(c) for c in classes])
    blurred, distances = blurred_bank()[:, columns], pen_distance_bank()[:, columns]
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % len(classes)
    labels = labels[torch.randperm(size, generator=gen)]
    fonts = torch.randint(len(bank), (size,), generator=gen)
    images = torch.empty(size, 28, 28, dtype=torch.uint8)
    for start in range(0, size, chunk):
        part = slice(start, start + chunk)
        images[part] = _generate_chunk(blurred, distances, fonts[part], labels[part], gen)
    return LetterSet(images.numpy(), labels.numpy(), classes)
