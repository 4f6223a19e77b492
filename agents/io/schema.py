"""The trajectory file format (docs/model.md#file): its layout table and the small pieces writer and reader share.

:data:`SERIES` is the single source of the logged series: one row each (path, dtype, shape, unit, description,
chunking), from which the writer creates and appends, :func:`annotate` labels and the reader reads.

Everything a writer changes after the file was created is a dataset, never an attribute or a new object:
HDF5's single-writer/multiple-reader (SWMR) mode, which keeps the file consistent at every moment for readers
and after a kill, allows only dataset writes and resizes. So the run's ``status``, ``message`` and
``finished_at`` are small datasets in ``/parameters``, and the analysis groups are created, empty and
resizable, with the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

import h5py
import numpy as np

from ..model.energy import TERMS as ENERGY_TERMS
from ..model.state import State
from .checked import read

FORMAT_VERSION = [1, 1]
# The oldest HDF5 file format with SWMR: files open in HDF5 1.10 tools (h5dump, HDFView, MATLAB); the newest
# format of HDF5 2.x would not.
LIBVER = ("v110", "v110")
REQUIRED_FIELDS = ("mu", "sigma", "phi")
GRAD_FIELDS = ("mu", "sigma", "phi")
CHECKPOINT_SLOTS = ("slot0", "slot1")
STATUS_LENGTH = 16
TIME_LENGTH = 40
STATUSES = ("running", "completed", "interrupted", "diverged", "failed", "killed")
ANALYSIS_FRAMES = "observables/analysis_frames"  # logged frames the stored analysis covers; -1: none
INFO_BITS = "observables/info_bits"  # {step (E,), value (E, N)}: bits of belief update per step and agent
CHECKPOINT_RNG = "rng"  # per checkpoint slot: the Langevin noise's generator and key, JSON (docs/model.md#checkpoint)
CHECKPOINT_HASH = "sha256"  # per checkpoint slot: sha256 of its state, step and rng (absent in older files)
# Every dataset the writer makes carries HDF5's fletcher32 checksum (docs/model.md#file-integrity): a chunk whose
# bytes changed fails its read, and the readers report it as damage instead of a value. Only the values are
# checksummed, so the stored values (and tests/test_bit_identity.py) do not change.
CHECKSUM = {"fletcher32": True}

# --- H5MD 1.1 metadata (docs/model.md#file-h5md) ---------------------------------------------------------------
# The particles of the H5MD structure are the agent-sites (rows): every /particles/agents element has the row
# index as its second axis (first for time-independent ones). The box is the base grid, axis 0 = y, axis 1 = x.
H5MD_PARTICLES = "particles/agents"
H5MD_BOUNDARY = {"open": "none", "periodic": "periodic"}  # grid.boundary -> H5MD box boundary, per axis
# Unit strings follow the syntax of H5MD's units module ("u+2" is u squared) with this model's own symbols
# (docs/model.md#units): nat (energy), rad (angles), site (grid spacing), u (the fiber's belief unit). The file
# declares no h5md/modules/units system, since none of these is an SI symbol.

# --- the file layout: one row per logged series (docs/model.md#file) ---------------------------------------------
OUTPUT_DTYPE = "output"  # a Series' dtype: the run's ``output.dtype`` (float32 or float64)
TIME_DESCRIPTION = "the step count as a float (descent has no physical time)"


@dataclass(frozen=True)
class Series:
    """One step-indexed series of the file: a group ``path`` holding ``step`` (int64), for a logged frame field
    also ``time`` (float64), and ``value``. The writer creates and appends, :func:`annotate` labels and the
    reader reads every series from these rows alone, so a new logged series is one row of :data:`SERIES` (and
    its value handed to the writer under ``key``).

    ``trailing``: the value's shape after the entry axis, in the layout's sizes (``S`` agent-site rows, ``K``
    fiber dimension, ``N`` agents) or integers. ``chunk_rows``: entries per chunk of ``value``, an int or a
    function of the sizes. ``frame``: a logged field (entries are frames, compressed one per chunk, committed by
    their ``step`` entries last); otherwise one entry per step, written with the energies.
    """

    key: str
    path: str
    dtype: str
    trailing: tuple = ()
    unit: str | None = None
    description: str | None = None
    chunk_rows: int | Callable[[dict], int] = 1024
    frame: bool = False

    def shape(self, sizes: dict) -> tuple[int, ...]:
        """The value's trailing shape for a layout of these ``sizes`` (:func:`layout_sizes`)."""
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.trailing)

    def annotations(self):
        """(dataset path, unit, description) of this series' datasets that carry them."""
        yield f"{self.path}/value", self.unit, self.description
        if self.frame:
            yield f"{self.path}/time", None, TIME_DESCRIPTION


