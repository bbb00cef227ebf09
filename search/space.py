"""The search space as an Optuna define-by-run function, and the searcher that uses it.

Define-by-run lets a setting depend on another (momentum only for SGD). The
searcher also tells Optuna every epoch's value, and marks trials that ASHA
stopped early as PRUNED rather than COMPLETE; a trial whose training diverged is
COMPLETE with the worst value, so TPE learns to avoid its settings. Each Optuna trial
carries its Tune trial's id (user attribute ``tune_trial_id``), so the study, in
optuna-dashboard or ``alphabet trials``, names the trial directories it speaks of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from search.experiment import ParamSpec

if TYPE_CHECKING:
    from search.results import TrialRow

TUNE_TRIAL_ID = "tune_trial_id"  # the Optuna trial's user attribute naming its Tune trial


class DefineSpace:
    """Callable ``space(trial)`` for OptunaSearch; a class so the searcher can be pickled."""

    def __init__(self, params: list[ParamSpec]) -> None:
        self.params = params

    def __call__(self, trial: optuna.Trial) -> None:
        chosen: dict[str, Any] = {}
        for p in self.params:
            if not p.applies(chosen):
                continue  # a conditional setting whose condition does not hold
            if p.type == "choice":
                chosen[p.key] = trial.suggest_categorical(p.key, p.values)
            elif p.type == "int":
                chosen[p.key] = trial.suggest_int(p.key, p.low, p.high, step=int(p.step or 1), log=p.log)
            else:
                log = p.type == "loguniform"
                chosen[p.key] = trial.suggest_float(p.key, p.low, p.high, log=log, step=None if log else p.step)
        return None

    def on_grid(self, config: dict) -> dict:
        """``config`` with each stepped float as its grid value is written: Optuna computes them as
        low + k * step, so a dropout of 0.30000000000000004 reached the trial's params, Tune's table
        and TensorBoard's HParams. Twelve decimals: no setting here means a step finer than that."""
        stepped = {p.key for p in self.params if p.type == "uniform" and p.step}
        return {key: round(value, 12) if key in stepped and isinstance(value, float) else value
                for key, value in config.items()}


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that records per-epoch values and ASHA's early stops as pruned."""

    def __init__(self, *args: Any, max_t: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_t = max_t

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict) and isinstance(self._space, DefineSpace):  # a config, not Searcher.FINISHED
            config = self._space.on_grid(config)
        trial = self._ot_trials.get(trial_id)
        if config is not None and trial is not None:
            trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and self.metric in result and trial_id not in self._completed_trials:
            trial.report(result[self.metric], result["training_iteration"])

    def restore(self, checkpoint_path: str) -> None:
        """Reconcile Tune's last saved state with the study, which a killed driver left ahead of it.

        The study (SQLite) is written the moment a trial ends; Tune's state only every few
        seconds. So a trial may be finished in the study yet unfinished to Tune, which reruns it
        from its checkpoint: its study record stands and the rerun's results are not told again.
        And Optuna trials asked for after Tune's last save belong to no Tune trial and would stay
        RUNNING forever: they are recorded as FAIL.
        """
        super().restore(checkpoint_path)
        tune_id_of = {trial.number: trial_id for trial_id, trial in self._ot_trials.items()}
        for recorded in self._ot_study.get_trials(deepcopy=False):
            trial_id = tune_id_of.get(recorded.number)
            if recorded.state.is_finished() and trial_id is not None:
                self._completed_trials.add(trial_id)  # its later results and completion are not told
            elif recorded.state == optuna.trial.TrialState.RUNNING and trial_id is None:
                self._ot_study.tell(recorded.number, state=optuna.trial.TrialState.FAIL)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:  # e.g. finished in the study before a restore
            return
        trial = self._ot_trials.get(trial_id)
        if not error and result and trial is not None and (result.get("diverged") or result.get("refused")):
            # Told as COMPLETE with the worst value, which TPE models; FAIL it would ignore.
            if result.get("diverged"):
                trial.set_user_attr("diverged_in_epoch", result.get("epoch"))
            else:
                trial.set_user_attr("refused", result["refused"])
            return super().on_trial_complete(trial_id, result, error)
        stopped_early = (not error and result and trial is not None
                         and result.get("training_iteration", self.max_t) < self.max_t)
        if not stopped_early:
            return super().on_trial_complete(trial_id, result, error)
        trial.report(result[self.metric], result["training_iteration"])
        self._ot_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def tell_what_tune_ended(study: optuna.Study, rows: list[TrialRow], max_t: int, worst: float) -> int:
    """Tell the study of the trials that Tune's results show ended but the study still has RUNNING, as the
    searcher would have: a trial whose last result came as the time budget ran out can end without Tune
    telling the searcher. Trials still under way (a search stopped by Ctrl-C) are left. Returns how many."""
    by_id = {row.trial_id: row for row in rows}
    told = 0
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        row = by_id.get(frozen.user_attrs.get(TUNE_TRIAL_ID))
        if row is None or row.status == "unfinished":
            continue
        trial = optuna.trial.Trial(study, frozen._trial_id)  # Optuna's handle on a trial it did not ask here
        values = [value for _, value in row.reports]
        if row.status == "refused":
            trial.set_user_attr("refused", row.reason)
            study.tell(trial, worst)
        elif row.status == "diverged":
            trial.set_user_attr("diverged_in_epoch", row.epochs)
            study.tell(trial, worst)
        elif row.status == "error" or not values:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            for epoch, value in enumerate(values, 1):
                if epoch not in frozen.intermediate_values:
                    trial.report(value, epoch)
            if row.epochs >= max_t:
                study.tell(trial, values[-1])
            else:  # stopped by ASHA or the budget
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        told += 1
    return told

