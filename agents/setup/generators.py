"""Per-agent-site field generators for initial states, priors and observations.

All randomness comes from a ``numpy.random.Generator`` handed in by the caller; the builder gives each purpose
its own stream (:func:`agents.build.rng_for`), so changing one generator does not change the others' draws.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from .config import MatrixField, VectorField
from ..model.grid import Grid


def smooth_noise(grid: Grid, dim: int, length: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W, dim) Gaussian random field with correlation length ``length``, each component of unit std."""
    noise = rng.standard_normal((dim, grid.height, grid.width))
    mode = "wrap" if grid.periodic else "reflect"
    out = np.empty((grid.height, grid.width, dim))
    for k in range(dim):  # a handful of components, set-up time only
        f = scipy.ndimage.gaussian_filter(noise[k], sigma=length, mode=mode)
        std = f.std()
        out[:, :, k] = (f - f.mean()) / std if std > 0 else 0.0
    return out


def vector_field(spec: VectorField, grid: Grid, offset: np.ndarray, index: np.ndarray, dim: int,
                 rng: np.random.Generator) -> np.ndarray:
    """(S, dim) values per agent-site."""
    S = index.shape[0]
    mean = np.broadcast_to(np.asarray(spec.value, dtype=float), (dim,))
    if spec.kind == "constant":
        return np.tile(mean, (S, 1))
    n_agents = offset.shape[0] - 1
    out = np.empty((S, dim))
    if spec.kind == "random":
        if spec.shared:
            world = rng.standard_normal((grid.n_sites, dim))
            out[:] = world[index]
        elif spec.per == "agent":
            draws = rng.standard_normal((n_agents, dim))
            out[:] = np.repeat(draws, np.diff(offset), axis=0)
        else:
            out[:] = rng.standard_normal((S, dim))
    else:  # smooth
        if spec.shared:
            world = smooth_noise(grid, dim, spec.length, rng).reshape(grid.n_sites, dim)
            out[:] = world[index]
        else:
            for i in range(n_agents):
                lo, hi = offset[i], offset[i + 1]
                out[lo:hi] = smooth_noise(grid, dim, spec.length, rng).reshape(grid.n_sites, dim)[index[lo:hi]]
    return mean + spec.scale * out


def constant_matrix(value, n: int) -> np.ndarray:
    """A scalar (times I), a diagonal, or a full matrix."""
    if isinstance(value, (int, float)):
        return float(value) * np.eye(n)
    arr = np.asarray(value, dtype=float)
    return np.diag(arr) if arr.ndim == 1 else arr


def matrix_field(spec: MatrixField, offset: np.ndarray, index: np.ndarray, n: int,
                 rng: np.random.Generator, n_sites: int) -> np.ndarray:
    """(S, n, n) SPD matrices per agent-site."""
    S = index.shape[0]
    if spec.kind == "constant":
        return np.tile(constant_matrix(spec.value, n), (S, 1, 1))
    n_agents = offset.shape[0] - 1
    if spec.shared:
        count, expand = n_sites, index
    elif spec.per == "agent":
        count, expand = n_agents, np.repeat(np.arange(n_agents), np.diff(offset))
    else:
        count, expand = S, np.arange(S)
    a = rng.standard_normal((count, n, n))
    a = (a + a.transpose(0, 2, 1)) / np.sqrt(2.0)
    w, v = np.linalg.eigh(a)  # batched: expm of a symmetric matrix through its eigenbasis
    mats = spec.scale * np.einsum("sij,sj,skj->sik", v, np.exp(spec.spread * w), v)
    mats = 0.5 * (mats + mats.transpose(0, 2, 1))
    return np.ascontiguousarray(mats[expand])
