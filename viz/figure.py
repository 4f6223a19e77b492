"""What every plot shares: one matplotlib style, a Figure made without pyplot, the legend beside the axes, journal
column widths, and the one way a plot is saved (PNG, PDF or SVG; atomically, never over a run file).

A plot function builds its figure at its own natural size; :func:`save_figure` then fits it to a journal column
(``width="single"``: 3.35 in, ``"double"``: 7.0 in, the usual one- and two-column widths of APS, Elsevier and
Nature journals) and writes it in the chosen format. Sizes are set before layout, so the text keeps the style's
point sizes at the printed width (nothing is scaled down after the fact).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

FIGURE_KEYS = ("figsize", "dpi", "constrained_layout", "layout")

FORMATS = ("png", "pdf", "svg")  # PDF and SVG are vector files: text and lines stay sharp at any zoom
DEFAULT_DPI = 200  # PNG only; a vector file has no resolution (its embedded images, none here, would use it)
WIDTHS = {"single": 3.35, "double": 7.0}  # inches: one journal column, the full page width
DEFAULT_WIDTH = "double"

# One style for every plot (run plots, sweep phase diagrams, the time-scale plot): small serif-free text sized for
# print, light grids, ticks inside, no top/right spines, colour-blind-safe cycle (tab10's first colours).
STYLE = {
    "font.size": 8, "axes.titlesize": 8.5, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "legend.title_fontsize": 7.5, "figure.titlesize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6,
    "xtick.direction": "in", "ytick.direction": "in", "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "axes.grid": False, "grid.linewidth": 0.4, "grid.alpha": 0.3, "lines.linewidth": 1.2, "lines.markersize": 4,
    "legend.frameon": False,  # no "tight" bounding box: a saved figure is exactly its column's width
    "pdf.fonttype": 42, "ps.fonttype": 42,  # TrueType in PDFs: editable text, accepted by journals
    "svg.fonttype": "none",  # SVG text stays text (searchable, editable)
    "axes.formatter.limits": (-3, 4), "axes.formatter.use_mathtext": True,  # 1e-4 .. 1e4 in plain numbers
}


@contextlib.contextmanager
def style():
    """The shared style, for building and saving a figure (rcParams are read at both times)."""
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        yield


def styled(plot):
    """Decorate a plot function: its figure is built in the shared :func:`style` (also when a notebook calls it)."""
    import functools

    @functools.wraps(plot)
    def build(*args, **kw):
        with style():
            return plot(*args, **kw)

    return build


def figure(*args, **kw):
    """``plt.subplots`` without pyplot: a Figure outside pyplot's registry, so a notebook shows the returned
    figure once (the inline backend would also show every open pyplot figure) and nothing piles up in memory."""
    from matplotlib.figure import Figure

    fig = Figure(**{k: kw.pop(k) for k in FIGURE_KEYS if k in kw})
    return fig, fig.subplots(*args, **kw)


def legend_outside(ax, **kw) -> None:
    """The legend to the right of the axes, never over the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def check_format(fmt: str, dpi: int, width: str) -> None:
    """Raise ValueError (one line naming the option) for a format, dpi or width no plot can be saved with."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if not 10 <= int(dpi) <= 2400:
        raise ValueError(f"--dpi {dpi}: expected 10 to 2400 dots per inch")
    if width not in WIDTHS:
        raise ValueError(f"--width {width}: expected one of {', '.join(WIDTHS)}")


def fit_width(fig, width: str = DEFAULT_WIDTH) -> None:
    """Resize ``fig`` to a journal column, keeping its aspect ratio; a single column gets a taller figure (at most
    1.6 times the proportional height), since its legends and labels take a larger share of the width."""
    w, h = fig.get_size_inches()
    target = WIDTHS[width]
    height = h * target / w
    if width == "single":
        height = min(height * 1.6, target * 1.4) if height < target * 0.9 else height
    fig.set_size_inches(target, height)
    wrap_titles(fig)


def wrap_titles(fig) -> None:
    """Break each axes title (and the figure's) into lines that fit its width, so a narrow column clips none;
    constrained layout then makes room for the extra lines."""
    import textwrap

    def fit(text_artist, inches: float) -> None:
        text = " ".join(text_artist.get_text().split())
        if text:
            chars = max(12, int(inches * 72 / (0.55 * text_artist.get_fontsize())))  # ~0.55 em per character
            text_artist.set_text(textwrap.fill(text, chars))

    fig_w = fig.get_size_inches()[0]
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        fit(ax.title, ax.get_position().width * fig_w)
    suptitle = getattr(fig, "_suptitle", None)  # matplotlib keeps the artist there (get_suptitle gives text)
    if suptitle is not None:
        fit(suptitle, fig_w)


def image_frame(ax) -> None:
    """An image (a matrix, a field on the grid) is framed on all four sides: the style's open top and right
    spines suit curves, not pictures."""
    for spine in ax.spines.values():
        spine.set_visible(True)


def step_axis(ax, label: str = "step") -> None:
    """An x axis of steps: whole-number ticks (a step 2.5 does not exist)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save_figure(fig, path: Path, inputs=(), fmt: str | None = None, dpi: int = DEFAULT_DPI,
                width: str | None = None) -> Path:
    """``fig`` at ``path`` in ``fmt`` (default: the path's suffix), fitted to a journal ``width`` (None: as
    built), replacing an earlier file only once the new one is complete (a kill or an error mid-write leaves the
    earlier plot as it was); a ``path`` that is one of ``inputs``, a live run's file or any run trajectory raises
    :class:`~gauge_vfe.agents.io.outputs.OutputRefused`."""
    from ..agents.io.outputs import atomic_output, check_output

    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower() or "png"
    check_output(path, inputs, "plot")
    if width is not None:
        fit_width(fig, width)
    metadata = {"Creator": "gauge-vfe"} if fmt in ("pdf", "svg") else {}
    with style(), atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=fmt, metadata=metadata)
    return path


def save_png(fig, path: Path, inputs=()) -> Path:
    """``fig`` as a PNG at ``path`` at the default resolution (see :func:`save_figure`)."""
    return save_figure(fig, path, inputs, fmt="png")
