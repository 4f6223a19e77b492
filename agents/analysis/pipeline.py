"""Meta-agents and holonomy over the logged frames of a run (docs/model.md#meta-agents, #holonomy).

:func:`analyze_frames` is pure computation: a layout and a sequence of states in, an :class:`AnalysisResult`
out. Reading the frames from a trajectory and storing the result is the io layer's job
(:mod:`gauge_vfe.agents.io.analysis_store`); the file layout of the result is docs/model.md#file-analysis.

Every logged frame is an analysis step: the hierarchy of meta-agents is detected, tracked with stable ids
(births, deaths, merges, splits) and coarse-grained; the plaquette and loop holonomies are measured; at the
end each meta-agent's time scale is compared with its members' (the stored ``timescales`` table, in logged
frames) and measured in detail (``timescale_detail``: every agent, every meta-agent's collective mode and its
members' relative modes, with error bars, burn-in, steps and bits; docs/model.md#timescales).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..model.fiber import require_so3
from ..model.layout import Layout
from ..model.state import State
from .gauge_series import (bits_per_scale, coarse_bits, coarse_snapshot, lifetime_table, prior_offsets,
                           support_means, transported_offsets)
from .holonomy import automatic_loops, loop_from_waypoints, loop_holonomy, plaquette_angles
from .measures import frame_matrices
from .meta_agents import Tracker, base_members, hierarchy
from .timescales import (REASON, UNRESOLVED, autocorrelation_time, bits_per_step, frame_spacing, series_timescale,
                         unresolved_reason)

EVENT_KINDS = {"birth": 0, "death": 1, "merge": 2, "split": 3}
RECORD_DTYPE = np.dtype([("step", "i8"), ("scale", "i8"), ("id", "i8"), ("parent", "i8"), ("size", "i8"),
                         ("n_base", "i8"), ("dead", "?")])
TIMESCALE_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("tau", "f8"), ("tau_members", "f8"), ("ratio", "f8")])
EVENT_DTYPE = np.dtype([("step", "i8"), ("kind", "i8"), ("scale", "i8"), ("id", "i8"), ("other", "i8")])
LIFETIME_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("birth", "i8"), ("death", "i8")])
HOLONOMY_SUMMARY_COLUMNS = ("mean", "max", "count")
# the keys of AnalysisResult.separation (a sweep's summary columns, in this order)
SEPARATION_FIELDS = [f"tau_{mode}_{unit}{err}" for mode in ("agent", "collective", "relative")
                     for unit in ("steps", "bits") for err in ("", "_err")] + \
    [f"separation{kind}{err}" for kind in ("", "_bits", "_agent") for err in ("", "_err")] + ["separation_lower"]
# a sweep's further time-scale columns (AnalysisResult.time_scale_summary; docs/model.md#separation)
TIME_SCALE_FIELDS = ["common_frame_separation", "common_frame_separation_err", "bits_ratio", "bits_ratio_n",
                     "lifetime_ids", "lifetime_ended", "lifetime_median_steps"]
TIMESCALE_KINDS = {"agent": 0, "collective": 1, "relative": 2}
TIMESCALE_DETAIL_DTYPE = np.dtype([
    ("kind", "i8"), ("id", "i8"), ("scale", "i8"), ("member", "i8"), ("first_step", "i8"), ("burn_in_step", "i8"),
    ("n_frames", "i8"), ("every", "i8"), ("window", "i8"), ("stationary", "?"), ("resolved", "?"),
    ("tau_frames", "f8"), ("tau_frames_err", "f8"), ("tau_blocking_frames", "f8"), ("tau_steps", "f8"),
    ("tau_steps_err", "f8"), ("bits_per_step", "f8"), ("tau_bits", "f8"), ("tau_bits_err", "f8")])

# series_detail: the timescale_detail columns, the series each row measures, whether it is gauge-invariant and why
# a time is not reported (``reason``, timescales.UNRESOLVED; 0: resolved, the only rows whose tau_steps and tau_bits
# are numbers; docs/model.md#unresolved-times)
SERIES_DETAIL_DTYPE = np.dtype(TIMESCALE_DETAIL_DTYPE.descr + [("series", "U24"), ("gauge_invariant", "?"),
                                                               ("reason", "i8")])
SERIES_NAMES = {(True, 0): "own-frame prior offset", (True, 1): "own-frame prior offset",
                (True, 2): "transported offset", (False, 0): "common frame", (False, 1): "common frame",
                (False, 2): "common frame"}


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
    # TIMESCALE_DETAIL_DTYPE rows, kind coded by TIMESCALE_KINDS: ``id`` the agent (kind agent) or the meta-agent,
    # ``member`` the base member of a relative mode (else -1). Empty in files analysed before it existed.
    timescale_detail: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=TIMESCALE_DETAIL_DTYPE))
    # The time-scale tables to trust (docs/model.md#gauge-invariant-series), stored in the run file (None: read
    # from a file analysed before they were stored; `vfe analyze` recomputes them):
    # SERIES_DETAIL_DTYPE rows: the gauge-invariant series, and the common-frame ones only where frames are fixed
    series_detail: np.ndarray | None = field(default_factory=lambda: np.zeros(0, dtype=SERIES_DETAIL_DTYPE))
    bits_by_meta: np.ndarray | None = None  # gauge_series.BITS_SCALE_DTYPE: time in bits per scale
    lifetime_stats: np.ndarray | None = None  # gauge_series.LIFETIME_STATS_DTYPE: steps and member bits
    # the gauge-invariant series themselves (in memory only): "agent" (F, N, K); "collective" {id: (steps,
    # (F_M, K))}; "relative" {(id, member): (steps, (F_a, K))}
    invariant_series: dict = field(default_factory=dict)

    def timescales_by_scale(self, detail: np.ndarray | None = None) -> list[dict]:
        """Per scale and kind (agents are scale 1): how many series, how many resolved, and the mean over the
        resolved ones of tau in steps and bits, each with the error of that mean (the rows' errors combined as
        independent, ``sqrt(sum err^2) / n``). ``detail``: the rows to summarise (default ``timescale_detail``)."""
        d = self.timescale_detail if detail is None else detail
        names = {v: k for k, v in TIMESCALE_KINDS.items()}
        out = []
        for scale, kind in sorted({(int(r["scale"]), int(r["kind"])) for r in d}):
            rows = d[(d["scale"] == scale) & (d["kind"] == kind)]
            res = rows[rows["resolved"]]
            row = {"scale": scale, "kind": names[kind], "n": int(rows.size), "n_resolved": int(res.size),
                   "unresolved": unresolved_counts(rows)}
            for unit in ("steps", "bits"):
                v, e = res[f"tau_{unit}"], res[f"tau_{unit}_err"]
                ok = np.isfinite(v) & np.isfinite(e)
                n = int(ok.sum())
                row[f"tau_{unit}"] = float(v[ok].mean()) if n else float("nan")
                row[f"tau_{unit}_err"] = float(np.sqrt((e[ok] ** 2).sum()) / n) if n else float("nan")
            out.append(row)
        return out

    def invariant_separation(self, scale: int = 2) -> dict:
        """:meth:`separation` over the gauge-invariant rows of ``series_detail`` only (all NaN for a file analysed
        before they were stored)."""
        d = self.series_detail
        if d is None:
            d = np.zeros(0, dtype=SERIES_DETAIL_DTYPE)
        return self.separation(scale, detail=d[d["gauge_invariant"]])

    def time_scale_summary(self, scale: int = 2) -> dict:
        """A sweep row's time scales at ``scale`` (docs/model.md#separation): ``SEPARATION_FIELDS`` from the
        gauge-invariant series (:meth:`invariant_separation`); ``common_frame_separation`` (+ ``_err``) only where
        the frames were fixed (else NaN); ``bits_ratio``, the members' bits over the meta-agents' bits pooled over
        the scale's meta-agents that have one (``gauge_series.bits_reason``), and how many (``bits_ratio_n``);
        and the lifetimes: ids, ended (the rest censored), Kaplan-Meier median in steps (NaN: not reached)."""
        from .gauge_series import bits_reason, lifetime_summary

        out = self.invariant_separation(scale)
        common = self.common_frame_separation(scale)
        out["common_frame_separation"], out["common_frame_separation_err"] = common["separation"], \
            common["separation_err"]
        nan = float("nan")
        bits = self.bits_by_meta if self.bits_by_meta is not None else np.zeros(0)
        rows = [r for r in bits if int(r["scale"]) == scale and bits_reason(r) is None]
        member = sum(float(r["member_bits_per_step"]) * int(r["steps"]) for r in rows)
        meta = sum(float(r["meta_bits_per_step"]) * int(r["steps"]) for r in rows)
        out["bits_ratio"] = member / meta if rows and meta > 0 else nan
        out["bits_ratio_n"] = len(rows)
        life = {r["scale"]: r for r in lifetime_summary(self.lifetime_stats)} if self.lifetime_stats is not None \
            else {}
        row = life.get(scale, {"ids": 0, "ended": 0, "median_steps": nan})
        out["lifetime_ids"], out["lifetime_ended"], out["lifetime_median_steps"] = \
            row["ids"], row["ended"], row["median_steps"]
        return out

    def common_frame_separation(self, scale: int = 2) -> dict:
        """:meth:`separation` over the common-frame rows of ``series_detail``: present only where the frames were
        fixed (otherwise, and for a file analysed before the table was stored, all NaN)."""
        d = self.series_detail
        if d is None:
            d = np.zeros(0, dtype=SERIES_DETAIL_DTYPE)
        return self.separation(scale, detail=d[~d["gauge_invariant"]])

    def series_array(self, kind: str = "agent", ident: int | None = None, member: int | None = None) -> np.ndarray:
        """A gauge-invariant series as ``(replica, frame, feature)`` with one replica: ``agent`` (all agents'
        K-vectors side by side, frames where the analysis skipped a frame dropped), or the ``collective`` mode
        of meta-agent ``ident``, or the ``relative`` mode of its base ``member``."""
        from .gauge_series import as_replicas
        s = self.invariant_series
        if kind == "agent":
            x = s["agent"]
            return as_replicas(x[np.isfinite(x).all(axis=(1, 2))])
        if kind == "collective":
            return as_replicas(s["collective"][ident][1])
        if kind == "relative":
            return as_replicas(s["relative"][(ident, member)][1])
        raise ValueError(f"series kind {kind!r}: expected agent, collective or relative")

    def separation(self, scale: int = 2, detail: np.ndarray | None = None) -> dict:
        """The time-scale separation at ``scale`` (docs/model.md#separation): the mean resolved time of the
        collective modes over that of the relative modes (``separation``) and over that of the agents
        (``separation_agent``), in steps and in bits, with errors combined from the means' relative errors.

        A collective mode too slow for its run (``tau_frames = inf``: no Sokal window within a quarter of the
        series) has ``tau_frames > n_frames / 20``; ``separation_lower`` is then the smallest such bound in steps
        over the relative time (the mean of the bounds of such series; NaN otherwise). Values are NaN where there
        is nothing to measure (no meta-agent
        at that scale, or no resolved row)."""
        by = {(r["scale"], r["kind"]): r for r in self.timescales_by_scale(detail)}
        nan = float("nan")
        out = {}
        for name, key in (("agent", (1, "agent")), ("collective", (scale, "collective")),
                          ("relative", (scale, "relative"))):
            row = by.get(key, {})
            for unit in ("steps", "bits"):
                out[f"tau_{name}_{unit}"] = row.get(f"tau_{unit}", nan)
                out[f"tau_{name}_{unit}_err"] = row.get(f"tau_{unit}_err", nan)

        def ratio(top: str, bottom: str, unit: str) -> tuple[float, float]:
            a, ea = out[f"tau_{top}_{unit}"], out[f"tau_{top}_{unit}_err"]
            b, eb = out[f"tau_{bottom}_{unit}"], out[f"tau_{bottom}_{unit}_err"]
            if not (np.isfinite(a) and np.isfinite(b) and b > 0):
                return nan, nan
            return a / b, a / b * float(np.hypot(ea / a, eb / b))

        out["separation"], out["separation_err"] = ratio("collective", "relative", "steps")
        out["separation_bits"], out["separation_bits_err"] = ratio("collective", "relative", "bits")
        out["separation_agent"], out["separation_agent_err"] = ratio("collective", "agent", "steps")
        d = self.timescale_detail if detail is None else detail
        slow = (d["scale"] == scale) & (d["kind"] == TIMESCALE_KINDS["collective"]) & np.isinf(d["tau_frames"])
        if "reason" in d.dtype.names:  # too slow for the run, not a run without fluctuations
            slow &= d["reason"] == REASON["too_short"]
        slow = d[slow]
        rel = out["tau_relative_steps"]
        # a bound on the mean time of the too-slow series: the mean of their bounds (one meta-agent that split
        # and re-formed has several series, each bounded by its own length)
        out["separation_lower"] = (float((slow["every"] * slow["n_frames"] / 20.0).mean()) / rel
                                   if slow.size and np.isfinite(rel) and rel > 0 else nan)
        return {k: out[k] for k in SEPARATION_FIELDS}

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


def row_reasons(rows: np.ndarray) -> np.ndarray:
    """The ``timescales.UNRESOLVED`` code of each time-scale row: its ``reason`` column, or for a table without
    one (``timescale_detail``, and files analysed before ``series_detail`` was stored) what its own columns say
    (a series varying by rounding alone is not recognised there)."""
    if "reason" in rows.dtype.names:
        return np.asarray(rows["reason"], dtype=np.int64)
    return np.array([unresolved_reason(float(r["tau_frames"]), int(r["n_frames"]), int(r["every"]))
                     for r in rows], dtype=np.int64)


def unresolved_counts(rows: np.ndarray) -> dict[str, int]:
    """How many of ``rows`` are unresolved, by ``timescales.UNRESOLVED`` name (resolved rows left out)."""
    codes = row_reasons(rows)
    return {UNRESOLVED[int(c)][0]: int((codes == c).sum()) for c in np.unique(codes) if c != REASON["resolved"]}


def _common_mean(layout: Layout, state: State, rows) -> np.ndarray:
    """chi-weighted mean over ``rows`` of the means in the common frame, R^T mu (a frame-consistent summary)."""
    R = frame_matrices(layout, state)[rows]
    common = np.einsum("sji,sj->si", R, state.mu[rows])
    w = layout.chi[rows]
    return (w[:, None] * common).sum(axis=0) / w.sum()


def _agent_means(layout: Layout, state: State) -> np.ndarray:
    """(N, K): every agent's chi-weighted mean over its support of R^T mu, as :func:`_common_mean`."""
    R = frame_matrices(layout, state)
    return support_means(layout, np.einsum("sji,sj->si", R, state.mu))


def analyze_frames(layout: Layout, steps, states: Iterable[State], settings, progress=None,
                   info_bits=None, fluctuating: bool = True) -> AnalysisResult:
    """Analyse a run's logged frames (``states``, one at a time, at ``steps``) with ``settings`` (the
    scenario's ``analysis`` section: ``meta_agents`` thresholds and ``holonomy`` loops). ``info_bits``, the
    run's ``(steps, values (E, N))`` bits of belief update (``Trajectory.info_bits()``), gives the time scales
    in bits; without it they are NaN. ``fluctuating=False`` (a run without noise,
    ``timescales.fluctuation_sources`` empty): every row of ``series_detail`` is unresolved for want of
    fluctuations (a relaxation has no autocorrelation time)."""
    require_so3(layout.fiber, "the analysis (meta-agents, holonomy, gauge-invariant series)")
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
    # id -> {"scale", "steps": [...], "meta": [...], "members": {agent: [...]}, "at": {agent: [index in "meta"]}}
    series: dict[int, dict] = {}
    agent_series = np.full((F, N, layout.K), np.nan)  # per frame, NaN where the frame was skipped
    agent_invariant = np.full((F, N, layout.K), np.nan)  # the gauge-invariant agent series (gauge_series)
    # id -> (step, coarse-grained belief) at its last analysed frame; id -> {"scale", "rows"}: bits intervals
    last_cg: dict[int, tuple[int, dict]] = {}
    intervals: dict[int, dict] = {}
    prev_step = None  # step of the previous analysed (usable) frame
    phi0, frames_fixed = None, True  # the common-frame series is kept only when no frame ever moved
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
        means = agent_series[f] = _agent_means(layout, state)
        agent_invariant[f] = prior_offsets(layout, state)
        if phi0 is None:
            phi0 = state.phi.copy()
        elif frames_fixed and not np.array_equal(phi0, state.phi):
            frames_fixed = False
        ids_by_level = []
        frames_base = None  # the agents' frame matrices, computed once the frame has a meta-agent
        for level, mem in zip(levels, base):
            scale = level.scale + 1
            ids = tracker.update(step, scale, mem)
            ids_by_level.append(ids)
            counts[f, scale] = len(ids)
            if ids:
                inv = prior_offsets(level.layout, level.state)
                frames_base = frame_matrices(layout, state) if frames_base is None else frames_base
                frames_meta = frame_matrices(level.layout, level.state)
            for k, (mid, m) in enumerate(zip(ids, mem)):
                if scale == 2:
                    labels[f, m] = mid
                entry = series.setdefault(mid, {"scale": scale, "steps": [], "meta": [], "members": {}, "at": {},
                                                "inv_meta": [], "inv_rel": {}})
                entry["steps"].append(step)
                entry["meta"].append(_common_mean(level.layout, level.state, level.layout.rows_of(k)))
                entry["inv_meta"].append(inv[k])
                rel = transported_offsets(layout, state, level.layout, level.state, k, m, frames_base, frames_meta)
                snap = coarse_snapshot(level.layout, level.state, k)
                if mid in last_cg and last_cg[mid][0] == prev_step:
                    intervals.setdefault(mid, {"scale": scale, "rows": []})["rows"].append(
                        (prev_step, step, coarse_bits(snap, last_cg[mid][1]), [int(a) for a in m]))
                last_cg[mid] = (step, snap)
                for a in m:
                    entry["members"].setdefault(int(a), []).append(means[a])
                    entry["inv_rel"].setdefault(int(a), []).append(rel[int(a)])
                    # membership can change while the id stays: where in the meta-agent's series a is a member
                    entry["at"].setdefault(int(a), []).append(len(entry["meta"]) - 1)
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
        prev_step = step
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
    detail = _timescale_detail(steps, agent_series, series, info_bits)
    first = int(steps[0]) if F else 0
    lifetimes = np.array([(mid, series[mid]["scale"], tracker.born.get(mid, first),
                           tracker.died.get(mid, -1)) for mid in sorted(series)], dtype=LIFETIME_DTYPE)
    invariant = {"agent": agent_invariant,
                 "collective": {mid: (np.array(e["steps"]), np.array(e["inv_meta"])) for mid, e in series.items()},
                 "relative": {(mid, a): (np.array(e["steps"])[e["at"][a]], np.array(v))
                              for mid, e in series.items() for a, v in e["inv_rel"].items()}}
    return AnalysisResult(
        params=params.model_dump() if hasattr(params, "model_dump") else dict(params.__dict__),
        steps=steps, labels=labels, counts=counts,
        records=np.array(records, dtype=RECORD_DTYPE),
        members=np.concatenate(members_flat).astype(np.int64) if members_flat else np.zeros(0, dtype=np.int64),
        members_offset=np.concatenate([[0], np.cumsum([m.size for m in members_flat])]).astype(np.int64),
        events=np.array([(s, EVENT_KINDS[k], sc, i, o) for s, k, sc, i, o in tracker.events], dtype=EVENT_DTYPE),
        lifetimes=lifetimes,
        timescales=np.array(timescales, dtype=TIMESCALE_DTYPE),
        plaquette_angle=angles, holonomy_summary=summary,
        loop_names=[lp.name for lp in loop_defs],
        loop_definitions=[{"name": lp.name, "rows": lp.rows.tolist(), "kinds": lp.kinds.tolist()} for lp in loop_defs],
        loop_angle=loop_angle, loop_axis=loop_axis, notes=notes, timescale_detail=detail,
        series_detail=_series_detail(steps, agent_series, agent_invariant, series, info_bits, frames_fixed,
                                     fluctuating),
        bits_by_meta=bits_per_scale(intervals, info_bits),
        lifetime_stats=lifetime_table(lifetimes, int(steps[-1]) if F else 0,
                                      {mid: sorted(e["members"]) for mid, e in series.items()}, info_bits),
        invariant_series=invariant,
    )


def _timescale_detail(steps, agent_series, series, info_bits) -> np.ndarray:
    """The rows of ``timescale_detail``: each agent (scale 1), each meta-agent's collective mode (its
    coarse-grained belief's common-frame mean) and each base member's relative mode (the member's common-frame
    mean minus the collective one, at the frames where it is a base member), docs/model.md#timescale-detail."""
    return _common_frame_rows(steps, agent_series, series, info_bits)[list(TIMESCALE_DETAIL_DTYPE.names)].astype(
        TIMESCALE_DETAIL_DTYPE)


def _common_frame_rows(steps, agent_series, series, info_bits) -> np.ndarray:
    return _timescale_rows(steps, agent_series, series, info_bits, "meta",
                           lambda entry, a, idx, meta: np.array(entry["members"][a]) - meta[idx])


def _series_detail(steps, agent_series, agent_invariant, series, info_bits, frames_fixed: bool,
                   fluctuating: bool = True) -> np.ndarray:
    """The rows of ``series_detail`` (docs/model.md#invariant-series): the gauge-invariant series of every agent,
    collective and relative mode, and, only when no logged frame's ``phi`` differs from the first's (frames fixed,
    ``lr_phi = 0`` and no frame noise), the common-frame rows of ``timescale_detail`` too, each row naming its
    series and whether it is gauge-invariant. A row with a ``reason`` (not resolved, also for want of
    fluctuations or for a series that varies by rounding alone) has ``resolved`` false and no time in steps or
    bits (NaN; ``tau_frames`` is kept as a diagnostic)."""
    parts = [(_timescale_rows(steps, agent_invariant, series, info_bits, "inv_meta",
                              lambda entry, a, idx, meta: np.array(entry["inv_rel"][a])), True)]
    if frames_fixed:
        parts.append((_common_frame_rows(steps, agent_series, series, info_bits), False))
    out = []
    for rows, invariant in parts:
        table = np.zeros(rows.size, dtype=SERIES_DETAIL_DTYPE)
        for name in rows.dtype.names:
            table[name] = rows[name]
        table["gauge_invariant"] = invariant
        table["series"] = [SERIES_NAMES[(invariant, int(k))] for k in rows["kind"]]
        out.append(table)
    return _mark_unresolved(np.concatenate(out), fluctuating)


def _mark_unresolved(table: np.ndarray, fluctuating: bool) -> np.ndarray:
    """``table`` (SERIES_DETAIL_DTYPE) with every row of a run without fluctuations unresolved for that reason, and
    every unresolved row's ``resolved`` false and its times in steps and bits NaN."""
    if not fluctuating:
        table["reason"] = REASON["no_fluctuations"]
    unresolved = table["reason"] != REASON["resolved"]
    table["resolved"] &= ~unresolved
    for name in ("tau_steps", "tau_steps_err", "tau_bits", "tau_bits_err"):
        table[name][unresolved] = np.nan
    return table


def legacy_series_detail(timescale_detail: np.ndarray, fluctuating: bool) -> np.ndarray:
    """A ``timescale_detail`` table (common frame; a file analysed before ``series_detail`` was stored) as
    ``series_detail`` rows: ``series = "common frame"``, not gauge-invariant, each row's reason read from its own
    columns (``row_reasons``) and marked as in a fresh analysis, so that old files are shown as honestly."""
    table = np.zeros(timescale_detail.size, dtype=SERIES_DETAIL_DTYPE)
    for name in TIMESCALE_DETAIL_DTYPE.names:
        table[name] = timescale_detail[name]
    table["series"] = "common frame"
    table["reason"] = row_reasons(timescale_detail)
    return _mark_unresolved(table, fluctuating)


def _timescale_rows(steps, agent_series, series, info_bits, meta_key: str, relative) -> np.ndarray:
    """Time-scale rows (``TIMESCALE_DETAIL_DTYPE`` and ``reason``) of the agents' series ``agent_series``
    (F, N, K), each meta-agent's ``entry[meta_key]`` and each member's ``relative(entry, a, frame indices, meta)``."""
    every = frame_spacing(steps)
    rows = []

    def add(kind, ident, scale, member, x, at, agents):
        def rate(first, last):
            return bits_per_step(info_bits, agents, first, last)

        r = series_timescale(x, at, every, rate)
        rows.append((TIMESCALE_KINDS[kind], ident, scale, member, r.first_step, r.burn_in_step, r.n_frames, r.every,
                     r.window, r.stationary, r.resolved, r.tau_frames, r.tau_frames_err, r.tau_blocking_frames,
                     r.tau_steps, r.tau_steps_err, r.bits_per_step, r.tau_bits, r.tau_bits_err, r.reason))

    for a in range(agent_series.shape[1]):
        ok = np.isfinite(agent_series[:, a]).all(axis=1)
        add("agent", a, 1, -1, agent_series[ok, a], steps[ok], [a])
    for mid, entry in sorted(series.items()):
        at, meta = np.array(entry["steps"], dtype=np.int64), np.array(entry[meta_key])
        members = sorted(entry["members"])
        add("collective", mid, entry["scale"], -1, meta, at, members)
        for a in members:  # over the frames where a is a member
            idx = np.array(entry["at"][a], dtype=np.int64)
            add("relative", mid, entry["scale"], a, relative(entry, a, idx, meta), at[idx], [a])
    return np.array(rows, dtype=_ROW_DTYPE)


_ROW_DTYPE = np.dtype(TIMESCALE_DETAIL_DTYPE.descr + [("reason", "i8")])


def _unusable(state: State) -> str | None:
    for name in ("mu", "sigma", "phi"):
        if not np.isfinite(getattr(state, name)).all():
            return f"non-finite {name}"
    return None
