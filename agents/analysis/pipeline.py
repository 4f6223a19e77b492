"""Meta-agents and holonomy over the logged frames of a run (docs/model.md#meta-agents, #holonomy).

:func:`analyze_frames` is pure computation: a layout and a sequence of states in, an :class:`AnalysisResult`
out. Reading the frames from a trajectory and storing the result is the io layer's job
(:mod:`gauge_vfe.agents.io.analysis_store`); the file layout of the result is docs/model.md#file-analysis.

Every logged frame is an analysis step: the hierarchy of meta-agents is detected, tracked with stable ids
(births, deaths, merges, splits) and coarse-grained; the plaquette and loop holonomies are measured; at the
end each meta-agent's time scale is compared with its members'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..model.layout import Layout
from ..model.state import State
from .holonomy import automatic_loops, loop_from_waypoints, loop_holonomy, plaquette_angles
from .measures import frame_matrices
from .meta_agents import Tracker, base_members, hierarchy
from .timescales import autocorrelation_time

EVENT_KINDS = {"birth": 0, "death": 1, "merge": 2, "split": 3}
RECORD_DTYPE = np.dtype([("step", "i8"), ("scale", "i8"), ("id", "i8"), ("parent", "i8"), ("size", "i8"),
                         ("n_base", "i8"), ("dead", "?")])
TIMESCALE_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("tau", "f8"), ("tau_members", "f8"), ("ratio", "f8")])
EVENT_DTYPE = np.dtype([("step", "i8"), ("kind", "i8"), ("scale", "i8"), ("id", "i8"), ("other", "i8")])
LIFETIME_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("birth", "i8"), ("death", "i8")])
HOLONOMY_SUMMARY_COLUMNS = ("mean", "max", "count")


@dataclass
class AnalysisResult:
    """Everything the analysis finds, as arrays (one row per logged frame where it is per frame).

    ``records`` has one row per meta-agent per logged frame (``RECORD_DTYPE``); its base members (scale-1
    agents) are ``members[members_offset[k]:members_offset[k + 1]]``. ``events`` rows are ``EVENT_DTYPE``
    with ``kind`` coded by ``EVENT_KINDS``.
    """

    params: dict  # the settings used (meta_agents section)
    steps: np.ndarray  # (F,) steps of the analysed frames
    labels: np.ndarray  # (F, N) id of each agent's scale-2 meta-agent, -1 if none
    counts: np.ndarray  # (F, max_scale + 1) meta-agents per scale (column s = scale s)
    records: np.ndarray
    members: np.ndarray
    members_offset: np.ndarray
    events: np.ndarray
    lifetimes: np.ndarray  # id, scale, birth step, death step (-1: alive at the end)
    timescales: np.ndarray  # id, scale, tau (logged frames), mean tau of its members, ratio
    plaquette_angle: np.ndarray  # (F, S) per agent-site, NaN where a corner is missing
    holonomy_summary: np.ndarray  # (F, 3): HOLONOMY_SUMMARY_COLUMNS
    loop_names: list[str]
    loop_definitions: list[dict]
    loop_angle: np.ndarray  # (F, L)
    loop_axis: np.ndarray  # (F, L, 3)
    notes: list[str] = field(default_factory=list)  # logged frames skipped, and why (not stored in the file)

    @property
    def n_scales(self) -> int:
        """The highest scale at which a meta-agent appeared (1: none)."""
        present = [s for s in range(2, self.counts.shape[1]) if self.counts[:, s].any()]
        return max(present, default=1)

    def event_counts(self) -> dict[str, int]:
        names = {v: k for k, v in EVENT_KINDS.items()}
        out: dict[str, int] = {}
        for kind in self.events["kind"]:
            out[names[int(kind)]] = out.get(names[int(kind)], 0) + 1
        return out

    def meta_agents(self, frame: int) -> list[dict]:
        """The meta-agents of one analysed frame: scale, id, parent id, base members, dead."""
        step = int(self.steps[frame])
        out = []
        for k in np.nonzero(self.records["step"] == step)[0]:
            r = self.records[k]
            out.append({"scale": int(r["scale"]), "id": int(r["id"]), "parent": int(r["parent"]),
                        "members": self.members[self.members_offset[k]:self.members_offset[k + 1]].copy(),
                        "dead": bool(r["dead"])})
        return out


def _common_mean(layout: Layout, state: State, rows) -> np.ndarray:
    """chi-weighted mean over ``rows`` of the means in the common frame, R^T mu (a frame-consistent summary)."""
    R = frame_matrices(layout, state)[rows]
    common = np.einsum("sji,sj->si", R, state.mu[rows])
    w = layout.chi[rows]
    return (w[:, None] * common).sum(axis=0) / w.sum()


def analyze_frames(layout: Layout, steps, states: Iterable[State], settings, progress=None) -> AnalysisResult:
    """Analyse a run's logged frames (``states``, one at a time, at ``steps``) with ``settings`` (the
    scenario's ``analysis`` section: ``meta_agents`` thresholds and ``holonomy`` loops)."""
    params = settings.meta_agents
    loop_defs = [loop_from_waypoints(layout, lp.name, [tuple(w) for w in lp.waypoints])
                 for lp in settings.holonomy.loops]
    if settings.holonomy.automatic:
        loop_defs += automatic_loops(layout)
    steps = np.asarray(steps, dtype=np.int64)
    N, F, max_scale = layout.n_agents, steps.size, params.max_scale
    labels = -np.ones((F, N), dtype=np.int64)
    counts = np.zeros((F, max_scale + 1), dtype=np.int64)
    records, members_flat = [], []
    tracker = Tracker()
    series: dict[int, dict] = {}  # id -> {"scale", "meta": [...], "members": {agent: [...]}}
    angles = np.full((F, layout.n_rows), np.nan)
    summary = np.zeros((F, len(HOLONOMY_SUMMARY_COLUMNS)))
    loop_angle = np.zeros((F, len(loop_defs)))
    loop_axis = np.zeros((F, len(loop_defs), 3))
    notes = []
    f = -1
    for f, state in enumerate(states):  # one frame in memory at a time: runs can hold thousands of frames
        step = int(steps[f])
        problem = _unusable(state)
        if problem is None:
            try:
                levels = hierarchy(layout, state, params)
            except ValueError as exc:  # a covariance that is not positive definite
                problem = str(exc)
        if problem is not None:
            # a diverging run's last frames: nothing to measure there; the ids carry on across the gap
            notes.append(f"logged frame {f} (step {step}) skipped: {problem}")
            summary[f] = (np.nan, np.nan, 0)
            loop_angle[f] = np.nan
            loop_axis[f] = np.nan
            if progress is not None:
                progress(f + 1, F)
            continue
        base = base_members(levels)
        ids_by_level = []
        for level, mem in zip(levels, base):
            scale = level.scale + 1
            ids = tracker.update(step, scale, mem)
            ids_by_level.append(ids)
            counts[f, scale] = len(ids)
            for k, (mid, m) in enumerate(zip(ids, mem)):
                if scale == 2:
                    labels[f, m] = mid
                entry = series.setdefault(mid, {"scale": scale, "meta": [], "members": {}})
                entry["meta"].append(_common_mean(level.layout, level.state, level.layout.rows_of(k)))
                for a in m:
                    entry["members"].setdefault(int(a), []).append(_common_mean(layout, state, layout.rows_of(a)))
        # Scales the hierarchy did not reach in this frame have no meta-agents: the tracker must see that,
        # or a meta-agent whose parents vanished would never end.
        for scale in range(len(levels) + 2, max_scale + 1):
            tracker.update(step, scale, [])
        for lv, level in enumerate(levels):
            parent_of = {}
            if lv + 1 < len(levels):
                for pk, comp in enumerate(levels[lv + 1].components):
                    for child in comp:
                        parent_of[int(child)] = ids_by_level[lv + 1][pk]
            for k, comp in enumerate(level.components):
                records.append((step, level.scale + 1, ids_by_level[lv][k], parent_of.get(k, -1), len(comp),
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
    if f + 1 != F:
        raise ValueError(f"analysis: {F} frame steps but {f + 1} states")
    timescales = []
    for mid, entry in sorted(series.items()):
        tau_meta = autocorrelation_time(np.array(entry["meta"]))
        taus = [t for t in (autocorrelation_time(np.array(v)) for v in entry["members"].values()) if np.isfinite(t)]
        tau_members = float(np.mean(taus)) if taus else float("nan")
        ratio = tau_meta / tau_members if taus and tau_members > 0 else float("nan")
        timescales.append((mid, entry["scale"], tau_meta, tau_members, ratio))
    first = int(steps[0]) if F else 0
    return AnalysisResult(
        params=params.model_dump() if hasattr(params, "model_dump") else dict(params.__dict__),
        steps=steps, labels=labels, counts=counts,
        records=np.array(records, dtype=RECORD_DTYPE),
        members=np.concatenate(members_flat).astype(np.int64) if members_flat else np.zeros(0, dtype=np.int64),
        members_offset=np.concatenate([[0], np.cumsum([m.size for m in members_flat])]).astype(np.int64),
        events=np.array([(s, EVENT_KINDS[k], sc, i, o) for s, k, sc, i, o in tracker.events], dtype=EVENT_DTYPE),
        lifetimes=np.array([(mid, series[mid]["scale"], tracker.born.get(mid, first), tracker.died.get(mid, -1))
                            for mid in sorted(series)], dtype=LIFETIME_DTYPE),
        timescales=np.array(timescales, dtype=TIMESCALE_DTYPE),
        plaquette_angle=angles, holonomy_summary=summary,
        loop_names=[lp.name for lp in loop_defs],
        loop_definitions=[{"name": lp.name, "rows": lp.rows.tolist(), "kinds": lp.kinds.tolist()} for lp in loop_defs],
        loop_angle=loop_angle, loop_axis=loop_axis, notes=notes,
    )


def _unusable(state: State) -> str | None:
    for name in ("mu", "sigma", "phi"):
        if not np.isfinite(getattr(state, name)).all():
            return f"non-finite {name}"
    return None
