"""The searcher against a real SQLite study, as a resumed driver sees it after kill -9."""

from __future__ import annotations

import optuna

from search.experiment import ParamSpec
from search.space import DefineSpace, PruningOptunaSearch, tell_what_tune_ended

METRIC = "val_balanced_accuracy"


def searcher(storage: str) -> PruningOptunaSearch:
    space = DefineSpace([ParamSpec(key="train.lr", type="loguniform", low=1e-4, high=1e-1)])
    return PruningOptunaSearch(space=space, metric=METRIC, mode="max", study_name="s",
                               storage=optuna.storages.RDBStorage(storage),
                               sampler=optuna.samplers.RandomSampler(seed=0), max_t=4)


def result(value: float, epoch: int) -> dict:
    return {METRIC: value, "training_iteration": epoch}


def test_trials_that_ended_after_tunes_last_save_keep_their_study_record(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    driver = searcher(storage)
    for trial_id in ("done", "pruned", "running"):
        assert driver.suggest(trial_id)
    driver.on_trial_result("done", result(0.5, 1))
    tune_state = tmp_path / "searcher.pkl"
    driver.save(str(tune_state))  # Tune's last save: every trial still running
    driver.on_trial_complete("done", result(0.7, 4))
    driver.on_trial_complete("pruned", result(0.2, 2))
    driver.suggest("asked_after_the_save")
    # kill -9 here; --resume restores the searcher from Tune's state, behind the study
    resumed = searcher(storage)
    resumed.restore(str(tune_state))
    for trial_id in ("done", "pruned", "running"):  # Tune reruns all three from their checkpoints
        resumed.on_trial_result(trial_id, result(0.9, 3))
    resumed.on_trial_complete("done", result(0.9, 4))
    resumed.on_trial_complete("pruned", result(0.9, 4))
    resumed.on_trial_complete("running", result(0.8, 4))

    study = optuna.load_study(study_name="s", storage=storage)
    done, pruned, running, orphan = study.trials
    assert (done.state, done.value) == (optuna.trial.TrialState.COMPLETE, 0.7)
    assert pruned.state == optuna.trial.TrialState.PRUNED and pruned.intermediate_values == {2: 0.2}
    assert (running.state, running.value) == (optuna.trial.TrialState.COMPLETE, 0.8)
    assert running.intermediate_values == {3: 0.9}
    assert orphan.state == optuna.trial.TrialState.FAIL


def test_trials_tune_ended_without_telling_the_searcher_are_told_at_the_end():
    # Seen in CI (2026-12-06): a refused trial whose result came as the time budget ran out stayed RUNNING
    # in the study, though Tune's results ended it. Each is told as the searcher tells its kind.
    from search.results import TrialRow

    study = optuna.create_study(direction="maximize")
    kinds = {"refused": ("refused", 0, []), "diverged": ("diverged", 2, [0.3]), "error": ("error", 1, [0.2]),
             "stopped": ("stopped", 2, [0.4, 0.5]), "completed": ("completed", 4, [0.5, 0.6, 0.7, 0.8]),
             "unfinished": ("unfinished", 1, [0.4]), "not started": ("stopped", 0, [])}
    rows = []
    for tune_id, (status, epochs, values) in kinds.items():
        study.ask().set_user_attr("tune_trial_id", tune_id)
        rows.append(TrialRow(tune_id, status, {}, values[-1] if values else float("nan"), 0.0, 0, epochs, 1.0,
                             reports=[(float(t), v) for t, v in enumerate(values)], reason=f"why {tune_id}"))
    study.ask().set_user_attr("tune_trial_id", "no such trial")  # not in Tune's results: left as it is
    assert tell_what_tune_ended(study, rows, max_t=4, worst=0.0) == 6
    told = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    states = optuna.trial.TrialState
    assert (told["refused"].state, told["refused"].value, told["refused"].user_attrs["refused"]) == (
        states.COMPLETE, 0.0, "why refused")
    assert (told["diverged"].state, told["diverged"].value, told["diverged"].user_attrs["diverged_in_epoch"]) == (
        states.COMPLETE, 0.0, 2)
    assert told["error"].state == told["not started"].state == states.FAIL
    assert told["stopped"].state == states.PRUNED and told["stopped"].intermediate_values == {1: 0.4, 2: 0.5}
    assert told["completed"].state == states.COMPLETE and told["completed"].value == 0.8
    assert told["unfinished"].state == told["no such trial"].state == states.RUNNING  # Ctrl-C: it resumes
    assert tell_what_tune_ended(study, rows, max_t=4, worst=0.0) == 0  # told once


def test_stepped_settings_reach_the_trial_as_written(tmp_path):
    # Optuna computes a stepped value as low + k * step: 0.30000000000000004 for a dropout stepped by 0.1.
    space = DefineSpace([ParamSpec(key="model.dropout", type="uniform", low=0.0, high=0.5, step=0.1),
                         ParamSpec(key="train.lr", type="loguniform", low=1e-4, high=1e-1)])
    driver = PruningOptunaSearch(space=space, metric=METRIC, mode="max", study_name="s",
                                 storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"),
                                 sampler=optuna.samplers.RandomSampler(seed=0), max_t=4)
    configs = [driver.suggest(f"t{i}") for i in range(8)]
    assert {repr(c["model.dropout"]) for c in configs} <= {"0.0", "0.1", "0.2", "0.3", "0.4", "0.5"}
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert 0.30000000000000004 in [t.params["model.dropout"] for t in study.trials]  # Optuna's own, as it was
    assert [c["train.lr"] for c in configs] == [t.params["train.lr"] for t in study.trials]  # unstepped: as drawn
