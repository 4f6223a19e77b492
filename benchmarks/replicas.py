"""Replica ensembles against single runs: member-steps per second, and where an ensemble step's time goes.

    python benchmarks/replicas.py [--replicas 256] [--seconds 3] [--threads N] [--scenario timescales]

Both are measured in this one process, one after the other, in memory (no file): one run of the scenario
(``Simulation.step``) and an ensemble of R replicas (``Ensemble.step``), each timed over blocks of steps after a
warm-up. Printed: steps/s and member-steps/s of each, their ratio (the issue's target: >= 10 at R = 256 for
``timescales``), the ensemble's cost per row (agent-site) and step, and how a step divides between the energy
and gradient evaluation (``evaluate``), the update kernels, and the rest (Python around them). Each is measured
twice: as the scenario sets the rates (``timescales`` freezes Sigma and phi) and with every field free
(``lr_sigma``, ``lr_phi`` > 0), so the cost of a frozen field shows (docs/model.md#replica-ensembles).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _block(step, seconds: float) -> float:
    """Steps per second of ``step()`` over one block of about ``seconds``."""
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _rates(steps: list, seconds: float, blocks: int = 4) -> list[float]:
    """Steps per second of each ``step()`` in ``steps``, after a warm-up, the best of ``blocks`` blocks taken in
    turns (a machine shared with other work slows both alike, rather than whichever ran during a busy spell)."""
    for step in steps:
        _block(step, 0.2)
    best = [0.0] * len(steps)
    for _ in range(blocks):
        for i, step in enumerate(steps):
            best[i] = max(best[i], _block(step, seconds / blocks))
    return best


def _split(ens, steps: int) -> dict[str, float]:
    """Seconds per ensemble step in evaluate, in the update kernels and in the rest, by wrapping the two."""
    from gauge_vfe.agents.model import dynamics

    spent = {"evaluate": 0.0, "update": 0.0}
    originals = {"evaluate": dynamics.evaluate, "_trial": dynamics._trial, "_langevin": dynamics._langevin}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    dynamics.evaluate = timed("evaluate", originals["evaluate"])
    dynamics._trial = timed("update", originals["_trial"])
    dynamics._langevin = timed("update", originals["_langevin"])
    try:
        t0 = time.perf_counter()
        for _ in range(steps):
            ens.step()
        total = time.perf_counter() - t0
    finally:
        for name, fn in originals.items():
            setattr(dynamics, name, fn)
    out = {k: v / steps for k, v in spent.items()}
    out["rest"] = total / steps - out["evaluate"] - out["update"]
    out["total"] = total / steps
    return out


def measure(scenario: str, replicas: int, seconds: float, overrides: list[str]) -> dict:
    from gauge_vfe.agents.runner.ensemble import Ensemble
    from gauge_vfe.agents.runner.simulation import EnergyIncreaseWarning, Simulation

    warnings.simplefilter("ignore", EnergyIncreaseWarning)
    sim = Simulation.from_scenario(scenario, overrides, keep_history=False)
    ens = Ensemble(scenario, replicas=replicas, overrides=overrides)
    single, many = _rates([sim.step, ens.step], seconds)
    split = _split(ens, max(5, int(many * seconds / 4)))
    rows = ens.layout.n_rows
    return {"frozen": ens.frozen, "single_steps": single, "ensemble_steps": many, "member_steps": many * replicas,
            "ratio": many * replicas / single, "rows": rows, "us_per_row": 1e6 * split["total"] / rows,
            "split_us_per_row": {k: 1e6 * v / rows for k, v in split.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="timescales")
    parser.add_argument("--replicas", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: numba's)")
    args = parser.parse_args(argv)
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    print(f"{args.scenario}, {args.replicas} replicas, {numba.get_num_threads()} numba thread(s)")
    cases = {"as configured": [], "every field free": ["dynamics.lr_sigma=0.01", "dynamics.lr_phi=0.01"]}
    for label, overrides in cases.items():
        m = measure(args.scenario, args.replicas, args.seconds, overrides)
        s = m["split_us_per_row"]
        print(f"  {label} (gradients skipped: {', '.join(m['frozen']) or 'none'}):")
        print(f"    one run:  {m['single_steps']:9.0f} steps/s")
        print(f"    ensemble: {m['ensemble_steps']:9.1f} steps/s = {m['member_steps']:9.0f} member-steps/s "
              f"({m['rows']} rows)")
        print(f"    ratio (member-steps/s of the ensemble / steps/s of one run): {m['ratio']:.1f}x")
        print(f"    per row and step: {m['us_per_row']:.3f} us = evaluate {s['evaluate']:.3f} + update "
              f"{s['update']:.3f} + rest {s['rest']:.3f}")


if __name__ == "__main__":
    main()
