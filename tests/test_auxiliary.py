"""data.auxiliary_case: the other case's letters join training as classes that are never scored."""

import json
import string

import numpy as np
import pytest
import torch
from test_cli import assert_one_line_error

from alphabet.checkpoint import load_checkpoint, model_from_checkpoint
from alphabet.config import DataConfig
from alphabet.data import load_splits
from alphabet.errors import UserError


def two_case_npz(path, n=400):
    """Letters a, b, A, B from 10 writers: each writer wrote every class."""
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (n, 28, 28), dtype=np.uint8), y=np.arange(n) % 4,
             classes=np.array(["a", "b", "A", "B"]), writer=np.array([f"w{i % 10}" for i in range(n)]))
    return f"npz:{path}"


def test_auxiliary_letters_come_from_the_training_writers_only(tmp_path):
    source = two_case_npz(tmp_path / "d.npz")
    plain = load_splits(DataConfig(source=source, case="lower", test_fraction=0.2, val_fraction=0.25))
    splits = load_splits(DataConfig(source=source, case="lower", auxiliary_case="upper", test_fraction=0.2,
                                    val_fraction=0.25))
    # The task's splits do not move when auxiliary letters are added.
    for part in ("train", "val", "test"):
        assert getattr(splits, part).classes == ["a", "b"]
        assert np.array_equal(getattr(splits, part).writers, getattr(plain, part).writers)
    aux = splits.auxiliary
    assert aux.classes == ["A", "B"] and plain.auxiliary is None
    assert set(aux.writers) == set(splits.train.writers)
    assert not set(aux.writers) & (set(splits.val.writers) | set(splits.test.writers))
    assert len(aux) == len(splits.train)  # each writer wrote as many capitals as small letters here


def test_emnist_lowercase_with_capitals_from_its_training_part(tmp_path):
    from test_data import write_emnist

    labels = np.arange(62).repeat(4)  # digits, A-Z, a-z
    write_emnist(tmp_path, "byclass", {"train": labels, "test": labels})
    splits = load_splits(DataConfig(source="emnist-lowercase", root=str(tmp_path), case="lower",
                                    auxiliary_case="upper", val_fraction=0.25))
    assert splits.train.classes == splits.test.classes == list(string.ascii_lowercase)
    assert splits.auxiliary.classes == list(string.ascii_uppercase) and len(splits.auxiliary) == 26 * 4
    assert len(splits.test) == 26 * 4  # EMNIST's test part: lowercase only


def test_training_with_auxiliary_classes_scores_and_predicts_only_the_task(cli, tiny, tmp_path):
    from test_cli import save_letters

    # synthetic_size covers the 26 capitals too: 2,000 keeps about 600 small letters, as in `tiny`.
    sets = tiny + ["data.auxiliary_case=upper", "data.synthetic_size=2000", "train.epochs=6", "log.name=aux"]
    result = cli("train", *[x for o in sets for x in ("--set", o)])
    assert result.code == 0, result.err
    run = tmp_path / "runs" / "aux"
    assert "auxiliary uppercase" in result.out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == list("abcdef") and metrics["sizes"]["auxiliary"] > 0
    assert set(metrics["test"]["per_class"]) == set("abcdef")
    assert metrics["test"]["balanced_accuracy"] > 0.35  # chance is 0.17
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert payload["trainer"]["auxiliary_classes"] == list(string.ascii_uppercase)
    assert payload["trainer"]["model"]["classifier.6.weight"].shape[0] == 6 + 26
    model, classes, _ = model_from_checkpoint(run / "checkpoints" / "last.pt")
    assert classes == list("abcdef") and model(torch.zeros(2, 1, 28, 28)).shape == (2, 6)
    evaluated = cli("evaluate", run / "checkpoints/last.pt", "--data", "synthetic", "--out-dir", tmp_path,
                    "--name", "ev")
    assert evaluated.code == 0, evaluated.err
    # The same model on the same test split: exactly what training reported.
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["balanced_accuracy"] == pytest.approx(
        metrics["test"]["balanced_accuracy"])
    predicted = cli("predict", run / "checkpoints/last.pt", *save_letters(tmp_path, 6), "--top-k", "3")
    assert predicted.code == 0, predicted.err
    letters = [w for line in predicted.out.splitlines() for w in line.split(": ")[1].split()[::2]]
    assert len(letters) == 18 and set(letters) <= set("abcdef")


@pytest.mark.parametrize(("case", "auxiliary", "fragment"), [
    ("all", "upper", "data.auxiliary_case: expected none with data.case='all', got 'upper'"),
    ("lower", "lower", "data.auxiliary_case: expected none or upper with data.case='lower', got 'lower'"),
    ("merged", "lower", "expected none with data.case='merged'"),
])
def test_auxiliary_case_must_be_the_other_case(tmp_path, case, auxiliary, fragment):
    with pytest.raises(UserError, match=fragment):
        load_splits(DataConfig(source=two_case_npz(tmp_path / "d.npz"), case=case, auxiliary_case=auxiliary))


def test_a_source_without_the_other_case_is_an_error(tmp_path):
    path = tmp_path / "lower.npz"
    np.savez(path, x=np.zeros((60, 28, 28), np.uint8), y=np.arange(60) % 3, classes=np.array(["a", "b", "c"]))
    with pytest.raises(UserError, match="has no uppercase letters from the training writers"):
        load_splits(DataConfig(source=f"npz:{path}", case="lower", auxiliary_case="upper"))


def test_bad_auxiliary_case_on_the_command_line(cli, tiny):
    result = cli("train", *[x for o in tiny for x in ("--set", o)], "--set", "data.auxiliary_case=capitals")
    assert_one_line_error(result, "data.auxiliary_case", "expected one of none, upper, lower", "'capitals'")


def test_data_info_lists_the_auxiliary_letters(cli, tmp_path):
    source = two_case_npz(tmp_path / "d.npz")
    result = cli("data", "info", "--set", f"data.source={source}", "--set", "data.case=lower",
                 "--set", "data.auxiliary_case=upper")
    assert result.code == 0, result.err
    splits = load_splits(DataConfig(source=source, case="lower", auxiliary_case="upper"))
    assert result.out.strip().splitlines()[-1] == (
        f"auxiliary (training only, never scored): {len(splits.auxiliary)} images of 2 classes AB")
