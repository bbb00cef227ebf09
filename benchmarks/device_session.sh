#!/usr/bin/env bash
# The GPU work of a session lent the device tool's machine, each mode one device `run` (docs/BENCHMARKS.md
# names the sections):
#
#   here:  benchmarks/device_session.sh wheels   # once: .whl/ (git-ignored) gets what that machine lacks
#   there: benchmarks/device_session.sh run      # carry [".whl"]: the Ray search sharing one GPU ("Trials
#                                                # sharing one GPU, through Ray") and tests/test_gpu.py; about
#                                                # 5 of the 15 minutes on an H200 (2026-12-04)
#   there: benchmarks/device_session.sh demo     # carry [".whl"]: make demo's search and retrain, then predict
#                                                # ("The README's main job on a GPU"; under 2 minutes)
#   here:  mkdir -p .devcheck && cp ../shared/data/femnist_letters.npz .devcheck/   # git-ignored; deleted after
#   there: benchmarks/device_session.sh folds    # carry [".devcheck"]: the fourteenth femnist screen, the recipe
#                                                # against a wider residual net and 200 epochs on five folds of
#                                                # writers, every run sharing the GPU (6 min 19 s);
#                                                # `folds seeds`: the recipe's seeds 2-4 (2 min)
#   there: benchmarks/device_session.sh search   # carry [".whl", ".devcheck"]: the fifteenth, a femnist search
#                                                # at GPU scale (femnist_search_gpu.yaml), then its best on the
#                                                # same folds as `folds` (6 min 56 s). With the wheels only a
#                                                # slimmer femnist fits the 64 MiB: the images, labels and writers
#                                                # (docs/BENCHMARKS.md, "Fifteenth", has the command)
#
# `run` leaves log.txt and the rewritten docs/BENCHMARKS.md in $OUT, which come back even when the
# call runs out of time; copy the new sections (between their bench markers) into the document here.
# `folds` needs no wheels (the screen uses the library alone). Each fold's outputs land in runs/cv/NAME/runs
# as it ends, and $OUT/cv-NAME.tgz holds a screen's, taken again every 20 s, so a call cut short returns
# what it finished; here, `tar xzf cv-NAME.tgz` and the same screen command with --against report the rest.
#
# That machine has Python 3.12 with torch, torchvision, numpy, scikit-learn, tensorboard, matplotlib,
# pandas and pyarrow, but neither Ray nor Optuna, and nothing can be fetched there. At most 64 MiB
# travel with a call, and Ray's wheel alone is 79 MB: 32 MB of it is Java jars, which a Python search
# never loads, so the wheel travels without them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-out}  # the device tool's run sets it: what is written there comes back

wheels() {
    local py=${PYVER:-3.12} pip=(.venv/bin/python -m pip)
    # The versions this project is tested with, as installed here by `make install`.
    local names="ray optuna alembic mako colorlog sqlalchemy jsonschema jsonschema-specifications referencing
                 rpds-py tensorboardx pydantic pydantic-core annotated-types typing-inspection typing-extensions"
    local pins
    pins=$("${pip[@]}" freeze | grep -iE "^($(echo $names | tr ' ' '|' | sed 's/-/[-_]/g'))==")
    rm -rf .whl && mkdir .whl
    "${pip[@]}" download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $pins
    .venv/bin/python - <<'EOF'
import pathlib, zipfile
for wheel in pathlib.Path(".whl").glob("ray-*.whl"):
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith("ray/jars/"):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):  # pip checks the files it installs against it
                data = b"".join(l for l in data.splitlines(True) if not l.startswith(b"ray/jars/"))
            dst.writestr(item, data)
    slim.replace(wheel)
EOF
    du -ch .whl/*.whl | tail -1
}

use_wheels() {  # there: what .whl/ carried, importable beside the working tree
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
}

run() {
    mkdir -p "$OUT"
    use_wheels
    # Every step runs even if one before it failed; the log says which did.
    local failed=0 log=$OUT/log.txt
    step() { echo "== $* ($(date +%T))" | tee -a "$log"; "$@" 2>&1 | tee -a "$log" || { failed=1; echo "== FAILED: $*" | tee -a "$log"; }; }
    step nvidia-smi -L
    step python3 -c "import torch, ray, optuna, ray.tune, search.runner; print(torch.__version__, ray.__version__, optuna.__version__)"
    # The search first: it is what no other session could measure; a cut-short call still logs its rows.
    step python3 benchmarks/run.py --full --only rayshare
    cp docs/BENCHMARKS.md "$OUT/"
    step timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
    return $failed
}

machine() {  # the time, the GPU and torch, at the top of the log
    { date +%T; nvidia-smi -L; python3 -c "import torch; print(torch.__version__)"; } >>"$OUT/log.txt" 2>&1 || true
}

femnist_here() {  # the configs name ../shared/data, which does not travel; .devcheck/ brings the one file
    mkdir -p ../shared/data runs/cv
    [ -f ../shared/data/femnist_letters.npz ] || cp .devcheck/femnist_letters.npz ../shared/data/
}

snapshot() {  # one file a fold screen: each comes back whole or not at all, at most 16 MiB
    local dir name
    shopt -s nullglob  # none yet: nothing to take
    for dir in runs/cv/*/; do
        name=$(basename "$dir")
        # The folds alone: the pooled seedN.npz would stop the report here (it never overwrites them).
        tar czf "$OUT/cv-$name.part" --exclude='seed[0-9].npz' "$dir" && mv "$OUT/cv-$name.part" "$OUT/cv-$name.tgz"
    done
}

