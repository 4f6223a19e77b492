"""A run as a file ParaView and VisIt open: VTKHDF ImageData with a time series (``vfe export``, ``gv.export``).

    gv.export("runs/q.h5", "runs/q.vtkhdf")          # or gv.export(traj, ...); vfe export runs/q.h5 -o runs/q.vtkhdf
    gv.viz.export_steps("runs/q.vtkhdf")             # the logged steps (the file's time values)
    gv.viz.read_export("runs/q.vtkhdf", step=200)    # a pyvista.ImageData of logged step 200

The output's suffix picks the format (``.vtkhdf`` or ``.hdf``: VTKHDF); any other suffix is refused before anything
is written, in particular ``.vtk``, VTK's legacy format, which this is not and which pyvista would then
fail to read (:func:`format_for`).

The file is VTKHDF 2.0 (docs.vtk.org, "VTKHDF File Format"): one ``ImageData`` whose cells are the grid's sites
(x = column, y = row, cell centres at integer coordinates, spacing 1 site) and a transient ``Steps`` group whose
``Values`` are the logged steps. Every array is cell data, per agent ``i`` (zero-padded, ``agent07_mu``), NaN
outside the agent's support:

* ``mu`` (K components), ``mu_norm`` (|mu|), ``trace_sigma``, ``phi`` (3 components): the logged fields;
* ``chi``: the support weight, stored once (every step's offset points at it);
* ``energy_<term>`` for each term of the action and ``energy_total``, their sum: the per-agent-site energy
  densities, which the run file does not hold. They are recomputed from each logged frame's state
  (:meth:`Trajectory.evaluate <gauge_vfe.agents.io.reader.Trajectory.evaluate>`: the run's layout, parameters
  and the frame's state), so that their sum over agents and sites is the logged energy of that step;
* ``meta_id_scale<s>`` for s = 2 .. max_scale: the id of the scale-s meta-agent the agent belongs to, -1 when it
  belongs to none; and ``plaquette_angle`` (rad): both from the stored analysis (``traj.analysis()``), NaN on
  frames the analysis did not cover, and absent (with a note) when the run has no stored analysis.

Arrays are written in the run's ``output.dtype`` (float32 unless it logged float64), compressed one step per
chunk. VTK reads the time axis of a 2D image in place of z, so an array is (steps, rows, columns[, components]).
The root group's attributes (outside /VTKHDF, which VTK ignores) name the source run and give each quantity's
units and description as JSON.

VTK >= 9.3 reads this (vtkHDFReader). ``pv.read(path)`` gives the first step only, and pyvista's ``HDFReader``
(0.49) has no ``time_values``: step through time with VTK's reader, as ``gv.viz.read_export`` does
(docs/model.md#export-reading)::

    reader = pyvista.get_reader("runs/q.vtkhdf").reader  # the vtkHDFReader
    reader.UpdateInformation()
    reader.SetStep(k)                                    # k-th logged frame, 0 .. reader.GetNumberOfSteps() - 1
    reader.Update()
    grid = pyvista.wrap(reader.GetOutput()).copy()       # its arrays at that step
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..model.energy import TERMS
from ..model.fiber import require_so3
from .outputs import check_output, h5_output, require_space
from .reader import NotReproducible, Trajectory, load

FORMATS = {"vtkhdf": (".vtkhdf", ".hdf")}  # format -> the output suffixes it is written under
# suffixes people reach for that name another format: said as such in the refusal
_OTHER_FORMATS = {".vtk": "VTK's legacy format", ".vti": "VTK XML ImageData", ".vtu": "VTK XML UnstructuredGrid",
                  ".xdmf": "XDMF", ".xmf": "XDMF", ".h5": "a plain HDF5 name (run files use it)"}
VTKHDF_VERSION = (2, 0)  # the first version with transient (Steps) ImageData

_QUANTITIES = {  # per-agent quantity -> (units, description); units as in docs/model.md#units
    "mu": ("u", "belief mean in the agent's own gauge frame"),
    "mu_norm": ("u", "|mu|, the norm of the belief mean"),
    "trace_sigma": ("u2", "trace of the belief covariance"),
    "phi": ("rad", "gauge frame: so(3) vector along G_1, G_2, G_3"),
    "chi": ("1", "support weight chi_i(c) in (0, 1]"),
    **{f"energy_{t}": ("nat", f"{t} energy density owned by the agent-site (weights included)") for t in TERMS},
    "energy_total": ("nat", "free-energy density: the sum of the energy_<term> densities"),
    "plaquette_angle": ("rad", "holonomy angle of the plaquette based at the site (stored analysis)"),
}


@dataclass
class ExportResult:
    path: Path
    format: str
    steps: np.ndarray  # the exported logged steps (the file's time values)
    arrays: list[str]  # names of the cell arrays
    notes: list[str] = field(default_factory=list)  # what is missing and why
    wall_time: float = 0.0

    def line(self) -> str:
        span = f"steps {int(self.steps[0])}..{int(self.steps[-1])}" if len(self.steps) else "no steps"
        return (f"wrote {self.path} ({self.format}: {len(self.steps)} frames, {span}, {len(self.arrays)} arrays, "
                f"{self.wall_time:.1f} s)")


def format_for(out, format: str | None = None) -> str:
    """The export format of the output path ``out``, chosen by its suffix; ``format`` (given) must agree with it.
    ValueError, one line naming the file, for an unknown format or a suffix that is not one of its own."""
    out = Path(out)
    suffix = out.suffix.lower()
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}: expected {', '.join(FORMATS)}")
    wanted = [f for f, suffixes in FORMATS.items() if suffix in suffixes]
    if not wanted or (format is not None and format not in wanted):
        fmt = format or "vtkhdf"
        what = f" ({_OTHER_FORMATS[suffix]}, which vfe export does not write)" if suffix in _OTHER_FORMATS else ""
        raise ValueError(f"{out}: the suffix {suffix or '(none)'}{what} does not name the {fmt} format; name the "
                         f"output {' or '.join(FORMATS[fmt])} (e.g. {out.with_suffix(FORMATS[fmt][0]).name})")
    return wanted[0]


def export(traj_or_path, out, format: str | None = None, *, energy_densities: bool = True,
           progress=None) -> ExportResult:
    """Write the run ``traj_or_path`` (a :class:`Trajectory` or a run file) to ``out`` in the format its suffix
    names (:func:`format_for`; ``format``, if given, must agree with the suffix).

    An earlier export at ``out`` is replaced only once the new one is complete (:func:`~.outputs.atomic_output`:
    a failure or an interrupt leaves it as it was). ``energy_densities=False`` skips recomputing the densities
    (one energy evaluation per frame). ``progress(done, total)`` is called after each frame. Bad input (an
    unknown format, a suffix that is not the format's, a run without logged frames) raises ``ValueError``; an ``out`` that is the run file itself,
    a live run's file or any run trajectory raises :class:`~.outputs.OutputRefused` (a ``ValueError``) before
    anything is written; an unreadable run raises ``OSError``; a full disk raises :class:`~.outputs.NoSpaceLeft`
    (an ``OSError``) with the earlier export as it was.
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}: expected {', '.join(FORMATS)}")
    if isinstance(traj_or_path, Trajectory):
        require_so3(traj_or_path, "vfe export (phi as an so(3) vector, the plaquette angle)", traj_or_path.path)
        return _export_vtkhdf(traj_or_path, Path(out), format, energy_densities, progress)
    with load(traj_or_path) as traj:
        return export(traj, out, format, energy_densities=energy_densities, progress=progress)


