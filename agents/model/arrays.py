"""Reusing a run's large per-step arrays once nothing refers to them (docs/model.md#memory).

Each step makes a new state and a new evaluation, and with them new (S, K, K) arrays: the new Sigma and the
gradient in Sigma. Beyond 32 MiB (B3: 20,000 rows at K = 15 is 36 MiB) glibc's ``malloc`` maps every such array
fresh from the kernel and unmaps it when it is freed, so each step faults the pages it writes in again: at B3,
1,050 faults and 11 ms of system time in a 250 ms step. An :class:`ArrayPool` keeps those arrays after use and
hands one out again when nothing else holds it any more: the old state and evaluation a step replaces are
dropped by the simulation, and their arrays come back for the next step. Whether anything holds an array is its
reference count, so an array a user kept (a state, an evaluation, a view of one) is never handed out.

A pool belongs to one simulation and is dropped with it. Small arrays are left to ``malloc``, which reuses them
without faults.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

POOL_FROM_BYTES = 8 << 20  # smaller arrays come from malloc's heap, reused without page faults
POOL_SIZE = 8  # arrays kept: a step holds about four large ones (state and new state, their gradients)


class ArrayPool:
    """``empty(shape, dtype)`` as ``np.empty``, reusing a kept array of that shape and type that only the pool
    still refers to. Thread-safe."""

    def __init__(self, from_bytes: int = POOL_FROM_BYTES, size: int = POOL_SIZE):
        self.from_bytes = from_bytes
        self.size = size
        self._kept: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.reused = 0  # arrays handed out again (for tests and benchmarks)
        # The reference count of a kept array nothing else holds, as _refs counts it (measured, not assumed: it
        # depends on how the interpreter passes arguments)
        self._kept.append(np.empty(0))
        self._free_refs = self._refs(0)
        self._kept.clear()

    def _refs(self, i: int) -> int:
        return sys.getrefcount(self._kept[i])

    def empty(self, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        dtype = np.dtype(dtype)
        if math.prod(shape) * dtype.itemsize < self.from_bytes:  # math.prod: 0.2 us, np.prod 3 us
            return np.empty(shape, dtype)
        with self._lock:
            for i in range(len(self._kept)):
                if self._kept[i].shape == shape and self._kept[i].dtype == dtype and self._refs(i) == self._free_refs:
                    self.reused += 1
                    return self._kept[i]
            arr = np.empty(shape, dtype)
            if len(self._kept) == self.size:
                self._drop_one()
            self._kept.append(arr)
            return arr

    def _drop_one(self) -> None:
        """Forget a kept array: one that is free if any (it is then freed), else the oldest (its holder keeps it)."""
        for i in range(len(self._kept)):
            if self._refs(i) == self._free_refs:
                del self._kept[i]
                return
        del self._kept[0]


def empty(shape: tuple[int, ...], dtype=np.float64, pool: ArrayPool | None = None) -> np.ndarray:
    """``np.empty``, from ``pool`` when one is given."""
    return np.empty(shape, dtype) if pool is None else pool.empty(shape, dtype)
