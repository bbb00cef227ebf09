#!/usr/bin/env bash
# The GPU checks for a session lent the device tool's machine: the Ray search sharing one GPU
# (docs/BENCHMARKS.md, "Trials sharing one GPU, through Ray") and tests/test_gpu.py, in one call
# that fits its 15 minutes (it took about 5 on an H200, 2026-12-04).
#
#   here:  benchmarks/device_session.sh wheels   # once: .whl/ (git-ignored) gets what that machine lacks
#   there: benchmarks/device_session.sh run      # the command of one device `run`, with carry [".whl"]
#
# `run` leaves log.txt and the rewritten docs/BENCHMARKS.md in $OUT, which come back even when the
# call runs out of time; copy the new sections (between their bench markers) into the document here.
#
# That machine has Python 3.12 with torch, torchvision, numpy, scikit-learn, tensorboard, matplotlib,
# pandas and pyarrow, but neither Ray nor Optuna, and nothing can be fetched there. At most 64 MiB
# travel with a call, and Ray's wheel alone is 79 MB: 32 MB of it is Java jars, which a Python search
# never loads, so the wheel travels without them.
set -euo pipefail
cd "$(dirname "$0")/.."

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

run() {
    OUT=${OUT:-/tmp/device-out}
    mkdir -p "$OUT"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
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

case "${1:-}" in
    wheels) wheels ;;
    run) run ;;
    *) echo "usage: $0 wheels|run" >&2; exit 2 ;;
esac
