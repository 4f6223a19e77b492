"""Saying what a slow start is doing: numba compiles the kernels on a first run (tens of seconds), then loads
them from its on-disk cache (docs/model.md#compilation).

A run is built before its first step, and building evaluates the initial state, which is when numba compiles.
:class:`CompilationNotice` watches the build and the first step (the step's own kernels compile then): if a
kernel is being compiled a second in, it says ``compiling kernels (first run only)...``, and once the first step
is done, how many were compiled and how long it took. A warm start says nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from typing import Callable

from numba.core.dispatcher import Dispatcher


def _dispatchers() -> list[Dispatcher]:
    """Every numba kernel of the package (the kernels subpackage holds them all)."""
    from .. import kernels

    found = []
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"{kernels.__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, Dispatcher)]
    return found


def compilations(dispatchers) -> int:
    """How many kernel specialisations were compiled (not found in numba's cache) in this process so far."""
    return sum(sum(d.stats.cache_misses.values()) for d in dispatchers)


class CompilationNotice:
    """From a run's build through its first step (both compile kernels on a first run): ``say`` that kernels
    are being compiled if one is still compiling ``after`` seconds in, and at the end how many and how long.

    Attach it to the run loop as an observer: its first ``update`` (the first step done) ends the watch.
    """

    def __init__(self, say: Callable[[str], None] | None, after: float = 1.0):
        """``say=None``: a notice that does nothing (a quiet run)."""
        self.say = say
        self._done = threading.Event()
        if say is None:
            self._done.set()
            return
        self._dispatchers = _dispatchers()
        self._before = compilations(self._dispatchers)
        self._t0 = time.perf_counter()
        self._watcher = threading.Thread(target=self._watch, args=(after,), daemon=True)
        self._watcher.start()

    def _watch(self, after: float) -> None:
        while not self._done.wait(after):
            if compilations(self._dispatchers) > self._before:
                self.say("compiling kernels (first run only)...")
                return

    def stop(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        self._watcher.join()
        compiled = compilations(self._dispatchers) - self._before
        if compiled:
            self.say(f"compiled {compiled} kernel{'s' if compiled > 1 else ''} in "
                     f"{time.perf_counter() - self._t0:.1f} s; later runs load them from numba's cache")

    def start(self, sim) -> None:
        pass

    def update(self, sim, info) -> None:
        self.stop()

    def finish(self, sim, outcome) -> None:
        self.stop()
