"""`alphabet data audit`: cross-validated models find the letters filed under the wrong label."""

import csv
from pathlib import Path

import numpy as np
from conftest import TINY
from test_cli import assert_one_line_error

from alphabet.config import DataConfig
from alphabet.data.sources import save_npz
from alphabet.data.splits import load_splits
from alphabet.data.synthetic import generate

MODEL = [s for s in TINY if not s.startswith("data.")] + ["data.case=lower", "train.epochs=8"]


def noisy_letters(path: Path, flipped: int = 12) -> set[int]:
    """1,200 synthetic letters of a-f, ``flipped`` of them labelled as another letter; their rows."""
    data = generate(1200, seed=3, classes=list("abcdef"))
    rows = np.random.default_rng(0).choice(len(data), flipped, replace=False)
    data.labels[rows] = (data.labels[rows] + 3) % 6
    save_npz(data, path)
    return set(rows.tolist())


def test_the_audit_puts_wrong_labels_first_and_never_reads_the_test_letters(cli, tmp_path):
    flipped = noisy_letters(tmp_path / "noisy.npz")
    out = tmp_path / "audit.csv"
    result = cli("data", "audit", "--set", f"data.source=npz:{tmp_path / 'noisy.npz'}", *MODEL,
                 "--folds", "3", "--out", out)
    assert result.code == 0, result.err
    assert result.out.count("fold ") == 3 and f"wrote {out}" in result.out
    rows = list(csv.DictReader(out.open()))
    misread = int(result.out.split(" of 960 letters")[0].split()[-1].replace(",", ""))
    assert len(rows) == misread > 0  # the 960 training letters, each read once; only the misread listed
    p_true = [float(r["p_true"]) for r in rows]
    assert p_true == sorted(p_true)
    audited = {int(r["origin"].split(" row ")[1]) for r in rows}
    test_rows = set(load_splits(DataConfig(source=f"npz:{tmp_path / 'noisy.npz'}", case="lower")).test.origins.tolist())
    assert not audited & test_rows  # test letters are never audited, so never "fixed" towards the model
    top = [int(r["origin"].split(" row ")[1]) for r in rows[:24]]
    # Measured: 6 of the 10 flipped training letters in the first 24 of 402 misread; by chance 0.6.
    assert len(flipped & set(top)) >= 4, (sorted(flipped), top)
    assert out.with_suffix(".png").stat().st_size > 1000
    # The cross-validated score is the balanced accuracy of those same readings: each class's share
    # of its letters not in the CSV, averaged over the classes.
    line = next(x for x in result.out.splitlines() if x.startswith("cross-validated balanced accuracy"))
    score, low, high = (float(line.split()[k].strip("(,")) for k in (3, 6, 8))
    letters = load_splits(DataConfig(source=f"npz:{tmp_path / 'noisy.npz'}", case="lower", val_fraction=0.0)).train
    classes, counts = np.unique(letters.labels, return_counts=True)
    missed = [sum(r["true"] == letters.classes[c] for r in rows) for c in classes]
    assert abs(score - np.mean([1 - m / n for m, n in zip(missed, counts, strict=True)])) < 1e-4
    assert low <= score <= high and "over 960 images" in line

    before = out.read_bytes()
    assert_one_line_error(cli("data", "audit", "--set", f"data.source=npz:{tmp_path / 'noisy.npz'}", *MODEL,
                              "--out", out), str(out), "nothing is overwritten")
    assert out.read_bytes() == before
    assert_one_line_error(cli("data", "audit", "--folds", "1"), "--folds: expected an integer >= 2, got 1")
    # more folds than a class has letters would leave some holding nothing out (an IndexError before)
    fewest = np.bincount(load_splits(DataConfig(source=f"npz:{tmp_path / 'noisy.npz'}", case="lower",
                                                val_fraction=0.0)).train.labels).min()
    assert_one_line_error(cli("data", "audit", "--set", f"data.source=npz:{tmp_path / 'noisy.npz'}", *MODEL,
                              "--folds", "999", "--out", tmp_path / "many.csv"),
                          f"--folds: expected at most {fewest} (the smallest class's letters), got 999")


def test_the_audit_smoke_test_runs_an_experiment_file_in_seconds(cli, tmp_path):
    out = tmp_path / "smoke.csv"
    result = cli("data", "audit", "experiments/quick.yaml", "--smoke-test", "--folds", "2", "--out", out)
    assert result.code == 0, result.err
    assert "training 2 models of 1 epoch," in result.out and out.is_file() and out.with_suffix(".png").is_file()
    assert_one_line_error(cli("data", "info", "--smoke-test"), "--smoke-test: only with audit")


def test_an_audit_leaves_a_file_that_appeared_while_it_ran_and_writes_beside_it(cli, tmp_path, monkeypatch):
    # The name is checked as the audit starts and written minutes later: two audits started in one
    # folder both chose label_audit.csv, and the one that finished last wrote over the other's.
    import alphabet.audit

    out = tmp_path / "smoke.csv"
    audit_letters = alphabet.audit.audit_letters

    def and_meanwhile_another_writes_out(*args, **kwargs):
        audited = audit_letters(*args, **kwargs)
        out.write_text("theirs")
        return audited

    monkeypatch.setattr(alphabet.audit, "audit_letters", and_meanwhile_another_writes_out)
    result = cli("data", "audit", "experiments/quick.yaml", "--smoke-test", "--folds", "2", "--out", out)
    assert result.code == 0, result.err
    ours = tmp_path / "smoke-2.csv"
    assert out.read_text() == "theirs" and ours.is_file() and ours.with_suffix(".png").is_file()
    assert f"{out} appeared while this ran; it is left as it is, and this writes {ours} instead" in result.err
    assert f"wrote {ours}" in result.out
