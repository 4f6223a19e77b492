"""The plots researchers expect, with matplotlib. Each returns a Figure made without pyplot: it opens no window
and needs no display, a notebook shows it inline once, and ``fig.savefig`` writes it.

    fig = viz.plot_energy(traj); fig.savefig("energy.png")
    viz.plot_all(traj, "plots/")   # what `vfe plot RUN.h5 -o plots/` writes
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..agents.model.energy import TERM_TABLE, TOTAL_COLOR
from .figure import DEFAULT_DPI, figure, image_frame, legend_outside, save_figure, step_axis, styled

TERM_COLORS = {"total": TOTAL_COLOR, **{t.name: t.color for t in TERM_TABLE}}


def _run_name(traj) -> str:
    return str(traj.config.get("name", "") or traj.path.stem)


def _not_analysed(ax) -> None:
    ax.text(0.5, 0.5, "not analysed: run `vfe analyze RUN.h5`", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


@styled
def plot_energy(traj):
    """Every energy term against the step (symmetric-log axis: the alignment term may be negative), the legend
    outside the data."""
    e = traj.energies()
    fig, ax = figure(figsize=(8, 4.5), constrained_layout=True)
    for term, color in TERM_COLORS.items():
        v = e[term]
        if term == "total" or np.any(v != 0):
            ax.plot(e["step"], v, label=term, color=color, lw=2 if term == "total" else 1.3)
    span = np.abs(np.concatenate([e[t] for t in TERM_COLORS]))
    ax.set_yscale("symlog", linthresh=max(1e-3, float(np.percentile(span[span > 0], 5)) if np.any(span > 0) else 1))
    ax.axhline(0, color="grey", lw=0.6)
    step_axis(ax)
    ax.set_ylabel("energy (nats, weights included)")
    ax.set_title(f"{_run_name(traj)}: energy by term")
    legend_outside(ax, title="term")
    ax.grid(alpha=0.3)
    return fig


def attention_matrix(traj, frame: int = -1) -> np.ndarray:
    """(N, N) mean over sites of beta_ij(c) (chi_i-weighted), from the logged beta or recomputed."""
    if "beta" in traj.fields:
        beta = traj.rows("beta", frame)
    else:
        from ..agents.model.energy import beta_matrix

        beta = beta_matrix(traj.layout(), traj.evaluate(frame))
    agent = np.repeat(np.arange(traj.n_agents), np.diff(traj.offset))
    w = traj.chi
    out = np.zeros((traj.n_agents, traj.n_agents))
    np.add.at(out, agent, w[:, None] * beta)
    norm = np.bincount(agent, w, traj.n_agents)
    return out / norm[:, None]


def meta_order(traj, frame: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(agents ordered by their scale-2 meta-agent id, then by index; each ordered agent's id, -1 for none)."""
    labels = -np.ones(traj.n_agents, dtype=int)
    for m in traj.meta_agents(frame):
        if m["scale"] == 2:
            labels[m["members"]] = m["id"]
    order = np.lexsort((np.arange(traj.n_agents), np.where(labels < 0, 10 ** 9, labels)))
    return order, labels[order]


@styled
def plot_beta(traj, frame: int = -1):
    """The attention matrix, agents ordered by meta-agent; each block labelled with its meta-agent id."""
    from matplotlib.patches import Rectangle

    from .scene import meta_color

    A = attention_matrix(traj, frame)
    order, ids = meta_order(traj, frame)
    n = traj.n_agents
    fig, ax = figure(figsize=(6.2, 5.6), constrained_layout=True)
    im = ax.imshow(A[np.ix_(order, order)], cmap="viridis", vmin=0)
    image_frame(ax)
    fig.colorbar(im, ax=ax, label="attention beta_ij (mean over the overlap)", shrink=0.85)
    ax.set_xticks(range(n), order, fontsize=7)
    ax.set_yticks(range(n), order, fontsize=7)
    starts = [0] + [k for k in range(1, n) if ids[k] != ids[k - 1]] + [n]
    for a, b in zip(starts[:-1], starts[1:]):
        mid = (a + b - 1) / 2
        if ids[a] >= 0:
            ax.add_patch(Rectangle((a - 0.5, a - 0.5), b - a, b - a, fill=False, edgecolor=meta_color(ids[a]),
                                   lw=2))
            ax.text(mid, -0.9, f"id {ids[a]}", ha="center", va="bottom", fontsize=8, color="black",
                    bbox={"facecolor": meta_color(ids[a]), "alpha": 0.6, "pad": 1, "edgecolor": "none"})
        else:
            ax.text(mid, -0.9, "no meta-agent", ha="center", va="bottom", fontsize=7, color="grey")
    ax.set_ylim(n - 0.5, -2.2)  # room above the matrix for the id labels
    ax.set_xlabel("j: agent attended to")
    ax.set_ylabel("i: agent attending")
    ax.set_title(f"{_run_name(traj)}: attention at step {int(traj.frame_steps[frame])},\n"
                 "agents grouped by scale-2 meta-agent")
    return fig


plot_attention = plot_beta


