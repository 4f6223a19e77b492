"""Output paths of the commands that only add a file (``export``, ``render``, ``plot``, a sweep's summaries).

The rule (docs/model.md#file): such a command never replaces a file it did not make for this purpose, and an
earlier output of its own kind survives until the new one is complete.

* :func:`check_output` refuses, with one line naming the path, an output that is the command's input (also
  through a symlink or a hard link: compared by device and inode), a live run's file (its writer holds the
  lock), or any run trajectory of this project (or an HDF5 file that cannot be opened to prove it is not one,
  such as a killed run's file). It reads at most the signature and the root's names; nothing is written.
* :func:`atomic_output` gives a temporary path beside the target (same folder, so the rename stays on one file
  system; hidden; same suffix, so writers that pick the format by suffix still work). On success the file is
  fsynced and renamed over the target; on any failure or interrupt it is removed and the target is as it was.
  A SIGKILL can leave the hidden temporary behind: the next write to the same target removes it.
* A full disk is one line, not a crash: :func:`is_disk_full` is the one test of "this error is ENOSPC" (h5py
  puts the C errno only in its text), :func:`atomic_output` turns it into :class:`NoSpaceLeft` ("no space left
  on device while writing X; nothing was replaced"). HDF5 outputs (:func:`h5_output`) check the room before
  writing (:func:`require_space`), so the handle is usually still sound and is closed with its cached data sent
  to /dev/null (:func:`release_h5`); a write that failed inside HDF5 leaves HDF5 broken (closing the file then
  crashes it), so that handle is never written through, closed or freed again (:func:`abandon_h5`) and the CLI
  leaves at once, as ``vfe run`` does after a DiskFullError.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path

from .lock import writer_active

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_USERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096, 8192)  # where HDF5 may put the superblock (0, then 2^k >= 512)


class OutputRefused(ValueError):
    """The output path names a file this command must not replace (one line, naming it)."""


class NoSpaceLeft(OSError):
    """The disk filled up while writing ``target``; the earlier file there (if any) is as it was."""

    def __init__(self, target, replaced: str = "nothing was replaced"):
        self.target = Path(target)
        super().__init__(errno.ENOSPC, f"no space left on device while writing {target}; {replaced}")

    def line(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` reports a full disk: h5py raises RuntimeError/OSError with the C errno only in the text."""
    text = str(exc)
    return getattr(exc, "errno", None) == errno.ENOSPC or "errno = 28" in text or "No space left on device" in text


_ABANDONED: list = []  # h5py files whose write failed: never closed, never freed (see abandon_h5)


def _redirect_to_null(f) -> None:
    """Point the file's descriptor at /dev/null: whatever HDF5 writes through it from now on goes nowhere."""
    try:
        fd = f.id.get_vfd_handle()
    except Exception:  # noqa: BLE001 - closed already, or a driver without a descriptor: nothing to redirect
        return
    if isinstance(fd, int) and fd >= 0:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)


def release_h5(f) -> None:
    """Close a sound h5py file that is being discarded (its temporary is removed, or the room check refused the
    next write) without writing into the full disk: its cached data go to /dev/null, and the close succeeds."""
    _redirect_to_null(f)
    try:
        f.close()
    except Exception:  # noqa: BLE001 - the file is being discarded; its close has nothing left to save
        pass


def abandon_h5(f) -> None:
    """Leave an h5py file whose write failed inside HDF5 (a full disk) without touching it again.

    After such a failure HDF5's state is broken: closing the file, freeing its objects, even asking for its file
    descriptor can crash the interpreter (a segmentation fault). So the handle is kept, never used, closed or
    freed, as the run's writer does after its DiskFullError; the process should then leave with ``os._exit`` (the
    CLI does) rather than let HDF5 tidy up at exit. Its temporary file is unlinked all the same."""
    _ABANDONED.append(f)


