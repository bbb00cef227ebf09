"""The searcher against a real SQLite study, as a resumed driver sees it after kill -9."""

from __future__ import annotations

import optuna

from search.experiment import ParamSpec
from search.space import DefineSpace, PruningOptunaSearch

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
