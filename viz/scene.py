"""The 3D scene of one frame, and what stays fixed over a whole movie (:class:`MovieContext`).

Geometry: site (y, x) sits at (x, H-1-y), so a view from above reads like an image of the grid. Scale-s
entities live at height ``s * layer_gap`` above the base plane. The scale-1 agents are spread in height over
the band ``(1 +- AGENT_BAND/2) * layer_gap`` (agent 0 lowest), each support outlined in the agent's own colour,
so every agent can be picked out even where supports overlap.

What a researcher sees:

* the base plane coloured by the holonomy angle (the largest plaquette angle over agents at each site, rad) on
  one colour range for the whole movie, with its colour bar in every frame (also at step 0, where it is 0);
  grey with a note when the run has not been analysed;
* every agent's support as a translucent layer coloured by ``color_by`` (see :data:`COLOR_BY`) on one range
  for the whole movie, outlined in the agent's colour;
* every meta-agent as a layer over the union of its members' supports at its scale's height, one colour per
  id (fixed across frames and runs), with lines from its members' centres to its own, and a legend: id,
  scale, colour, member count;
* a height axis naming the layers (agents, scale 2, scale 3, ...);
* covariance ellipsoids (the first spin-1 block of Sigma) with radii ``ellipsoid_scale * sqrt(eigenvalue)``:
  the 1-sigma ellipsoid, in sites per unit of mu, the factor fixed for the movie and written in the caption;
  frame triads (the l = 1 rotation of phi: red, green, blue = rotated x, y, z) at sampled sites;
* a caption with the run's name, step and total energy; units on every colour bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..agents.model.energy import TERM_TABLE
from ..agents.model.fiber import require_so3
from .backend import import_pyvista

COLOR_BY = ("agent", "mu", "|mu|", "trace_sigma", "kl_prior", "free_energy")
VIEWS = ("iso", "top", "side")
META_COLORS = [
    (0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (1.00, 0.88, 0.10), (0.00, 0.51, 0.78), (0.96, 0.51, 0.19),
    (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.94, 0.20, 0.90), (0.82, 0.96, 0.24), (0.98, 0.75, 0.83),
    (0.00, 0.50, 0.50), (0.86, 0.75, 1.00), (0.67, 0.43, 0.16), (1.00, 0.98, 0.78), (0.50, 0.00, 0.00),
]
AGENT_CMAP = "tab20"
# Colour-bar titles with units (docs/model.md#units: beliefs in the fiber's unit u, energies in nats).
# Two lines each: a title no wider than its bar's gutter (a one-line "holonomy angle (rad)" ran past the picture).
BAR_TITLES = {"mu": "mu[{k}]\n(u)", "|mu|": "norm of mu\n(u)", "trace_sigma": "trace Sigma\n(u^2)",
              "kl_prior": "KL to prior\n(nats)", "free_energy": "energy density\n(nats)"}
HOLONOMY_TITLE = "holonomy\nangle (rad)"
UNIT_NOTE = "u: the belief unit, set by the priors' scale"  # docs/model.md#units; in every caption with a u
# Where things go, in fractions of the 3D view: the colour bars in gutters at the left and right edges, the
# caption above, and the scene fitted (with a margin) into the box between them, so nothing overlaps or is cut.
LEFT_BAR_X, RIGHT_BAR_X, BAR_WIDTH = 0.06, 0.905, 0.03
BAR_Y, BAR_HEIGHT = 0.06, 0.36
SCENE_BOX = (0.17, 0.87, 0.02, 0.84)  # x0, x1, y0, y1 of the viewport the 3D scene may fill
SCENE_MARGIN = 0.03  # of the viewport, inside the box
TOP_VIEW_WIDTH = 0.72  # the top view leaves the sides of the picture to the colour bars
ELLIPSOID_RADIUS = 0.45  # sites: the typical 1-sigma radius, before rounding the factor (0.45 -> 0.5 for Sigma = 1)
AGENT_BAND = 0.6  # the scale-1 agents spread over 60 % of a layer gap: well apart, and below scale 2
NOT_ANALYSED_GREY = (0.85, 0.85, 0.85)


def meta_color(meta_id: int) -> tuple[float, float, float]:
    """The colour of a meta-agent id: fixed for the whole animation (and across runs)."""
    return META_COLORS[meta_id % len(META_COLORS)]


def agent_color(agent: int) -> tuple[float, float, float]:
    import matplotlib

    return tuple(matplotlib.colormaps[AGENT_CMAP](agent % 20)[:3])


def bar_title(color_by: str, component: int = 0) -> str:
    return BAR_TITLES.get(color_by, color_by).format(k=component)


@dataclass
class SceneOptions:
    color_by: str = "|mu|"
    component: int = 0  # for color_by == "mu"
    opacity: float = 0.45
    meta_opacity: float = 0.35
    ellipsoids: bool = True
    triads: bool = True
    samples_per_agent: int = 4
    caption: bool = True
    legend: bool = True  # the meta-agent legend
    legend_x: float = 0.79  # its left edge, as a fraction of the view's width
    outlines: bool = True  # each agent's support outlined in its colour
    height_axis: bool = True
    agents: bool = True  # the scale-1 layer (tests hide it and the next to look at the base plane alone)
    meta_agents: bool = True  # the meta-agent layers, their member lines and legend
    view: str = "iso"  # iso | top | side ("top" is orthographic, from above)
    panel_2d: bool = False  # a top-down panel (base plane and meta-agent layers) beside the 3D view
    clim: tuple[float, float] | None = None  # colour-by range; default: over every rendered frame
    holonomy_clim: tuple[float, float] | None = None  # default: 0 to the largest angle over every rendered frame
    ellipsoid_scale: float | None = None  # sites per unit of mu; default: a round number fitted to frame one

    def __post_init__(self):
        base = self.color_by.split(":")[0]
        if base not in COLOR_BY:
            raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (mu:K for a component), "
                             f"got {self.color_by!r}")
        if base == "mu" and ":" in self.color_by:
            self.component = int(self.color_by.split(":")[1])
            self.color_by = "mu"
        if self.view == "perspective":  # the name before iso/top/side
            self.view = "iso"
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}, got {self.view!r}")
        for name in ("clim", "holonomy_clim"):
            lim = getattr(self, name)
            if lim is not None:
                try:
                    lo, hi = (float(v) for v in (lim.split(",") if isinstance(lim, str) else lim))
                except ValueError:
                    raise ValueError(f"{name}: expected LO,HI (two numbers), got {lim!r}") from None
                if not hi > lo:
                    raise ValueError(f"{name}: the upper limit must exceed the lower, got {lo:g},{hi:g}")
                setattr(self, name, (lo, hi))


def font_scale(plotter) -> float:
    """Text sizes are in pixels: scale them with the window (1 at 720 pixels high), by the square root so that a
    small tile of a contact sheet (540 pixels: 0.87) keeps its text legible rather than shrinking it in step."""
    return float(np.clip(np.sqrt(plotter.window_size[1] / 720), 0.55, 2.0))


def round_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) inside [lo, hi], at least 2 of them."""
    if not hi > lo:
        return np.array([lo])
    for k in (n, n + 1, n + 2, n - 1, 3, 2):
        step = nice_number((hi - lo) / max(k - 1, 1))
        ticks = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1) * step
        if len(ticks) >= 2:
            return np.round(ticks, 12) + 0.0  # + 0.0: no "-0" label
    return np.array([lo, hi])


