"""One writer per run FILE: an exclusive lock keyed by the file's identity, taken before anything is touched.

Two locks make up a :class:`RunLock`, both released by the kernel when the owner dies, however it dies (SIGKILL
included), so "is a writer alive?" has an exact answer on this host:

* **An OFD lock on the run file itself** (Linux ``fcntl(F_OFD_SETLK)``, a write lock on one byte at offset
  2**62, far beyond any end of file). A lock on the file is a lock on its inode, so every name of the file
  meets it: a symlink, a hard link, a path with ``..``, and a process that deleted ``RUN.h5.lock`` first. Why
  this kind of lock: HDF5 ``flock``s the .h5 file itself whenever it opens one (``HDF5_USE_FILE_LOCKING`` is
  not set by this project; SWMR writers drop it once in SWMR mode), and on Linux ``flock`` and ``fcntl`` locks
  never conflict, so ours neither blocks HDF5 nor is released by it. A classic POSIX ``fcntl`` lock would be
  released when the process closes *any* descriptor of the file (HDF5 and :func:`~.recovery.is_hdf5` do so
  all the time); an OFD lock belongs to the one open file description that took it, lives until that closes,
  and conflicts with another description even in the same process (measured: a second descriptor in the same
  process, a hard link and a symlink are all refused; a ``flock`` beside it still succeeds; closing another
  descriptor of the file keeps it). The byte at 2**62 is one HDF5 never range-locks.
* **An ``flock`` on ``RUN.h5.lock``** beside the path (its folder resolved), holding the owner's pid, host and
  command line. It covers what the file lock cannot: a run creating a file that does not exist yet. The new
  file is built under a temporary name and locked (:meth:`RunLock.cover`) before it is renamed to the path, so
  no moment exists when a file is at the path and unlocked.

A second writer (run, ``--resume``, ``vfe analyze``, ``vfe repair``) aimed at a live file by any name stops at
once with :class:`RunFileBusy`, naming the process that holds it: the lock file's record when the same path
is locked, else the process found holding the file lock (``/proc/*/fdinfo``). Readers ask
:func:`writer_active`, which only queries (``F_OFD_GETLK``) and takes nothing on the run file. A reader refused by HDF5's own
lock (another process has the file open for writing, e.g. ``vfe analyze``, or is reading it while this one
wants to write) gets :class:`FileInUse` from :func:`in_use_error`, naming that process when it can be found.

Without OFD locks (not Linux) only the lock file is used, keyed by the path as before. On NFS, where ``flock``
is emulated with byte-range locks, the two would meet; HDF5's SWMR, which the writer uses, needs a local file
system anyway.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import struct
import sys
import time
from pathlib import Path

PROBE_RETRIES = 5
LOCK_OFFSET = 1 << 62  # the locked byte: beyond any end of file, never range-locked by HDF5
_FLOCK = struct.Struct("hhqqi4x")  # struct flock: l_type, l_whence, l_start, l_len, l_pid (+ padding)
_HAVE_OFD = hasattr(fcntl, "F_OFD_SETLK")


class RunFileBusy(RuntimeError):
    """Another live process writes this run file."""

    def __init__(self, path: Path, holder: dict):
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: another process is writing this file ({_who(holder)}); wait for it to end "
                         "or choose another output")


class FileInUse(OSError):
    """HDF5 refused to open the file because another process has it open (its own lock, errno 11)."""

    def __init__(self, path: Path, holder: dict):
        self.path = path
        self.holder = holder
        who = f" ({_who(holder)})" if holder else ""
        super().__init__(errno.EAGAIN, f"{path}: another process is reading or writing this file{who}; "
                                       "try again when it ends")

    def __str__(self) -> str:
        return self.strerror


def _who(holder: dict) -> str:
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("host") and holder.get("host") != socket.gethostname():
        who += f" on {holder['host']}"
    command = holder.get("command")
    return who + (f": {command}" if command else "")


def lock_path(path: Path) -> Path:
    """``RUN.h5.lock`` beside ``path``, its folder resolved (``a/../b`` and a symlinked folder give one name)."""
    path = Path(path)
    return Path(os.path.realpath(path.parent)) / (path.name + ".lock")


def _record(lock_file: Path) -> dict:
    try:
        return json.loads(lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _ofd(fd: int, cmd: int, kind: int) -> int:
    """One OFD lock call on the byte at :data:`LOCK_OFFSET`; returns the l_type the kernel reports."""
    out = fcntl.fcntl(fd, cmd, _FLOCK.pack(kind, os.SEEK_SET, LOCK_OFFSET, 1, 0))
    return _FLOCK.unpack(out)[0]


def _identity(st: os.stat_result) -> str:
    """The file's device and inode as /proc/locks and fdinfo print them (``MAJ:MIN:INODE``)."""
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def _describe(pid: int, name: str | None = None) -> dict:
    """Pid, host and command of a local process; the record in the lock file beside ``name`` (the file it has
    open) when that record is this pid's, else its /proc command line."""
    if name is not None:
        rec = _record(lock_path(Path(name)))
        if rec.get("pid") == pid:
            return rec
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            command = " ".join(a.decode(errors="replace") for a in fh.read().split(b"\0") if a)[:500]
    except OSError:
        command = ""
    return {"pid": pid, "host": socket.gethostname(), **({"command": command} if command else {})}


