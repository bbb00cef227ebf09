"""Temperature scaling: the fit, the classifier file it writes, and the commands that read it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY, with_sets
from test_cli import assert_one_line_error

from alphabet.calibrate import fit_temperature
from alphabet.data.sources import save_npz
from alphabet.data.synthetic import generate
from alphabet.ensemble import load_classifier, with_temperature


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_the_fit_finds_the_temperature_the_labels_were_drawn_at(true_temperature):
    # Labels drawn from softmax(z / T); a model that says softmax(z) is off by exactly T.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 10, generator=gen) * 3
    labels = torch.multinomial((logits / true_temperature).softmax(1), 1, generator=gen)[:, 0]
    found = fit_temperature(logits.softmax(1), labels)
    assert found == pytest.approx(true_temperature, rel=0.05)


def test_a_temperature_divides_the_logits_and_changes_no_reading():
    logits = torch.randn(50, 6, generator=torch.Generator().manual_seed(1))
    probs = logits.softmax(1)
    assert torch.allclose(with_temperature(probs, 0.5), (logits / 0.5).softmax(1), atol=1e-6)
    assert with_temperature(probs, 1.0) is probs
    assert torch.equal(with_temperature(probs, 3.0).argmax(1), probs.argmax(1))


@pytest.fixture(scope="module")
def underconfident(tmp_path_factory):
    """A tiny run whose strong label smoothing leaves it less sure than it is right."""
    from alphabet.cli import main

    out = tmp_path_factory.mktemp("runs")
    sets = TINY + [f"log.out_dir={out}", "log.name=m", "train.epochs=12", "data.val_fraction=0.3",
                   "train.label_smoothing=0.5"]
    assert main(["train", *with_sets(sets)]) == 0
    return out / "m"


def test_calibrate_fits_on_the_held_out_letters_and_writes_a_classifier_file(cli, underconfident, tmp_path):
    result = cli("calibrate", underconfident)
    assert result.code == 0, result.err
    written = underconfident / "calibrated.yaml"
    assert f"wrote {written}" in result.out
    assert "fitted on 180 letters: the validation letters its training run held out" in result.out
    saved = yaml.safe_load(written.read_text())
    assert saved["members"] == ["checkpoints/last.pt"]
    before, after = (float(line.split("ECE ")[1].split(";")[0]) for line in result.out.splitlines()
                     if line.startswith(("before:", "after")))
    assert after < before  # on the letters it was fitted on, as the command says
    # Read back wherever a checkpoint goes: the same readings, other probabilities.
    plain = load_classifier(underconfident, torch.device("cpu"))
    calibrated = load_classifier(written, torch.device("cpu"))
    assert calibrated.temperature == saved["temperature"] < 1  # sharper: it was under-confident
    letters = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (20, 28, 28), dtype=np.uint8))
    p, q = plain.predict_probs(letters), calibrated.predict_probs(letters)
    assert torch.equal(p.argmax(1), q.argmax(1)) and not torch.allclose(p, q, atol=1e-3)
    evaluated = cli("evaluate", written, "--data", "synthetic", "--out-dir", tmp_path, "--name", "ev")
    assert evaluated.code == 0, evaluated.err
    shown = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert shown["ece"] == shown["calibration"]["ece"]
    # A second fit never replaces the first; --out must be new.
    again = cli("calibrate", underconfident / "checkpoints" / "last.pt")
    assert again.code == 0 and (underconfident / "checkpoints" / "calibrated.yaml").is_file()
    assert cli("calibrate", underconfident).code == 0 and (underconfident / "calibrated-2.yaml").is_file()
    before_bytes = written.read_bytes()
    assert_one_line_error(cli("calibrate", underconfident, "--out", written), "--out", "expected a new .yaml file")
    assert written.read_bytes() == before_bytes


def test_calibrate_on_other_letters_and_its_refusals(cli, underconfident, tmp_path):
    held_out = tmp_path / "held_out.npz"
    save_npz(generate(300, seed=7, classes=list("abcdef")), held_out)  # letters it never saw
    result = cli("calibrate", underconfident, "--data", f"npz:{held_out}", "--out", tmp_path / "on_mine.yaml")
    assert result.code == 0, result.err
    assert f"fitted on 300 letters: all of npz:{held_out}" in result.out
    assert yaml.safe_load((tmp_path / "on_mine.yaml").read_text())["members"][0].endswith("checkpoints/last.pt")
    # The letters it trained on are refused: a temperature fitted on them would make it over-confident.
    assert_one_line_error(cli("calibrate", underconfident, "--data", "synthetic"), "--data synthetic: the source",
                          "expected other letters")
    # A retrain holds no letters out: it says what to give instead.
    out = tmp_path / "runs"
    assert cli("train", *with_sets(TINY + [f"log.out_dir={out}", "log.name=all", "train.epochs=1",
                                           "data.val_fraction=0"])).code == 0
    assert_one_line_error(cli("calibrate", out / "all"), "held out no validation letters", "--data SOURCE")
    assert not (out / "all" / "calibrated.yaml").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"members: [{underconfident / 'checkpoints' / 'last.pt'}]\ntemperature: -1\n")
    assert_one_line_error(cli("evaluate", bad, "--data", "synthetic", "--out-dir", tmp_path),
                          f"{bad}: key temperature: expected a positive number, got -1")
