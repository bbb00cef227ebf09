"""Experiment files and the search space: checked without starting Ray."""

import re

import optuna
import pytest
import yaml

from alphabet.config import load_config
from alphabet.errors import UserError
from search.experiment import experiment_from_dict, load_experiment, trial_config
from search.retrain import batch_overrides
from search.runner import per_trial_resources
from search.space import DefineSpace

GOOD = {
    "config": {"data": {"source": "synthetic", "case": "lower"}},
    "space": {
        "train.optimizer": {"type": "choice", "values": ["adamw", "sgd"]},
        "train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "train.momentum": {"type": "uniform", "low": 0.8, "high": 0.99, "when": {"train.optimizer": "sgd"}},
        "model.width": {"type": "int", "low": 8, "high": 64, "step": 8},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 0.5, "step": 0.1},
    },
    "asha": {"max_t": 7},
}


def test_experiment_files_in_repo_are_valid():
    for name in ("quick", "emnist_letters", "emnist_lowercase", "own_letters"):
        experiment = load_experiment(f"experiments/{name}.yaml")
        assert experiment.space and experiment.config.train.epochs == experiment.asha.max_t


def test_the_search_smoke_test_is_tiny_on_the_experiments_own_data(tmp_path):
    import numpy as np
    from test_data import write_emnist

    from alphabet.data import load_splits
    from search.cli import SMOKE_TEST

    write_emnist(tmp_path, "letters", {"train": np.arange(1, 27).repeat(60), "test": np.arange(1, 27).repeat(20)})
    experiment = load_experiment("experiments/emnist_letters.yaml", [*SMOKE_TEST, f"config.data.root={tmp_path}"])
    splits = load_splits(experiment.config.data)
    assert experiment.config.data.source == "emnist-letters"  # its own data, so the set-up is checked
    assert len(splits.train) + len(splits.val) == 26 * 40 and len(splits.test) == 26 * 10  # not 60 and 20
    assert experiment.search.num_samples == 4 and experiment.asha.max_t == 2


