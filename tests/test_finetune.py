"""Fine-tuning (train.init_from): what is copied, what is refused, and that it helps where it should."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from conftest import TINY
from test_search import alphabet, trials_of, write_experiment

from alphabet.checkpoint import load_checkpoint, save_checkpoint
from alphabet.config import ModelConfig, from_dict, load_config
from alphabet.errors import UserError
from alphabet.finetune import InitialWeights, apply_initial_weights, load_initial_weights, output_layer
from alphabet.models import build_model
from alphabet.train import run_training
from search.experiment import check_initial_weights, experiment_from_dict

SMALL = ModelConfig(width=8, stages=2, classifier_width=32)


def source(classes: str, merged: bool = False, config: ModelConfig = SMALL) -> InitialWeights:
    torch.manual_seed(1)
    return InitialWeights("src.pt", list(classes), merged, config, build_model(config, len(classes)).state_dict())


def test_the_body_is_copied_and_the_last_layer_follows_the_class_names():
    initial = source("abc")
    torch.manual_seed(2)
    model = build_model(SMALL, 3)
    fresh = model.state_dict()[output_layer(model) + ".weight"].clone()
    said = apply_initial_weights(model, initial, ["b", "a", "Q"], SMALL)
    state, out = model.state_dict(), output_layer(model)
    for key, value in initial.state.items():
        if not key.startswith(out):
            assert torch.equal(state[key], value), key
    weight, bias = state[out + ".weight"], state[out + ".bias"]
    assert torch.equal(weight[0], initial.state[out + ".weight"][1])  # b is row 1 there, row 0 here
    assert torch.equal(weight[1], initial.state[out + ".weight"][0])
    assert torch.equal(bias[:2], initial.state[out + ".bias"][[1, 0]])
    assert torch.equal(weight[2], fresh[2])  # no Q there: left as initialised
    assert said.endswith("give 2 of this run's 3; Q start fresh")


@pytest.mark.parametrize("arch", ["cnn", "resnet", "lenet"])
def test_a_lowercase_model_started_from_a_52_letter_one_answers_as_it_does(arch):
    config = ModelConfig(arch=arch, width=8, stages=2, classifier_width=32)
    lower, upper = [chr(97 + i) for i in range(26)], [chr(65 + i) for i in range(26)]
    torch.manual_seed(3)
    big = build_model(config, 52).eval()
    small = build_model(config, 26)
    apply_initial_weights(small, InitialWeights("src.pt", upper + lower, False, config, big.state_dict()),
                          lower, config)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(small.eval()(x), big(x)[:, 26:], atol=1e-6)


def test_a_case_merged_source_gives_its_letters_to_both_cases():
    initial = source("ab", merged=True)
    model = build_model(SMALL, 3)
    apply_initial_weights(model, initial, ["A", "b", "a"], SMALL)
    weight = model.state_dict()[output_layer(model) + ".weight"]
    theirs = initial.state[output_layer(model) + ".weight"]
    assert torch.equal(weight[0], theirs[0]) and torch.equal(weight[2], theirs[0]) and torch.equal(weight[1], theirs[1])


def test_another_architecture_is_refused_naming_the_settings_that_differ():
    model = build_model(ModelConfig(width=16, stages=2, classifier_width=32), 3)
    with pytest.raises(UserError, match=r"train.init_from: src.pt: its model does not fit this run's "
                                        r"\(model.width 8 there, 16 here\)"):
        apply_initial_weights(model, source("abc"), list("abc"), ModelConfig(width=16, stages=2, classifier_width=32))
    other_dropout = ModelConfig(width=8, stages=2, classifier_width=32, dropout=0.4)  # no tensor changes shape
    apply_initial_weights(build_model(other_dropout, 3), source("abc"), list("abc"), other_dropout)


def test_what_is_not_one_models_checkpoint_is_refused(tmp_path):
    (tmp_path / "ensemble.yaml").write_text("members: [seed-0/checkpoints/last.pt]\n")
    (tmp_path / "empty").mkdir()
    for path, expected in ((tmp_path / "nope", "not found; expected a checkpoint .pt or a run directory"),
                           (tmp_path / "ensemble.yaml", "an ensemble or config file; expected one model's"),
                           (tmp_path / "empty", "no checkpoints/last.pt in this directory")):
        with pytest.raises(UserError, match="^train.init_from: .*" + expected):
            load_initial_weights(path)


def test_fine_tuning_beats_random_weights_on_a_few_letters_and_resumes_without_its_source(tmp_path):
    def quiet(*_):
        return None

    # A source trained on plenty of synthetic letters; then 8 letters a class of other synthetic ones.
    run_training(load_config(None, TINY + ["data.synthetic_size=2400", "train.epochs=4",
                                           f"log.out_dir={tmp_path}", "log.name=source"]), log=quiet)
    few = TINY + ["data.synthetic_seed=7", "data.train_per_class=8", "train.epochs=3", f"log.out_dir={tmp_path}"]
    scratch = run_training(load_config(None, few + ["log.name=scratch"]), log=quiet)
    said = []
    tuned = run_training(load_config(None, few + ["log.name=tuned", f"train.init_from={tmp_path / 'source'}"]),
                         log=said.append)
    assert any(line.startswith("starting from ") for line in said)
    # The source's features carry over to new letters of its kind: from scratch it reads at chance (1/6), tuned
    # 0.38 to 0.70 over 14 draws of the synthetic letters (two renderings of the fonts, seven seeds each; 2026-12-06).
    assert tuned["test"]["balanced_accuracy"] > scratch["test"]["balanced_accuracy"] + 0.15
    # A resumed run takes its weights from its own checkpoint, so the source may be gone.
    shutil.rmtree(tmp_path / "source")
    run = tmp_path / "tuned"
    raw = yaml.safe_load((run / "config.yaml").read_text())
    assert raw["train"]["init_from"] == str(tmp_path / "source")
    payload = load_checkpoint(run / "checkpoints" / "last.pt")  # as if stopped after epoch 3 of 4
    config = from_dict(payload["config"])
    config.train.epochs = 4
    save_checkpoint(run / "checkpoints" / "last.pt", config, payload["classes"], payload["trainer"], payload["extra"])
    (run / "metrics.json").unlink()
    assert run_training(config, resume=run, log=quiet)["epochs"] == 4


def test_a_search_refuses_a_space_whose_models_the_weights_do_not_fit(tmp_path):
    raw = {"config": {"model": {"width": 8, "stages": 2, "classifier_width": 32}},
           "space": {"model.width": {"type": "choice", "values": [8, 16]}}}
    experiment = experiment_from_dict(raw, "exp.yaml")
    with pytest.raises(UserError, match=r"^exp.yaml: space.model.width=16: train.init_from: src.pt: its model "
                                        r"does not fit this run's \(model.width 8 there, 16 here\)"):
        check_initial_weights(experiment, source("abc"))
    raw["space"]["train.init_from"] = {"type": "choice", "values": ["a", "b"]}
    with pytest.raises(UserError, match="^exp.yaml: space.train.init_from: expected it fixed"):
        experiment_from_dict(raw, "exp.yaml")


@pytest.mark.slowest  # 24 s; the fine-tuning tests above show a run starting from weights in 14 s
def test_every_trial_of_a_search_starts_from_the_weights(tmp_path):
    # A source that reads these letters well; the trials' lr is too small to move it in one epoch, so a
    # first epoch near the source's accuracy shows the trial started there (random weights: about 0.17).
    source_run = run_training(load_config(None, TINY + ["model.width=8", "data.synthetic_size=900", "train.epochs=6",
                                                          f"log.out_dir={tmp_path}", "log.name=source"]),
                              log=lambda *_: None)
    assert source_run["test"]["balanced_accuracy"] > 0.45
    experiment = write_experiment(tmp_path, "tuned", search={"num_samples": 2, "max_concurrent": 2, "seed": 0},
                                  asha={"max_t": 1, "grace_period": 1, "reduction_factor": 2},
                                  space={"train.lr": {"type": "loguniform", "low": 1e-9, "high": 1e-8}})
    raw = yaml.safe_load(experiment.read_text())
    raw["config"]["model"]["width"] = 8
    raw["config"]["train"]["init_from"] = str(tmp_path / "source")
    experiment.write_text(yaml.safe_dump(raw))
    done = alphabet("search", experiment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"every trial starts from {tmp_path / 'source'}" in done.stdout
    rows = trials_of(tmp_path / "search" / "tuned")
    assert len(rows) == 2 and all(r.score > 0.4 for r in rows), rows
