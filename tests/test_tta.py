"""Test-time views: their geometry. tests/test_cli.py runs evaluate and predict with --tta."""

import pytest
import torch

from alphabet.tta import PLAIN, TTA_VIEWS, View


def dot(row=10, col=12):
    x = torch.zeros(2, 1, 28, 28)
    x[:, 0, row, col] = 1.0
    return x


def test_the_first_view_is_the_image_itself_and_no_view_repeats():
    x = dot()
    assert PLAIN == (View(),) and TTA_VIEWS[0] == View() and View().apply(x) is x
    assert len(set(TTA_VIEWS)) == len(TTA_VIEWS) == 9


@pytest.mark.parametrize(("view", "where"), [
    (View(dx=1), (10, 13)), (View(dx=-1), (10, 11)), (View(dy=1), (11, 12)), (View(dy=-1), (9, 12)),
])
def test_shifts_move_ink_by_whole_pixels(view, where):
    out = view.apply(dot())
    assert out[:, 0].nonzero()[:, 1:].tolist() == [list(where)] * 2  # moved, not blurred
    assert out.sum() == 2


def test_scaling_and_rotation_keep_a_letter_centred_and_change_its_size_as_named():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 6:22, 13:15] = 1.0  # a centred vertical stroke, like an l

    def height(img):
        rows = (img[0, 0] > 0.5).any(1).nonzero()
        return int(rows.max() - rows.min() + 1)

    assert height(View(scale=1.08).apply(x)) > height(x) > height(View(scale=0.92).apply(x))
    for degrees in (6, -6):
        out = View(degrees=degrees).apply(x)
        assert abs(float(out.sum() / x.sum()) - 1) < 0.05  # ink kept
        top, bottom = out[0, 0, 6:9], out[0, 0, 19:22]
        cols = torch.arange(28.0)
        # The top and bottom of the stroke lean to opposite sides.
        lean = float((top.sum(0) * cols).sum() / top.sum() - (bottom.sum(0) * cols).sum() / bottom.sum())
        assert abs(lean) > 0.5
