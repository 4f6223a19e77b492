"""Agent support weights chi_i(c) in [0, 1] on the grid (docs/model.md#supports): the array maths only.

Each function returns a dense ``(H, W)`` array; :func:`agents.layout.build_layout` keeps only the sites with
``chi >= 1e-6``. Hard shapes are 0/1; ``gaussian`` is soft. Distances use the minimum image on a periodic grid,
so a disk near an edge wraps around. The scenario's shapes (:mod:`agents.setup.shapes`) call these; masks are
arrays read by :mod:`agents.setup.inputs`, so nothing here reads a file or knows the config.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid


def disk(grid: Grid, center, radius: float) -> np.ndarray:
    dy, dx = grid.displacement(*center)
    return (dy * dy + dx * dx <= radius * radius).astype(float)


def ellipse(grid: Grid, center, radii, angle: float = 0.0) -> np.ndarray:
    """Ellipse with semi-axes ``radii = (ry, rx)`` rotated by ``angle`` degrees (counter-clockwise)."""
    dy, dx = grid.displacement(*center)
    t = np.deg2rad(angle)
    u = np.cos(t) * dx + np.sin(t) * dy
    v = -np.sin(t) * dx + np.cos(t) * dy
    ry, rx = radii
    return ((u / rx) ** 2 + (v / ry) ** 2 <= 1.0).astype(float)


def rectangle(grid: Grid, origin, size) -> np.ndarray:
    """Sites y0 <= y < y0 + h, x0 <= x < x0 + w (wrapping on a periodic grid, clipped on an open one)."""
    y0, x0 = (int(v) for v in origin)
    h, w = (int(v) for v in size)
    yy, xx = grid.coordinates()
    if grid.periodic:
        iny = (yy - y0) % grid.height < h
        inx = (xx - x0) % grid.width < w
    else:
        iny = (yy >= y0) & (yy < y0 + h)
        inx = (xx >= x0) & (xx < x0 + w)
    return (iny & inx).astype(float)


def whole(grid: Grid) -> np.ndarray:
    return np.ones((grid.height, grid.width))


def gaussian(grid: Grid, center, width: float) -> np.ndarray:
    """Soft bump exp(-d^2 / (2 width^2)), 1 at the centre."""
    dy, dx = grid.displacement(*center)
    return np.exp(-(dy * dy + dx * dx) / (2.0 * width * width))


def blob(grid: Grid, center, radius: float, roughness: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded star-shaped random blob: a disk whose radius varies with angle by a few random harmonics.

    ``r(t) = radius * (1 + roughness * sum_k a_k cos(k t + p_k))`` with k = 2..5, ``a_k`` normalised so the sum
    stays within [-1, 1]; a roughness below 1 keeps the blob connected and containing its centre.
    """
    dy, dx = grid.displacement(*center)
    ks = np.arange(2, 6)
    amp = rng.uniform(0.2, 1.0, size=ks.size)
    amp /= amp.sum()
    phase = rng.uniform(0, 2 * np.pi, size=ks.size)
    t = np.arctan2(dy, dx)
    r = radius * (1.0 + roughness * np.sum(amp[:, None, None] * np.cos(ks[:, None, None] * t + phase[:, None, None]), axis=0))
    return (np.hypot(dy, dx) <= r).astype(float)
