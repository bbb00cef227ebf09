"""A reading drawn on its image (``alphabet predict --word|--text --overlay DIR``): where the letters were
found, how they were grouped into words, and what each was read as, so that a misreading can be traced
to the cut, the spacing or the classifier at a glance.

Each letter's box is outlined in its word's colour (words alternate two colours), its top letter written
above it; with a word list, the word read in the list is written under the word. A letter (or, with a
word list, a word) read less surely than ``--accept`` is drawn in red.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from alphabet.data.emnist_style import read_image
from alphabet.predict import WordChoices, WordLetter
from alphabet.predict_output import is_sure, word_sure
from alphabet.rundir import claim_new_file

WORD_COLOURS = ((31, 119, 180), (255, 127, 14))  # blue and orange: told apart in most colour blindness
UNSURE_COLOUR = (214, 39, 40)


def draw_reading(image: Image.Image, words: list[list[WordLetter]], choices: list[WordChoices | None],
                 accept: float | None = None) -> Image.Image:
    """``image`` (as ``read_image`` gives it: upright, greyscale) in colour with ``words`` drawn on it: each
    word's letters' boxes and top letters, and with a word list its choice there (``choices``, one per
    word; None without a list)."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    heights = [bottom - top for word in words for (_, top, _, bottom), _ in word]
    # Labels at half a letter's height read at a glance without hiding the next row.
    size = max(10, round(0.5 * float(np.median(heights)))) if heights else 10
    font = ImageFont.load_default(size=size)
    line = max(1, size // 8)
    for w, (word, choice) in enumerate(zip(words, choices, strict=True)):
        colour = WORD_COLOURS[w % 2]
        # With a word list the word is accepted or not, as ``alphabet predict`` marks it; else each letter.
        unsure_word = choice is not None and word_sure(word, choice, accept) is False
        for (left, top, right, bottom), top_k in word:
            unsure = unsure_word if choice is not None else is_sure(top_k, accept) is False
            letter_colour = UNSURE_COLOUR if unsure else colour
            draw.rectangle((left, top, right - 1, bottom - 1), outline=letter_colour, width=line)
            if top_k:  # above the box, or over its top edge where the image ends above it
                draw.text((left, max(top - line, size)), top_k[0][0], fill=letter_colour, font=font, anchor="lb")
        if choice:
            left = min(box[0] for box, _ in word)
            bottom = max(box[3] for box, _ in word)
            draw.text((left, min(bottom + line, canvas.height - size)), choice[0][0],
                      fill=UNSURE_COLOUR if unsure_word else colour, font=font, anchor="lt")
    return canvas


# An image's path, its words (letters with boxes and top-k) and each word's choices in a word list (None without).
Reading = tuple[str, list[list[WordLetter]], list[WordChoices | None]]


def write_overlays(folder: str | Path, readings: list[Reading], accept: float | None = None) -> list[Path]:
    """For each (image path, its words, their choices), the image with its reading drawn on it
    (``draw_reading``) as a PNG in ``folder`` (made if missing), named after the image, never over a file
    that exists (``photo.png``, else ``photo-2.png``, ...). Returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path, words, choices in readings:
        drawn = draw_reading(read_image(path), words, choices, accept)
        # photo.png, else photo-2.png ...: taken as it is made, for a predict beside this one may write here too
        with claim_new_file(folder / f"{Path(path).stem}.png", log=lambda _: None) as out:
            # A photo's grain barely compresses: the default level takes 2.6 times as long for a larger file.
            drawn.save(out, compress_level=3)
        written.append(out)
    return written
