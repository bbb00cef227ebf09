"""Words written in separate letters, split into one EMNIST-style image per letter."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from alphabet.data.emnist_style import ink_layer, to_emnist_style
from alphabet.data.segment import row_spans, split_letters, split_rows, word_starts


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


def test_a_word_cropped_to_its_ink_keeps_the_strokes_that_touch_both_edges():
    # "all" cropped tightly: its l's run from the top edge to the bottom one and were taken off as lines
    # of squared paper (none across), leaving "a".
    img, d = page(140, 94)
    d.ellipse((10, 44, 50, 92), outline=20, width=4)
    d.line([(50, 44), (50, 93)], fill=20, width=4)
    for x in (80, 115):
        d.line([(x, 0), (x, 93)], fill=20, width=4)
    assert len(split_letters(np.asarray(img))) == 3


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


def touching_pair() -> np.ndarray:
    # Two o's whose strokes run into each other: one piece of ink, twice as wide as it is tall.
    img, d = page()
    draw_o(d, 40)
    draw_o(d, 86)
    return np.asarray(img)


def test_a_wide_piece_also_comes_cut_in_two():
    (letter,) = split_letters(touching_pair())
    assert letter.cuts
    for left, right in letter.cuts:
        assert left.box[0] == letter.box[0] and right.box[2] == letter.box[2]
    # One of the cuts is where the two o's meet, and gives back each o.
    left, right = min(letter.cuts, key=lambda cut: abs(cut[0].box[2] - 88))
    assert 80 <= left.box[2] <= 96
    for half, x in ((left, 40), (right, 86)):
        assert similarity(half.pixels, alone(draw_o, x)) > 0.8
    # A letter as wide as it is tall is not cut.
    assert all(not letter.cuts for letter in split_letters(np.asarray(alone_page(draw_o, 40))))


def alone_page(draw, x: int) -> Image.Image:
    img, d = page()
    draw(d, x)
    return img


class InkHeightJudge:
    """A stand-in classifier, sure of a framed image whose ink fills at least ``rows`` rows: a
    letter framed alone fills about 20, two letters framed as one about 10."""

    classes = ["o", "x"]

    def __init__(self, sure: float, unsure: float) -> None:
        self.sure, self.unsure = sure, unsure

    def predict_probs(self, pixels: torch.Tensor) -> torch.Tensor:
        tall = (pixels > 0).any(2).sum(1) >= 16
        p = torch.where(tall, self.sure, self.unsure)
        return torch.stack([p, 1 - p], 1)


@pytest.mark.parametrize(("sure", "unsure", "letters"), [(0.95, 0.5, 2), (0.7, 0.6, 1)])
def test_a_wide_piece_is_read_as_two_letters_only_where_the_halves_are_surer(sure, unsure, letters):
    from alphabet.predict import _classifier_reading, _piece_readings

    # Split when both halves together (0.95 x 0.95) beat the whole (0.5); kept whole when not (0.49 < 0.6).
    (pieces,) = _piece_readings(InkHeightJudge(sure, unsure), [split_letters(touching_pair())])
    assert len(_classifier_reading(pieces)) == letters


def test_a_space_within_one_piece_of_ink_parts_no_empty_word():
    from alphabet.predict import _words_of_row

    # The second piece reads surer as two letters; a space found between its halves (a remnant of a line
    # drawn out beside a letter) left it in the first word and the second word empty, printed as "".
    whole, half = (None, np.array([0.4, 0.6])), (None, np.array([0.95, 0.05]))
    pieces = [[[whole]], [[whole], [half, half]]]
    assert _words_of_row(pieces, [0, 2]) == [pieces]
    assert _words_of_row(pieces, [0, 1]) == [[pieces[0]], [pieces[1]]]


def test_a_large_image_gives_boxes_in_its_own_pixels():
    # Split at a working size, the boxes are scaled back to the image the user gave.
    img, d = page()
    for draw, x in ((draw_o, 40), (draw_l, 130), (draw_i, 180)):
        draw(d, x)
    large = np.asarray(img.resize((img.width * 8, img.height * 8), Image.Resampling.BICUBIC))
    small_boxes = [letter.box for letter in split_letters(np.asarray(img))]
    large_boxes = [letter.box for letter in split_letters(large)]
    assert len(large_boxes) == 3 and max(large.shape) > 1024
    for small, big in zip(small_boxes, large_boxes, strict=True):
        assert all(abs(8 * s - b) <= 16 for s, b in zip(small, big, strict=True)), (small, big)


def test_two_rows_of_letters_are_refused_not_misread():
    from alphabet.errors import UserError

    img, d = page(400, 300)
    for x in (40, 130):
        draw_o(d, x)
        d.ellipse([x, 200, x + 50, 260], outline=20, width=8)  # a second row below the first
    with pytest.raises(UserError, match="found 2 rows of letters; expected one row"):
        split_letters(np.asarray(img))
    # An i's dot above a row, or letters a little higher or lower than their neighbours, are one row.
    img, d = page()
    draw_i(d, 60)
    draw_o(d, 100)
    draw_l(d, 200)
    assert len(split_letters(np.asarray(img))) == 3


def test_rows_split_into_lines_and_lines_into_words():
    first, d = page(400, 160)
    for draw, x in ((draw_l, 40), (draw_o, 70), (draw_i, 220), (draw_t, 270)):  # "lo it": 90 px before the i
        draw(d, x)
    second, d = page(400, 160)
    for draw, x in ((draw_o, 40), (draw_l, 130)):  # "ol"
        draw(d, x)
    note = np.vstack([np.asarray(first), np.asarray(second)])
    rows = split_rows(note)
    assert [len(row) for row in rows] == [4, 2]  # the i's dot, a band of its own, stays with its row
    assert all(letter.box[3] <= 160 for letter in rows[0]) and all(letter.box[1] >= 160 for letter in rows[1])
    assert word_starts([[letter.box for letter in row] for row in rows]) == [[0, 2], [0]]
    # Each letter is framed as it is in a row of its own.
    for row, alone_row in zip(rows, (split_letters(np.asarray(first)), split_letters(np.asarray(second))),
                              strict=True):
        for letter, same in zip(row, alone_row, strict=True):
            assert similarity(letter.pixels, same.pixels) > 0.99
    assert split_rows(np.full((200, 300), 235, np.uint8)) == []
    assert row_spans(np.zeros((20, 30), bool)) == []  # ink too faint to leave a stroke
    assert word_starts([]) == [] and word_starts([[]]) == [[]]
    # The page's median letter height sets the space: a short row of small letters is not parted at
    # gaps its own letters' height would call spaces.
    tall = [(0, 0, 80, 90), (100, 0, 180, 90), (200, 0, 280, 90)]
    small = [(0, 0, 40, 40), (70, 0, 110, 40), (140, 0, 180, 40)]  # 30 px apart: under 0.6 of 90
    assert word_starts([tall, small]) == [[0], [0]]
    assert word_starts([small]) == [[0, 1, 2]]


def three_row_note() -> np.ndarray:
    """Three rows of words, 40 px of page between them: "lo it", "ol lo", "it ol"."""
    rows = []
    for word in (((draw_l, 40), (draw_o, 70), (draw_i, 220), (draw_t, 270)),
                 ((draw_o, 40), (draw_l, 130), (draw_l, 240), (draw_o, 270)),
                 ((draw_i, 40), (draw_t, 90), (draw_o, 230), (draw_l, 320))):
        img, d = page(460, 130)
        for draw, x in word:
            draw(d, x - 10)
        rows.append(np.asarray(img)[15:])
    return np.vstack(rows)


def turned_page(note: np.ndarray, degrees: float) -> np.ndarray:
    """``note`` photographed askew: turned by ``degrees`` (counter-clockwise), the corners filled with page."""
    return np.asarray(Image.fromarray(note).rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=235))


@pytest.mark.parametrize("degrees", [-8.0, -4.0, 5.0, 9.5])
def test_a_note_photographed_askew_is_levelled_before_it_is_split(degrees):
    from alphabet.data.levelling import page_tilt

    note = three_row_note()
    level = split_rows(note)
    assert [len(row) for row in level] == [4, 4, 4]
    askew = turned_page(note, degrees)
    assert page_tilt(ink_layer(askew)[1]) == pytest.approx(degrees, abs=0.5)
    assert_read_as_the_plain_note(split_rows(askew), level, askew)


def assert_read_as_the_plain_note(found: list, plain: list, image: np.ndarray) -> None:
    """``found``, split from ``image``, has the rows, letters and words (``[[0, 2]] * 3``) of ``plain``,
    split from the same note written plainly, each letter framed as it is there; each box is in the
    image's own pixels, around its letter's ink there."""
    assert [len(row) for row in found] == [len(row) for row in plain]
    assert (word_starts([[letter.upright for letter in row] for row in found])
            == word_starts([[letter.box for letter in row] for row in plain]) == [[0, 2]] * 3)
    for row, plain_row in zip(found, plain, strict=True):
        for letter, same in zip(row, plain_row, strict=True):
            assert similarity(letter.pixels, same.pixels) > 0.9
    ink = image < 128
    boxed = np.zeros_like(ink)
    for letter in (letter for row in found for letter in row):
        left, top, right, bottom = letter.box
        boxed[top:bottom, left:right] = True
    assert (ink & boxed).sum() / ink.sum() > 0.99


def lined_paper(page: np.ndarray, squared: bool, grey: int = 150, offset: int = 10, thick: int = 3) -> np.ndarray:
    """``page`` under grey lines ``thick`` px thick every 40 px from ``offset`` (both ways where ``squared``),
    the ink showing where it is darker, as on ruled or squared paper."""
    ys, xs = np.ogrid[: page.shape[0], : page.shape[1]]
    on_line = ((ys - offset) % 40 < thick) | (squared & ((xs - offset) % 40 < thick))
    return np.where(on_line, np.minimum(page, grey), page).astype(np.uint8)


def note_photographed_on_lined_paper(squared: bool, degrees: float, crop: int = 70, grain_seed: int | None = None,
                                     **lines: int) -> np.ndarray:
    """``three_row_note`` on a larger sheet of ``lined_paper`` (``lines``: its grey, offset and thickness), with
    grain of sigma 3 where ``grain_seed`` is given, photographed turned by ``degrees`` and cropped ``crop`` px
    from the top and bottom and 70 px from the sides: the lines run from edge to edge."""
    note = three_row_note()
    sheet = np.full((note.shape[0] + 200, note.shape[1] + 200), 235, np.uint8)
    sheet[100:-100, 100:-100] = note
    sheet = lined_paper(sheet, squared, **lines).astype(np.float64)
    if grain_seed is not None:
        sheet += np.random.default_rng(grain_seed).normal(0, 3, sheet.shape)
    photo = Image.fromarray(np.clip(sheet, 0, 255).astype(np.uint8)).rotate(degrees, Image.Resampling.BICUBIC,
                                                                             fillcolor=235)
    return np.asarray(photo)[crop:-crop, 70:-70]


@pytest.mark.parametrize(("squared", "degrees"), [(False, -6.0), (False, 7.0), (True, -6.0), (True, 8.0)])
def test_a_note_on_lined_paper_photographed_askew_loses_its_lines(squared, degrees):
    # Photographed further askew than lines are first looked for (``MAX_LINE_TILT``), the photo framed inside
    # the page, so that the lines run from edge to edge. Squared paper's lines down the page ink every pixel
    # row at any angle near level, so its tilt is read off the lines across instead.
    found = split_rows(note_photographed_on_lined_paper(squared, degrees))
    assert [len(row) for row in found] == [4, 4, 4]
    assert word_starts([[letter.upright for letter in row] for row in found]) == [[0, 2]] * 3
    assert all(letter.box[2] - letter.box[0] < 100 for row in found for letter in row)


@pytest.mark.parametrize(("squared", "degrees"), [(False, -2.0), (False, 6.5), (True, 2.0), (True, -6.0)])
def test_a_note_on_fine_faint_lines_photographed_askew_loses_them(squared, degrees):
    # Lines 1 px thick and 40 levels below the page, turned, spread their ink over two rows, in places under
    # the bar of clear ink: they came apart into dashes, which were no line, and were read as strokes.
    found = split_rows(note_photographed_on_lined_paper(squared, degrees, grain_seed=0, grey=195, thick=1))
    assert [len(row) for row in found] == [4, 4, 4]
    assert word_starts([[letter.upright for letter in row] for row in found]) == [[0, 2]] * 3
    assert all(letter.box[2] - letter.box[0] < 100 for row in found for letter in row)


@pytest.mark.parametrize(("thick", "offset", "degrees", "crop"), [(2, 12, 5.0, 55), (1, 6, -6.5, 85)])
def test_a_line_cut_off_by_the_edge_goes_in_all_its_pieces(thick, offset, degrees, crop):
    # A line that runs off the top or bottom edge is cut into pieces by the lines down the page. Turned 5
    # degrees, one steps to the next row within such a gap; 1 px thick, one comes apart beside the crossing
    # lines, whose reach took the short pieces there too. Neither gap was bridged, and the pieces stayed,
    # read as part of the last letter or as letters of their own.
    found = split_rows(note_photographed_on_lined_paper(True, degrees, crop, grain_seed=offset, grey=195, offset=offset,
                                                        thick=thick))
    assert [len(row) for row in found] == [4, 4, 4]
    assert all(letter.box[2] - letter.box[0] < 100 for row in found for letter in row)


@pytest.mark.parametrize(("spacing", "crop"), [(48, 190), (40, 170), (48, 150)])
def test_a_word_on_ruled_paper_photographed_askew_keeps_no_piece_of_a_line(spacing, crop):
    # Cropped close to one word, rules turned 6 degrees run off the photo's top or bottom edge part of the way
    # across: those pieces are lines too, not strokes framed with the letters.
    img, d = page(460, 130)
    for draw, x in ((draw_l, 40), (draw_o, 70), (draw_i, 220), (draw_t, 270)):
        draw(d, x)
    word = np.asarray(img)
    level = split_letters(word)
    sheet = np.full((word.shape[0] + 400, word.shape[1] + 400), 235, np.uint8)
    sheet[200:-200, 200:-200] = word
    for y in range(6, sheet.shape[0], spacing):
        sheet[y: y + 3] = np.minimum(sheet[y: y + 3], 150)  # grey rules 3 px thick
    for degrees in (-6.0, 6.0):
        turned = np.asarray(Image.fromarray(sheet).rotate(degrees, Image.Resampling.BICUBIC, fillcolor=235))
        found = split_letters(turned[crop:-crop, 170:-170])
        assert len(found) == len(level) == 4, degrees
        for letter, same in zip(found, level, strict=True):
            assert similarity(letter.pixels, same.pixels) > 0.85, degrees


def test_strokes_along_faint_lines_keep_their_ink():
    # Printed lines far fainter than the ink are told apart by it: a stem that runs along a line down the
    # page, half on it, keeps the half that lies on the line (it went with the line, thinning the stem).
    img, d = page(400, 160)
    for draw, x in ((draw_l, 44), (draw_o, 70), (draw_l, 164), (draw_t, 244), (draw_l, 324)):
        draw(d, x)
    word = np.asarray(img)
    level, found = split_letters(word), split_letters(lined_paper(word, True, grey=175, offset=0))
    assert len(found) == len(level) == 5
    for letter, same in zip(found, level, strict=True):
        assert similarity(letter.pixels, same.pixels) > 0.95


def test_a_word_on_squared_paper_photographed_askew_loses_its_lines():
    # Letters set close measure as one piece, wider than the crop is tall, once the lines crossing their gaps
    # are closed over: a line down the page is told by reaching well past the row of letters too.
    img, d = page(460, 130)
    for draw, x in ((draw_o, 40), (draw_o, 100), (draw_l, 160), (draw_o, 176), (draw_i, 240)):
        draw(d, x)
    word = np.asarray(img)
    level = split_letters(word)
    sheet = np.full((word.shape[0] + 400, word.shape[1] + 400), 235, np.uint8)
    sheet[200:-200, 200:-200] = word
    sheet = lined_paper(sheet, True, grey=175, offset=0)
    for degrees in (-6.0, 6.0):
        turned = np.asarray(Image.fromarray(sheet).rotate(degrees, Image.Resampling.BICUBIC, fillcolor=235))
        found = split_letters(turned[180:-180, 170:-170])
        assert len(found) == len(level) == 5, degrees
        for letter, same in zip(found, level, strict=True):
            assert similarity(letter.pixels, same.pixels) > 0.85, degrees

def test_a_level_page_or_one_short_word_is_left_as_it_is():
    from alphabet.data.levelling import page_tilt

    assert page_tilt(ink_layer(three_row_note())[1]) == 0.0
    # A tall l beside an o reads about as thin a little askew as level: no angle stands out.
    img, d = page()
    draw_o(d, 40)
    draw_l(d, 130)
    assert page_tilt(ink_layer(np.asarray(img))[1]) == 0.0
    letters = split_letters(np.asarray(img))
    assert [letter.upright for letter in letters] == [letter.box for letter in letters]


def slanted_page(note: np.ndarray, degrees: float) -> np.ndarray:
    """``note`` written leaning ``degrees`` to the right (negative: left): sheared about its middle row,
    widened with page to keep all of it."""
    h, _ = note.shape
    lean = np.tan(np.radians(degrees))
    pad = int(np.ceil(abs(lean) * h / 2)) + 1
    wide = np.pad(note, ((0, 0), (pad, pad)), constant_values=235)
    # PIL maps each output pixel (x, y) to the input's (x + lean (y - h / 2), y): tops lean right.
    return np.asarray(Image.fromarray(wide).transform(wide.shape[::-1], Image.Transform.AFFINE,
                                                      (1, lean, -lean * h / 2, 0, 1, 0),
                                                      resample=Image.Resampling.BICUBIC, fillcolor=235))


@pytest.mark.parametrize("degrees", [-25.0, 20.0, 35.0])
def test_a_note_written_slanted_is_set_upright_before_it_is_split(degrees):
    # Letters leaning far were framed leaning, and read worse (on femnist's training writers' words,
    # 0.80 of the letters read right at 30 degrees against 0.95 upright); an l leaning into the next
    # letter's columns could join it.
    from alphabet.data.levelling import ink_slant

    note = three_row_note()
    upright = ink_layer(note)[1]
    assert ink_slant(upright, row_spans(upright)) == 0.0
    level = split_rows(note)
    slanted = slanted_page(note, degrees)
    strokes = ink_layer(slanted)[1]
    assert ink_slant(strokes, row_spans(strokes)) == pytest.approx(degrees, abs=1.5)
    assert_read_as_the_plain_note(split_rows(slanted), level, slanted)


def test_a_box_on_the_levelled_page_is_turned_back_onto_the_page():
    from alphabet.data.levelling import Levelling

    spot = np.zeros((300, 500), np.float32)
    spot[40:46, 400:406] = 1.0  # near the top right corner
    levelling = Levelling(spot.shape, 8.0)
    levelled = levelling.level(spot, order=1)
    assert levelled.shape[0] > spot.shape[0] and levelled.shape[1] > spot.shape[1]  # the whole page kept
    assert levelled.sum() == pytest.approx(spot.sum(), rel=0.05)
    ys, xs = np.nonzero(levelled > 0.5)
    left, top, right, bottom = levelling.box_back((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    assert left <= 400 and top <= 40 and right >= 406 and bottom >= 46
    assert right - left < 14 and bottom - top < 14
    assert Levelling(spot.shape, 0.5).level(spot, order=1) is spot  # under ``MIN_TILT``: left as it is
    # Set upright from a lean of 30 degrees as well: the spot still comes back to where it was.
    levelling = Levelling(spot.shape, 8.0, 30.0)
    levelled = levelling.level(spot, order=1)
    assert levelled.sum() == pytest.approx(spot.sum(), rel=0.05)
    ys, xs = np.nonzero(levelled > 0.5)
    left, top, right, bottom = levelling.box_back((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    assert left <= 400 and top <= 40 and right >= 406 and bottom >= 46
    assert right - left < 16 and bottom - top < 16


def test_a_note_taller_than_wide_on_ruled_paper_loses_its_lines():
    # Each row is far shorter than the lines are long, though the rows together are taller: the lines
    # go as they do under one letter.
    rows = []
    for _ in range(3):
        img, d = page(260, 160)
        for draw, x in ((draw_o, 30), (draw_l, 120), (draw_o, 160)):
            draw(d, x)
        rows.append(np.asarray(img))
    note = np.vstack(rows).copy()
    for y in range(10, note.shape[0], 40):
        note[y: y + 3] = 150  # grey rules, 3 px thick, the letters crossing them
    found = split_rows(note)
    assert [len(row) for row in found] == [3, 3, 3]
    assert all(letter.box[2] - letter.box[0] < 100 for row in found for letter in row)


def test_a_note_wider_than_tall_on_squared_paper_loses_its_lines():
    # The second row's letters stand under the first row's gaps, so the note's ink spans every column,
    # but no letter of a row is wide: the lines down the page go too.
    rows = []
    for shift in (0, 35):
        img, d = page(560, 160)
        for k in range(7):
            draw_o(d, 30 + 70 * k + shift)
        rows.append(np.asarray(img))
    note = np.vstack(rows).copy()
    note[10::40] = note[11::40] = note[12::40] = 150  # grey rules both ways, 3 px thick
    note[:, 15::40] = note[:, 16::40] = note[:, 17::40] = 150
    found = split_rows(note)
    assert [len(row) for row in found] == [7, 7]
    assert all(letter.box[2] - letter.box[0] < 60 for row in found for letter in row)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reading files over processes is Linux's (fork)")
def test_notes_and_words_read_from_files_over_processes_as_one_at_a_time(tmp_path):
    from alphabet.predict import _letters_of_file, _rows_of_file
    from alphabet.processes import map_over_processes

    paths = []
    for i in range(12):
        img, d = page(400, 160)
        for draw, x in ((draw_l, 40 + i), (draw_o, 70 + i), (draw_i, 220 - i), (draw_t, 270)):
            draw(d, x)
        paths.append(tmp_path / f"{i}.png")
        img.save(paths[-1])

    def letters(read):  # a word's letters, or a note's rows of them, as one list
        return [x for item in read for x in (item if isinstance(item, list) else [item])]

    for read in (_letters_of_file, _rows_of_file):
        for alone, together in zip([read(p) for p in paths], map_over_processes(read, paths, processes=2),
                                   strict=True):
            assert len(letters(alone)) == 4 and [x.box for x in letters(alone)] == [x.box for x in letters(together)]
            assert all(np.array_equal(x.pixels, y.pixels)
                       for x, y in zip(letters(alone), letters(together), strict=True))