def _frame(name, trailing, unit, description) -> Series:
    return Series(name, f"{H5MD_PARTICLES}/{name}", OUTPUT_DTYPE, trailing, unit, description, 1, frame=True)


def _per_step(key, path, dtype, unit, description, trailing=(), chunk_rows=1024) -> Series:
    return Series(key, path, dtype, trailing, unit, description, chunk_rows)


SERIES: tuple[Series, ...] = (
    _frame("mu", ("S", "K"), "u", "belief mean of each agent-site row, in its agent's gauge frame"),
    _frame("sigma", ("S", "K", "K"), "u+2", "belief covariance of each agent-site row"),
    _frame("phi", ("S", "P"), "rad", "gauge frame of each agent-site row: an so(3) vector (|phi| a rotation angle), "
           "or a gl(K) matrix row-major (K^2 values) for GL(K) frames"),
    _frame("beta", ("S", "N"), None, "attention weights: row (i, c), column j holds beta_ij(c) (dimensionless)"),
    *(_per_step(t, f"observables/energy/{t}", "float64", "nat", f"{t} energy (weights included)")
      for t in ("total",) + ENERGY_TERMS),
    *(_per_step(f"grad_norm/{n}", f"observables/grad_norm/{n}", "float64", unit,
                f"norm of dE/d{n} over all agent-sites")
      for n, unit in zip(GRAD_FIELDS, ("nat u-1", "nat u-2", "nat rad-1"))),
    _per_step("spd_retractions", "observables/spd_retractions", "int64", None,
              "agent-site covariance steps retracted to stay positive definite"),
    _per_step("info_bits", INFO_BITS, "float64", "bit",
              "bits of belief update of each agent (column) in the step that produced the state: sum_c chi "
              "KL(q_t+1 || q_t) / ln 2 (docs/model.md#information-time)",
              ("N",), lambda sizes: max(1, 8192 // max(1, sizes["N"]))),
)
SERIES_BY_KEY = {s.key: s for s in SERIES}
FRAME_SERIES = tuple(s for s in SERIES if s.frame)  # the fields a run may log (output.fields)
STEP_SERIES = tuple(s for s in SERIES if not s.frame)  # written every step, with the energies
FIELDS = tuple(s.key for s in FRAME_SERIES)

# The run's history (docs/model.md#file-provenance), written by .provenance: (dataset, dtype, entries per chunk).
# `records` holds JSON Lines (one per invocation, written at its start); the others one entry per record, written
# at its end, `status` last (its length is the number of records).
PROVENANCE = "provenance"
PROVENANCE_DATASETS = (("records", "uint8", 4096), ("last_step", "int64", 64), ("ended_at", f"S{TIME_LENGTH}", 64),
                       ("status", f"S{STATUS_LENGTH}", 64))

# --- a replica ensemble's index file (docs/model.md#replica-ensembles) ------------------------------------------
# `vfe run --replicas R` writes one ordinary run file per replica (replica r's is the file of the single run with
# its seed, bit for bit) into a folder, and at the output path a small index naming them. The index is marked by
# the root attribute ENSEMBLE_MARK; every dataset is one row per replica except the scalars named here.
ENSEMBLE_MARK = "gauge_vfe_ensemble"
ENSEMBLE_INDEX = (
    ("replica/seed", "int64", "root seed of each replica (replica_seed(root seed, r))"),
    ("replica/file", "str", "each replica's run file, relative to the index's folder"),
    ("replica/status", "str", "each replica's run status when the ensemble ended"),
    ("config_json", "str", "the ensemble's resolved configuration (scalar)"),
    ("status", "str", "the ensemble's status: running, then that of the run (scalar)"),
    ("message", "str", "how the ensemble ended (scalar)"),
)

# Datasets outside the series (the static arrays written with the file, the analysis) with a unit or description.
OTHER_ANNOTATIONS = (
    ("particles/agents/box/edges", "site", None),
    ("particles/agents/box", None, "the base grid: axis 0 is y (height), axis 1 is x (width), spacing 1 site"),
    ("particles/agents/position", "site", "(y, x) site of each agent-site row; agent i owns rows "
                                          "/agents/sites/offset[i]:offset[i+1]"),
    ("observables/holonomy/plaquette_angle", "rad", "holonomy angle of the plaquette based at each row, NaN "
                                                    "where undefined"),
    ("observables/holonomy/loops/angle", "rad", None),
    (PROVENANCE, None, "one record per invocation that wrote this file: records (JSON Lines, one per invocation, "
                         "written at its start), status, last_step and ended_at (written at its end; 'running' "
                         "and -1 until then) (docs/model.md#file-provenance)"),
)


def annotations():
    """(path, unit, description) of every object of the file that carries a unit or a description."""
    for series in SERIES:
        yield from series.annotations()
    yield from OTHER_ANNOTATIONS


def layout_sizes(n_rows: int, K: int, n_agents: int, n_phi: int = 3) -> dict:
    """The sizes a :class:`Series`' ``trailing`` names (``P``: phi's coordinates a row, 3 or K^2)."""
    return {"S": n_rows, "K": K, "N": n_agents, "P": n_phi}


# /fiber's attribute naming the gauge group; written only for GL(K) frames, so an SO(3) file is as before it existed
FIBER_GROUP = "group"


def fiber_group(fiber_attrs) -> str:
    """The gauge group a file's /fiber attributes record: ``so3`` (no attribute) or ``glk``."""
    g = fiber_attrs.get(FIBER_GROUP, "so3")
    return g.decode() if isinstance(g, bytes) else str(g)


def phi_width(fiber_attrs, K: int) -> int:
    """Coordinates of phi a row in a file of these /fiber attributes: K^2 for GL(K) frames, else 3."""
    return K * K if fiber_group(fiber_attrs) == "glk" else 3


def frame_path(name: str) -> str:
    """The group of a logged field (``mu``, ``sigma``, ``phi``, ``beta``)."""
    return SERIES_BY_KEY[name].path


def create_series(f: h5py.File, series: Series, sizes: dict, output_dtype: str | None = None,
                  **compression) -> h5py.Group:
    """The empty datasets of ``series`` (``compression`` applies to the value of a frame field)."""
    g = f.create_group(series.path)
    series_dataset(g, "step", np.int64)
    if series.frame:
        series_dataset(g, "time", np.float64)
    dtype = output_dtype if series.dtype == OUTPUT_DTYPE else series.dtype
    rows = series.chunk_rows(sizes) if callable(series.chunk_rows) else series.chunk_rows
    series_dataset(g, "value", dtype, series.shape(sizes), chunk_rows=rows, **(compression if series.frame else {}))
    return g


def h5md_string(obj, name: str, text: str) -> None:
    """A scalar fixed-length string attribute (H5MD's type for author, creator and box boundary texts)."""
    data = text.encode("utf-8")
    obj.attrs.create(name, np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data)))))


