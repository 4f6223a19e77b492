"""The `timescales` sweep against the closed form of its linear regime (docs/model.md#separation).

    python benchmarks/timescales_theory.py SWEEP_DIR [-o separation_theory.png]

For each completed member: the measured relative, collective and agent times (steps, with the Madras-Sokal error
bars of the analysis) next to :func:`gauge_vfe.agents.analysis.timescales.linear_modes` for the member's own
parameters (agents, alpha, lambda_align, lr_mu, prior covariance, rho, refresh and logging intervals), the
deviation in error bars (z), and the separation tau_collective / tau_relative measured (or its lower bound, for
a collective mode too slow for the run) and predicted. The figure draws the measured separations over the closed
form, extended to lambda_align / alpha = 1e6, with the run length a direct measurement of each predicted
separation would need (222 collective times for a 30 % error bar: docs/model.md#separation).

The closed form assumes what `scenarios/timescales.yaml` sets up: every agent on every site, one shared fixed
frame, Sigma frozen at s I, plain gradient steps, no observations, consensus (one meta-agent). A member whose
config breaks one of these is listed with the reason instead of a prediction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RUN_LENGTH_PER_TAU = 222  # collective times per run for a 30 % Madras-Sokal error: sqrt(2 (2 * 5 tau + 1) / F)


def assumptions_broken(cfg: dict) -> str | None:
    dyn, energy = cfg["dynamics"], cfg["energy"]
    checks = [
        (dyn.get("method", "gradient") == "gradient", "method is not plain gradient"),
        (float(dyn.get("lr_sigma", 0)) == 0 and float(dyn.get("lr_phi", 0)) == 0, "Sigma or phi move"),
        (cfg["observations"].get("kind", "none") == "none", "observations are on"),
        (cfg["agents"].get("support", {}).get("shape") == "whole", "agents do not all share every site"),
        (float(energy.get("lambda_curv", 0)) == 0 and float(energy.get("lambda_smooth", 0)) == 0,
         "curvature or smoothness terms are on"),
    ]
    reasons = [why for ok, why in checks if not ok]
    return "; ".join(reasons) or None


def prediction(cfg: dict):
    from gauge_vfe.agents.analysis.timescales import linear_modes

    hier = cfg.get("hierarchy", {})
    coupled = bool(hier.get("enabled", False))
    return linear_modes(
        n_agents=int(cfg["agents"]["count"]), alpha=float(cfg["energy"]["alpha"]),
        lambda_align=float(cfg["energy"]["lambda_align"]), lr=float(cfg["dynamics"]["lr_mu"]),
        every=int(cfg["output"]["every"]), s=float(cfg["priors"]["sigma"]["value"]),
        rho=float(hier.get("rho", 0.0)) if coupled else 0.0,
        refresh_every=int(hier.get("every", 1)) if coupled else 1)


def z(measured: float, err: float, predicted: float) -> str:
    if not (np.isfinite(measured) and np.isfinite(err) and err > 0):
        return "   -"
    return f"{(measured - predicted) / err:+4.1f}"


def fmt(v: float, e: float | None = None) -> str:
    if not np.isfinite(v):
        return f"{'-':>15}"
    return f"{v:8.4g} +- {e:<5.2g}" if e is not None and np.isfinite(e) else f"{v:15.4g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir")
    ap.add_argument("-o", "--output", help="a PNG of the measured separations over the closed form")
    args = ap.parse_args()

    import gauge_vfe as gv

    df = gv.load_sweep(args.sweep_dir)
    df = df[df["status"] == "completed"]
    params = [c for c in df.columns if c.startswith("param:")]
    points = []
    print(f"{args.sweep_dir}: {len(df)} completed members; times in steps (measured +- error bar | closed form, z)")
    for _, row in df.iterrows():
        with gv.load(row["path"]) as traj:
            cfg = traj.config
        where = ", ".join(f"{p[6:].split('.', 1)[-1]}={row[p]}" for p in params)
        broken = assumptions_broken(cfg)
        if broken:
            print(f"{row['member']} {where}: no closed form ({broken})")
            continue
        pred = prediction(cfg)
        sep, sep_err, lower = row["separation"], row["separation_err"], row["separation_lower"]
        measured = fmt(sep, sep_err) if np.isfinite(sep) else (f"  > {lower:<11.3g}" if np.isfinite(lower)
                                                                 else f"{'no meta-agent':>15}")
        print(f"{row['member']} {where}  lambda/alpha={row['lambda_align_over_alpha']:g}\n"
              f"    relative   {fmt(row['tau_relative_steps'], row['tau_relative_steps_err'])} | "
              f"{pred.tau_relative:9.4g} z {z(row['tau_relative_steps'], row['tau_relative_steps_err'], pred.tau_relative)}\n"
              f"    collective {fmt(row['tau_collective_steps'], row['tau_collective_steps_err'])} | "
              f"{pred.tau_collective:9.4g} z {z(row['tau_collective_steps'], row['tau_collective_steps_err'], pred.tau_collective)}\n"
              f"    agent      {fmt(row['tau_agent_steps'], row['tau_agent_steps_err'])} | "
              f"{pred.tau_agent:9.4g} z {z(row['tau_agent_steps'], row['tau_agent_steps_err'], pred.tau_agent)}\n"
              f"    separation {measured} | {pred.separation:9.4g} z {z(sep, sep_err, pred.separation)}; "
              f"measuring it to 30 % takes ~{RUN_LENGTH_PER_TAU * pred.tau_collective:.2g} steps "
              f"(this run: {row['last_step']})")
        points.append((row, cfg, pred))
    if args.output and points:
        figure(points, params, args.output)
        print(f"wrote {args.output}")


def figure(points, params, output) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gauge_vfe.agents.analysis.timescales import linear_modes

    # panels: temperature values; colours: rho values (the theory does not depend on the temperature)
    temp_key = next((p for p in params if "temperature" in p), None)
    temps = sorted({r[temp_key] for r, _, _ in points}) if temp_key else [None]
    rhos = sorted({float(c.get("hierarchy", {}).get("rho", 0.0)) for _, c, _ in points})
    fig, axes = plt.subplots(1, len(temps), figsize=(5.2 * len(temps) + 1.5, 4.6), sharey=True, squeeze=False,
                             constrained_layout=True)
    ratios = np.logspace(-1, 6, 200)
    for ax, t in zip(axes[0], temps):
        for k, rho in enumerate(rhos):
            sel = [(r, c, p) for r, c, p in points if (t is None or r[temp_key] == t)
                   and float(c.get("hierarchy", {}).get("rho", 0.0)) == rho]
            if not sel:
                continue
            _, c0, _ = sel[0]
            lam = float(c0["energy"]["lambda_align"])
            curve = [linear_modes(int(c0["agents"]["count"]), lam / x, lam, float(c0["dynamics"]["lr_mu"]),
                                  int(c0["output"]["every"]), float(c0["priors"]["sigma"]["value"]), rho,
                                  int(c0.get("hierarchy", {}).get("every", 1))).separation for x in ratios]
            ax.plot(ratios, curve, color=f"C{k}", lw=1, alpha=0.7, label=f"closed form, rho = {rho:g}")
            xs = np.array([r["lambda_align_over_alpha"] for r, _, _ in sel])
            ys = np.array([r["separation"] for r, _, _ in sel])
            es = np.array([r["separation_err"] for r, _, _ in sel])
            lo = np.array([r["separation_lower"] for r, _, _ in sel])
            ok = np.isfinite(ys)
            ax.errorbar(xs[ok], ys[ok], yerr=es[ok], fmt="o", color=f"C{k}", capsize=3)
            lb = ~ok & np.isfinite(lo)
            ax.scatter(xs[lb], lo[lb], marker="^", s=60, color=f"C{k}")
        ax.axhspan(1e4, 1e6, color="gold", alpha=0.15, label="the claim: 1e4 to 1e6")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("lambda_align / alpha")
        ax.set_title(f"{temp_key[6:].split('.', 1)[-1]} = {t}" if temp_key else "", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("tau_collective / tau_relative (steps)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle("measured separation (dots: error bars; triangles: lower bounds) over the linear closed form",
                 fontsize=10)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)


if __name__ == "__main__":
    main()
