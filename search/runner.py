"""Launch or resume a search: Ray Tune + OptunaSearch + ASHA over the alphabet CNN.

Ray runs embedded by default, even where a ``ray start`` cluster runs on the
same machine, or joins a cluster given ``--address`` (or ``RAY_ADDRESS``) once
``search.cluster`` has found that it can run this search.
The Tune experiment lives in ``RUN_DIR`` = ``storage.path/storage.name``, next
to the Optuna study (SQLite) and, at the end, ``best.yaml``, ``trials.csv`` and
the search summary.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from alphabet.config import dump_yaml, load_yaml
from alphabet.data import load_splits
from alphabet.errors import DiskFull, RunInterrupted, UserError, first_few
from alphabet.finetune import initial_weights
from alphabet.rundir import LOCK_FILE, disk_is_full, hold_run_dir, mebibytes
from search.cluster import check_node_installs, cluster_address
from search.experiment import Experiment, check_initial_weights, experiment_from_dict
from search.storage import (
    STUDY_FILE,
    TUNER_STATE,
    RunLocation,
    largest_checkpoint_in,
    locate_new_run,
    require_room,
    room_short,
)
from search.worker_setup import SETUP_HOOK

if TYPE_CHECKING:  # Ray is imported where used, so that `alphabet --help` starts fast
    from ray.tune import ResultGrid
    from ray.tune.experiment import Trial
    from ray.tune.search import Searcher

    from search.disk_guard import DiskGuard
    from search.results import TrialRow

EXPERIMENT_FILE = "experiment.yaml"
# A GPU share per trial when the experiment says "auto". Measured (docs/BENCHMARKS.md, "Trials sharing
# one GPU"): trials per hour went 173, 326, 581, 880 for 1, 2, 4, 8 trials per GPU as processes on an
# H100, and 269, 552, 1008, 1289 through this search on an H200, because one small CNN's step keeps
# the GPU busy only 15% of the time (the profile there).
AUTO_TRIALS_PER_GPU = 8


def per_trial_resources(experiment: Experiment, nodes: list[dict[str, float]]) -> dict[str, float]:
    """CPUs and GPUs each trial asks for, given what each live node of the cluster offers; "auto" is
    derived from them. A trial's share must fit on one node: Ray never splits it, and a search whose
    trials fit no node would wait for one for ever."""
    res = experiment.resources
    gpus_total = sum(node.get("GPU", 0) for node in nodes)
    gpu = res.gpus_per_trial if res.gpus_per_trial is not None else (1 / AUTO_TRIALS_PER_GPU if gpus_total else 0)
    if res.cpus_per_trial is not None:
        cpu = res.cpus_per_trial
    elif gpu:  # the GPU does the work; a CPU feeds it
        cpu = 1
    else:  # fewer trials at once than CPUs (search.max_concurrent, num_samples): each gets more threads
        cpu = cpus_to_share([node.get("CPU", 0) for node in nodes], experiment.search.trials_at_once)
    for key, asked, kind in (("cpus_per_trial", cpu, "CPU"), ("gpus_per_trial", gpu, "GPU")):
        most = max((node.get(kind, 0) for node in nodes), default=0)
        if asked > most:
            raise UserError(f"{experiment.origin('resources.' + key)}: resources.{key}: expected at most "
                            f"{most:g} ({cluster_has(nodes)}), got {asked:g}")
    if not any(node.get("CPU", 0) >= cpu and node.get("GPU", 0) >= gpu for node in nodes):
        raise UserError(f"{experiment.origin('resources.cpus_per_trial')}: resources: expected a share that one "
                        f"node holds ({cluster_has(nodes)}), got {cpu:g} CPU and {gpu:g} GPU per trial")
    return {"cpu": cpu, "gpu": gpu}


def cpus_to_share(node_cpus: list[float], trials: int) -> int:
    """The most whole CPUs each of ``trials`` trials side by side can have, each trial's on one node."""
    for each in range(int(max(node_cpus, default=1)), 1, -1):
        if sum(int(cpus // each) for cpus in node_cpus) >= trials:
            return each
    return 1


def cluster_has(nodes: list[dict[str, float]]) -> str:
    cpus, gpus = (sum(node.get(kind, 0) for node in nodes) for kind in ("CPU", "GPU"))
    if len(nodes) == 1:
        return f"the cluster has {cpus:g} CPU and {gpus:g} GPU"
    shares = sorted(((node.get("CPU", 0), node.get("GPU", 0)) for node in nodes), reverse=True)
    each = first_few([f"{cpu:g} CPU {gpu:g} GPU" for cpu, gpu in shares], 3)
    return f"a trial runs on one node; the cluster's {len(nodes)} nodes have {each}"


def live_nodes() -> list[dict[str, float]]:
    """What each live node of the Ray this process joined offers (its "CPU", "GPU", ...)."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


# Tune reads these from its driver's environment.
TUNE_SETTINGS = {
    # Our own TensorBoard files per trial replace Ray's, so one HParams view is not doubled.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Save the experiment state often: a killed driver then loses little on --resume.
    "TUNE_GLOBAL_CHECKPOINT_S": "5",
    # Tune also saves it whenever a trial has written keep_checkpoints checkpoints, and warns when that
    # happens often. With a checkpoint per epoch of a few seconds it does, by design: no warning.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}


def start_ray(address: str | None, where: str = "--address") -> dict:
    """Join the cluster at ``address`` (see ``cluster_address``), else start one here. Returns its resources."""
    import ray

    if ray.is_initialized():
        return ray.cluster_resources()
    # A Ray of our own keeps Ray's default, token authentication, without the warning that announces
    # it at the top of every search; a warning about joining a cluster without it still shows.
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    auth_log.addFilter(_without_token_default_notice)
    on_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        # The dashboard stays off: nothing should listen beyond loopback by default.
        # Through Ray Client (ray://) Tune's driver runs on the cluster, which has not our environment.
        tune_settings = {key: os.environ.get(key, value) for key, value in TUNE_SETTINGS.items()}
        ray.init(address=address, include_dashboard=False, configure_logging=True, logging_level="WARNING",
                 log_to_driver=True, runtime_env={"env_vars": tune_settings, "worker_process_setup_hook": SETUP_HOOK})
    except ConnectionError as e:
        raise UserError(f"{where}: could not connect to a Ray cluster at {address!r} ({e})") from None
    finally:
        auth_log.removeFilter(_without_token_default_notice)
        # ray.init sets its own SIGTERM handling, which ends the driver in a stack dump and an abort;
        # the caller's (the CLI's: stop as Ctrl-C does, keeping the search resumable) stands.
        if on_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)
    return ray.cluster_resources()


def _without_token_default_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def _without_python_resume_hint(record: logging.LogRecord) -> bool:
    return "Tuner.restore(" not in record.getMessage()


def _without_new_study_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("A new study created")


def _without_missing_metrics_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed to fetch metrics for")


def save_experiment(experiment: Experiment, location: RunLocation) -> None:
    location.write_text(EXPERIMENT_FILE, dump_yaml(experiment.to_dict()))


def searches_within(folder: Path) -> str:
    """Where ``folder`` is a storage.path rather than a RUN_DIR, the searches in it, as a hint to end an
    error with (" (a folder of searches: own, quick; name one, e.g. .../own)"); where it lies in a
    search's RUN_DIR, that search; else ""."""
    with contextlib.suppress(OSError):
        names = sorted(child.name for child in folder.iterdir() if (child / EXPERIMENT_FILE).is_file())
        if names:
            return f" (a folder of searches: {first_few(names)}; name one, e.g. {folder / names[0]})"
    if (folder.parent / EXPERIMENT_FILE).is_file():  # a trial's folder, the retrain's, best.yaml
        return f" (it lies in the search {folder.parent}; name that)"
    return ""


def load_saved_experiment(location: RunLocation) -> Experiment:
    text = location.read_text(EXPERIMENT_FILE)
    if text is None and not location.remote and not Path(location.uri).exists():
        raise UserError(f"{location.uri}: no such directory; expected a search's RUN_DIR")
    if text is None:
        hint = "" if location.remote else searches_within(Path(location.uri))
        if not hint and not location.remote and Path(location.uri).is_file():  # the experiment file, most likely
            raise UserError(f"{location.uri}: a file; expected the RUN_DIR a search wrote (storage.path/"
                            "storage.name: runs/search/NAME by default, as `alphabet search` prints it)")
        raise UserError(f"{location.uri}: not a search run directory; expected {EXPERIMENT_FILE} in it{hint}")
    experiment = experiment_from_dict(load_yaml(text), location.child(EXPERIMENT_FILE).uri)
    return experiment


def move_here(location: RunLocation, log: Callable[[str], None]) -> None:
    """A local search moved or copied since it ran: its saved state made to name the folder it is in now."""
    from search.relocation import folder_it_ran_in, move_state_here

    ran_in = folder_it_ran_in(location.path)
    if ran_in is not None and ran_in != location.path:
        move_state_here(location.path, ran_in)
        log(f"{location.uri}: moved or copied from {ran_in} since it ran; it goes on here, with the Optuna "
            "study here")


def has_tune_state(location: RunLocation) -> bool:
    """Whether Tune can continue the search: locally, its experiment state, saved a moment after the
    tuner.pkl that Tune's own check looks for (a kill in between left a ValueError's traceback)."""
    from ray import tune

    if location.remote:
        return tune.Tuner.can_restore(location.uri)
    return any(location.path.glob("experiment_state-*.json"))


@contextlib.contextmanager
def removed_unless_started(location: RunLocation) -> Iterator[None]:
    """A new search stopped (Ctrl-C, an error) before Tune first saved its state leaves nothing to
    continue: the directory it made is removed again, and its name is free for the same command."""
    try:
        yield
    except BaseException as e:
        if not location.remote and not has_tune_state(location):
            shutil.rmtree(location.path, ignore_errors=True)
            if isinstance(e, DiskFull):  # nothing left to continue once there is room
                e.run_dir = None
        raise


# What a search has written before Tune first saves its state, a second or so after it starts: its
# experiment and lock, the study (with SQLite's journal where a kill came as it wrote), Tune's tuner.pkl
# and the marker Tune writes to check that it can write there.
STUDY_JOURNALS = tuple(STUDY_FILE + suffix for suffix in ("-journal", "-wal", "-shm"))
UNSTARTED_SEARCH_FILES = {EXPERIMENT_FILE, LOCK_FILE, STUDY_FILE, *STUDY_JOURNALS, TUNER_STATE,
                          ".validate_storage_marker"}


def is_unstarted_search(location: RunLocation) -> bool:
    """A local search killed (kill -9, a lost machine) after it saved its experiment and before Tune first
    saved its state: nothing in it but what it wrote first. A finished search that lost Tune's state is not."""
    return not location.remote and {entry.name for entry in location.path.iterdir()} <= UNSTARTED_SEARCH_FILES


def clear_unstarted_search(location: RunLocation, log: Callable[[str], None]) -> None:
    """An unstarted search (``is_unstarted_search``) made ready to start again in its directory, from its
    experiment.yaml: its study, which holds at most the first trials asked for, begins afresh."""
    for name in (STUDY_FILE, *STUDY_JOURNALS, TUNER_STATE):
        (location.path / name).unlink(missing_ok=True)
    log(f"{location.uri}: stopped before its first trial began; it starts again from its {EXPERIMENT_FILE}")


def tell_study_what_tune_ended(location: RunLocation, experiment: Experiment, rows: list[TrialRow]) -> None:
    """A finished search's study holds no trial RUNNING that Tune's results show ended (search.space)."""
    import optuna

    from search.space import tell_what_tune_ended

    study = optuna.load_study(study_name=experiment.storage.name, storage=location.optuna_storage())
    tell_what_tune_ended(study, rows, experiment.asha.max_t, experiment.worst)


def build_searcher(experiment: Experiment, location: RunLocation) -> Searcher:
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from search.space import DefineSpace, PruningOptunaSearch

    s = experiment.search
    sampler = (optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=experiment.startup_trials)
               if s.searcher == "optuna"
               else optuna.samplers.RandomSampler(seed=s.seed))
    # Optuna logs the study's creation in a format of its own, as the first line on stderr; the search's
    # own first lines say where it is.
    study_log = logging.getLogger("optuna.storages._rdb.storage")
    study_log.addFilter(_without_new_study_notice)
    try:
        searcher = PruningOptunaSearch(
            space=DefineSpace(experiment.space), metric=s.metric, mode=experiment.mode, sampler=sampler,
            study_name=experiment.storage.name, storage=location.optuna_storage(), max_t=experiment.asha.max_t,
            points_to_evaluate=experiment.first_trials or None)  # enqueued in the study once, when it is created
    finally:
        study_log.removeFilter(_without_new_study_notice)
    return ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent) if s.max_concurrent else searcher