def test_own_letters_reads_a_folder_of_letter_images(tmp_path):
    import numpy as np
    from PIL import Image

    from alphabet.data import load_splits
    from search.cli import SMOKE_TEST

    rng = np.random.default_rng(0)
    for letter in "abc":
        (tmp_path / letter).mkdir()
        for i in range(50):  # dark strokes on a light page, as a scan holds them
            page = np.full((60, 50), 235, np.uint8)
            page[10 + rng.integers(5): 50, 15 + 5 * "abc".index(letter): 25 + 5 * "abc".index(letter)] = 30
            Image.fromarray(page).save(tmp_path / letter / f"{i}.png")
    experiment = load_experiment("experiments/own_letters.yaml", [f"config.data.source=folder:{tmp_path}"])
    splits = load_splits(experiment.config.data)
    assert splits.train.classes == ["a", "b", "c"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (102, 18, 30)  # 150: 20% test, 15% val
    # --smoke-test on the same folder: at most 40 letters a class for training and validation
    smoke = load_experiment("experiments/own_letters.yaml", [*SMOKE_TEST, f"config.data.source=folder:{tmp_path}"])
    small = load_splits(smoke.config.data)
    assert len(small.train) + len(small.val) == 3 * 40 and smoke.search.num_samples == 4


def test_space_bounds_in_exponent_notation(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("config: {data: {source: synthetic}}\n"
                    "space:\n  train.lr: {type: loguniform, low: 1e-4, high: 1e-1}\nasha: {max_t: 3}\n")
    (spec,) = load_experiment(path).space
    assert (spec.low, spec.high) == (1e-4, 0.1)


@pytest.mark.parametrize(("search", "startup"), [
    ({"num_samples": 16}, 3), ({"num_samples": 30}, 6), ({"num_samples": 200}, 10),
    ({"num_samples": 16, "startup_trials": "auto"}, 3), ({"num_samples": 16, "startup_trials": 8}, 8),
])
def test_tpe_startup_trials_scale_with_the_search(search, startup):
    experiment = experiment_from_dict({**GOOD, "search": search}, "x.yaml")
    assert experiment.startup_trials == startup
    assert experiment_from_dict(experiment.to_dict(), "saved.yaml").startup_trials == startup  # --resume


@pytest.mark.parametrize(("settings", "rank_epochs"), [
    ({"asha": {"max_t": 60, "grace_period": 10}}, 6), ({"asha": {"max_t": 12}}, 1),
    ({"asha": {"max_t": 60, "grace_period": 10}, "search": {"rank_epochs": 1}}, 1),
])
def test_trials_rank_by_the_last_tenth_of_their_epochs_unless_told(settings, rank_epochs):
    experiment = experiment_from_dict({**GOOD, **settings}, "x.yaml")
    assert experiment.rank_epochs == rank_epochs
    assert experiment_from_dict(experiment.to_dict(), "saved.yaml").rank_epochs == rank_epochs  # --resume


def test_retrain_batch_size_is_kept_for_the_retrain():
    assert experiment_from_dict(GOOD, "x.yaml").retrain_batch_size is None  # the searched batch
    experiment = experiment_from_dict({**GOOD, "retrain": {"batch_size": 512}}, "x.yaml")
    assert experiment_from_dict(experiment.to_dict(), "saved.yaml").retrain_batch_size == 512


def test_a_larger_retrain_batch_scales_the_lr_by_the_square_root():
    searched = load_config(None, ["train.batch_size=128", "train.lr=0.0064"])
    assert batch_overrides(searched, 512, {}) == ["train.batch_size=512", "train.lr=0.0128"]
    assert batch_overrides(searched, 32, {}) == ["train.batch_size=32", "train.lr=0.0032"]
    assert batch_overrides(searched, 128, {}) == ["train.batch_size=128"]
    assert batch_overrides(searched, 512, {"lr": 0.01}) == ["train.batch_size=512"]  # the user's lr wins
    with pytest.raises(UserError, match="--batch-size 512 and --set train.batch_size=256: expected one of them"):
        batch_overrides(searched, 512, {"batch_size": 256})


def test_set_changes_the_search_space():
    # The parameters' names have a dot (train.lr), so --set space.train.lr.high is read as parameter
    # train.lr, field high, not as nested keys.
    experiment = experiment_from_dict(GOOD, "exp.yaml", ["space.train.lr.high=0.1", "space.model.width=null",
                                                         "space.train.label_smoothing={type: choice, values: [0, 0.1]}",
                                                         "search.num_samples=7"])
    params = {p.key: p for p in experiment.space}
    assert (params["train.lr"].low, params["train.lr"].high) == (1e-4, 0.1)
    assert "model.width" not in params and params["train.label_smoothing"].values == [0, 0.1]
    assert experiment.search.num_samples == 7 and GOOD["space"]["train.lr"]["high"] == 1e-2


def test_a_text_setting_takes_the_text_typed_after_set():
    experiment = experiment_from_dict(GOOD, "exp.yaml", ["storage.name=2024", "config.log.name=2024",
                                                         "config.data.classes=yes", "search.num_samples=7"])
    assert (experiment.storage.name, experiment.config.log.name) == ("2024", "2024")
    assert (experiment.config.data.classes, experiment.search.num_samples) == ("yes", 7)
    # "auto" leaves a number to the search, but names a search or folder as written (it named the file's stem)
    auto = experiment_from_dict({**GOOD, "storage": {"name": "auto", "path": "auto"}}, "exp.yaml",
                                ["search.max_concurrent=auto", "resources.cpus_per_trial=auto"])
    assert (auto.storage.name, auto.storage.path) == ("auto", "auto")
    assert (auto.search.max_concurrent, auto.resources.cpus_per_trial) == (None, None)


@pytest.mark.parametrize("override, fragment", [
    ("space.train.lr.high=-1", "--set: space.train.lr: expected low < high"),  # the file's space is good
    ("space.train.nope.high=1", "--set space.train.nope.high: space.train.nope is not searched in this experiment;"),
    ("space.train.lrr.high=1", "space.train.lrr is not searched in this experiment (did you mean space.train.lr?)"),
    ("space.lr=1", "--set space.lr: expected space.SECTION.NAME=... or space.SECTION.NAME.FIELD=..."),
])
def test_set_of_a_bad_search_space(override, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        experiment_from_dict(GOOD, "exp.yaml", [override])


def test_a_mistake_is_named_as_the_file_s_or_as_set_s():
    bad_file = {**GOOD, "config": {**GOOD["config"], "model": {"arch": "vgg"}}}
    for raw, overrides, named in [
        (GOOD, ["config.model.arch=vgg"], "--set: config.model.arch: expected one of"),
        (GOOD, ["serch.num_samples=3"], "--set: unknown key 'serch'"),
        (GOOD, ["config.data.source=mnist"], "--set: config.data.source: unknown source 'mnist'"),  # before Ray
        (bad_file, ["search.num_samples=3"], "exp.yaml: config.model.arch: expected one of"),
    ]:
        with pytest.raises(UserError, match=re.escape(named)):
            experiment_from_dict(raw, "exp.yaml", overrides)
    assert experiment_from_dict(bad_file, "exp.yaml", ["config.model.arch=cnn"]).config.model.arch == "cnn"


def drawn(experiment, trials: int, first_trials: list[dict] | None = None) -> list[dict]:
    """The params of the first ``trials`` trials a random-sampling study draws from the space, each told 0.5,
    after ``first_trials`` are enqueued as the searcher enqueues them."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in first_trials or []:
        study.enqueue_trial(point)
    space = DefineSpace(experiment.space)
    params = []
    for _ in range(trials):
        trial = study.ask()
        space(trial)
        params.append(trial.params)
        study.tell(trial, 0.5)
    return params


def test_space_is_conditional_and_quantised():
    seen = drawn(experiment_from_dict(GOOD, "x.yaml"), 40)
    for params in seen:
        assert ("train.momentum" in params) == (params["train.optimizer"] == "sgd")
        assert params["model.width"] % 8 == 0
        assert round(params["model.dropout"] * 10, 6) == int(round(params["model.dropout"] * 10))
        assert 1e-4 <= params["train.lr"] <= 1e-2
    assert {p["train.optimizer"] for p in seen} == {"adamw", "sgd"}


def test_a_condition_on_a_setting_listed_later_still_holds():
    # As the README lists it: momentum above the optimizer it depends on. Decided in the listed order,
    # momentum's condition was never met, and momentum was never searched.
    raw = {"space": {"train.momentum": GOOD["space"]["train.momentum"], "model.width": GOOD["space"]["model.width"],
                     "train.optimizer": GOOD["space"]["train.optimizer"]}, "asha": {"max_t": 3}}
    experiment = experiment_from_dict(raw, "x.yaml")
    assert [p.key for p in experiment.space] == ["model.width", "train.optimizer", "train.momentum"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = DefineSpace(experiment.space)
    drawn = []
    for _ in range(12):
        trial = study.ask()
        space(trial)
        drawn.append(trial.params)
    assert any(d["train.optimizer"] == "sgd" for d in drawn)
    assert all(("train.momentum" in d) == (d["train.optimizer"] == "sgd") for d in drawn)


@pytest.mark.parametrize(("when", "fragment"), [
    ({"augment.rotate": {"when": {"augment.rotate": 5}}},
     "space.augment.rotate.when: expected a condition on another setting, got one on augment.rotate itself"),
    ({"augment.rotate": {"when": {"augment.shear": 5}}, "augment.shear": {"when": {"augment.rotate": 5}}},
     "space.augment.rotate.when: expected conditions on settings decided before it, got 'augment.shear', which "
     "waits on augment.rotate in turn"),
])
def test_conditions_that_go_round_are_refused(when, fragment):
    space = {key: {"type": "uniform", "low": 0, "high": 10, **extra} for key, extra in when.items()}
    with pytest.raises(UserError) as e:
        experiment_from_dict({"space": space, "asha": {"max_t": 3}}, "x.yaml")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_trial_config_applies_params_and_keeps_the_rest():
    experiment = experiment_from_dict(GOOD, "x.yaml")
    config = trial_config(experiment, {"train.lr": 0.002, "model.width": 24})
    assert (config.train.lr, config.model.width, config.train.epochs) == (0.002, 24, 7)
    assert config.data.case == "lower"
    # as Optuna quantises dropout 0.3 on steps of 0.1; best.yaml showed it so
    assert trial_config(experiment, {"model.dropout": 3 * 0.1}).model.dropout == 0.3 != 3 * 0.1


def test_first_trials_from_mappings_and_a_runs_best_yaml(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    best = {"train": {"optimizer": "adamw", "lr": 0.003, "momentum": 0.9}, "model": {"width": 32, "dropout": 0.2}}
    (run / "best.yaml").write_text(yaml.safe_dump(best))
    raw = {**GOOD, "search": {"num_samples": 4, "first_trials": [{"train.lr": 0.001}, str(run)]}}
    experiment = experiment_from_dict(raw, "x.yaml")
    # momentum is searched only with sgd, so the adamw best.yaml gives none: it would not be used
    taken = {"train.optimizer": "adamw", "train.lr": 0.003, "model.width": 32, "model.dropout": 0.2}
    assert experiment.first_trials == [{"train.lr": 0.001}, taken]
    (run / "best.yaml").unlink()  # RUN_DIR/experiment.yaml keeps the values, for --resume
    assert experiment_from_dict(experiment.to_dict(), "saved.yaml").first_trials == experiment.first_trials
    # Enqueued, they are what Optuna's first trials take; what an entry leaves out is sampled.
    first, second, third = drawn(experiment, 3, experiment.first_trials)
    assert first["train.lr"] == 0.001 and {"train.optimizer", "model.width"} <= first.keys()
    assert second == taken and third["train.lr"] not in (0.001, 0.003)
    without = experiment_from_dict(GOOD, "x.yaml")
    assert without.first_trials == [] and "first_trials" not in without.to_dict()["search"]


def bad(path, **changes):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("/")
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    path.write_text(yaml.safe_dump(raw))
    return path


DELETE = object()


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"serach": {}}, "unknown key 'serach' (did you mean search?); valid sections"),
    ({"config/train": {"weight_decy": 0.1}}, "config.train.weight_decy' (did you mean config.train.weight_decay?)"),
    ({"train": {"lr": 0.01}}, "unknown key 'train'; valid sections: config, space, search, asha, resources, storage, "
                              "retrain (training settings go under config: config.train.lr)"),
    ({"space/train.lrate": {"type": "uniform", "low": 0, "high": 1}},
     "space.train.lrate: unknown setting (did you mean train.lr?); expected one of"),
    ({"space/train.lr": {"type": "gaussian"}}, "space.train.lr: expected a mapping with type one of"),
    ({"space/train.lr": {"type": "uniform", "low": 1, "high": 0.1}}, "expected low < high"),
    ({"space/train.lr": {"type": "loguniform", "low": 0, "high": 1}}, "low: expected a value > 0 for loguniform"),
    ({"space/train.lr": {"type": "uniform", "low": "a", "high": 1}}, "low: expected a finite number, got 'a'"),
    ({"space/train.lr": {"type": "uniform", "low": 0.001, "high": 0.1, "step": float("nan")}},
     "space.train.lr: step: expected a finite number, got nan"),
    # past what torch can size even on the meta device: an OverflowError traceback before
    ({"space/model.width": {"type": "int", "low": 8, "high": 10**30}}, "space.model: too large for torch to build"),
    ({"space/train.lr": {"type": "choice", "values": []}}, "values: expected a non-empty list"),
    # found by a sweep of the space's fields: a TypeError, Optuna's ValueError, or a silent misreading before
    ({"space/train.lr": {"type": ["loguniform"], "low": 0.001, "high": 0.1}},
     "space.train.lr: expected a mapping with type one of"),
    ({"space/model.width": {"type": "int", "low": 8, "high": 32, "step": 0.5}},
     "space.model.width: step: expected a whole number for type int, got 0.5"),
    ({"space/model.dropout": {"type": "uniform", "low": 0.0, "high": 0.4, "step": 1000}},
     "space.model.dropout: step: expected at most high - low (0.4), got 1000"),
    ({"space/train.optimizer": {"type": "choice", "values": ["adamw", "adamw"]}},
     "space.train.optimizer: values: expected each value once, got 'adamw' more than once"),
    ({"space/train.momentum": {"type": "uniform", "low": 0.8, "high": 0.98, "when": ""}},
     "space.train.momentum: when: expected a mapping like {train.optimizer: sgd}, got ''"),
    ({"space/train.lr": {"type": "uniform", "low": 0.1, "high": 1, "q": 2}}, "unknown key 'q' for type uniform"),
    ({"space/model.width": {"type": "int", "low": 8.5, "high": 64}}, "type int, got low=8.5 high=64"),
    # whole-number ends pass as ints, but every trial would draw a fraction and fail
    ({"space/model.width": {"type": "uniform", "low": 8, "high": 32}},
     "space.model.width: expected type int or choice for an integer setting, got type uniform"),
    ({"space/model.batch_norm": {"type": "uniform", "low": 0, "high": 1}},
     "space.model.batch_norm: expected type choice for a bool setting, got type uniform"),
    ({"space/model.dropout": {"type": "uniform", "low": 0, "high": 0.5, "when": {"model.depth": 2}}},
     "'model.depth' is not a searched setting"),
    # a real setting that is fixed is not a misspelling of a searched one
    ({"space/model.dropout": {"type": "uniform", "low": 0, "high": 0.5, "when": {"model.stages": 2}}},
     "'model.stages' is not a searched setting (it is fixed in this experiment; a condition can name only a "
     "setting the space draws); expected one of"),
    ({"space/train.momentum": {"type": "uniform", "low": 0.8, "high": 0.9, "when": {"train.optimiser": "sgd"}}},
     "'train.optimiser' is not a searched setting (did you mean train.optimizer?); expected one of model.dropout, "
     "model.width, train.lr, train.optimizer"),
    # a condition no trial could meet would leave the setting unsearched without a word
    ({"space/train.momentum": {"type": "uniform", "low": 0.8, "high": 0.99, "when": {"train.optimizer": "rmsprop"}}},
     "space.train.momentum.when.train.optimizer: expected one of adamw, sgd, got 'rmsprop'"),
    ({"space/model.dropout": {"type": "uniform", "low": 0, "high": 0.5, "when": {"model.width": 12}}},
     "space.model.dropout.when.model.width: expected 8 plus a multiple of 8, got 12"),
    ({"space/model.width": {"type": "int", "low": 8, "high": 30, "step": 8}},
     "space.model.width: expected high - low to be a multiple of step 8, got low=8 high=30"),
    ({"space/model.width": {"type": "int", "low": 8, "high": 64, "step": 8, "log": True}},
     "space.model.width: expected no step with log: true"),
    ({"space/model.width": {"type": "int", "low": 8, "high": 64, "log": "yes"}},
     "space.model.width: log: expected true or false, got 'yes'"),
    ({"space/model.dropout": {"type": "uniform", "low": 0.0, "high": 0.45, "step": 0.1}},
     "space.model.dropout: expected high - low to be a multiple of step 0.1"),
    ({"space/data.source": {"type": "choice", "values": ["synthetic"]}}, "space.data.source: unknown setting"),
    # values a trial could not train with, refused before the search starts rather than by each trial
    ({"space/model.arch": {"type": "choice", "values": ["cnn", "vgg"]}},
     "space.model.arch: expected one of cnn, resnet, lenet, got 'vgg'"),
    ({"space/train.optimizer": {"type": "choice", "values": ["adamw", "adam"]}},
     "space.train.optimizer: expected one of adamw, sgd, got 'adam'"),
    ({"space/model.width": {"type": "int", "low": 0, "high": 16}}, "space.model.width: expected a value > 0, got 0"),
    ({"space/model.stages": {"type": "int", "low": 2, "high": 5}}, "space.model.stages: expected at most 4"),
    ({"space/model.stages": {"type": "int", "low": 2, "high": 10**30}}, "space.model.stages: expected at most 4"),
    ({"space/model.kernel_size": {"type": "choice", "values": [3, 4]}}, "space.model.kernel_size: expected an odd"),
    ({"config/model": {"arch": "vgg"}}, "config.model.arch: expected one of cnn, resnet, lenet, got 'vgg'"),
    ({"space": {}}, "space: expected a mapping of at least one setting"),
    ({"search": {"metric": "test_balanced_accuracy"}}, "search.metric: expected one of"),
    ({"search": {"num_samples": 0}}, "search.num_samples: expected a value > 0"),
    ({"search": {"num_samples": "many"}}, "search.num_samples: expected int"),
    ({"search": {"startup_trials": 0}}, "search.startup_trials: expected a value > 0"),
    ({"search": {"rank_epochs": 0}}, "search.rank_epochs: expected a value > 0"),
    ({"asha": {"max_t": 4, "grace_period": 9}}, "asha.grace_period: expected from 1 to asha.max_t (4), got 9"),
    ({"asha": {"max_t": 0}}, "asha.max_t: expected at least 1, got 0"),
    ({"asha": {"reduction_factor": 1}}, "asha.reduction_factor: expected more than 1, got 1"),
    ({"search": {"scheduler": "hyperband"}}, "search.scheduler: expected one of asha, fifo, got 'hyperband'"),
    ({"search": {"searcher": "tpe"}}, "search.searcher: expected one of optuna, random, got 'tpe'"),
    ({"asha": {"reduction_factor": float("nan")}}, "asha.reduction_factor: expected a finite number, got nan"),
    ({"search": {"seed": -1}}, "search.seed: expected a seed from 0 to 4294967295, got -1"),
    ({"resources": {"cpus_per_trial": 0}}, "resources.cpus_per_trial: expected a positive number"),
    ({"resources": {"gpus_per_trial": 1.5}}, "resources.gpus_per_trial: expected a fraction"),
    ({"retrain": {"epochs": 0}}, "retrain.epochs: expected a positive integer"),
    ({"retrain": {"seeds": 0}}, "retrain.seeds: expected a positive integer"),
    ({"retrain": {"ensemble": 3}}, "unknown key 'retrain.ensemble'; valid keys: retrain.epochs, retrain.seeds, "
                                   "retrain.batch_size"),
    ({"retrain": {"epoch": 3}}, "unknown key 'retrain.epoch' (did you mean retrain.epochs?)"),
    ({"retrain": [500]}, "retrain: expected a mapping with the keys epochs, seeds and batch_size"),
    ({"retrain": {"batch_size": 0}}, "retrain.batch_size: expected a positive integer (or null: the searched "
                                     "batch size), got 0"),
    ({"retrain": {"batch_size": "512"}}, "retrain.batch_size: expected a positive integer (or null: the searched "
                                         "batch size), got '512'"),
    ({"retrain": {"batch_size": "auto"}}, "(or null: the searched batch size), got 'auto'"),
    ({"config/train": {"batch_size": -2}}, "config.train.batch_size: expected a value > 0"),
    # a distribution among the fixed settings: the error says it belongs under space
    ({"config/train": {"lr": {"type": "loguniform", "low": 0.001, "high": 0.1}}},
     "config.train.lr: expected a fixed value; to search it, give it under space, as train.lr: {type:"),
    ({"config/model": {"width": {"choice": [16, 32]}}}, "config.model.width: expected a fixed value; to search it"),
    ({"config/train": {"epochs": 10}}, "config.train.epochs: expected no value; in an experiment asha.max_t"),
    ({"space/train.epochs": {"type": "choice", "values": [2, 3]}},
     "space.train.epochs: expected it not searched; asha.max_t sets the epochs of a trial"),
    ({"config/model": {"dropout": 2}}, "config.model.dropout: expected a value in [0, 1)"),
    ({"config/data": {"classes": ""}}, "config.data.classes: expected letters a-z or A-Z"),
    ({"storage": {"name": "../escape"}}, "storage.name: expected letters"),
    # saved in RUN_DIR/experiment.yaml and printed: gs://anonymous@bucket (no secret) is taken
    ({"storage": {"path": "s3://KEYID:SECRET@bucket/searches"}},
     "storage.path: a secret key in the URI (USER:SECRET@) would be saved and printed"),
    ({"search": {"first_trials": {"train.lr": 0.001}}}, "search.first_trials: expected a list of mappings or YAML"),
    ({"search": {"first_trials": [{"train.lr": 0.5}]}},
     "search.first_trials[0].train.lr: expected a value from 0.0001 to 0.01, got 0.5"),
    ({"search": {"first_trials": [{"model.width": 12}]}},
     "search.first_trials[0].model.width: expected 8 plus a multiple of 8, got 12"),
    ({"search": {"first_trials": [{"train.optimizer": "adam"}]}},
     "search.first_trials[0].train.optimizer: expected one of adamw, sgd, got 'adam'"),
    ({"search": {"first_trials": [{"train.optimizer": "adamw", "train.momentum": 0.9}]}},
     "first_trials[0].train.momentum: searched only when train.optimizer is sgd; expected train.optimizer: sgd"),
    ({"search": {"first_trials": [{"model.depth": 2}]}}, "first_trials[0].model.depth: not a searched setting"),
    ({"search": {"first_trials": ["no/such/run"]}}, "search.first_trials[0]: no/such/run: not found; expected"),
    ({"search": {"num_samples": 1, "first_trials": [{"train.lr": 0.001}, {"train.lr": 0.002}]}},
     "search.first_trials: expected at most search.num_samples (1) entries, got 2"),
])
def test_bad_experiment_files(cli, tmp_path, changes, fragment):
    path = bad(tmp_path / "exp.yaml", **changes)
    result = cli("search", path)
    assert result.code == 2
    line = result.err.strip()
    assert "\n" not in line and "exp.yaml" in line and fragment in line, line


def test_malformed_experiment_yaml(cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("space: {train.lr: [\n")
    result = cli("search", path)
    assert result.code == 2 and "broken.yaml: malformed YAML at line" in result.err


def test_a_section_or_setting_given_twice_is_refused(cli, tmp_path):
    # PyYAML keeps the last of two equal keys: the first space would be searched by nobody, unsaid.
    path = tmp_path / "twice.yaml"
    text = yaml.safe_dump(GOOD, sort_keys=False)
    for extra, fragment in (("space:\n  train.lr: {type: uniform, low: 0.1, high: 0.2}\n", "key 'space' given twice"),
                            ("retrain: {epochs: 3, epochs: 4}\n", "key 'epochs' given twice")):
        path.write_text(text + extra)
        result = cli("search", path)
        assert result.code == 2 and "twice.yaml: malformed YAML at line" in result.err and fragment in result.err


def test_impossible_resources():
    experiment = experiment_from_dict({**GOOD, "resources": {"cpus_per_trial": 64}}, "big.yaml")
    with pytest.raises(UserError, match=r"^big.yaml: resources.cpus_per_trial: expected at most 2 \(the cluster has "
                                        r"2 CPU and 0 GPU\), got 64$"):
        per_trial_resources(experiment, [{"CPU": 2.0}])
    gpu = experiment_from_dict({**GOOD, "resources": {"gpus_per_trial": 1}}, "gpu.yaml")
    with pytest.raises(UserError, match=r"^gpu.yaml: resources.gpus_per_trial: expected at most 0 \(.*\), got 1$"):
        per_trial_resources(gpu, [{"CPU": 2.0}])
    # the file asks for what the cluster has; --set asked for more, so the line names --set
    given = experiment_from_dict(GOOD, "ok.yaml", ["resources.gpus_per_trial=0.5", "search.num_samples=3"])
    with pytest.raises(UserError, match=r"^--set: resources.gpus_per_trial: expected at most 0 "):
        per_trial_resources(given, [{"CPU": 2.0}])
    assert given.origin("search.num_samples") == "--set" and given.origin("resources.cpus_per_trial") == "ok.yaml"


def test_a_trial_asking_more_than_any_one_node_has_is_refused():
    # Two nodes of one CPU hold two CPUs, but Ray places a trial on one node: a trial of two would
    # wait for ever. Nor may a trial's CPUs and GPU stand on different nodes.
    two = experiment_from_dict({**GOOD, "resources": {"cpus_per_trial": 2}}, "two.yaml")
    with pytest.raises(UserError, match=r"^two.yaml: resources.cpus_per_trial: expected at most 1 \(a trial runs on "
                                        r"one node; the cluster's 2 nodes have 1 CPU 0 GPU, 1 CPU 0 GPU\), got 2$"):
        per_trial_resources(two, [{"CPU": 1.0}, {"CPU": 1.0}])
    assert per_trial_resources(two, [{"CPU": 1.0}, {"CPU": 2.0}]) == {"cpu": 2, "gpu": 0}
    both = experiment_from_dict({**GOOD, "resources": {"cpus_per_trial": 4, "gpus_per_trial": 1}}, "both.yaml")
    with pytest.raises(UserError, match=r"^both.yaml: resources: expected a share that one node holds \(.*8 CPU 0 "
                                        r"GPU, 2 CPU 2 GPU\), got 4 CPU and 1 GPU per trial$"):
        per_trial_resources(both, [{"CPU": 2.0, "GPU": 2.0}, {"CPU": 8.0}])


def test_auto_resources_share_a_gpu():
    experiment = experiment_from_dict(GOOD, "x.yaml")
    assert per_trial_resources(experiment, [{"CPU": 16.0, "GPU": 1.0}]) == {"cpu": 1, "gpu": 0.125}
    assert per_trial_resources(experiment, [{"CPU": 2.0}]) == {"cpu": 1, "gpu": 0}


@pytest.mark.parametrize(("nodes", "settings", "cpus"), [
    ([16], {}, 1),  # 20 trials, as many at once as there are CPUs
    ([64], {}, 3),  # 20 trials on 64 CPUs: 3 each
    ([8], {"max_concurrent": 2}, 4),
    ([2], {"max_concurrent": 2}, 1),
    ([2], {"max_concurrent": 1}, 2),
    ([8], {"num_samples": 3}, 2),
    ([3, 3], {"max_concurrent": 2}, 3),  # one trial a node
    ([3, 3], {"max_concurrent": 3}, 1),  # two CPUs each would leave the third trial no node
    ([8, 2], {"max_concurrent": 3}, 2),
])
def test_auto_cpus_share_the_cpus_among_the_trials_that_run_at_once(nodes, settings, cpus):
    experiment = experiment_from_dict({**GOOD, "search": settings}, "x.yaml")
    assert per_trial_resources(experiment, [{"CPU": float(n)} for n in nodes]) == {"cpu": cpus, "gpu": 0}
    given = experiment_from_dict({**GOOD, "search": settings, "resources": {"cpus_per_trial": 1}}, "x.yaml")
    assert per_trial_resources(given, [{"CPU": float(n)} for n in nodes])["cpu"] == 1  # as the file says
    gpu = experiment_from_dict({**GOOD, "search": settings, "resources": {"gpus_per_trial": 0.5}}, "x.yaml")
    assert per_trial_resources(gpu, [{"CPU": float(n), "GPU": 1.0} for n in nodes])["cpu"] == 1  # a GPU's trial


@pytest.mark.parametrize("max_t, grace, rf", [(12, 3, 3), (4, 1, 2), (9, 1, 3), (500, 10, 4), (6, 2, 3)])
def test_asha_milestones_match_rays_rungs(max_t, grace, rf):
    # The trial table tells ASHA's prunes from budget stops by these epochs, so they must be Ray's.
    from ray.tune.schedulers import ASHAScheduler

    from search.results import asha_milestones

    experiment = experiment_from_dict({"space": {"train.lr": {"type": "loguniform", "low": 0.001, "high": 0.01}},
                                       "asha": {"max_t": max_t, "grace_period": grace, "reduction_factor": rf}},
                                      "test.yaml")
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace, reduction_factor=rf)
    rays = {milestone for bracket in scheduler._brackets for milestone, _ in bracket._rungs if milestone < max_t}
    assert asha_milestones(experiment) == rays
    fifo = experiment_from_dict({"space": {"train.lr": {"type": "loguniform", "low": 0.001, "high": 0.01}},
                                 "search": {"scheduler": "fifo", "searcher": "random"}}, "test.yaml")
    assert asha_milestones(fifo) == set()
