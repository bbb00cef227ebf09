"""Words written in separate letters, split into one EMNIST-style image per letter."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from alphabet.data.emnist_style import ink_layer, to_emnist_style
from alphabet.data.segment import split_letters


def page(width: int = 400, height: int = 160) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (width, height), 235)
    return img, ImageDraw.Draw(img)


def draw_l(d: ImageDraw.ImageDraw, x: int) -> None:
    d.line([(x, 30), (x, 120)], fill=20, width=8)


def draw_o(d: ImageDraw.ImageDraw, x: int) -> None:
    d.ellipse([x, 60, x + 50, 120], outline=20, width=8)


def draw_i(d: ImageDraw.ImageDraw, x: int, dot_dx: int = 0) -> None:
    d.line([(x, 65), (x, 120)], fill=20, width=8)
    d.ellipse([x - 6 + dot_dx, 35, x + 6 + dot_dx, 47], fill=20)


def draw_t(d: ImageDraw.ImageDraw, x: int) -> None:
    # The crossbar drawn apart from the stem, as a pen lifted between the strokes would leave it.
    d.line([(x, 35), (x, 120)], fill=20, width=8)
    d.line([(x - 22, 60), (x - 6, 60)], fill=20, width=7)
    d.line([(x + 6, 60), (x + 22, 60)], fill=20, width=7)


def alone(draw, x: int) -> np.ndarray:
    img, d = page()
    draw(d, x)
    return to_emnist_style(np.asarray(img))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_a_word_splits_into_its_letters_left_to_right():
    img, d = page()
    word = [(draw_o, 40), (draw_l, 130), (draw_i, 180), (draw_t, 250), (draw_o, 300)]
    for draw, x in word:
        draw(d, x)
    letters = split_letters(np.asarray(img))
    assert len(letters) == len(word)
    assert [letter.box[0] for letter in letters] == sorted(letter.box[0] for letter in letters)
    for letter, (draw, x) in zip(letters, word, strict=True):
        # Each letter framed from the word is the letter framed on a page of its own.
        assert similarity(letter.pixels, alone(draw, x)) > 0.97
        left, top, right, bottom = letter.box
        assert left <= x <= right and top < 70 and bottom > 110


@pytest.mark.parametrize("dot_dx", [0, 14])
def test_an_i_keeps_its_dot(dot_dx):
    # The dot is a stroke of its own; set off to the right, it shares no column with the stem.
    img, d = page()
    draw_l(d, 60)
    draw_i(d, 140, dot_dx)
    draw_l(d, 220)
    letters = split_letters(np.asarray(img))
    assert len(letters) == 3
    assert letters[1].box[1] <= 36  # its top is the dot's
    assert similarity(letters[1].pixels, alone(lambda dd, x: draw_i(dd, x, dot_dx), 140)) > 0.97


def test_letters_whose_soft_edges_touch_are_still_split():
    # Blurred (a scan, a soft pencil), two letters 8 px apart touch at their edges but not their cores.
    img, d = page()
    draw_o(d, 40)
    draw_o(d, 98)
    blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(3)))
    _, strokes = ink_layer(blurred)
    assert ndimage.label(strokes, structure=np.ones((3, 3)))[1] == 1  # the ink is one piece
    assert len(split_letters(blurred)) == 2


def test_a_blank_page_has_no_letters():
    assert split_letters(np.full((80, 200), 240, np.uint8)) == []