def trial_dirname(trial: Trial) -> str:
    """``trial_003_a131267b``: short and in launch order, as TensorBoard lists runs
    (Ray's default folder name repeats every parameter and the date)."""
    number = trial.experiment_tag.split("_", 1)[0]
    return f"trial_{number.zfill(3)}_{trial.trial_id}"


def say_interrupted(location: RunLocation, experiment: Experiment, rows: list[TrialRow], elapsed: float,
                    log: Callable[[str], None], how: str = "interrupted") -> None:
    """What a search stopped by Ctrl-C (or ``how`` otherwise) has done so far. The command that continues
    it comes on stderr, with the error or ``RunInterrupted`` raised next."""
    from search.results import write_results

    unfinished = sum(row.status == "unfinished" for row in rows)
    log(f"search {how} after {elapsed:.0f}s: {len(rows)} trials, {unfinished} unfinished")
    # Judged by the saved results that the table is made of: a trial's checkpoint can reach storage
    # before the driver has written the result it came with, and Ctrl-C may fall in between.
    if any(not math.isnan(r.score) for r in rows):
        log("the trials so far:")
        write_results(location, experiment, log, rows)


def interrupted(location: RunLocation, experiment: Experiment, rows: list[TrialRow], elapsed: float,
                log: Callable[[str], None]) -> RunInterrupted:
    """What a search stopped by Ctrl-C or SIGTERM has done, said; and the exception that ends it, for the
    CLI to name the command that continues it on stderr, which a `| tee` the same Ctrl-C ended cannot lose."""
    say_interrupted(location, experiment, rows, elapsed, log)
    return RunInterrupted(location.uri)


