"""Opening trajectory files without changing them, and ``vfe repair`` (docs/model.md#file-writing, #file-integrity).

Runs are written in HDF5's SWMR mode, which orders every write so that the file on disk is consistent at any
moment. The price: while a writer has the file open, HDF5 sets "consistency flags" in the superblock, and a
writer killed by SIGKILL cannot clear them, so plain ``h5py.File(path, "r")``, h5dump, HDFView and MATLAB
refuse the file. Readers never write: :func:`open_trajectory_file` (every reader and every read-only ``vfe``
command) reads such a file as it is, in SWMR-read mode, or (a writer killed outside SWMR mode) through a
read-only view with the repaired superblock laid over it in memory (:func:`_open_as_repaired`). Only :func:`repair` (``vfe repair``) and a writer
holding the lock after its read-only checks (``--resume``, ``vfe analyze``) clear the flags, as HDF5's
``h5clear`` tool does (:func:`clear_consistency_flags`), and only in a superblock they can trust
(:func:`superblock_problem`): a damaged superblock is refused, never re-signed.
"""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import h5py

from .checked import read
from .errors import DamagedData, TrajectoryFileError
from .provenance import read_history
from .integrity import check_file, verify
from .schema import CheckpointMismatch, read_checkpoint
from .lock import FileInUse, RunLock, holder, in_use_error, writer_active
from .outputs import full_disk_names

_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def open_trajectory_file(path: str | Path, *, locked: bool = False) -> h5py.File:
    """Open for reading without changing a byte of the file (docs/model.md#file-integrity): every reader
    (``gv.load``, ``vfe inspect``, ``plot``, ``render``, ``export``, ``verify``, the checks before a write).

    A file a SWMR writer holds, or left when it was killed (its consistency flags still set), is read as it is
    in SWMR-read mode, which sees every committed frame and reads past the end-of-file address a killed writer
    left behind. A file SWMR-read mode refuses (a writer killed outside SWMR mode: ``vfe analyze``, a resume
    being set up) is read, when no writer holds its lock (or the caller holds it: ``locked``, the checks of
    ``--resume`` and ``vfe analyze``), as ``vfe repair`` would leave it, through a read-only view
    (:func:`_open_as_repaired`). The flags are never cleared here: only ``vfe repair`` changes a file's
    metadata, and only after proving the file consistent (:func:`repair`); a writer clears them after its
    checks, under the lock."""
    path = require_hdf5(path)
    trusted_superblock(path)  # 48 bytes: a damaged superblock is named as such, whatever HDF5 would make of it
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if (busy := in_use_error(path, exc)) is not None:  # another process has it open (HDF5's lock)
            raise busy from None
        if not _flags_set(exc):
            raise TrajectoryFileError(f"{path}: not a readable HDF5 trajectory ({' '.join(str(exc).split())})") \
                from None
    try:
        return h5py.File(path, "r", swmr=True)
    except OSError as exc:
        if (busy := in_use_error(path, exc)) is not None:
            raise busy from None
        if not locked and writer_active(path) is not None:  # a live writer outside SWMR mode holds the lock
            raise FileInUse(path, holder(path)) from None
    return _open_as_repaired(path)  # its writer is dead: the flags are stale


open_read_only = open_trajectory_file  # the name the integrity checks were written with: one way to read


def _flags_set(exc: BaseException) -> bool:
    """Whether HDF5 refused a plain read-only open for the superblock's consistency flags (a writer has the
    file open, or was killed with it open)."""
    text = str(exc)
    return "already open for write" in text or "consistency flags" in text


def require_intact(path: str | Path) -> None:
    """Before a command writes a run file (``--resume``, ``vfe analyze``): it is this project's and consistent,
    every chunk passes its checksum and the committed checkpoint matches its sha256; else
    :class:`TrajectoryFileError` (one line naming the file and the first damage). Read-only and before the
    file is opened for writing or its flags cleared, so a refusal leaves every byte as it was. Reads the whole
    file once (the analysis reads every frame anyway; a resume pays one read of the file). The caller holds
    the run file's lock (a killed writer's flags are read past, not cleared: :func:`open_trajectory_file`)."""
    with open_read_only(path, locked=True) as f:
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