def annotate(f: h5py.File, under: str = "") -> None:
    """``unit`` (variable-length ASCII, as H5MD's units module says) and ``description`` attributes on every
    object of :func:`annotations` present in ``f`` (attributes: before SWMR starts); ``under``: only those whose
    path starts with it (a group added to an existing file)."""
    for path, unit, description in annotations():
        if path in f and path.startswith(under):
            if unit is not None:
                f[path].attrs.create("unit", unit, dtype=h5py.string_dtype("ascii"))
            if description is not None:
                f[path].attrs.create("description", description, dtype=h5py.string_dtype("utf-8"))


def series_dataset(group: h5py.Group, name: str, dtype, trailing: tuple = (), chunk_rows: int = 1024,
                   **kw) -> h5py.Dataset:
    """An empty dataset that grows along its first axis (and any axis given as None in ``trailing``)."""
    shape = (0,) + tuple(0 if t is None else t for t in trailing)
    maxshape = (None,) + tuple(trailing)
    chunks = (chunk_rows,) + tuple(8 if t is None else max(1, t) for t in trailing)
    return group.create_dataset(name, shape=shape, maxshape=maxshape, chunks=chunks, dtype=dtype, **CHECKSUM, **kw)


def fixed_dataset(group: h5py.Group, name: str, data=None, *, shape=None, dtype=None) -> h5py.Dataset:
    """A dataset of fixed shape (the static arrays, the checkpoint slots) with the checksum: chunked as one
    chunk, since HDF5 filters need chunks. A scalar or empty one cannot be chunked and stays unchecked."""
    if data is not None:
        data = np.asarray(data, dtype=dtype)
        shape, dtype = data.shape, data.dtype
    size = int(np.prod(shape)) if shape else 0
    kw = dict(CHECKSUM, chunks=tuple(shape)) if shape and size else {}
    return group.create_dataset(name, shape=shape, dtype=dtype, data=data, **kw)


