"""What SIGINT (Ctrl-C) and SIGTERM do to a run, in one place.

* In the step loop they only set a flag (:class:`InterruptFlag`), checked between steps: a signal never lands
  inside a step or a write, so the state, the energies and the file describe the same completed step.
* While the observers finish, both raise ``KeyboardInterrupt`` (:func:`terminate_as_interrupt`): the long
  end-of-run analysis stays interruptible, and SIGTERM no longer ends the process at once as a kill does.
* The writes that close a file are held together (:func:`signals_deferred`): a signal that arrives inside is
  delivered when they are done, so an interrupt never leaves half a status or half a final frame.

Handlers can only be installed from the main thread; elsewhere (a worker thread, a Dask task) these are no-ops.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

CAUGHT = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# A SIGINT that reached the `vfe` process before its run loop (imports and set-up inside the command): launch.py's
# handler raises KeyboardInterrupt and also records it here, because a library's broad `except` around an
# optional import can swallow the exception (a million-step run started with Ctrl-C 1.8 s in, under load, went
# on). The run loop takes it at its start and stops there.
_startup_signals: list[int] = []


def note_startup_signal(signum: int) -> None:
    _startup_signals.append(signum)


def take_startup_signal() -> int | None:
    """The first signal :func:`note_startup_signal` recorded, once (None if none)."""
    signum = _startup_signals[0] if _startup_signals else None
    _startup_signals.clear()
    return signum


class InterruptFlag:
    """A handler that records the signal; the run loop checks :attr:`signal` between steps."""

    def __init__(self):
        self.signal: int | None = None

    def __call__(self, signum, frame):
        self.signal = signum

    @contextmanager
    def installed(self, enabled: bool = True):
        if not enabled or not _main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in CAUGHT}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def terminate_as_interrupt(enabled: bool = True):
    """Inside the block SIGINT and SIGTERM raise ``KeyboardInterrupt``."""
    if not enabled or not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_interrupt) for s in CAUGHT}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM for the block, then report them: ``with signals_deferred() as held: ...``;
    afterwards ``held.signal`` is the first one that arrived (None if none did). The caller decides what the
    interrupt means once its writes are complete."""
    flag = InterruptFlag()
    with flag.installed():
        yield flag