def set_round_ticks(plotter, title: str, clim) -> None:
    """Label a colour bar at round values (custom labels) instead of VTK's evenly split range (0.0138, 0.538,
    ...); the colour range itself is unchanged."""
    from vtkmodules.vtkCommonCore import vtkDoubleArray

    bar = plotter.scalar_bars[title] if title in plotter.scalar_bars else None
    if bar is None or clim is None:
        return
    ticks = round_ticks(*clim)
    values = vtkDoubleArray()
    for t in ticks:
        values.InsertNextValue(float(t))
    bar.SetUseCustomLabels(True)
    bar.SetCustomLabels(values)
    bar.SetLabelFormat("%g")


def layer_gap(H: int, W: int) -> float:
    return 0.35 * max(H, W)


def nice_number(x: float) -> float:
    """The nearest of 1, 2, 2.5, 5 times a power of ten (a scale factor a caption can state)."""
    if not np.isfinite(x) or x <= 0:
        return 1.0
    e = np.floor(np.log10(x))
    m = x / 10 ** e
    best = min((1.0, 2.0, 2.5, 5.0, 10.0), key=lambda c: abs(np.log(m / c)))
    return float(best * 10 ** e)


def readable_range(lo: float, hi: float, rel: float = 1e-3) -> tuple[float, float]:
    """(lo, hi), widened by 5 % of the values' size when they are (nearly) constant: a constant 3 is shown in
    the middle of a 2.85 to 3.15 bar, not on a bar whose every label reads 3."""
    size = max(abs(lo), abs(hi))
    if hi - lo > rel * size and hi > lo:
        return lo, hi
    pad = 0.05 * size if size > 0 else 1.0
    return lo - pad, hi + pad


