"""The trial's process, outside a search: what it prints when Ray ends it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# SystemExit and a real error, each raised where Python cannot propagate it (a weakref callback),
# as Ray's SIGTERM handler does when it ends a trial's process at such a moment.
UNRAISABLE = """
import sys, weakref
{install}
class Owner: pass
def ends(_): raise SystemExit(1)
def fails(_): raise ValueError("a real error")
first, second = Owner(), Owner()
refs = weakref.ref(first, ends), weakref.ref(second, fails)
del first, second
print("still running")
"""


def run(install: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", UNRAISABLE.format(install=install)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_trial_process_drops_only_the_systemexit_python_cannot_raise():
    plain = run("")
    assert "SystemExit: 1" in plain.stderr  # what a search's output showed now and then

    quiet = run("from search.worker_setup import setup_worker\n"
                "setup_worker()")
    assert quiet.stdout.strip() == "still running", quiet.stderr
    assert "SystemExit" not in quiet.stderr
    assert "ValueError: a real error" in quiet.stderr  # any other lost exception is still shown


def test_every_worker_of_a_search_runs_the_setup_hook_first_and_it_imports_only_the_standard_library():
    # Ray imports the hook's module in every worker of the job before any trial code; a heavy import
    # there would slow every worker's start.
    from search.runner import start_ray

    done = subprocess.run([sys.executable, "-c", "import sys, search.worker_setup\n"
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray', 'numpy', "
                           "'alphabet')))"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout[-2000:] + done.stderr[-2000:]
    import ray

    start_ray("local")
    try:
        @ray.remote
        def hook_in_a_worker() -> str:
            return sys.unraisablehook.__qualname__

        assert ray.get(hook_in_a_worker.remote()) == "quiet_exit_in_callbacks"
    finally:
        ray.shutdown()


def test_a_trial_process_imports_no_plotting():
    # Each trial's worker imports the trainable anew, and a trial logs scalars alone: matplotlib took
    # 0.7 s of its start on 2 cores. The figures a run draws import it when drawn.
    done = subprocess.run([sys.executable, "-c", "import sys, search.trainable; print(sorted(m for m in sys.modules "
                           "if m.split('.')[0] == 'matplotlib'))"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout[-2000:] + done.stderr[-2000:]
