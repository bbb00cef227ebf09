import importlib.metadata
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import TINY
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from alphabet.checkpoint import load_checkpoint
from alphabet.config import load_config
from alphabet.engine import out_of_memory_named
from alphabet.errors import UserError
from alphabet.evaluate import evaluate_checkpoint
from alphabet.train import run_training


def config_for(tmp_path, *extra):
    return load_config(None, TINY + [f"log.out_dir={tmp_path}", *extra])


def test_short_training_learns_and_reports(tmp_path):
    result = run_training(config_for(tmp_path, "train.epochs=6", "log.name=learn", "log.figures_every=3",
                                     "log.checkpoint_every=3"),
                          log=lambda *_: None)
    # Measured 0.47 after ~100 steps; chance is 0.17, so a broken pipeline fails this.
    assert result["test"]["balanced_accuracy"] > 0.35
    run = tmp_path / "learn"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["per_class"]["a"]["support"] > 0
    assert set(saved["test"]) >= {"balanced_accuracy", "macro_f1", "macro_auc", "confusion_matrix", "most_confused"}
    assert 0 <= saved["test"]["ece"] < 1 and len(saved["test"]["calibration"]["accepted"]) == 5
    assert saved["environment"]["packages"]["torch"] == importlib.metadata.version("torch")
    assert saved["environment"]["device"] == "cpu"
    for name in ("test_confusion_matrix", "test_per_class", "test_roc", "test_calibration", "test_misclassified",
                 "val_confusion_matrix", "train_augmented_batch"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000
    for name in ("best.pt", "last.pt", "epoch_0003.pt", "epoch_0006.pt"):
        assert (run / "checkpoints" / name).is_file()
    mistakes = (run / "test_mistakes.csv").read_text().splitlines()
    misread = saved["sizes"]["test"] - round(saved["test"]["accuracy"] * saved["sizes"]["test"])
    assert mistakes[0].startswith("origin,writer,true,predicted,p_true") and len(mistakes) == 1 + misread > 1
    from alphabet.data.sources import load_source

    test_letters = load_source("synthetic", config_for(tmp_path).data).test
    for line in mistakes[1:]:  # each names its row of the generated test letters
        origin, _, true = line.split(",")[:3]
        assert test_letters.classes[test_letters.labels[int(origin.removeprefix("synthetic row "))]] == true


def test_the_residual_net_learns_and_its_checkpoint_scores_as_the_run_did(tmp_path):
    result = run_training(config_for(tmp_path, "model.arch=resnet", "model.stages=3", "model.convs_per_stage=1",
                                     "train.epochs=6", "log.name=res"), log=lambda *_: None)
    assert result["test"]["balanced_accuracy"] > 0.35  # measured 0.74; chance is 0.17
    again = evaluate_checkpoint(tmp_path / "res" / "checkpoints" / "last.pt", "synthetic", tmp_path / "eval",
                                log=lambda *_: None)
    assert again["balanced_accuracy"] == pytest.approx(result["test"]["balanced_accuracy"])


EXPECTED_SCALARS = {
    "train/loss", "train/accuracy", "train/balanced_accuracy", "train/macro_f1", "train/lr",
    "val/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_f1", "val/macro_auc", "val/ece", "final/test_ece",
    "test/macro_auc", "final/test_balanced_accuracy", "final/test_balanced_accuracy_low",
    "final/test_balanced_accuracy_high", "val_auc/a", "test_auc/f",
}
EXPECTED_IMAGES = {"val/confusion_matrix", "val/per_class_scores", "val/roc", "val/misclassified",
                   "train/augmented_batch", "test/confusion_matrix", "test/roc", "test/calibration"}


def test_tensorboard_tags(tmp_path):
    run_training(config_for(tmp_path, "train.epochs=2", "log.name=tb", "log.figures_every=1"), log=lambda *_: None)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()
    assert EXPECTED_SCALARS <= set(tags["scalars"])
    assert EXPECTED_IMAGES <= set(tags["images"])
    assert {"val_pr/a", "test_pr/f", "val/most_confused/text_summary"} <= set(tags["tensors"])
    assert len(events.Scalars("train/loss")) == 2
    plugins = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in plugins


def test_a_run_without_figures_logs_the_rest(tmp_path):
    # log.figures_every 0 (TINY's): no figure drawn, as a file or in TensorBoard; the test's scalars, PR
    # curves and confused pairs are logged as with figures.
    said = []
    run_training(config_for(tmp_path, "train.epochs=2", "log.name=bare", "log.figures_every=0"), log=said.append)
    run = tmp_path / "bare"
    assert (run / "metrics.json").is_file() and not (run / "figures").exists()
    tags = EventAccumulator(str(run), size_guidance={"tensors": 0}).Reload().Tags()
    assert tags["images"] == []
    assert EXPECTED_SCALARS - {"val/macro_auc", "val_auc/a"} <= set(tags["scalars"])  # val's are due with figures
    assert {"test_pr/f", "test/most_confused/text_summary"} <= set(tags["tensors"])
    assert said[-1].startswith(f"wrote {run / 'metrics.json'} (no figures: log.figures_every 0) and the misread")


class Interrupt(Exception):
    pass


def stop_after(epoch: int):
    def log(line: str) -> None:
        if line.startswith(f"epoch {epoch}/"):
            raise Interrupt
    return log


# With figures (17 s): in CI the retrain's test below draws the augmented batch every epoch.
@pytest.mark.parametrize(("ema", "figures"), [pytest.param("0", "2", marks=pytest.mark.slowest), ("0.9", "0")])
def test_resume_is_bit_identical_on_cpu(tmp_path, ema, figures):
    # With figures once: drawing them (the augmented batch's among them) must not move the random
    # state a resumed run restores. Once is enough (about 4 s a time).
    settings = ["train.epochs=4", "augment.elastic=1.0", "augment.erase=0.3", "model.dropout=0.3",
                f"log.figures_every={figures}", f"train.ema_decay={ema}"]
    run_training(config_for(tmp_path, *settings, "log.name=straight"), log=lambda *_: None)
    with pytest.raises(Interrupt):
        run_training(config_for(tmp_path, *settings, "log.name=broken"), log=stop_after(3))
    assert load_checkpoint(tmp_path / "broken/checkpoints/last.pt")["trainer"]["epoch"] == 3
    run_training(None, resume=tmp_path / "broken", log=lambda *_: None)
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")["trainer"]
    b = load_checkpoint(tmp_path / "broken/checkpoints/last.pt")["trainer"]
    assert a["epoch"] == b["epoch"] == 4
    for weights in ("model", "trained_model") if ema != "0" else ("model",):
        for key, value in a[weights].items():
            assert torch.equal(value, b[weights][key]), (weights, key)
    # TensorBoard continues at the right step: exactly one loss point per epoch.
    events = EventAccumulator(str(tmp_path / "broken")).Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2, 3, 4]