def frame_values(traj, frame: int, state, options: SceneOptions, layout=None) -> np.ndarray:
    """The colour-by quantity per agent-site of one frame."""
    c = options.color_by
    if c == "agent":
        return np.repeat(np.arange(traj.n_agents), np.diff(traj.offset)).astype(float)
    if c == "mu":
        return state.mu[:, options.component]
    if c == "|mu|":
        return np.linalg.norm(state.mu, axis=1)
    if c == "trace_sigma":
        return np.trace(state.sigma, axis1=1, axis2=2)
    if c == "kl_prior":
        layout = layout if layout is not None else traj.layout()
        prec, m = layout.prior_precision, layout.prior_mu
        d = m - state.mu
        K = state.mu.shape[1]
        _, ld_q = np.linalg.slogdet(state.sigma)
        return 0.5 * (np.einsum("sij,sji->s", prec, state.sigma) + np.einsum("si,sij,sj->s", d, prec, d) - K
                      + layout.prior_logdet - ld_q)
    ev = traj.evaluate(frame)  # the run's layout and energy parameters at that frame
    return sum(ev.densities.values())  # free-energy density per agent-site


def _spin1_block(spins) -> slice:
    start = 0
    for s in spins:
        if s == 1:
            return slice(start, start + 3)
        start += 2 * s + 1
    return slice(0, 3)


def _sample_rows(offset: np.ndarray, per_agent: int) -> np.ndarray:
    out = []
    for i in range(offset.size - 1):
        r = np.arange(offset[i], offset[i + 1])
        if r.size:
            out.append(r[np.linspace(0, r.size - 1, min(per_agent, r.size)).astype(int)])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def title_lines(config: dict, n_frames: int, frame_steps, width: int = 85) -> list[str]:
    """The title card: the scenario and the parameters that shape its movie (lines of at most ``width``)."""
    import textwrap

    def fmt(d: dict, keys) -> str:
        return ", ".join(f"{k} {d[k]:g}" if isinstance(d[k], (int, float)) and not isinstance(d[k], bool)
                         else f"{k} {d[k]}" for k in keys if d.get(k) is not None)

    g, e, d = config.get("grid", {}), config.get("energy", {}), config.get("dynamics", {})
    a = config.get("agents", {})
    n_agents = a.get("count") or len(a.get("supports") or [])
    spins = ", ".join(str(v) for v in config.get("fiber", {}).get("spins", []))
    lines = [f"{g.get('height')}x{g.get('width')} grid ({g.get('boundary', 'open')}), {n_agents} agents, "
             f"fiber spins {spins}, seed {config.get('seed')}",
             "energy: " + fmt(e, ("form", "kappa", *(t.weight for t in TERM_TABLE))),
             f"dynamics: {d.get('method')}, {d.get('steps')} steps; {n_frames} frames, steps "
             f"{int(frame_steps[0])} to {int(frame_steps[-1])}"]
    meta = config.get("analysis", {}).get("meta_agents", {})
    if meta:
        lines.append("meta-agents: " + fmt(meta, sorted(meta)))
    return [str(config.get("name", "run"))] + [w for line in lines for w in textwrap.wrap(line, width)]


