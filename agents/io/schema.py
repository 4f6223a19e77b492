"""Names and small shared pieces of the trajectory file format (docs/model.md#file), for writer and reader.

Everything a writer changes after the file was created is a dataset, never an attribute or a new object:
HDF5's single-writer/multiple-reader (SWMR) mode, which keeps the file consistent at every moment for readers
and after a kill, allows only dataset writes and resizes. So the run's ``status``, ``message`` and
``finished_at`` are small datasets in ``/parameters``, and the analysis groups are created, empty and
resizable, with the file.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..model.energy import TERMS as ENERGY_TERMS
from ..model.state import State

FORMAT_VERSION = [1, 1]
# The oldest HDF5 file format with SWMR: files open in HDF5 1.10 tools (h5dump, HDFView, MATLAB); the newest
# format of HDF5 2.x would not.
LIBVER = ("v110", "v110")
FIELDS = ("mu", "sigma", "phi", "beta")
REQUIRED_FIELDS = ("mu", "sigma", "phi")
GRAD_FIELDS = ("mu", "sigma", "phi")
CHECKPOINT_SLOTS = ("slot0", "slot1")
STATUS_LENGTH = 16
TIME_LENGTH = 40
STATUSES = ("running", "completed", "interrupted", "diverged", "failed", "killed")
ANALYSIS_FRAMES = "observables/analysis_frames"  # logged frames the stored analysis covers; -1: none
INFO_BITS = "observables/info_bits"  # {step (E,), value (E, N)}: bits of belief update per step and agent
CHECKPOINT_RNG = "rng"  # per checkpoint slot: the Langevin noise's generator and key, JSON (docs/model.md#checkpoint)

# --- H5MD 1.1 metadata (docs/model.md#file-h5md) ---------------------------------------------------------------
# The particles of the H5MD structure are the agent-sites (rows): every /particles/agents element has the row
# index as its second axis (first for time-independent ones). The box is the base grid, axis 0 = y, axis 1 = x.
H5MD_PARTICLES = "particles/agents"
H5MD_BOUNDARY = {"open": "none", "periodic": "periodic"}  # grid.boundary -> H5MD box boundary, per axis
# Unit strings follow the syntax of H5MD's units module ("u+2" is u squared) with this model's own symbols
# (docs/model.md#units): nat (energy), rad (angles), site (grid spacing), u (the fiber's belief unit). The file
# declares no h5md/modules/units system, since none of these is an SI symbol.
UNITS = {
    "particles/agents/box/edges": "site",
    "particles/agents/position": "site",
    "particles/agents/mu/value": "u",
    "particles/agents/sigma/value": "u+2",
    "particles/agents/phi/value": "rad",
    **{f"observables/energy/{t}/value": "nat" for t in ("total",) + ENERGY_TERMS},
    "observables/grad_norm/mu/value": "nat u-1",
    "observables/grad_norm/sigma/value": "nat u-2",
    "observables/grad_norm/phi/value": "nat rad-1",
    "observables/holonomy/plaquette_angle": "rad",
    "observables/holonomy/loops/angle": "rad",
    "observables/info_bits/value": "bit",
}
DESCRIPTIONS = {
    "particles/agents/box": "the base grid: axis 0 is y (height), axis 1 is x (width), spacing 1 site",
    "particles/agents/position": "(y, x) site of each agent-site row; agent i owns rows "
                                 "/agents/sites/offset[i]:offset[i+1]",
    "particles/agents/mu/value": "belief mean of each agent-site row, in its agent's gauge frame",
    "particles/agents/sigma/value": "belief covariance of each agent-site row",
    "particles/agents/phi/value": "gauge frame (so(3) vector, |phi| a rotation angle) of each agent-site row",
    "particles/agents/beta/value": "attention weights: row (i, c), column j holds beta_ij(c) (dimensionless)",
    **{f"particles/agents/{n}/time": "the step count as a float (descent has no physical time)" for n in FIELDS},
    **{f"observables/energy/{t}/value": f"{t} energy (weights included)" for t in ("total",) + ENERGY_TERMS},
    **{f"observables/grad_norm/{n}/value": f"norm of dE/d{n} over all agent-sites" for n in GRAD_FIELDS},
    "observables/spd_retractions/value": "agent-site covariance steps retracted to stay positive definite",
    "observables/info_bits/value": "bits of belief update of each agent (column) in the step that produced the "
                                   "state: sum_c chi KL(q_t+1 || q_t) / ln 2 (docs/model.md#information-time)",
    "observables/holonomy/plaquette_angle": "holonomy angle of the plaquette based at each row, NaN where undefined",
}


def h5md_string(obj, name: str, text: str) -> None:
    """A scalar fixed-length string attribute (H5MD's type for author, creator and box boundary texts)."""
    data = text.encode("utf-8")
    obj.attrs.create(name, np.array(data, dtype=h5py.string_dtype("utf-8", max(1, len(data)))))


def annotate(f: h5py.File) -> None:
    """``unit`` (variable-length ASCII, as H5MD's units module says) and ``description`` attributes on every
    dataset of :data:`UNITS` and :data:`DESCRIPTIONS` present in ``f`` (attributes: before SWMR starts)."""
    for table, key, dtype in ((UNITS, "unit", h5py.string_dtype("ascii")),
                              (DESCRIPTIONS, "description", h5py.string_dtype("utf-8"))):
        for path, text in table.items():
            if path in f:
                f[path].attrs.create(key, text, dtype=dtype)


def series_dataset(group: h5py.Group, name: str, dtype, trailing: tuple = (), chunk_rows: int = 1024,
                   **kw) -> h5py.Dataset:
    """An empty dataset that grows along its first axis (and any axis given as None in ``trailing``)."""
    shape = (0,) + tuple(0 if t is None else t for t in trailing)
    maxshape = (None,) + tuple(trailing)
    chunks = (chunk_rows,) + tuple(8 if t is None else max(1, t) for t in trailing)
    return group.create_dataset(name, shape=shape, maxshape=maxshape, chunks=chunks, dtype=dtype, **kw)


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
    return bytes(ds[...]).decode("utf-8", errors="replace")


def fixed_text(group: h5py.Group, name: str, text: str, length: int) -> h5py.Dataset:
    ds = group.create_dataset(name, shape=(1,), dtype=f"S{length}")
    ds[0] = text.encode()[:length]
    return ds


def read_fixed(ds) -> str:
    return ds[0].decode().rstrip("\x00")


def run_record(f: h5py.File) -> dict:
    """status, message and finished_at of a run (datasets; the attributes of files before format 1.1)."""
    p = f["parameters"]
    if "status" in p:
        return {"status": read_fixed(p["status"]), "message": read_text(p["message"]),
                "finished_at": read_fixed(p["finished_at"])}
    return {k: str(p.attrs.get(k, "")) for k in ("status", "message", "finished_at")}


def read_checkpoint(f: h5py.File) -> State | None:
    """The committed checkpoint (float64 state and step), or None before the first one."""
    ck = f["checkpoint"]
    active = int(ck["active"][0])
    if active < 0:
        return None
    g = ck[CHECKPOINT_SLOTS[active]]
    return State.from_arrays(g["mu"][...], g["sigma"][...], g["phi"][...], int(g["step"][0]))


def read_checkpoint_rng(f: h5py.File) -> dict | None:
    """The Langevin noise's generator description stored with the committed checkpoint (older versions: numpy's
    ``bit_generator.state``), or None (none stored, or no checkpoint yet)."""
    ck = f["checkpoint"]
    active = int(ck["active"][0])
    if active < 0 or CHECKPOINT_RNG not in ck[CHECKPOINT_SLOTS[active]]:
        return None
    text = read_text(ck[CHECKPOINT_SLOTS[active]][CHECKPOINT_RNG])
    return json.loads(text) if text else None


def committed_frames(f: h5py.File, fields: list[str]) -> int:
    """Logged frames whose every field is complete: a frame's ``step`` entries are written last (the commit)."""
    return min((f[f"particles/agents/{name}/step"].shape[0] for name in fields), default=0)
