import torch

from alphabet.augment import augment, erase
from alphabet.config import AugmentConfig

OFF = AugmentConfig(rotate=0, shear=0, scale=0, translate=0, elastic=0, erase=0)


def batch(n=64):
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    return x


def test_all_strengths_zero_is_identity():
    x = batch()
    assert torch.equal(augment(x, OFF, torch.Generator().manual_seed(0)), x)


def test_same_generator_state_same_output_and_different_otherwise():
    config = AugmentConfig(rotate=15, shear=0.2, scale=0.1, translate=0.1, elastic=1.5, erase=0.5)
    a = augment(batch(), config, torch.Generator().manual_seed(1))
    b = augment(batch(), config, torch.Generator().manual_seed(1))
    c = augment(batch(), config, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (64, 1, 28, 28) and a.min() >= 0 and a.max() <= 1


def test_each_sample_gets_its_own_transform():
    out = augment(batch(), AugmentConfig(rotate=20, shear=0, scale=0, translate=0), torch.Generator().manual_seed(0))
    assert len({tuple(o.flatten().round(decimals=3).tolist()) for o in out}) == 64


def test_rotation_keeps_the_ink_roughly():
    x = batch()
    out = augment(x, AugmentConfig(rotate=30, shear=0, scale=0, translate=0), torch.Generator().manual_seed(0))
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ratio > 0.85) & (ratio < 1.15)).all()


def test_translation_moves_the_centre_of_mass():
    x = batch()
    out = augment(x, AugmentConfig(rotate=0, shear=0, scale=0, translate=0.2), torch.Generator().manual_seed(0))
    cols = torch.arange(28.0)
    centre = (out.sum((1, 2)) * cols).sum(1) / out.sum((1, 2, 3))
    assert centre.std() > 1.0  # shifted by different amounts


def test_elastic_alone_changes_pixels_but_not_much_ink():
    x = batch()
    out = augment(x, AugmentConfig(rotate=0, shear=0, scale=0, translate=0, elastic=1.0),
                  torch.Generator().manual_seed(0))
    assert not torch.equal(out, x)
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert abs(ratio.mean() - 1) < 0.1  # local stretches, no net loss of ink
    rows = torch.arange(28.0)
    shift = (out.sum((1, 3)) * rows).sum(1) / out.sum((1, 2, 3)) - 13.5
    assert shift.abs().max() < 3  # displacements of about a pixel, not a move


def test_erasing_blanks_one_rectangle_in_the_given_share():
    x = torch.ones(2000, 1, 28, 28)
    out = erase(x, 0.5, torch.Generator().manual_seed(0))
    touched = (out == 0).flatten(1).any(1).float().mean()
    assert 0.45 < touched < 0.55
    area = (out == 0).flatten(1).sum(1).float()
    erased = area[area > 0] / (28 * 28)
    assert erased.min() >= 0.005 and erased.max() <= 0.25


def test_restroke_thickens_some_letters_and_thins_others_within_a_pixel():
    x = batch()
    out = augment(x, AugmentConfig(rotate=0, shear=0, scale=0, translate=0, stroke=0.9),
                  torch.Generator().manual_seed(0))
    ink = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    # The 12x4 bar grows to at most 14x6 and shrinks to no less than 10x2 (a full pixel a side).
    assert (ink > 1.05).any() and (ink < 0.95).any()
    assert ((ink < 14 * 6 / 48) & (ink > 10 * 2 / 48)).all()
    assert out.min() >= 0 and out.max() <= 1
    assert (out[:, :, :6] == 0).all()  # nothing drawn more than a pixel from the strokes
