"""``gv.relax`` on the `timescales` system against its closed form, up to lambda_align / alpha = 1000
(docs/model.md#relaxation, #separation).

    python benchmarks/relax_closed_form.py [--ratios 1,10,100,1000] [--rhos 0,0.9] [--temperatures 0,0.003]
                                           [--replicas 16] [--fraction 0.05] [-o results.csv]
    python benchmarks/relax_closed_form.py --plot results.csv [more.csv ...] -o figure.png   # no new runs
    python benchmarks/relax_closed_form.py --sweep sweeps/timescales/ [--replicas 16] -o sweep_relax.csv

``--sweep``: one point per member of a `timescales` sweep (its alpha, rho, temperature and its own seed, which
seeds the copies), next to the member's autocorrelation separation or its lower bound from the sweep's summary:
the relaxation times that replace the bounds.

For each point: the `timescales` scenario with alpha = lambda_align / ratio, hierarchy.rho = rho and the
temperature on mu, started at its fixed point (every belief at its prior, one meta-agent of the 4 agents), relaxed
by ``gv.relax`` from random displacements for ``fraction`` of the predicted collective time (at least 60 steps).
Printed per point: the measured collective and relative e-folding times with their error bars next to
:func:`gauge_vfe.agents.analysis.timescales.linear_relaxation`, the deviation in error bars (z), the separation
tau_c / tau_r measured and predicted, whether the fits are trusted, the cost in replica-steps and the wall time.
At T > 0 the relative time carries the softmax's anharmonic shift of order T / kappa, which the closed form (the
T = 0 linearisation) leaves out.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import gauge_vfe as gv
from gauge_vfe.agents.analysis.timescales import linear_relaxation

LR, LAMBDA, S, N, EVERY = 0.025, 1.0, 1.0, 4, 5  # scenarios/timescales.yaml


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def point(ratio: float, rho: float, temperature: float, replicas: int, fraction: float, amplitude: float,
          seed: int) -> dict:
    alpha = LAMBDA / ratio
    tau_r, tau_c = linear_relaxation(N, alpha, LAMBDA, LR, S, rho, EVERY)
    steps = int(max(60, np.ceil(fraction * tau_c)))
    sim = gv.Simulation.from_scenario("timescales", [f"energy.alpha={alpha}", f"hierarchy.rho={rho}",
                                                     f"dynamics.temperature.mu={temperature}"], keep_history=False)
    sim.set_state(sim.state.replace(mu=sim.layout.prior_mu.copy()))  # the fixed point: consensus at the prior
    t0 = time.perf_counter()
    df = gv.relax(sim, replicas=replicas, steps=steps, amplitude=amplitude, seed=seed)
    wall = time.perf_counter() - t0
    c, r = df.loc["collective[0]"], df.loc["relative[0]"]
    sep = c.tau_steps / r.tau_steps
    sep_err = sep * np.hypot(c.tau_steps_err / c.tau_steps, r.tau_steps_err / r.tau_steps)
    return {"ratio": ratio, "rho": rho, "temperature": temperature, "replicas": replicas, "steps": steps,
            "replica_steps": df.attrs["replica_steps"], "wall_s": round(wall, 2),
            "tau_c": c.tau_steps, "tau_c_err": c.tau_steps_err, "tau_c_pred": tau_c,
            "z_c": (c.tau_steps - tau_c) / c.tau_steps_err, "fit_c_last": c.fit_last, "trusted_c": c.trusted,
            "flags_c": c.flags, "nonlinear_c": c.nonlinear_shift,
            "tau_r": r.tau_steps, "tau_r_err": r.tau_steps_err, "tau_r_pred": tau_r,
            "z_r": (r.tau_steps - tau_r) / r.tau_steps_err, "fit_r_last": r.fit_last, "trusted_r": r.trusted,
            "flags_r": r.flags, "nonlinear_r": r.nonlinear_shift,
            "tau_c_bits": c.tau_bits, "tau_r_bits": r.tau_bits,
            "separation": sep, "separation_err": sep_err, "separation_pred": tau_c / tau_r}


def points(args):
    """(ratio, rho, T, seed, extra columns) of every point: the grid of the options, or a sweep's members."""
    if not args.sweep:
        for T in floats(args.temperatures):
            for rho in floats(args.rhos):
                for ratio in floats(args.ratios):
                    yield ratio, rho, T, args.seed, {}
        return
    import json
    from pathlib import Path

    folder = Path(args.sweep)
    members = json.loads((folder / "sweep.json").read_text())["members"]
    base = gv.Simulation.from_scenario("timescales", keep_history=False).config
    for k, m in enumerate(members):
        name = f"m{k:04d}"
        alpha = float(m.get("energy.alpha", base.energy.alpha))
        rho = float(m.get("hierarchy.rho", base.hierarchy.rho))
        T = float(m.get("dynamics.temperature.mu", base.dynamics.temperatures[0]))
        seed = int(m.get("seed", base.seed))
        yield LAMBDA / alpha, rho, T, seed, {"member": name, "seed": seed}