def test_resume_starts_again_a_run_killed_before_its_first_checkpoint(tmp_path):
    # kill -9 (or a scheduler's SIGKILL) before epoch 1 leaves the run's config.yaml, perhaps its events
    # and a best.pt written before last.pt: the same command is refused (the name is taken), and
    # --resume said "no checkpoints/last.pt to continue from".
    from alphabet.config import dump_yaml, to_dict
    from alphabet.rundir import LOCK_FILE

    config = config_for(tmp_path, "train.epochs=2", "log.name=straight")
    run_training(config, log=lambda *_: None)
    killed = tmp_path / "killed"
    (killed / "checkpoints").mkdir(parents=True)
    (killed / "config.yaml").write_text(dump_yaml(to_dict(config)))
    (killed / LOCK_FILE).write_text("pid 1 on vm since 2026-12-07 06:00:00\n")  # its process held it
    (killed / "events.out.tfevents.1.vm.1.0").write_bytes(b"")
    (killed / "checkpoints" / "best.pt").write_bytes(b"half an epoch")
    said = []
    run_training(None, resume=killed, log=said.append)
    assert f"{killed}: stopped before its first checkpoint; starting it again from its config.yaml" in said
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")["trainer"]
    b = load_checkpoint(killed / "checkpoints/last.pt")["trainer"]
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(value, b["model"][key]) for key, value in a["model"].items())
    assert not (killed / "events.out.tfevents.1.vm.1.0").exists()
    assert load_checkpoint(killed / "checkpoints/best.pt")["trainer"]["epoch"] >= 1
    # A folder that no run started is still refused, one with a config.yaml of the user's own too.
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError, match="no checkpoints/last.pt to continue from"):
        run_training(None, resume=tmp_path / "mine")
    (tmp_path / "mine" / "config.yaml").write_text("# my settings\ntrain: {epochs: 2}\n")
    with pytest.raises(UserError, match="no checkpoints/last.pt to continue from"):
        run_training(None, resume=tmp_path / "mine")
    assert (tmp_path / "mine" / "config.yaml").read_text() == "# my settings\ntrain: {epochs: 2}\n"


