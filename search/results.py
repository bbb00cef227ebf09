"""What a search found: the trial table, best.yaml, and a summary as text and PNG."""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alphabet.config import dump_yaml, to_dict
from alphabet.environment import environment
from alphabet.errors import UserError
from alphabet.metrics import LEVEL
from alphabet.rundir import BEST_FILE
from search.experiment import Experiment, trial_config
from search.storage import RunLocation

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

SUMMARY_FILE = "summary.json"


@dataclass
class TrialRow:
    trial_id: str
    # completed | pruned | stopped | diverged | refused | error | unfinished (running, while its search runs)
    status: str
    params: dict
    score: float  # the metric's mean over the trial's last epochs (Experiment.rank_epochs): what ranks it
    peak: float  # its best single epoch, which overstates what a retrain reproduces
    peak_epoch: int
    epochs: int
    seconds: float
    reports: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (timestamp, metric) per epoch
    node: str = ""
    interval: tuple[float, float] | None = None  # bootstrap interval of ``score``, where the metric has one
    given: bool = False  # its settings came from search.first_trials, not from the sampler
    reason: str = ""  # why a refused or errored trial ended: the library's one line, or the exception's


def load_trials(location: RunLocation, experiment: Experiment) -> list[TrialRow]:
    """Every trial of the search, from Tune's saved experiment state and result files."""
    from ray.tune import ExperimentAnalysis

    metric, mode = experiment.search.metric, experiment.mode
    # A trial that has just started has no result file yet; it is listed as it stands, so
    # Ray's warning that it could not read its metrics is noise in a running search's table.
    ray_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = ray_log.level
    ray_log.setLevel(logging.ERROR)
    try:
        analysis = ExperimentAnalysis(location.uri, default_metric=metric, default_mode=mode)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise UserError(f"{location.uri}: no readable Tune experiment state ({type(e).__name__})") from None
    finally:
        ray_log.setLevel(level)
    frames = analysis.trial_dataframes
    milestones = asha_milestones(experiment)
    given = given_trial_ids(location, experiment)
    rows = []
    for trial in analysis.trials:
        frame = frames.get(trial.trial_id)
        reports = []
        if frame is not None and metric in frame:
            stamps = frame["timestamp"] if "timestamp" in frame else range(len(frame))  # Tune adds it
            reports = [(float(t), float(v)) for t, v in zip(stamps, frame[metric], strict=True)]
        elif trial.last_result.get(metric) is not None:
            reports = [(float(trial.last_result.get("timestamp", 0)), float(trial.last_result[metric]))]
        history = [value for _, value in reports]
        epochs = int(trial.last_result.get("training_iteration", len(history)) or 0)
        interval = None
        if history:
            pick = int(np.argmax(history) if mode == "max" else np.argmin(history))
            peak, peak_epoch = float(history[pick]), pick + 1
            window = slice(-experiment.rank_epochs, None)
            score = float(np.mean(history[window]))
            bounds = (f"{metric}_low", f"{metric}_high")  # what the trainable reports for balanced accuracy
            # The mean of the window's intervals: their width is mostly which writers were drawn,
            # which every epoch shares, so it stands for the interval of the mean.
            if frame is not None and metric in frame and all(b in frame for b in bounds):
                interval = (float(frame[bounds[0]].iloc[window].mean()), float(frame[bounds[1]].iloc[window].mean()))
            elif all(trial.last_result.get(b) is not None for b in bounds):
                interval = (float(trial.last_result[bounds[0]]), float(trial.last_result[bounds[1]]))
            if interval and any(math.isnan(v) for v in interval):  # a diverged epoch reports none
                interval = None
        else:
            score = peak = math.nan
            peak_epoch = 0
        reason = ""
        if trial.status == "ERROR":
            status = "error"
            reason = error_line(location, trial)
        elif trial.last_result.get("refused"):
            status, reason = "refused", str(trial.last_result["refused"])
            # Its one report is the worst value, told to TPE; it is no score, and it trained no further.
            score = peak = math.nan
            reports, interval, peak_epoch = reports[:-1], None, 0
            epochs = int(trial.last_result.get("epoch", 0) or 0)
        elif trial.last_result.get("diverged"):
            status = "diverged"
            score, interval = (history[-1] if history else math.nan), None  # its last, worst report: NaN weights
        elif trial.status == "TERMINATED":
            # Short of max_t: ASHA stops a trial only at a rung; anywhere else the time
            # budget (or a user) stopped it.
            status = ("completed" if epochs >= experiment.asha.max_t
                      else "pruned" if epochs in milestones else "stopped")
        else:
            status = "unfinished"
        rows.append(TrialRow(trial.trial_id, status, dict(trial.config), score, peak, peak_epoch, epochs,
                             float(trial.last_result.get("time_total_s", 0.0) or 0.0), reports,
                             str(trial.last_result.get("node_id", "")), interval, trial.trial_id in given, reason))
    sign = -1 if mode == "max" else 1
    return sorted(rows, key=lambda r: (math.isnan(r.score), sign * (0 if math.isnan(r.score) else r.score)))