def _import_what_the_results_need() -> None:
    """Imported while the trials run, when the driver mostly waits on Ray, rather than after them: the
    imports of Optuna's importances (scikit-learn) and the summary's figure held up every search's end
    by 2 to 3 s on 2 cores."""
    with contextlib.suppress(Exception):  # the results import them again, and say so if they fail
        import optuna.importance  # noqa: F401

        import alphabet.figures  # noqa: F401


@contextlib.contextmanager
def signal_handlers_kept() -> Iterator[None]:
    """The process's SIGINT and SIGUSR1 handlers as they were, once the block ends. Tune's fit() sets its
    own, which stop a search, and leaves them set (ray-project/ray#37737): in the same process after the
    search (a script's retrain, a notebook), Ctrl-C, and SIGTERM, which alphabet hands to Ctrl-C's handler,
    only flagged a search that had ended, and the retrain went on."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, getattr(signal, "SIGUSR1", None)) if sig}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:  # None: set outside Python, which cannot set it back
                signal.signal(sig, handler)


@contextlib.contextmanager
def tune_settings_set() -> Iterator[None]:
    """TUNE_SETTINGS in this process's environment, where Tune reads them, while the block runs; a user's
    own setting of one wins. Taken out again after: a caller's own Tune run later in the same process (a
    notebook's) keeps Tune's defaults, its loggers among them."""
    added = {key: value for key, value in TUNE_SETTINGS.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def run_search(experiment: Experiment | None, address: str | None = None, resume: str | None = None,
               log: Callable[[str], None] = print) -> RunLocation:
    """Run (or resume) a search to its end; returns where it lives."""
    with contextlib.ExitStack() as held:  # the run directory, held from when it is known to the end
        held.enter_context(tune_settings_set())
        return _run_search(experiment, address, resume, log, held)


def _hold(held: contextlib.ExitStack, location: RunLocation) -> None:
    """Hold the search's directory (a remote search's local folder): two drivers of one search would
    each restore and prune the other's trials."""
    location.path.mkdir(parents=True, exist_ok=True)
    held.enter_context(hold_run_dir(location.path, f"alphabet search --resume {shlex.quote(location.uri)}"))


