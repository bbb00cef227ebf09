"""The status table a search prints as it runs: Tune's own, less the line that misleads."""

from __future__ import annotations

import sys

from ray.tune import CLIReporter
from ray.tune.experiment import Trial

from search.experiment import Experiment

# Tune names its driver's staging folder under /tmp/ray here, which holds nothing a user wants; the
# search's RUN_DIR is named as it starts and ends, with the command that opens it in TensorBoard.
STAGING_LINE = "Result logdir: "


class SearchReporter(CLIReporter):
    """Tune's CLIReporter without its "Result logdir" line (saved with the search, for --resume)."""

    def report(self, trials: list[Trial], done: bool, *sys_info: str) -> None:
        table = self._progress_str(trials, done, *sys_info)
        self._print("\n".join(line for line in table.split("\n") if not line.startswith(STAGING_LINE)))


def status_reporter(experiment: Experiment) -> SearchReporter:
    """The reporter of ``experiment``'s search: epochs and its metric beside each trial's parameters."""
    # In a log file (nohup, CI) the status table comes once a minute, not every 5 s. Not
    # sort_by_metric: Ray's sort fails on trials a time budget stopped before their first
    # report; `alphabet trials` gives the sorted table. Columns as wide as the longest metric's name
    # (val_balanced_accuracy), which Ray's default of 20 broke over two lines.
    return SearchReporter(metric_columns=["epoch", experiment.search.metric],
                          max_report_frequency=10 if sys.stdout.isatty() else 60, max_column_length=24)