snapshots() {  # in the background, every 20 s; a failed one (a file written as tar read it) waits for the next
    set +e
    while sleep 20; do
        nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader >>"$OUT/log.txt" 2>&1
        snapshot
    done
}

folds() {  # [fourteenth | seeds]
    local plan=${1:-fourteenth}
    mkdir -p "$OUT"
    femnist_here
    export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
    local epochs=${EPOCHS:-}  # EPOCHS=1 here, without a GPU, checks the whole path in minutes
    snapshots &
    local snapshot=$!
    machine
    screen_of() {  # NAME EPOCHS JOBS SEEDS KEY=VALUE...
        local name=$1 e=${epochs:-$2} jobs=$3 seeds=$4 rc=0; shift 4
        # shellcheck disable=SC2086  # seeds: one word a seed
        timeout "${LIMIT:-520}" python3 benchmarks/validation_screen.py benchmarks/configs/femnist_best.yaml \
            --folds 5 --seeds $seeds --epochs "$e" --jobs "$jobs" --save "runs/cv/$name" \
            --set train.schedule=cosine train.logit_adjustment=1 "$@" >"$OUT/$name.txt" 2>&1 || rc=$?
        echo "$name ended $(date +%T) rc=$rc" >>"$OUT/log.txt"
    }
    # 16 cores: the longest screen gets the most places; the GPU, not the cores, is expected to bind.
    local screens=()
    case $plan in
        fourteenth)  # the recipe against a wider residual net and against 200 epochs
            screen_of R 60 5 "0 1" & screens+=($!)
            screen_of W 60 5 "0 1" model.arch=resnet model.width=64 & screens+=($!)
            screen_of L 200 6 "0 1" & screens+=($!) ;;
        seeds)  # three more seeds of the recipe, for the folds' view of a 5-seed ensemble
            screen_of R 60 15 "2 3 4" & screens+=($!) ;;
        *) echo "folds: expected fourteenth or seeds, got $plan" >&2; return 2 ;;
    esac
    wait "${screens[@]}"
    kill "$snapshot"
    snapshot
    date +%T >>"$OUT/log.txt"
}

search() {  # the fifteenth: a femnist search at GPU scale, then its best on the writer folds; carry [".whl", ".devcheck"]
    mkdir -p "$OUT"
    femnist_here
    use_wheels
    local run=runs/bench-search/femnist-gpu log=$OUT/log.txt
    machine
    snapshots &  # the GPU's use through the search and the screen, and the screen's folds as they end
    local snapshot=$!
    # The search's own budget (270 s) ends it; the timeout only guards against a hang in Ray.
    timeout "${SEARCH_LIMIT:-330}" python3 -m alphabet search benchmarks/configs/femnist_search_gpu.yaml \
        "$@" >"$OUT/search.txt" 2>&1 || echo "search rc=$?" >>"$log"
    echo "search ended $(date +%T)" >>"$log"
    # At most 8 files come back from a call: the trial table goes at the end of the search's log.
    python3 -m alphabet trials "$run" >>"$OUT/search.txt" 2>&1 || true
    cp "$run"/best.yaml "$run"/summary.* "$OUT/" || true
    # The best on the twelfth's folds, as R was screened (runs/cv/R here): every run at once on the GPU.
    timeout "${LIMIT:-220}" python3 benchmarks/validation_screen.py "$run/best.yaml" --folds 5 --seeds 0 1 \
        --epochs 60 --jobs 10 --save runs/cv/G >"$OUT/G.txt" 2>&1 || echo "screen rc=$?" >>"$log"
    kill "$snapshot"
    snapshot
    date +%T >>"$log"
}

demo() {  # the README's main job (make demo) as a user with a GPU runs it, then a prediction; carry [".whl"]
    mkdir -p "$OUT"
    use_wheels
    local log=$OUT/log.txt run=runs/search/quick-gpu
    step() { echo "== $* ($(date +%T))" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; }
    step nvidia-smi -L
    step timeout 330 python3 -m alphabet search experiments/quick.yaml --set storage.name=quick-gpu
    step python3 -m alphabet trials "$run"
    step timeout 120 python3 -m alphabet retrain "$run"
    cp "$run/retrain/report.md" "$OUT/" || true
    python3 - <<'PY'  # five synthetic test letters as image files, as a user's scans would come
from PIL import Image
from alphabet.config import load_config
from alphabet.data import load_splits
test = load_splits(load_config(None, ["data.source=synthetic", "data.case=lower"]).data).test
for k in range(5):
    Image.fromarray(test.images[k]).save(f"/tmp/letter{k}-{test.classes[int(test.labels[k])]}.png")
PY
    step python3 -m alphabet predict "$run/retrain" /tmp/letter*.png --top-k 2
    echo "== end ($(date +%T))" | tee -a "$log"
}

case "${1:-}" in
    wheels) wheels ;;
    run) run ;;
    folds) folds "${2:-}" ;;
    demo) demo ;;
    search) shift; search "$@" ;;
    *) echo "usage: $0 wheels|run|folds [fourteenth|seeds]|search [--set ...]|demo" >&2; exit 2 ;;
esac
