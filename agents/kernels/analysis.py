"""Kernels of the measurements: transported divergences for consensus, and plaquette holonomy."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .gaussian import kl_common, to_common_frame
from .lie import rho_exp, rodrigues


@njit(cache=True, parallel=True)
def site_pair_kl(site_ptr, site_rows, occupied, pair_ptr, chunks, max_per_site, mu, sigma, phi,
                 block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out, ok_out):
    """KL(q_a || Omega_ab q_b) for every ordered pair of rows at every occupied site, into the pair slots
    (``pair_ptr[k] + a * n + b``, as the energy's). ``ok_out[row]`` is False where Sigma is not SPD."""
    K = mu.shape[1]
    kmax = rotate_z.shape[1]
    m = max_per_site
    for ch in prange(chunks.shape[0] - 1):
        R = np.empty((K, K))
        mt = np.empty((m, K))
        St = np.empty((m, K, K))
        Pt = np.empty((m, K, K))
        ld = np.empty(m)
        tmp = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        dvec = np.empty(K)
        for k in range(chunks[ch], chunks[ch + 1]):
            site = occupied[k]
            p0 = site_ptr[site]
            n = site_ptr[site + 1] - p0
            q0 = pair_ptr[k]
            if n < 2:
                out[q0] = 0.0
                continue
            for a in range(n):
                r = site_rows[p0 + a]
                rho_exp(phi[r], block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, R, rsc)
                ok, ld[a] = to_common_frame(R, mu[r], sigma[r], mt[a], St[a], Pt[a], tmp, low)
                ok_out[r] = ok
            for a in range(n):
                for b in range(n):
                    if a == b:
                        out[q0 + a * n + b] = 0.0
                    else:
                        out[q0 + a * n + b] = kl_common(mt[a], St[a], ld[a], mt[b], Pt[b], ld[b], dvec)


@njit(cache=True, inline="always")
def _rotation_angle_axis(w, axis):
    """Angle in [0, pi] of a rotation matrix (atan2 form: accurate near 0 and near pi) and its unit axis."""
    vx = 0.5 * (w[2, 1] - w[1, 2])
    vy = 0.5 * (w[0, 2] - w[2, 0])
    vz = 0.5 * (w[1, 0] - w[0, 1])
    s = np.sqrt(vx * vx + vy * vy + vz * vz)
    c = 0.5 * (w[0, 0] + w[1, 1] + w[2, 2] - 1.0)
    angle = np.arctan2(s, c)
    if s > 0.0:
        axis[0] = vx / s
        axis[1] = vy / s
        axis[2] = vz / s
    else:
        axis[0] = 0.0
        axis[1] = 0.0
        axis[2] = 0.0
    return angle


@njit(cache=True)
def _link(phi, a, b, out, scratch):
    """U(a -> b) = exp(-[phi(b) - phi(a)]_x), the l = 1 link of one agent along a grid edge."""
    for i in range(3):
        scratch[i] = -(phi[b, i] - phi[a, i])
    rodrigues(scratch, out)


@njit(cache=True, parallel=True)
def plaquette_holonomy(phi, fwd_x, fwd_y, angle, axis):
    """Wilson-loop angle of every plaquette based at a row (NaN where a corner is missing).

    ``W = U(c->c+x) U(c+x->c+x+y) U(c+y->c+x+y)^T U(c->c+y)^T`` (SPEC section 6), l = 1 block.
    """
    n = phi.shape[0]
    for r in prange(n):
        ux = np.empty((3, 3))
        uy2 = np.empty((3, 3))
        ux2 = np.empty((3, 3))
        uy = np.empty((3, 3))
        t1 = np.empty((3, 3))
        t2 = np.empty((3, 3))
        v = np.empty(3)
        ax = np.empty(3)
        rx = fwd_x[r]
        ry = fwd_y[r]
        rxy = fwd_y[rx] if rx >= 0 else -1
        if rx < 0 or ry < 0 or rxy < 0 or fwd_x[ry] != rxy:
            angle[r] = np.nan
            for i in range(3):
                axis[r, i] = np.nan
            continue
        _link(phi, r, rx, ux, v)
        _link(phi, rx, rxy, uy2, v)
        _link(phi, ry, rxy, ux2, v)
        _link(phi, r, ry, uy, v)
        # t1 = ux uy2 ; t2 = t1 ux2^T ; W = t2 uy^T
        for i in range(3):
            for j in range(3):
                t1[i, j] = ux[i, 0] * uy2[0, j] + ux[i, 1] * uy2[1, j] + ux[i, 2] * uy2[2, j]
        for i in range(3):
            for j in range(3):
                t2[i, j] = t1[i, 0] * ux2[j, 0] + t1[i, 1] * ux2[j, 1] + t1[i, 2] * ux2[j, 2]
        for i in range(3):
            for j in range(3):
                t1[i, j] = t2[i, 0] * uy[j, 0] + t2[i, 1] * uy[j, 1] + t2[i, 2] * uy[j, 2]
        angle[r] = _rotation_angle_axis(t1, ax)
        for i in range(3):
            axis[r, i] = ax[i]


@njit(cache=True)
def path_holonomy(phi, rows, kinds, out):
    """Ordered product of transports along a path of rows (l = 1 block): later steps multiply on the left.

    ``kinds[k]`` says how step k goes from ``rows[k]`` to ``rows[k+1]``: 0 = a grid link of one agent
    (``U = exp(-[phi(b) - phi(a)]_x)``), 1 = a frame switch at one site (``Omega = R_b R_a^T``).
    """
    total = np.eye(3)
    step = np.empty((3, 3))
    ra = np.empty((3, 3))
    rb = np.empty((3, 3))
    v = np.empty(3)
    tmp = np.empty((3, 3))
    for k in range(kinds.shape[0]):
        a = rows[k]
        b = rows[k + 1]
        if kinds[k] == 0:
            _link(phi, a, b, step, v)
        else:
            rodrigues(phi[a], ra)
            rodrigues(phi[b], rb)
            for i in range(3):
                for j in range(3):
                    step[i, j] = rb[i, 0] * ra[j, 0] + rb[i, 1] * ra[j, 1] + rb[i, 2] * ra[j, 2]
        for i in range(3):
            for j in range(3):
                tmp[i, j] = step[i, 0] * total[0, j] + step[i, 1] * total[1, j] + step[i, 2] * total[2, j]
        for i in range(3):
            for j in range(3):
                total[i, j] = tmp[i, j]
    for i in range(3):
        for j in range(3):
            out[i, j] = total[i, j]


@njit(cache=True)
def rotation_angle_axis(w, axis):
    return _rotation_angle_axis(w, axis)