class MovieContext:
    """What stays fixed over a movie: colour ranges, ellipsoid scale, layer heights, camera, geometry.

    Built once from the run and the frames to be rendered, so that every frame uses the same camera (fitted to
    the union of all frames' geometry: the grid and the highest scale any rendered frame reaches) and the same
    colour ranges (the extremes over every rendered frame, unless the options fix them).
    """

    def __init__(self, traj, frames: list[int], options: SceneOptions):
        # frame triads and the holonomy colouring read phi as a rotation
        require_so3(traj, "rendering (frame triads, holonomy colours)", getattr(traj, "path", None))
        pv = import_pyvista()

        self.options = options
        self.name = traj.config.get("name", "")
        self.config = traj.config
        self.H, self.W = traj.grid.height, traj.grid.width
        self.offset, self.index = traj.offset, traj.index
        self.n_agents = traj.n_agents
        self.spins = traj.spins
        self.frames = list(frames)
        self.frame_steps = traj.frame_steps
        self.gap = layer_gap(self.H, self.W)
        self.layout = traj.layout() if options.color_by == "kl_prior" else None
        self.energy_steps, self.energy_total = traj.energy("total")
        result = traj.analysis()
        self.analysed = result is not None
        # colour-by values of every frame: read once, used for the range and for the frames themselves
        # (states are read again per frame, not kept: a long run's states would not fit in memory)
        self._traj = traj
        self.values = {f: frame_values(traj, f, traj.state(f), options, self.layout)
                       for f in self.frames}
        if options.color_by == "agent":
            self.clim = None
        elif options.clim is not None:
            self.clim = options.clim
        else:
            lo = min(float(np.nanmin(v)) for v in self.values.values())
            hi = max(float(np.nanmax(v)) for v in self.values.values())
            self.clim = readable_range(lo, hi)
        self.meta = {f: traj.meta_agents(f) for f in self.frames}
        self.heat = {f: self._heat(traj, f) for f in self.frames}
        if options.holonomy_clim is not None:
            self.holonomy_clim = options.holonomy_clim
        elif self.analysed:
            top = max([float(h.max()) for h in self.heat.values() if h is not None] + [0.0])
            # a flat connection (rounding errors only): 0 on a scale of 0.01 rad, not its noise magnified
            self.holonomy_clim = (0.0, top if top > 1e-9 else 0.01)
        else:
            self.holonomy_clim = None
        self.max_scale = max([m["scale"] for ms in self.meta.values() for m in ms] + [1])
        self.ellipsoid_scale = options.ellipsoid_scale or self._fit_ellipsoid_scale()
        # fixed geometry: agent heights, support meshes and outlines, the base plane
        self.agent_z = self.gap * (1 + AGENT_BAND * (np.arange(self.n_agents) / max(self.n_agents - 1, 1) - 0.5))
        self.plane = pv.ImageData(dimensions=(self.W + 1, self.H + 1, 1), origin=(-0.5, -0.5, 0.0))
        self.site_of_cell = np.argsort(self.cell_ids(np.arange(self.H * self.W)))  # plane cell -> grid site
        # every agent-site's square at its agent's height: cell k is row k of the state
        self.row_agent = np.repeat(np.arange(self.n_agents), np.diff(self.offset))
        self.agent_layer = self.squares(self.index, self.agent_z[self.row_agent])
        self.agent_layer.cell_data["rgb"] = (np.array([agent_color(i) for i in self.row_agent]).reshape(-1, 3)
                                             * 255).astype(np.uint8)
        self.outlines = self._outlines(pv)
        self.bounds = self._bounds()

    # --- per-frame data ------------------------------------------------------------------------------------
    def rows(self, agent: int) -> slice:
        return slice(int(self.offset[agent]), int(self.offset[agent + 1]))

    def state(self, frame: int):
        """The state of a frame, read from the run (which must stay open while frames are drawn)."""
        return self._traj.state(frame)

    def _heat(self, traj, frame: int) -> np.ndarray | None:
        """Largest plaquette angle over agents at each site (H*W), 0 where none is defined."""
        angles = traj.plaquette_angles(frame)
        if angles is None:
            return None
        heat = np.zeros(self.H * self.W)
        finite = np.isfinite(angles)
        np.maximum.at(heat, self.index[finite], angles[finite])
        return heat

    def energy_at(self, step: int) -> float:
        k = np.searchsorted(self.energy_steps, step)
        ok = k < self.energy_steps.size and self.energy_steps[k] == step
        return float(self.energy_total[k]) if ok else float("nan")

    def _fit_ellipsoid_scale(self) -> float:
        """A round factor that draws the median 1-sigma radius of the run's first frame as about half a site
        (the first frame of the run, not of the selection: every render of a run gets the same factor)."""
        st = self.state(0)
        blk = _spin1_block(self.spins)
        w = np.linalg.eigvalsh(st.sigma[:, blk, blk])
        typical = float(np.median(np.sqrt(np.maximum(w[:, -1], 0.0))))
        return nice_number(ELLIPSOID_RADIUS / typical) if typical > 0 else 1.0

    # --- geometry ------------------------------------------------------------------------------------------
    def xy(self, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, x = np.divmod(sites, self.W)
        return x.astype(float), (self.H - 1 - y).astype(float)

    def centroid(self, agents) -> tuple[float, float]:
        sites = np.concatenate([self.index[self.rows(a)] for a in agents])
        x, y = self.xy(sites)
        return float(x.mean()), float(y.mean())

    def cell_ids(self, sites: np.ndarray) -> np.ndarray:
        y, x = np.divmod(sites, self.W)
        return (self.H - 1 - y) * self.W + x  # ImageData cells run x fastest, then y (flipped rows)

    def squares(self, sites: np.ndarray, z) -> "object":
        """Unit squares over ``sites`` (cell k over ``sites[k]``) at height ``z`` (a number or one per site): one
        PolyData, so a whole layer is one actor (PyVista's per-actor cost dominates a frame otherwise)."""
        pv = import_pyvista()

        x, y = self.xy(sites)
        z = np.broadcast_to(np.asarray(z, dtype=float), x.shape)
        corners = np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)])
        pts = np.empty((x.size, 4, 3))
        pts[:, :, 0] = x[:, None] + corners[:, 0]
        pts[:, :, 1] = y[:, None] + corners[:, 1]
        pts[:, :, 2] = z[:, None]
        faces = np.column_stack([np.full(x.size, 4), np.arange(4 * x.size).reshape(-1, 4)]).ravel()
        return pv.PolyData(pts.reshape(-1, 3), faces)

    def _outlines(self, pv):
        """Every agent's support boundary at its height, in its colour: one line mesh, RGB per segment."""
        pts, colors = [], []
        H, W = self.H, self.W
        for i in range(self.n_agents):
            inside = np.zeros((H + 2, W + 2), dtype=bool)
            y, x = np.divmod(self.index[self.rows(i)], W)
            inside[y + 1, x + 1] = True
            z = self.agent_z[i]
            for dy, dx, (a, b) in ((-1, 0, ((-0.5, 0.5), (0.5, 0.5))), (1, 0, ((-0.5, -0.5), (0.5, -0.5))),
                                   (0, -1, ((-0.5, -0.5), (-0.5, 0.5))), (0, 1, ((0.5, -0.5), (0.5, 0.5)))):
                edge = ~inside[y + 1 + dy, x + 1 + dx]  # the neighbour is outside: this side is boundary
                X, Y = x[edge].astype(float), (H - 1 - y[edge]).astype(float)
                seg = np.empty((2 * X.size, 3))
                seg[0::2] = np.column_stack([X + a[0], Y + a[1], np.full(X.size, z)])
                seg[1::2] = np.column_stack([X + b[0], Y + b[1], np.full(X.size, z)])
                pts.append(seg)
                colors.append(np.repeat([agent_color(i)], X.size, axis=0))
        if not pts:
            return None
        mesh = pv.line_segments_from_points(np.concatenate(pts))
        mesh.cell_data["rgb"] = (np.concatenate(colors) * 255).astype(np.uint8)
        return mesh

    def _bounds(self) -> tuple[float, ...]:
        """The union of every rendered frame's geometry: the grid, from the base plane to the highest scale
        reached (plus room for the glyphs on top)."""
        top = max(self.max_scale * self.gap, self.agent_z.max() if self.n_agents else self.gap) + 1.0
        return (-0.5, self.W - 0.5, -0.5, self.H - 0.5, 0.0, top)