def is_hdf5(path: Path) -> bool:
    """Whether ``path`` is a regular file starting with HDF5's signature (at 0 or after a user block). Only a
    regular file is opened: reading a FIFO would wait for a writer forever."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as fh:
            for offset in _USERBLOCK_OFFSETS:
                fh.seek(offset)
                if fh.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def trajectory_kind(path: Path) -> str | None:
    """Why ``path`` must be treated as a run trajectory ("a run file", "an HDF5 file that cannot be opened"),
    or None when it is not one (not HDF5, or an HDF5 file without the run's ``/parameters`` and ``/checkpoint``).
    Opened read-only without HDF5's file lock: nothing is written, and a live writer is not disturbed."""
    if not is_hdf5(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as f:
            run = "parameters" in f and "checkpoint" in f and "config_json" in f["parameters"].attrs
    except (OSError, KeyError, ValueError):
        return "an HDF5 file that cannot be opened (a killed or live run's file?)"
    return "a run's trajectory file" if run else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(target, inputs=(), command: str = "output") -> None:
    """Raise :class:`OutputRefused` if ``target`` must not be replaced by ``command``; see the module docstring.

    ``inputs``: the files the command reads (the run file). A target that does not exist yet is fine.
    """
    target = Path(target)
    where = f"{command}: {target}"
    if target.is_dir():
        raise OutputRefused(f"{where}: is a folder; give a file name")
    for source in inputs:
        if source is not None and _same_file(target, Path(source)):
            raise OutputRefused(f"{where}: would overwrite the run file {source} itself (the input); "
                                "choose another output")
    holder = writer_active(target)
    if holder is not None:
        raise OutputRefused(f"{where}: a live run is writing this file (pid {holder.get('pid', '?')}); "
                            "refusing to replace it")
    if target.exists():
        if not target.is_file():
            raise OutputRefused(f"{where}: exists and is not a regular file (a FIFO or a device?); refusing to "
                                "replace it")
        kind = trajectory_kind(target)
        if kind is not None:
            raise OutputRefused(f"{where}: exists and is {kind}; refusing to replace it: choose another output")


# The folders the tool itself writes into by default (``runs/NAME.h5``, ``sweeps/NAME/``), relative to the working
# folder: an explicit output there (``-o runs/q.h5``, as the README and the gallery write it) gets the folder
# made, as the default output would.
DEFAULT_FOLDERS = ("runs", "sweeps")


def missing_folder(target) -> str | None:
    """Why ``target``'s folder is missing (one line naming it and the fix), or None when it exists (or cannot
    be judged here: under a file, a name too long; the output's own checks say so), or is one of the
    :data:`DEFAULT_FOLDERS`. A command given an explicit output path refuses any other missing folder instead
    of creating it: ``/typo/dir/x.h5`` is more often a typo than a wish for new folders."""
    try:
        parent = Path(target).parent
        if str(parent) in ("", ".") or parent.exists() or parent.is_symlink():
            return None
        if str(parent) in DEFAULT_FOLDERS:
            return None
        anc = parent
        while not anc.exists() and anc != anc.parent:
            anc = anc.parent
        if not anc.is_dir():
            return None
    except (OSError, ValueError):
        return None
    return f"{target}: the folder {parent} does not exist (not created: a mistyped path would make new folders); " \
           f"create it first (mkdir -p {parent}) or correct the path"


def temporary_path(target: Path) -> Path:
    """A hidden name beside ``target`` with its suffix: ``.movie.mp4.<pid>-<token>.part.mp4``."""
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part{target.suffix}")


def _remove_stale(target: Path) -> None:
    """Remove temporaries of ``target`` left by processes that no longer live (a SIGKILL mid-write)."""
    prefix = f".{target.name}."
    try:
        names = os.listdir(target.parent if str(target.parent) else ".")
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(f".part{target.suffix}")):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            (target.parent / name).unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(target):
    """``with atomic_output("movie.mp4") as tmp: write(tmp)``: the target is replaced only once the body has
    finished and ``tmp`` holds a non-empty file; otherwise ``tmp`` is removed and the target left as it was."""
    target = Path(target)
    _remove_stale(target)
    tmp = temporary_path(target)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"{target}: the writer produced no file; nothing was replaced")
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, NoSpaceLeft) and is_disk_full(exc):
            raise NoSpaceLeft(target) from None
        raise
    try:
        _fsync(target.parent if str(target.parent) else Path("."), directory=True)  # the rename itself
    except OSError:
        pass  # some file systems cannot fsync a folder; the file's data is already on disk


SPACE_RESERVE_BYTES = 1 << 20  # kept free beside an output: HDF5's metadata, the rename, other writers


def require_space(target, needed: int) -> None:
    """Raise :class:`NoSpaceLeft` unless ``needed`` bytes (and :data:`SPACE_RESERVE_BYTES`) are free beside
    ``target``. Called before each batch of HDF5 writes, so a full disk is found while the handle is still sound:
    a write that fails inside HDF5 leaves it in a state where even a released handle may crash at exit."""
    folder = Path(target).parent
    try:
        st = os.statvfs(folder if str(folder) else ".")
    except OSError:
        return  # no statistics (an unusual file system): the write itself will tell
    if st.f_bavail * st.f_frsize < needed + SPACE_RESERVE_BYTES:
        raise NoSpaceLeft(target)


@contextmanager
def full_disk_names(target, replaced: str = "nothing was replaced"):
    """Within the block, an ``OSError`` that reports a full disk (outside an HDF5 write: a lock file, a plain
    write in place) becomes :class:`NoSpaceLeft` naming ``target``."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, NoSpaceLeft) or not is_disk_full(exc):
            raise
        raise NoSpaceLeft(target, replaced) from None


@contextmanager
def h5_output(target, **kw):
    """``with h5_output("x.vtkhdf") as f: f.create_dataset(...)``: an HDF5 file written through
    :func:`atomic_output`. Too little room (:func:`require_space`, here and by the writer before each batch) or a
    failed write (a full disk) releases the handle with :func:`release_h5` and raises :class:`NoSpaceLeft`; the
    target is as it was. After a write that failed inside HDF5 a process should leave soon (the CLI leaves at once,
    as ``vfe run`` does after its DiskFullError): HDF5 may still crash when its objects are freed."""
    import h5py

    require_space(target, 0)  # the reserve at least, before HDF5 holds a handle that a failed write would ruin
    with atomic_output(target) as tmp:
        f = h5py.File(tmp, "w", **kw)
        try:
            yield f
            f.close()
        except BaseException as exc:
            if is_disk_full(exc) and not isinstance(exc, NoSpaceLeft):
                abandon_h5(f)  # a write failed inside HDF5: the handle must not be touched again
            elif f.id.valid:  # never an ordinary close: the file is discarded, and the disk may be full
                release_h5(f)
            if is_disk_full(exc):
                raise NoSpaceLeft(target) from None
            raise


__all__ = ["NoSpaceLeft", "OutputRefused", "abandon_h5", "atomic_output", "check_output", "full_disk_names",
           "missing_folder",
           "h5_output", "is_disk_full", "is_hdf5", "release_h5", "require_space", "temporary_path", "trajectory_kind"]
