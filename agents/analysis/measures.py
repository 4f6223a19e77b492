"""Measurements on a state that are not part of the action (more arrive with meta-agents and holonomy)."""

from __future__ import annotations

import numpy as np

from ..kernels.lie import frames
from ..model.layout import Layout
from ..model.state import State


def frame_matrices(layout: Layout, state: State) -> np.ndarray:
    """R_i(c) = rho(exp phi_i(c)) for every agent-site, (S, K, K)."""
    out = np.empty((layout.n_rows, layout.K, layout.K))
    frames(state.phi, *layout.fiber.kernel_args, out)
    return out


def transported_mean_spread(layout: Layout, state: State) -> float:
    """Disagreement of transported means over overlaps.

    The chi_i chi_j-weighted mean over sites and ordered pairs i != j present at a site of
    ``|mu_i - Omega_ij mu_j|^2`` (= |R_i^T mu_i - R_j^T mu_j|^2). 0 when all overlapping agents agree up to
    their frames; NaN when no two agents overlap.
    """
    R = frame_matrices(layout, state)
    common = np.einsum("sji,sj->si", R, state.mu)  # R^T mu: every agent's mean in one common frame
    # per site: sum over ordered pairs of w_i w_j |a_i - a_j|^2 = 2 W sum_i w_i |a_i - mean|^2, W = sum_i w_i;
    # written with deviations from the weighted mean so it is never negative by rounding
    site = layout.index
    n = layout.grid.n_sites
    w = layout.chi
    W = np.bincount(site, w, n)
    W2 = np.bincount(site, w * w, n)
    first = np.stack([np.bincount(site, w * common[:, k], n) for k in range(layout.K)], axis=1)
    mean = first / np.where(W > 0, W, 1.0)[:, None]
    dev = common - mean[site]
    num = 2.0 * W * np.bincount(site, w * np.sum(dev * dev, axis=1), n)
    den = W * W - W2  # sum over ordered pairs i != j of w_i w_j
    mask = den > 1e-300
    if not mask.any():
        return float("nan")
    return float(num[mask].sum() / den[mask].sum())
