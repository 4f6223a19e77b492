"""Plots of a sweep folder (its summary): phase diagrams of any summary column over the swept parameters, and the
time-scale separation against the closed form's axis. ``vfe plot SWEEP_DIR`` writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .figure import DEFAULT_DPI, figure, legend_outside, save_figure, styled


def read_sweep(directory) -> tuple[list[str], list[dict]]:
    """(swept parameter names, completed members' rows) from a sweep folder's summary."""
    from ..agents.io.sweep_store import read_summary

    columns, rows = read_summary(directory)
    params = [k[len("param:"):] for k in columns if k.startswith("param:")]
    return params, [r for r in rows if r["status"] == "completed"]


BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}


def _num(v):
    """A summary value as a float: booleans (and their CSV text "True"/"False") as 1 and 0, else NaN."""
    if isinstance(v, str) and v.strip().lower() in BOOLEAN_TEXT:
        return BOOLEAN_TEXT[v.strip().lower()]
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def is_boolean(values) -> bool:
    """Whether a swept parameter's values are switches (True/False), to be labelled in words."""
    return bool(values) and all(isinstance(v, bool) or str(v).strip().lower() in BOOLEAN_TEXT for v in values)


def switch_name(key: str) -> str:
    """What a boolean key switches, in words: ``dynamics.line_search.enabled`` -> "line search"."""
    parts = key.split(".")
    name = parts[-2] if parts[-1] in ("enabled", "enable", "on") and len(parts) > 1 else parts[-1]
    return name.replace("_", " ")


def value_label(key: str, value) -> str:
    """A legend entry for one value of a swept parameter: "line search on", "kappa = 0.5"."""
    if is_boolean([value]):
        return f"{switch_name(key)} {'on' if _num(value) else 'off'}"
    return f"{key.split('.', 1)[-1]} = {value}"  # the key without its section: "temperature.mu = 0.01"


LOG_PARAMS = ("energy.kappa",)  # a softmax temperature: its effect goes with its logarithm


def spans_decades(values, key: str = "") -> bool:
    """A log axis for positive values that span a decade or more (or any positive kappa sweep of 2+ values)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size < 2 or v.min() <= 0:
        return False
    return key in LOG_PARAMS or v.max() / v.min() >= 10


QUANTITY_LABELS = {
    "meta_agents": "meta-agents at the end", "meta_max_scale": "highest meta-agent scale",
    "energy_total": "total energy at the end (nats)", "holonomy_mean": "mean plaquette angle, last frame (rad)",
    "holonomy_max": "largest plaquette angle, last frame (rad)", "wall_time": "wall time (s)",
    "last_step": "last step", "uphill_steps": "uphill steps",
}
INTEGER_QUANTITIES = ("meta_agents", "meta_max_scale", "last_step", "uphill_steps")


def label(column: str) -> str:
    """A readable axis label for a summary column or a swept parameter (its key kept for reference)."""
    if column in QUANTITY_LABELS:
        return QUANTITY_LABELS[column]
    if column.startswith("energy_"):
        return f"{column[len('energy_'):]} energy at the end (nats)"
    if "." in column:  # a swept parameter: its own name first (a switch: what it switches), then its key
        return f"{switch_name(column)} ({column})"
    return column.replace("_", " ")


def honest_limits(values, integer: bool = False, rel_noise: float = 0.05) -> tuple[float, float] | None:
    """Axis limits that do not magnify noise: when the data vary by less than ``rel_noise`` of their size
    (a constant 2, or 2 +- 0.01), the axis starts at zero (or ends there, for negative data) instead of
    zooming into the third digit. None: leave matplotlib's limits (the data do vary)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = float(v.min()), float(v.max())
    size = max(abs(lo), abs(hi))
    if integer and lo >= 0:
        return (0.0, max(hi, 1.0) * 1.15)  # counts: always from zero
    if size == 0:
        return (-1.0, 1.0)
    if hi - lo >= rel_noise * size:
        return None
    if lo >= 0:
        return (0.0, hi * 1.15)
    if hi <= 0:
        return (lo * 1.15, 0.0)
    return (-1.15 * size, 1.15 * size)


@styled
def plot_phase(directory, quantity: str = "meta_agents", x: str | None = None, group: str | None = None):
    """A summary quantity against one swept parameter (and one line per value of a second), mean and spread
    (standard deviation) over every other swept parameter, e.g. the seeds."""
    params, rows = read_sweep(directory)
    free = [p for p in params if p != "seed"] or params
    x = x or free[0]
    group = group if group is not None else next((p for p in free if p != x), None)
    fig, ax = figure(figsize=(7.5, 4.5), constrained_layout=True)
    shown = []
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
        name = value_label(group, g) if group else None
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name)
        shown += [m + d for m, d in zip(means, stds)] + [m - d for m, d in zip(means, stds)]
        # points with a member whose energy went up in some step: ringed in red (their step sizes are too large)
        up = [(xv, m) for xv, m in zip(xs, means)
              if any(_num(r.get("uphill_steps", 0)) > 0 for r in sel if _num(r[f"param:{x}"]) == xv)]
        if up:
            ax.scatter(*zip(*up), s=160, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5,
                       label=None if "went uphill" in ax.get_legend_handles_labels()[1] else "went uphill")
    all_x = sorted({_num(r[f"param:{x}"]) for r in rows})
    if is_boolean([r[f"param:{x}"] for r in rows]):
        ax.set_xticks([0, 1], [f"{switch_name(x)} off", f"{switch_name(x)} on"])
        ax.set_xlim(-0.4, 1.4)
    elif spans_decades(all_x, x):
        ax.set_xscale("log")
    integer = quantity in INTEGER_QUANTITIES
    limits = honest_limits(shown, integer=integer)
    if limits is not None:
        ax.set_ylim(*limits)
    if integer:
        ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(quantity))
    n_rep = max(ns) if ns else 0
    ax.set_title(f"{label(quantity)} against {label(x).split(' (')[0]}\n(mean and standard deviation over "
                 f"{n_rep} members per point)")
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