def resume_basis(path: str | Path, *, locked: bool = False) -> ResumeBasis | None:
    """A read-only look at a run file before it is resumed (no flag cleared, nothing written); None when it
    cannot be read so (a foreign or damaged file: the writer's own checks then say what is wrong). ``locked``:
    the caller holds the file's lock (a resume does), so a file whose writer was killed outside SWMR mode is read
    through the repaired view rather than taken for a live writer's."""
    try:
        with open_read_only(path, locked=locked) as f:
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
    file; the only command that changes a file's metadata. Refuses while a writer holds the file
    (:class:`~.lock.RunFileBusy`), and refuses, without changing a byte (:class:`TrajectoryFileError`, one
    line), a file it cannot prove consistent: a superblock whose checksum fails or whose addresses point
    outside the file (:func:`superblock_problem`), or that would not open as this project's trajectory once
    repaired (tried first on a read-only view of the file with the repaired superblock laid over it). A damaged
    superblock is never re-signed. Returns True if flags were cleared."""
    path = require_hdf5(path)
    with full_disk_names(path, "the file was not changed"), RunLock(path):  # the lock file may not fit
        try:
            sb = trusted_superblock(path)
            with (_open_as_repaired(path) if sb is not None and sb.flags else h5py.File(path, "r")) as f:
                check_file(f, path)
        except (OSError, KeyError, ValueError) as exc:
            why = " ".join(str(exc).replace(f"{path}: ", "").split())
            raise TrajectoryFileError(f"{path}: cannot repair: {why}; the file was not changed") from None
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


class _Overlaid(io.RawIOBase):
    """A file's bytes, read-only, with ``head`` in place of its first bytes: what the file would be after its
    superblock is rewritten, for HDF5 to open (its ``fileobj`` driver) while no byte of the real file changes.
    Closing it closes the file."""

    def __init__(self, path: Path, head: bytes):
        super().__init__()
        self._path = path
        self._fh = open(path, "rb")
        self._head, self._pos = head, 0
        self._size = os.fstat(self._fh.fileno()).st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: offset, 1: self._pos + offset, 2: self._size + offset}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        self._fh.seek(self._pos)
        n = self._fh.readinto(view)
        start, stop = self._pos, min(self._pos + n, len(self._head))
        if start < stop:  # the overlaid superblock's bytes
            view[:stop - start] = self._head[start:stop]
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()

    def __repr__(self) -> str:  # h5py names a file object's file by its repr: messages then name the file
        return str(self._path)


def _open_as_repaired(path: Path) -> h5py.File:
    """The file opened read-only as ``vfe repair`` would leave it (flags cleared, end-of-file address raised):
    the repaired superblock is laid over the file's bytes in memory, never written. For a file nobody writes
    (the caller holds its lock, or has proved the writer dead). Refuses (TrajectoryFileError, one line) a
    superblock :func:`trusted_superblock` does not trust, and a file that does not open even so."""
    sb = trusted_superblock(path)
    if sb is None or not sb.flags:  # no flags to clear: the file does not open for another reason
        raise TrajectoryFileError(f"{path}: not a readable HDF5 file")
    view = _Overlaid(path, sb.cleared(path.stat().st_size))
    try:
        return h5py.File(view, "r")
    except OSError as exc:
        view.close()
        what = "its root group does not open" if "root" in str(exc).lower() else "it does not open"
        raise TrajectoryFileError(f"{path}: left open by a killed writer, and {what} even with its consistency "
                                  f"flags cleared ({' '.join(str(exc).split())})") from None


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


# The superblock, versions 2 and 3 (what this project's files and every SWMR file have; HDF5's format
# specification, "Superblock"): signature (8 bytes), version, size of offsets, size of lengths, file consistency
# flags, then four addresses (base, superblock extension, end of file, root group object header) and the lookup3
# checksum of everything before it.
_SUPERBLOCK_MAX = 12 + 4 * 8 + 4
# How far the end-of-file address may lie beyond the file's size: HDF5 allocates metadata and small raw data in
# blocks of 2 KiB (its defaults, used here) and extends the file when it writes them, so a writer killed after a
# superblock update and before those writes leaves the address a few such blocks ahead. 1 MiB is far more than
# that (and far less than a flipped high bit of an address); a file that is really short is refused by HDF5's own
# "truncated file" check when the repaired superblock is tried (docs/model.md#file-integrity, our reading).
EOF_SLACK = 1 << 20
# Reads of a superblock that looks damaged before it is called so (a read racing a live writer's rewrite of it
# can see half of each; a damaged one looks the same every time).
SUPERBLOCK_READS = 3


@dataclass(frozen=True)
class Superblock:
    version: int
    offset_size: int
    flags: int
    base: int
    extension: int
    eof: int
    root: int
    checksum_ok: bool
    block: bytes  # the bytes the checksum covers

    def cleared(self, file_size: int) -> bytes:
        """The superblock with its flags cleared and its end-of-file address raised to the file's size (a
        killed writer's last allocations lie beyond the address it stored; ``h5clear --increment`` does the
        same), re-signed: for a superblock whose own checksum held (:func:`superblock_problem`)."""
        fmt = {4: "<I", 8: "<Q"}[self.offset_size]
        block = bytearray(self.block)
        block[11] = 0
        struct.pack_into(fmt, block, 12 + 2 * self.offset_size, max(self.eof, file_size))
        return bytes(block) + struct.pack("<I", lookup3(bytes(block)))


def parse_superblock(head: bytes) -> Superblock | None:
    """The superblock at the start of ``head`` (the file's first bytes) if it is version 2 or 3, else None
    (versions 0 and 1 carry no consistency flags). Raises TrajectoryFileError for a size of offsets HDF5 never
    writes."""
    if not head.startswith(_SIGNATURE) or len(head) < 12 or head[8] not in (2, 3):
        return None
    o = head[9]
    if o not in (4, 8) or len(head) < 12 + 4 * o + 4:
        raise TrajectoryFileError(f"the superblock's size of offsets is {o}, not 4 or 8")
    fmt = {4: "<I", 8: "<Q"}[o]
    block = head[:12 + 4 * o]
    base, ext, eof, root = (struct.unpack_from(fmt, block, 12 + k * o)[0] for k in range(4))
    stored = struct.unpack_from("<I", head, len(block))[0]
    return Superblock(head[8], o, head[11], base, ext, eof, root, stored == lookup3(block), block)


def superblock_problem(sb: Superblock, file_size: int) -> str | None:
    """Why the superblock cannot be trusted, or None: its checksum fails (a flipped bit anywhere in it; HDF5
    would refuse it too), or an address points outside the file (the base is not 0, where this project and
    HDF5 put it; the extension or the root group's object header at or beyond the end of file; the end of file
    beyond the file's size by more than :data:`EOF_SLACK`)."""
    undefined = (1 << (8 * sb.offset_size)) - 1
    if not sb.checksum_ok:
        return "the superblock's checksum does not match its contents"
    limit = max(sb.eof, file_size)
    if sb.base != 0:
        return f"the superblock's base address is {sb.base}, not 0"
    if sb.eof > file_size + EOF_SLACK:
        return f"the superblock's end-of-file address {sb.eof} lies beyond the file's {file_size} bytes"
    if sb.root >= limit:
        return f"the superblock's root group address {sb.root} lies outside the file ({file_size} bytes)"
    if sb.extension != undefined and sb.extension >= limit:
        return f"the superblock's extension address {sb.extension} lies outside the file ({file_size} bytes)"
    return None


def trusted_superblock(path: Path) -> Superblock | None:
    """The file's superblock (None for versions 0 and 1), or :class:`TrajectoryFileError` (one line naming the
    file) when :func:`superblock_problem` finds it damaged."""
    for attempt in range(SUPERBLOCK_READS):
        with open(path, "rb") as fh:
            head = fh.read(_SUPERBLOCK_MAX)
            size = os.fstat(fh.fileno()).st_size
        try:
            sb = parse_superblock(head)
        except TrajectoryFileError as exc:
            problem = str(exc)
        else:
            if sb is None or (problem := superblock_problem(sb, size)) is None:
                return sb
        time.sleep(0.01 * (attempt + 1))  # a live SWMR writer may be rewriting it as we read: read it again
    raise TrajectoryFileError(f"{path}: not a readable HDF5 file: {problem}")


def clear_consistency_flags(path: str | Path) -> bool:
    """Clear the superblock's file-consistency flags left by a killed writer (like ``h5clear -s -i``).

    Only for superblock versions 2 and 3 (what SWMR files use). Returns True if flags were cleared. Raises
    :class:`TrajectoryFileError` (nothing written) for a superblock :func:`superblock_problem` does not trust.
    The caller must know that no writer has the file open: ``vfe repair``, and a writer (``--resume``, ``vfe
    analyze``) holding the lock after its read-only checks passed.
    """
    path = Path(path)
    sb = trusted_superblock(path)
    if sb is None or sb.flags == 0:
        return False
    with open(path, "r+b") as fh:
        fh.write(sb.cleared(os.fstat(fh.fileno()).st_size))
    return True
