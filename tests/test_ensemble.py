"""Ensembles: one config trained with several seeds, scored and used as one classifier."""

import json
import shutil

import pytest
import torch
from conftest import TINY, with_sets

from alphabet.checkpoint import model_from_checkpoint
from alphabet.cli import main
from alphabet.config import load_config
from alphabet.data import load_splits
from alphabet.engine import predict_probs
from alphabet.metrics import summary_metrics

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    out = tmp_path_factory.mktemp("ens")
    # 10 epochs: at 6 the ensemble scored 0.33-0.36 depending on the CPU (AMX or AVX512 bf16), at
    # the edge of the check below; at 10, 0.53.
    sets = TINY + [f"log.out_dir={out}", "log.name=e", "train.epochs=10", "log.checkpoint_every=1",
                   "log.figures_every=10"]  # at the end: each member's and the ensemble's own
    assert main(["train", "--seeds", str(len(SEEDS)), *with_sets(sets)]) == 0
    return out / "e"


def member_probs(ensemble) -> tuple[list[torch.Tensor], torch.Tensor]:
    test = load_splits(load_config(ensemble / "config.yaml").data).test
    probs = [predict_probs(model_from_checkpoint(ensemble / f"seed-{s}" / "checkpoints" / "last.pt")[0], test,
                           torch.device("cpu")) for s in SEEDS]
    return probs, torch.from_numpy(test.labels)


def test_the_ensemble_is_the_mean_of_its_seeded_members(ensemble):
    metrics = json.loads((ensemble / "metrics.json").read_text())
    assert [m["seed"] for m in metrics["members"]] == list(SEEDS)
    probs, labels = member_probs(ensemble)
    assert not torch.allclose(probs[0], probs[1])  # the seeds really trained different models
    mean = torch.stack(probs).mean(0)
    assert summary_metrics(mean, labels)["balanced_accuracy"] == pytest.approx(metrics["test"]["balanced_accuracy"])
    assert metrics["test"]["balanced_accuracy"] > 0.35  # chance is 0.17
    misread = int((mean.argmax(1) != labels).sum())  # the ensemble's own mistakes, not a member's
    assert len((ensemble / "test_mistakes.csv").read_text().splitlines()) == 1 + misread
    for member in metrics["members"]:  # each member is a complete run of its own
        alone = json.loads((ensemble / f"seed-{member['seed']}" / "metrics.json").read_text())
        assert member["test"]["balanced_accuracy"] == alone["test"]["balanced_accuracy"]
        assert (ensemble / f"seed-{member['seed']}" / "figures" / "test_confusion_matrix.png").is_file()
    assert (ensemble / "figures" / "test_roc.png").is_file()


def test_evaluate_and_predict_take_an_ensemble(cli, ensemble, tmp_path):
    expected = json.loads((ensemble / "metrics.json").read_text())["test"]["balanced_accuracy"]
    for target in (ensemble, ensemble / "ensemble.yaml"):
        result = cli("evaluate", target, "--data", "synthetic", "--out-dir", tmp_path)
        assert result.code == 0, result.err
    scores = [json.loads(p.read_text())["balanced_accuracy"] for p in tmp_path.glob("*/metrics.json")]
    assert scores == pytest.approx([expected, expected])

    from test_cli import save_letters

    paths = save_letters(tmp_path, 4)
    as_json = json.loads(cli("predict", ensemble, *paths, "--json").out)
    assert len(as_json) == 4
    total = sum(top["probability"] for top in as_json[0]["top"])
    assert 0 < total <= 1.0 + 1e-6


def test_an_interrupted_ensemble_resumes_to_the_same_result(cli, ensemble, tmp_path):
    copy = tmp_path / "e"
    shutil.copytree(ensemble, copy)
    # As if killed during seed 1's last epoch: its last checkpoint is epoch 9, seed 2 never started.
    ckpts = copy / "seed-1" / "checkpoints"
    shutil.copy(ckpts / "epoch_0009.pt", ckpts / "last.pt")
    for path in (copy / "seed-1" / "metrics.json", copy / "metrics.json"):
        path.unlink()
    shutil.rmtree(copy / "seed-2")
    result = cli("train", "--resume", copy)
    assert result.code == 0, result.err
    assert "finished already" in result.out and "resuming" in result.out
    before = json.loads((ensemble / "metrics.json").read_text())
    after = json.loads((copy / "metrics.json").read_text())
    assert [m["test"] for m in after["members"]] == [m["test"] for m in before["members"]]
    assert after["test"]["balanced_accuracy"] == before["test"]["balanced_accuracy"]


@pytest.mark.parametrize(("killed_in", "refusal"), [
    ("write_ensemble", "no checkpoints/last.pt to continue from; expected a run directory that train or retrain wrote"),
    ("dump_yaml", "no config.yaml to continue from; expected an ensemble directory that train --seeds wrote")])
def test_an_ensemble_killed_as_it_starts_is_not_resumed_as_one_run(tmp_path, cli, killed_in, refusal):
    # kill -9 between an ensemble's config.yaml and its ensemble.yaml left a directory that --resume took for
    # one run, and trained it there. ensemble.yaml comes first now; each point is killed at for real.
    import subprocess
    import sys

    sets = [*TINY, f"log.out_dir={tmp_path}", "log.name=e"]
    started = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys\nimport alphabet.train_ensemble as t\nfrom alphabet.cli "
         f"import main\nt.{killed_in} = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\nmain(sys.argv[1:])",
         "train", "--seeds", "2", *with_sets(sets)], capture_output=True, text=True)
    assert started.returncode == -9, started.stderr[-3000:]
    resumed = cli("train", "--resume", tmp_path / "e")
    assert resumed.code == 2 and resumed.err == f"alphabet: error: {tmp_path / 'e'}: {refusal}\n", resumed.err
    assert not (tmp_path / "e" / "checkpoints").exists() and not list((tmp_path / "e").glob("seed-*"))


def test_an_ensemble_reads_a_folder_once_and_each_member_trains_as_alone(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    # A folder's images are framed on every read: its members and its test each read it again before.
    for letter in "ab":
        (tmp_path / "letters" / letter).mkdir(parents=True)
        for i in range(10):
            page = np.full((60, 50), 235, np.uint8)
            if letter == "a":
                page[10 + i: 50, 20:26] = 20
            else:
                page[25:31, 5 + i: 45] = 20
            Image.fromarray(page).save(tmp_path / "letters" / letter / f"{i}.png")
    (tmp_path / "letters" / "ab").mkdir()  # images where no letter's folder is: a warning on each read
    Image.fromarray(page).save(tmp_path / "letters" / "ab" / "0.png")
    sets = [f"data.source=folder:{tmp_path / 'letters'}", "data.val_fraction=0.2", f"log.out_dir={tmp_path}"]
    assert main(["train", "--seeds", "2", "--smoke-test", *with_sets([*sets, "log.name=e"])]) == 0
    assert capsys.readouterr().err.count(" is not used") == 1
    assert main(["train", "--smoke-test", *with_sets([*sets, "log.name=alone", "train.seed=1"])]) == 0
    member, alone = (json.loads((tmp_path / run / "metrics.json").read_text())["test"] for run in ("e/seed-1", "alone"))
    assert member == alone