# "alphabet.errors.UserError: ..." or "ray.exceptions.ActorDiedError: ...", at the start of a traceback's line
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\w*)"
                            r"(?:\(.*?\))?: ?(.*)$")


def error_line(location: RunLocation, trial: Trial) -> str:
    """The exception that ended an errored trial, in one line, from the error.txt Tune wrote in its folder."""
    try:
        text = location.read_text(f"{trial.storage.trial_dir_name}/error.txt")
    except UserError:  # storage out of reach: the table still lists the trial as errored
        text = None
    if not text:
        return "no error.txt in its folder"
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        found = EXCEPTION_LINE.match(line)
        if found:
            kind, message = found.groups()
            return message if kind == "UserError" else f"{kind}: {message}"
    return lines[-1].strip()[:300]


def given_trial_ids(location: RunLocation, experiment: Experiment) -> set[str]:
    """The Tune trials whose settings search.first_trials gave: Optuna's enqueued trials, which
    carry their Tune trial's id. Empty for a search before the ids were kept, or without a study."""
    if not experiment.first_trials:
        return set()
    import optuna

    from search.space import TUNE_TRIAL_ID

    try:
        study = optuna.load_study(study_name=experiment.storage.name, storage=location.optuna_storage())
    except Exception:  # noqa: BLE001 - the table is shown without the marks rather than not at all
        return set()
    return {t.user_attrs[TUNE_TRIAL_ID] for t in study.get_trials(deepcopy=False)
            if "fixed_params" in t.system_attrs and TUNE_TRIAL_ID in t.user_attrs}


def asha_milestones(experiment: Experiment) -> set[int]:
    """The epochs at which ASHA may stop a trial (its rungs); none for FIFO."""
    return set(experiment.asha.rungs()) if experiment.search.scheduler == "asha" else set()


def trials_table(rows: list[TrialRow], metric: str, rank_epochs: int) -> str:
    keys = sorted({k for r in rows for k in r.params})
    short = [k.split(".")[-1] for k in keys]
    header = ["trial", "status", f"{metric} (last {_epochs(rank_epochs)})", f"{LEVEL:.0%}-interval", "peak", "at",
              "epochs"] + short
    lines = []
    for r in rows:
        values = [_fmt(r.params.get(k, "-")) for k in keys]
        interval = f"{r.interval[0]:.4f}-{r.interval[1]:.4f}" if r.interval else "-"
        # The metric to fixed places, as its interval: 0.943 beside 0.9434 would read as less precise.
        lines.append([r.trial_id + ("*" if r.given else ""), r.status, _metric(r.score), interval, _metric(r.peak),
                      "-" if math.isnan(r.peak) else str(r.peak_epoch), str(r.epochs)] + values)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=False)) for line in lines]
    if any(r.given for r in rows):
        out.append("* its settings were given by search.first_trials")
    out += ended_early_lines(ended_early(rows))
    return "\n".join(out)


