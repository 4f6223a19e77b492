"""``vfe inspect``: a run file summarised as plain data (what the CLI prints, and ``--json`` emits)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..analysis.gauge_series import bits_reason, lifetime_summary
from ..analysis.pipeline import legacy_series_detail
from ..analysis.timescales import UNRESOLVED, fluctuation_sources
from ..io.reader import Trajectory, load
from ..model.energy import TERMS


def summarize_run(path_or_traj: str | Path | Trajectory) -> dict:
    """Scenario name, status, sizes, steps, energies first and last by term, and the analysis if stored.

    Only JSON types: numbers that are not finite become None, so ``json.dumps`` gives strict JSON.
    """
    if isinstance(path_or_traj, Trajectory):
        return _summary(path_or_traj)
    with load(path_or_traj) as traj:
        return _summary(traj)


def uphill_steps(total: np.ndarray, action_changed=None) -> int:
    """Steps whose total energy went up (beyond rounding): a too-large step size, never the model's wish.
    ``action_changed`` (bool per entry of ``total``): entries logged against another action than the entry
    before them (new hierarchy targets, a fresh observation draw), whose rise is not a step's."""
    total = np.asarray(total, dtype=float)
    if total.size < 2:
        return 0
    rise = np.diff(total) > 1e-12 * np.maximum(1.0, np.abs(total[:-1]))
    if action_changed is not None:
        rise &= ~np.asarray(action_changed, dtype=bool)[1:]
    return int(np.count_nonzero(rise))


def action_changes(config: dict, steps: np.ndarray) -> np.ndarray:
    """Where the logged energy is that of a new action: at the hierarchy's refresh steps (when the coupling is
    on, docs/model.md#hierarchy-coupling) and at the steps of a new observation draw
    (docs/model.md#streaming-observations); both are multiples of their period."""
    steps = np.asarray(steps, dtype=np.int64)
    changed = np.zeros(steps.shape, dtype=bool)
    hier = config.get("hierarchy") or {}
    if hier.get("enabled") and float(hier.get("rho", 0.0)) > 0:
        changed |= steps % int(hier["every"]) == 0
    every = (config.get("observations") or {}).get("resample_every")
    if every:
        changed |= steps % int(every) == 0
    return changed


def _noisy(config: dict) -> bool:
    """Langevin dynamics (docs/model.md#temperature): the energy goes up by design, so rises are not counted."""
    t = (config.get("dynamics") or {}).get("temperature", 0.0)
    return any(float(v) > 0 for v in t.values()) if isinstance(t, dict) else float(t or 0.0) > 0


def _summary(traj: Trajectory) -> dict:
    energies = traj.energies()
    first_last = {t: ((float(energies[t][0]), float(energies[t][-1])) if energies[t].size else (None, None))
                  for t in ("total",) + TERMS}
    out = {
        "path": str(traj.path), "name": traj.config.get("name"), "status": traj.status, "message": traj.message,
        "grid": f"{traj.grid.height}x{traj.grid.width} {traj.grid.boundary}", "agents": traj.n_agents,
        "spins": traj.spins, "group": traj.group, "K": traj.K, "agent_sites": int(traj.index.size), "seed": traj.seed,
        "last_step": traj.last_step, "frames": int(len(traj.frame_steps)), "fields": traj.fields,
        "dtype": traj.dtype, "started_at": traj.started_at, "finished_at": traj.finished_at,
        "energy": first_last, "uphill_steps": None if _noisy(traj.config) else uphill_steps(
            energies["total"], action_changes(traj.config, energies["step"])),
        "spd_retractions": int(traj.spd_retractions()[1].sum()), "versions": traj.versions,
        # the run's history, one record per invocation (docs/model.md#file-provenance); the first configuration
        # is config_json already
        "segments": [{k: v for k, v in r.items() if k != "config"} for r in traj.segments()],
    }
    result = traj.analysis()
    if result is not None:
        counts = result.counts
        scales = [s for s in range(2, counts.shape[1]) if counts[:, s].any()]
        out["meta_agents"] = {
            "last_frame_counts": {f"scale {s}": int(counts[-1, s]) for s in scales} if len(counts) else {},
            "highest_scale": result.n_scales,
            "events": result.event_counts(),
            # the legacy quick table (logged frames, common frame, nothing checked; docs/model.md#timescales): kept
            # in --json for the scripts that read it, never printed
            "timescales": [{name: row[name].item() for name in row.dtype.names} for row in result.timescales],
            # docs/model.md#timescale-detail: per scale and kind, the common-frame series (legacy, --json only)
            "timescales_by_scale": result.timescales_by_scale(),
            "time_scales": time_scales(result, traj.config, str(traj.path)),
        }
        last = result.holonomy_summary[-1] if len(result.holonomy_summary) else [np.nan, np.nan, 0]
        out["holonomy"] = {"mean": float(last[0]), "max": float(last[1]), "loops": len(result.loop_names)}
    return _finite_or_none(out)


