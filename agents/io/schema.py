"""Names and small shared pieces of the trajectory file format (docs/model.md#file), for writer and reader.

Everything a writer changes after the file was created is a dataset, never an attribute or a new object:
HDF5's single-writer/multiple-reader (SWMR) mode, which keeps the file consistent at every moment for readers
and after a kill, allows only dataset writes and resizes. So the run's ``status``, ``message`` and
``finished_at`` are small datasets in ``/parameters``, and the analysis groups are created, empty and
resizable, with the file.
"""

from __future__ import annotations

import h5py
import numpy as np

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


def committed_frames(f: h5py.File, fields: list[str]) -> int:
    """Logged frames whose every field is complete: a frame's ``step`` entries are written last (the commit)."""
    return min((f[f"particles/agents/{name}/step"].shape[0] for name in fields), default=0)