EVENT_STYLE = {"birth": ("^", "tab:green"), "death": ("x", "tab:grey"), "merge": ("v", "tab:purple"),
               "split": ("D", "tab:orange")}


@styled
def plot_meta_agents(traj):
    """Meta-agent count and size (base agents per meta-agent) per scale over time, with birth, death, merge and
    split events marked where they happen."""
    from ..agents.analysis.pipeline import EVENT_KINDS

    fig, (ax1, ax2) = figure(2, 1, figsize=(8, 5.5), sharex=True, constrained_layout=True)
    result = traj.analysis()
    if result is None:
        _not_analysed(ax1)
        return fig
    steps, counts, rec = result.steps, result.counts, result.records
    colors = {}
    for s in range(2, counts.shape[1]):
        if not counts[:, s].any():
            continue
        line = ax1.step(steps, counts[:, s], where="post", label=f"scale {s}", lw=1.6)[0]
        colors[s] = line.get_color()
        sizes = [rec["n_base"][(rec["step"] == t) & (rec["scale"] == s)] for t in steps]
        mean = np.array([x.mean() if x.size else np.nan for x in sizes])
        lo = np.array([x.min() if x.size else np.nan for x in sizes])
        hi = np.array([x.max() if x.size else np.nan for x in sizes])
        ax2.plot(steps, mean, color=colors[s], label=f"scale {s}: mean")
        ax2.fill_between(steps, lo, hi, color=colors[s], alpha=0.2, step=None, label=f"scale {s}: min to max")
    ev = result.events
    for kind, (marker, color) in EVENT_STYLE.items():
        sel = ev[ev["kind"] == EVENT_KINDS[kind]]
        if not sel.size:
            continue
        k = np.clip(np.searchsorted(steps, sel["step"]), 0, len(steps) - 1)
        ax1.scatter(sel["step"], counts[k, sel["scale"]], marker=marker, color=color, s=40, zorder=5,
                    label=f"{kind} ({sel.size})")
    ax1.set_ylabel("meta-agents")
    ax1.yaxis.get_major_locator().set_params(integer=True)
    ax1.set_ylim(bottom=0)
    ax2.set_ylabel("size (scale-1 agents)")
    ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.set_ylim(bottom=0)
    step_axis(ax2)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        legend_outside(ax)
    ax1.set_title(f"{_run_name(traj)}: meta-agents per scale, with events")
    return fig


def membership(result, scale: int, n_agents: int) -> np.ndarray:
    """(F, N) id of the scale-``scale`` meta-agent each base agent belongs to at each analysed frame, -1 none."""
    out = -np.ones((len(result.steps), n_agents), dtype=np.int64)
    row = {int(t): k for k, t in enumerate(result.steps)}
    for k in np.nonzero(result.records["scale"] == scale)[0]:
        r = result.records[k]
        out[row[int(r["step"])], result.members[result.members_offset[k]:result.members_offset[k + 1]]] = r["id"]
    return out