def _num(value, fmt: str) -> str:
    """A number formatted, or ``-`` for a missing (non-finite) one."""
    return "-" if value is None else format(value, fmt)


def summary_lines(info: dict) -> list[str]:
    """The summary as the lines ``vfe inspect`` prints."""
    lines = [f"{info['path']}: {info['name']} ({info['status']})"]
    if info["message"]:
        lines.append(f"  message: {info['message']}")
    fiber = (f"GL({info['K']}) frames" if info.get("group") == "glk" else f"spins {info['spins']}")
    lines.append(f"  grid {info['grid']}, {info['agents']} agents, {fiber} (K={info['K']}), "
                 f"{info['agent_sites']} agent-sites, seed {info['seed']}")
    lines.append(f"  steps 0..{info['last_step']}, {info['frames']} logged frames ({', '.join(info['fields'])}, "
                 f"{info['dtype']}), started {info['started_at']}, finished {info['finished_at'] or '-'}")
    lines += ["  " + line for line in segment_lines(info.get("segments", []))]
    lines.append(f"  {'energy':<12} {'first':>14} {'last':>14}")
    for term, (first, last) in info["energy"].items():
        lines.append(f"  {term:<12} {_num(first, '>14.6g')} {_num(last, '>14.6g')}")
    if info["uphill_steps"]:
        lines.append(f"  uphill steps (energy went up): {info['uphill_steps']}; reduce the step sizes or enable "
                     "dynamics.line_search")
    elif info["uphill_steps"] == 0:
        lines.append("  uphill steps (energy went up): 0: every step went downhill")
    else:  # None: a Langevin run, whose energy goes up by design
        lines.append("  energy rises: not counted (a run at temperature T > 0 goes uphill by design)")
    if info["spd_retractions"]:
        lines.append(f"  Sigma steps retracted to stay SPD: {info['spd_retractions']} agent-site steps")
    if "meta_agents" in info:
        ma = info["meta_agents"]
        lines.append(f"  meta-agents per scale, last frame: {ma['last_frame_counts']} "
                     f"(highest scale reached: {ma['highest_scale']}); events: {ma['events']}")
        lines += ["  " + line for line in time_scale_lines(ma["time_scales"])]
    if "holonomy" in info:
        h = info["holonomy"]
        lines.append(f"  holonomy, last frame: plaquette angle mean {_num(h['mean'], '.3g')}, max "
                     f"{_num(h['max'], '.3g')}; {h['loops']} loops")
    return lines


