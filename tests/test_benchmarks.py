"""The benchmark harness: the figures it derives and how it keeps docs/BENCHMARKS.md's sections apart."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def torch_threads():
    """The screens set torch's threads to one, for their own process as for each worker: put back, or
    every test after these would train on one thread."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench():
    from benchmarks import ray_search

    return ray_search


def test_asha_floor_is_the_share_quoted_in_the_readme(bench):
    # rungs 3, 9 of 12: 3 + 6/3 + 3/9 epochs per trial; rungs 1, 3, 9: 1 + 2/3 + 6/9 + 3/27
    assert bench.asha_floor(12, 3, 3) == pytest.approx((3 + 2 + 1 / 3) / 12)
    assert round(bench.asha_floor(12, 3, 3), 2) == 0.44
    assert round(bench.asha_floor(12, 1, 3), 2) == 0.20
    assert bench.asha_floor(12, 12, 3) == 1.0  # no rung below max_t: nothing to prune


def test_each_search_variant_and_seed_set_has_its_own_name(bench):
    from benchmarks.common import Bench

    full = Bench("full")
    names = {bench.search_variant(full, space, trials, grace, seeds)[3]
             for space in ("tuned", "wide") for trials in (None, 32) for grace in (None, 1)
             for seeds in ((0,), (0, 1), (2, 3))}
    assert len(names) == 2 * 2 * 2 * 3
    assert bench.search_variant(full)[3] == ""  # the default run keeps the plain section name
    assert bench.search_variant(full, "wide", 32, 1, (2, 3)) == (32, 12, 1, "_wide_32trials_grace1_seeds2-3")


def test_each_search_space_is_a_valid_experiment_that_differs_from_the_others(bench):
    from search.experiment import load_experiment

    loaded = {name: load_experiment(ROOT / "benchmarks" / "configs" / file_name)
              for name, (file_name, _) in bench.SEARCH_SPACES.items()}
    assert len({repr(e.space) for e in loaded.values()}) == len(loaded)
    assert loaded["wide_bn"].config.model.batch_norm is True
    assert [p.key for p in loaded["wide_bn"].space] == [p.key for p in loaded["wide"].space
                                                          if p.key != "model.batch_norm"]


def test_every_benchmark_config_is_valid():
    # The commands in docs/BENCHMARKS.md name these files: a key renamed in the library must not leave one
    # that fails only when somebody reruns a benchmark.
    import yaml

    from alphabet.config import load_config
    from search.experiment import load_experiment

    files = sorted((ROOT / "benchmarks" / "configs").glob("*.yaml"))
    assert len(files) >= 9
    for path in files:
        if "space" in yaml.safe_load(path.read_text()):
            assert load_experiment(path).space, path
        else:
            assert load_config(str(path), []).data.source, path


def test_trials_sharing_a_gpu_are_timed_from_tunes_reports(bench, tmp_path):
    # Two trials at once, then a third after the first ends: reports as Tune writes them, an epoch each.
    trials = {"a": [(10, 5), (15, 10)], "b": [(11, 5), (16, 10)], "c": [(20, 5), (25, 10)]}
    for trial, reports in trials.items():
        (tmp_path / f"trial_{trial}").mkdir()
        (tmp_path / f"trial_{trial}" / "result.json").write_text("".join(
            json.dumps({"trial_id": trial, "timestamp": t, "time_total_s": total}) + "\n" for t, total in reports))
    spans = sorted(bench._trial_spans(tmp_path))
    assert spans == [(5, 15), (6, 16), (15, 25)]  # start: first report minus the time it had run
    assert bench._most_at_once(spans) == 2  # c starts as a ends: not three at once