def test_an_interrupted_retrain_resumes_bit_identical_and_writes_its_report(tmp_path):
    # In process, in 10 to 13 s, drawing the augmented batch every epoch (a retrain of 4 epochs draws its
    # figures each epoch); tests/test_faults.py kills a real retrain with SIGKILL (make test-all).
    from search.retrain import retrain

    best = tmp_path / "best.yaml"
    best.write_text("\n".join(["data: {case: lower, classes: abcdef, synthetic_size: 600, synthetic_test_size: 120}",
                               "model: {width: 8, stages: 2, classifier_width: 32, dropout: 0.3}",
                               "augment: {elastic: 1.0, erase: 0.3}",
                               "train: {batch_size: 32}", "log: {progress: never}"]))
    def quiet(*_: object) -> None:
        pass

    retrain(str(best), epochs=4, overrides=["log.name=straight"], log=quiet)
    with pytest.raises(Interrupt):
        retrain(str(best), epochs=4, overrides=["log.name=broken"], log=stop_after(3))
    assert not (tmp_path / "broken" / "report.md").exists()
    retrain(None, resume=str(tmp_path / "broken"), log=quiet)
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt")["trainer"]
    b = load_checkpoint(tmp_path / "broken/checkpoints/last.pt")["trainer"]
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(value, b["model"][key]) for key, value in a["model"].items())
    assert (tmp_path / "broken" / "report.md").is_file()
    scores = [json.loads((tmp_path / run / "metrics.json").read_text())["test"] for run in ("straight", "broken")]
    assert scores[0]["confusion_matrix"] == scores[1]["confusion_matrix"]


def test_weight_averaging_is_what_the_run_scores_saves_and_evaluates(tmp_path):
    from alphabet.checkpoint import model_from_checkpoint
    from alphabet.data.splits import load_splits
    from alphabet.engine import predict_probs
    from alphabet.metrics import summary_metrics

    config = config_for(tmp_path, "train.epochs=6", "train.ema_decay=0.9", "log.name=ema")
    said = []
    result = run_training(config, log=said.append)
    assert "scoring and saving a moving average of the weights (train.ema_decay 0.9)" in said
    state = load_checkpoint(tmp_path / "ema/checkpoints/last.pt")["trainer"]
    assert state["ema_updates"] == 6 * (600 * 9 // 10 // 32)  # one per step
    averaged, trained = state["model"], state["trained_model"]
    assert not torch.equal(averaged["features.1.weight"], trained["features.1.weight"])
    # Averaging leaves the training itself alone: the same weights as a run without it.
    run_training(config_for(tmp_path, "train.epochs=6", "log.name=plain"), log=lambda *_: None)
    plain = load_checkpoint(tmp_path / "plain/checkpoints/last.pt")["trainer"]["model"]
    assert all(torch.equal(value, trained[key]) for key, value in plain.items())
    # The file's weights are the average, and they give exactly the run's own test figure.
    model, _, _ = model_from_checkpoint(tmp_path / "ema/checkpoints/last.pt")
    test = load_splits(config.data).test
    probs = predict_probs(model, test, torch.device("cpu"))
    score = summary_metrics(probs, torch.as_tensor(test.labels))["balanced_accuracy"]
    assert score == pytest.approx(result["test"]["balanced_accuracy"])
    assert score > 0.25  # chance is 0.17; 0.33 in fp32 on an EPYC, over 0.35 in bf16 on a Xeon


def test_the_experiments_retrain_batch_applies_unless_the_command_line_sets_one(tmp_path):
    from search.experiment import experiment_from_dict
    from search.retrain import retrain
    from search.runner import save_experiment
    from search.storage import RunLocation

    search_dir = tmp_path / "search"  # a finished search's RUN_DIR, as far as retrain reads one
    search_dir.mkdir()
    (search_dir / "best.yaml").write_text(
        "data: {case: lower, classes: abc, synthetic_size: 150, synthetic_test_size: 30}\n"
        "model: {width: 4, stages: 1, classifier_width: 16}\ntrain: {batch_size: 16, lr: 0.002}\n"
        "log: {progress: never}\n")
    experiment = experiment_from_dict({"space": {"train.lr": {"type": "loguniform", "low": 0.001, "high": 0.01}},
                                       "retrain": {"epochs": 1, "batch_size": 64}}, "x.yaml")
    save_experiment(experiment, RunLocation.parse(str(search_dir)))

    def quiet(*_: object) -> None:
        pass

    trained = [retrain(str(search_dir), overrides=sets, log=quiet)["run_dir"]
               for sets in ([], ["train.batch_size=32"])]
    first, second = (load_config(f"{run}/config.yaml").train for run in trained)
    assert (first.batch_size, first.lr) == (64, pytest.approx(0.004))  # sqrt(64 / 16) times the searched lr
    assert (second.batch_size, second.lr) == (32, pytest.approx(0.002))  # --set: exactly what it says
    assert "- batch 64, lr 0.004 (searched: batch 16, lr 0.002)" in (Path(trained[0]) / "report.md").read_text()


@pytest.mark.parametrize("tau, lo, hi", [(0.0, 0.0, 0.2), (1.0, 0.35, 0.65)])
def test_logit_adjustment_undoes_the_class_prior(tau, lo, hi):
    # Noise images, 90% labelled 'a': plain cross-entropy can only learn the prior
    # (p(o) near 0.1); the logit-adjusted loss learns a uniform posterior (p(o) near 0.5).
    import numpy as np

    from alphabet.data.letterset import LetterSet
    from alphabet.engine import Trainer

    rng = np.random.default_rng(0)
    noise = LetterSet(rng.integers(0, 256, (640, 28, 28), dtype=np.uint8), np.repeat([0, 1], [576, 64]), ["a", "o"])
    config = load_config(None, ["model.width=8", "model.stages=2", "model.convs_per_stage=1", "train.lr=0.003",
                                "train.schedule=constant", "train.warmup_epochs=0", "train.label_smoothing=0",
                                "train.epochs=8", "train.device=cpu", f"train.logit_adjustment={tau}"])
    trainer = Trainer(config, noise)
    for _ in range(8):
        trainer.train_epoch()
    p_o = trainer.predict(torch.from_numpy(rng.integers(0, 256, (256, 28, 28), dtype=np.uint8)))[:, 1].mean()
    assert lo < float(p_o) < hi, float(p_o)


def test_diverged_training_ends_in_one_line(cli, tiny):
    from conftest import with_sets

    result = cli("train", *with_sets(tiny + ["train.epochs=3", "train.lr=1e9"]))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert "training diverged in epoch 1: the mean loss is nan" in line and "train.lr" in line, line
    assert "weight_decay" not in line  # the default decay is no cause
    # A decay past 1 diverges at the default lr; the hint named only the lr.
    result = cli("train", *with_sets(tiny + ["train.epochs=3", "train.weight_decay=1e30"]))
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.endswith("(a lower train.lr than 0.003 or train.weight_decay than 1e+30 usually trains)"), line


def test_durations_read_as_a_person_reads_them():
    from alphabet.train import duration

    assert [duration(s) for s in (4, 89, 90, 720, 5399, 5400, 12240)] == [
        "4 s", "89 s", "2 min", "12 min", "90 min", "1.5 h", "3.4 h"]


def test_a_device_this_machine_lacks_is_refused_in_one_line(monkeypatch):
    from alphabet.engine import pick_device

    # An Apple GPU asked for on Linux ended in torch's traceback once the data was read.
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"^train.device: 'mps' asked for, but no MPS device is available"):
        pick_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=r"^train.device: 'cuda' asked for, but no CUDA device is available$"):
        pick_device("cuda")
    # A GPU past the machine's count: torch's own error came only at the first tensor moved there.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match=r"^train.device: 'cuda:2' asked for, but this machine has 2 CUDA devices; "
                                        r"expected cuda, or cuda:0 to cuda:1$"):
        pick_device("cuda:2")
    assert pick_device("cpu") == torch.device("cpu")