class FrameDrawer:
    """Draws the frames of one :class:`MovieContext` into one plotter, without ever rendering. The flat layers
    are unlit, so their colours are exactly the colour bars' (only the ellipsoids are shaded).

    What does not change over a movie (the base plane, the agents' layer, the outlines, the height axis, the
    colour bars) is added once; a new frame only writes new values into the plane's and the agents' colour
    arrays and replaces the named actors that do change (meta-agent layers and lines, glyphs, caption,
    legend). Every PyVista call passes ``render=False`` and ``reset_camera=False``: the caller renders once per
    frame (``write_frame`` or ``render`` then ``screenshot``), and the camera stays the movie's.
    """

    def __init__(self, plotter, ctx: MovieContext, colour_bars: bool = True, options: SceneOptions | None = None):
        self.pl, self.ctx = plotter, ctx
        self.o = options or ctx.options  # what to draw (a second view may draw less of the same movie)
        self.colour_bars = colour_bars  # a second view of the same movie shares the first one's bars
        self.plane = None
        self.layer = None
        self._built = False
        self._dynamic: set[str] = set()

    def draw(self, frame: int) -> None:
        if not self._built:
            self._build_static(frame)
            self._built = True
        self._update(frame)

    def _build_static(self, frame: int) -> None:
        pv = import_pyvista()

        pl, ctx, o = self.pl, self.ctx, self.o
        fs = font_scale(pl)
        bar = {"vertical": True, "position_y": BAR_Y, "height": BAR_HEIGHT, "width": BAR_WIDTH,
               "title_font_size": round(13 * fs), "label_font_size": round(12 * fs), "color": "black",
               "fmt": "%g", "render": False}  # else PyVista renders the scene once per colour bar
        self.plane = ctx.plane.copy(deep=True)
        if ctx.holonomy_clim is not None and ctx.heat[frame] is not None:
            self.plane.cell_data["holonomy"] = self._plane_heat(frame)
            pl.add_mesh(self.plane, scalars="holonomy", cmap="magma", clim=ctx.holonomy_clim, render=False,
                        lighting=False, reset_camera=False, name="plane", show_scalar_bar=self.colour_bars,
                        scalar_bar_args={"title": HOLONOMY_TITLE, "position_x": RIGHT_BAR_X, **bar})
            set_round_ticks(pl, HOLONOMY_TITLE, ctx.holonomy_clim)
        else:
            self.plane = None  # not analysed: a grey plane, and the caption says why
            pl.add_mesh(ctx.plane, color=NOT_ANALYSED_GREY, render=False, reset_camera=False, name="plane",
                        lighting=False)
        if o.agents:
            if o.color_by == "agent":
                pl.add_mesh(ctx.agent_layer, scalars="rgb", rgb=True, opacity=o.opacity, render=False,
                            reset_camera=False, name="agents", lighting=False)
            else:
                self.layer = ctx.agent_layer.copy(deep=True)
                self.layer.cell_data["value"] = ctx.values[frame]
                pl.add_mesh(self.layer, scalars="value", cmap="viridis", clim=ctx.clim, opacity=o.opacity,
                            render=False, reset_camera=False, name="agents", lighting=False,
                            show_scalar_bar=self.colour_bars,
                            scalar_bar_args={"title": bar_title(o.color_by, o.component),
                                             "position_x": LEFT_BAR_X, **bar})
                set_round_ticks(pl, bar_title(o.color_by, o.component), ctx.clim)
            if o.outlines and ctx.outlines is not None:
                pl.add_mesh(ctx.outlines, scalars="rgb", rgb=True, line_width=2, render=False, reset_camera=False,
                            name="outlines")
        if o.height_axis:
            _add_height_axis(pl, pv, ctx)

    def _plane_heat(self, frame: int) -> np.ndarray:
        ctx = self.ctx
        return ctx.heat[frame][ctx.site_of_cell]

    def _update(self, frame: int) -> None:
        pv = import_pyvista()

        pl, ctx, o = self.pl, self.ctx, self.o
        if self.plane is not None and ctx.heat[frame] is not None:
            self.plane.cell_data["holonomy"][:] = self._plane_heat(frame)  # writing marks the array modified
        if self.layer is not None:
            self.layer.cell_data["value"][:] = ctx.values[frame]
        added: set[str] = set()
        if o.meta_agents:
            added |= _add_meta(pl, pv, ctx, frame, o)
        if o.agents and (o.ellipsoids or o.triads):
            added |= _add_glyphs(pl, pv, ctx, ctx.state(frame), o)
        if o.caption:
            step = int(ctx.frame_steps[frame])
            text = f"{ctx.name}   step {step}   E = {ctx.energy_at(step):.6g} nats"
            if o.agents and o.ellipsoids:
                text += f"\nellipsoids: 1-sigma radius x {ctx.ellipsoid_scale:g} sites/u"
            if (o.agents and o.ellipsoids) or "(u" in bar_title(o.color_by, o.component):
                text += f"\n{UNIT_NOTE}"  # a line of its own: the caption stays clear of the legend
            if ctx.holonomy_clim is None:
                text += "\nbase plane grey: not analysed (vfe analyze)"
            # a text actor hung from the top left corner (not a corner annotation): it has a bounding box, which
            # the layout test checks against every other text
            caption = pl.add_text(text, position=(0.006, 0.99), viewport=True, font_size=round(11 * font_scale(pl)),
                                  color="black", render=False, name="caption")
            caption.GetTextProperty().SetVerticalJustificationToTop()
            added.add("caption")
        for name in self._dynamic - added:  # last frame had it, this one does not (e.g. fewer legend lines)
            pl.remove_actor(name, reset_camera=False, render=False)
        self._dynamic = added


