"""A trajectory as an ``xarray.Dataset``: labelled dimensions, units and descriptions (docs/model.md#file).

    ds = gv.load("runs/q.h5").to_xarray()
    ds.mu.sel(step=200, agent=3)            # (y, x, k), NaN outside agent 3's support
    ds.energy.sel(term="total")             # over energy_step (every step)
    ds.to_netcdf("q.nc")                    # netCDF-4 (h5netcdf) or netCDF-3 (scipy)

Dimensions: ``step`` (logged frames), ``agent`` (i), ``y``, ``x`` (the grid, in sites), ``k``, ``l`` (fiber
components; ``l`` for the covariance's second index), ``a`` (so(3) components of phi), ``j`` (the attended agent
of beta), ``energy_step`` (every step: energies, gradient norms, retractions), ``term``, and for the stored
analysis ``scale``, ``loop``, ``xyz``, ``event``, ``meta_agent``, ``series`` (the rows of ``timescale_detail``,
variables ``series_*``) and ``analysis_step`` when the analysis covers other frames than the logged ones. Per-agent fields are scattered from the file's agent-site rows onto the
grid, NaN outside each agent's support, in the file's precision (``output.dtype``).

Every variable and coordinate has the attributes ``units`` (CF's name; ``1`` for dimensionless) and
``description``; the dataset's attributes name the run (scenario, seed, status, the resolved configuration as
JSON). Everything is read into memory: pass ``steps=`` (a list of logged steps) or ``fields=`` for a part.
"""

from __future__ import annotations

import json

import numpy as np

from ..model.energy import TERMS
from .checked import read
from .schema import SERIES_BY_KEY, STEP_SERIES, frame_path

_FIELD_DIMS = {"mu": ("k",), "sigma": ("k", "l"), "phi": ("a",), "beta": ("j",)}
# descriptions of the fields on the grid (the file's, in the layout table, describe its agent-site rows)
_FIELD_DESCRIPTIONS = {
    "mu": "belief mean, in the agent's own gauge frame",
    "sigma": "belief covariance",
    "phi": "gauge frame: so(3) vector along the generators G_1, G_2, G_3 (|phi| is a rotation angle)",
    "beta": "attention weight beta_ij(c) of agent i (agent) on agent j (j) at the site",
}
# the scalar series logged every step besides the energies (stacked by term) become ``energy_step`` variables
_STEP_VARIABLES = tuple(s for s in STEP_SERIES if s.key not in ("total",) + TERMS and not s.trailing)


def _attrs(units: str, description: str) -> dict:
    return {"units": units, "description": description}


def _units(series) -> str:
    """CF's spelling of a layout table unit (``u+2`` -> ``u2``); ``1`` for dimensionless."""
    return series.unit.replace("+", "") if series.unit else "1"


def _frames(traj, steps) -> np.ndarray:
    """Indices of the logged frames to read (all, or those of ``steps``; an unlogged step raises)."""
    if steps is None:
        return np.arange(len(traj.frame_steps))
    return np.array(sorted({traj.frame_of_step(int(s)) for s in np.atleast_1d(steps)}), dtype=np.int64)


def _scatter(traj, values: np.ndarray, agent_of_row: np.ndarray) -> np.ndarray:
    """(T, S, ...) agent-site rows -> (T, N, H, W, ...), NaN outside each support (the rows' dtype kept)."""
    H, W = traj.grid.height, traj.grid.width
    dtype = values.dtype if values.dtype.kind == "f" else np.float64
    out = np.full((values.shape[0], traj.n_agents, H * W) + values.shape[2:], np.nan, dtype=dtype)
    out[:, agent_of_row, traj.index] = values
    return out.reshape((values.shape[0], traj.n_agents, H, W) + values.shape[2:])


