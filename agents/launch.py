"""The ``vfe`` executable's entry point.

Ctrl-C can arrive while Python is still importing the simulator (numpy, numba, h5py take a second or more). No
file has been touched then; the command says ``interrupted`` and exits 130 like any other interrupt, instead of
printing a traceback from deep inside an import.
"""

import os
import signal
import sys

EXIT_INTERRUPTED = 130
_as_the_vfe_process = False  # set by main(): the process is ours to end (not a test or a notebook calling the CLI)


def exit_interrupted(line: str = "interrupted") -> None:
    """Say ``interrupted`` (or ``line``) and exit 130, at once.

    Not ``sys.exit``: after a KeyboardInterrupt had been raised inside some imports (numba, h5py, ...) and
    caught, CPython still ended the process by re-raising SIGINT (exit -2) whatever we exited with: measured in
    11 of 20 trials with the signal 0.4-0.85 s after start, and once at 1.0 s through click's Abort, none with
    ``os._exit``. Every file is closed by then (the run's own ``finally`` blocks have run), so leaving at once
    loses nothing. Called in-process (click's test runner, a notebook), it raises ``SystemExit(130)`` instead.
    """
    sys.stderr.write(line + "\n")
    if not _as_the_vfe_process:
        sys.exit(EXIT_INTERRUPTED)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


_interrupted_while_importing = False
_note_startup_signal = None  # runner.signals.note_startup_signal, imported with the CLI


def _interrupt_while_importing(signum, frame) -> None:
    """SIGINT during the imports: remember it, then interrupt as Python would. Some library's bare ``except``
    around an optional import can swallow the KeyboardInterrupt; the flag cannot be swallowed (a run started
    with Ctrl-C 0.6 s in, under load, went on for 20 minutes)."""
    global _interrupted_while_importing
    _interrupted_while_importing = True
    raise KeyboardInterrupt


def _interrupt_during_command(signum, frame) -> None:
    """SIGINT inside the command, outside the run loop's own handler: interrupt as Python would, and record it
    for the run loop too, in case a broad ``except`` in a lazily imported library swallows the exception."""
    _note_startup_signal(signum)
    raise KeyboardInterrupt


def main() -> None:
    global _as_the_vfe_process, _note_startup_signal
    _as_the_vfe_process = True
    signal.signal(signal.SIGINT, _interrupt_while_importing)
    try:
        from .cli import main as cli
        from .runner.signals import note_startup_signal as _note_startup_signal  # not imported in a handler
    except KeyboardInterrupt:
        exit_interrupted()
    if _interrupted_while_importing:  # raised, and swallowed inside an import
        exit_interrupted()
    signal.signal(signal.SIGINT, _interrupt_during_command)
    try:
        cli()
    finally:
        # The command's work is done and its files are closed. A Ctrl-C while the interpreter shuts down (atexit
        # handlers, h5py, numba) ended finished runs by SIGINT (exit -2, 2 of 20 trials): say it, exit 130.
        signal.signal(signal.SIGINT, _interrupted_at_exit)


def _interrupted_at_exit(signum, frame) -> None:
    exit_interrupted()


if __name__ == "__main__":  # python -m gauge_vfe.agents.launch: what the `vfe` script runs
    # through the module under its package name, the one cli.py imports (this file also runs as __main__)
    import importlib

    importlib.import_module(__spec__.name).main()