def _run_search(experiment: Experiment | None, address: str | None, resume: str | None,
                log: Callable[[str], None], held: contextlib.ExitStack) -> RunLocation:
    address, where = cluster_address(address)  # before anything is loaded or written, Tune included (1.4 s)
    from ray import tune

    from search.checkpoint_repair import RepairStaleCheckpoints
    from search.disk_guard import DiskGuard, check_tune_state, filled_by_another
    from search.reporter import status_reporter
    from search.scheduler import build_scheduler
    from search.spare_cpus import THREADS_FILE, SpareCpus
    from search.trainable import train_trial
    from search.trial_logs import CsvTrialLog, JsonTrialLog

    if resume:
        location = RunLocation.parse(resume)
        experiment = load_saved_experiment(location)
        if location.remote and not (location.path / STUDY_FILE).is_file():  # else TPE would start afresh
            raise UserError(f"{location.uri}: its Optuna study is not on this machine (expected "
                            f"{location.path / STUDY_FILE}); resume the search where it was started, from "
                            "the same folder")
        _hold(held, location)
        if not location.remote:  # an object store neither fills nor keeps half an upload
            check_tune_state(location.path)
            require_room(location.path, location.uri, "to continue the search")
            move_here(location, log)
            if is_unstarted_search(location):
                clear_unstarted_search(location, log)
                resume = None  # a new search, in the directory it was given
        if resume and not has_tune_state(location):  # before the data is read and Ray started
            raise UserError(f"{location.uri}: no Tune experiment state to resume from")
    else:
        location = None
        RunLocation.parse(experiment.storage.path).check_reachable(experiment.origin("storage.path"))
    started = time.time()
    try:  # read here, once, so that the nodes of a cluster need no copy of the file
        initial = initial_weights(experiment.config)
    except UserError as e:
        raise UserError(f"{experiment.origin('config.train.init_from')}: config.{e}") from None
    if initial is not None:
        check_initial_weights(experiment, initial)
    try:
        splits = load_splits(experiment.config.data)  # once, in the driver; trials get it from the object store
    except UserError as e:  # the library names a training config's keys; an experiment has them under config
        if not e.args[0].startswith("data."):
            raise
        raise UserError(f"{experiment.origin('config.' + e.args[0].partition(':')[0])}: config.{e.args[0]}") from None
    if splits.val is None:
        raise UserError(f"{experiment.origin('config.data.val_fraction')}: config.data.val_fraction: expected > 0; "
                        "a search chooses by validation, never by the test split")
    import ray

    ours = not ray.is_initialized()  # a Ray the caller started stays up for the caller
    cluster = start_ray(address, where)
    if ours:  # ended however this ends: a refusal below, called in process (tests, notebooks), left it up
        held.callback(ray.shutdown)
    res = per_trial_resources(experiment, live_nodes())
    if ours and address != "local":  # a Ray of our own runs this machine's code alone
        check_node_installs(where)
    if location is None:  # only now, so that a search refused above leaves no run directory behind
        try:
            location = locate_new_run(experiment.storage.path, experiment.storage.name, log)
        except UserError as e:  # the checks before cannot see a disk that is full, say
            raise UserError(f"{experiment.source}: {e}") from None
        _hold(held, location)
        held.enter_context(removed_unless_started(location))
        save_experiment(experiment, location)  # at once: what a kill leaves can start again (--resume)
    # Spare cores are handed on only where the search's own Ray holds this machine alone and its trials
    # take CPUs alone: a shared cluster's other jobs count on Ray's reservations (search/spare_cpus.py).
    spare = (ours and address == "local" and not location.remote and not res["gpu"]
             and experiment.resources.cpus_per_trial is None)
    threads_file = str(location.path / THREADS_FILE) if spare else None
    trainable = tune.with_resources(tune.with_parameters(train_trial, experiment=experiment, splits=splits,
                                                           initial=initial, threads_file=threads_file), res)
    log(f"search {location.uri}: {len(splits.train)} train / {len(splits.val)} val images, "
        f"{res['cpu']:g} CPU + {res['gpu']:g} GPU per trial, cluster {cluster.get('CPU', 0):g} CPU "
        f"{cluster.get('GPU', 0):g} GPU{'; the last trials take the CPUs the others leave' if spare else ''}")
    if initial is not None:
        log(f"every trial starts from {initial.source}")
    if experiment.first_trials and not resume:
        count = len(experiment.first_trials)
        log(f"the first {'trial takes' if count == 1 else f'{count} trials take'} the settings of search.first_trials")
    log(location.tensorboard_command())
    # Local storage only (an object store does not fill), and not through Ray Client, where Tune runs
    # on the cluster, off its main thread, and the guard's signal would end that process.
    guard = None if location.remote or address.startswith("ray://") else DiskGuard(location.path)
    if resume:
        tuner = tune.Tuner.restore(location.uri, trainable, resume_unfinished=True, resume_errored=True)
    else:
        s = experiment.search
        # reuse_actors: a fresh worker per trial re-imports torch (~5 s on 2 cores), often longer than
        # the one epoch ASHA gives a poor trial; trials set their own seeds, threads and writers.
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(metric=s.metric, mode=experiment.mode, search_alg=build_searcher(
                experiment, location), scheduler=build_scheduler(experiment), num_samples=s.num_samples,
                time_budget_s=s.time_budget_s, trial_dirname_creator=trial_dirname, reuse_actors=True),
            run_config=tune.RunConfig(
                name=location.name, storage_path=location.parent_uri,
                checkpoint_config=tune.CheckpointConfig(num_to_keep=experiment.storage.keep_checkpoints),
                failure_config=tune.FailureConfig(max_failures=experiment.resources.max_failures),
                sync_config=tune.SyncConfig(sync_artifacts=True),
                callbacks=[JsonTrialLog(), CsvTrialLog(), RepairStaleCheckpoints(),
                           *([SpareCpus(cluster.get("CPU", 0))] if spare else []), *([guard] if guard else [])],
                progress_reporter=status_reporter(experiment),
                verbose=1),
        )
    # On Ctrl-C Tune logs how to resume from Python; ours below says how to from the command line.
    # Trials stopped before their first result (by the budget, or Ctrl-C) are in our own table, so
    # Tune's warning that it found no metrics for them is not news.
    quieted = [(logging.getLogger("ray.tune.tune"), _without_python_resume_hint),
               (logging.getLogger("ray.tune.analysis.experiment_analysis"), _without_missing_metrics_notice)]
    for logger, quiet in quieted:
        logger.addFilter(quiet)
    threading.Thread(target=_import_what_the_results_need, daemon=True).start()
    try:
        with signal_handlers_kept():
            grid = tuner.fit()
    except Exception as e:
        # The guard stops a search before its disk is full; another program may fill it faster.
        if guard and disk_is_full(e, guard.folder):
            raise filled_by_another(location, type(e).__name__) from None
        raise
    finally:
        for logger, quiet in quieted:
            logger.removeFilter(quiet)
        if ours:
            # Ended now, not at exit: what trial workers print as Tune stops them then comes before the
            # search's last lines, not after them (a one-line error would otherwise end in a traceback).
            ray.shutdown()
    elapsed = time.time() - started
    try:
        return _end_of_search(location, experiment, grid, elapsed, guard, log)
    except RunInterrupted:
        raise
    except KeyboardInterrupt:  # its trials have ended: --resume writes what this did not (best.yaml, ...)
        raise RunInterrupted(location.uri) from None


