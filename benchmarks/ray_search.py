"""Searches under Ray Tune: Ray's overhead on a trial, and Optuna + ASHA against random
search + FIFO on femnist."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alphabet.config import load_config, parse_overrides
from alphabet.data import load_splits
from alphabet.engine import Trainer
from alphabet.errors import UserError
from alphabet.train import evaluate_split
from benchmarks.common import (
    CUDA,
    ROOT,
    Bench,
    Skipped,
    tiled,
)
from benchmarks.throughput import RETRAIN_SETS
from search.experiment import AshaSettings, load_experiment
from search.runner import load_saved_experiment
from search.storage import RunLocation

# --- Ray overhead: one trial under Tune against the same training in a plain loop -------------

OVERHEAD_SETS = ["data.case=lower", "data.synthetic_size=6000", "data.synthetic_test_size=520",
                 "data.val_fraction=0.15", "model.width=16", "log.progress=never"]
SMOKE_OVERHEAD_SETS = ["data.synthetic_size=1040", "data.synthetic_test_size=260"]


def _plain_seconds(sets: list[str], epochs: int) -> tuple[float, int]:
    """The trial's work (train an epoch, score validation) without Ray, on one thread as a trial has:
    its seconds, and the letters it trained on."""
    config = load_config(None, sets + [f"train.epochs={epochs}"])
    splits = load_splits(config.data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        trainer = Trainer(config, splits.train)
        while trainer.epoch < epochs:
            trainer.train_epoch()
            evaluate_split(trainer, splits.val)
        return time.perf_counter() - t0, len(splits.train)
    finally:
        torch.set_num_threads(threads)


def _trial_reports(run_dir: Path) -> list[dict]:
    """Every epoch's report of every trial of a search, in time order (Tune's result.json files)."""

    reports = [json.loads(line) for path in run_dir.glob("trial_*/result.json")
               for line in path.read_text().splitlines() if line.strip()]
    return sorted(reports, key=lambda r: r["timestamp"])


def bench_overhead(bench: Bench) -> str:
    import yaml

    epochs = bench.pick(2, 6, 15)  # 15 epochs of this trial take about a minute on one core
    sets = OVERHEAD_SETS + (SMOKE_OVERHEAD_SETS if bench.smoke else [])
    plain, letters = _plain_seconds(sets, epochs)
    config = parse_overrides(sets + [f"log.figures_every={epochs}"])
    with tempfile.TemporaryDirectory() as tmp:
        experiment = {"config": config, "space": {"train.lr": {"type": "loguniform", "low": 0.002, "high": 0.004}},
                      "search": {"num_samples": 1, "max_concurrent": 1},
                      "asha": {"max_t": epochs, "grace_period": epochs}, "resources": {"cpus_per_trial": 1},
                      "storage": {"path": tmp, "name": "overhead"}}
        path = Path(tmp) / "overhead.yaml"
        path.write_text(yaml.safe_dump(experiment))
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "alphabet", "search", str(path)], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        total = time.time() - t0
        rows = _trial_reports(Path(tmp, "overhead"))
    first = rows[0]
    first_start = first["timestamp"] - first["time_this_iter_s"] - t0
    trial = rows[-1]["time_total_s"]
    share = (trial - plain) / trial
    # Tune times each iteration from report to report; the trial times its own epoch (train +
    # validation). The difference is what Tune adds: start-up before epoch 1, then per report
    # the TensorBoard scalars, the checkpoint and the round trip to the driver.
    startup = first["time_this_iter_s"] - first["epoch_seconds"]
    per_report = [r["time_this_iter_s"] - r["epoch_seconds"] for r in rows[1:]]
    direct = startup + sum(per_report)
    return ("## Ray overhead: one trial under Tune against the same work in a plain loop\n\n"
            f"{epochs} epochs of a width-16 CNN on {letters:,} synthetic letters (train + validation each "
            "epoch, one thread), first in a plain loop, then as the only trial of `alphabet search` (OptunaSearch, "
            "ASHA, a `tune.report` with a `tune.Checkpoint` and TensorBoard scalars every epoch).\n\n"
            "| | seconds |\n|---|---|\n"
            f"| plain loop | {plain:.1f} |\n"
            f"| the trial, as Tune timed it | {trial:.1f} |\n"
            f"| difference, as a share of the trial | {100 * share:.1f}% |\n"
            f"| inside the trial: start-up before epoch 1 (model, optimiser, TensorBoard writer) | {startup:.2f} |\n"
            f"| inside the trial: each later report with its checkpoint (mean of {len(per_report)}) | "
            f"{np.mean(per_report) if per_report else 0:.3f} |\n"
            f"| start-up, reports and checkpoints: share of the trial | **{100 * direct / trial:.1f}%** |\n"
            f"| `alphabet search` launched → first trial started (imports, data, Ray start-up) | {first_start:.1f} |\n"
            f"| whole command, start to exit (includes results, summary figure, Ray shutdown) | {total:.1f} |\n\n"
            "The difference between the two runs also holds run-to-run noise in the epochs themselves; the "
            "rows inside the trial are Tune's own timings (`time_this_iter_s`) minus the trial's "
            "(`epoch_seconds`).")


# --- search efficiency: Optuna + ASHA against random search + FIFO, same num_samples -----------

def _best_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """(trial-epochs spent, best metric so far) over every report of every trial, in time order."""
    best, curve = float("-inf"), []
    for spent, report in enumerate(_trial_reports(run_dir), 1):
        best = max(best, report[metric])
        curve.append((spent, best))
    return curve


RANDOM_ARM_SEED_OFFSET = 1000
# name -> (experiment file, what its space is): the section, figure and runs are named after it
SEARCH_SPACES = {"tuned": ("femnist_search.yaml", "narrowed around what the first femnist searches found"),
                 "wide": ("femnist_search_wide.yaml", "a first search's space: two optimisers, three decades "
                          "of learning rate, batch norm on or off, augmentation from none to strong"),
                 "wide_bn": ("femnist_search_wide_bn.yaml", "the wide space with batch norm fixed on, the choice "
                             "that decided the wide space's searches")}


def search_variant(bench: Bench, space: str = "tuned", trials: int | None = None,
                   grace: int | None = None, seeds: tuple[int, ...] = (0,),
                   startup: int | None = None) -> tuple[int, int, int, str]:
    """(trials, max_t, grace period, name suffix) of a search benchmark; the suffix names what differs
    from the default, so each variant, and each set of sampler seeds, keeps its own section, figure and
    runs: more seeds of a setting add a section rather than replace the first."""
    default_trials, max_t, default_grace = bench.pick((2, 2, 1), (8, 6, 2), (16, 12, 3))
    suffix = "" if space == "tuned" else f"_{space}"
    suffix += f"_{trials}trials" if trials not in (None, default_trials) else ""
    suffix += f"_grace{grace}" if grace not in (None, default_grace) else ""
    suffix += f"_startup{startup}" if startup is not None else ""
    suffix += f"_seeds{'-'.join(map(str, seeds))}" if seeds != (0,) else ""
    return trials or default_trials, max_t, grace or default_grace, suffix


def asha_floor(max_t: int, grace: int, rf: int) -> float:
    """The least share of FIFO's trial-epochs ASHA can spend: every trial runs to the first rung and
    exactly 1/rf of those at each rung go on to the next."""
    stops = AshaSettings(max_t, grace, rf).rungs() + [max_t]
    return sum((stops[k] - (stops[k - 1] if k else 0)) / rf**k for k in range(len(stops))) / max_t


def check_baseline(arm_dir: Path, sets: list[str], experiment: Path) -> None:
    """Raise UserError unless the search in arm_dir is the random + FIFO arm these settings would run:
    reusing it is sound only because that arm never reads TPE's settings."""
    want = load_experiment(experiment, sets)
    try:
        got = load_saved_experiment(RunLocation.parse(str(arm_dir)))
    except UserError as e:
        raise UserError(f"--search-baseline: {e.args[0]}") from None
    for section in ("search", "asha"):
        wanted, found = (dataclasses.asdict(getattr(e, section)) for e in (want, got))
        for key in (k for k in wanted if k != "startup_trials"):
            if found[key] != wanted[key]:
                raise UserError(f"--search-baseline: {arm_dir}/experiment.yaml: {section}.{key} is "
                                f"{found[key]!r}; expected {wanted[key]!r}")
    if got.space != want.space or got.config != want.config:
        raise UserError(f"--search-baseline: {arm_dir}/experiment.yaml: its space or config differs from "
                        f"{experiment.relative_to(ROOT)}'s; expected the same search")
    if not list(arm_dir.glob("trial_*/result.json")):
        raise UserError(f"--search-baseline: {arm_dir}: no trial results; expected a finished search")