def add_frame(plotter, ctx: MovieContext, frame: int) -> FrameDrawer:
    """Draw one frame into ``plotter`` (a fresh one, or one cleared); returns the drawer, whose ``draw``
    draws further frames into the same plotter by updating it."""
    drawer = FrameDrawer(plotter, ctx)
    drawer.draw(frame)
    return drawer


def _add_meta(plotter, pv, ctx: MovieContext, frame: int, o: SceneOptions) -> set[str]:
    metas = ctx.meta[frame]
    names: set[str] = set()
    centres, sites, heights, colors = {}, [], [], []
    for m in sorted(metas, key=lambda m: m["scale"]):
        z = m["scale"] * ctx.gap
        union = np.unique(np.concatenate([ctx.index[ctx.rows(a)] for a in m["members"]]))
        sites.append(union)
        heights.append(np.full(union.size, z))
        colors.append(np.repeat([meta_color(m["id"])], union.size, axis=0))
        cx, cy = ctx.centroid(m["members"])
        centres[(m["scale"], m["id"])] = (cx, cy, z)
    if sites:
        layers = ctx.squares(np.concatenate(sites), np.concatenate(heights))
        layers.cell_data["rgb"] = (np.concatenate(colors) * 255).astype(np.uint8)
        plotter.add_mesh(layers, scalars="rgb", rgb=True, opacity=o.meta_opacity, render=False,
                         reset_camera=False, name="meta_layers", lighting=False)
        names.add("meta_layers")
    lines = []
    for m in metas:
        top = centres[(m["scale"], m["id"])]
        if m["scale"] == 2:
            for a in m["members"]:
                ax, ay = ctx.centroid([a])
                lines.append(((ax, ay, ctx.agent_z[a]), top))
        for child in metas:
            if child["scale"] == m["scale"] - 1 and child["parent"] == m["id"] and m["scale"] > 2:
                lines.append((centres[(child["scale"], child["id"])], top))
    if lines:
        pts = np.array([p for seg in lines for p in seg])
        plotter.add_mesh(pv.line_segments_from_points(pts), color=(0.2, 0.2, 0.2), line_width=2, render=False,
                         reset_camera=False, name="meta_lines")
        names.add("meta_lines")
    if o.legend and metas:
        names |= _add_legend(plotter, metas, o.legend_x)
    return names


