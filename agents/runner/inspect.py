"""``vfe inspect``: a run file summarised as plain data (what the CLI prints, and ``--json`` emits)."""

from __future__ import annotations

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
        "energy": first_last, "spd_retractions": int(traj.spd_retractions()[1].sum()), "versions": traj.versions,
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
        }
        last = result.holonomy_summary[-1] if len(result.holonomy_summary) else [np.nan, np.nan, 0]
        out["holonomy"] = {"mean": float(last[0]), "max": float(last[1]), "loops": len(result.loop_names)}
    return _finite_or_none(out)


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value
