"""One writer per run file: an exclusive OS lock on ``RUN.h5.lock``, taken before anything is touched.

The lock is an ``flock`` on a small file beside the run, holding the owner's pid, host and command line. The
kernel releases it when the owner dies, however it dies (SIGKILL included), so "is a writer alive?" has an
exact answer on this host: can the lock be taken. A second run aimed at a live path stops at once with
:class:`RunFileBusy`, naming the process that holds it; readers and ``vfe repair`` ask :func:`writer_active`.

The lock file is removed on release. Taking the lock checks, after ``flock`` succeeds, that the path still
names the file that was locked: a process that opened the old file just before it was removed retries on the
new one instead of holding a lock nobody else can see.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

PROBE_RETRIES = 5


class RunFileBusy(RuntimeError):
    """Another live process writes this run file."""

    def __init__(self, path: Path, holder: dict):
        self.path = path
        self.holder = holder
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("host") and holder.get("host") != socket.gethostname():
            who += f" on {holder['host']}"
        command = holder.get("command")
        super().__init__(f"{path}: another run is writing this file ({who}{': ' + command if command else ''}); "
                         "wait for it to end or choose another output")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _holder(lock_file: Path) -> dict:
    try:
        return json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    """The exclusive lock of one run file; use :meth:`acquire` (or ``with RunLock(path):``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = lock_path(self.path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunFileBusy` at once (never waits)."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                attempts += 1
                if attempts < PROBE_RETRIES and not _holder(self.file):
                    time.sleep(0.02)  # a reader's probe holds a shared lock for microseconds: try again
                    continue
                raise RunFileBusy(self.path, _holder(self.file)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was replaced between open and flock: lock the current one
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.file)  # while still holding it: nobody can take a lock on a file we then remove
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def writer_active(path: str | Path) -> dict | None:
    """The holder's record if a live process holds the run file's lock (on this host), else None."""
    lock_file = lock_path(Path(path))
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(lock_file) or {"pid": "?"}
    finally:
        os.close(fd)  # closing drops a shared lock we may have taken
    return None