def _add_legend(plotter, metas, x: float) -> set[str]:
    """One line per meta-agent, black text on its colour: id, scale and number of base agents. Text actors,
    not PyVista's legend box: adding that box renders the whole scene once more every frame."""
    entries = sorted(metas, key=lambda m: (m["scale"], m["id"]))
    names: set[str] = set()
    fs = font_scale(plotter)
    step = 0.045
    for k, m in enumerate(entries):
        y = 0.94 - step * k
        name = f"legend{k}"
        names.add(name)
        if y < 0.45:  # room for about a dozen lines above the holonomy colour bar
            plotter.add_text(f"... and {len(entries) - k} more", position=(x, y), viewport=True,
                             font_size=round(9 * fs), color="black", render=False, name=name)
            break
        actor = plotter.add_text(f" id {m['id']}, scale {m['scale']}: {len(m['members'])} agents ",
                                 position=(x, y), viewport=True, font_size=round(9 * fs), color="black",
                                 render=False, name=name)
        actor.prop.background_color = meta_color(m["id"])
        actor.prop.background_opacity = 0.6
    return names


def _add_height_axis(plotter, pv, ctx: MovieContext) -> None:
    """A vertical line just off the grid's front left corner with a label at each layer's height."""
    x0, y0 = -0.5 - 0.04 * ctx.W, -0.5
    heights = [0.0, ctx.gap] + [s * ctx.gap for s in range(2, ctx.max_scale + 1)]
    names = ["base plane", f"{ctx.n_agents} agents"] + [f"scale {s}" for s in range(2, ctx.max_scale + 1)]
    names = [f"{n}   " for n in names]  # right-justified: end clear of the axis' point markers
    pts = np.array([[x0, y0, 0.0], [x0, y0, heights[-1]]])
    plotter.add_mesh(pv.line_segments_from_points(pts), color="black", line_width=1, render=False,
                     reset_camera=False, name="height_axis")
    plotter.add_point_labels(np.array([[x0, y0, h] for h in heights]), names,
                             font_size=round(11 * font_scale(plotter)), point_size=6,
                             point_color="black", text_color="black", shape=None, render=False,
                             always_visible=True, name="height_labels", reset_camera=False,
                             justification_horizontal="right")  # labels to the left, off the plane


def _unit_sphere(pv, cache={}):  # noqa: B006 (a cache of the one sphere, built once)
    if not cache:
        sphere = pv.Sphere(radius=1.0, theta_resolution=10, phi_resolution=10).triangulate()
        cache["points"] = np.asarray(sphere.points, dtype=float)
        cache["faces"] = np.asarray(sphere.faces)
    return cache["points"], cache["faces"]


def _add_glyphs(plotter, pv, ctx: MovieContext, state, o: SceneOptions) -> set[str]:
    from scipy.spatial.transform import Rotation

    rows = _sample_rows(ctx.offset, o.samples_per_agent)
    names: set[str] = set()
    if rows.size == 0:
        return names
    agent_of = np.searchsorted(ctx.offset, rows, side="right") - 1
    x, y = ctx.xy(ctx.index[rows])
    z = ctx.agent_z[agent_of] + 0.6
    blk = _spin1_block(ctx.spins)
    K = state.sigma.shape[1]
    if o.ellipsoids and K >= 3:
        # every ellipsoid in one mesh: the unit sphere's points mapped by V diag(scale sqrt(w)) at each sample
        pts0, faces0 = _unit_sphere(pv)
        w, v = np.linalg.eigh(state.sigma[rows][:, blk, blk])
        A = v * (ctx.ellipsoid_scale * np.sqrt(np.maximum(w, 0.0)))[:, None, :]
        centres = np.stack([x, y, z], axis=1)
        pts = centres[:, None, :] + np.einsum("mij,pj->mpi", A, pts0)
        n_p = pts0.shape[0]
        faces = faces0.reshape(-1, 4)
        all_faces = np.concatenate([np.column_stack([faces[:, :1], faces[:, 1:] + k * n_p])
                                    for k in range(rows.size)]).ravel()
        plotter.add_mesh(pv.PolyData(pts.reshape(-1, 3), all_faces), color=(0.95, 0.95, 0.95), opacity=0.8,
                         smooth_shading=False, render=False, reset_camera=False, name="ellipsoids")
        names.add("ellipsoids")
    if o.triads:
        R = Rotation.from_rotvec(state.phi[rows]).as_matrix()
        starts = np.stack([x, y, z], axis=1)
        pts = np.empty((3, rows.size, 2, 3))
        pts[:, :, 0] = starts
        pts[:, :, 1] = starts + 0.6 * np.moveaxis(R, 2, 0)  # R[:, :, axis]: the rotated axis
        triads = pv.line_segments_from_points(pts.reshape(-1, 3))
        rgb = np.array(((0.9, 0.1, 0.1), (0.1, 0.7, 0.1), (0.1, 0.2, 0.9)))
        triads.cell_data["rgb"] = (np.repeat(rgb, rows.size, axis=0) * 255).astype(np.uint8)
        plotter.add_mesh(triads, scalars="rgb", rgb=True, line_width=3, render=False, reset_camera=False,
                         name="triads")
        names.add("triads")
    return names


