"""Holonomy (docs/model.md#holonomy): plaquette angles per agent-site and composite loops across agents.

A loop is a closed path of (agent, site) steps: a grid step inside one agent's support multiplies by its link
``U_i(c -> c') = rho(exp(-(phi_i(c') - phi_i(c))))``; a switch from agent a to agent b at one site multiplies
by ``Omega_ab(c) = R_a(c) R_b(c)^T``. The holonomy is the ordered product, left to right in path order as in
the plaquette (Wilson's convention), so it telescopes to the identity on flat frame fields
(docs/model.md#loops); it is reported as the rotation angle in [0, pi] and unit axis of its l = 1 block.

Automatic loops: for every pair (and triple) of agents whose common overlap contains a square of side >= 2,
the boundary of the largest such square around the overlap's centre, walked counter-clockwise and split
between the agents (pair: agent i on the first two sides, agent j on the other two; triple: i, j, k in turn),
with frame switches at the corners where the agent changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.holonomy import path_holonomy, plaquette_holonomy, rotation_angle_axis
from ..model.layout import Layout
from ..model.state import State


def plaquette_angles(layout: Layout, state: State) -> tuple[np.ndarray, np.ndarray]:
    """(angle (S,), axis (S, 3)) of the plaquette based at every agent-site; NaN where a corner is missing."""
    angle = np.empty(layout.n_rows)
    axis = np.empty((layout.n_rows, 3))
    plaquette_holonomy(state.phi, layout.fwd_x, layout.fwd_y, angle, axis)
    return angle, axis


@dataclass(frozen=True)
class Loop:
    """A closed path: ``rows[k] -> rows[k+1]`` by a grid link (kind 0) or a frame switch (kind 1)."""

    name: str
    rows: np.ndarray
    kinds: np.ndarray
    agents: tuple[int, ...]


def _row(layout: Layout, agent: int, y: int, x: int) -> int:
    site = y * layout.grid.width + x
    rows = layout.index[layout.offset[agent]:layout.offset[agent + 1]]
    k = np.searchsorted(rows, site)
    if k >= rows.size or rows[k] != site:
        raise ValueError(f"site (y={y}, x={x}) is outside agent {agent}'s support")
    return int(layout.offset[agent] + k)


def _lattice_path(layout: Layout, y0, x0, y1, x1) -> list[tuple[int, int]]:
    """Sites from (y0, x0) to (y1, x1): along x first, then y; the shorter way round on a periodic grid."""
    H, W = layout.grid.height, layout.grid.width

    def steps(a, b, n):
        d = b - a
        if layout.grid.periodic and abs(d) > n / 2:
            d = d - np.sign(d) * n
        return [(a + np.sign(d) * k) % n for k in range(1, abs(d) + 1)]

    out = [(y0, x) for x in steps(x0, x1, W)]
    out += [(y, x1) for y in steps(y0, y1, H)]
    return out


def loop_from_waypoints(layout: Layout, name: str, waypoints: list[tuple[int, int, int]]) -> Loop:
    """Waypoints (agent, y, x); lattice paths join consecutive waypoints of one agent, a switch joins two
    agents at one site. The loop is closed back to the first waypoint."""
    pts = list(waypoints)
    if pts[-1] != pts[0]:
        pts.append(pts[0])
    rows = [_row(layout, *pts[0])]
    kinds = []
    for (a0, y0, x0), (a1, y1, x1) in zip(pts[:-1], pts[1:]):
        if a0 != a1:
            if (y0, x0) != (y1, x1):
                raise ValueError(f"loop {name}: agents {a0} -> {a1} may only switch at one site")
            rows.append(_row(layout, a1, y1, x1))
            kinds.append(1)
            continue
        for y, x in _lattice_path(layout, y0, x0, y1, x1):
            rows.append(_row(layout, a0, y, x))
            kinds.append(0)
    agents = tuple(sorted({p[0] for p in pts}))
    return Loop(name, np.array(rows, dtype=np.int64), np.array(kinds, dtype=np.int64), agents)


def loop_holonomy(layout: Layout, state: State, loop: Loop) -> tuple[float, np.ndarray, np.ndarray]:
    """(angle, axis, 3x3 holonomy) of a loop."""
    w = np.empty((3, 3))
    path_holonomy(state.phi, loop.rows, loop.kinds, w)
    axis = np.empty(3)
    return float(rotation_angle_axis(w, axis)), axis, w


def _largest_square(mask: np.ndarray) -> tuple[int, int, int] | None:
    """(y0, x0, side) of the largest square whose boundary lies in ``mask``, nearest the mask's centre."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    cy, cx = ys.mean(), xs.mean()
    H, W = mask.shape
    for side in range(min(H, W) - 1, 1, -1):
        best = None
        for y0 in range(max(0, int(cy) - side), min(H - side, int(cy) + 1)):
            for x0 in range(max(0, int(cx) - side), min(W - side, int(cx) + 1)):
                if (mask[y0, x0:x0 + side + 1].all() and mask[y0 + side, x0:x0 + side + 1].all()
                        and mask[y0:y0 + side + 1, x0].all() and mask[y0:y0 + side + 1, x0 + side].all()):
                    d = (y0 + side / 2 - cy) ** 2 + (x0 + side / 2 - cx) ** 2
                    if best is None or d < best[0]:
                        best = (d, y0, x0)
        if best is not None:
            return best[1], best[2], side
    return None


def automatic_loops(layout: Layout, max_loops: int = 64) -> list[Loop]:
    """Loops around the common overlap of every pair and triple of agents (see the module docstring)."""
    masks = [np.isfinite(layout.to_grid(layout.chi, i)) for i in range(layout.n_agents)]
    pairs = layout.overlap_pairs()
    groups = [(int(i), int(j)) for i, j, n in pairs if n >= 9]
    partners = {}
    for i, j in groups:
        partners.setdefault(i, set()).add(j)
    for i, j in list(groups):
        for k in sorted(partners.get(j, set())):
            if k in partners.get(i, set()):
                groups.append((i, j, k))
    loops = []
    for group in groups:
        if len(loops) >= max_loops:
            break
        mask = np.logical_and.reduce([masks[a] for a in group])
        sq = _largest_square(mask)
        if sq is None:
            continue
        y0, x0, s = sq
        corners = [(y0, x0), (y0, x0 + s), (y0 + s, x0 + s), (y0 + s, x0)]
        owners = [group[0], group[0], group[1], group[1]] if len(group) == 2 else [group[0], group[1], group[1], group[2]]
        waypoints = []
        for (y, x), (y_next, x_next), agent, next_agent in zip(corners, corners[1:] + corners[:1], owners,
                                                               owners[1:] + owners[:1]):
            waypoints.append((agent, y, x))
            waypoints += [(agent, yy, xx) for yy, xx in _side(y, x, y_next, x_next)]
            if next_agent != agent:
                waypoints.append((next_agent, y_next, x_next))
        name = "overlap_" + "_".join(str(a) for a in group)
        loops.append(loop_from_waypoints(layout, name, _dedupe(waypoints)))
    return loops


def _side(y0, x0, y1, x1):
    """Sites strictly after (y0, x0) up to (y1, x1) along one straight side."""
    dy, dx = np.sign(y1 - y0), np.sign(x1 - x0)
    n = max(abs(y1 - y0), abs(x1 - x0))
    return [(y0 + dy * k, x0 + dx * k) for k in range(1, n + 1)]


def _dedupe(points):
    out = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out
