"""The ``alphabet`` command line: train, evaluate, compare, predict, export and inspect data.

The search framework adds its commands (search, trials, retrain) through
``add_commands`` in ``search.cli``; this module never imports Ray itself.
Mistakes in what the user supplied end as one line on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import json
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO

from alphabet.errors import DiskFull, RunInterrupted, UserError, counted
from alphabet.rundir import claim_new_file, free_name

if TYPE_CHECKING:
    from alphabet.config import Config
    from alphabet.overlay import Reading

# Packages that add sub-commands; missing ones are skipped (alphabet works alone).
EXTENSIONS = ("search.cli",)

SMOKE_TEST = ["data.synthetic_size=1300", "data.synthetic_test_size=260", "data.case=lower", "train.epochs=1",
              "data.train_per_class=50", "data.test_per_class=10",  # tiny on any source, not only synthetic
              "log.figures_every=1"]
SMOKE_MODEL = ["model.width=8", "model.classifier_width=32"]  # kept as it is for train.init_from, whose weights fix it


def config_with_smoke_test(path: str | None, overrides: list[str], smoke_test: bool,
                           experiments: bool = False) -> Config:
    """The config, made tiny with ``smoke_test``: its model too, unless train.init_from's weights fix it."""
    from alphabet.config import given_by, load_config
    from alphabet.train import check_trainable

    if not smoke_test:
        return load_config(path, overrides, experiments=experiments, check=check_trainable)
    config = load_config(path, SMOKE_TEST + overrides, experiments=experiments, check=check_trainable)
    if config.train.init_from is None:
        config = load_config(path, SMOKE_TEST + SMOKE_MODEL + overrides, experiments=experiments,
                             check=check_trainable)
    if config.log.name is not None and not given_by("log.name", overrides):
        # The file's name stays the real run's; one given with --set is used as given.
        config = dataclasses.replace(config, log=dataclasses.replace(config.log, name=f"{config.log.name}-smoke"))
    return config


def cmd_train(args: argparse.Namespace) -> int:
    from alphabet.config import given_by, named_where_given, to_dict
    from alphabet.train_ensemble import check_seed_count, train_seeds

    if args.resume:
        if args.config or args.set or args.seeds != 1 or args.print_config:
            raise UserError("--resume: expected no CONFIG, --set, --seeds or --print-config; a resumed run keeps "
                            f"its own config ({Path(args.resume) / 'config.yaml'})")
        train_seeds(None, resume=args.resume)
        return 0
    check_seed_count(args.seeds)
    overrides = list(args.set)
    if args.download:
        overrides.append("data.download=true")
    config = config_with_smoke_test(args.config, overrides, args.smoke_test)
    if args.print_config:
        return print_settings(to_dict(config))
    with named_where_given(args.config, args.set):
        # A smoke test again takes NAME-smoke-2, ...: its name is its own only where --set gave it.
        train_seeds(config, args.seeds, numbered=args.smoke_test and not given_by("log.name", args.set))
    return 0


def print_settings(settings: dict) -> int:
    """``--print-config``: the settings a command would run with, as YAML that it reads back."""
    from alphabet.config import dump_yaml

    print(dump_yaml(settings), end="")
    return 0


def add_print_config_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--print-config", action="store_true",
                   help=f"print the {what} it would run (defaults, the file, then --set) as YAML, and exit")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from alphabet.evaluate import evaluate_checkpoint
    from alphabet.rundir import guarded_new_run_dir

    accept = _accept_threshold(args.accept)
    # An evaluation writes no checkpoint, so a failed one leaves nothing behind.
    with guarded_new_run_dir(args.out_dir, args.name or None, ("--out-dir", "--name"), resumable=False) as out:
        evaluate_checkpoint(args.checkpoint, args.data, out, split=args.split, case=args.case, tta=args.tta,
                            root=args.data_root, download=args.download, accept=accept)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from alphabet.calibrate import calibrate

    calibrate(args.checkpoint, args.data, args.out, case=args.case, root=args.data_root, download=args.download)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from alphabet.compare import compare_classifiers, describe

    if args.tta and args.tta_for:
        raise UserError(f"--tta-for {args.tta_for}: expected it without --tta, which is for both")
    tta = args.tta_for or ("both" if args.tta else None)
    result = compare_classifiers(args.first, args.second, args.data, split=args.split, case=args.case, tta=tta,
                                 root=args.data_root, download=args.download)
    print(json.dumps(result, indent=2) if args.json else "\n".join(describe(result)))
    return 0