def bench_search(bench: Bench, seeds: tuple[int, ...] = (0,), space: str = "tuned", trials: int | None = None,
                 grace: int | None = None, startup: int | None = None, baseline: Path | None = None) -> str:
    femnist = bench.letters()
    samples, max_t, grace, suffix = search_variant(bench, space, trials, grace, seeds, startup)
    file_name, space_text = SEARCH_SPACES[space]
    experiment = ROOT / "benchmarks" / "configs" / file_name
    # (seed offset, settings). TPE draws its start-up trials with a RandomSampler of its own seed: with
    # one seed for both arms, random search's first trials would be TPE's, and a best among them would
    # be "reached" for free.
    tpe = [] if startup is None else [f"search.startup_trials={startup}"]
    arms = {"Optuna (TPE) + ASHA": (0, ["search.searcher=optuna", "search.scheduler=asha", *tpe]),
            "random + FIFO": (RANDOM_ARM_SEED_OFFSET, ["search.searcher=random", "search.scheduler=fifo"])}
    # Kept, not temporary: each arm is a search RUN_DIR for `alphabet trials`, TensorBoard or a retrain.
    runs = bench.runs / f"bench-search-efficiency{suffix}" / time.strftime("%Y%m%d-%H%M%S")
    # The experiment files name femnist's path from the repository; a smoke test's stand-in is elsewhere.
    # Only then are they overridden: arms saved before are reused (--search-baseline) only if their
    # experiment.yaml is this run's, data source included.
    stand_in_data = [f"config.data.source=npz:{femnist}"] if bench.smoke else []
    smoke_flag = ["--smoke-test"] if bench.smoke else []  # the search's own toy sizes; the arm's settings win

    def arm_settings(seed: int, offset: int, sets: list[str]) -> list[str]:
        return sets + [f"search.seed={seed + offset}", f"search.num_samples={samples}", *stand_in_data,
                       f"asha.max_t={max_t}", f"asha.grace_period={grace}", "search.time_budget_s=null"]

    base_index = list(arms).index("random + FIFO")
    if baseline is not None:  # check every seed's before spending an hour on the first
        offset, sets = arms["random + FIFO"]
        for seed in seeds:
            check_baseline(baseline / f"seed{seed}" / f"arm{base_index}", arm_settings(seed, offset, sets),
                           experiment)
    results = []  # (seed, {arm: curve}, {arm: wall seconds, None if reused}), one pair per sampler seed
    for seed in seeds:
        curves, walls = {}, {}
        for i, (arm, (offset, sets)) in enumerate(arms.items()):
            if baseline is not None and i == base_index:
                curves[arm], walls[arm] = _best_curve(baseline / f"seed{seed}" / f"arm{i}",
                                                      "val_balanced_accuracy"), None
                continue
            t0 = time.time()
            storage = [f"storage.path={runs / f'seed{seed}'}", f"storage.name=arm{i}"]
            subprocess.run([sys.executable, "-m", "alphabet", "search", str(experiment), *smoke_flag, "--set",
                            *arm_settings(seed, offset, sets), *storage], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
            walls[arm] = time.time() - t0
            curves[arm] = _best_curve(runs / f"seed{seed}" / f"arm{i}", "val_balanced_accuracy")
        results.append((seed, curves, walls))
    ours_name, base_name = arms
    figure = bench.figures / f"search_efficiency{suffix}.png"
    figure.parent.mkdir(exist_ok=True)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    lowest = 1.0
    for n, (seed, curves, _) in enumerate(results):
        for colour, (arm, curve) in zip(("C0", "C1"), curves.items(), strict=True):
            ax.step([spent for spent, _ in curve], [best for _, best in curve], where="post", color=colour,
                    linestyle=("-", "--", ":", "-.")[n % 4], label=f"{arm}, seed {seed}")
        lowest = min(lowest, curves[base_name][-1][1])
    ax.set(xlabel="trial-epochs spent", ylabel="best validation balanced accuracy",
           title=f"femnist lowercase, {space} space, {samples} trials of up to {max_t} epochs",
           ylim=(max(0.0, lowest - 0.2), 1))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    rows, ratios = [], []
    for seed, curves, walls in results:
        ours, base = curves[ours_name], curves[base_name]
        target = base[-1][1]
        reached = next((spent for spent, best in ours if best >= target), None)
        ratios.append(reached / base[-1][0] if reached else float("inf"))
        verdict = f"{reached}, **{ratios[-1]:.2f}**" if reached else "**not reached**"
        third = base[-1][0] / 3
        at_third = [best for spent, best in ours if spent <= third][-1:] or [float("nan")]
        wall = {arm: "reused" if walls[arm] is None else f"{walls[arm] / 60:.1f} min" for arm in walls}
        rows.append(f"| {seed} | {ours[-1][0]}, {ours[-1][1]:.4f}, {wall[ours_name]} | "
                    f"{base[-1][0]}, {base[-1][1]:.4f}, {wall[base_name]} | {verdict} | {at_third[0]:.4f} |")
    met = sum(r <= 1 / 3 for r in ratios)
    summary = f"Target, at most 1/3 of random + FIFO's trial-epochs: met for {met} of {len(ratios)} sampler seed(s)."
    if len(ratios) > 1:
        median = statistics.median(ratios)  # inf where most seeds did not reach it
        summary += f" Median share: {'not reached' if math.isinf(median) else f'{median:.2f}'}."
    loaded = load_experiment(experiment, [f"search.num_samples={samples}", *stand_in_data, *tpe])
    reused = ("" if baseline is None else f" Random + FIFO's searches are reused from "
              f"`{os.path.relpath(baseline, ROOT)}` (`--search-baseline`; they read none of TPE's settings, and their "
              "experiment.yaml was checked against this run's).")
    kept = os.path.relpath(runs, ROOT)
    return (f"## Search efficiency: Optuna + ASHA against random search + FIFO (femnist lowercase, {space} "
            f"space, {samples} trials, grace {grace}, "
            f"{'' if startup is None else f'{startup} TPE start-up trials, '}"
            f"sampler seeds {', '.join(map(str, seeds))})\n\n"
            f"`benchmarks/configs/{file_name}` (its space {space_text}) with {samples} trials of up to "
            f"{max_t} epochs each "
            f"(ASHA grace period {grace}, reduction factor 3: even pruning perfectly, ASHA spends at least "
            f"{asha_floor(max_t, grace, 3):.2f} of FIFO's trial-epochs), 2 trials at a time, validation on held-out "
            f"writers, {loaded.config.train.schedule} learning-rate schedule. TPE samples its first "
            f"{loaded.startup_trials} trials at random (`search.startup_trials`). Each sampler seed s is one "
            f"pair of searches: `search.seed` s for Optuna, s + {RANDOM_ARM_SEED_OFFSET} for random search, so "
            "that random search does not repeat TPE's start-up trials.\n\n"
            f"| sampler seed | {ours_name}: trial-epochs, best val balanced accuracy, wall time | "
            f"{base_name}: the same | trial-epochs {ours_name} needed to reach random + FIFO's best, "
            f"share of random + FIFO's | {ours_name}'s best within 1/3 of random + FIFO's trial-epochs |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"{summary} The searches are kept in `{kept}`.{reused}\n\n"
            f"![best so far against trial-epochs](figures/search_efficiency{suffix}.png)")


# --- trials sharing one GPU through a real search: the share benchmark's question, asked of Ray ----

RAY_SHARE_TRIALS_PER_GPU = (1, 2, 4, 8)
RAY_SHARE_EPOCHS = 3
RAY_SHARE_WAVES = 2  # each search runs this many trials per place on the GPU, one after another


def _trial_spans(run_dir: Path) -> list[tuple[float, float]]:
    """(start, end) of every trial of a search, in seconds since the epoch, from Tune's reports."""
    spans = {}
    for report in _trial_reports(run_dir):
        start = report["timestamp"] - report["time_total_s"]
        first, _ = spans.get(report["trial_id"], (start, 0.0))
        spans[report["trial_id"]] = (min(first, start), report["timestamp"])
    return list(spans.values())


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    # Tune's timestamps are whole seconds, so a span's ends are each off by up to a second, and a trial
    # that started as another ended can seem to overlap it: overlaps of under a second are not counted.
    events = sorted([(start, 1) for start, _ in spans] + [(end - 1.0, -1) for _, end in spans])
    running, most = 0, 0
    for _, step in events:  # an end sorts before a start at the same time
        running += step
        most = max(most, running)
    return most


def ray_share_search(data: Path, per_gpu: int, out: Path, epochs: int = RAY_SHARE_EPOCHS) -> dict:
    """A random search of ``RAY_SHARE_WAVES * per_gpu`` trials, each asking Ray for one CPU and
    ``1 / per_gpu`` of a GPU, the trials' work being the share benchmark's. Returns its timings.

    The search joins the cluster at RAY_ADDRESS when that is set (as ``alphabet search`` does), so it
    can also be run against a cluster that declares GPUs it does not have: the placement is Ray's
    either way."""
    import yaml

    experiment = {"config": parse_overrides(_ray_share_sets(data) + [f"log.figures_every={epochs}"]),
                  "space": {"train.lr": {"type": "loguniform", "low": 0.002, "high": 0.004}},
                  "search": {"num_samples": RAY_SHARE_WAVES * per_gpu, "max_concurrent": per_gpu,
                             "searcher": "random", "scheduler": "fifo", "time_budget_s": None},
                  "asha": {"max_t": epochs, "grace_period": epochs},
                  "resources": {"cpus_per_trial": 1, "gpus_per_trial": 1 / per_gpu},
                  "storage": {"path": str(out), "name": f"per-gpu-{per_gpu}", "keep_checkpoints": 1}}
    path = out / f"per_gpu_{per_gpu}.yaml"
    path.write_text(yaml.safe_dump(experiment))
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "alphabet", "search", str(path)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    spans = _trial_spans(out / f"per-gpu-{per_gpu}")
    if len(spans) != RAY_SHARE_WAVES * per_gpu:
        raise RuntimeError(f"{per_gpu} per GPU: {len(spans)} trials reported of {RAY_SHARE_WAVES * per_gpu}")
    busy = max(end for _, end in spans) - min(start for start, _ in spans)
    return {"per_gpu": per_gpu, "trials": len(spans), "wall": wall, "busy": busy,
            "trial": float(np.mean([end - start for start, end in spans])), "at_once": _most_at_once(spans),
            "per_hour": len(spans) * 3600 / busy}


def _ray_share_sets(data: Path) -> list[str]:
    """The share benchmark's training settings, on the letters of ``data`` (an npz file)."""
    return [s for s in RETRAIN_SETS if not s.startswith("data.")] + [
        f"data.source=npz:{data}", "data.case=all", "data.val_fraction=0.04", "data.test_fraction=0.01"]


def share_data(path: Path, bench: Bench) -> None:
    """The share benchmark's letters (synthetic, repeated) as an npz file a search can load."""
    letters = tiled(load_splits(load_config(None, RETRAIN_SETS).data).train, bench.pick(5200, 22_000, 66_000))
    np.savez(path, x=letters.images, y=letters.labels, classes=np.array(letters.classes))


def bench_ray_share(bench: Bench) -> str:
    if not CUDA:
        raise Skipped("no GPU here (torch.cuda.is_available() is False)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "letters.npz")
        share_data(data, bench)
        splits = load_splits(load_config(None, _ray_share_sets(data)).data)
        for per_gpu in RAY_SHARE_TRIALS_PER_GPU:
            r = ray_share_search(data, per_gpu, Path(tmp))
            rows.append(f"| {per_gpu} | {r['trials']} | {r['at_once']} | {r['trial']:.1f} | {r['busy']:.1f} | "
                        f"**{r['per_hour']:,.0f}** | {r['wall']:.1f} |")
            print(rows[-1], flush=True)  # a call cut short by the device's time limit still shows these
    return ("## Trials sharing one GPU, through Ray\n\n"
            f"`alphabet search` on {torch.cuda.get_device_name()}: random search, FIFO, "
            f"{RAY_SHARE_WAVES} trials per place on the GPU, each asking for one CPU and `gpus_per_trial: 1/n`. "
            f"Each trial is the \"Trials sharing one GPU\" benchmark's: the default best CNN, {RAY_SHARE_EPOCHS} "
            f"epochs of {len(splits.train):,} images (synthetic letters repeated), batch 128, bf16 autocast, "
            f"validation on {len(splits.val):,} every epoch, with the search's reports, checkpoints and "
            "TensorBoard files. Trials per hour count from the first trial's start to the last one's end; "
            "the command's wall time adds loading the data, starting Ray and writing the results. Both ends of a "
            "trial come from Tune's reports, whose timestamps are whole seconds: \"most running at once\" counts "
            "only overlaps of over a second.\n\n"
            "| trials per GPU (n) | trials | most running at once | one trial (s) | first start to last end (s) | "
            "trials per hour | command (s) |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))