def ended_early(rows: list[TrialRow]) -> list[dict]:
    """Why refused and errored trials ended, each reason once with the trials it ended: a setting that
    is too big ends every trial that samples it with the same line."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r.status in ("refused", "error"):
            groups.setdefault((r.status, r.reason), []).append(r.trial_id)
    return [{"status": status, "reason": reason, "trials": ids} for (status, reason), ids in groups.items()]


def ended_early_lines(groups: list[dict]) -> list[str]:
    lines = []
    for g in groups:
        ids = g["trials"]
        who = f"trial {ids[0]}" if len(ids) == 1 else f"{len(ids)} trials ({', '.join(ids)})"
        lines.append(f"{who} {'refused' if g['status'] == 'refused' else 'failed'}: {g['reason']}")
    return lines


def trials_json(rows: list[TrialRow], metric: str, rank_epochs: int) -> str:
    """The trial table as JSON, for scripts: full precision, params under their dotted keys."""
    return json.dumps([{"trial": r.trial_id, "status": r.status, "metric": metric, "rank_epochs": rank_epochs,
                        "score": None if math.isnan(r.score) else r.score,
                        "peak": None if math.isnan(r.peak) else r.peak, "peak_epoch": r.peak_epoch,
                        "interval": list(r.interval) if r.interval else None, "epochs": r.epochs,
                        "seconds": round(r.seconds, 1), "given": r.given, "reason": r.reason or None,
                        "params": r.params} for r in rows],
                      indent=2)


def best_score_text(best: dict) -> str:
    """The best trial's score and what it averages, from summary.json's "best"."""
    if "rank_epochs" not in best:  # searches before rank_epochs ranked trials by their peak epoch
        return f"{best['value']:.4f} at its peak, epoch {best['epoch']}"
    return f"{best['value']:.4f} over its last {_epochs(best['rank_epochs'])}"


def _epochs(n: int) -> str:
    return "epoch" if n == 1 else f"{n} epochs"


def _metric(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"  # no score: a trial that ended before its first epoch


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def rung_stops(rows: list[TrialRow]) -> dict[int, int]:
    """How many trials stopped after each number of epochs (ASHA's rungs)."""
    stops: dict[int, int] = {}
    for r in rows:
        if r.status == "pruned":
            stops[r.epochs] = stops.get(r.epochs, 0) + 1
    return dict(sorted(stops.items()))


def disk_usage(path: Path) -> int:
    try:
        out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])
    except (OSError, subprocess.CalledProcessError, ValueError):
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def importances(location: RunLocation, experiment: Experiment) -> tuple[dict[str, float], str]:
    """Optuna's parameter importances over the completed trials, and a note: why there are
    none, or Optuna's caveat about them (a conditional parameter seen in too few trials)."""
    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            study = optuna.load_study(study_name=experiment.storage.name, storage=location.optuna_storage())
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if len(complete) < 2:  # Optuna would say they "will be equal": no news, and none with no trial
                return {}, f"none yet: Optuna weighs them over two or more complete trials ({len(complete)} so far)"
            found = optuna.importance.get_param_importances(study)
        except Exception as e:  # noqa: BLE001 - too few or too uniform trials is normal in small searches
            return {}, f"not available ({type(e).__name__}: {str(e).splitlines()[0][:100]})"
    if len(found) > 1 and max(found.values()) - min(found.values()) < 1e-9:  # Optuna could not tell them apart
        return {}, (f"none: over these {len(complete)} complete trials (too few, or all scoring alike) Optuna "
                    "weighs every parameter the same, which says nothing")
    # Said once, in the summary, rather than as a Python warning with a file and line number.
    caveats = sorted({str(w.message).splitlines()[0] for w in caught if issubclass(w.category, UserWarning)})
    return found, " ".join(caveats)


def trial_entry(row: TrialRow, experiment: Experiment) -> dict:
    """A trial's score as summary.json keeps the best's."""
    return {"trial_id": row.trial_id, "value": row.score, "rank_epochs": experiment.rank_epochs,
            "epochs": row.epochs, "peak": row.peak, "peak_epoch": row.peak_epoch, "params": row.params,
            "interval": list(row.interval) if row.interval else None}