def box_corners(bounds) -> np.ndarray:
    """The 8 corners of an axis-aligned box (x0, x1, y0, y1, z0, z1)."""
    x0, x1, y0, y1, z0, z1 = bounds
    return np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=float)


def fit_to_box(cam, bounds, aspect: float, box=SCENE_BOX, margin: float = SCENE_MARGIN) -> None:
    """Fit a perspective camera so that every corner of ``bounds`` projects inside ``box`` (fractions of the
    viewport) less ``margin``: the view angle sets the size, the window centre shifts the picture into the box.
    Exact, unlike VTK's reset_camera (a bounding sphere, then a guessed zoom that clipped the plane's corner)."""
    pos, focal = np.array(cam.position, dtype=float), np.array(cam.focal_point, dtype=float)
    forward = (focal - pos) / np.linalg.norm(focal - pos)
    up = np.array(cam.up, dtype=float)
    up = up - forward * (up @ forward)
    up /= np.linalg.norm(up)
    right = np.cross(forward, up)
    d = box_corners(bounds) - pos
    depth = d @ forward
    tx, ty = (d @ right) / depth, (d @ up) / depth  # tangents of the angles off the view axis
    bx0, bx1, by0, by1 = (2 * v - 1 for v in box)  # the box in normalised device coordinates (-1 to 1)
    half_w, half_h = (bx1 - bx0) / 2 - 2 * margin, (by1 - by0) / 2 - 2 * margin
    t = max((tx.max() - tx.min()) / 2 / (aspect * half_w), (ty.max() - ty.min()) / 2 / half_h)
    cam.view_angle = float(np.degrees(2 * np.arctan(t)))
    # VTK draws a point at NDC p as p - window_center: move the picture's middle to the box's middle
    mid_x, mid_y = (tx.max() + tx.min()) / 2 / (t * aspect), (ty.max() + ty.min()) / 2 / t
    cam.SetWindowCenter(mid_x - (bx0 + bx1) / 2, mid_y - (by0 + by1) / 2)


def set_camera(plotter, bounds, view: str, aspect: float) -> None:
    """One camera for the movie: the view direction of ``view``, fitted to ``bounds`` (never to the actors of
    one frame), and a clipping range from ``bounds`` too, so no frame's own geometry moves anything. Sets
    properties only; it does not render."""
    x0, x1, y0, y1, z0, z1 = bounds
    cx, cy, cz = (x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2
    cam = plotter.camera
    if view == "top":
        cam.parallel_projection = True
        cam.focal_point = (cx, cy, 0.0)
        cam.position = (cx, cy, z1 + 10 * max(x1 - x0, y1 - y0))
        cam.up = (0.0, 1.0, 0.0)
        # the grid fills the height, or TOP_VIEW_WIDTH of the width if that is the tighter side
        cam.parallel_scale = max((y1 - y0) / 2, (x1 - x0) / 2 / (aspect * TOP_VIEW_WIDTH))
    else:
        cam.parallel_projection = False
        direction = np.array((0.45, -0.9, 0.6)) if view == "iso" else np.array((0.0, -1.0, 0.12))
        direction /= np.linalg.norm(direction)
        cam.focal_point = (cx, cy, cz)
        cam.up = (0.0, 0.0, 1.0)
        cam.position = tuple(np.array((cx, cy, cz)) + direction)
        plotter.renderer.reset_camera(render=False, bounds=bounds)  # keep the direction, fit the union box
        fit_to_box(cam, bounds, aspect)
    margin = 0.05 * max(x1 - x0, y1 - y0, z1 - z0)
    plotter.renderer.ResetCameraClippingRange(x0 - margin, x1 + margin, y0 - margin, y1 + margin, z0 - margin,
                                              z1 + margin)