def _ofd_holder(st: os.stat_result) -> dict:
    """The local process holding the file lock of this inode (searched in /proc/*/fdinfo; only a refusal pays
    for the search), or {} when none is visible (another user's process, or no /proc)."""
    ident = f" {_identity(st)} {LOCK_OFFSET} "
    try:
        with open("/proc/locks") as fh:
            if not any("OFDLCK" in line and ident in line for line in fh):
                return {}
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                fst = os.stat(f"/proc/{pid}/fd/{fd}")
                if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    info = fh.read()
                name = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if any("OFDLCK" in line and ident in line for line in info.splitlines()):
                return _describe(int(pid), name.removesuffix(" (deleted)"))
    return {}


def _flock_holder(st: os.stat_result) -> dict:
    """A local process holding an ``flock`` on this inode (HDF5's own lock), from /proc/locks, or {}."""
    ident = f" {_identity(st)} "
    try:
        with open("/proc/locks") as fh:
            lines = [line.split() for line in fh if "FLOCK" in line and ident in line]
    except OSError:
        return {}
    pids = [int(parts[4]) for parts in lines if len(parts) > 4 and parts[4].lstrip("-").isdigit()]
    pids = [p for p in pids if p > 0 and p != os.getpid()]  # our own lock is not what refused us
    return _describe(pids[0]) if pids else {}


class RunLock:
    """The exclusive lock of one run file; use :meth:`acquire` (or ``with RunLock(path):``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = lock_path(self.path)
        self._fd: int | None = None
        self._file_fds: list[int] = []  # descriptors of the locked run files (their OFD locks)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock or raise :class:`RunFileBusy` at once (never waits)."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        attempts = 0
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                attempts += 1
                if attempts < PROBE_RETRIES and not _record(self.file):
                    time.sleep(0.02)  # a reader's probe holds a shared lock for microseconds: try again
                    continue
                raise RunFileBusy(self.path, _record(self.file)) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the file was replaced between open and flock: lock the current one
        self._fd = fd
        try:
            if self.path.exists():  # by whatever name it was reached: lock the file itself
                self.cover(self.path)
        except BaseException:
            self.release()  # the lock file is ours (a new one, if someone deleted the holder's): remove it
            raise
        self._write_record()
        return self

    def cover(self, path: str | Path) -> None:
        """Lock the file at ``path`` itself (by its inode) for as long as this lock is held: the run file when
        it exists, and a new run file under its temporary name before it is renamed to the run's path.
        Raises :class:`RunFileBusy` if another open file description holds it."""
        if not _HAVE_OFD:
            return
        kind = fcntl.F_WRLCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)  # never waits on a FIFO
        except PermissionError:  # nobody may write it (e.g. an earlier run kept read-only): a shared lock
            # a shared lock still meets a live writer
            fd, kind = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK), fcntl.F_RDLCK
        try:
            _ofd(fd, fcntl.F_OFD_SETLK, kind)
        except OSError as exc:
            st = os.fstat(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise RunFileBusy(self.path, _ofd_holder(st)) from None
            raise
        self._file_fds.append(fd)

    def uncover(self) -> None:
        """Drop the file locks taken so far, keeping the lock file: the file they cover was renamed aside (an
        earlier run kept as ``NAME.k.h5``) and is no longer this run's, so ``vfe analyze`` may use it."""
        for fd in self._file_fds:
            os.close(fd)
        self._file_fds = []

    def _write_record(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)[:500]}
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        self.uncover()  # closing the descriptors drops the files' OFD locks
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


def _file_locked(path: Path) -> bool:
    """Whether an open file description holds the file lock of ``path`` (False when the file cannot be opened:
    no file, nothing to disturb; and for anything but a regular file: no run file)."""
    if not _HAVE_OFD:
        return False
    try:
        # O_NONBLOCK: a FIFO at the path opens at once instead of waiting for a writer (forever)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return _ofd(fd, fcntl.F_OFD_GETLK, fcntl.F_RDLCK) != fcntl.F_UNLCK
    finally:
        os.close(fd)


def _lock_file_held(path: Path) -> dict | None:
    """The record if a live process holds the ``flock`` of ``RUN.h5.lock`` beside ``path``, else None."""
    lock_file = lock_path(path)
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _record(lock_file) or {"pid": "?"}
    finally:
        os.close(fd)  # closing drops a shared lock we may have taken
    return None


def writer_active(path: str | Path) -> dict | None:
    """The holder's record if a live process (on this host) holds the run file's lock, by any name of the file
    or at this path (a run creating it), else None. Takes no lock on the run file: a query only. The record is
    ``{"pid": "?"}`` when the file is locked under another name (:func:`holder` finds who, at a cost)."""
    path = Path(path)
    held = _lock_file_held(path)
    if held is not None:
        return held
    return {"pid": "?"} if _file_locked(path) else None


def holder(path: str | Path) -> dict:
    """Who holds the run file's lock, for a message: the record of the lock file beside ``path``, else the
    process found holding the file lock in /proc (some 40 ms with a hundred processes), else {}."""
    path = Path(path)
    held = writer_active(path)
    if held is None or held.get("pid") != "?":
        return held or {}
    try:
        return _ofd_holder(os.stat(path))
    except OSError:
        return {}


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether an HDF5 open failed on its own file lock (another process has the file open)."""
    text = str(exc)
    return getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) or "errno = 11" in text or \
        "Resource temporarily unavailable" in text


def in_use_error(path: str | Path, exc: BaseException) -> FileInUse | None:
    """The plain "another process is reading or writing this file" error for an HDF5 open that failed on
    HDF5's lock (naming the holder: our lock's, else the process holding HDF5's ``flock``), else None."""
    if not is_lock_conflict(exc):
        return None
    path = Path(path)
    who = holder(path)
    if who.get("pid") == os.getpid():  # our own lock: we hold it, and a reader refused us
        who = {}
    if not who:
        try:
            who = _flock_holder(os.stat(path))
        except OSError:
            pass
    return FileInUse(path, who)
