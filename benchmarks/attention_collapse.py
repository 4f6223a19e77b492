"""The attention-only collapse (docs/model.md#attention-collapse): alpha = 0, no observations, equal frames.

    python benchmarks/attention_collapse.py [--steps 300] [-o docs/results/attention]

Runs `scenarios/attention_collapse.yaml` (8 agents on one site, Sigma = 0.5 I held, plain steps) in the
free-energy form it ships with and in the weighted form at kappa 1 and 4, and records at every step the drift of
the mean belief from its initial value, the spread sqrt(mean_i |mu_i - xbar|^2), the mean entropy of beta and the
number of clusters (agents within 0.1 of each other, single linkage). The late-time rate of the spread is fitted
(least squares on ln spread over the last third of the steps) and set beside the linear theory's
a_r = 1 - lr 2 N lambda_align / ((N - 1) s) (docs/model.md#separation, at alpha = 0). Writes collapse.csv (one row
a step and run), collapse_summary.csv and collapse.png.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

RUNS = {  # label -> overrides of the shipped scenario
    "free_energy, kappa 1": [],
    "weighted, kappa 1": ["energy.form=weighted"],
    "weighted, kappa 4": ["energy.form=weighted", "energy.kappa=4"],
}


def clusters(mu: np.ndarray, eps: float = 0.1) -> int:
    """Connected components of the graph 'closer than eps'."""
    n = len(mu)
    label = list(range(n))

    def find(a):
        while label[a] != a:
            a = label[a]
        return a

    d = np.linalg.norm(mu[:, None] - mu[None], axis=2)
    for a in range(n):
        for b in range(a + 1, n):
            if d[a, b] < eps:
                label[find(a)] = find(b)
    return len({find(a) for a in range(n)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("-o", "--output", default="docs/results/attention")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gauge_vfe.agents.model.attention import beta_entropy
    from gauge_vfe.agents.runner.simulation import Simulation

    series, summary = [], []
    for label, overrides in RUNS.items():
        sim = Simulation.from_scenario("attention_collapse", overrides, keep_history=False)
        n, lr, lam = sim.layout.n_agents, sim.dynamics_params.lr_mu, sim.energy_params.lambda_align
        s = float(sim.state.sigma[0, 0, 0])
        a_r = 1 - lr * 2 * n * lam / ((n - 1) * s)
        x0 = sim.state.mu.mean(axis=0)
        rec = []
        for t in range(args.steps + 1):
            if t:
                sim.step()
            mu = sim.state.mu
            xbar = mu.mean(axis=0)
            rec.append({"run": label, "step": t, "mean_drift": float(np.abs(xbar - x0).max()),
                        "spread": float(np.sqrt(np.mean(np.sum((mu - xbar) ** 2, axis=1)))),
                        "entropy": float(np.nanmean(beta_entropy(sim.layout, sim.evaluation))),
                        "clusters": clusters(mu)})
        series += rec
        t = np.array([r["step"] for r in rec])
        sp = np.array([r["spread"] for r in rec])
        late = t >= 2 * args.steps // 3
        ok = late & (sp > 1e-12)
        rate = float(np.exp(np.polyfit(t[ok], np.log(sp[ok]), 1)[0])) if ok.sum() > 2 else float("nan")
        summary.append({"run": label, "a_r_linear": a_r, "a_late_fitted": rate, "spread_0": sp[0],
                        "spread_end": sp[-1], "max_mean_drift": max(r["mean_drift"] for r in rec),
                        "clusters_end": rec[-1]["clusters"], "entropy_end": rec[-1]["entropy"]})
        print(f"{label:22s} spread {sp[0]:.3f} -> {sp[-1]:.3e}; late contraction/step {rate:.5f} "
              f"(linear theory {a_r:.5f}); max |xbar - xbar0| {summary[-1]['max_mean_drift']:.2e}; "
              f"clusters at the end {rec[-1]['clusters']}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in (("collapse.csv", series), ("collapse_summary.csv", summary)):
        with (out / name).open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    colors = dict(zip(RUNS, ("tab:blue", "tab:red", "tab:orange")))
    for row in summary:
        label = row["run"]
        rec = [r for r in series if r["run"] == label]
        t = np.array([r["step"] for r in rec])
        sp = np.array([r["spread"] for r in rec])
        axes[0].semilogy(t, sp, color=colors[label], label=f"{label} ({rec[-1]['clusters']} cluster(s) at the end)")
        axes[1].semilogy(t, np.maximum([r["mean_drift"] for r in rec], 1e-18), color=colors[label], label=label)
        axes[2].plot(t, [r["entropy"] for r in rec], color=colors[label], label=label)
    a_r = summary[0]["a_r_linear"]
    t = np.arange(args.steps + 1)
    sp_end = summary[0]["spread_end"]
    axes[0].semilogy(t, sp_end * a_r ** (t - args.steps), "k--", lw=1,
                     label=f"linear theory a_r^t = {a_r:.4f}^t (through the end)")
    axes[0].set_title("spread sqrt(mean |mu_i - xbar|^2)")
    axes[1].set_title("drift of the mean max_a |xbar_a(t) - xbar_a(0)|")
    axes[1].axhline(np.finfo(float).eps, color="grey", lw=0.8, label="machine epsilon (2.2e-16)")
    axes[2].set_title("mean entropy of beta (nats); ln 7 = %.3f" % np.log(7))
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle("attention_collapse: alpha = 0, no observations, equal frames, 8 agents on one site, "
                 "Sigma = 0.5 I held, lr 0.01", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "collapse.png", dpi=110)
    print(f"wrote {out / 'collapse.csv'}, {out / 'collapse_summary.csv'} and {out / 'collapse.png'}")


if __name__ == "__main__":
    main()