def segment_lines(segments: list[dict]) -> list[str]:
    """One line per invocation that wrote the file: what, when, which steps, how it ended, what it changed."""
    if not segments:
        return ["history: none recorded (written by a version without one)"]
    lines = []
    for k, r in enumerate(segments, 1):
        steps = ""
        if r.get("first_step") is not None:
            last = r.get("last_step")
            steps = f" steps {r['first_step']}..{'?' if last is None else last},"
        package = (r.get("versions") or {}).get("package", "?")
        text = (f"segment {k}: {r['command']} {r.get('time') or '-'},{steps} {r['status']} "
                f"(gauge-vfe {package} on {r.get('host') or '?'}"
                + (f", {r['numba_threads']} threads" if r.get("numba_threads") else "") + ")")
        if r.get("changes"):
            text += "; changed " + ", ".join(f"{key} {json.dumps(old)} -> {json.dumps(new)}"
                                             for key, (old, new) in r["changes"].items())
        if r.get("changed_inputs"):
            text += "; input files changed: " + ", ".join(
                f"{c['path']} ({(c.get('was') or '-')[:12]} -> {(c.get('now') or '-')[:12]})"
                for c in r["changed_inputs"].values())
        lines.append(text)
    return lines


def meta_agent_lines(meta: dict) -> list[str]:
    """The meta-agent part of a summary as the lines ``vfe analyze`` prints."""
    if meta["highest_scale"] < 2:
        return ["meta-agents: none detected"] + time_scale_lines(meta["time_scales"])
    counts = ", ".join(f"{k}: {v}" for k, v in meta["last_frame_counts"].items())
    lines = [f"meta-agents in the last frame: {counts or 'none'} (highest scale reached: {meta['highest_scale']})"]
    if meta["events"]:
        lines.append("events: " + ", ".join(f"{k} {v}" for k, v in meta["events"].items()))
    return lines + time_scale_lines(meta["time_scales"])


SEPARATION_KEYS = ("separation", "separation_err", "separation_bits", "separation_bits_err")


def time_scales(result, config: dict, path: str = "RUN.h5") -> dict:
    """The time-scale part of a summary (docs/model.md#unresolved-times), as plain data: per scale, kind and series
    the resolved times (mean +- error, in steps and bits) and, for the rest, how many are unresolved and why; the
    separation at scale 2; the bits per step by meta-agent; the lifetimes by scale.

    The source is the stored ``series_detail`` (gauge-invariant series, and common-frame ones only where frames
    were fixed); for a file analysed before it was stored, its common-frame ``timescale_detail`` as it is, each
    row judged by its own columns and by the run's noise, with the command that recomputes the invariant ones."""
    sources = fluctuation_sources(config)
    detail = result.series_detail
    legacy = detail is None
    if legacy:
        detail = legacy_series_detail(result.timescale_detail, bool(sources))
    groups = []
    for invariant in (True, False):
        rows = detail[detail["gauge_invariant"] == invariant]
        label = "gauge-invariant" if invariant else "common frame, frames fixed"
        groups += [{**row, "series": label if not legacy else "common frame"}
                   for row in result.timescales_by_scale(rows)]
    for g in groups:
        if not g["n_resolved"]:
            for key in ("tau_steps", "tau_steps_err", "tau_bits", "tau_bits_err"):
                g[key] = None
    chosen = detail[detail["gauge_invariant"]] if not legacy else detail
    separation = {k: v for k, v in result.separation(2, detail=chosen).items() if k in SEPARATION_KEYS}
    out = {"series": "common frame" if legacy else "gauge-invariant", "fluctuations": sources,
           "by_scale": groups, "separation_scale2": separation,
           "bits_by_meta": None, "lifetimes": None}
    if legacy:
        out["note"] = (f"analysed before the gauge-invariant tables were stored: `vfe analyze {path}` "
                       "recomputes them")
    if result.bits_by_meta is not None:
        out["bits_by_meta"] = [{**{n: r[n].item() for n in r.dtype.names}, "why": bits_reason(r)}
                               for r in result.bits_by_meta]
        for r in out["bits_by_meta"]:
            if r["why"] is not None:
                r["ratio"] = None
    if result.lifetime_stats is not None:
        out["lifetimes"] = lifetime_summary(result.lifetime_stats)
    return out


