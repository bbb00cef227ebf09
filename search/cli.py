"""The search commands of the ``alphabet`` CLI: search, trials, retrain.

Ray is imported only when one of these commands runs, so ``alphabet train``
and friends start fast and work without a cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from alphabet.cli import add_download_argument, add_print_config_argument, add_set_argument, print_settings
from alphabet.errors import UserError

# Tiny on any source: the experiment's own data (so its set-up is checked too), 40 letters a class.
SMOKE_TEST = ["search.num_samples=4", "search.max_concurrent=2", "asha.max_t=2", "asha.grace_period=1",
              "config.data.synthetic_size=1040", "config.data.synthetic_test_size=260",
              "config.data.train_per_class=40", "config.data.test_per_class=10",
              "retrain.epochs=1"]  # so that the retrain its last line suggests is a smoke test too
# Left out when the trials start from a model's weights (config.train.init_from), which fix the model.
SMOKE_MODEL = ["config.model.width=8", "config.model.classifier_width=32", "config.model.stages=2"]


def cmd_search(args: argparse.Namespace) -> int:
    from alphabet.config import given_by
    from search.experiment import load_experiment
    from search.runner import EXPERIMENT_FILE, run_search

    if args.resume:
        if args.print_config:
            raise UserError("--print-config: expected EXPERIMENT.yaml, not --resume; a search's experiment is "
                            "saved in RUN_DIR/experiment.yaml")
        if args.experiment or args.set:
            # More trials is the usual reason: Tune cannot add samples to a restored search, so name the way.
            given = shlex.quote(f"search.first_trials=[{args.resume}]")
            raise UserError("--resume: expected no EXPERIMENT or --set; a resumed search keeps its experiment (for "
                            f"more trials, start another from its best: alphabet search EXPERIMENT.yaml --set {given})")
        run_search(None, address=args.address, resume=args.resume)
        return 0
    if not args.experiment:
        raise UserError("search: expected EXPERIMENT.yaml (or --resume RUN_DIR)")
    if (Path(args.experiment) / EXPERIMENT_FILE).is_file():  # a search's RUN_DIR: most likely, --resume left out
        folder = shlex.quote(args.experiment)
        raise UserError(f"{args.experiment}: a search's RUN_DIR; expected EXPERIMENT.yaml. To continue it: "
                        f"alphabet search --resume {folder}; to run its experiment again as a new search: "
                        f"alphabet search {shlex.quote(str(Path(args.experiment) / EXPERIMENT_FILE))}")
    overrides = list(args.set) + (["config.data.download=true"] if args.download else [])
    experiment = load_experiment(args.experiment, overrides)
    if args.smoke_test:  # every one of search.first_trials still runs, so that each is checked
        smoke = [*SMOKE_TEST, f"search.num_samples={max(4, len(experiment.first_trials))}"]
        if experiment.config.train.init_from is None:
            smoke += SMOKE_MODEL
        # Under a name of its own, unless --set gave one: `runs/search/quick` stays the real search's.
        named = [] if given_by("storage.name", args.set) else [f"storage.name={experiment.storage.name}-smoke"]
        experiment = load_experiment(args.experiment, smoke + overrides + named)
    if args.print_config:
        return print_settings(experiment.to_dict())
    run_search(experiment, address=args.address)
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    from alphabet.rundir import holder_of_run_dir
    from search.results import load_trials, trials_json, trials_table
    from search.runner import has_tune_state, is_unstarted_search, load_saved_experiment
    from search.storage import RunLocation

    location = RunLocation.parse(args.run_dir)
    experiment = load_saved_experiment(location)
    if not location.remote and not has_tune_state(location):  # Tune saves it a second or so after the start
        if holder := holder_of_run_dir(location.path):  # a script's --json gets no trials, as JSON
            if args.json:
                print(trials_json([], experiment.search.metric, experiment.rank_epochs))
            print(f"{location.uri}: no trial has begun yet; {holder} is starting the search",
                  file=sys.stderr if args.json else sys.stdout)
            return 0
        if is_unstarted_search(location):
            raise UserError(f"{location.uri}: stopped before its first trial began; expected its trials once it "
                            f"is continued: alphabet search --resume {shlex.quote(location.uri)}")
    rows = load_trials(location, experiment)
    if location.path.is_dir() and holder_of_run_dir(location.path):  # its driver is alive: they run
        rows = [dataclasses.replace(r, status="running") if r.status == "unfinished" else r for r in rows]
    show = trials_json if args.json else trials_table
    print(show(rows, experiment.search.metric, experiment.rank_epochs))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from alphabet.config import named_where_given, to_dict
    from search.retrain import plan_retrain, retrain

    if bool(args.target) == bool(args.resume):
        raise UserError("retrain: expected RUN_DIR or best.yaml, or --resume RETRAIN_DIR (one of them)")
    for option in ("seeds", "batch_size", "trial"):
        if args.resume and getattr(args, option) is not None:
            raise UserError(f"--resume: expected no --{option.replace('_', '-')}; a resumed retrain keeps its own")
    if args.resume and (args.set or args.download):
        raise UserError("--resume: expected no --set or --download; a resumed retrain keeps its settings")
    overrides = list(args.set) + (["data.download=true"] if args.download else [])
    if args.print_config:
        if args.resume:
            raise UserError("--print-config: expected RUN_DIR or best.yaml, not --resume; a retrain's settings "
                            f"are in {args.resume}/config.yaml")
        return print_settings(to_dict(plan_retrain(args.target, args.epochs, overrides, args.seeds,
                                                   args.batch_size, args.trial, args.smoke_test).config))
    with named_where_given(None, args.set):  # the search's own settings: named by the retrain's messages
        retrain(args.target, args.epochs, overrides, args.resume, args.seeds, batch_size=args.batch_size,
                trial=args.trial, smoke_test=args.smoke_test)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="hyperparameter search with Ray Tune, Optuna and ASHA")
    p.add_argument("experiment", nargs="?", help="experiment YAML (see experiments/)")
    add_set_argument(p, "search.num_samples=50 asha.max_t=20")
    p.add_argument("--address", help="Ray cluster address, or auto for the cluster `ray start` runs on this "
                   "machine (default: RAY_ADDRESS, else a Ray of the search's own)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search")
    add_download_argument(p)
    p.add_argument("--smoke-test", action="store_true",
                   help="a tiny search, to check the set-up, into NAME-smoke (its retrain.epochs 1)")
    add_print_config_argument(p, "experiment")
    p.set_defaults(func=cmd_search, outlives_its_reader=True)

    p = sub.add_parser("trials", help="the trial table of a search, best first")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="print JSON (full precision, dotted parameter keys)")
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("retrain", help="retrain a search's best configuration on train+val, report on test")
    p.add_argument("target", nargs="?", metavar="RUN_DIR|best.yaml",
                   help="a finished search (its best.yaml), or a training config such as best.yaml")
    p.add_argument("--trial", metavar="ID", help="retrain this trial of the search instead of its best (its id, "
                   "as alphabet trials shows it, or the start of it), into RUN_DIR/retrain-ID")
    p.add_argument("--epochs", type=int, help="default: the experiment's retrain.epochs (500)")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="train N seeds and report their ensemble (default: the experiment's retrain.seeds, 1)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="train at batch N, the lr scaled by the square root of N over the searched batch "
                        "(default: the experiment's retrain.batch_size, else the searched batch)")
    add_set_argument(p, "train.label_smoothing=0.1")
    p.add_argument("--resume", metavar="RETRAIN_DIR", help="continue an interrupted retrain")
    add_download_argument(p)
    p.add_argument("--smoke-test", action="store_true",
                   help="retrain for one epoch, into retrain-smoke (retrain-ID-smoke with --trial)")
    add_print_config_argument(p, "config")
    p.set_defaults(func=cmd_retrain, outlives_its_reader=True)
