"""How many threads the kernels use: chosen by timing the steps themselves (docs/model.md#threads).

On an idle machine every core helps (B2 runs about 1.4-1.9x faster on 2 threads than on 1). On a busy one it
can hurt: each parallel kernel waits for its slowest thread, and a thread that the OS has handed to another
process holds every step up; with one busy sibling on a 2-core machine, 2 threads ran at 0.96 of 1 thread's rate
even with sleeping (passive) waits. No fixed setting is right for both, and the load changes during a run, so a
:class:`ThreadTuner` measures: from time to time it steps a few short blocks at each candidate thread count
(all, half, a quarter, ... down to 1; interleaved A B B A so that a drift in the load hits each alike), keeps
the fastest, and uses it until the next probe. A count's time is the mean over its blocks, not its luckiest block:
beside a busy process, a 2-thread block is fast when the other process happens to be off the core and slow when
not, and the best of two such blocks made the tuner keep 2 threads that were slower on average (B1 beside a busy
sibling: 0.68-0.75 of 1 thread's rate in bench_engine's CONTENDED). And it prefers fewer threads unless more are
faster by a margin: a tie costs nothing on an idle machine, but more threads than help are what collapses on a
busy one. The kernels give the same bits on any thread count (each row and each site is
computed by one thread, and sums over rows are taken after the kernels), so the choice never changes a result.

Probing costs at most the difference between the candidates during the probe blocks, and the probes are spaced
so that they take at most ~2 % of the wall time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numba


def candidate_counts(max_threads: int) -> tuple[int, ...]:
    """All, half, a quarter, ... down to 1 thread (``max_threads`` first)."""
    out, n = [], max(1, int(max_threads))
    while n >= 1 and n not in out:
        out.append(n)
        n //= 2
    if 1 not in out:
        out.append(1)
    return tuple(out)


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: the step at its end, the seconds per step measured for each thread count (the mean
    over its blocks), and the count chosen."""

    step: int
    seconds_per_step: dict[int, float]
    chosen: int


class ThreadTuner:
    """Chooses numba's thread count for the steps of one simulation (see the module docstring).

    ``Simulation.step`` calls :meth:`before_step` and :meth:`after_step` around each step. ``max_threads``:
    the most it may use (default: numba's count for this thread when the tuner is made, so a sweep member's
    share of the cores is respected).
    """

    WARMUP_STEPS = 2  # the first steps compile or load kernels: not timed

    def __init__(self, max_threads: int | None = None, block_seconds: float = 0.05, every_seconds: float = 30.0,
                 max_share: float = 0.02, margin: float = 0.03, clock: Callable[[], float] = time.perf_counter):
        self.max_threads = int(max_threads or numba.get_num_threads())
        self.candidates = candidate_counts(self.max_threads)
        self.threads = self.max_threads
        self.block_seconds = block_seconds
        self.every_seconds = every_seconds
        self.max_share = max_share
        self.margin = margin
        self.clock = clock
        self.probes: list[Probe] = []
        self._steps = 0
        self._blocks: list[int] = []  # thread counts of the probe blocks still to run
        self._block_steps = 0  # steps per probe block
        self._done_in_block = 0
        self._block_time = 0.0
        self._measured: dict[int, float] = {}  # seconds per step, the mean over the probe's blocks so far
        self._blocks_done: dict[int, int] = {}
        self._per_step = None  # seconds per step outside probes (a running estimate)
        self._next_probe = None  # clock time of the next probe
        self._step_number = 0

    @property
    def probing(self) -> bool:
        return bool(self._blocks)

    @property
    def next_threads(self) -> int:
        """The thread count of the next step: a probe block's, or the chosen one."""
        return self._blocks[0] if self._blocks else self.threads

    def before_step(self) -> None:
        want = self.next_threads
        if numba.get_num_threads() != want:  # per calling thread in numba: set it where the steps run
            numba.set_num_threads(want)

    def after_step(self, seconds: float, step: int = 0) -> None:
        """Record the wall time of the step just taken (``step``: its number, for the probe records)."""
        self._steps += 1
        self._step_number = step
        if len(self.candidates) < 2 or self._steps <= self.WARMUP_STEPS:
            return
        if self._blocks:
            self._block_time += seconds
            self._done_in_block += 1
            if self._done_in_block == self._block_steps:
                threads = self._blocks.pop(0)
                per_step = self._block_time / self._block_steps
                n = self._blocks_done.get(threads, 0)
                self._measured[threads] = (self._measured.get(threads, 0.0) * n + per_step) / (n + 1)
                self._blocks_done[threads] = n + 1
                self._done_in_block, self._block_time = 0, 0.0
                if not self._blocks:
                    self._choose()
            return
        self._per_step = seconds if self._per_step is None else 0.9 * self._per_step + 0.1 * seconds
        now = self.clock()
        if self._next_probe is None or now >= self._next_probe:
            self._start_probe()

    def _start_probe(self) -> None:
        self._block_steps = max(1, round(self.block_seconds / max(self._per_step, 1e-9)))
        others = [c for c in self.candidates if c != self.threads]
        self._blocks = [self.threads, *others, *reversed(others), self.threads]  # A B B A
        self._measured, self._blocks_done = {}, {}

    def _choose(self) -> None:
        best = min(self._measured.values())
        # the fewest threads within the margin of the fastest: more threads only where they clearly help
        self.threads = min(c for c, t in self._measured.items() if t <= best * (1 + self.margin))
        self.probes.append(Probe(self._step_number, dict(self._measured), self.threads))
        probe_time = sum(self._measured.values()) * 2 * self._block_steps  # every candidate ran two blocks
        self._next_probe = self.clock() + max(self.every_seconds, probe_time / self.max_share)