def trajectory_dataset(traj, steps=None, fields=None):
    """The :class:`~gauge_vfe.agents.io.reader.Trajectory` ``traj`` as an ``xarray.Dataset`` (module docstring)."""
    import xarray as xr

    f = traj._f  # the io layer's own handle: one bulk read per dataset
    frames = _frames(traj, steps)
    fields = traj.fields if fields is None else list(fields)
    for name in fields:
        if name not in traj.fields:
            raise KeyError(f"field {name!r} was not logged (logged: {traj.fields})")
    N, H, W, K = traj.n_agents, traj.grid.height, traj.grid.width, traj.K
    agent_of_row = np.repeat(np.arange(N), np.diff(traj.offset))
    frame_steps = traj.frame_steps[frames]
    coords = {
        "step": ("step", frame_steps, _attrs("1", "step count of the logged frame (descent has no physical time)")),
        "agent": ("agent", np.arange(N), _attrs("1", "agent index i")),
        "y": ("y", np.arange(H), _attrs("site", "grid row (axis 0)")),
        "x": ("x", np.arange(W), _attrs("site", "grid column (axis 1)")),
        "k": ("k", np.arange(K), _attrs("1", "fiber component")),
        "l": ("l", np.arange(K), _attrs("1", "fiber component (the covariance's second index)")),
        "a": ("a", np.arange(K * K), _attrs("1", "gl(K) entry (row-major) of phi, GL(K) frames")) if traj.group == "glk"
        else ("a", np.arange(3), _attrs("1", "so(3) component (generator G_1, G_2, G_3)")),
        "j": ("j", np.arange(N), _attrs("1", "attended agent j")),
    }
    if len(traj.fields):
        time = f[f"{frame_path(traj.fields[0])}/time"]
        coords["time"] = ("step", read(time, np.s_[: len(traj.frame_steps)])[frames].astype(np.float64),
                          _attrs("1", "the step count as a float (the file's H5MD time)"))
    data = {}
    for name in fields:
        ds = f[f"{frame_path(name)}/value"]
        n = len(traj.frame_steps)  # committed frames: a live or killed run's file may hold one more, partial
        values = read(ds, np.s_[:n] if frames.size == n else frames.tolist() if frames.size else np.s_[:0])
        data[name] = (("step", "agent", "y", "x") + _FIELD_DIMS[name], _scatter(traj, values, agent_of_row),
                      _attrs(_units(SERIES_BY_KEY[name]), _FIELD_DESCRIPTIONS[name]))
    data["chi"] = (("agent", "y", "x"), _scatter(traj, traj.chi[None], agent_of_row)[0],
                   _attrs("1", "support weight chi_i(c) in (0, 1]; NaN outside the support"))
    energies = traj.energies()
    coords["energy_step"] = ("energy_step", energies["step"], _attrs("1", "step count (energies are logged every "
                                                                          "step)"))
    terms = ("total",) + TERMS
    coords["term"] = ("term", np.array(terms), _attrs("1", "energy term (total: their sum)"))
    data["energy"] = (("energy_step", "term"), np.stack([energies[t] for t in terms], axis=1),
                      _attrs("nat", "energy by term, weights included, of the state at each step"))
    for series in _STEP_VARIABLES:  # grad_norm_mu, ..., spd_retractions
        s, v = traj.series(series.key)
        if s.size == energies["step"].size:
            data[series.key.replace("/", "_")] = ("energy_step", v, _attrs(_units(series), series.description))
    result = traj.analysis()
    if result is not None:
        _add_analysis(traj, result, frame_steps, agent_of_row, coords, data)
    cfg = traj.config
    attrs = {
        "title": f"gauge-vfe run {cfg.get('name', '')}".strip(), "source": str(traj.path),
        "status": traj.status, "seed": int(traj.seed), "grid_boundary": traj.grid.boundary,
        "fiber_spins": json.dumps(traj.spins), "config_json": json.dumps(cfg, sort_keys=True),
        "dtype": traj.dtype, "description": "docs/model.md#file: per-agent fields on the grid, NaN outside each "
                                            "agent's support; units as in docs/model.md#units",
    }
    used = {d for dims, *_ in data.values() for d in ((dims,) if isinstance(dims, str) else dims)}
    coords = {k: v for k, v in coords.items() if v[0] in used}  # e.g. no `j` without beta
    return xr.Dataset({k: xr.Variable(*v) for k, v in data.items()},
                      coords={k: xr.Variable(*v) for k, v in coords.items()}, attrs=attrs)