SWEEP_QUANTITIES = ("meta_agents", "meta_max_scale", "energy_total", "energy_alignment", "holonomy_mean")
RATIO_PARAMS = ("energy.alpha", "energy.lambda_align")  # swept: the x axis is lambda_align / alpha


def _measured_separation(rows) -> bool:
    return any(np.isfinite(_num(r.get("separation"))) or np.isfinite(_num(r.get("separation_lower"))) for r in rows)


@styled
def plot_separation(directory, x: str | None = None):
    """The time-scale separation tau_collective / tau_relative of each member (docs/model.md#separation) with
    its error bar, against ``x`` (default: lambda_align / alpha when alpha or lambda_align is swept), one panel
    per value of the next swept parameter and one line per value of the one after; any further parameter
    (e.g. a seed) gives each member its own point. A collective mode too slow for its run is drawn as a lower
    bound (a triangle pointing up); a member with no meta-agent, or no resolved time, as a cross on the axis."""
    params, rows = read_sweep(directory)
    if x is None:
        x = "lambda_align_over_alpha" if any(p in params for p in RATIO_PARAMS) else params[0]
    rest = [p for p in params if p not in RATIO_PARAMS and p != x] if x == "lambda_align_over_alpha" else \
        [p for p in params if p != x]
    panel, line = (rest + [None, None])[:2]

    def xval(r):
        return _num(r[x] if x in r else r[f"param:{x}"])

    def values(key):
        return sorted({r[f"param:{key}"] for r in rows}, key=_num) if key else [None]

    panels = values(panel)
    fig, axes = figure(1, len(panels), figsize=(4.2 * len(panels) + 1.8, 4.2), sharey=True, squeeze=False,
                        constrained_layout=True)
    all_y = []
    for ax, pv in zip(axes[0], panels):
        for k, lv in enumerate(values(line)):
            sel = [r for r in rows if (pv is None or r[f"param:{panel}"] == pv) and
                   (lv is None or r[f"param:{line}"] == lv)]
            sel.sort(key=xval)
            color = f"C{k}"
            name = value_label(line, lv) if line else None
            xs = np.array([xval(r) for r in sel])
            ys = np.array([_num(r.get("separation")) for r in sel])
            es = np.array([_num(r.get("separation_err")) for r in sel])
            ok = np.isfinite(ys)
            ax.errorbar(xs[ok], ys[ok], yerr=np.where(np.isfinite(es[ok]), es[ok], 0.0), marker="o", capsize=3,
                        color=color, label=name)
            all_y += list(ys[ok])
            lower = np.array([_num(r.get("separation_lower")) for r in sel])
            lo = ~ok & np.isfinite(lower)
            if lo.any():
                ax.scatter(xs[lo], lower[lo], marker="^", s=70, color=color, zorder=5,
                           label=None if "lower bound (too slow for the run)" in ax.get_legend_handles_labels()[1]
                           else "lower bound (too slow for the run)")
                all_y += list(lower[lo])
            none = ~ok & ~lo
            if none.any():
                ax.scatter(xs[none], np.zeros(none.sum()), marker="x", s=60, color=color, zorder=5,
                           transform=ax.get_xaxis_transform(), clip_on=False,
                           label=None if "no meta-agent / not resolved" in ax.get_legend_handles_labels()[1]
                           else "no meta-agent / not resolved")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("lambda_align / alpha" if x == "lambda_align_over_alpha" else label(x))
        ax.set_title(value_label(panel, pv) if panel else "")
        ax.grid(alpha=0.3, which="both")
    if all_y and min(all_y) > 0:
        axes[0][0].set_yscale("log")
    axes[0][0].set_ylabel("tau_collective / tau_relative (steps)")
    fig.suptitle("time-scale separation of the scale-2 meta-agents (error bars: Madras-Sokal)")
    legend_outside(axes[0][-1])
    return fig


def plot_sweep(directory, out_dir=None, quantities=None, x: str | None = None, fmt: str = "png",
               dpi: int = DEFAULT_DPI, width: str | None = None) -> list[Path]:
    """Phase diagrams of summary quantities (default: the main ones) against ``x`` (default: the first swept
    parameter other than the seed), as ``fmt`` files (png, pdf, svg; default: into the sweep folder) at ``dpi``
    and a journal ``width`` (see :func:`~.figure.save_figure`); with the default quantities, also the time-scale
    separation (``separation.FMT``, :func:`plot_separation`) when a member measured one."""
    if not read_sweep(directory)[1]:
        raise ValueError(f"{directory}: no completed member to plot (see summary.csv)")
    out = Path(out_dir) if out_dir is not None else Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save = {"fmt": fmt, "dpi": dpi, "width": width}
    written = []
    for q in quantities or SWEEP_QUANTITIES:
        written.append(save_figure(plot_phase(directory, q, x), out / f"phase_{q}.{fmt}", **save))
    if quantities is None and _measured_separation(read_sweep(directory)[1]):
        written.append(save_figure(plot_separation(directory), out / f"separation.{fmt}", **save))
    return written