def _why(name: str, count: int | None = None) -> str:
    """An unresolved reason and its remedy, from timescales.UNRESOLVED."""
    code = next(c for c, entry in UNRESOLVED.items() if entry[0] == name)
    _, why, fix = UNRESOLVED[code]
    return f"{'' if count is None else f'{count} '}{why}; {fix}"


def time_scale_lines(ts: dict) -> list[str]:
    """The lines of :func:`time_scales`: a time is printed only when it was resolved, with its error bar; an
    unresolved one is named with its reason and what would resolve it (docs/model.md#unresolved-times)."""
    head = ("time scales of the gauge-invariant series (docs/model.md#gauge-invariant-series):"
            if ts["series"] == "gauge-invariant" else
            "time scales of the common-frame series (docs/model.md#timescale-detail):")
    lines = [head]
    if ts.get("note"):
        lines.append(f"  note: {ts['note']}")
    if not ts["fluctuations"] and ts["by_scale"]:
        lines.append(f"  none measured: {_why('no_fluctuations')}")
    else:
        for g in ts["by_scale"]:
            text = f"  time scale, scale {g['scale']} {g['kind']} ({g['series']}): "
            if g["n_resolved"]:
                text += f"{g['n_resolved']} of {g['n']} resolved: tau {_num(g['tau_steps'], '.3g')} +- " \
                        f"{_num(g['tau_steps_err'], '.2g')} steps"
                if g["tau_bits"] is not None:
                    text += f", {_num(g['tau_bits'], '.3g')} +- {_num(g['tau_bits_err'], '.2g')} bits"
            else:
                text += f"none of {g['n']} resolved"
            if g["unresolved"]:
                text += "; unresolved: " + "; ".join(_why(name, n) for name, n in g["unresolved"].items())
            lines.append(text)
        sep = ts["separation_scale2"]
        if sep.get("separation") is not None:
            text = f"  separation, scale 2: {_num(sep['separation'], '.3g')} +- {_num(sep['separation_err'], '.2g')}" \
                   " in steps"
            if sep.get("separation_bits") is not None:
                text += f", {_num(sep['separation_bits'], '.3g')} +- {_num(sep['separation_bits_err'], '.2g')} in bits"
            lines.append(text)
        elif any(g["scale"] >= 2 for g in ts["by_scale"]):
            first = ts["by_scale"][0]["series"]  # the series the separation is read from
            missing = [f"{g['kind']} modes ({', '.join(n.replace('_', ' ') for n in g['unresolved'])})"
                       for g in ts["by_scale"] if g["scale"] == 2 and g["series"] == first and not g["n_resolved"]
                       and g["kind"] in ("collective", "relative")]
            lines.append("  separation, scale 2: not measured: it needs resolved collective and relative modes"
                         + (f"; unresolved: {', '.join(missing)}" if missing else ""))
    if ts["bits_by_meta"]:
        lines.append("  bits per step, members against their meta-agent (docs/model.md#time-in-bits-per-scale; the "
                     "meta-agent's between logged frames):")
    for r in ts["bits_by_meta"] or []:
        head = f"    meta-agent {r['id']} (scale {r['scale']}): "
        if r["why"] is not None:
            lines.append(head + f"not measured: {r['why']}")
        else:
            lines.append(head + f"members {_num(r['member_bits_per_step'], '.3g')}, meta-agent "
                         f"{_num(r['meta_bits_per_step'], '.3g')} bits/step: ratio {_num(r['ratio'], '.3g')} over "
                         f"{r['steps']} steps")
    for r in ts["lifetimes"] or []:
        text = f"  lifetimes, scale {r['scale']}: {r['ids']} id{'s' if r['ids'] != 1 else ''}, {r['ended']} ended; "
        if r["median_steps"] is None:
            text += "median not reached (too many alive at the end)"
        else:
            text += f"median {_num(r['median_steps'], '.4g')} steps"
            if r["median_bits"] is not None:
                text += f", {_num(r['median_bits'], '.3g')} member bits"
            text += " (Kaplan-Meier, to the logging interval)"
        lines.append(text)
    return lines


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
