"""Threads that wait for work sleep instead of spinning.

numba's OpenMP layer spins by default: with one other busy process on a 2-core machine, B1 at 2 threads fell to
157-255 steps/s against 321-359 at 1 thread; with OMP_WAIT_POLICY=PASSIVE it ran at 351-353, and on an idle machine
B2 at 2 threads ran at 23-27 steps/s passive against 19 spinning (benchmarks/bench_engine.py, issue 14). The OpenMP
runtime reads the variable when numba first loads it, at the first parallel kernel call, which is after the
package's import; a value the user set is kept.
"""

import os


def wait_passively() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets a policy. Called when the package is imported,
    before any kernel module loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
