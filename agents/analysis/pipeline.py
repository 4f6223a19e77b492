"""Meta-agents and holonomy over every logged frame of a run, written into its file (``vfe analyze``).

Every logged frame is an analysis step: the hierarchy of meta-agents is detected, tracked with stable ids,
and the plaquette and loop holonomies are measured. Results go to ``/observables/meta_agents`` and
``/observables/holonomy`` (replacing earlier results):

    /observables/meta_agents/step               (F,) frame steps
    /observables/meta_agents/labels             (F, N) id of each agent's scale-2 meta-agent, -1 if none
    /observables/meta_agents/count              (F, max_scale + 1) meta-agents per scale (column s = scale s)
    /observables/meta_agents/records            one row per meta-agent per frame: step, scale, id, parent id
                                                (-1: none), members (entities one scale down), base members
                                                (scale-1 agents), dead
    /observables/meta_agents/members            base members of every record, concatenated;
    /observables/meta_agents/members_offset     record k owns members[members_offset[k]:members_offset[k+1]]
    /observables/meta_agents/events             step, kind (attr kinds maps codes), scale, id, other id
    /observables/meta_agents/lifetimes          id, scale, birth step, death step (-1: alive at the end)
    /observables/meta_agents/timescales         id, scale, tau (frames) of the coarse-grained belief, mean tau
                                                of its members, ratio
    /observables/holonomy/step                  (F,)
    /observables/holonomy/plaquette_angle       (F, S) per agent-site, NaN where a corner is missing
    /observables/holonomy/summary               (F, 3): mean, max, number of plaquettes
    /observables/holonomy/loops/angle, axis     (F, L), (F, L, 3); attr names (json), dataset definitions
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .measures import frame_matrices
from ..io.recovery import clear_consistency_flags, writer_alive
from .holonomy import Loop, automatic_loops, loop_from_waypoints, loop_holonomy, plaquette_angles
from .meta_agents import ConsensusParams, Tracker, autocorrelation_time, base_members, hierarchy
from ..io.reader import load

EVENT_KINDS = {"birth": 0, "death": 1, "merge": 2, "split": 3}


@dataclass
class AnalysisResult:
    steps: np.ndarray
    counts: np.ndarray  # (F, max_scale + 1)
    n_scales: int  # the highest scale at which a meta-agent appeared (1 = none)
    records: np.ndarray
    events: list
    timescales: np.ndarray
    holonomy_summary: np.ndarray
    loop_names: list[str]


def _common_mean(layout, state, rows) -> np.ndarray:
    """chi-weighted mean over ``rows`` of the means in the common frame, R^T mu (a frame-consistent summary)."""
    R = frame_matrices(layout, state)[rows]
    common = np.einsum("sji,sj->si", R, state.mu[rows])
    w = layout.chi[rows]
    return (w[:, None] * common).sum(axis=0) / w.sum()


def analyze_run(path, params: ConsensusParams = ConsensusParams(), loops: list | None = None,
                automatic: bool = True, write: bool = True, progress=None) -> AnalysisResult:
    """Analyse every logged frame of the run at ``path`` (see the module docstring); optionally write back.

    ``loops``: user loops as ``[{"name": ..., "waypoints": [[agent, y, x], ...]}, ...]``.
    """
    path = Path(path)
    traj = load(path)
    try:
        return _analyze(traj, path, params, loops, automatic, write, progress)
    finally:
        traj.close()


def _analyze(traj, path: Path, params: ConsensusParams, loops, automatic: bool, write: bool, progress
             ) -> AnalysisResult:
    if traj.recorded_status == "running" and traj.status != "killed":
        raise RuntimeError(f"{path}: the run is still being written; analyse it when it has ended")
    layout = traj.layout()
    steps = np.asarray(traj.frame_steps, dtype=np.int64)
    recorded = traj.recorded_status
    pid_host = traj.writer
    loop_defs: list[Loop] = []
    for spec in loops or []:
        loop_defs.append(loop_from_waypoints(layout, spec["name"], [tuple(w) for w in spec["waypoints"]]))
    if automatic:
        loop_defs += automatic_loops(layout)
    N = layout.n_agents
    F = steps.size
    max_scale = params.max_scale
    labels = -np.ones((F, N), dtype=np.int64)
    counts = np.zeros((F, max_scale + 1), dtype=np.int64)
    records = []
    members_flat: list[np.ndarray] = []
    tracker = Tracker()
    series: dict[int, dict] = {}  # id -> {"scale", "frames", "meta": [...], "members": {agent: [...]}}
    angles = np.full((F, layout.n_rows), np.nan)
    summary = np.zeros((F, 3))
    loop_angle = np.zeros((F, len(loop_defs)))
    loop_axis = np.zeros((F, len(loop_defs), 3))
    for f in range(F):
        state = traj.state(f)  # one frame in memory at a time: runs can hold thousands of frames
        levels = hierarchy(layout, state, params)
        base = base_members(levels)
        ids_by_level = []
        for lv, (level, mem) in enumerate(zip(levels, base)):
            scale = level.scale + 1
            ids = tracker.update(int(steps[f]), scale, mem)
            ids_by_level.append(ids)
            counts[f, scale] = len(ids)
            for k, (mid, comp, m) in enumerate(zip(ids, level.components, mem)):
                if scale == 2:
                    labels[f, m] = mid
                entry = series.setdefault(mid, {"scale": scale, "frames": [], "meta": [], "members": {}})
                entry["frames"].append(f)
                entry["meta"].append(_common_mean(level.layout, level.state, level.layout.rows_of(k)))
                for a in m:
                    entry["members"].setdefault(int(a), []).append(_common_mean(layout, state, layout.rows_of(a)))
        for lv, level in enumerate(levels):
            parent_of = {}
            if lv + 1 < len(levels):
                for pk, comp in enumerate(levels[lv + 1].components):
                    for child in comp:
                        parent_of[int(child)] = ids_by_level[lv + 1][pk]
            for k, comp in enumerate(level.components):
                records.append((int(steps[f]), level.scale + 1, ids_by_level[lv][k], parent_of.get(k, -1), len(comp),
                                len(base[lv][k]), bool(level.dead[k])))
                members_flat.append(base[lv][k])
        ang, _ = plaquette_angles(layout, state)
        angles[f] = ang
        fin = ang[np.isfinite(ang)]
        summary[f] = (fin.mean() if fin.size else np.nan, fin.max() if fin.size else np.nan, fin.size)
        for li, lp in enumerate(loop_defs):
            loop_angle[f, li], loop_axis[f, li], _ = loop_holonomy(layout, state, lp)
        if progress is not None:
            progress(f + 1, F)
    timescales = []
    for mid, entry in sorted(series.items()):
        tau_meta = autocorrelation_time(np.array(entry["meta"]))
        taus = [autocorrelation_time(np.array(v)) for v in entry["members"].values()]
        taus = [t for t in taus if np.isfinite(t)]
        tau_members = float(np.mean(taus)) if taus else float("nan")
        ratio = tau_meta / tau_members if taus and tau_members > 0 else float("nan")
        timescales.append((mid, entry["scale"], tau_meta, tau_members, ratio))
    rec_dtype = np.dtype([("step", "i8"), ("scale", "i8"), ("id", "i8"), ("parent", "i8"), ("size", "i8"),
                          ("n_base", "i8"), ("dead", "?")])
    records_arr = np.array(records, dtype=rec_dtype)
    ts_dtype = np.dtype([("id", "i8"), ("scale", "i8"), ("tau", "f8"), ("tau_members", "f8"), ("ratio", "f8")])
    ts_arr = np.array(timescales, dtype=ts_dtype)
    ev_dtype = np.dtype([("step", "i8"), ("kind", "i8"), ("scale", "i8"), ("id", "i8"), ("other", "i8")])
    ev_arr = np.array([(s, EVENT_KINDS[k], sc, i, o) for s, k, sc, i, o in tracker.events], dtype=ev_dtype)
    life_dtype = np.dtype([("id", "i8"), ("scale", "i8"), ("birth", "i8"), ("death", "i8")])
    life_arr = np.array([(mid, series[mid]["scale"], tracker.born.get(mid, int(steps[0])), tracker.died.get(mid, -1))
                         for mid in sorted(series)], dtype=life_dtype)
    n_scales = int(max([1] + [s for s in range(2, max_scale + 1) if counts[:, s].any()]))
    if write:
        traj.close()  # reopened below for writing
        if recorded == "running":
            if writer_alive(*pid_host):
                raise RuntimeError(f"{path}: the run is still being written")
            clear_consistency_flags(path)
        offsets = np.concatenate([[0], np.cumsum([m.size for m in members_flat])]).astype(np.int64)
        with h5py.File(path, "a") as f:
            for name in ("observables/meta_agents", "observables/holonomy"):
                if name in f:
                    del f[name]
            g = f.create_group("observables/meta_agents")
            g.attrs["params"] = json.dumps(params.__dict__)
            g.create_dataset("step", data=steps)
            g.create_dataset("labels", data=labels, compression="gzip")
            g.create_dataset("count", data=counts)
            g.create_dataset("records", data=records_arr)
            g.create_dataset("members", data=np.concatenate(members_flat).astype(np.int64) if members_flat
                             else np.zeros(0, dtype=np.int64))
            g.create_dataset("members_offset", data=offsets)
            ev = g.create_dataset("events", data=ev_arr)
            ev.attrs["kinds"] = json.dumps(EVENT_KINDS)
            g.create_dataset("lifetimes", data=life_arr)
            g.create_dataset("timescales", data=ts_arr)
            h = f.create_group("observables/holonomy")
            h.create_dataset("step", data=steps)
            h.create_dataset("plaquette_angle", data=angles, compression="gzip", chunks=(1, layout.n_rows))
            h.create_dataset("summary", data=summary).attrs["columns"] = json.dumps(["mean", "max", "count"])
            lg = h.create_group("loops")
            lg.attrs["names"] = json.dumps([lp.name for lp in loop_defs])
            lg.attrs["definitions"] = json.dumps([{"name": lp.name, "rows": lp.rows.tolist(),
                                                   "kinds": lp.kinds.tolist()} for lp in loop_defs])
            lg.create_dataset("angle", data=loop_angle)
            lg.create_dataset("axis", data=loop_axis)
    return AnalysisResult(steps, counts, n_scales, records_arr, tracker.events, ts_arr, summary,
                          [lp.name for lp in loop_defs])