def _add_analysis(traj, result, frame_steps, agent_of_row, coords, data) -> None:
    """The stored analysis: per frame on ``step`` when it covers exactly these frames, else on ``analysis_step``."""
    if np.isin(frame_steps, result.steps).all():
        dim, pick = "step", np.searchsorted(result.steps, frame_steps)
    else:
        dim, pick = "analysis_step", np.arange(result.steps.size)
        coords[dim] = (dim, result.steps, _attrs("1", "steps of the analysed logged frames"))
    scales = np.arange(result.counts.shape[1])
    coords["scale"] = ("scale", scales, _attrs("1", "meta-agent scale (1: the agents themselves)"))
    data["meta_label"] = ((dim, "agent"), result.labels[pick],
                          _attrs("1", "id of the agent's scale-2 meta-agent, -1 if none"))
    data["meta_count"] = ((dim, "scale"), result.counts[pick], _attrs("1", "number of meta-agents per scale"))
    angle = _scatter(traj, result.plaquette_angle[pick], agent_of_row)
    data["plaquette_angle"] = ((dim, "agent", "y", "x"), angle,
                               _attrs("rad", "holonomy angle of the plaquette based at the site, NaN where undefined"))
    for c, name in enumerate(("mean", "max")):
        data[f"holonomy_{name}"] = (dim, result.holonomy_summary[pick, c],
                                    _attrs("rad", f"{name} of the defined plaquette angles"))
    data["holonomy_count"] = (dim, result.holonomy_summary[pick, 2].astype(np.int64),
                              _attrs("1", "number of defined plaquette angles"))
    if result.loop_names:
        coords["loop"] = ("loop", np.array(result.loop_names), _attrs("1", "holonomy loop name"))
        coords["xyz"] = ("xyz", np.arange(3), _attrs("1", "rotation axis component"))
        data["loop_angle"] = ((dim, "loop"), result.loop_angle[pick], _attrs("rad", "loop holonomy angle"))
        data["loop_axis"] = ((dim, "loop", "xyz"), result.loop_axis[pick], _attrs("1", "loop holonomy axis"))
    ev = result.events
    names = {v: k for k, v in _event_kinds().items()}
    coords["event"] = ("event", np.arange(ev.size), _attrs("1", "meta-agent event index"))
    data["event_step"] = ("event", ev["step"], _attrs("1", "step of the event"))
    data["event_kind"] = ("event", np.array([names[int(k)] for k in ev["kind"]], dtype=str),
                          _attrs("1", "birth, death, merge or split"))
    for field in ("scale", "id", "other"):
        data[f"event_{field}"] = ("event", ev[field], _attrs("1", {"scale": "scale of the meta-agent",
                                                                   "id": "meta-agent id",
                                                                   "other": "merged into / split from (-1: none)"}
                                                             [field]))
    ts = result.timescales
    coords["meta_agent"] = ("meta_agent", ts["id"], _attrs("1", "meta-agent id"))
    data["meta_scale"] = ("meta_agent", ts["scale"], _attrs("1", "scale of the meta-agent"))
    for field, text in (("tau", "autocorrelation time of the meta-agent's mean belief"),
                        ("tau_members", "mean autocorrelation time of its members"),
                        ("ratio", "tau / tau_members")):
        data[f"timescale_{field}"] = ("meta_agent", ts[field], _attrs("1" if field == "ratio" else "frame", text))
    _add_timescale_detail(result.timescale_detail, coords, data)


# timescale_detail columns (docs/model.md#timescale-detail): units and descriptions
_DETAIL_ATTRS = {
    "id": ("1", "the agent (kind agent) or the meta-agent"),
    "scale": ("1", "scale (1: an agent)"),
    "member": ("1", "base member of a relative mode (-1: none)"),
    "first_step": ("1", "step of the series' first analysed frame"),
    "burn_in_step": ("1", "step of the first frame kept after the MSER burn-in"),
    "n_frames": ("1", "frames kept"),
    "every": ("1", "frame spacing in steps"),
    "window": ("1", "Sokal window M in frames (0: no estimate)"),
    "stationary": ("1", "false when MSER cut at its bound (not settled)"),
    "resolved": ("1", "tau_frames >= 4: the frame spacing resolves the time"),
    "tau_frames": ("frame", "integrated autocorrelation time (inf: too slow for the series)"),
    "tau_frames_err": ("frame", "Madras-Sokal error of tau_frames"),
    "tau_blocking_frames": ("frame", "batch-means cross-check of tau_frames"),
    "tau_steps": ("step", "every * tau_frames (NaN when not resolved)"),
    "tau_steps_err": ("step", "error of tau_steps"),
    "bits_per_step": ("bit", "mean bits of belief update per step of the series' agents"),
    "tau_bits": ("bit", "tau_steps in bits of belief update"),
    "tau_bits_err": ("bit", "error of tau_bits"),
}


def _add_timescale_detail(detail, coords, data) -> None:
    """One row per series (an agent, a meta-agent's collective mode, a member's relative mode) on ``series``."""
    from ..analysis.pipeline import TIMESCALE_KINDS

    names = {v: k for k, v in TIMESCALE_KINDS.items()}
    coords["series"] = ("series", np.arange(detail.size), _attrs("1", "time-scale series (timescale_detail row)"))
    data["series_kind"] = ("series", np.array([names[int(k)] for k in detail["kind"]], dtype=str),
                           _attrs("1", "agent, collective (a meta-agent's belief) or relative (member minus it)"))
    for name, (units, text) in _DETAIL_ATTRS.items():
        data[f"series_{name}"] = ("series", detail[name], _attrs(units, text))


def _event_kinds() -> dict:
    from ..analysis.pipeline import EVENT_KINDS

    return EVENT_KINDS


__all__ = ["trajectory_dataset"]