def _end_of_search(location: RunLocation, experiment: Experiment, grid: ResultGrid, elapsed: float,
                   guard: DiskGuard | None, log: Callable[[str], None]) -> RunLocation:
    """What ``fit()`` leaves, said and written: the results of a search that ended, else why it stopped."""
    from search.disk_guard import disk_full, filled_by_another
    from search.results import load_trials, write_results

    # Tune ends fit() on Ctrl-C as if the search were done; its saved state still has trials running
    # or pending (the grid does not: it marks them terminated as it shuts them down).
    try:
        rows = load_trials(location, experiment)
    except UserError as e:
        if guard and room_short(guard.folder):  # filled by another program faster than the guard looks
            raise filled_by_another(location, str(e)) from None
        raise
    unfinished = sum(row.status == "unfinished" for row in rows)
    budget = experiment.search.time_budget_s
    if unfinished and guard and (short := room_short(guard.folder, unfinished, largest_checkpoint_in(guard.folder))):
        say_interrupted(location, experiment, rows, elapsed, log, how="stopped")
        raise disk_full(location, f"stopped with {mebibytes(short[0])} free on its disk, under the "
                                  f"{mebibytes(short[1])} a search keeps for its checkpoints and state")
    if unfinished and not (budget and elapsed >= budget):
        raise interrupted(location, experiment, rows, elapsed, log)
    log(f"search finished in {elapsed:.0f}s: {len(grid)} trials, {grid.num_errors} with errors")
    tell_study_what_tune_ended(location, experiment, rows)
    write_results(location, experiment, log, rows)
    log(location.tensorboard_command())
    log(f"retrain the best for retrain.epochs ({experiment.retrain_epochs}): alphabet retrain "
        f"{shlex.quote(location.uri)} [--epochs N] (another trial: --trial ID)")
    return location
