"""Benchmarks behind docs/BENCHMARKS.md. One command runs them all, quick or full:

    python benchmarks/run.py            # quick mode (minutes on 2 CPU cores)
    python benchmarks/run.py --full     # full mode
    python benchmarks/run.py --only datapath,seed
    python benchmarks/run.py --smoke-test   # every benchmark's code in seconds each; measures nothing

``--smoke-test`` runs each benchmark at a toy size, the femnist ones on synthetic letters saved as
femnist's are, and writes to a scratch document that it deletes: docs/BENCHMARKS.md is not touched.

datapath  images/s of the on-device batch pipeline against per-sample PIL in a DataLoader
seed      time to accuracy: the seed's recipe against the project's default (femnist)
schedules one-cycle against cosine with a short warmup: accuracy and time to the seed's best (femnist)
variants  validation accuracy of the searched best: fp32 against bf16 autocast, with the training
          writers' capitals as auxiliary classes, and one-cycle against cosine at 12 and 60 epochs (femnist)
batch     validation accuracy of the searched best's retrain recipe at batch 128 against batch 512
          with the lr scaled by the square root and linearly (femnist)
tta       test-time augmentation: validation accuracy of the searched best with several view sets,
          single models and their ensemble (femnist)
calibration  the searched best's calibration on the validation writers (ECE, letters kept at p >= 0.9),
          before and after a temperature fitted on other validation writers (femnist)
framing   the validation writers' letters as scans, photos and transparent PNGs, read back as
          `alphabet predict` reads image files: accuracy against the letters as stored (femnist)
words     the validation writers' letters written side by side as words, split and read back
          as `alphabet predict --word` reads them (femnist)
text      the same words laid out as notes of several lines, parted into lines and words and read
          as `alphabet predict --text` reads them (femnist)
lexicon   English words written with the validation writers' letters, read letter by letter and as
          `alphabet predict --word --lexicon` reads them, in English word lists (femnist; needs
          `pip install wordfreq==3.1.1`, for this benchmark only)
lexicon-text  lines of English words, their spaces decided by the gaps alone and, where the gaps
          cannot tell, by an English word list, as `alphabet predict --text --lexicon` decides them
          (femnist; needs wordfreq, as lexicon)
overhead  Ray's share of a trial, and the time from `alphabet search` to the first trial
search    Optuna + ASHA against random + FIFO: best accuracy per trial-epoch (femnist);
          --search-seeds 0,1,2 runs one pair of searches per sampler seed; --search-space
          tuned (femnist_search.yaml, narrowed by earlier searches) or wide (a first search's space);
          --search-startup N sets TPE's start-up trials, and --search-baseline RUNS reuses the
          random + FIFO arms of an earlier run of the same setting (they read none of TPE's settings);
          benchmarks/rung_signal.py then reads its kept random + FIFO searches for what ASHA's rungs see
retrain   epochs/s of the default best CNN at EMNIST-letters size, projected to 500 epochs
inference letters/s of the recipe's CNN, one and five models, as the library scores them and as
          `alphabet export`'s .pt2 and .onnx files do (ONNX Runtime); needs onnx, onnxscript and onnxruntime
files     image files framed per second, one at a time against over one process per core
synthetic letters per second that the default data source draws, on one thread and on all of torch's
profile   torch.profiler: which ops a training step spends its time in (what bounds the above);
          on a GPU, how busy its kernels keep it
gpu       (CUDA only) bf16 autocast, channels_last, torch.compile and batch size, each measured
          at EMNIST-letters size and projected to a 500-epoch retrain
share     (CUDA only) trials per hour with 1, 2, 4 and 8 trials sharing one GPU
rayshare  (CUDA only) the same through `alphabet search`: Ray placing trials with gpus_per_trial 1/n

Each benchmark writes its own section of docs/BENCHMARKS.md (between
``<!-- bench:NAME -->`` markers, ``NAME-cuda`` when run on a GPU, so CPU and GPU
results stand side by side), with the command, machine and date. The femnist
benchmarks need ../shared/data and the GPU ones a GPU; without them they are
skipped with a message and leave the document as it was. A benchmark that fails
prints its traceback and the others still run; the command then exits non-zero.

In a session lent the device tool's GPU machine, `benchmarks/device_session.sh` prepares (here)
and runs (there) the GPU checks in one call.

This file is the command; the benchmarks live beside it, by what they measure:
training.py (accuracy of training recipes on femnist), throughput.py (data path,
epochs per second, profiles, GPUs), ray_search.py (Ray's overhead, search
efficiency), and common.py (paths, the machine line, the document's sections).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alphabet.errors import UserError  # noqa: E402
from benchmarks.common import CUDA, Bench, Skipped, write_section  # noqa: E402
from benchmarks.ray_search import (  # noqa: E402
    SEARCH_SPACES,
    bench_overhead,
    bench_ray_share,
    bench_search,
    search_variant,
)
from benchmarks.throughput import (  # noqa: E402
    bench_datapath,
    bench_files,
    bench_gpu,
    bench_inference,
    bench_profile,
    bench_retrain,
    bench_share,
    bench_synthetic,
    share_worker,
)
from benchmarks.training import (  # noqa: E402
    bench_batch,
    bench_calibration,
    bench_framing,
    bench_lexicon,
    bench_lexicon_text,
    bench_schedules,
    bench_seed,
    bench_text,
    bench_tta,
    bench_variants,
    bench_words,
)

BENCHMARKS: dict[str, Callable[[Bench], str]] = {
    "datapath": bench_datapath, "seed": bench_seed, "variants": bench_variants, "schedules": bench_schedules,
    "batch": bench_batch, "tta": bench_tta, "calibration": bench_calibration, "framing": bench_framing,
    "words": bench_words, "text": bench_text, "lexicon": bench_lexicon, "lexicon-text": bench_lexicon_text,
    "overhead": bench_overhead, "search": bench_search, "retrain": bench_retrain, "profile": bench_profile,
    "inference": bench_inference, "files": bench_files, "synthetic": bench_synthetic,
    "gpu": bench_gpu, "share": bench_share, "rayshare": bench_ray_share}


def run(bench: Bench, names: list[str], args: argparse.Namespace, seeds: tuple[int, ...]
        ) -> tuple[list[str], list[str]]:
    """Each named benchmark, its section written to ``bench.doc`` as it ends; returns those skipped
    here and those that failed (their tracebacks printed)."""
    flag = {"quick": "", "full": " --full", "smoke": " --smoke-test"}[bench.size]
    skipped, failed = [], []
    for name in names:
        command = f"python benchmarks/run.py{flag} --only {name}"
        section = name
        if name == "search":
            for option, value, default in (("--search-seeds", args.search_seeds, "0"),
                                           ("--search-space", args.search_space, "tuned"),
                                           ("--search-trials", args.search_trials, None),
                                           ("--search-grace", args.search_grace, None),
                                           ("--search-startup", args.search_startup, None),
                                           ("--search-baseline", args.search_baseline, None)):
                command += f" {option} {value}" if value != default else ""
            section += search_variant(bench, args.search_space, args.search_trials, args.search_grace,
                                      seeds, args.search_startup)[3].replace("_", "-")
        start = time.perf_counter()
        try:
            body = (bench_search(bench, seeds, args.search_space, args.search_trials, args.search_grace,
                                 args.search_startup, args.search_baseline and args.search_baseline.resolve())
                    if name == "search" else BENCHMARKS[name](bench))
        except Skipped as why:
            print(f"{name}: skipped: {why}")
            skipped.append(name)
            continue
        except UserError as e:
            sys.exit(f"benchmarks/run.py: {e.args[0]}")
        except Exception:  # noqa: BLE001 - one broken benchmark must not cost the others their run
            traceback.print_exc()
            print(f"{name}: FAILED (traceback above)", flush=True)
            failed.append(name)
            continue
        if bench.smoke:  # the section's figures come from a toy run: said in its title
            title, _, rest = body.partition("\n")
            body = f"{title} [smoke test: a toy size, not a measurement]\n{rest}"
        write_section(bench.doc, f"{section}-cuda" if CUDA else section, body, command)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    return skipped, failed


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--share-worker"]:  # a child process of the share benchmark
        share_worker(argv[1], int(argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true")
    size.add_argument("--smoke-test", action="store_true",
                      help="each benchmark at a toy size on synthetic letters, into a scratch document: checks "
                           "the code in seconds a benchmark and measures nothing")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--search-seeds", default="0", metavar="0,1,2",
                        help="search: one pair of searches per sampler seed (default: 0)")
    parser.add_argument("--search-space", default="tuned", choices=list(SEARCH_SPACES),
                        help="search: which femnist space (default: tuned)")
    parser.add_argument("--search-trials", type=int, metavar="N",
                        help="search: trials per search (default: 16 in full mode, 8 in quick)")
    parser.add_argument("--search-grace", type=int, metavar="EPOCHS",
                        help="search: ASHA's grace period (default: 3 in full mode, 2 in quick)")
    parser.add_argument("--search-startup", type=int, metavar="N",
                        help="search: trials TPE samples at random first (default: the experiment's)")
    parser.add_argument("--search-baseline", type=Path, metavar="RUNS",
                        help="search: reuse the random + FIFO arms of an earlier run of the same setting "
                             "(runs/bench-search-efficiency.../TIME); they read none of TPE's settings")
    args = parser.parse_args(argv)
    try:
        seeds = tuple(int(seed) for seed in args.search_seeds.split(","))
    except ValueError:
        sys.exit(f"benchmarks/run.py: --search-seeds: expected comma-separated integers, got {args.search_seeds!r}")
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            sys.exit(f"benchmarks/run.py: --only: unknown benchmark {name!r}; expected {', '.join(BENCHMARKS)}")
    if not args.smoke_test:
        _, failed = run(Bench("full" if args.full else "quick"), names, args, seeds)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-smoke-") as scratch:
            root = Path(scratch)
            bench = Bench("smoke", root / "femnist_letters.npz", root / "BENCHMARKS.md", root / "runs")
            skipped, failed = run(bench, names, args, seeds)
        ran = len(names) - len(skipped) - len(failed)
        print(f"smoke test: {ran} of {len(names)} benchmarks ran at a toy size"
              + (f" ({', '.join(skipped)} skipped, as said above)" if skipped else "")
              + "; nothing was measured and docs/BENCHMARKS.md is untouched")
    if failed:
        sys.exit(f"benchmarks/run.py: {', '.join(failed)} failed (tracebacks above); the others' sections "
                 "were written")


if __name__ == "__main__":
    main()
