"""Agent support weights chi_i(c) in [0, 1] on the grid (docs/model.md#supports).

Each function returns a dense ``(H, W)`` array; :func:`agents.layout.build_layout` keeps only the sites with
``chi >= 1e-6``. Hard masks are 0/1; ``gaussian`` and masks read from grey-level images are soft.
Distances use the minimum image on a periodic grid, so a disk near an edge wraps around.
"""

from __future__ import annotations

from pathlib import Path

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


def from_file(grid: Grid, path: str | Path, threshold: float | None = None) -> np.ndarray:
    """A mask from an ``.npy`` array (values in [0, 1]) or an image (grey level / 255), resized to the grid.

    With ``threshold``, the mask is made hard: 1 where the value is >= threshold.
    """
    values = load_grid_array(path, grid)
    if values.ndim == 3:
        values = values.mean(axis=2)
    if values.min() < 0 or values.max() > 1:
        raise ValueError(f"{path}: mask values must lie in [0, 1] (found {values.min():g}..{values.max():g})")
    if threshold is not None:
        values = (values >= threshold).astype(float)
    return values


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")


def load_grid_array(path: str | Path, grid: Grid) -> np.ndarray:
    """Read an ``.npy`` array of shape (H, W) or (H, W, D), or an image scaled to [0, 1] and resized to the grid."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".npy":
        arr = np.load(path, allow_pickle=False)
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise ValueError(f"{path}: not an array of real numbers")
        if arr.ndim not in (2, 3) or arr.shape[:2] != (grid.height, grid.width):
            raise ValueError(f"{path}: array shape {arr.shape} does not start with the grid's ({grid.height}, {grid.width})")
        arr = np.asarray(arr, dtype=float)
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: contains NaN or infinite values")
        return arr
    if path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
            img = img.resize((grid.width, grid.height), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=float) / 255.0
        return arr
    raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .npy or an image)")
