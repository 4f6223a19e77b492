"""The plots researchers expect, with matplotlib (Agg: no display needed). Each returns a Figure.

    fig = viz.plot_energy(traj); fig.savefig("energy.png")
    viz.plot_all(traj, "plots/")   # what `vfe plot RUN.h5 -o plots/` writes
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TERM_COLORS = {"total": "black", "prior": "tab:blue", "observation": "tab:orange", "alignment": "tab:green",
               "curvature": "tab:red", "smoothness": "tab:purple"}


def _figure(*args, **kw):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kw)


def plot_energy(traj):
    """Every energy term against the step (symmetric-log axis: the alignment term may be negative)."""
    e = traj.energies()
    fig, ax = _figure(figsize=(7, 4.5), constrained_layout=True)
    for term, color in TERM_COLORS.items():
        v = e[term]
        if term == "total" or np.any(v != 0):
            ax.plot(e["step"], v, label=term, color=color, lw=2 if term == "total" else 1.3)
    span = np.abs(np.concatenate([e[t] for t in TERM_COLORS]))
    ax.set_yscale("symlog", linthresh=max(1e-3, float(np.percentile(span[span > 0], 5)) if np.any(span > 0) else 1))
    ax.set_xlabel("step")
    ax.set_ylabel("energy (weights included)")
    ax.set_title(f"{traj.config.get('name', '')}: energy by term")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def attention_matrix(traj, frame: int = -1) -> np.ndarray:
    """(N, N) mean over sites of beta_ij(c) (chi_i-weighted), from the logged beta or recomputed."""
    if "beta" in traj.fields:
        beta = traj.rows("beta", frame)
    else:
        from ..agents.model.energy import beta_matrix, evaluate
        from ..agents.setup.config import make_config

        layout = traj.layout()
        ev = evaluate(layout, make_config(traj.config).energy, traj.state(frame), want_grad=False)
        beta = beta_matrix(layout, ev)
    agent = np.repeat(np.arange(traj.n_agents), np.diff(traj.offset))
    w = traj.chi
    out = np.zeros((traj.n_agents, traj.n_agents))
    np.add.at(out, agent, w[:, None] * beta)
    norm = np.bincount(agent, w, traj.n_agents)
    return out / norm[:, None]


def plot_beta(traj, frame: int = -1):
    """The attention matrix, agents ordered by meta-agent (lines separate meta-agents)."""
    A = attention_matrix(traj, frame)
    labels = -np.ones(traj.n_agents, dtype=int)
    for m in traj.meta_agents(frame):
        if m["scale"] == 2:
            labels[m["members"]] = m["id"]
    order = np.lexsort((np.arange(traj.n_agents), np.where(labels < 0, 10 ** 9, labels)))
    fig, ax = _figure(figsize=(5.5, 4.8), constrained_layout=True)
    im = ax.imshow(A[np.ix_(order, order)], cmap="viridis", vmin=0)
    fig.colorbar(im, ax=ax, label="mean beta_ij")
    ax.set_xticks(range(traj.n_agents), order, fontsize=7)
    ax.set_yticks(range(traj.n_agents), order, fontsize=7)
    sorted_labels = labels[order]
    for k in range(1, traj.n_agents):
        if sorted_labels[k] != sorted_labels[k - 1]:
            ax.axhline(k - 0.5, color="white", lw=1)
            ax.axvline(k - 0.5, color="white", lw=1)
    ax.set_xlabel("j (attended to)")
    ax.set_ylabel("i")
    ax.set_title(f"attention, step {int(traj.frame_steps[frame])}, ordered by meta-agent")
    return fig


def plot_meta_agents(traj):
    """Meta-agent count per scale and mean size (scale-1 members) over time."""
    fig, (ax1, ax2) = _figure(2, 1, figsize=(7, 5), sharex=True, constrained_layout=True)
    result = traj.analysis()
    if result is None:
        ax1.text(0.5, 0.5, "not analysed: run `vfe analyze`", ha="center", transform=ax1.transAxes)
        return fig
    steps, counts, rec = result.steps, result.counts, result.records
    for s in range(2, counts.shape[1]):
        if counts[:, s].any():
            ax1.step(steps, counts[:, s], where="post", label=f"scale {s}")
            sizes = [rec["n_base"][(rec["step"] == t) & (rec["scale"] == s)] for t in steps]
            ax2.plot(steps, [x.mean() if x.size else np.nan for x in sizes], marker=".", label=f"scale {s}")
    ax1.set_ylabel("meta-agents")
    ax2.set_ylabel("mean size (agents)")
    ax2.set_xlabel("step")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    ax1.set_title(f"{traj.config.get('name', '')}: meta-agents")
    return fig


def plot_holonomy(traj, frame: int = -1):
    """Histogram of plaquette holonomy angles in a frame (all agents)."""
    fig, ax = _figure(figsize=(6, 4), constrained_layout=True)
    angles = traj.plaquette_angles(frame)
    if angles is None:
        from ..agents.analysis.holonomy import plaquette_angles

        angles, _ = plaquette_angles(traj.layout(), traj.state(frame))
    a = angles[np.isfinite(angles)]
    if a.size:
        ax.hist(a, bins=40, color="tab:red", alpha=0.8)
    ax.set_xlabel("plaquette angle (rad)")
    ax.set_ylabel("plaquettes")
    ax.set_title(f"holonomy, step {int(traj.frame_steps[frame])}: mean {a.mean() if a.size else 0:.3g}")
    return fig


def plot_beliefs(traj, frame: int = -1, component: int | None = None):
    """Per-agent belief fields as small multiples: |mu| (or one component) on the grid."""
    n = traj.n_agents
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = _figure(rows, cols, figsize=(2.2 * cols + 1, 2.2 * rows + 0.6), constrained_layout=True,
                        squeeze=False)
    mu = traj.field("mu", frame)
    vals = np.linalg.norm(mu, axis=-1) if component is None else mu[..., component]
    vmin, vmax = np.nanmin(vals), np.nanmax(vals)
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            im = ax.imshow(vals[i], cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_title(f"agent {i}", fontsize=8)
        else:
            ax.axis("off")
    label = "|mu|" if component is None else f"mu[{component}]"
    fig.colorbar(im, ax=axes, label=label, shrink=0.8)
    fig.suptitle(f"beliefs, step {int(traj.frame_steps[frame])}")
    return fig


def plot_all(traj, out_dir) -> list[Path]:
    """Write every plot as PNG into ``out_dir``; returns the paths."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in (("energy", plot_energy), ("attention", plot_beta), ("meta_agents", plot_meta_agents),
                     ("holonomy", plot_holonomy), ("beliefs", plot_beliefs)):
        fig = fn(traj)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def read_sweep(directory) -> tuple[list[str], list[dict]]:
    """(swept parameter names, completed members' rows) from a sweep folder's summary."""
    from ..agents.io.sweep_store import read_summary

    columns, rows = read_summary(directory)
    params = [k[len("param:"):] for k in columns if k.startswith("param:")]
    return params, [r for r in rows if r["status"] == "completed"]


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def plot_phase(directory, quantity: str = "meta_agents", x: str | None = None, group: str | None = None):
    """A summary quantity against one swept parameter (and one line per value of a second), mean and spread
    (standard deviation) over every other swept parameter, e.g. the seeds."""
    params, rows = read_sweep(directory)
    free = [p for p in params if p != "seed"] or params
    x = x or free[0]
    group = group if group is not None else next((p for p in free if p != x), None)
    fig, ax = _figure(figsize=(6.5, 4.5), constrained_layout=True)
    groups = sorted({r[f"param:{group}"] for r in rows}, key=_num) if group else [None]
    for g in groups:
        sel = [r for r in rows if g is None or r[f"param:{group}"] == g]
        xs = sorted({_num(r[f"param:{x}"]) for r in sel})
        means, stds, ns = [], [], []
        for xv in xs:
            vals = np.array([_num(r[quantity]) for r in sel if _num(r[f"param:{x}"]) == xv])
            vals = vals[np.isfinite(vals)]
            means.append(vals.mean() if vals.size else np.nan)
            stds.append(vals.std() if vals.size > 1 else 0.0)
            ns.append(vals.size)
        label = f"{group} = {g}" if group else None
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
        # points with a member whose energy went up in some step: ringed in red (their step sizes are too large)
        up = [(xv, m) for xv, m in zip(xs, means)
              if any(_num(r.get("uphill_steps", 0)) > 0 for r in sel if _num(r[f"param:{x}"]) == xv)]
        if up:
            ax.scatter(*zip(*up), s=160, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5,
                       label=None if "went uphill" in ax.get_legend_handles_labels()[1] else "went uphill")
    if len(xs) > 2 and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(quantity)
    n_rep = max(ns) if ns else 0
    ax.set_title(f"{quantity} against {x}\n(mean and standard deviation over {n_rep} members per point)", fontsize=10)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


SWEEP_QUANTITIES = ("meta_agents", "meta_max_scale", "energy_total", "energy_alignment", "holonomy_mean")


def plot_sweep(directory, out_dir=None, quantities=None, x: str | None = None) -> list[Path]:
    """Phase diagrams of summary quantities (default: the main ones) against ``x`` (default: the first swept
    parameter other than the seed), as PNGs (default: into the sweep folder)."""
    import matplotlib.pyplot as plt

    out = Path(out_dir) if out_dir is not None else Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for q in quantities or SWEEP_QUANTITIES:
        fig = plot_phase(directory, q, x)
        path = out / f"phase_{q}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