def test_a_section_is_replaced_in_place_and_the_others_kept(tmp_path):
    from benchmarks.common import write_section

    doc = tmp_path / "BENCHMARKS.md"
    write_section(doc, "search-seeds0-1", "## first pair\n\nold figures", "cmd a")
    write_section(doc, "search-seeds2-3", "## second pair", "cmd b")
    write_section(doc, "search-seeds0-1", "## first pair\n\nnew figures", "cmd a")
    text = doc.read_text()
    assert "new figures" in text and "old figures" not in text
    assert text.index("first pair") < text.index("second pair")  # replaced where it stood
    assert text.count("<!-- bench:search-seeds0-1 -->") == 1 and "## second pair" in text
    # The same benchmark on a GPU stands beside it under a title of its own.
    write_section(doc, "search-seeds0-1-cuda", "## first pair\n\ngpu figures", "cmd a")
    write_section(doc, "share-cuda", "## Trials sharing one GPU", "cmd c")
    text = doc.read_text()
    assert "## first pair, on a GPU\n\ngpu figures" in text and "## Trials sharing one GPU\n" in text


def test_rung_signal_finds_a_slow_starter_that_halving_would_prune(tmp_path):
    rung_signal = load_script("rung_signal")
    # Nine trials of 9 epochs, Tune's result.json layout; trial 0 starts last and ends best.
    for trial in range(9):
        lines = [json.dumps({"training_iteration": e, "val_balanced_accuracy": (0.1 if trial == 0 and e < 3
                             else 0.5 + 0.1 * (trial == 0) + 0.01 * trial + 0.01 * e)}) for e in range(9, 0, -1)]
        (tmp_path / f"trial_{trial:03d}").mkdir()
        (tmp_path / f"trial_{trial:03d}" / "result.json").write_text("\n".join(lines) + "\n")
    (tmp_path / "trial_009").mkdir()  # a trial stopped early is left out: its curve is not whole
    (tmp_path / "trial_009" / "result.json").write_text(json.dumps({"training_iteration": 1,
                                                                     "val_balanced_accuracy": 0.9}))
    curves = rung_signal.full_curves(tmp_path, "val_balanced_accuracy")
    assert len(curves) == 9 and curves[0][:3] == pytest.approx([0.1, 0.1, 0.63])  # epoch order, not file order
    rows = rung_signal.rung_signal(curves, [1, 3])
    assert [(r["epoch"], r["rank"], r["kept"]) for r in rows] == [(1, 9, False), (3, 1, False)]
    assert rows[1]["rho"] == pytest.approx(1.0)  # at epoch 3 the order is the final one
    losses = [[1 - v for v in curve] for curve in curves]  # a loss ranks the same trials the same way
    assert rung_signal.rung_signal(losses, [1, 3], lower_is_better=True) == rows


def test_a_reused_random_arm_must_be_the_search_this_run_would_have_run(bench, tmp_path):
    from alphabet.errors import UserError
    from search.experiment import load_experiment
    from search.runner import save_experiment
    from search.storage import RunLocation

    experiment = ROOT / "benchmarks" / "configs" / "femnist_search_wide.yaml"
    sets = ["search.searcher=random", "search.scheduler=fifo", "search.seed=1000", "search.num_samples=32",
            "asha.max_t=12", "asha.grace_period=1", "search.time_budget_s=null"]
    arm = tmp_path / "seed0" / "arm1"
    (arm / "trial_000").mkdir(parents=True)
    (arm / "trial_000" / "result.json").write_text("{}\n")
    saved = load_experiment(experiment, [*sets, "search.startup_trials=6"])  # TPE's setting: not compared
    save_experiment(saved, RunLocation.parse(str(arm)))  # as `alphabet search` saves it
    bench.check_baseline(arm, [*sets, "search.startup_trials=12"], experiment)
    for other, named in ((["search.seed=1001"], "search.seed is 1000; expected 1001"),
                         (["asha.grace_period=3"], "asha.grace_period is 1; expected 3"),
                         (["config.train.lr=0.01"], "its space or config differs")):
        with pytest.raises(UserError, match=named):
            bench.check_baseline(arm, sets + other, experiment)
    with pytest.raises(UserError, match="arm1: no such directory; expected a search's RUN_DIR"):
        bench.check_baseline(tmp_path / "seed1" / "arm1", sets, experiment)
    (arm / "trial_000" / "result.json").unlink()  # a search that never reported
    with pytest.raises(UserError, match="no trial results"):
        bench.check_baseline(arm, sets, experiment)


