"""Curvature and smoothness of each agent's frame field phi_i and their exact gradients (docs/model.md#curvature,
docs/model.md#smoothness).

Both terms see phi itself (never wrapped): the connection is ``A_mu = D_mu phi`` with forward differences
``D_x phi(c) = phi(c + x^) - phi(c)``, the field strength ``F = D_x phi x D_y phi``.

* ``E_curv = lambda_curv sum w(c) |F(c)|^2 / 2`` with ``w(c) = chi(c) chi(c+x^) chi(c+y^)``;
  ``dE/dD_x = w D_y x F``, ``dE/dD_y = w F x D_x``.
* ``E_smooth = lambda_smooth sum_mu chi(c) chi(c+mu^) |D_mu phi(c)|^2 / 2``.

The gradient is gathered, not scattered: row r collects the plaquettes and edges in which it takes part (as
base c, as c + x^, as c + y^), so the parallel loop over rows writes only its own row.
"""

from __future__ import annotations

from numba import njit, prange


@njit(cache=True, inline="always")
def _cross(a0, a1, a2, b0, b1, b2):
    return a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0


@njit(cache=True)
def _plaquette(phi, chi, fwd_x, fwd_y, base):
    """(w |F|^2 / 2, dE/dD_x, dE/dD_y) of the plaquette based at row ``base``; zeros if it is incomplete."""
    rx = fwd_x[base]
    ry = fwd_y[base]
    if rx < 0 or ry < 0:
        return 0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
    w = chi[base] * chi[rx] * chi[ry]
    dx0 = phi[rx, 0] - phi[base, 0]
    dx1 = phi[rx, 1] - phi[base, 1]
    dx2 = phi[rx, 2] - phi[base, 2]
    dy0 = phi[ry, 0] - phi[base, 0]
    dy1 = phi[ry, 1] - phi[base, 1]
    dy2 = phi[ry, 2] - phi[base, 2]
    f0, f1, f2 = _cross(dx0, dx1, dx2, dy0, dy1, dy2)
    gx0, gx1, gx2 = _cross(dy0, dy1, dy2, f0, f1, f2)
    gy0, gy1, gy2 = _cross(f0, f1, f2, dx0, dx1, dx2)
    return (0.5 * w * (f0 * f0 + f1 * f1 + f2 * f2), (w * gx0, w * gx1, w * gx2), (w * gy0, w * gy1, w * gy2))


@njit(cache=True, parallel=True)
def gauge_field_terms(phi, chi, fwd_x, fwd_y, bwd_x, bwd_y, lam_curv, lam_smooth, want_grad,
                      e_curv, e_smooth, g_phi):
    """Energy densities per row (plaquette and edges based at the row) and, if asked, add dE/dphi to g_phi."""
    n = phi.shape[0]
    for r in prange(n):
        g0 = 0.0
        g1 = 0.0
        g2 = 0.0
        ec = 0.0
        es = 0.0
        if lam_curv != 0.0:
            # plaquette based at r: r is c
            e, gdx, gdy = _plaquette(phi, chi, fwd_x, fwd_y, r)
            ec = lam_curv * e
            g0 -= gdx[0] + gdy[0]
            g1 -= gdx[1] + gdy[1]
            g2 -= gdx[2] + gdy[2]
            if want_grad:
                b = bwd_x[r]  # r is c + x^ of the plaquette at b
                if b >= 0:
                    _, gdx, gdy = _plaquette(phi, chi, fwd_x, fwd_y, b)
                    g0 += gdx[0]
                    g1 += gdx[1]
                    g2 += gdx[2]
                b = bwd_y[r]  # r is c + y^ of the plaquette at b
                if b >= 0:
                    _, gdx, gdy = _plaquette(phi, chi, fwd_x, fwd_y, b)
                    g0 += gdy[0]
                    g1 += gdy[1]
                    g2 += gdy[2]
            g0 *= lam_curv
            g1 *= lam_curv
            g2 *= lam_curv
        if lam_smooth != 0.0:
            for axis in range(2):
                f = fwd_x[r] if axis == 0 else fwd_y[r]
                if f >= 0:
                    w = chi[r] * chi[f]
                    d0 = phi[f, 0] - phi[r, 0]
                    d1 = phi[f, 1] - phi[r, 1]
                    d2 = phi[f, 2] - phi[r, 2]
                    es += 0.5 * lam_smooth * w * (d0 * d0 + d1 * d1 + d2 * d2)
                    g0 -= lam_smooth * w * d0
                    g1 -= lam_smooth * w * d1
                    g2 -= lam_smooth * w * d2
                b = bwd_x[r] if axis == 0 else bwd_y[r]
                if b >= 0:
                    w = chi[r] * chi[b]
                    g0 += lam_smooth * w * (phi[r, 0] - phi[b, 0])
                    g1 += lam_smooth * w * (phi[r, 1] - phi[b, 1])
                    g2 += lam_smooth * w * (phi[r, 2] - phi[b, 2])
        e_curv[r] = ec
        e_smooth[r] = es
        if want_grad:
            g_phi[r, 0] += g0
            g_phi[r, 1] += g1
            g_phi[r, 2] += g2
