"""Writing the trajectory file (docs/model.md#file, #file-writing, #checkpoint).

Part of the io layer, the only code that knows HDF5. The design, so that no ordinary event loses a run:

* **One owner, one handle.** The writer holds the run file's exclusive lock (:mod:`.lock`) and one HDF5 handle,
  from :meth:`TrajectoryWriter.create` or :meth:`TrajectoryWriter.resume` to :meth:`close`. Nothing reopens
  the file by path while the run lives, so a reader left open in a notebook cannot break the run.
* **SWMR for the whole session.** Every dataset, including the run's status and the analysis results, is
  created up front (under a temporary name, renamed to the run's path once complete, so that a kill while
  creating it never leaves a half-made file at the path); afterwards the writer only appends, resizes and overwrites datasets, which HDF5's SWMR
  mode orders so that the file on disk is consistent at every moment, for readers and after a kill.
* **Atomic frames.** Logged frames are written in batches: the batch's values and times (every field) first,
  then the energies up to its last step, then its last frame as the checkpoint (into the idle one of two slots
  ``/checkpoint/slot0|1``, then ``/checkpoint/active`` switches to it), and the fields' ``step`` entries last,
  ``mu``'s last of all: they are the commit, and ``mu``'s count alone is the committed count. Readers count
  only committed frames. ``--resume`` first commits the frames a kill left written but uncommitted up to the
  checkpoint (every value and time is on disk before the checkpoint switches), then cuts every series back to
  the checkpoint; so the checkpoint is never behind the last committed frame, nor ahead of the frames written.
* **Logging that costs little.** Logging a frame or a step's energies only copies them into memory; they are
  written as one batch, with the checkpoint of the last frame, once the flush budget ``flush_seconds``
  (:data:`FLUSH_SECONDS`, 1 s of wall time) has passed since the last write (checked at every step), when the
  buffered frames reach :data:`FRAME_BUFFER_BYTES`, and always: for a new file's first frame (so that a file
  always has a checkpoint), at a checkpoint (Ctrl-C, SIGTERM), at the end of the run whatever its status, for
  the analysis and when the file is closed. One write a second instead of some forty HDF5 calls a frame keeps
  ``vfe run`` near the engine's speed (``benchmarks/bench_logging.py``).
* **What a SIGKILL costs.** The frames and energies logged since the last completed write: at most those of the
  last ``flush_seconds`` + one step + one write before the kill (the buffer cap can only make it less). With
  steps of ``t`` seconds that is at most ``1 + (flush_seconds + t + write) / (every * t)`` frames: on B1
  (2-3 ms a step, a write of some 10-30 ms) at ``output.every: 10``, at most about 55 frames (550 steps). The
  file keeps every frame up to that write and its checkpoint is the last of them, so ``--resume`` recomputes
  the lost frames and is bit-identical to a run never stopped. A reader (SWMR) sees no frame later than this
  bound after it was logged.
* **Analysis cannot harm the run.** It is written through the same handle into the pre-created analysis
  datasets, with ``/observables/analysis_frames`` set to -1 first and to the number of frames last: a kill or
  a full disk in between leaves the frames intact and the analysis marked missing (``vfe analyze`` redoes it).
* **A full disk is a message, not a crash.** Free space is checked before every frame and every batch
  (buffered frames that no longer fit are dropped whole, never half written); an HDF5 write that still fails
  with ENOSPC raises :class:`DiskFullError` naming the frame, and the writer then never touches HDF5 again
  (HDF5 cannot close a file it failed to write; the caller ends the process, see ``vfe run``).
* ``time`` is the step count as a float (descent has no physical time; the step sizes are in
  ``/parameters/config_json``). Files are written in the HDF5 1.10 format (:data:`.schema.LIBVER`).
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from ..model.layout import Layout
from ..model.state import State
from . import provenance
from .provenance import now as _now
from .provenance import versions
from . import schema  # STEP_SERIES read by attribute: the table as it is when a file is made or resumed
from .analysis_store import create_analysis_datasets, write_analysis
from .lock import RunLock, in_use_error
from .outputs import is_disk_full
from .reader import Trajectory
from .errors import TrajectoryFileError
from .recovery import clear_consistency_flags, open_read_only, require_intact
from .schema import (ANALYSIS_FRAMES, CHECKPOINT_HASH, CHECKPOINT_RNG, CHECKPOINT_SLOTS, FIELDS, FORMAT_VERSION,
                     H5MD_BOUNDARY, H5MD_PARTICLES, INFO_BITS, LIBVER, REQUIRED_FIELDS, SERIES_BY_KEY, STATUS_LENGTH,
                     TIME_LENGTH, annotate, checkpoint_hash, committed_frames, create_series, fixed_dataset,
                     fixed_text, frame_path, h5md_string, layout_sizes, read_checkpoint, read_checkpoint_rng,
                     run_record, text_dataset, write_text)

# The flush budget: buffered frames and energies are written at least this often (seconds of wall time), so a
# SIGKILL loses at most this long (plus one step) of logging, and SWMR readers lag at most this much.
FLUSH_SECONDS = 1.0
# Buffered frames beyond this size are written at once, whatever the time (fast steps, large frames, every: 1).
FRAME_BUFFER_BYTES = 64 << 20

# Free space kept in reserve when a frame is written: the frame itself (uncompressed, twice: value and
# checkpoint) plus room for HDF5's metadata and the final status, so that the file can always be closed.
DISK_RESERVE_BYTES = 1 << 20


class DiskFullError(OSError):
    """The disk filled up while writing; the file holds every frame committed before."""

    def __init__(self, what: str, frames: int):
        self.frames = frames
        held = f"frames 0..{frames - 1}" if frames else "no frame"
        super().__init__(errno.ENOSPC, f"no space left on device while writing {what}; the file holds {held}; "
                                       "free space and run again with --resume")


_is_disk_full = is_disk_full  # the one test of ENOSPC, shared with every other writer (.outputs)


class TrajectoryWriter:
    """Streams one run into one ``.h5`` file. Use :meth:`create` or :meth:`resume`, then :meth:`close`."""

    def __init__(self, f: h5py.File, path: Path, fields: list[str], lock: RunLock, flush_seconds: float | None = None):
        """``flush_seconds``: the flush budget (None: :data:`FLUSH_SECONDS` as it is when the writer is made)."""
        self._f = f
        self.path = path
        self.fields = fields
        self.lock = lock
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self._last_flush = time.monotonic()
        self._closed = False
        self._record: int | None = None  # this invocation's history record (.provenance), ended by close
        self._broken = False  # an HDF5 write failed: the handle must not be used again
        self._frames = committed_frames(f, fields)
        # every dataset the run appends to, looked up once: a lookup by path costs as much as a small write
        self._field_datasets = {name: f[frame_path(name)] for name in fields}
        self._energy_series = _energy_series(f)
        self._checkpoint_slots = [f[f"checkpoint/{slot}"] for slot in CHECKPOINT_SLOTS]
        self._checkpoint_active = f["checkpoint/active"]
        self._active_slot = int(self._checkpoint_active[0])  # -1: no checkpoint yet
        self._n_agents = f[INFO_BITS]["value"].shape[1]
        value = self._field_datasets[fields[0]]["value"]
        self.dtype = str(value.dtype)
        self.max_value = float(np.finfo(value.dtype).max)
        self._frame_bytes = sum(self._field_datasets[n]["value"].dtype.itemsize *
                                int(np.prod(self._field_datasets[n]["value"].shape[1:])) for n in fields)
        # what is logged but not yet written (see the module docstring)
        self._energy_buffer: list[tuple] = []
        self._frame_buffer: list[BufferedFrame] = []
        self._checkpoint_due: tuple[State, dict | None] | None = None  # the last buffered frame's state
        steps = self._field_datasets[fields[0]]["step"]
        self._last_frame_step = int(steps[self._frames - 1]) if self._frames else None

    # --- construction ----------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path, layout: Layout, config_json: str, scenario_yaml: str, seed: int, lock: RunLock,
               dtype: str = "float32", fields=("mu", "sigma", "phi"), compression: str = "gzip",
               compression_level: int = 1, flush_seconds: float | None = None,
               record: dict | None = None) -> "TrajectoryWriter":
        """A new file at ``path`` (which must not exist); ``lock`` is the path's lock, held by the caller.
        ``record``: this invocation's history record (:mod:`.provenance`), stored with the file as ``running``
        and ended by :meth:`close`."""
        path = Path(path)
        if not lock.held:
            raise RuntimeError(f"{path}: the run file's lock must be held to write it")
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_space(path, 4 * DISK_RESERVE_BYTES, "the new file", 0)
        # built under a temporary name and renamed once complete: a kill while creating it leaves no file at
        # the path, only a temporary one, which the next run on the path removes (it holds the path's lock, so
        # no live run is creating it)
        if path.exists():
            raise FileExistsError(f"{path}: exists (a new run never replaces a file)")
        for stale in path.parent.glob(f".{path.name}.creating-*"):
            stale.unlink(missing_ok=True)
        building = path.parent / f".{path.name}.creating-{os.getpid()}"
        f = h5py.File(building, "x", libver=LIBVER)
        try:
            lock.cover(building)  # locked by its inode before it takes the run's name (docs: io/lock.py)
            _write_static(f, layout, config_json, scenario_yaml, seed)
            comp = {} if compression == "none" else (
                {"compression": "gzip", "compression_opts": compression_level, "shuffle": True}
                if compression == "gzip" else {"compression": "lzf", "shuffle": True})
            sizes = _sizes(layout)
            for name in fields:
                create_series(f, SERIES_BY_KEY[name], sizes, dtype, **comp)
            for series in schema.STEP_SERIES:
                create_series(f, series, sizes)
            create_analysis_datasets(f, layout.n_agents, layout.n_rows)
            ck = f.create_group("checkpoint")
            for slot in CHECKPOINT_SLOTS:
                g = ck.create_group(slot)
                for name in REQUIRED_FIELDS:  # the state in float64, shaped as its logged field
                    fixed_dataset(g, name, shape=SERIES_BY_KEY[name].shape(sizes), dtype=np.float64)
                fixed_dataset(g, "step", [-1], dtype=np.int64)
                text_dataset(g, CHECKPOINT_RNG, "")  # the Langevin noise's generator and key (JSON), with the state
                fixed_dataset(g, CHECKPOINT_HASH, shape=(32,), dtype=np.uint8)  # sha256 of the slot, written last
            fixed_dataset(ck, "active", [-1], dtype=np.int8)
            provenance.create(f)
            k = provenance.append(f, record) if record is not None else None
            annotate(f)  # units and descriptions: attributes, so before the SWMR session
            ck.attrs["rng"] = json.dumps({"bit_generator": "PCG64", "root_seed": seed, "purposes": "SeedSequence "
                                          "spawn keys (docs/model.md#random-streams); the Langevin noise is "
                                          "counter-based, keyed by the dynamics purpose (key 8), its generator "
                                          "and key stored with each checkpoint slot as `rng` "
                                          "(docs/model.md#noise)"})
            f.swmr_mode = True
            f.flush()
            os.rename(building, path)  # the open handle follows the file
        except BaseException:
            f.close()
            building.unlink(missing_ok=True)  # ours, never written: nothing to keep
            raise
        writer = cls(f, path, list(fields), lock, flush_seconds)
        writer._record = k
        return writer

    @classmethod
    def resume(cls, path, layout: Layout, config_json: str, lock: RunLock, flush_seconds: float | None = None, *,
               refusal: Callable[[State, dict | None], str | None], record: dict | None = None):
        """Reopen ``path`` for appending at its checkpoint. Returns ``(writer, checkpoint_state)``.

        ``lock`` (held by the caller) proves that no writer is alive, so consistency flags a killed writer
        left are cleared first. Every series is cut back to the checkpoint, and a stored analysis is marked
        missing (the end of the run writes it again). ``refusal(checkpoint_state, checkpoint_rng)`` is the run
        code's policy (which checkpoints the dynamics can continue): a text it returns is raised as a
        ``ValueError`` before anything in the file changes; required, so that no caller skips it unawares. The file
        format's own checks stay here.

        ``/parameters/config_json`` keeps the configuration the run was created with: what a resume changed is in
        its ``record`` (:mod:`.provenance`, appended as ``running``, ended by :meth:`close`), so the file never
        claims a setting its earlier steps did not use (docs/model.md#resume-settings).
        """
        path = Path(path)
        if not lock.held:
            raise RuntimeError(f"{path}: the run file's lock must be held to write it")
        # read-only: every refusal (a foreign, inconsistent or damaged file, another scenario, a checkpoint the
        # run cannot continue) comes before a byte of the file changes (docs/model.md#file-integrity)
        state = _check_resumable(path, layout, config_json, refusal)
        clear_consistency_flags(path)
        try:
            f = h5py.File(path, "a", libver=LIBVER)
        except OSError as exc:  # a reader holds HDF5's own lock on it: say so, not "[Errno 11]"
            raise (in_use_error(path, exc) or exc) from None
        try:
            _commit_written_frames(f, state.step)
            _truncate_after(f, state.step)
            for series in schema.STEP_SERIES:  # a series an older version did not log starts at the resumed step
                if series.path not in f:
                    create_series(f, series, _sizes(layout))
            for slot in CHECKPOINT_SLOTS:
                if CHECKPOINT_RNG not in f["checkpoint"][slot]:
                    text_dataset(f["checkpoint"][slot], CHECKPOINT_RNG, "")
            fields = [name for name in FIELDS if frame_path(name) in f]
            if ANALYSIS_FRAMES not in f:
                create_analysis_datasets(f, layout.n_agents, layout.n_rows)
            # before the status changes: a file without a history is described as its older writers left it
            k = _append_record(f, record, state.step) if record is not None else None
            f[ANALYSIS_FRAMES][0] = -1
            p = f["parameters"]
            p["status"][0] = b"running"
            write_text(p["message"], "")
            p.attrs["writer_pid"] = os.getpid()
            p.attrs["writer_host"] = socket.gethostname()
            p.attrs["resumed_at"] = _now()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        writer = cls(f, path, fields, lock, flush_seconds)
        writer._record = k
        return writer, state

    # --- guarding every HDF5 write ---------------------------------------------------------------------------
    def _write(self, what: str, fn, *args):
        if self._broken or self._closed:
            raise RuntimeError(f"{self.path}: the writer can no longer write ({what})")
        try:
            return fn(*args)
        except (RuntimeError, OSError) as exc:
            self._broken = True
            if _is_disk_full(exc):
                raise DiskFullError(what, self._frames) from None
            raise

    # --- appending -------------------------------------------------------------------------------------------
    @property
    def broken(self) -> bool:
        """An HDF5 write failed (a full disk): the file is left as a killed writer leaves it."""
        return self._broken

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def frames(self) -> int:
        """Logged frames committed to the file so far (buffered ones not counted)."""
        return self._frames

    @property
    def buffered_frames(self) -> int:
        """Logged frames held in memory, not yet in the file (written by :meth:`flush`)."""
        return len(self._frame_buffer)

    def log_energy(self, step: int, terms: dict, grad_norms: dict, spd_retractions: int,
                   info_bits: np.ndarray | None = None, frame_follows: bool = False, **values) -> None:
        """Buffer one step's energies, with the bits of belief update per agent of the step that produced the
        state (zeros when not given, e.g. at step 0); written when the flush budget is spent. ``values``: any
        further series of :data:`.schema.STEP_SERIES`, by key.

        ``frame_follows``: the caller logs this step's frame next; a write that is due waits for it, so that the
        batch ends with that frame and the checkpoint is taken there."""
        if info_bits is None:
            info_bits = np.zeros(self._n_agents)
        self._energy_buffer.append((step, sum(terms.values()), terms, grad_norms, spd_retractions,
                                    np.asarray(info_bits, dtype=np.float64), values))
        if not frame_follows:
            self._flush_if_due()

    def log_frame(self, state: State, beta: np.ndarray | None = None, rng_state: dict | None = None) -> None:
        """Log the state as a frame and make it the checkpoint, with the Langevin noise's description
        ``rng_state`` (its generator and key): copied into memory now, written with the next batch (see the
        module docstring)."""
        if state.step == self._last_frame_step:  # the final frame logged twice: it only becomes the checkpoint
            self._checkpoint_due = (state, rng_state)
            self._flush_if_due()
            return
        values = {}
        for name in self.fields:
            data = beta if name == "beta" else getattr(state, name)
            if data is None:
                raise ValueError("beta is logged but was not given")
            values[name] = np.array(data, dtype=self.dtype)  # a copy, in the file's precision
        self._check_frame_space(state.step)
        self._frame_buffer.append(BufferedFrame(state.step, values))
        self._last_frame_step = state.step
        self._checkpoint_due = (state, rng_state)
        self._flush_if_due()

    def _check_frame_space(self, step: int) -> None:
        """Room for a new frame, the frames already buffered and a checkpoint; else the buffered ones go in
        while they fit, and the new one must fit alone (a :class:`DiskFullError` names it otherwise)."""
        if _has_space(self.path, (len(self._frame_buffer) + 2) * self._frame_bytes + DISK_RESERVE_BYTES):
            return
        self.flush()
        _check_space(self.path, 2 * self._frame_bytes + DISK_RESERVE_BYTES, f"frame {self._frames} (step {step})",
                     self._frames)

    def _flush_if_due(self) -> None:
        # a new file's first frame goes in at once: until then it has no checkpoint, and a kill would leave
        # nothing to resume
        buffered = len(self._frame_buffer) * self._frame_bytes
        if time.monotonic() - self._last_flush >= self.flush_seconds or (buffered and self._active_slot < 0) or \
                buffered >= FRAME_BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered now: the frames' values and times, the energies, the last frame as the
        checkpoint, then the frames' steps (the commit). Safe to call at any moment."""
        self._check_batch_space()
        self._write(self._batch_name(), self._flush)

    def _batch_name(self) -> str:
        if not self._frame_buffer:
            return "the energies"
        last = self._frames + len(self._frame_buffer) - 1
        return f"frame {last} (step {self._frame_buffer[-1].step})" if last == self._frames else \
            f"frames {self._frames}..{last} (steps {self._frame_buffer[0].step}..{self._frame_buffer[-1].step})"

    def _check_batch_space(self) -> None:
        """Room for the buffered frames and a checkpoint, checked before any of them is written. Frames that do
        not fit are dropped, never half written: the file keeps the frames and the checkpoint it has (and
        ``--resume`` recomputes the rest), and the :class:`DiskFullError` says which frames it holds."""
        if not self._frame_buffer:
            return
        what = self._batch_name()
        try:
            _check_space(self.path, (len(self._frame_buffer) + 1) * self._frame_bytes + DISK_RESERVE_BYTES, what,
                         self._frames)
        except DiskFullError:
            self._drop_frame_buffer()
            raise

    def _drop_frame_buffer(self) -> None:
        self._frame_buffer = []
        self._checkpoint_due = None
        self._last_frame_step = int(self._field_datasets[self.fields[0]]["step"][self._frames - 1]) \
            if self._frames else None

    def _flush(self) -> None:
        if self._frame_buffer:
            self._write_frames()
        self._flush_energies()
        self._write_checkpoint_due()  # the final frame logged twice leaves only its checkpoint to write
        self._f.flush()
        self._last_flush = time.monotonic()

    def _write_checkpoint_due(self) -> None:
        if self._checkpoint_due is not None:
            self._checkpoint(*self._checkpoint_due)
            self._checkpoint_due = None

    def _write_frames(self) -> None:
        """The buffered frames as one batch (order: module docstring). Rewritten whole if the write is
        interrupted (a Ctrl-C in a notebook) and retried: it starts at the committed count again."""
        frames, start = self._frame_buffer, self._frames
        steps = np.array([frame.step for frame in frames], dtype=np.int64)
        for name in self.fields:
            g = self._field_datasets[name]
            _put(g["value"], start, np.stack([frame.values[name] for frame in frames]))
            _put(g["time"], start, steps.astype(np.float64))
        self._flush_energies()  # a frame counts only with the energies up to its step
        # the checkpoint before the commit: a kill can then never leave it behind the committed frames (as it
        # could by a whole batch otherwise); resume commits the frames it follows (_commit_written_frames)
        self._write_checkpoint_due()
        for name in reversed(self.fields):  # mu's steps last: its count alone is the committed count
            _put(self._field_datasets[name]["step"], start, steps)
        self._frames += len(frames)
        self._frame_buffer = []

    def checkpoint(self, state: State, rng_state: dict | None = None) -> None:
        """Make ``state`` the checkpoint now: the buffered frames and energies first, then the idle slot, then
        the switch (an interrupted run: its last state, which need not be a frame)."""
        self._check_batch_space()
        self._write(f"the checkpoint (step {state.step})", self._checkpoint_now, state, rng_state)

    def _checkpoint_now(self, state: State, rng_state: dict | None) -> None:
        self._flush()  # the buffered frames, committed with their own checkpoint
        self._checkpoint(state, rng_state)
        self._f.flush()

    def settle_checkpoint(self) -> None:
        """At the end of a run: both slots hold the final state and slot 0 is active, so a finished file has
        the same bytes however the run got there (stopped and resumed, or not). Safe at every moment: the
        slot being written is never the active one."""
        self._check_batch_space()
        self._write("the final checkpoint", self._settle)

    def _settle(self) -> None:
        self._flush()  # a checkpoint still due goes in first
        active = int(self._checkpoint_active[0])
        if active < 0:
            return
        src, dst = self._checkpoint_slots[active], self._checkpoint_slots[1 - active]
        for name in ("mu", "sigma", "phi", "step") + ((CHECKPOINT_HASH,) if CHECKPOINT_HASH in dst else ()):
            dst[name][...] = src[name][...]
            dst[name].flush()
        if CHECKPOINT_RNG in src and CHECKPOINT_RNG in dst:
            dst[CHECKPOINT_RNG].resize(src[CHECKPOINT_RNG].shape)
            dst[CHECKPOINT_RNG][...] = src[CHECKPOINT_RNG][...]
            dst[CHECKPOINT_RNG].flush()
        self._switch_checkpoint(0)
        self._f.flush()

    def _checkpoint(self, state: State, rng_state: dict | None = None) -> None:
        """``state`` into the idle slot, then the switch (the caller has written the energies up to it)."""
        # the committed slot as the file says: a write interrupted in a notebook may have switched it already
        slot = 1 if int(self._checkpoint_active[0]) == 0 else 0
        g = self._checkpoint_slots[slot]
        for name in ("mu", "sigma", "phi"):
            g[name][...] = getattr(state, name)
            g[name].flush()
        rng_text = json.dumps(rng_state, sort_keys=True) if rng_state is not None else ""
        if CHECKPOINT_RNG in g:  # written before the switch below: the generator goes with its state
            write_text(g[CHECKPOINT_RNG], rng_text)
        g["step"][0] = state.step
        g["step"].flush()
        if CHECKPOINT_HASH in g:  # what resume checks the slot against (older files' slots have none)
            g[CHECKPOINT_HASH][...] = checkpoint_hash(state.mu, state.sigma, state.phi, state.step,
                                                      rng_text.encode("utf-8") if CHECKPOINT_RNG in g else b"")
            g[CHECKPOINT_HASH].flush()
        self._switch_checkpoint(slot)

    def _switch_checkpoint(self, slot: int) -> None:
        self._checkpoint_active[0] = slot
        self._checkpoint_active.flush()
        self._active_slot = slot

    def _flush_energies(self) -> None:
        """The buffered energies, every series from its own length on: an interrupted write, retried, rewrites
        the same entries instead of appending them twice."""
        buf = self._energy_buffer
        if not buf:
            return
        steps = np.array([b[0] for b in buf], dtype=np.int64)
        for name, series in self._energy_series.items():
            column = _column(buf, name)
            dtype = series.value.dtype
            series.write(steps, np.stack(column).astype(dtype, copy=False) if series.value.ndim > 1
                         else np.asarray(column, dtype=dtype))
        for series in self._energy_series.values():
            series.length += len(buf)
        self._energy_buffer = []

    # --- the analysis, through the same handle ---------------------------------------------------------------
    def reader(self) -> Trajectory:
        """The file (everything buffered written first), read through the writer's own handle (the analysis)."""
        self.flush()
        return Trajectory(self.path, handle=self._f)

    def write_analysis(self, result) -> None:
        _check_space(self.path, DISK_RESERVE_BYTES + result.plaquette_angle.nbytes * 2, "the analysis", self._frames)
        self._write("the analysis", write_analysis, self._f, result)

    # --- closing ---------------------------------------------------------------------------------------------
    def _last_logged_step(self) -> int | None:
        """The last step whose energies are in the file (the run's last step once everything is written)."""
        series = self._energy_series["total"]
        return int(series.step[series.length - 1]) if series.length else None

    def close(self, status: str, message: str = "") -> None:
        """Write what is buffered, record the final status, end the session, release the lock. After a failed
        write (a full disk) HDF5 cannot close the file: it is left as a killed writer leaves it (``vfe repair``
        clears it). Buffered frames without room on the disk are dropped (the file keeps its frames and
        checkpoint), and their :class:`DiskFullError` is raised once the file is closed."""
        if self._closed:
            return
        self._closed = True
        no_room = None
        try:
            if not self._broken:
                try:
                    try:
                        self._check_batch_space()
                    except DiskFullError as exc:
                        no_room = exc
                    self._flush()
                    p = self._f["parameters"]
                    p["status"][0] = status.encode()[:STATUS_LENGTH]
                    p["status"].flush()
                    write_text(p["message"], message)
                    p["finished_at"][0] = _now().encode()
                    p["finished_at"].flush()
                    if self._record is not None:
                        provenance.finish(self._f, self._record, status, self._last_logged_step())
                    self._f.close()
                except (RuntimeError, OSError) as exc:
                    self._broken = True
                    if _is_disk_full(exc):
                        raise DiskFullError("the final status", self._frames) from None
                    raise
        finally:
            self.lock.release()
        if no_room is not None:
            raise no_room


def _append_record(f: h5py.File, record: dict, step: int) -> int:
    """Append a resume's history record (from checkpoint ``step``). A run record an earlier invocation left
    ``running`` was killed: the steps it kept end at this checkpoint. A file without a history gets its first
    record, for what older versions wrote."""
    record = {**record, "first_step": step}
    history = provenance.read_history(f)
    k = provenance.last_run_record(history)
    if k is not None and history[k]["status"] == "running":
        provenance.set_last_step(f, k, step)
    before = provenance.before_record(f, step) if provenance.GROUP not in f else None
    return provenance.append(f, record, before=before)


def _check_resumable(path: Path, layout: Layout, config_json: str,
                     refusal: Callable[[State, dict | None], str | None]) -> State:
    """Every check of :meth:`TrajectoryWriter.resume`, read-only, before the file is opened for writing or its
    flags cleared, so that a refused resume leaves every byte as it was: :func:`.recovery.require_intact` (this
    project's file, every chunk and the checkpoint's hash intact), then the scenario, the checkpoint, the run
    code's ``refusal`` and the layout. Returns the checkpoint's state; refusals are ValueErrors (one line),
    :class:`NoCheckpointYet` for a file that holds no frame."""
    try:
        require_intact(path)
    except TrajectoryFileError as exc:
        raise ValueError(f"cannot resume: {exc}") from None
    with open_read_only(path, locked=True) as f:
        stored = json.loads(f["parameters"].attrs["config_json"])
        mine = json.loads(config_json)
        for section in stored:
            if section not in ("dynamics", "output", "analysis") and \
                    stored[section] != _without_new_unset_keys(stored[section], mine.get(section)):
                raise ValueError(f"{path}: cannot resume: the scenario's `{section}` differs from the run's")
        if "status" not in f["parameters"]:
            raise ValueError(f"{path}: cannot resume a file written by an older version of gauge-vfe")
        state = read_checkpoint(f)
        if state is None:
            raise NoCheckpointYet(f"{path}: the run was stopped before its first write (no checkpoint)")
        if (problem := refusal(state, read_checkpoint_rng(f))) is not None:
            raise ValueError(f"{path}: {problem}")
        if state.mu.shape != (layout.n_rows, layout.K):
            raise ValueError(f"{path}: cannot resume: stored state does not match the layout")
    return state


class NoCheckpointYet(ValueError):
    """The file has no checkpoint: its run was killed between creating it and its first write, so it holds no
    frame (the first frame is written with the first checkpoint). The caller may start the run again in it."""


def _without_new_unset_keys(stored, mine):
    """``mine`` without the keys that a newer version added unset (None) and the stored configuration lacks
    (e.g. ``observations.resample_every``), so a run of an older version can still be resumed."""
    if isinstance(stored, dict) and isinstance(mine, dict):
        return {k: _without_new_unset_keys(stored.get(k), v) for k, v in mine.items() if k in stored or v is not None}
    return mine


def _sizes(layout: Layout) -> dict:
    return layout_sizes(layout.n_rows, layout.K, layout.n_agents, layout.fiber.n_phi)


def _column(buf: list[tuple], key: str) -> list:
    """The buffered steps' values (entries of :meth:`TrajectoryWriter.log_energy`'s buffer) of the series ``key``
    of :data:`.schema.STEP_SERIES`: from log_energy's named arguments, or by key from its further ``values``.
    Built a column at a time (not a dict per step): logging stays a tuple append."""
    if key == "total":
        return [b[1] for b in buf]
    if key.startswith("grad_norm/"):
        field = key.removeprefix("grad_norm/")
        return [b[3][field] for b in buf]
    if key == "spd_retractions":
        return [b[4] for b in buf]
    if key == "info_bits":
        return [b[5] for b in buf]
    if key in buf[0][2]:  # an energy term
        return [b[2][key] for b in buf]
    return [b[6][key] for b in buf]


def _has_space(path: Path, needed: int) -> bool:
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return True
    return st.f_bavail * st.f_frsize >= needed


def _check_space(path: Path, needed: int, what: str, frames: int) -> None:
    if not _has_space(path, needed):
        raise DiskFullError(what, frames)


class BufferedFrame:
    """A logged frame held in memory until its batch is written: its step and each field in the file's dtype."""

    __slots__ = ("step", "values")

    def __init__(self, step: int, values: dict[str, np.ndarray]):
        self.step = step
        self.values = values


class _Series:
    """One step-indexed series of the energies (its ``step`` and ``value`` datasets) and its entries on disk."""

    def __init__(self, group: h5py.Group):
        self.step = group["step"]
        self.value = group["value"]
        self.length = self.step.shape[0]

    def write(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Entries ``length`` on (the caller advances ``length`` once every series is written); the steps go
        last, as for frames."""
        _put(self.value, self.length, values)
        _put(self.step, self.length, steps)


def _energy_series(f: h5py.File) -> dict[str, _Series]:
    """Every series written with the energies (:data:`.schema.STEP_SERIES`), by its key."""
    return {series.key: _Series(f[series.path]) for series in schema.STEP_SERIES}


def _put(ds, start: int, values: np.ndarray) -> None:
    """``values`` as entries ``start``.. of ``ds``, which is resized to end there: entries past the commit that
    an interrupted write left are overwritten, never appended to."""
    end = start + values.shape[0]
    if ds.shape[0] != end:
        ds.resize(end, axis=0)
    ds[start:end] = values
    ds.flush()


def _commit_written_frames(f: h5py.File, step: int) -> None:
    """Commit the frames up to the checkpoint's ``step`` that a killed writer wrote but had not committed.

    A batch's checkpoint switches after every value and time of its frames (and the energies) is on disk and
    before their steps are written, so a kill in between leaves the frames the checkpoint follows uncommitted;
    their steps are written here, from their times. Only entries with the same time in every field, after the
    last committed frame's step and not after ``step`` count: anything else is a write that a kill cut off
    (whose unwritten entries read as 0), which the truncation that follows removes.
    """
    groups = [f[frame_path(name)] for name in FIELDS if frame_path(name) in f]
    n = committed_frames(f, [g.name.rsplit("/", 1)[-1] for g in groups])
    written = min(min(g["value"].shape[0], g["time"].shape[0]) for g in groups)
    if written <= n:
        return
    times = groups[0]["time"][n:written]
    last = float(groups[0]["step"][n - 1]) if n else -1.0
    ok = (times > np.concatenate([[last], times[:-1]])) & (times <= step) & (times == np.round(times))
    for g in groups[1:]:
        ok &= g["time"][n:written] == times
    k = int(np.argmin(ok)) if not ok.all() else ok.size  # the frames before the first entry that fails
    if k == 0:
        return
    steps = times[:k].astype(np.int64)
    for g in reversed(groups):  # as the writer commits: mu last
        _put(g["step"], n, steps)


def _truncate_after(f: h5py.File, step: int) -> None:
    """Drop every logged entry with a step beyond ``step``, and every value beyond its series' committed steps."""
    def visit(name, obj):
        if isinstance(obj, h5py.Group) and "step" in obj and isinstance(obj["step"], h5py.Dataset) \
                and not name.startswith(("observables/meta_agents", "observables/holonomy", "checkpoint")):
            steps = obj["step"][...]
            keep = int(np.searchsorted(steps, step, side="right"))
            for key in obj:
                ds = obj[key]
                if isinstance(ds, h5py.Dataset) and ds.maxshape[0] is None and ds.shape[0] > keep:
                    ds.resize(keep, axis=0)

    f.visititems(visit)
    # frames: every field cut to the shortest committed length
    fields = [name for name in FIELDS if frame_path(name) in f]
    n = committed_frames(f, fields)
    for name in fields:
        for ds in f[frame_path(name)].values():
            if ds.shape[0] > n:
                ds.resize(n, axis=0)


def _write_static(f: h5py.File, layout: Layout, config_json: str, scenario_yaml: str, seed: int) -> None:
    from .. import __version__

    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    creator = h5md.create_group("creator")
    h5md_string(creator, "name", "gauge-vfe")
    h5md_string(creator, "version", __version__)
    author = h5md.create_group("author")
    try:
        h5md_string(author, "name", getpass.getuser())
    except Exception:  # no user name in some containers
        h5md_string(author, "name", "unknown")
    # H5MD 1.1: every particles group holds its box (the base grid, in sites). The agent-site rows are the
    # particles; their fixed grid positions are a time-independent `position` element.
    particles = f.create_group(H5MD_PARTICLES)
    box = particles.create_group("box")
    box.attrs["dimension"] = np.int64(2)
    boundary = H5MD_BOUNDARY[layout.grid.boundary]
    box.attrs.create("boundary", np.array([boundary.encode()] * 2, dtype=h5py.string_dtype("ascii", 8)))
    fixed_dataset(box, "edges", np.array([layout.grid.height, layout.grid.width], dtype=np.float64))
    W = layout.grid.width
    fixed_dataset(particles, "position", np.stack([layout.index // W, layout.index % W], axis=1)
                             .astype(np.int64))
    p = f.create_group("parameters")
    p.attrs["scenario_yaml"] = scenario_yaml
    p.attrs["config_json"] = config_json
    p.attrs["seed"] = seed
    p.attrs["versions"] = json.dumps(versions())
    p.attrs["started_at"] = _now()
    p.attrs["writer_pid"] = os.getpid()
    p.attrs["writer_host"] = socket.gethostname()
    fixed_text(p, "status", "running", STATUS_LENGTH)
    text_dataset(p, "message", "")
    fixed_text(p, "finished_at", "", TIME_LENGTH)
    g = f.create_group("grid").attrs
    g["height"] = layout.grid.height
    g["width"] = layout.grid.width
    g["boundary"] = layout.grid.boundary
    fib = f.create_group("fiber")
    fib.attrs["irreps"] = np.array(layout.fiber.spins, dtype=np.int64)
    fib.attrs["K"] = layout.K
    if layout.fiber.glk:
        fib.attrs[schema.FIBER_GROUP] = layout.fiber.group
    fixed_dataset(fib, "generators", layout.fiber.generators)
    a = f.create_group("agents")
    fixed_dataset(a, "sites/offset", layout.offset)
    fixed_dataset(a, "sites/index", layout.index)
    fixed_dataset(a, "support", layout.chi)
    fixed_dataset(a, "prior/mu", layout.prior_mu)
    fixed_dataset(a, "prior/sigma", layout.prior_sigma)
    obs = layout.observations
    if obs is not None:
        fixed_dataset(a, "observation/value", obs.value)
        fixed_dataset(a, "observation/C", obs.C)
        fixed_dataset(a, "observation/Rn", obs.Rn)


__all__ = ["TrajectoryWriter", "DiskFullError", "read_checkpoint", "run_record", "versions"]