def test_the_command_lists_every_benchmark_and_rejects_an_unknown_one(capsys):
    from benchmarks import ray_search, throughput, training
    from benchmarks.run import BENCHMARKS, main

    with pytest.raises(SystemExit) as shown:
        main(["--help"])
    assert shown.value.code == 0
    written = {f for m in (training, throughput, ray_search) for n, f in vars(m).items() if n.startswith("bench_")}
    assert set(BENCHMARKS.values()) == written  # none written and left out of the command
    shown = capsys.readouterr().out
    assert all(f"\n{name} " in shown for name in BENCHMARKS)  # each one explained in --help
    with pytest.raises(SystemExit) as refused:
        main(["--only", "nosuch"])
    assert "unknown benchmark 'nosuch'" in str(refused.value.code)
    with pytest.raises(SystemExit) as refused:
        main(["--full", "--smoke-test"])
    assert refused.value.code == 2 and "not allowed with argument --full" in capsys.readouterr().err


def test_a_benchmark_that_fails_costs_the_others_nothing_and_the_command_fails(capsys, monkeypatch):
    from benchmarks import run

    def broken(bench):
        raise ZeroDivisionError("a library change broke it")

    monkeypatch.setitem(run.BENCHMARKS, "seed", broken)
    monkeypatch.setitem(run.BENCHMARKS, "retrain", lambda bench: "## A working one\n\nits table")
    with pytest.raises(SystemExit) as ended:
        run.main(["--smoke-test", "--only", "seed,retrain"])
    out, err = capsys.readouterr()
    assert "seed failed (tracebacks above)" in str(ended.value.code)
    assert "ZeroDivisionError: a library change broke it" in err and "seed: FAILED" in out
    assert "## A working one [smoke test: a toy size, not a measurement]" in out and "retrain: " in out
    assert "smoke test: 1 of 2 benchmarks ran" in out


def test_the_validation_screen_scores_the_validation_writers_only(tmp_path, capsys):
    from alphabet.config import load_config
    from alphabet.data.splits import load_splits
    from alphabet.ensemble import load_classifier
    from benchmarks import validation_screen as screen
    assert screen.main(["--smoke-test", "--seeds", "0", "3", "--save", str(tmp_path), "--also-at", "1",
                        "--keep", str(tmp_path / "kept"), "--set", "train.ema_decay=0.9"]) == 0
    out = capsys.readouterr().out
    smoke = load_config(None, screen.SMOKE)
    val = load_splits(smoke.data).val
    for seed in (0, 3):
        saved = np.load(tmp_path / f"seed{seed}.npz")
        assert (saved["y"] == val.labels).all() and saved["probs"].shape == (len(val), len(val.classes))
        assert f"| {seed} | {screen.balanced_accuracy(saved['probs'], saved['y']):.4f} |" in out
    assert f"validation: {len(val)} letters" in out and "| the 2 averaged |" in out
    # The kept checkpoints are the scored models (the average, here): their ensemble gives the saved outputs.
    kept = load_classifier(tmp_path / "kept", torch.device("cpu"))
    saved = np.mean([np.load(tmp_path / f"seed{seed}.npz")["probs"] for seed in (0, 3)], axis=0)
    assert np.allclose(kept.predict_probs(val).numpy(), saved, atol=1e-5)
    with pytest.raises(SystemExit) as refused:  # kept models are never overwritten
        screen.main(["--smoke-test", "--keep", str(tmp_path / "kept")])
    assert refused.value.code == 2 and f"--keep: {tmp_path / 'kept'}: not empty" in capsys.readouterr().err
    assert np.allclose(load_classifier(tmp_path / "kept", torch.device("cpu")).predict_probs(val).numpy(), saved,
                       atol=1e-5)
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(SystemExit) as refused:  # a file where the folder would go: one line, the file kept
        screen.main(["--smoke-test", "--keep", str(tmp_path / "a-file")])
    assert refused.value.code == 2 and "--keep" in capsys.readouterr().err
    assert (tmp_path / "a-file").read_text() == "mine"
    # Midway, the average and the weights it averages are both scored.
    assert re.search(r"^\| 3 \| 1 \| 0\.\d{4} \| 0\.\d{4} \|$", out, re.M)
    with pytest.raises(SystemExit) as refused:
        screen.main(["--smoke-test", "--set", "data.val_fraction=0"])
    assert refused.value.code == 2
    assert "--smoke-test: data.val_fraction: expected a value > 0" in capsys.readouterr().err


