"""Opening trajectory files robustly, including the file a killed writer left behind (docs/model.md#file-writing).

Runs are written in HDF5's SWMR mode, which orders every write so that the file on disk is consistent at any
moment. The price: while a writer has the file open, HDF5 sets "consistency flags" in the superblock, and a
writer killed by SIGKILL cannot clear them, so plain ``h5py.File(path, "r")``, h5dump, HDFView and MATLAB
refuse the file. :func:`clear_consistency_flags` does what HDF5's ``h5clear`` tool does. :func:`repair` and
:func:`open_trajectory_file` (every reader and every ``vfe`` command) clear the flags as soon as no writer
holds the run file's lock; a file whose writer is alive is opened in SWMR-read mode instead.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import h5py

from .checked import read
from .errors import DamagedData, TrajectoryFileError
from .provenance import read_history
from .integrity import check_file, verify
from .schema import CheckpointMismatch, read_checkpoint
from .lock import RunLock, in_use_error, writer_active
from .outputs import full_disk_names

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_trajectory_file(path: str | Path) -> h5py.File:
    """Open for reading. Flags left by a killed writer are cleared first (when the file is writable); a file
    whose writer is alive is opened in SWMR-read mode, which sees every committed frame."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not is_hdf5(path):
        raise TrajectoryFileError(f"{path}: not an HDF5 file")
    if writer_active(path) is None and os.access(path, os.W_OK):
        clear_consistency_flags(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if (busy := in_use_error(path, exc)) is not None:  # another process has it open (HDF5's lock)
            raise busy from None
        if "already open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise TrajectoryFileError(f"{path}: not a readable HDF5 trajectory ({' '.join(str(exc).split())})") \
                from None
        return h5py.File(path, "r", swmr=True)


def open_read_only(path: str | Path) -> h5py.File:
    """Open for reading without changing a byte (``vfe verify``, the resume pre-check): flags a killed writer
    left are read past in SWMR-read mode, never cleared."""
    path = require_hdf5(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if (busy := in_use_error(path, exc)) is not None:
            raise busy from None
        if "already open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise TrajectoryFileError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())})") from None
        return h5py.File(path, "r", swmr=True)


def require_intact(path: str | Path) -> None:
    """Before a command writes a run file (``--resume``, ``vfe analyze``): it is this project's and consistent,
    every chunk passes its checksum and the committed checkpoint matches its sha256; else
    :class:`TrajectoryFileError` (one line naming the file and the first damage). Read-only and before the
    file is opened for writing or its flags cleared, so a refusal leaves every byte as it was. Reads the whole
    file once (the analysis reads every frame anyway; a resume pays one read of the file)."""
    with open_read_only(path) as f:
        check_file(f, path)
        result = verify(f, path)
        if result.damaged:
            more = len(result.damaged) - 1
            raise DamagedData(f"{path}: {result.damaged[0]}" + (f" (and {more} more damaged dataset"
                                                                  f"{'s' if more > 1 else ''})" if more else ""))
        try:
            read_checkpoint(f)
        except CheckpointMismatch as exc:
            raise DamagedData(f"{path}: {exc}") from None


@dataclass(frozen=True)
class ResumeBasis:
    """What a resume is checked against: the stored configuration (the first one; an older version's latest),
    the history, and whether there is a checkpoint to continue."""

    config: dict
    history: list
    has_checkpoint: bool


def resume_basis(path: str | Path) -> ResumeBasis | None:
    """A read-only look at a run file before it is resumed (no flag cleared, nothing written); None when it
    cannot be read so (a foreign or damaged file: the writer's own checks then say what is wrong)."""
    try:
        with open_read_only(path) as f:
            return ResumeBasis(json.loads(f["parameters"].attrs["config_json"]), read_history(f),
                               int(read(f["checkpoint"]["active"])[0]) >= 0)
    except (OSError, KeyError, ValueError, TypeError):
        return None



def is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _SIGNATURE
    except OSError:
        return False


def require_hdf5(path: str | Path) -> Path:
    """``path`` as a Path, if it names an existing HDF5 file (else FileNotFoundError or OSError naming it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not is_hdf5(path):
        raise TrajectoryFileError(f"{path}: not an HDF5 file")
    return path


def repair(path: str | Path) -> bool:
    """``vfe repair``: clear the consistency flags a killed writer left, so that every HDF5 tool opens the
    file. Refuses while a writer holds the file (:class:`~.lock.RunFileBusy`). Returns True if flags were set."""
    path = require_hdf5(path)
    with full_disk_names(path, "the file was not changed"), RunLock(path):  # the lock file may not fit
        cleared = clear_consistency_flags(path)
        if cleared:
            _record_repair(path)
        return cleared


def _record_repair(path: Path) -> None:
    """A repair that cleared the flags is recorded in the run's history (docs/model.md#file-provenance). Without
    1 MiB free the record is left out (the repair is still only the flags), so HDF5 never fails a write here."""
    from . import provenance
    from .outputs import abandon_h5, is_disk_full
    from .schema import LIBVER

    st = os.statvfs(path.parent)
    if st.f_bavail * st.f_frsize < (1 << 20):
        return
    f = h5py.File(path, "a", libver=LIBVER)
    try:
        before = provenance.before_record(f, None) if provenance.GROUP not in f else None
        k = provenance.append(f, provenance.invocation("repair", call="repair"), before=before)
        provenance.finish(f, k, "completed", None)
        f.close()
    except BaseException as exc:
        if is_disk_full(exc):
            abandon_h5(f)
        elif f.id.valid:
            f.close()
        raise


def writer_alive(pid: int, host: str) -> bool | None:
    """Whether the process that wrote a file still runs (None when it ran on another host)."""
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, the checksum HDF5 puts on superblocks v2/v3."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & 0xFFFFFFFF
    m = 0xFFFFFFFF
    i = 0
    while length > 12:
        a = (a + struct.unpack_from("<I", data, i)[0]) & m
        b = (b + struct.unpack_from("<I", data, i + 4)[0]) & m
        c = (c + struct.unpack_from("<I", data, i + 8)[0]) & m
        a = (a - c) & m; a ^= _rot(c, 4); c = (c + b) & m  # noqa: E702 - the mix step as published
        b = (b - a) & m; b ^= _rot(a, 6); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 8); b = (b + a) & m  # noqa: E702
        a = (a - c) & m; a ^= _rot(c, 16); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= _rot(a, 19); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 4); b = (b + a) & m  # noqa: E702
        length -= 12
        i += 12
    if length == 0:
        return c
    tail = data[i:] + b"\x00" * (12 - length)
    a = (a + struct.unpack_from("<I", tail, 0)[0]) & m
    b = (b + struct.unpack_from("<I", tail, 4)[0]) & m
    c = (c + struct.unpack_from("<I", tail, 8)[0]) & m
    c ^= b; c = (c - _rot(b, 14)) & m  # noqa: E702 - the final step as published
    a ^= c; a = (a - _rot(c, 11)) & m  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & m  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & m  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & m  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & m  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & m  # noqa: E702
    return c


def clear_consistency_flags(path: str | Path) -> bool:
    """Clear the superblock's file-consistency flags left by a killed writer (like ``h5clear -s -i``).

    Only for superblock versions 2 and 3 (what SWMR files use). Returns True if flags were cleared.
    The caller must know that no writer has the file open.
    """
    path = Path(path)
    with open(path, "r+b") as fh:
        head = fh.read(64)
        if not head.startswith(_SIGNATURE):
            raise OSError(f"{path}: not an HDF5 file (superblock not at offset 0)")
        version = head[8]
        if version not in (2, 3):
            return False
        o = head[9]  # size of offsets
        flags = head[11]
        if flags == 0:
            return False
        fmt = {4: "<I", 8: "<Q"}[o]
        end = 12 + 4 * o
        block = bytearray(head[:end])
        block[11] = 0
        # The end-of-file address in the superblock lags behind a killed writer's last allocations: raise it
        # to the file's size, or HDF5 refuses the objects written since (what `h5clear --increment` does).
        eof_at = 12 + 2 * o
        stored_eof = struct.unpack_from(fmt, block, eof_at)[0]
        struct.pack_into(fmt, block, eof_at, max(stored_eof, path.stat().st_size))
        checksum = lookup3(bytes(block))
        fh.seek(0)
        fh.write(bytes(block))
        fh.write(struct.pack("<I", checksum))
    return True
