"""Damaged and foreign files (docs/model.md#file-integrity): what every reader checks before and while reading.

* :func:`check_file`: before anything is read, the file must be this project's (its H5MD version, the groups and
  attributes the reader needs, JSON attributes that parse) and every dataset's shape must agree with the static
  part (agents, rows, fiber dimension) and with the file's size, so that a file claiming huge shapes is refused
  instead of making a reader allocate them. Problems raise :class:`TrajectoryFileError`, one line naming the file.
* :func:`.checked.read`: a dataset read whose chunk fails its fletcher32 checksum raises :class:`DamagedData` ("damaged at
  <dataset>", with the entries and steps affected), never a value.
* :func:`verify`: every chunk of every dataset read and checked (``vfe verify``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .checked import bad_entries, damage_text, read
from .errors import DamagedData, TrajectoryFileError
from .schema import CHECKPOINT_SLOTS, ENSEMBLE_MARK, FORMAT_VERSION, SERIES, layout_sizes, phi_width

__all__ = ["DamagedData", "TrajectoryFileError", "check_file", "read", "verify"]


# --- the file is this project's, and its shapes agree with its static part ------------------------------------
REQUIRED_GROUPS = ("h5md", "parameters", "grid", "fiber", "agents", "agents/sites", "checkpoint")
REQUIRED_DATASETS = ("agents/sites/offset", "agents/sites/index", "agents/support", "checkpoint/active")
REQUIRED_ATTRS = {"parameters": ("config_json", "scenario_yaml", "seed", "versions", "started_at", "writer_pid",
                                 "writer_host"),
                  "grid": ("height", "width", "boundary"), "fiber": ("irreps", "K")}
JSON_ATTRS = ("config_json", "versions")
# a compressed dataset may claim at most this many times the file's size (gzip of zeros reaches ~1000x)
COMPRESSED_RATIO = 1024


def _claimed_bytes_ok(ds: h5py.Dataset, file_size: int) -> bool:
    """A dataset cannot hold more than the file's bytes (times what compression can gain), plus one chunk
    (a killed writer may have resized a series without writing its last chunk)."""
    chunk = int(np.prod(ds.chunks)) * ds.dtype.itemsize if ds.chunks else 0
    ratio = COMPRESSED_RATIO if ds.compression else 2
    return ds.size * ds.dtype.itemsize <= ratio * file_size + chunk


def index_refusal(path: str | Path, replicas: int) -> str:
    """The one line with which a command that reads one trajectory refuses an ensemble index."""
    path = Path(path)
    return (f"{path}: a replica ensemble of {replicas} independent runs, not one trajectory: give one replica's "
            f"file ({path.with_suffix('.replicas')}/r0000.h5, ...), or read them all with gauge_vfe.load")


def check_file(f: h5py.File, path: str | Path) -> None:
    """Refuse (:class:`TrajectoryFileError`, one line naming ``path``) a file that is not this project's or whose
    datasets' shapes disagree with its static part. Reads attributes, shapes and one small dataset (the offsets,
    bounded by the file's size) only."""
    def bad(what: str):
        raise TrajectoryFileError(f"{path}: {what}")

    if f.attrs.get(ENSEMBLE_MARK, 0):  # an ensemble's index names its replicas' run files (ensemble_store.py)
        raise TrajectoryFileError(index_refusal(path, int(f.attrs.get("replicas", 0))))
    for g in REQUIRED_GROUPS:
        if not isinstance(f.get(g), h5py.Group):
            bad(f"not a gauge-vfe trajectory (no /{g} group)")
    version = f["h5md"].attrs.get("version")
    try:
        major = int(np.asarray(version).ravel()[0])
    except (TypeError, ValueError, IndexError):
        bad("not a gauge-vfe trajectory (no /h5md version attribute)")
    if major != FORMAT_VERSION[0]:
        bad(f"file format version {major} is not this version's ({FORMAT_VERSION[0]})")
    for g, names in REQUIRED_ATTRS.items():
        for name in names:
            if name not in f[g].attrs:
                bad(f"not a gauge-vfe trajectory (/{g} has no {name!r} attribute)")
    for name in JSON_ATTRS:
        try:
            value = json.loads(str(f["parameters"].attrs[name]))
        except ValueError as exc:
            bad(f"malformed JSON in the /parameters {name} attribute ({exc})")
        if not isinstance(value, dict):
            bad(f"malformed /parameters {name} attribute (not a JSON object)")
    for name in REQUIRED_DATASETS:
        if not isinstance(f.get(name), h5py.Dataset):
            bad(f"not a gauge-vfe trajectory (no /{name} dataset)")
    file_size = Path(path).stat().st_size  # by path: a file read through a view has no name of its own

    def each(name, obj):
        if isinstance(obj, h5py.Dataset) and not _claimed_bytes_ok(obj, file_size):
            bad(f"/{name} claims shape {obj.shape}, more than a {file_size}-byte file can hold")

    f.visititems(each)
    try:
        H, W, K = int(f["grid"].attrs["height"]), int(f["grid"].attrs["width"]), int(f["fiber"].attrs["K"])
    except (TypeError, ValueError):
        bad("malformed /grid or /fiber attributes")
    offset_ds = f["agents/sites/offset"]
    if offset_ds.ndim != 1 or offset_ds.shape[0] < 2:
        bad(f"/agents/sites/offset has shape {offset_ds.shape}, not (agents + 1,)")
    offset = read(offset_ds)
    N, S = offset.size - 1, int(offset[-1])
    if H < 1 or W < 1 or K < 1 or offset[0] != 0 or np.any(np.diff(offset) < 0) or S > N * H * W:
        bad(f"inconsistent static part (grid {H}x{W}, K={K}, offsets 0..{S} over {N} agents)")
    sizes = layout_sizes(S, K, N, phi_width(f["fiber"].attrs, K))
    expect = {"agents/sites/index": (S,), "agents/support": (S,)}
    for series in SERIES:
        if f"{series.path}/value" in f:
            expect[f"{series.path}/value"] = (None,) + series.shape(sizes)
    for slot in CHECKPOINT_SLOTS:
        for name in ("mu", "sigma", "phi"):
            expect[f"checkpoint/{slot}/{name}"] = next(s for s in SERIES if s.key == name).shape(sizes)
    for name, shape in expect.items():
        if name not in f:
            continue
        ds = f[name]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != len(shape) or \
                any(want is not None and got != want for got, want in zip(ds.shape, shape)):
            claimed = ds.shape if isinstance(ds, h5py.Dataset) else "a group"
            want = tuple("entries" if d is None else d for d in shape)
            bad(f"/{name} has shape {claimed}, not {want} as the static part implies")