def trial_settings_text(row: TrialRow, location: RunLocation, experiment: Experiment, best: bool) -> str:
    """A trial's training config as YAML, headed by its score and the command that retrains it: best.yaml
    for the ``best`` trial, else what ``alphabet retrain RUN_DIR --trial ID`` trains."""
    scored = (f"{best_score_text(trial_entry(row, experiment))} of {row.epochs} (peak {row.peak:.4f} at epoch "
              f"{row.peak_epoch})" if not math.isnan(row.score) else f"not reported ({row.status})")
    command = f"alphabet retrain {shlex.quote(location.uri)}" + ("" if best else f" --trial {row.trial_id}")
    header = (f"# {'Best trial' if best else 'Trial'} {row.trial_id} of the search in {location.uri}:\n"
              f"# {experiment.search.metric} {scored}.\n"
              f"# Retrain it with: {command}\n")
    return header + dump_yaml(to_dict(trial_config(experiment, row.params)))


def write_results(location: RunLocation, experiment: Experiment, log: Callable[[str], None] = print,
                  rows: list[TrialRow] | None = None) -> dict:
    """best.yaml, trials.csv, summary.json/.txt/.png in RUN_DIR; returns the summary. ``rows``: the
    trials if the caller has loaded them already."""
    rows = rows if rows is not None else load_trials(location, experiment)
    scored = [r for r in rows if not math.isnan(r.score)]
    if not scored:
        budget = experiment.search.time_budget_s
        # Said as a possibility: trials that all failed end a search with a budget the same way.
        hint = (f" (search.time_budget_s: {budget:g} s; if it ran out before any trial's first epoch, expected a "
                "budget longer than a trial's start and first epoch)" if budget else "")
        groups = sorted(ended_early(rows), key=lambda g: -len(g["trials"]))
        if groups:  # the commonest reason; `alphabet trials` lists them all
            ended = sum(len(g["trials"]) for g in groups)
            hint = f" ({ended} of {len(rows)} trials ended early; {ended_early_lines(groups)[0]})"
        raise UserError(f"{location.uri}: no trial reported {experiment.search.metric}; nothing to export{hint}")
    best = scored[0]
    metric = experiment.search.metric
    best_entry = trial_entry(best, experiment)
    within = [r.trial_id for r in scored[1:] if best.interval and best.interval[0] <= r.score <= best.interval[1]]
    location.write_text(BEST_FILE, trial_settings_text(best, location, experiment, best=True))
    imp, why = importances(location, experiment)
    counts = {s: sum(r.status == s for r in rows)
              for s in ("completed", "pruned", "stopped", "diverged", "refused", "error", "unfinished")}
    summary = {
        "run_dir": location.uri,
        "metric": metric,
        "mode": experiment.mode,
        "best": best_entry,
        # Trials that score inside the best's interval: the validation letters alone cannot rank them.
        "within_interval": len(within) if best.interval else None,
        "within_interval_trials": within,
        "trials": counts,
        # How the settings search.first_trials gave fared against the sampler's.
        "given": [{"trial_id": r.trial_id, "value": None if math.isnan(r.score) else r.score,
                   "rank": next((i for i, s in enumerate(scored, 1) if s is r), None), "of": len(scored)}
                  for r in rows if r.given],
        "ended_early": ended_early(rows),
        "rung_stops": {str(k): v for k, v in rung_stops(rows).items()},
        "trial_epochs": sum(r.epochs for r in rows),
        "trial_seconds": round(sum(r.seconds for r in rows), 1),
        "importances": imp,
        "importances_note": why,
        "disk_bytes": disk_usage(location.path) if not location.remote else None,
        "environment": environment(packages=("ray", "optuna")),  # the driver's: what wrote this summary
    }
    location.write_text(SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    location.write_text("trials.txt", trials_table(rows, metric, experiment.rank_epochs) + "\n")
    text = summary_text(summary)
    location.write_text("summary.txt", text + "\n")
    summary_png(rows, summary, location.path / "summary.png")
    log(text)
    return summary


def summary_text(summary: dict) -> str:
    b = summary["best"]
    t = summary["trials"]
    lines = [
        f"best {summary['metric']}: {best_score_text(b)} (trial {b['trial_id']}; peak {b['peak']:.4f} at epoch "
        f"{b['peak_epoch']} of {b['epochs']})",
        "  " + ", ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items()),
    ]
    if b.get("interval"):
        others, ids = summary["within_interval"], summary.get("within_interval_trials") or []
        named = f" ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})" if ids else ""
        verdict = ("no other trial scores within it" if others == 0 else
                   f"{others} other {'trial scores' if others == 1 else 'trials score'} within it{named}, and "
                   f"these letters cannot rank {'it' if others == 1 else 'them'} against this one")
        lines.append(f"  {LEVEL:.0%} interval from the validation letters alone: {b['interval'][0]:.4f} to "
                     f"{b['interval'][1]:.4f}; {verdict}")
    given = summary.get("given") or []
    if given:
        lines.append("given by search.first_trials: " + ", ".join(
            f"trial {g['trial_id']} " + ("no score" if g["value"] is None else
                                         f"{g['value']:.4f} (rank {g['rank']} of {g['of']})")
            for g in given))
    lines += [
        f"trials: {t['completed']} completed, {t['pruned']} pruned by ASHA, "
        f"{t.get('stopped', 0)} stopped by the time budget, {t.get('diverged', 0)} diverged, "
        f"{t.get('refused', 0)} refused, {t['error']} errors, {t['unfinished']} unfinished",
        *ended_early_lines(summary.get("ended_early", [])),
        "ASHA stops by epochs run: " + (", ".join(f"{k}: {v}" for k, v in summary["rung_stops"].items()) or "none"),
        f"compute: {summary['trial_epochs']} trial-epochs, {summary['trial_seconds']:.0f} trial-seconds",
    ]
    if summary["disk_bytes"] is not None:
        lines.append(f"disk: {summary['disk_bytes'] / 2**20:.1f} MiB in {summary['run_dir']}")
    if summary["importances"]:
        lines.append("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items()))
        if summary["importances_note"]:
            lines.append(f"  {summary['importances_note']}")
    else:
        lines.append(f"importances: {summary['importances_note']}")
    return "\n".join(lines)


def best_so_far(rows: list[TrialRow], mode: str) -> list[tuple[int, float]]:
    """(trial-epochs spent, best value yet) after each epoch's report of every trial, in the order
    they were reported: what the search had found for the compute it had spent."""
    reports = sorted((report for r in rows for report in r.reports), key=lambda report: report[0])
    better = max if mode == "max" else min
    curve, best = [], -math.inf if mode == "max" else math.inf
    for spent, (_, value) in enumerate(reports, 1):
        best = better(best, value)
        curve.append((spent, best))
    return curve


def summary_png(rows: list[TrialRow], summary: dict, path: Path) -> None:
    from alphabet.figures import plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    curve = best_so_far(rows, summary["mode"])
    axes[0].plot([spent for spent, _ in curve], [best for _, best in curve])
    axes[0].set_xlabel("trial-epochs spent")
    axes[0].set_ylabel(f"best {summary['metric']}")
    imp = summary["importances"]
    axes[1].barh(list(imp)[::-1], list(imp.values())[::-1])
    axes[1].set_title("Optuna parameter importances")
    stops = summary["rung_stops"]
    axes[2].bar([str(k) for k in stops], list(stops.values()))
    axes[2].set_title("trials ASHA stopped")
    axes[2].set_xlabel("epochs run before ASHA stopped the trial")
    axes[2].set_ylabel("trials")
    # An empty panel drew axes from -0.04 to 0.04 around nothing: it says why it is empty instead.
    for ax, empty, why in ((axes[1], not imp, "none (summary.txt says why)"), (axes[2], not stops, "none")):
        if empty:
            ax.set(xticks=[], yticks=[], xlabel="", ylabel="")
            ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"search {Path(summary['run_dir']).name}: {summary['trial_epochs']} trial-epochs")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_summary(run_dir: Path) -> dict | None:
    file = run_dir / SUMMARY_FILE
    return json.loads(file.read_text()) if file.is_file() else None


