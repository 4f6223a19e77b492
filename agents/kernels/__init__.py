"""numba kernels over plain arrays (see each module).

Threads that wait for work sleep instead of spinning. numba's OpenMP layer spins by default: with one other busy
process on a 2-core machine, B1 at 2 threads fell to 157-255 steps/s against 321-359 at 1 thread; with
OMP_WAIT_POLICY=PASSIVE it ran at 351-353, and on an idle machine B2 at 2 threads ran at 23-27 steps/s passive
against 19 spinning (benchmarks/bench_engine.py, issue 14). The OpenMP runtime reads the variable when numba first
loads it, at the first parallel kernel call, which is after this import; a value the user set is kept.

Compiled kernels go to one per-user cache, ``$XDG_CACHE_HOME/gauge-vfe/numba`` (``~/.cache/...``), unless
``NUMBA_CACHE_DIR`` is set: the CLI, notebooks, the tests and sweep workers share it, and it works for an install
whose package folder is not writable. (numba's own default is a ``__pycache__`` beside each source file, so a
checkout and its tests compiled twice.) numba keys its cache by the source file's path and time stamp, so
checkouts and versions do not mix. The kernel modules read the setting when they are imported, after this.
"""

import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gauge-vfe", "numba")


if not os.environ.get("NUMBA_CACHE_DIR"):
    os.environ["NUMBA_CACHE_DIR"] = default_cache_dir()  # also for child processes (sweep workers, tests)
    if "numba" in sys.modules:  # imported before us: numba read its settings already; the kernels read this
        sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
