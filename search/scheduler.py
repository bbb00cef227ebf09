"""ASHA whose rungs survive ``alphabet search --resume``, and hold only trials that trained.

Ray Tune (2.60) does not save a scheduler with the search's state: on resume it
unpickles the one the search started with, its rungs empty (ray-project/ray
issue 30838). Every score recorded before the interruption is then lost. Trials
that start after the resume are judged against those that reach a rung after it
alone, and a trial under way is judged again at the first rung it had passed
already, at a later epoch than the rung's: stopped there, it ends short of
``max_t`` at no rung at all. Each trial's result.json holds what it reported at
every epoch, so the rungs are filled again from it as Tune adds the saved
trials back.

A trial whose settings the library refused reports the worst value once, for
TPE, without having trained an epoch: the rungs leave it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from search.checkpoint_repair import reported_results

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from search.experiment import Experiment


class ResumableASHA(ASHAScheduler):
    # Counted, a refused trial (search/trainable.py) would lower the bar the trials that trained are held to.
    def on_trial_result(self, tune_controller: object, trial: Trial, result: dict) -> str:
        if result.get("refused"):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: object, trial: Trial, result: dict) -> None:
        if not result.get("refused"):
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_add(self, tune_controller: object, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        reached = int(trial.last_result.get(self._time_attr) or 0)  # as the saved state has it
        if not reached:  # a new trial, or one that reported nothing before the interruption
            return
        # Up to the epoch the saved state counts: the trial goes on from there, and reports any
        # later epoch again.
        reports = [r for r in reported_results(trial.storage.storage_filesystem, trial.storage.trial_fs_path)
                   if r.get(self._metric) is not None and not r.get("refused")
                   and 0 < int(r.get(self._time_attr) or 0) <= reached]
        for milestone, recorded in self._trial_info[trial.trial_id]._rungs:
            # ASHA records a trial's first report at or past a rung's epoch, and judges it there
            first = next((r for r in reports if r[self._time_attr] >= milestone), None)
            if first is not None:
                recorded.setdefault(trial.trial_id, self._metric_op * first[self._metric])


def build_scheduler(experiment: Experiment) -> TrialScheduler:
    if experiment.search.scheduler == "fifo":
        return FIFOScheduler()
    a = experiment.asha
    return ResumableASHA(time_attr="training_iteration", max_t=a.max_t, grace_period=a.grace_period,
                         reduction_factor=a.reduction_factor)