@styled
def plot_hierarchy(traj):
    """Which agents belong to which meta-agent at each step: one panel per scale (the highest on top), one row
    per agent, coloured by the id of the meta-agent holding it (white: none)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .scene import meta_color

    result = traj.analysis()
    if result is None:
        fig, ax = figure(figsize=(8, 3), constrained_layout=True)
        _not_analysed(ax)
        return fig
    scales = [s for s in range(2, result.counts.shape[1]) if result.counts[:, s].any()] or [2]
    n = traj.n_agents
    order, _ = meta_order(traj, -1)
    fig, axes = figure(len(scales), 1, figsize=(8, 1.2 + 0.22 * n * len(scales)), sharex=True,
                        constrained_layout=True, squeeze=False)
    steps = result.steps
    dt = steps[1] - steps[0] if len(steps) > 1 else 1
    for ax, s in zip(axes[::-1, 0], scales):  # highest scale on top
        ids = membership(result, s, n)[:, order].T  # (N, F), rows in the attention plot's order
        present = sorted(int(v) for v in np.unique(ids) if v >= 0)
        lut = {v: k + 1 for k, v in enumerate(present)}
        img = np.vectorize(lambda v: lut.get(int(v), 0))(ids) if ids.size else ids
        cmap = ListedColormap([(1, 1, 1)] + [meta_color(v) for v in present])
        image_frame(ax)
        ax.imshow(img, aspect="auto", interpolation="nearest", cmap=cmap, vmin=-0.5, vmax=len(present) + 0.5,
                  extent=(steps[0] - dt / 2, steps[-1] + dt / 2, n - 0.5, -0.5))
        ax.set_yticks(range(n), order, fontsize=6)
        ax.set_ylabel(f"scale {s}\nagent")
        handles = [Patch(facecolor=meta_color(v), label=f"id {v}") for v in present]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                      title=f"scale {s}", title_fontsize=8, borderaxespad=0.0)
    step_axis(axes[-1, 0])
    axes[0, 0].set_title(f"{_run_name(traj)}: hierarchy over time (which meta-agent holds each agent)")
    return fig


def holonomy_quantiles(traj, qs=(0.05, 0.25, 0.5, 0.75, 0.95)):
    """(steps, (F, len(qs)) quantiles, (F,) max) of the plaquette angles of every analysed frame, or None."""
    result = traj.analysis()
    if result is None:
        return None
    A = result.plaquette_angle
    out = np.full((A.shape[0], len(qs)), np.nan)
    top = np.full(A.shape[0], np.nan)
    for k, row in enumerate(A):
        a = row[np.isfinite(row)]
        if a.size:
            out[k] = np.quantile(a, qs)
            top[k] = a.max()
    return result.steps, out, top


@styled
def plot_holonomy_over_time(traj, ax=None):
    """The distribution of plaquette holonomy angles over time: median, 25-75 % and 5-95 % bands, and max."""
    if ax is None:
        fig, ax = figure(figsize=(8, 4), constrained_layout=True)
    else:
        fig = ax.figure
    q = holonomy_quantiles(traj)
    if q is None:
        _not_analysed(ax)
        return fig
    steps, Q, top = q
    ax.fill_between(steps, Q[:, 0], Q[:, 4], color="tab:red", alpha=0.15, label="5 to 95 %")
    ax.fill_between(steps, Q[:, 1], Q[:, 3], color="tab:red", alpha=0.35, label="25 to 75 %")
    ax.plot(steps, Q[:, 2], color="tab:red", lw=1.8, label="median")
    ax.plot(steps, top, color="black", lw=0.8, ls="--", label="max")
    ax.set_ylim(bottom=0)
    step_axis(ax)
    ax.set_ylabel("plaquette angle (rad)")
    ax.set_title(f"{_run_name(traj)}: plaquette holonomy over time")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return fig


@styled
def plot_holonomy(traj, frame: int = -1, stacked: bool = False):
    """Plaquette holonomy: its distribution over time (bands) and, beside it (``stacked``: below it, for a
    narrow column), the histogram of one frame."""
    if stacked:
        fig, (ax1, ax2) = figure(2, 1, figsize=(6, 6.5), constrained_layout=True, height_ratios=(1.3, 1))
    else:
        fig, (ax1, ax2) = figure(1, 2, figsize=(11, 4), constrained_layout=True, width_ratios=(2.2, 1))
    plot_holonomy_over_time(traj, ax1)
    angles = traj.plaquette_angles(frame)
    if angles is None:
        from ..agents.analysis.holonomy import plaquette_angles

        angles, _ = plaquette_angles(traj.layout(), traj.state(frame))
    a = angles[np.isfinite(angles)]
    if a.size:
        ax2.hist(a, bins=40, color="tab:red", alpha=0.8)
    ax2.set_xlabel("plaquette angle (rad)")
    ax2.set_ylabel("agent-site plaquettes")
    ax2.set_title(f"step {int(traj.frame_steps[frame])}: mean {a.mean() if a.size else 0:.3g} rad")
    ax2.grid(alpha=0.3)
    return fig


@styled
def plot_beliefs(traj, frame: int = -1, component: int | None = None):
    """Per-agent belief fields as small multiples: |mu| (or one component) on the grid."""
    n = traj.n_agents
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = figure(rows, cols, figsize=(2.2 * cols + 1, 2.2 * rows + 0.6), constrained_layout=True,
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
            image_frame(ax)
            ax.set_title(f"agent {i}", fontsize=8)
        else:
            ax.axis("off")
    label = ("|mu|" if component is None else f"mu[{component}]") + " (u: belief units, set by the priors)"
    fig.colorbar(im, ax=axes, label=label, shrink=0.8)
    fig.suptitle(f"{_run_name(traj)}: beliefs, step {int(traj.frame_steps[frame])}")
    return fig


PLOTS = (("energy", plot_energy), ("holonomy", plot_holonomy), ("meta_agents", plot_meta_agents),
         ("hierarchy", plot_hierarchy), ("attention", plot_beta), ("beliefs", plot_beliefs))

NARROW = {"holonomy": {"stacked": True}}  # how a plot is built for one journal column (side by side does not fit)


def plot_all(traj, out_dir, fmt: str = "png", dpi: int = DEFAULT_DPI, width: str | None = None) -> list[Path]:
    """Write every plot into ``out_dir`` (created) as ``fmt`` (png, pdf or svg) at ``dpi`` (PNG), fitted to a
    journal ``width`` ("single", "double"; None: each plot's own size); returns the paths. A path that is the run
    file, a live run's file or any run trajectory raises :class:`~gauge_vfe.agents.io.outputs.OutputRefused`
    before any is written."""
    from ..agents.io.outputs import check_output

    out = Path(out_dir)
    inputs = [getattr(traj, "path", None)]
    targets = [(out / f"{name}.{fmt}", fn, NARROW.get(name, {}) if width == "single" else {}) for name, fn in PLOTS]
    for path, _, _ in targets:
        check_output(path, inputs, "plot")
    out.mkdir(parents=True, exist_ok=True)
    return [save_figure(fn(traj, **kw), path, inputs, fmt=fmt, dpi=dpi, width=width) for path, fn, kw in targets]