AUTOCORR = ("separation", "separation_err", "separation_lower", "tau_collective_steps", "tau_collective_steps_err",
            "tau_relative_steps", "tau_relative_steps_err")


def with_autocorrelation(rows: list[dict], folder) -> None:
    """Each member's autocorrelation times from the sweep's summary as it is now (read after the relaxations,
    so a sweep still running adds the members finished meanwhile); NaN for a member not run."""
    from pathlib import Path

    summary = pd.read_csv(Path(folder) / "summary.csv").set_index("member")
    for p in rows:
        row = summary.loc[p["member"]] if p["member"] in summary.index else {}
        done = p["member"] in summary.index and row.get("status") == "completed"
        p["autocorr_status"] = row.get("status", "not run") if p["member"] in summary.index else "not run"
        for col in AUTOCORR:
            p[f"autocorr_{col}"] = float(row[col]) if done and col in row else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", default="1,10,100,1000")
    ap.add_argument("--rhos", default="0,0.9")
    ap.add_argument("--temperatures", default="0")
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--fraction", type=float, default=0.05, help="run length, in predicted collective times")
    ap.add_argument("--amplitude", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", metavar="DIR", help="one point per member of this timescales sweep (its own seed)")
    ap.add_argument("-o", "--output", help="a CSV of every point (with --plot: the PNG)")
    ap.add_argument("--plot", nargs="+", metavar="CSV", help="draw the measured times of these CSVs over the closed "
                    "form (no runs)")
    args = ap.parse_args()
    if args.plot:
        figure([pd.read_csv(p) for p in args.plot], args.output or "relax_closed_form.png")
        return
    rows = []
    print("times in steps: measured +- error bar | closed form (z); separation tau_c / tau_r; cost")
    t_all = time.perf_counter()
    for ratio, rho, T, seed, extra in points(args):
        p = {**extra, **point(ratio, rho, T, args.replicas, args.fraction, args.amplitude, seed)}
        rows.append(p)
        trust = ("trusted" if p["trusted_c"] and p["trusted_r"]
                 else f"NOT trusted ({p['flags_c']}|{p['flags_r']})")
        print(f"ratio {ratio:>6g} rho {rho:<4g} T {T:<6g} "
              f"collective {p['tau_c']:11.6g} +- {p['tau_c_err']:<9.2g}| {p['tau_c_pred']:11.6g} "
              f"(z {p['z_c']:+5.1f})  relative {p['tau_r']:8.5g} +- {p['tau_r_err']:<9.2g}| "
              f"{p['tau_r_pred']:8.5g} (z {p['z_r']:+5.1f})  separation {p['separation']:9.5g} +- "
              f"{p['separation_err']:<8.2g}| {p['separation_pred']:9.5g}  {trust}; "
              f"{p['replicas']} x {p['steps']} = {p['replica_steps']} replica-steps, {p['wall_s']:.1f} s",
              flush=True)
    total = sum(p["replica_steps"] for p in rows)
    print(f"total: {total} replica-steps, {sum(p['wall_s'] for p in rows):.0f} s in gv.relax, "
          f"wall {time.perf_counter() - t_all:.0f} s")
    if args.sweep:
        with_autocorrelation(rows, args.sweep)
    if args.output:
        pd.DataFrame(rows).to_csv(args.output, index=False)
        print(f"wrote {args.output}")


def figure(tables, output: str) -> None:
    """Measured collective and relative times (error bars are below the markers' size at T = 0) and the
    separation over the closed form's curves, one colour per (rho, T)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.concat(tables, ignore_index=True)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    ratios = np.logspace(0, 3, 100)
    for k, ((rho, T), g) in enumerate(df.groupby(["rho", "temperature"])):
        col = f"C{k}"
        curves = np.array([linear_relaxation(N, LAMBDA / x, LAMBDA, LR, S, rho, EVERY) for x in ratios])
        label = f"rho {rho:g}, T {T:g}"
        ax.plot(ratios, curves[:, 1], color=col, lw=1)
        ax.plot(ratios, curves[:, 0], color=col, lw=1, ls=":")
        ax.errorbar(g.ratio, g.tau_c, yerr=g.tau_c_err, fmt="o", color=col, mfc="none", label=f"collective, {label}")
        ax.errorbar(g.ratio, g.tau_r, yerr=g.tau_r_err, fmt="s", color=col, ms=4, label=f"relative, {label}")
        bx.plot(ratios, curves[:, 1] / curves[:, 0], color=col, lw=1)
        bx.errorbar(g.ratio, g.separation, yerr=g.separation_err, fmt="o", color=col, label=label)
    for a, name in ((ax, "e-folding time (steps)"), (bx, "separation tau_c / tau_r")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("lambda_align / alpha")
        a.set_ylabel(name)
        a.grid(alpha=0.3, which="both")
    ax.set_title("gv.relax (markers) vs closed form (lines: collective solid, relative dotted)", fontsize=9)
    bx.set_title("separation: measured (markers) vs closed form (lines)", fontsize=9)
    ax.legend(fontsize=7)
    bx.legend(fontsize=7)
    fig.savefig(output, dpi=120)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
