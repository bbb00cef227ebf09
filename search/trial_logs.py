"""Tune's per-trial result logs (result.json, progress.csv), closed for every trial when the search ends.

Tune closes a trial's log files when the trial completes or fails. Trials that the time budget
or Ctrl-C stops do neither, so their files stayed open until the driver exited, and Python then
printed a ResourceWarning for each at the end of the search's output.
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback


class _ClosedAtEnd(LoggerCallback):
    def on_experiment_end(self, trials: list[Trial], **info: object) -> None:
        for trial in trials:
            self.log_trial_end(trial)  # a no-op for a trial whose files are closed already
        super().on_experiment_end(trials, **info)


class JsonTrialLog(_ClosedAtEnd, JsonLoggerCallback):
    pass


class CsvTrialLog(_ClosedAtEnd, CSVLoggerCallback):
    pass
