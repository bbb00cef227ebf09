"""The bad-input suite: every case through the real CLI.

Each must end in exit code 2 with one line on stderr that names the file (or
option) and what was expected, no traceback, and no existing file changed.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, with_sets
from PIL import Image
from test_data import write_emnist, write_npz

QUICK = Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from alphabet.cli import main

    out = tmp_path_factory.mktemp("ck")
    assert main(["train", *with_sets(TINY + [f"log.out_dir={out}", "log.name=m", "train.epochs=1"])]) == 0
    return out / "m" / "checkpoints" / "last.pt"


def letter_png(path: Path) -> Path:
    img = np.zeros((40, 40), np.uint8)
    img[5:35, 18:22] = 255
    Image.fromarray(img).save(path)
    return path


def edited_checkpoint(checkpoint: Path, path: Path, edit) -> Path:
    payload = torch.load(checkpoint, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


# Each case: (name, set-up returning the CLI arguments, fragment the one line must contain).
def _config(text: str):
    def make(tmp: Path, _ck: Path) -> tuple[list, str]:
        path = tmp / "config.yaml"
        path.write_text(text)
        return ["train", path], str(path)
    return make


def _data(source_of):
    def make(tmp: Path, _ck: Path) -> tuple[list, str]:
        source, named = source_of(tmp)
        return ["data", "info", "--set", f"data.source={source}"], named
    return make


def _predict(make_file):
    def make(tmp: Path, ck: Path) -> tuple[list, str]:
        path = make_file(tmp)
        return ["predict", ck, path], str(path)
    return make


def _link_to_nothing(tmp: Path) -> Path:
    (tmp / "runs").symlink_to(tmp / "gone")
    return tmp / "runs"


def _checkpoint(make_file):
    def make(tmp: Path, ck: Path) -> tuple[list, str]:
        path = make_file(tmp, ck)
        return ["predict", path, letter_png(tmp / "l.png")], str(path)
    return make


def _run_copy(run: Path, ck: Path) -> Path:
    """A run directory at ``run`` whose last checkpoint is a copy of ``ck``."""
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(ck, run / "checkpoints" / "last.pt")
    return run


def _emnist_args(damage=None):
    """EMNIST files in torchvision's layout, damaged by ``damage`` (None: no files at all)."""
    def make(tmp: Path, _ck: Path) -> tuple[list, str]:
        raw = tmp / "EMNIST" / "raw"
        if damage is not None:
            write_emnist(tmp, "letters", {"train": np.arange(1, 27), "test": np.arange(1, 27)})
            damage(raw)
        return ["data", "info", "--set", "data.source=emnist-letters", "--set", f"data.root={tmp}"], str(raw)
    return make


def _truncate(raw: Path) -> None:
    f = raw / "emnist-letters-train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:3000])


def _corrupt_header(raw: Path) -> None:
    f = raw / "emnist-letters-test-labels-idx1-ubyte"
    f.write_bytes(b"\x00\x00\x09\x99" + f.read_bytes()[4:])