# --- vfe verify -----------------------------------------------------------------------------------------------
@dataclass
class Verification:
    """What ``vfe verify`` found: per dataset, intact or its damaged entry ranges."""

    path: Path
    checked: int = 0  # datasets whose every chunk carries a checksum and read intact
    chunks: int = 0  # chunks read
    unchecked: list[str] = field(default_factory=list)  # datasets without a checksum (read, but unverifiable)
    damaged: list[str] = field(default_factory=list)  # "damaged at ..." lines

    @property
    def intact(self) -> bool:
        return not self.damaged

    def lines(self) -> list[str]:
        out = [f"{self.path}: " + ("intact" if self.intact else f"DAMAGED: {len(self.damaged)} dataset"
                                   f"{'s' if len(self.damaged) > 1 else ''}")]
        out.append(f"  {self.checked} datasets intact by their fletcher32 checksums ({self.chunks} chunks read)")
        if self.unchecked:
            out.append(f"  {len(self.unchecked)} datasets without a checksum (read without error; written by an "
                       f"older version, or scalar): {', '.join(self.unchecked[:6])}"
                       + (" ..." if len(self.unchecked) > 6 else ""))
        out.extend(f"  {line}" for line in self.damaged)
        return out


def verify(f: h5py.File, path: str | Path) -> Verification:
    """Read every chunk of every dataset of ``f``: which datasets are intact, unchecked or damaged (where)."""
    result = Verification(Path(path))

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        ranges = bad_entries(obj)
        result.chunks += sum(1 for _ in obj.iter_chunks()) if obj.chunks is not None and obj.size else 1
        if ranges:
            result.damaged.append(damage_text(obj, ranges))
        elif obj.fletcher32:
            result.checked += 1
        else:
            result.unchecked.append(f"/{name}")

    f.visititems(visit)
    return result