def text_dataset(group: h5py.Group, name: str, text: str = "") -> h5py.Dataset:
    """UTF-8 text as a resizable byte dataset (rewritable in SWMR mode, unlike an attribute)."""
    ds = series_dataset(group, name, np.uint8, chunk_rows=256)
    write_text(ds, text)
    return ds


def write_text(ds: h5py.Dataset, text: str) -> None:
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    ds.resize((data.size,))
    if data.size:
        ds[:] = data
    ds.flush()


def read_text(ds) -> str:
    return bytes(read(ds)).decode("utf-8", errors="replace")


def fixed_text(group: h5py.Group, name: str, text: str, length: int) -> h5py.Dataset:
    ds = fixed_dataset(group, name, shape=(1,), dtype=f"S{length}")
    ds[0] = text.encode()[:length]
    return ds


def read_fixed(ds) -> str:
    return read(ds)[0].decode(errors="replace").rstrip("\x00")


def run_record(f: h5py.File) -> dict:
    """status, message and finished_at of a run (datasets; the attributes of files before format 1.1)."""
    p = f["parameters"]
    if "status" in p:
        return {"status": read_fixed(p["status"]), "message": read_text(p["message"]),
                "finished_at": read_fixed(p["finished_at"])}
    return {k: str(p.attrs.get(k, "")) for k in ("status", "message", "finished_at")}


def checkpoint_slot(f: h5py.File) -> str | None:
    """The committed checkpoint's slot, None before the first; an index naming no slot (a damaged file) raises
    ValueError naming the file, not IndexError."""
    active = int(read(f["checkpoint"]["active"])[0])
    if active < 0:
        return None
    if active >= len(CHECKPOINT_SLOTS):
        raise ValueError(f"{f.filename}: the checkpoint index is corrupt ({active}; expected -1 to "
                         f"{len(CHECKPOINT_SLOTS) - 1}): the file is damaged")
    return CHECKPOINT_SLOTS[active]


class CheckpointMismatch(ValueError):
    """A checkpoint slot whose arrays do not match the sha256 stored with them."""


def checkpoint_hash(mu, sigma, phi, step: int, rng_text: bytes = b"") -> np.ndarray:
    """sha256 (32 bytes) of a checkpoint: its float64 arrays, shapes, step and noise generator text."""
    h = hashlib.sha256()
    for a in (mu, sigma, phi):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    h.update(np.int64(step).tobytes())
    h.update(bytes(rng_text))
    return np.frombuffer(h.digest(), dtype=np.uint8)


def read_checkpoint(f: h5py.File) -> State | None:
    """The committed checkpoint (float64 state and step), or None before the first one. A slot whose stored
    sha256 does not match raises :class:`CheckpointMismatch` naming it (a chunk failing its fletcher32 raises
    :class:`.errors.DamagedData`), and an index naming no slot a ValueError naming the file: a damaged
    checkpoint is never returned as a state."""
    slot = checkpoint_slot(f)
    if slot is None:
        return None
    g = f["checkpoint"][slot]
    mu, sigma, phi = (read(g[n]) for n in ("mu", "sigma", "phi"))
    step = int(read(g["step"])[0])
    if CHECKPOINT_HASH in g:
        rng = bytes(read(g[CHECKPOINT_RNG])) if CHECKPOINT_RNG in g else b""
        if not np.array_equal(read(g[CHECKPOINT_HASH]), checkpoint_hash(mu, sigma, phi, step, rng)):
            raise CheckpointMismatch(f"checkpoint {slot} (step {step}) is damaged: its arrays do not match its "
                                     "stored sha256")
    return State.from_arrays(mu, sigma, phi, step)


def read_checkpoint_rng(f: h5py.File) -> dict | None:
    """The Langevin noise's generator description stored with the committed checkpoint (older versions: numpy's
    ``bit_generator.state``), or None (none stored, or no checkpoint yet)."""
    slot = checkpoint_slot(f)
    if slot is None or CHECKPOINT_RNG not in f["checkpoint"][slot]:
        return None
    text = read_text(f["checkpoint"][slot][CHECKPOINT_RNG])
    return json.loads(text) if text else None


def committed_frames(f: h5py.File, fields: list[str]) -> int:
    """Logged frames whose every field is complete: a frame's ``step`` entries are written last (the commit)."""
    return min((f[f"{frame_path(name)}/step"].shape[0] for name in fields), default=0)
