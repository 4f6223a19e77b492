"""``vfe inspect``: a run file summarised as plain data (what the CLI prints, and ``--json`` emits)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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
        "spins": traj.spins, "K": traj.K, "agent_sites": int(traj.index.size), "seed": traj.seed,
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
            "timescales": [{name: row[name].item() for name in row.dtype.names} for row in result.timescales],
            # docs/model.md#timescale-detail: per scale and kind, the resolved series' mean time in steps and bits
            "timescales_by_scale": result.timescales_by_scale(),
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
    lines.append(f"  grid {info['grid']}, {info['agents']} agents, spins {info['spins']} (K={info['K']}), "
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
        for row in ma["timescales"]:
            lines.append(f"    id {row['id']} scale {row['scale']}: tau {_num(row['tau'], '.3g')} logged frames vs "
                         f"members {_num(row['tau_members'], '.3g')}: ratio {_num(row['ratio'], '.3g')}")
        lines += ["  " + line for line in _by_scale_lines(ma.get("timescales_by_scale", []))]
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
        return ["meta-agents: none detected"]
    counts = ", ".join(f"{k}: {v}" for k, v in meta["last_frame_counts"].items())
    lines = [f"meta-agents in the last frame: {counts or 'none'} (highest scale reached: {meta['highest_scale']})"]
    if meta["events"]:
        lines.append("events: " + ", ".join(f"{k} {v}" for k, v in meta["events"].items()))
    for row in meta["timescales"]:
        lines.append(f"meta-agent {row['id']} (scale {row['scale']}): tau {_num(row['tau'], '.3g')} logged frames, "
                     f"members {_num(row['tau_members'], '.3g')}, ratio {_num(row['ratio'], '.3g')}")
    return lines + _by_scale_lines(meta.get("timescales_by_scale", []))


def _by_scale_lines(rows: list[dict]) -> list[str]:
    """One line per scale and kind of the detailed time scales (docs/model.md#timescale-detail)."""
    out = []
    for r in rows:
        text = (f"time scale, scale {r['scale']} {r['kind']}: {r['n_resolved']} of {r['n']} series measured "
                "(finite and >= 4 logged frames)")
        if r["n_resolved"]:
            text += (f"; tau {_num(r['tau_steps'], '.3g')} +- {_num(r['tau_steps_err'], '.2g')} steps, "
                     f"{_num(r['tau_bits'], '.3g')} +- {_num(r['tau_bits_err'], '.2g')} bits")
        out.append(text)
    return out


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
