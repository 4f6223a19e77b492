"""The 3D scene of one frame: base grid, agents, meta-agents, covariance ellipsoids, frame triads, holonomy.

Geometry: site (y, x) sits at (x, H-1-y) so a view from above reads like an image of the grid. Scale-s entities
live at height ``(s) * layer_gap`` above the base plane (agents at scale 1, meta-agents above them).

What a researcher sees:

* the base plane, coloured by the holonomy angle (the largest plaquette angle over agents at each site) when
  the run has been analysed and some angle exceeds 1e-9, grey otherwise;
* every agent's support as a translucent layer coloured by ``color_by`` (see :data:`COLOR_BY`), stacked with
  a small offset per agent so overlaps stay visible;
* every meta-agent as a layer over the union of its members' supports at its scale's height, in one colour
  per id that stays the same through an animation, with lines from its members' centres to its own;
* covariance ellipsoids (the first spin-1 block of Sigma, or the first three components) and frame triads
  (the l = 1 rotation of phi: red, green, blue = rotated x, y, z) at sampled sites;
* a caption with the run's name, step and total energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOR_BY = ("agent", "mu", "|mu|", "trace_sigma", "kl_prior", "free_energy")
META_COLORS = [
    (0.90, 0.10, 0.29), (0.24, 0.71, 0.29), (1.00, 0.88, 0.10), (0.00, 0.51, 0.78), (0.96, 0.51, 0.19),
    (0.57, 0.12, 0.71), (0.27, 0.94, 0.94), (0.94, 0.20, 0.90), (0.82, 0.96, 0.24), (0.98, 0.75, 0.83),
    (0.00, 0.50, 0.50), (0.86, 0.75, 1.00), (0.67, 0.43, 0.16), (1.00, 0.98, 0.78), (0.50, 0.00, 0.00),
]
AGENT_CMAP = "tab20"
BAR_TITLES = {"mu": "mu component", "|mu|": "norm of mu", "trace_sigma": "trace Sigma", "kl_prior": "KL to prior",
              "free_energy": "energy density"}


def meta_color(meta_id: int) -> tuple[float, float, float]:
    """The colour of a meta-agent id: fixed for the whole animation (and across runs)."""
    return META_COLORS[meta_id % len(META_COLORS)]


def agent_color(agent: int) -> tuple[float, float, float]:
    import matplotlib

    return tuple(matplotlib.colormaps[AGENT_CMAP](agent % 20)[:3])


@dataclass
class SceneOptions:
    color_by: str = "|mu|"
    component: int = 0  # for color_by == "mu"
    opacity: float = 0.55
    meta_opacity: float = 0.35
    ellipsoids: bool = True
    triads: bool = True
    samples_per_agent: int = 4
    caption: bool = True
    view: str = "perspective"  # or "top" (orthographic, from above: used by tests)
    clim: tuple[float, float] | None = None  # shared colour range (an animation fixes it once)

    def __post_init__(self):
        base = self.color_by.split(":")[0]
        if base not in COLOR_BY:
            raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (mu:K for a component), "
                             f"got {self.color_by!r}")
        if base == "mu" and ":" in self.color_by:
            self.component = int(self.color_by.split(":")[1])
            self.color_by = "mu"


class FrameData:
    """Everything a frame's scene needs, read once from the trajectory (plain arrays)."""

    def __init__(self, traj, frame: int, options: SceneOptions, layout=None, energy_params=None):
        self.name = traj.config.get("name", "")
        self.H, self.W = traj.grid.height, traj.grid.width
        self.offset, self.index, self.chi = traj.offset, traj.index, traj.chi
        self.n_agents = traj.n_agents
        self.state = traj.state(frame)
        self.step = self.state.step
        steps, total = traj.energy("total")
        k = np.searchsorted(steps, self.step)
        self.energy = float(total[k]) if k < steps.size and steps[k] == self.step else float("nan")
        self.meta = traj.meta_agents(frame)
        self.angles = traj.plaquette_angles(frame)
        self.spins = traj.spins
        self.values = self._values(traj, options, layout, energy_params)

    def _values(self, traj, options: SceneOptions, layout, energy_params) -> np.ndarray:
        st = self.state
        c = options.color_by
        if c == "agent":
            return np.repeat(np.arange(self.n_agents), np.diff(self.offset)).astype(float)
        if c == "mu":
            return st.mu[:, options.component]
        if c == "|mu|":
            return np.linalg.norm(st.mu, axis=1)
        if c == "trace_sigma":
            return np.trace(st.sigma, axis1=1, axis2=2)
        from ..agents.setup.config import make_config
        from ..agents.model.energy import evaluate

        layout = layout if layout is not None else traj.layout()
        if c == "kl_prior":
            prec, m = layout.prior_precision, layout.prior_mu
            d = m - st.mu
            K = st.mu.shape[1]
            _, ld_q = np.linalg.slogdet(st.sigma)
            return 0.5 * (np.einsum("sij,sji->s", prec, st.sigma) + np.einsum("si,sij,sj->s", d, prec, d) - K
                          + layout.prior_logdet - ld_q)
        params = energy_params if energy_params is not None else make_config(traj.config).energy
        ev = evaluate(layout, params, st, want_grad=False)
        return sum(ev.densities.values())  # free-energy density per agent-site

    def rows(self, agent: int) -> slice:
        return slice(int(self.offset[agent]), int(self.offset[agent + 1]))

    def xy(self, sites: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y, x = np.divmod(sites, self.W)
        return x.astype(float), (self.H - 1 - y).astype(float)

    def centroid(self, agents: np.ndarray) -> tuple[float, float]:
        sites = np.concatenate([self.index[self.rows(a)] for a in agents])
        x, y = self.xy(sites)
        return float(x.mean()), float(y.mean())


def layer_gap(H: int, W: int) -> float:
    return 0.35 * max(H, W)


def _cells_mesh(pv, H, W, sites: np.ndarray, z: float, values: np.ndarray | None = None):
    """A flat mesh of unit squares over ``sites`` at height z, with cell data ``value``."""
    grid = pv.ImageData(dimensions=(W + 1, H + 1, 1), spacing=(1.0, 1.0, 1.0), origin=(-0.5, -0.5, z))
    y, x = np.divmod(sites, W)
    cell_ids = (H - 1 - y) * W + x  # ImageData cells run x fastest, then y (flipped rows)
    mesh = grid.extract_cells(cell_ids)
    if values is not None:
        full = np.full(H * W, np.nan)
        full[cell_ids] = values
        mesh.cell_data["value"] = full[mesh.cell_data["vtkOriginalCellIds"]]
    return mesh


def _add(plotter, mesh, **kw):
    return plotter.add_mesh(mesh, render=False, **kw)


def add_frame(plotter, data: FrameData, options: SceneOptions) -> None:
    """Add one frame's actors to ``plotter`` (which the caller clears between frames).

    PyVista renders the whole scene after many single changes (adding an actor, a scalar bar, moving the
    camera); building a frame would cost a dozen software renders. Rendering is suppressed while the frame is
    built, so the screenshot is the only render.
    """
    suppressed = plotter._suppress_rendering
    plotter._suppress_rendering = True
    try:
        _build(plotter, data, options)
    finally:
        plotter._suppress_rendering = suppressed


def _build(plotter, data: FrameData, options: SceneOptions) -> None:
    import pyvista as pv

    H, W = data.H, data.W
    gap = layer_gap(H, W)
    # base plane, holonomy heat map
    plane_sites = np.arange(H * W)
    heat = None
    if data.angles is not None and np.isfinite(data.angles).any():
        heat = np.zeros(H * W)
        finite = np.isfinite(data.angles)
        np.maximum.at(heat, data.index[finite], data.angles[finite])
        if heat.max() < 1e-9:
            heat = None  # a flat connection: a neutral plane, not a colour scale of rounding errors
    if heat is not None:
        _add(plotter, _cells_mesh(pv, H, W, plane_sites, 0.0, heat), scalars="value", cmap="magma",
                         clim=(0.0, max(float(heat.max()), 1e-6)), show_scalar_bar=True,
                         scalar_bar_args={"title": "holonomy angle", "vertical": True, "position_x": 0.9,
                                          "position_y": 0.05, "height": 0.3, "width": 0.05})
    else:
        _add(plotter, _cells_mesh(pv, H, W, plane_sites, 0.0), color=(0.85, 0.85, 0.85))
    # agents at scale 1
    vals = data.values
    if options.color_by == "agent":
        for i in range(data.n_agents):
            r = data.rows(i)
            _add(plotter, _cells_mesh(pv, H, W, data.index[r], gap + 0.01 * gap * i), color=agent_color(i),
                             opacity=options.opacity)
    else:
        clim = options.clim or (float(np.nanmin(vals)), float(np.nanmax(vals)) + 1e-12)
        for i in range(data.n_agents):
            r = data.rows(i)
            _add(plotter, _cells_mesh(pv, H, W, data.index[r], gap + 0.01 * gap * i, vals[r]),
                             scalars="value", cmap="viridis", clim=clim, opacity=options.opacity,
                             show_scalar_bar=(i == 0),
                             scalar_bar_args={"title": BAR_TITLES.get(options.color_by, options.color_by),
                                              "vertical": True, "position_x": 0.04,
                                              "position_y": 0.05, "height": 0.3, "width": 0.05})
    # meta-agents above their members
    centres = {}
    for m in sorted(data.meta, key=lambda m: m["scale"]):
        z = m["scale"] * gap
        sites = np.unique(np.concatenate([data.index[data.rows(a)] for a in m["members"]]))
        _add(plotter, _cells_mesh(pv, H, W, sites, z), color=meta_color(m["id"]), opacity=options.meta_opacity)
        cx, cy = data.centroid(m["members"])
        centres[(m["scale"], m["id"])] = (cx, cy, z)
    lines = []
    for m in data.meta:
        top = centres[(m["scale"], m["id"])]
        if m["scale"] == 2:
            for a in m["members"]:
                ax, ay = data.centroid(np.array([a]))
                lines.append(((ax, ay, gap), top))
        for child in data.meta:
            if child["scale"] == m["scale"] - 1 and child["parent"] == m["id"] and m["scale"] > 2:
                lines.append((centres[(child["scale"], child["id"])], top))
    if lines:
        pts = np.array([p for seg in lines for p in seg])
        _add(plotter, pv.line_segments_from_points(pts), color=(0.2, 0.2, 0.2), line_width=2)
    # ellipsoids and triads at sampled sites
    if options.ellipsoids or options.triads:
        _add_glyphs(plotter, pv, data, options, gap)
    if options.caption:
        plotter.add_text(f"{data.name}   step {data.step}   E = {data.energy:.6g}", position="upper_left",
                         font_size=10, color="black", render=False)


def _sample_rows(data: FrameData, per_agent: int) -> np.ndarray:
    out = []
    for i in range(data.n_agents):
        r = np.arange(data.offset[i], data.offset[i + 1])
        if r.size:
            out.append(r[np.linspace(0, r.size - 1, min(per_agent, r.size)).astype(int)])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


_SPHERE = {}


def _unit_sphere(pv):
    """Points and triangle faces of a coarse unit sphere (built once)."""
    if not _SPHERE:
        sphere = pv.Sphere(radius=1.0, theta_resolution=10, phi_resolution=10).triangulate()
        _SPHERE["points"] = np.asarray(sphere.points, dtype=float)
        _SPHERE["faces"] = np.asarray(sphere.faces)
    return _SPHERE["points"], _SPHERE["faces"]


def _spin1_block(spins) -> slice:
    start = 0
    for s in spins:
        if s == 1:
            return slice(start, start + 3)
        start += 2 * s + 1
    return slice(0, 3)


def _add_glyphs(plotter, pv, data: FrameData, options: SceneOptions, gap: float) -> None:
    from scipy.spatial.transform import Rotation

    rows = _sample_rows(data, options.samples_per_agent)
    if rows.size == 0:
        return
    agent_of = np.searchsorted(data.offset, rows, side="right") - 1
    x, y = data.xy(data.index[rows])
    z = gap + 0.01 * gap * agent_of + 0.02 * gap
    blk = _spin1_block(data.spins)
    K = data.state.sigma.shape[1]
    size = 0.35
    if options.ellipsoids and K >= 3:
        # every ellipsoid in one mesh: the unit sphere's points mapped by V diag(scale) at each sample
        pts0, faces0 = _unit_sphere(pv)
        cov = data.state.sigma[rows][:, blk, blk]
        w, v = np.linalg.eigh(cov)
        w = np.maximum(w, 0.0)
        scale = size * np.sqrt(w) / np.maximum(np.sqrt(w.max(axis=1, keepdims=True)), 1e-12)
        A = v * scale[:, None, :]
        centres = np.stack([x, y, z], axis=1)
        pts = centres[:, None, :] + np.einsum("mij,pj->mpi", A, pts0)
        n_p = pts0.shape[0]
        faces = faces0.reshape(-1, 4).copy()
        all_faces = np.concatenate([np.column_stack([faces[:, :1], faces[:, 1:] + k * n_p])
                                    for k in range(rows.size)]).ravel()
        _add(plotter, pv.PolyData(pts.reshape(-1, 3), all_faces), color=(0.95, 0.95, 0.95), opacity=0.8,
             smooth_shading=False)
    if options.triads:
        R = Rotation.from_rotvec(data.state.phi[rows]).as_matrix()
        for axis, color in enumerate(((0.9, 0.1, 0.1), (0.1, 0.7, 0.1), (0.1, 0.2, 0.9))):
            starts = np.stack([x, y, z], axis=1)
            ends = starts + 0.6 * R[:, :, axis]
            pts = np.empty((2 * rows.size, 3))
            pts[0::2], pts[1::2] = starts, ends
            _add(plotter, pv.line_segments_from_points(pts), color=color, line_width=3)


def set_camera(plotter, H: int, W: int, view: str, n_scales: int = 2) -> None:
    gap = layer_gap(H, W)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    if view == "top":
        plotter.enable_parallel_projection()
        plotter.camera.position = (cx, cy, 10 * max(H, W) + n_scales * gap)
        plotter.camera.focal_point = (cx, cy, 0.0)
        plotter.camera.up = (0.0, 1.0, 0.0)
        plotter.camera.parallel_scale = H / 2 + 0.5
    else:
        zc = n_scales * gap / 2
        d = 1.6 * max(H, W)
        plotter.camera.position = (cx + 0.7 * d, cy - 1.4 * d, zc + 0.9 * d)
        plotter.camera.focal_point = (cx, cy, zc)
        plotter.camera.up = (0.0, 0.0, 1.0)
        plotter.reset_camera(render=False)  # keep the direction, fit every actor in the view
        plotter.camera.zoom(1.15)