def _accept_threshold(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise UserError(f"--accept: expected a probability above 0 and at most 1, got {value:g}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    from alphabet.ensemble import is_ensemble, read_ensemble
    from alphabet.predict import predict_files, predict_text_files, predict_word_files
    from alphabet.predict_output import print_letters, print_text, print_words

    if args.top_k < 1:
        raise UserError(f"--top-k: expected a positive integer, got {args.top_k}")
    accept = _accept_threshold(args.accept)
    if accept is not None and not (is_ensemble(args.checkpoint) and read_ensemble(args.checkpoint)[1] != 1.0):
        # Uncalibrated probabilities can be far from how often the model is right (the femnist
        # recipe's 0.9 accepts a sixth of its letters), so the threshold wants measuring first.
        print(f"alphabet: note: {args.checkpoint} has no fitted temperature; measure what --accept {accept:g} "
              f"keeps with `alphabet evaluate {args.checkpoint} --accept {accept:g}` (its training run's test "
              "letters; --data SOURCE for others), or fit one with `alphabet calibrate`", file=sys.stderr)
    if args.lexicon is not None and not (args.word or args.text):
        raise UserError(f"--lexicon {args.lexicon}: a word list reads words; expected --word or --text with it")
    if args.overlay is not None:
        if not (args.word or args.text):
            raise UserError(f"--overlay {args.overlay}: boxes are drawn where letters were found in words and "
                            "lines; expected --word or --text with it")
        if Path(args.overlay).exists() and not Path(args.overlay).is_dir():
            raise UserError(f"--overlay {args.overlay}: expected a directory for the drawn images; it is a file")
    if args.word:
        words = predict_word_files(args.checkpoint, args.images, args.top_k, tta=args.tta, lexicon=args.lexicon)
        print_words(words, args.json, accept)
        _write_overlays(args.overlay, [(path, [letters], [choices]) for path, letters, choices in words], accept)
        return 0
    if args.text:
        texts = predict_text_files(args.checkpoint, args.images, args.top_k, tta=args.tta, lexicon=args.lexicon)
        print_text(texts, args.json, accept)
        _write_overlays(args.overlay, [(path, [word for line in lines for word in line],
                                        [c for line in choices for c in line] if choices is not None
                                        else [None] * sum(map(len, lines)))
                                       for path, lines, choices in texts], accept)
        return 0
    print_letters(predict_files(args.checkpoint, args.images, args.top_k, tta=args.tta), args.json, accept)
    return 0


def _write_overlays(folder: str | None, readings: list[Reading], accept: float | None) -> None:
    """With ``--overlay DIR``, each image with its reading drawn on it, in DIR; where they went on stderr,
    so that stdout keeps the readings alone."""
    if folder is None:
        return
    from alphabet.overlay import write_overlays

    try:
        written = write_overlays(folder, readings, accept)
    except OSError as e:  # a folder that cannot be made or written
        raise UserError(f"--overlay {folder}: cannot write the drawn images there ({e.strerror or e})") from None
    if written:
        print(f"drew {counted(len(written), 'image')} with their letters' boxes in {folder} "
              f"({written[0].name}{', ...' if len(written) > 1 else ''})", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    from alphabet.ensemble import load_classifier
    from alphabet.export import check_onnx_exporter, export_classifier

    out = new_output_file(args.out, "letters.pt2", others=(".onnx",))
    if out.suffix == ".onnx":
        check_onnx_exporter(out)
    classifier = load_classifier(args.checkpoint, torch.device("cpu"))
    with claim_new_file(out, log=say) as out:
        export_classifier(classifier, out)
    n = len(classifier.models)
    print(f"wrote {out}: {'1 model' if n == 1 else f'an ensemble of {n} models'}, letters "
          f"{''.join(classifier.classes)}; it takes uint8 (N, 28, 28) letters framed as alphabet.predict.frame "
          "makes them and gives their probabilities")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from alphabet.config import named_where_given

    overrides = list(args.set) + (["data.download=true"] if args.download else [])
    if args.smoke_test and args.action != "audit":
        raise UserError(f"--smoke-test: only with audit (data {args.action} trains nothing)")
    if args.config and Path(args.config).suffix.lower() in {".png", ".npz", ".csv"}:
        raise UserError(f"{args.config}: expected a training config or experiment .yaml; the file data "
                        f"{args.action} writes goes after --out")
    with named_where_given(args.config, args.set):
        return audit_data(args, overrides) if args.action == "audit" else inspect_data(args, overrides)


def inspect_data(args: argparse.Namespace, overrides: list[str]) -> int:
    from alphabet.config import load_config
    from alphabet.data import load_splits
    from alphabet.data.inspect import info_table, preview_png
    from alphabet.data.sources import check_sources, load_source, save_npz

    data = load_config(args.config, overrides, experiments=True, check=lambda config: check_sources(config.data)).data
    if args.action == "info":
        print(info_table(load_splits(data)))
        return 0
    out = new_output_file(args.out, "letters.npz" if args.action == "export" else "data_preview.png")
    if args.action == "export":
        if not data.source.startswith("folder:"):
            raise UserError(f"data.source: {data.source!r}; expected folder:PATH (export frames a folder's "
                            "images once, for npz:PATH to read fast)")
        loaded = load_source(data.source, data)
        with claim_new_file(out, log=say) as out:
            save_npz(loaded.pool, out)
        print(f"wrote {out}: {counted(len(loaded.pool), 'image')} of {counted(len(loaded.pool.classes), 'letter')}; "
              f"read it with data.source=npz:{out}")
        return 0
    splits = load_splits(data)
    with claim_new_file(out, log=say) as out:
        print(f"wrote {preview_png(splits, out)}")
    return 0


def audit_data(args: argparse.Namespace, overrides: list[str]) -> int:
    from alphabet.audit import audit_letters, score_line, summary_line, write_audit

    if args.folds < 2:
        raise UserError(f"--folds: expected an integer >= 2, got {args.folds}")
    config = config_with_smoke_test(args.config, [*overrides, "log.progress=never"], args.smoke_test,
                                    experiments=True)
    out = new_output_file(args.out, "label_audit.csv")
    if out.with_suffix(".png").exists():  # the picture beside it would be overwritten
        raise UserError(f"--out: {out}: {out.with_suffix('.png')} exists; expected a name whose .png is new too")
    epochs = f"{config.train.epochs} epoch{'s' if config.train.epochs != 1 else ''}"
    print(f"training {args.folds} models of {epochs}, each reading the letters it did not train on", flush=True)
    audit = audit_letters(config, args.folds, log=lambda line: print(line, flush=True))
    with claim_new_file(out, beside=(".png",), log=say) as out:
        png = write_audit(audit, out, config.data.source)
    print(summary_line(audit))
    print(score_line(audit))
    print(f"wrote {out} (the label believed least first: the first rows are the likeliest wrong labels) "
          f"and {png}")
    return 0


def say(line: str) -> None:
    """A note beside a command's report (stdout, which a script may read), on stderr."""
    print(line, file=sys.stderr)


def new_output_file(given: str | None, default: str, others: tuple[str, ...] = ()) -> Path:
    """Where --out writes, never over an existing file: a path given must be new, with the default's
    suffix or one of ``others``, and the default name gets a -2, -3 ... suffix. Checked as the command
    starts; claim_new_file makes the file when it is written."""
    suffixes = (Path(default).suffix, *others)
    if given is None:
        return Path(free_name(Path(default).stem, lambda name: Path(name).exists(), suffixes[0]))
    out = Path(given)
    if out.suffix not in suffixes or out.exists():
        raise UserError(f"--out: {out}: expected a new {' or '.join(suffixes)} file"
                        + (" (it exists; nothing is overwritten)" if out.exists() else ""))
    return out


def add_set_argument(p: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE [KEY=VALUE ...]``, repeatable; later pairs win."""
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help=f"override settings, e.g. --set {example} (repeatable)")


def add_download_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--download", action="store_true", help="download EMNIST through torchvision if missing")


def _add_config_args(p: argparse.ArgumentParser,
                     what: str = "YAML file with data/model/augment/train/log sections") -> None:
    p.add_argument("config", nargs="?", help=what)
    add_set_argument(p, "train.lr=0.01 train.epochs=5")
    add_download_argument(p)


def _add_tta_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average each image over 9 small shifts, scalings and rotations")


def _add_accept_argument(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--accept", type=float, metavar="P", help=what)


def _add_data_args(p: argparse.ArgumentParser, read: str, whose: str) -> None:
    """The letters to score (evaluate, compare)."""
    p.add_argument("--data", metavar="SOURCE",
                   help="synthetic, emnist-letters, emnist-lowercase, emnist-uppercase, npz:PATH or folder:PATH"
                   f" ({read}); default: the test letters {whose} training run was scored on")
    p.add_argument("--split", choices=("test", "all"), default="test",
                   help="the --data source's test partition (default) or all of it")
    p.add_argument("--case", choices=("all", "lower", "upper", "merged"),
                   help="override the training run's data.case (e.g. merged for 52-class data)")
    p.add_argument("--data-root", metavar="DIR", help="where EMNIST files are (default: the training run's data.root)")
    add_download_argument(p)
    _add_tta_argument(p)


class VersionAction(argparse.Action):
    """``--version``: this code's version and commit with the packages it runs on, in one line for a bug
    report (worked out only when asked: it runs git)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from alphabet.environment import environment, environment_line

        print(environment_line(environment(packages=("ray", "optuna"))))  # their versions only: no import
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alphabet", description="Handwritten letter recognition.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action=VersionAction,
                        help="show alphabet's version and commit, Python's and the packages', and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a model and report it on the test split")
    _add_config_args(p)
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train N models (seeds train.seed, +1, ...) and report their ensemble")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run (or an ensemble) from its last checkpoint")
    p.add_argument("--smoke-test", action="store_true",
                   help="a tiny one-epoch run, to check the set-up (a file's log.name gets -smoke)")
    add_print_config_argument(p, "config")
    p.set_defaults(func=cmd_train, outlives_its_reader=True)

    p = sub.add_parser("evaluate", help="score a checkpoint on its run's test letters or on a data source",
                       description="Score a checkpoint on the test letters its training run was scored on, or on "
                                   "a data source (--data): metrics.json, figures, TensorBoard "
                                   "events and mistakes.csv (every misread letter by its file or archive row, "
                                   "the label the model believes least first: where wrong labels show up).")
    p.add_argument("checkpoint", help="a checkpoint .pt, a run directory (its checkpoints/last.pt), "
                   "an ensemble.yaml or its directory")
    _add_data_args(p, "read as the checkpoint's training run read its data", "its")
    _add_accept_argument(p, "also measure accepting only the letters read with a top probability of at least P: "
                            "their share and accuracy (as predict --accept P would)")
    p.add_argument("--out-dir", default="runs", help="parent folder of the evaluation directory")
    p.add_argument("--name", help="name of the evaluation directory (default: a timestamp)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit a temperature so that a model's probabilities mean what they say",
                       description="Fit one temperature on letters the model never trained on, so that of the "
                                   "letters it gives 0.9, about 0.9 are right; the readings do not change. Writes "
                                   "a classifier file (calibrated.yaml beside the model) that predict, evaluate, "
                                   "compare and export take wherever they take a checkpoint.")
    p.add_argument("checkpoint", help="a checkpoint .pt, a run directory (its checkpoints/last.pt), "
                   "an ensemble.yaml or its directory")
    p.add_argument("--data", metavar="SOURCE",
                   help="letters to fit on, all of them (npz:PATH, folder:PATH, ...); default: the validation "
                        "letters the model's training run held out (none after a retrain)")
    p.add_argument("--case", choices=("all", "lower", "upper", "merged"),
                   help="override the training run's data.case for --data")
    p.add_argument("--data-root", metavar="DIR", help="where EMNIST files are (default: the training run's data.root)")
    add_download_argument(p)
    p.add_argument("--out", help="a new .yaml file (default: calibrated.yaml beside the model, then "
                                 "calibrated-2.yaml ...)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("compare", help="two checkpoints on the same letters: their balanced accuracies and "
                                       "whether the gap is more than the test set's noise")
    for name in ("first", "second"):
        p.add_argument(name, help="a checkpoint .pt, a run directory, an ensemble.yaml or its directory")
    _add_data_args(p, "read as the first checkpoint's training run read its data", "the first's")
    p.add_argument("--tta-for", choices=("first", "second"),
                   help="test-time augmentation for that one only: `compare RUN RUN --tta-for second` "
                        "measures what it is worth")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("predict", help="top-k letters for image files: a letter each, a word (--word) or lines "
                                       "of text (--text)")
    p.add_argument("checkpoint", help="a checkpoint .pt, a run directory (its checkpoints/last.pt), "
                   "an ensemble.yaml or its directory")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="an image of one letter (any size, dark on light or light on dark), or a directory of them")
    p.add_argument("--top-k", type=int, default=3, metavar="K",
                   help="how many letters to list per image or letter, and with --lexicon words per word (default 3)")
    layout = p.add_mutually_exclusive_group()
    layout.add_argument("--word", action="store_true",
                        help="read each image as a row of separate letters (a word printed by hand), left to right")
    layout.add_argument("--text", action="store_true",
                        help="read each image as rows of separate letters (a note printed by hand): lines top to "
                             "bottom, words parted where letters stand far apart; a page photographed up to 10 "
                             "degrees askew is turned level first, and handwriting leaning far set upright")
    p.add_argument("--lexicon", metavar="FILE",
                   help="with --word or --text: read each word as the likeliest word of this list (one word a "
                        "line, optionally with a count), which also decides where touching letters are cut "
                        "and, with --text, which narrow gaps are spaces; --accept then marks words")
    p.add_argument("--overlay", metavar="DIR",
                   help="with --word or --text: also draw each image with its letters' boxes, the letters read "
                        "and the words they make, as DIR/IMAGE.png (never over a file there)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_accept_argument(p, "mark a letter read with a top probability under P as unsure (JSON: \"sure\"), for "
                            "a person to check; best with a calibrated model (alphabet calibrate)")
    _add_tta_argument(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="a checkpoint or ensemble as one file that PyTorch alone loads "
                                      "(torch.export .pt2), or an ONNX model (.onnx) for other runtimes")
    p.add_argument("checkpoint", help="a checkpoint .pt, a run directory (its checkpoints/last.pt), "
                   "an ensemble.yaml or its directory")
    p.add_argument("--out", help="a new .pt2 file (default letters.pt2, then letters-2.pt2 ...) or .onnx file "
                   "(needs the packages onnx and onnxscript)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("data", help="counts per class (info), a PNG grid (preview) of a config's data, "
                                    "a folder's images framed once into an npz archive (export), or the "
                                    "training letters whose labels cross-validated models doubt, and the "
                                    "config's cross-validated balanced accuracy (audit)")
    p.add_argument("action", choices=("info", "preview", "export", "audit"))
    _add_config_args(p, "a training config, or an experiment file (its config section)")
    p.add_argument("--out", help="a new file, never one that exists: preview's PNG (default data_preview.png, "
                                 "then data_preview-2.png ...), export's .npz (default letters.npz ...), "
                                 "audit's .csv (default label_audit.csv ..., its PNG beside it)")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="audit: train K models, each on all but a K-th of the letters, and read that K-th "
                        "(default 5)")
    p.add_argument("--smoke-test", action="store_true",
                   help="audit: one epoch on 50 letters a class, with a smaller model, to check the set-up")
    p.set_defaults(func=cmd_data)

    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in (name, name.split(".")[0]):
                raise
            continue
        module.add_commands(sub)
    return parser


CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def one_line(message: str) -> str:
    """``message`` with control characters written as escapes: a file name with a newline in it would
    otherwise break the one line of an error in two."""
    return CONTROL_CHARACTER.sub(lambda found: repr(found.group())[1:-1], message)


class Termination:
    """SIGTERM (kill, timeout, docker stop, a batch scheduler's notice before its SIGKILL) handled as
    Ctrl-C is: a run keeps what it can resume from and says how to continue. Without it Python ended
    at once, leaving a run that had no checkpoint yet in the way of the same command, and a search
    ended in Ray's stack dump. ``received`` lets the exit status say which signal it was."""

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        on_ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(on_ctrl_c):  # Python's (KeyboardInterrupt), or Tune's in a search: it stops and saves the state
            on_ctrl_c(signal.SIGINT, frame)
        else:  # Ctrl-C ignored, as in a job a shell without job control starts in the background
            raise KeyboardInterrupt


def run() -> NoReturn:
    """The `alphabet` command (and `python -m alphabet`): main, then an exit without Python's last sweep
    for reference cycles. Over the objects of torch, Ray, Optuna and scikit-learn that sweep took 1 to 3 s
    of every command on 2 cores, after its work was done; what a command writes is closed by then, and
    at-exit handlers (Ray's shutdown) still run. Not in main itself: a caller's process goes on."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    termination = Termination()
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return _main(argv, termination)
    previous = signal.signal(signal.SIGTERM, termination)
    try:
        return _main(argv, termination)
    finally:  # a caller's own (pytest's, calling main in its process) comes back
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, termination: Termination) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # what parse_args does, plus the likely slip: an output file given without --out
        hint = (f" (the file {args.command} writes goes after --out: --out {extras[0]})"
                if hasattr(args, "out") and len(extras) == 1 and not extras[0].startswith("-") else "")
        parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    try:
        with contextlib.ExitStack() as held:
            if getattr(args, "outlives_its_reader", False) and not getattr(args, "print_config", False):
                held.enter_context(contextlib.redirect_stdout(OutputOutlivingItsReader(sys.stdout)))
            code = args.func(args)
        sys.stdout.flush()  # inside the try, so a closed pipe is caught below
        return code
    except BrokenPipeError:  # `alphabet trials RUN | head`: the reader has what it wanted
        drop_closed_stdout()
        return 141  # what a shell reports for a command ended by SIGPIPE
    except UserError as e:
        if args.debug:
            raise
        then = (f"; free some, then continue it with: alphabet {args.command} --resume {shlex.quote(str(e.run_dir))}"
                if isinstance(e, DiskFull) and e.run_dir else "")
        print(f"alphabet: error: {one_line(str(e))}{then}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # What it printed comes first. `| tee LOG` takes the same Ctrl-C, and its pipe is gone: stderr still tells.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            drop_closed_stdout()
        print("alphabet: stopped by SIGTERM" if termination.received else "alphabet: interrupted", file=sys.stderr)
        if isinstance(e, RunInterrupted):
            print(f"continue it with: alphabet {args.command} --resume {shlex.quote(str(e.run_dir))}", file=sys.stderr)
        return 143 if termination.received else 130  # as a shell reports a command ended by the signal


class OutputOutlivingItsReader:
    """The stdout of a run, retrain or search. When what reads it ends (`| less`, quit; `| tee LOG`, which
    the same Ctrl-C ends), the command goes on without printing, and Ctrl-C stops it as ever, naming
    how to continue. Written straight to the pipe, a search stopped at Tune's next status line, and a
    run when its output next filled a buffer, both in silence (BrokenPipeError, exit 141)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.dropped = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        if not self.dropped:
            self.dropped = True
            drop_closed_stdout()
            print("alphabet: what reads its output has ended; it goes on without printing (Ctrl-C stops it)",
                  file=sys.stderr)

    def __getattr__(self, name: str) -> object:  # fileno, isatty, encoding ...: the stream's
        return getattr(self.stream, name)


def drop_closed_stdout() -> None:
    """Send what is left for a stdout whose reader ended to nowhere: no second error at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    run()
