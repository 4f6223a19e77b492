"""What every plot shares: a Figure made without pyplot, the legend beside the axes, and the one way a plot is
saved (atomically, never over a run file)."""

from __future__ import annotations

from pathlib import Path

FIGURE_KEYS = ("figsize", "dpi", "constrained_layout", "layout")


def figure(*args, **kw):
    """``plt.subplots`` without pyplot: a Figure outside pyplot's registry, so a notebook shows the returned
    figure once (the inline backend would also show every open pyplot figure) and nothing piles up in memory."""
    from matplotlib.figure import Figure

    fig = Figure(**{k: kw.pop(k) for k in FIGURE_KEYS if k in kw})
    return fig, fig.subplots(*args, **kw)


def legend_outside(ax, **kw) -> None:
    """The legend to the right of the axes, never over the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kw)


def save_png(fig, path: Path, inputs=()) -> Path:
    """``fig`` as a PNG at ``path``, replacing an earlier one only once the new one is complete (a kill or an
    error mid-write leaves the earlier plot as it was); a ``path`` that is one of ``inputs``, a live run's file or
    any run trajectory raises :class:`~gauge_vfe.agents.io.outputs.OutputRefused`."""
    from ..agents.io.outputs import atomic_output, check_output

    check_output(path, inputs, "plot")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
