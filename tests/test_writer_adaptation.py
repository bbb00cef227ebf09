"""The method benchmarks/writer_adaptation.py measures, each writer's own batch-norm statistics, on small models."""

import numpy as np
import pytest
import torch
from conftest import TINY
from torch import nn

from alphabet.config import load_config
from alphabet.data import LetterSet
from alphabet.data.splits import load_splits
from alphabet.engine import Trainer, predict_probs, to_input
from benchmarks.writer_adaptation import batch_norms, predict_probs_per_writer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained():
    """A tiny CNN with batch norm, trained two epochs on synthetic letters, and its test letters."""
    torch.manual_seed(0)
    config = load_config(None, [*TINY, "train.epochs=2", "train.device=cpu"])
    splits = load_splits(config.data)
    trainer = Trainer(config, splits.train)
    for _ in range(2):
        trainer.train_epoch()
    return trainer.model.eval(), splits.test


def two_writers(test: LetterSet, faint: float) -> LetterSet:
    """The test letters twice: as drawn, and by a second writer whose ink is ``faint`` as strong."""
    dim = np.round(test.images.astype(np.float32) * faint).astype(np.uint8)
    writers = np.array(["clear"] * len(test) + ["faint"] * len(test))
    return LetterSet(np.concatenate([test.images, dim]), np.concatenate([test.labels, test.labels]),
                     test.classes, writers)


def test_strength_0_is_the_plain_reading_and_the_model_is_left_as_it_was(trained):
    model, test = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = two_writers(test, 0.5)
    assert torch.equal(predict_probs_per_writer(model, data, CPU, strength=0.0), predict_probs(model, data, CPU))
    adapted = predict_probs_per_writer(model, data, CPU)
    assert not torch.allclose(adapted, predict_probs(model, data, CPU), atol=1e-3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and not model.training
    assert all(m.momentum == 0.1 for m in batch_norms(model))  # the training momentum, restored


def test_strength_1_normalises_each_writer_by_its_own_letters_alone(trained):
    model, test = trained
    data = two_writers(test, 0.5)
    adapted = predict_probs_per_writer(model, data, CPU)
    # A writer's answers depend on that writer's letters only, not on who else is in the set.
    alone = predict_probs_per_writer(model, data.subset(np.arange(len(test))), CPU)
    assert torch.allclose(adapted[:len(test)], alone, atol=1e-5)
    # And they are what the norms give in training mode, on that writer's letters as one batch
    # (up to the unbiased variance the statistics keep: a factor n/(n-1), n in the thousands).
    for m in batch_norms(model):
        m.train()
    try:
        with torch.no_grad():
            batch = model(to_input(torch.from_numpy(test.images))).softmax(1)
    finally:
        model.eval()
    assert torch.allclose(alone, batch, atol=1e-3)


def test_a_writer_with_fainter_ink_is_read_as_if_the_ink_were_not(trained):
    model, test = trained
    data = two_writers(test, 0.4)
    n = len(test)
    plain = predict_probs(model, data, CPU).argmax(1)
    adapted = predict_probs_per_writer(model, data, CPU).argmax(1)
    plain_agree = (plain[:n] == plain[n:]).float().mean()
    adapted_agree = (adapted[:n] == adapted[n:]).float().mean()
    # Over 12 draws of the letters and the model (2026-12-06): plain 0.08 to 0.65, adapted 0.85 to 0.97.
    assert adapted_agree > 0.8 and adapted_agree > plain_agree + 0.25, (plain_agree, adapted_agree)


def test_without_writer_ids_the_letters_count_as_one_writer_and_without_norms_nothing_changes(trained):
    model, test = trained
    unnamed = LetterSet(test.images, test.labels, test.classes)
    named = LetterSet(test.images, test.labels, test.classes, np.array(["w"] * len(test)))
    assert torch.equal(predict_probs_per_writer(model, unnamed, CPU), predict_probs_per_writer(model, named, CPU))
    plain_model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, len(test.classes))).eval()
    assert torch.equal(predict_probs_per_writer(plain_model, named, CPU), predict_probs(plain_model, named, CPU))
    with pytest.raises(ValueError, match="strength"):
        predict_probs_per_writer(model, named, CPU, strength=1.5)