def test_running_out_of_memory_names_the_settings_that_size_it():
    # A real allocation the machine cannot make, as a batch or model too large for it would ask.
    config = load_config(None, TINY)
    with pytest.raises(UserError, match=r"^train.batch_size: out of memory on cpu at batch 32 with model.width 8, "
                                        r"model.stages 2; expected a smaller train.batch_size or model$"):
        with out_of_memory_named(config, torch.device("cpu")):
            torch.empty(2**62, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="^a bug$"), out_of_memory_named(config, torch.device("cpu")):
        raise RuntimeError("a bug")  # other errors are not taken for memory


def test_a_disk_that_fills_mid_run_ends_in_one_line_and_the_run_continues_once_there_is_room(
        cli, tiny, tmp_path, monkeypatch):
    # The disk is simulated: the third last.pt fails as a full disk fails it, after writing part of it.
    import errno

    real_save, saves = torch.save, []

    def save(payload: dict, path: Path) -> None:
        saves.append(Path(path).name)
        if saves.count("last.pt.tmp") == 3:
            Path(path).write_bytes(b"part of a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, path)

    monkeypatch.setattr(torch, "save", save)
    done = cli("train", *[x for o in tiny + ["train.epochs=4", "log.name=r"] for x in ("--set", o)])
    run = tmp_path / "runs" / "r"
    assert done.code == 2 and done.err.count("\n") == 1, done.err
    assert re.fullmatch(rf"alphabet: error: {re.escape(str(run))}/checkpoints/last.pt: cannot write it, no space left "
                        rf"on its disk \([\d,.]+ MiB free\); expected room for it; free some, then continue it with: "
                        rf"alphabet train --resume {re.escape(str(run))}\n", done.err), done.err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no .tmp left
    assert load_checkpoint(run / "checkpoints" / "last.pt")["trainer"]["epoch"] == 2

    monkeypatch.setattr(torch, "save", real_save)  # room again
    assert cli("train", "--resume", run).code == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4