def agent_array_name(traj: Trajectory, agent: int, quantity: str) -> str:
    """The exported array of ``quantity`` for ``agent``: ``agent07_mu`` (zero-padded so they sort by agent)."""
    width = len(str(max(traj.n_agents - 1, 0)))
    return f"agent{agent:0{width}d}_{quantity}"


def _meta_ids(result, traj: Trajectory) -> dict[int, np.ndarray]:
    """Scale s (2 .. max_scale) -> (analysed frames, N) id of each agent's scale-s meta-agent, -1 if none."""
    out = {}
    for s in range(2, result.counts.shape[1]):
        ids = np.full((result.steps.size, traj.n_agents), -1, dtype=np.int64)
        for k in np.nonzero(result.records["scale"] == s)[0]:
            frame = int(np.searchsorted(result.steps, result.records["step"][k]))
            ids[frame, result.members[result.members_offset[k]:result.members_offset[k + 1]]] = \
                result.records["id"][k]
        out[s] = ids
    return out


def _export_vtkhdf(traj: Trajectory, out: Path, format: str | None, energy_densities: bool,
                   progress) -> ExportResult:
    t0 = time.perf_counter()
    check_output(out, [traj.path], "export")  # first: an output that is a run file is refused as such
    format_for(out, format)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: the folder {out.parent} does not exist")
    steps = np.asarray(traj.frame_steps)
    T, N, H, W = steps.size, traj.n_agents, traj.grid.height, traj.grid.width
    if T == 0 or not {"mu", "sigma", "phi"} <= set(traj.fields):
        raise ValueError(f"{traj.path}: no logged frames of mu, sigma and phi to export")
    dtype = np.dtype(traj.dtype)
    agent_of_row = np.repeat(np.arange(N), np.diff(traj.offset))
    notes = []
    result = traj.analysis()
    meta, pick = {}, np.full(T, -1)
    if result is None:
        notes.append(f"no stored analysis in {traj.path}: no meta-agent ids or plaquette angles "
                     f"(run `vfe analyze {traj.path}` first)")
    else:
        meta = _meta_ids(result, traj)
        if result.steps.size:  # the analysed frame of each logged frame, -1 if it was not analysed
            k = np.searchsorted(result.steps, steps).clip(0, result.steps.size - 1)
            pick = np.where(result.steps[k] == steps, k, -1)
        if (pick < 0).any():
            notes.append(f"the stored analysis does not cover {int((pick < 0).sum())} of the {T} logged frames: "
                         "their meta-agent ids and plaquette angles are NaN")
    quantities = {"mu": traj.K, "mu_norm": 1, "trace_sigma": 1, "phi": 3}
    if energy_densities:
        quantities.update({f"energy_{t}": 1 for t in TERMS + ("total",)})
    if result is not None:
        quantities.update({f"meta_id_scale{s}": 1 for s in meta})
        quantities["plaquette_angle"] = 1

    def on_grid(rows: np.ndarray) -> np.ndarray:
        """(S[, c]) agent-site rows -> (N, H, W[, c]) in the export dtype, NaN outside each support."""
        grid = np.full((N, H * W) + rows.shape[1:], np.nan, dtype=dtype)
        grid[agent_of_row, traj.index] = rows
        return grid.reshape((N, H, W) + rows.shape[1:])

    with h5_output(out) as f:  # a full disk: NoSpaceLeft, the handle released, nothing replaced
        f.attrs["source"] = str(traj.path)
        f.attrs["creator"] = "gauge-vfe export (docs: gauge_vfe.agents.io.export)"
        f.attrs["config_json"] = json.dumps(traj.config, sort_keys=True)
        described = {**_QUANTITIES, **{f"meta_id_scale{s}": ("1", f"id of the agent's scale-{s} meta-agent, "
                                                                  "-1 if none (stored analysis)") for s in meta}}
        f.attrs["arrays_json"] = json.dumps({q: {"units": described[q][0], "description": described[q][1]}
                                             for q in [*quantities, "chi"]}, sort_keys=True)
        g = f.create_group("VTKHDF")
        g.attrs["Version"] = np.array(VTKHDF_VERSION, dtype=np.int64)
        g.attrs.create("Type", np.bytes_("ImageData"), dtype=h5py.string_dtype("ascii", len("ImageData")))
        g.attrs["WholeExtent"] = np.array([0, W, 0, H, 0, 0], dtype=np.int64)  # point extent: W x H cells
        g.attrs["Origin"] = np.array([-0.5, -0.5, 0.0])  # cell (row y, column x) centred at (x, y)
        g.attrs["Spacing"] = np.ones(3)
        g.attrs["Direction"] = np.eye(3).ravel()
        cells = g.create_group("CellData")
        st = g.create_group("Steps")
        st.attrs["NSteps"] = np.int64(T)
        st.create_dataset("Values", data=steps.astype(np.float64))
        offsets = st.create_group("CellDataOffsets")
        g.create_group("PointData")
        st.create_group("PointDataOffsets")

        datasets = {}
        chi_grid = on_grid(traj.chi)
        for i in range(N):
            for q, c in quantities.items():
                name = agent_array_name(traj, i, q)
                shape = (T, H, W) + ((c,) if c > 1 else ())
                datasets[i, q] = cells.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) + shape[1:],
                                                      compression="gzip", shuffle=True)
                offsets.create_dataset(name, data=np.arange(T, dtype=np.int64))  # step k: entry k
            name = agent_array_name(traj, i, "chi")  # constant in time: stored once, every step reads entry 0
            cells.create_dataset(name, data=chi_grid[i][None])
            offsets.create_dataset(name, data=np.zeros(T, dtype=np.int64))

        frame_bytes = sum(ds.size // T * ds.dtype.itemsize for ds in datasets.values())  # uncompressed: a bound
        for k in range(T):
            require_space(out, frame_bytes)  # before HDF5 writes: a write failing inside HDF5 is not recoverable
            mu = traj.rows("mu", k).astype(np.float64)
            sigma = traj.rows("sigma", k).astype(np.float64)
            values = {"mu": on_grid(mu), "mu_norm": on_grid(np.sqrt(np.sum(mu * mu, axis=1))),
                      "trace_sigma": on_grid(np.trace(sigma, axis1=1, axis2=2)),
                      "phi": on_grid(traj.rows("phi", k))}
            if energy_densities:
                try:
                    dens = traj.evaluate(k).densities
                except NotReproducible as exc:  # e.g. a streaming observation draw: NaN, and said once
                    dens = {t: np.full(agent_of_row.size, np.nan) for t in TERMS}
                    if not any(n.startswith("no energy densities") for n in notes):
                        notes.append(f"no energy densities for some frames (NaN): {exc}")
                for t in TERMS:
                    values[f"energy_{t}"] = on_grid(dens[t])
                values["energy_total"] = on_grid(sum(dens[t] for t in TERMS))
            if result is not None:
                j = int(pick[k])
                for s, ids in meta.items():
                    per_row = ids[j][agent_of_row] if j >= 0 else np.full(agent_of_row.size, np.nan)
                    values[f"meta_id_scale{s}"] = on_grid(per_row)
                values["plaquette_angle"] = on_grid(result.plaquette_angle[j] if j >= 0
                                                    else np.full(agent_of_row.size, np.nan))
            for (i, q), ds in datasets.items():
                ds[k] = values[q][i].reshape(ds.shape[1:])  # a one-component mu (K = 1) is stored as a scalar
            if progress is not None:
                progress(k + 1, T)
        arrays = sorted(cells)
    return ExportResult(out, "vtkhdf", steps, arrays, notes, time.perf_counter() - t0)


__all__ = ["FORMATS", "ExportResult", "agent_array_name", "export", "format_for"]