CASES = {
    "malformed yaml": (_config("train:\n  lr: [0.1\n"), "malformed YAML at line"),
    "unknown key": (_config("train:\n  learning_rate: 0.1\n"), "unknown key 'train.learning_rate'; valid keys"),
    "wrong type": (_config("model:\n  width: wide\n"), "model.width: expected int, got 'wide'"),
    # these two were found only when the run built its model or read its data, and named no file
    "unknown model": (_config("model:\n  arch: vgg\n"), "model.arch: expected one of cnn, resnet, lenet, got 'vgg'"),
    "unknown data source": (_config("data:\n  source: emnist-letter\n"), "data.source: unknown source 'emnist-letter'"),
    "zero epochs": (_config("train:\n  epochs: 0\n"), "train.epochs: expected a value > 0"),
    "negative epochs": (_config("train:\n  epochs: -5\n"), "train.epochs: expected a value > 0"),
    "empty class list": (_config("data:\n  classes: ''\n"), "data.classes: expected letters a-z or A-Z"),
    "digit in class list": (_config("data:\n  classes: ab1\n"), "data.classes: expected letters a-z or A-Z"),
    "class of the other case": (_config("data:\n  case: lower\n  classes: aB\n"),
                                "data.classes: B not in data.case='lower'"),
    "one class": (_config("data:\n  classes: z\n"), "data.classes: expected at least two letters"),
    "a letter twice": (_config("data:\n  classes: abca\n"),
                       "data.classes: expected each letter once, got 'abca' (a repeated)"),
    "a letter twice, once cases are merged": (_config("data:\n  case: merged\n  classes: aA\n"),
                                              "(a repeated: data.case='merged' makes letters lowercase)"),
    "yaml list": (_config("- train\n"), "top level: expected a mapping"),
    "experiment file given to train": (_config("config: {}\nspace: {}\n"),
                                       "an experiment file (sections config, space); expected a training config"),
    "training config given to search": (lambda t, ck: ((t / "c.yaml").write_text("train:\n  lr: 0.1\n") and
                                                       ["search", t / "c.yaml"], str(t / "c.yaml")),
                                        "a training config (sections train); expected an experiment"),
    "missing data directory": (_data(lambda t: (f"folder:{t / 'none'}", str(t / "none"))),
                               "data.source: {tmp}/none: directory not found"),
    "missing test source": (lambda t, ck: (["data", "info", "--set", "data.synthetic_size=60",
                                            f"data.test_source=npz:{t / 'real.npz'}"], str(t / "real.npz")),
                            "data.test_source: {tmp}/real.npz: file not found"),
    "evaluate: missing data": (lambda t, ck: (["evaluate", ck, "--data", f"folder:{t / 'scans'}"], str(t / "scans")),
                               "--data: {tmp}/scans: directory not found"),
    "missing EMNIST files": (_emnist_args(), "EMNIST files missing"),
    "truncated EMNIST file": (_emnist_args(_truncate), "corrupt or truncated EMNIST file"),
    "corrupt EMNIST header": (_emnist_args(_corrupt_header), "corrupt or truncated EMNIST file"),
    "npz missing key": (_data(lambda t: (f"npz:{write_npz(t / 'a.npz', y=None)}", "a.npz")), "missing key y"),
    "npz wrong shape": (_data(lambda t: (f"npz:{write_npz(t / 'b.npz', x=np.zeros((60, 28, 27), np.uint8))}",
                                         "b.npz")), "key x: expected shape (N, 28, 28)"),
    "npz origins of another length": (_data(lambda t: (f"npz:{write_npz(t / 'o.npz', origin=np.array(['a.png']))}",
                                                       "o.npz")), "key origin: expected shape (60,), got (1,)"),
    "audit: one fold": (lambda t, ck: (["data", "audit", "--folds", "1"], "--folds"),
                        "--folds: expected an integer >= 2, got 1"),
    "audit: its CSV exists": (lambda t, ck: ((t / "a.csv").write_text("mine\n") and
                                             ["data", "audit", "--set", "data.synthetic_size=60", "--out", t / "a.csv"],
                                             str(t / "a.csv")), "expected a new .csv file (it exists; nothing is"),
    "audit: the PNG beside its CSV exists": (lambda t, ck: ((t / "a.png").write_bytes(b"mine") and
                                                            ["data", "audit", "--out", t / "a.csv"], str(t / "a.png")),
                                             "exists; expected a name whose .png is new too"),
    "npz not an archive": (_data(lambda t: ((t / "c.npz").write_text("x") and f"npz:{t / 'c.npz'}", "c.npz")),
                           "not a readable .npz archive"),
    "folder without letter sub-folders": (_data(lambda t: ((t / "words").mkdir() or f"folder:{t}", str(t))),
                                          "no letter sub-folders"),
    "empty folder": (_data(lambda t: (f"folder:{t}", str(t))), "no letter sub-folders"),
    "letter folders without images": (_data(lambda t: ((t / "a").mkdir() or f"folder:{t}", str(t))),
                                      "hold no images"),
    "predict: not an image": (_predict(lambda t: (t / "x.png").write_text("text") and t / "x.png"),
                              "not a readable image"),
    "predict: 0-byte file": (_predict(lambda t: (t / "e.png").write_bytes(b"") or t / "e.png"), "empty file (0 bytes)"),
    "predict: huge image": (_predict(lambda t: Image.new("L", (9000, 5000)).save(t / "h.png") or t / "h.png"),
                            "expected at most"),
    "checkpoint: corrupt": (_checkpoint(lambda t, ck: (t / "c.pt").write_bytes(ck.read_bytes()[:2000]) and t / "c.pt"),
                            "corrupt or truncated checkpoint"),
    "checkpoint: other architecture": (_checkpoint(lambda t, ck: edited_checkpoint(
        ck, t / "o.pt", lambda p: p["config"]["model"].update(width=48))), "weights do not fit the architecture"),
    "checkpoint: unknown format": (_checkpoint(lambda t, ck: edited_checkpoint(
        ck, t / "f.pt", lambda p: p.update(format=7))), "expected checkpoint format 1, got 7"),
    "trials: a RUN_DIR that is not there": (lambda t, ck: (["trials", t / "typo"], "typo"),
                                            "typo: no such directory; expected a search's RUN_DIR"),
    "trials: a directory that is no search": (lambda t, ck: (["trials", ck.parent], "checkpoints"),
                                              "not a search run directory; expected experiment.yaml in it"),
    "trials: the storage.path, not a search in it": (lambda t, ck: (
        ["trials", (t / "quick").mkdir() or (t / "quick" / "experiment.yaml").write_text("space: {}\n") and t], str(t)),
        "not a search run directory; expected experiment.yaml in it (a folder of searches: quick; "
        "name one, e.g. {tmp}/quick)"),
    "trials: a trial's folder, not its search": (lambda t, ck: (
        ["trials", (t / "experiment.yaml").write_text("space: {}\n") and (t / "trial_001_x").mkdir() or
         t / "trial_001_x"], "trial_001_x"),
        "not a search run directory; expected experiment.yaml in it (it lies in the search {tmp}; name that)"),
    "trials: the experiment file, not its search": (lambda t, ck: (
        ["trials", (t / "quick.yaml").write_text("space: {}\n") and t / "quick.yaml"], "quick.yaml"),
        "quick.yaml: a file; expected the RUN_DIR a search wrote (storage.path/storage.name: runs/search/NAME"),
    # --resume left out: the folder was read as an experiment file ("IsADirectoryError")
    "search: a search's RUN_DIR, not an experiment": (lambda t, ck: (
        ["search", (t / "quick").mkdir() or (t / "quick" / "experiment.yaml").write_text("space: {}\n")
         and t / "quick"], "quick"),
        "quick: a search's RUN_DIR; expected EXPERIMENT.yaml. To continue it: alphabet search --resume {tmp}/quick; "
        "to run its experiment again as a new search: alphabet search {tmp}/quick/experiment.yaml"),
    "retrain: the storage.path, not a search in it": (lambda t, ck: (
        ["retrain", (t / "quick").mkdir() or (t / "quick" / "experiment.yaml").write_text("space: {}\n") and t],
        str(t)), "no best.yaml; expected a finished search's RUN_DIR or a best.yaml file (a folder of searches: "
        "quick; name one, e.g. {tmp}/quick)"),
    "trials: a search's experiment.yaml that is not text": (lambda t, ck: (
        ["trials", (t / "experiment.yaml").write_bytes(b"\xff\xfe\x00") and t], "experiment.yaml"),
        "{tmp}/experiment.yaml: expected a readable text file (UnicodeDecodeError)"),
    "storage URI of an unknown scheme": (lambda t, ck: (["trials", "foo://bucket/run"], "run"),
                                         "foo://bucket/run: cannot open this storage URI"),
    "checkpoint: a directory with none": (_checkpoint(lambda t, ck: (t / "notes").mkdir() or t / "notes"),
                                          "no ensemble.yaml or checkpoints/last.pt in this directory"),
    # A folder that holds runs or checkpoints rather than being a run names them.
    "checkpoint: a run's checkpoints folder": (_checkpoint(lambda t, ck: ck.parent),
                                               "(checkpoints in it: last.pt, best.pt; name one, e.g. {ck})"),
    "checkpoint: a search's RUN_DIR, its retrain inside": (_checkpoint(lambda t, ck: _run_copy(t / "s" / "retrain", ck)
                                                                       and t / "s"),
                                                           "(runs in it: retrain; name one, e.g. {tmp}/s/retrain)"),
    "checkpoint: a search's RUN_DIR, not retrained yet": (_checkpoint(lambda t, ck: (
        (t / "s").mkdir() or (t / "s" / "best.yaml").write_text("model: {width: 8}\n") and t / "s")),
        "(a search, its best not trained yet: alphabet retrain {tmp}/s, then name {tmp}/s/retrain)"),
    "retrain: a retrain's directory, not its search": (lambda t, ck: (
        ["retrain", (t / "best.yaml").write_text("model: {width: 8}\n") and _run_copy(t / "retrain", ck)], "retrain"),
        "no best.yaml; expected a finished search's RUN_DIR or a best.yaml file (a retrain: continue it with "
        "alphabet retrain --resume {tmp}/retrain, or retrain the search's best again: alphabet retrain {tmp})"),
    "retrain: a training run, not a search": (lambda t, ck: (["retrain", ck.parent.parent], "m"),
                                              "(a training run: continue it with alphabet train --resume "),
    "ensemble: no members": (_checkpoint(lambda t, ck: (t / "ensemble.yaml").write_text("members: []\n")
                                         and t / "ensemble.yaml"), "key members: expected a non-empty list"),
    "predict: a run's config.yaml for its checkpoint": (
        _checkpoint(lambda t, ck: (t / "config.yaml").write_text("model: {width: 8}\ntrain: {lr: 0.01}\n")
                    and t / "config.yaml"), "a training config, not an ensemble; expected a checkpoint .pt, a run"),
    "predict: an experiment file for a model": (
        _checkpoint(lambda t, ck: (t / "quick.yaml").write_text("space: {train.lr: {type: loguniform, low: 0.001, "
                                                               "high: 0.1}}\nsearch: {num_samples: 4}\n")
                    and t / "quick.yaml"), "quick.yaml: an experiment file, not an ensemble; expected a checkpoint"),
    "ensemble: a missing member": (_checkpoint(lambda t, ck: (t / "e.yaml").write_text(f"members: [{ck}, gone.pt]\n")
                                               and t / "e.yaml"), "gone.pt: not found; expected a checkpoint .pt"),
    "ensemble: members of other letters": (_checkpoint(lambda t, ck: (t / "m.yaml").write_text(
        f"members: [{ck}, {edited_checkpoint(ck, t / 'u.pt', lambda p: p.update(classes=list('uvwxyz')))}]\n")
        and t / "m.yaml"), "key members[1]: expected the classes abcdef"),
    "zero seeds": (lambda t, ck: (["train", "--seeds", "0"], "--seeds"), "--seeds: expected a positive integer"),
    # --print-config printed the settings of a run the same command without it refused
    "zero seeds, printed": (lambda t, ck: (["train", "--seeds", "0", "--print-config"], "--seeds"),
                            "--seeds: expected a positive integer, got 0"),
    "retrain: an empty file": (lambda t, ck: (
        ["retrain", (t / "notes.txt").write_text("# to do\n") and t / "notes.txt"], "notes.txt"),
        "holds no settings; expected a search's best.yaml"),
    "retrain: zero seeds, printed": (lambda t, ck: (
        ["retrain", (t / "best.yaml").write_text("model: {width: 8}\n") and t / "best.yaml", "--seeds", "0",
         "--print-config"], "--seeds"), "--seeds: expected a positive integer, got 0"),
    "search --resume with new settings": (lambda t, ck: (["search", "--resume", t, "--set", "search.num_samples=9"],
                                                         "--resume"),
                                          "for more trials, start another from its best: alphabet search "
                                          "EXPERIMENT.yaml --set 'search.first_trials=[{tmp}]'"),
    "retrain --resume of a search, not its retrain": (lambda t, ck: (
        ["retrain", "--resume", (t / "experiment.yaml").write_text("space: {}\n") and t], str(t)),
        "a search's RUN_DIR; expected its retrain's directory ({tmp}/retrain), or to continue the search: "
        "alphabet search --resume {tmp}"),
    "retrain --resume with new settings": (lambda t, ck: (["retrain", "--resume", t, "--set", "train.lr=0.1"],
                                                          "--resume"), "expected no --set or --download"),
    "train: init_from another architecture": (lambda t, ck: (["train", *with_sets(TINY + [
        f"log.out_dir={t / 'runs'}", f"train.init_from={ck}", "model.width=16"])], str(ck)),
        "train.init_from: {ck}: its model does not fit this run's (model.width 8 there, 16 here)"),
    "train: init_from missing": (lambda t, ck: (["train", "--set", f"train.init_from={t / 'gone'}"], str(t / "gone")),
                                 "train.init_from: {tmp}/gone: not found; expected a checkpoint .pt or a run"),
    "search: init_from another architecture": (lambda t, ck: (["search", QUICK, "--set", f"config.train.init_from={ck}",
                                                               "--set", f"storage.path={t / 's'}"], "--set"),
                                               "--set: config.train.init_from: {ck}: its model does not fit this "
                                               "run's"),
    # Found wrong only once used (the data read): named as the file's, or as --set's where it came from there.
    "train: the file's data file missing": (_config("data:\n  source: npz:gone.npz\n"),
                                            "config.yaml: data.source: gone.npz: file not found"),
    "train: --set's data file missing": (lambda t, ck: (
        ["train", (t / "c.yaml").write_text("train: {epochs: 1}\n") and t / "c.yaml",
         "--set", f"data.source=npz:{t / 'x.npz'}"], "--set"), "--set: data.source: {tmp}/x.npz: file not found"),
    "data info: --set's folder for an experiment": (lambda t, ck: (
        ["data", "info", QUICK, "--set", f"config.data.source=folder:{t / 'none'}"], "--set"),
        "--set: config.data.source: {tmp}/none: directory not found"),
    "data export: the file's source no folder": (lambda t, ck: (
        ["data", "export", (t / "c.yaml").write_text("data: {source: synthetic}\n") and t / "c.yaml"], "c.yaml"),
        "c.yaml: data.source: 'synthetic'; expected folder:PATH"),
    "retrain: --set's data file missing": (lambda t, ck: (
        ["retrain", (t / "best.yaml").write_text("model: {width: 8}\n") and t / "best.yaml", "--epochs", "1",
         "--set", f"data.source=npz:{t / 'x.npz'}"], "--set"), "--set: data.source: {tmp}/x.npz: file not found"),
    # The model is read before the images, so a mistyped checkpoint is named at once, not after a folder.
    **{f"predict{mode}: a missing checkpoint with a bad image": (lambda t, ck, mode=mode: (
        ["predict", t / "gone.pt", (t / "x.png").write_text("text") and t / "x.png", *mode.split()], "gone.pt"),
        "gone.pt: not found; expected a checkpoint .pt") for mode in ("", " --word", " --text")},
    # A word list is read before the images too, and only reads words.
    **{f"predict{mode}: a missing lexicon with a bad image": (lambda t, ck, mode=mode: (
        ["predict", ck, (t / "x.png").write_text("text") and t / "x.png", mode, "--lexicon", t / "words.txt"],
        "words.txt"), "words.txt: no such file; expected a word list, one word a line")
       for mode in ("--word", "--text")},
    "predict: a lexicon of bad lines": (lambda t, ck: (
        ["predict", ck, t / "x.png", "--word", "--lexicon", (t / "w.txt").write_text("cab\nbad 1 2\n") and t / "w.txt"],
        "w.txt"), "line 2: expected a word, or a word and a count above 0, got 'bad 1 2'"),
    "predict: a lexicon of other letters": (lambda t, ck: (
        ["predict", ck, t / "x.png", "--text", "--lexicon", (t / "w.txt").write_text("xyz\n") and t / "w.txt"],
        "w.txt"), "no word of the model's letters (abcdef)"),
    "predict: a lexicon for single letters": (lambda t, ck: (["predict", ck, t / "x.png", "--lexicon", t / "w.txt"],
                                                             "--lexicon"),
                                              "a word list reads words; expected --word or --text with it"),
    "predict: an overlay for single letters": (lambda t, ck: (["predict", ck, t / "x.png", "--overlay", t / "drawn"],
                                                              "--overlay"), "expected --word or --text with it"),
    "predict: an overlay folder that is a file": (lambda t, ck: (
        ["predict", ck, t / "x.png", "--text", "--overlay", (t / "o.png").write_text("mine") and t / "o.png"],
        "o.png"), "expected a directory for the drawn images; it is a file"),
    # a file where runs would go: refused by name, not a NotADirectoryError traceback
    "train: log.out_dir is a file": (lambda t, ck: (["train", "--smoke-test", "--set",
                                                     f"log.out_dir={(t / 'o.txt').write_text('mine') and t / 'o.txt'}"],
                                                    "o.txt"),
                                     "log.out_dir: {tmp}/o.txt: expected a directory to write runs in"),
    "train: log.out_dir is a link to nothing": (lambda t, ck: (["train", "--smoke-test", "--set",
                                                                f"log.out_dir={_link_to_nothing(t)}"], "runs"),
                                                "log.out_dir: {tmp}/runs: expected a directory to write runs in (a "
                                                "link to nothing stands in its path)"),
    # found before a weight is made, not in the allocator's traceback (or the kernel's kill) later
    "train: a model past the machine's memory": (lambda t, ck: (["train", "--smoke-test", "--set",
                                                                 f"log.out_dir={t}", "model.width=100000"],
                                                                "model.width"),
                                                 "model: 2,790,016,500,890 parameters need about 51,968 GiB to train"),
    "train: a model past what torch can size": (lambda t, ck: (["train", "--smoke-test", "--set",
                                                                f"log.out_dir={t}", "model.width_growth=1e12"],
                                                               "model.width_growth"),
                                                "model: too large for torch to build; expected a smaller model.width"),
    # refused before the data is read and Ray started, not after, as "cannot create"
    "search: storage.path is a file": (lambda t, ck: (["search", QUICK, "--set", "storage.path="
                                                       f"{(t / 'o.txt').write_text('mine') and t / 'o.txt'}"], "o.txt"),
                                       "storage.path: {tmp}/o.txt is a file; expected a directory to write searches"),
    "evaluate: --out-dir is a file": (lambda t, ck: (["evaluate", ck, "--data", "synthetic", "--out-dir",
                                                      (t / "o.txt").write_text("mine") and t / "o.txt"], "o.txt"),
                                      "--out-dir: {tmp}/o.txt: expected a directory to write runs in"),
    # evaluate's own options are named, and it has no --resume to suggest
    "evaluate: a --name with a path in it": (lambda t, ck: (["evaluate", ck, "--data", "synthetic", "--out-dir", t,
                                                             "--name", "../up"], "../up"),
                                             "--name: expected letters, digits"),
    "evaluate: a --name that exists": (lambda t, ck: (["evaluate", ck, "--data", "synthetic", "--out-dir", t,
                                                       "--name", (t / "done").mkdir() or "done"], "done"),
                                       "{tmp}/done: run directory exists already; expected a new --name"),
    # the output file given where the config goes: "file not found" left the user guessing
    "data preview: its PNG as the config": (lambda t, ck: (["data", "preview", t / "grid.png"], "grid.png"),
                                            "expected a training config or experiment .yaml; the file data "
                                            "preview writes goes after --out"),
    # a read that fails (here EIO) is named as a folder or an unreadable file is, not an OSError traceback
    "train: a config that fails to read": (lambda t, ck: (["train", "/proc/self/mem"], "/proc/self/mem"),
                                           "expected a readable YAML text file (OSError)"),
    # a name with a newline is written as an escape: the error stays one line
    "predict: an image named with a newline": (lambda t, ck: (["predict", ck, t / "a\nb.png"], "a\\nb.png"),
                                               "a\\nb.png: file not found"),
    "checkpoint: not ours": (_checkpoint(lambda t, ck: torch.save({"w": torch.zeros(3)}, t / "n.pt") or t / "n.pt"),
                             "not an alphabet checkpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line(cli, checkpoint, tmp_path, case):
    make, fragment = CASES[case]
    args, named = make(tmp_path, checkpoint)
    before = snapshot(tmp_path)
    result = cli(*args)
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert fragment.format(tmp=tmp_path, ck=checkpoint) in lines[0], lines[0]
    assert Path(named).name in lines[0], lines[0]
    assert snapshot(tmp_path) == before  # nothing that existed was overwritten


def test_the_suite_has_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_a_cluster_address_that_does_not_answer_is_refused_at_once(cli, tmp_path, monkeypatch):
    # Ray itself would retry for minutes, and the search would have made its run directory by then.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    quick = Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"
    storage = ["--set", f"storage.path={tmp_path / 'searches'}"]
    started = time.monotonic()
    result = cli("search", quick, "--address", f"127.0.0.1:{port}", *storage)
    assert time.monotonic() - started < 30
    assert result.code == 2 and result.err.startswith(f"alphabet: error: --address: no Ray head answers at "
                                                      f"'127.0.0.1:{port}'"), result.err
    for address in ("headnode", "http://127.0.0.1:8265"):  # the second, as Ray prints it for Ray Jobs
        monkeypatch.setenv("RAY_ADDRESS", address)
        result = cli("search", quick, *storage)
        assert result.code == 2 and "RAY_ADDRESS: expected HOST:PORT" in result.err, result.err
    assert not (tmp_path / "searches").exists()


def test_a_cluster_address_where_something_else_answers_is_refused_at_once(cli, tmp_path):
    # A web server (a dashboard's port, say) answers a connection; Ray then waited over two minutes.
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # its log would go to the stderr under test
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        quick = Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"
        address = f"127.0.0.1:{server.server_port}"
        for given, expected in ((address, "not the dashboard's"), (f"ray://{address}", "Ray Client's port")):
            started = time.monotonic()
            result = cli("search", quick, "--address", given, "--set", f"storage.path={tmp_path / 'searches'}")
            assert time.monotonic() - started < 30
            assert result.code == 2 and result.err.startswith(f"alphabet: error: --address: something answers at "
                                                              f"{given!r}, but not as Ray does"), result.err
            assert expected in result.err
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "searches").exists()


def test_storage_that_cannot_be_reached_is_refused_before_any_work(cli, tmp_path, s3_server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    quick = Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"
    cases = {f"s3://bucket/searches?endpoint_override=127.0.0.1:{port}&scheme=http": "cannot reach",
             f"s3://nobucket/searches?endpoint_override={s3_server}&scheme=http": "no bucket 'nobucket'"}
    for uri, fragment in cases.items():
        started = time.monotonic()
        result = cli("search", quick, "--set", f"storage.path={uri}")
        assert time.monotonic() - started < 20  # before the data is made and Ray started
        assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
        assert result.err.startswith("alphabet: error: --set: storage.path: ") and fragment in result.err, result.err


def test_a_remote_search_is_not_resumed_without_its_study(cli, tmp_path, monkeypatch):
    # A remote run's Optuna study stays on the machine that started it; resumed elsewhere, TPE would
    # silently start afresh. file:// takes the remote path without a server.
    from search.experiment import load_experiment
    from search.runner import save_experiment
    from search.storage import RunLocation

    monkeypatch.chdir(tmp_path)
    location = RunLocation.parse(f"file://{tmp_path}/bucket/quick")
    save_experiment(load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "quick.yaml"), location)
    shutil.rmtree(tmp_path / "runs")  # as on another machine: the bucket's files, no local folder
    result = cli("search", "--resume", location.uri)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
    assert f"{location.uri}: its Optuna study is not on this machine" in result.err


def test_a_search_s_missing_data_names_the_experiment_and_its_key(cli, tmp_path, monkeypatch):
    # own_letters.yaml reads folder:letters unless told otherwise: the error must say which key to --set.
    monkeypatch.chdir(tmp_path)
    own = Path(__file__).resolve().parents[1] / "experiments" / "own_letters.yaml"
    result = cli("search", own)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result.err
    assert f"{own}: config.data.source: letters: directory not found" in result.err, result.err
    # Relative, so where it was looked for is said: a search resumed from another folder looks there.
    assert f"(a relative path, so read from the current folder {tmp_path.resolve()})" in result.err, result.err
    assert not (tmp_path / "runs").exists()