def test_the_validation_screen_cross_validates_over_folds_and_compares(tmp_path, capsys):
    from alphabet.config import load_config
    from alphabet.data.splits import load_splits
    from benchmarks import validation_screen as screen
    assert screen.main(["--smoke-test", "--folds", "3", "--seeds", "0", "--save", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert all(re.search(rf"^seed 0, fold {k} of 3: 0\.\d{{4}} in \d+ s$", err, re.M) for k in (1, 2, 3))
    pool = load_splits(load_config(None, [*screen.SMOKE, "data.val_fraction=0"]).data).train
    saved = np.load(tmp_path / "a" / "seed0.npz")
    # Every training letter scored once: the validation split's letters train too, the test letters never.
    assert sorted(saved["y"]) == sorted(pool.labels) and set(saved["fold"]) == {0, 1, 2}
    first = screen.balanced_accuracy(saved["probs"], saved["y"])
    assert re.search(rf"^\| 0 \| 0\.\d{{4}} \| 0\.\d{{4}} \| 0\.\d{{4}} \| {first:.4f} \| \d+ \|$", out, re.M)
    assert f"cross-validation: {len(pool)} letters, in 3 folds" in out
    assert screen.main(["--smoke-test", "--folds", "3", "--seeds", "1", "--against", str(tmp_path / "a"),
                        "--save", str(tmp_path / "b")]) == 0
    second = np.load(tmp_path / "b" / "seed1.npz")
    assert np.array_equal(second["y"], saved["y"])  # the same folds for another seed
    gap = screen.balanced_accuracy(second["probs"], second["y"]) - first
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("difference from --against"))
    assert line.startswith(f"difference from --against (1 seed(s)): {gap:+.4f} (95% CI ")
    assert line.endswith("; one seed a side: the seed's own luck is not in it)")
    for argv, fragment in ((["--folds", "2", "--against", str(tmp_path / "a")], "not the same letters"),
                           (["--folds", "3", "--against", str(tmp_path)], "no seed*.npz"),
                           (["--folds", "1"], "--folds: expected an integer >= 2"),
                           (["--folds", "3", "--also-at", "1"], "--also-at: only without --folds"),
                           (["--against", str(tmp_path / "a")], "--against: only with --folds"),
                           (["--folds", "3", "--seeds", "0", "--save", str(tmp_path / "a")],
                            f"--save: {tmp_path / 'a' / 'seed0.npz'} exists")):
        with pytest.raises(SystemExit) as refused:  # before any training
            screen.main(["--smoke-test", *argv])
        assert refused.value.code == 2 and fragment in capsys.readouterr().err
    assert np.array_equal(np.load(tmp_path / "a" / "seed0.npz")["probs"], saved["probs"])  # kept as it was


def test_a_fold_screen_stopped_part_way_goes_on_from_its_finished_folds(tmp_path, capsys):
    from benchmarks import validation_screen as screen
    argv = ["--smoke-test", "--folds", "3", "--seeds", "0", "--save", str(tmp_path / "a")]
    assert screen.main(argv) == 0
    whole = np.load(tmp_path / "a" / "seed0.npz")
    # As if stopped before its end: the third fold and the pooled file never written.
    (tmp_path / "a" / "seed0.npz").unlink()
    (tmp_path / "a" / "runs" / "seed0-fold2.npz").unlink()
    first = (tmp_path / "a" / "runs" / "seed0-fold0.npz").stat().st_mtime_ns
    capsys.readouterr()
    assert screen.main(argv) == 0
    err = capsys.readouterr().err
    assert re.search(r"^seed 0, fold 1 of 3: 0\.\d{4}, from .*seed0-fold0\.npz$", err, re.M)
    assert re.search(r"^seed 0, fold 3 of 3: 0\.\d{4} in \d+ s$", err, re.M)  # the one left, trained
    assert (tmp_path / "a" / "runs" / "seed0-fold0.npz").stat().st_mtime_ns == first
    again = np.load(tmp_path / "a" / "seed0.npz")
    assert np.array_equal(again["y"], whole["y"]) and np.array_equal(again["fold"], whole["fold"])
    assert np.allclose(again["probs"], whole["probs"], atol=1e-5)  # the retrained fold, seeded, matches too
    # Another screen's settings never mix into these folds.
    (tmp_path / "a" / "seed0.npz").unlink()
    with pytest.raises(SystemExit) as refused:
        screen.main([*argv, "--set", "train.lr=0.01"])
    assert refused.value.code == 2 and "holds a fold screened with other settings" in capsys.readouterr().err


def test_a_fold_trains_on_the_capitals_of_its_own_training_writers_only(tmp_path):
    from test_auxiliary import two_case_npz

    from alphabet.config import DataConfig
    from alphabet.data.splits import load_splits
    from benchmarks import validation_screen as screen
    splits = load_splits(DataConfig(source=two_case_npz(tmp_path / "d.npz"), case="lower", auxiliary_case="upper",
                                    test_fraction=0.2, val_fraction=0))
    for fold in range(4):
        part = screen.held_out_fold(splits, 4, fold, seed=1)
        assert set(part.auxiliary.writers) == set(part.train.writers)  # none of the held-out writers' capitals
        assert not set(part.val.writers) & set(part.train.writers) and part.val.classes == ["a", "b"]


def test_a_fold_screen_keeps_each_folds_model_and_they_are_scored_with_each_writers_statistics(tmp_path, capsys):
    from benchmarks import validation_screen as screen
    from benchmarks import writer_adaptation as adaptation
    save, keep = tmp_path / "save", tmp_path / "keep"
    argv = ["--smoke-test", "--folds", "2", "--seeds", "0", "--save", str(save), "--keep", str(keep)]
    assert screen.main(argv) == 0
    kept = sorted(p.relative_to(keep).as_posix() for p in keep.rglob("*.pt"))
    assert kept == ["seed-0/fold-0/checkpoints/last.pt", "seed-0/fold-1/checkpoints/last.pt"]
    # The kept models are the screened ones: rebuilt on their folds, they give the saved outputs.
    run = adaptation.score_seed(adaptation.kept_folds(keep)[0], 1.0)
    saved = np.load(save / "seed0.npz")
    assert np.array_equal(run["y"], saved["y"]) and np.allclose(run["plain"], saved["probs"], atol=1e-5)
    assert not np.allclose(run["adapted"], run["plain"], atol=1e-3)
    capsys.readouterr()
    assert adaptation.main([str(keep), "--strength", "0.5"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\| 0 \| 0\.\d{4} \| 0\.\d{4} \| [+-]0\.\d{4} \|$", out, re.M), out
    assert "; strength 0.5" in out and "difference, the mean over 1 seed(s): " in out
    # Stopped after fold 1 (its outputs and model gone): the rerun trains fold 2 of 2 only, fold 1's model kept.
    first = (keep / kept[0]).stat().st_mtime_ns
    for path in (save / "seed0.npz", save / "runs" / "seed0-fold1.npz", keep / kept[1]):
        path.unlink()
    assert screen.main(argv) == 0
    err = capsys.readouterr().err
    assert "fold 1 of 2: " in err and "from " in err and re.search(r"^seed 0, fold 2 of 2: .* in \d+ s$", err, re.M)
    assert (keep / kept[0]).stat().st_mtime_ns == first and (keep / kept[1]).exists()
    # A model kept for a fold whose outputs are gone is never trained over.
    (save / "seed0.npz").unlink()
    (save / "runs" / "seed0-fold1.npz").unlink()
    with pytest.raises(SystemExit) as refused:
        screen.main(argv)
    assert refused.value.code == 2 and f"--keep: {keep / kept[1]} exists" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        adaptation.main([str(tmp_path)])
    assert refused.value.code == 2 and "no seed-N/fold-K/checkpoints/last.pt" in capsys.readouterr().err
    # A missing fold would leave the next one's model to be scored on its letters: refused.
    shutil.rmtree(keep / "seed-0" / "fold-0")
    with pytest.raises(SystemExit) as refused:
        adaptation.main([str(keep)])
    assert refused.value.code == 2 and "kept folds [1]; expected every fold from 0" in capsys.readouterr().err
    assert adaptation.main(["--smoke-test"]) == 0  # its own 2-fold screen, kept in a folder it removes
    assert "difference, the mean over 1 seed(s): " in capsys.readouterr().out


def snapshot(*folders: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for folder in folders if folder.exists() for p in folder.rglob("*")}


def run_smoke_test(names: list[str], capsys) -> str:
    """The output of `benchmarks/run.py --smoke-test --only NAMES`, checked to have run every one of them
    that can run here, and to have left the document, its figures and the kept runs as they were."""
    from benchmarks.run import main

    kept = (ROOT / "docs", ROOT / "runs" / "bench-search-efficiency")
    before = snapshot(*kept)
    main(["--smoke-test", "--only", ",".join(names)])  # in this process: its imports are made already
    out = capsys.readouterr().out
    # What may be missing here; femnist's letters may not: the smoke test brings its own.
    cannot = set() if torch.cuda.is_available() else {"gpu", "share", "rayshare"}
    if importlib.util.find_spec("wordfreq") is None:
        cannot |= {"lexicon", "lexicon-text"}
    if any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxscript", "onnxruntime")):
        cannot.add("inference")
    skipped = set(re.findall(r"^([a-z-]+): skipped: ", out, re.M))
    ran = set(re.findall(r"^([a-z-]+): [0-9.]+ s$", out, re.M))
    assert skipped == cannot & set(names) and ran == set(names) - cannot, out[-3000:]
    assert out.count("[smoke test: a toy size, not a measurement]") == len(ran)
    assert f"smoke test: {len(ran)} of {len(names)} benchmarks ran" in out
    assert snapshot(*kept) == before  # docs/BENCHMARKS.md, docs/figures and the kept searches untouched
    return out


# The smoke tests that take longest (8 to 12 s each on 2 cores): the data path, on both pipelines; the
# exported files, each made by torch.export; and letters framed as image files, words and notes, by the
# library code that tests/test_cli.py, test_image_framing.py and test_segment.py test in CI.
LONGEST_SMOKE_TESTS = ("datapath", "inference", "framing", "words", "text")


@pytest.mark.slow
def test_every_benchmark_runs_its_smoke_test_without_touching_the_document(capsys):
    # All but those and the two that start `alphabet search` (make test-all runs them, below): a benchmark
    # that a library change broke fails here, not when somebody reruns it for an hour.
    from benchmarks.run import BENCHMARKS

    names = [name for name in BENCHMARKS if name not in ("overhead", "search", *LONGEST_SMOKE_TESTS)]
    out = run_smoke_test(names, capsys)
    # The femnist benchmarks ran on the stand-in letters, split by writer as femnist's are.
    assert "ECE over 15 bins" in out and "| seed 0 |" in out and "| the 2 averaged |" in out


@pytest.mark.slowest  # about 45 s; the library code they run is tested in CI (LONGEST_SMOKE_TESTS says where)
def test_the_longest_benchmark_smoke_tests_run(capsys):
    out = run_smoke_test(list(LONGEST_SMOKE_TESTS), capsys)
    assert re.search(r"reads the \d+ validation writers' letters written as \d+ words", out)


@pytest.mark.slowest
def test_the_benchmarks_that_start_searches_run_their_smoke_test(capsys):
    out = run_smoke_test(["overhead", "search"], capsys)
    assert "| `alphabet search` launched → first trial started" in out
    assert "with 2 trials of up to 2 epochs each" in out
