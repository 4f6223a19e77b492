"""SO(3) and its representations inside kernels: rho(exp phi) and its exact differential, in closed form.

``rho(exp phi)`` for the direct sum is assembled block by block:

* spin 0: 1;
* spin 1 (Cartesian): Rodrigues, ``I + sin(t)/t Phi + (1 - cos t)/t^2 Phi^2`` with ``Phi = [phi]_x``;
* spin l >= 2: ``exp(t n.G) = D Z(t) D^T`` where ``D = rho(Rz(a) Ry(b))`` maps the z axis onto ``n`` (azimuth a,
  polar angle b of n), ``Z(t) = exp(t G_z)`` is a product of 2x2 rotations by ``m t`` and ``rho(Ry(b)) = Q Z(b)
  Q^T`` with the constant ``Q = rho(exp(-pi/2 G_x))``. Angles come from ``atan2`` of phi's own components, so
  the result is accurate to rounding for every phi, including phi near the z axis and near 0.

The differential uses that rho is a Lie-algebra homomorphism, so every representation shares SO(3)'s left
Jacobian: ``d rho(exp phi) = ((J_l(phi) dphi) . G) rho(exp phi)`` with
``J_l = I + (1 - cos t)/t^2 Phi + (t - sin t)/t^3 Phi^2``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .chunking import ROWS_PER_CHUNK
from .linalg import matmul_nt


@njit(cache=True, inline="always")
def _sinc_terms(theta):
    """(sin t / t, (1 - cos t)/t^2, (t - sin t)/t^3), stable for every t >= 0."""
    if theta < 1e-2:
        t2 = theta * theta
        a = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0 * (1.0 - t2 / 42.0))
        b = 0.5 - t2 / 24.0 * (1.0 - t2 / 30.0 * (1.0 - t2 / 56.0))
        c = 1.0 / 6.0 - t2 / 120.0 * (1.0 - t2 / 42.0 * (1.0 - t2 / 72.0))
        return a, b, c
    s = np.sin(theta)
    h = np.sin(0.5 * theta)
    return s / theta, 2.0 * h * h / (theta * theta), (theta - s) / (theta * theta * theta)


@njit(cache=True, inline="always")
def _identity_plus(phi, c1, c2, theta, out):
    """out = I + c1 Phi + c2 Phi^2 with Phi = [phi]_x (Phi^2 = phi phi^T - theta^2 I)."""
    x, y, z = phi[0], phi[1], phi[2]
    out[0, 0] = 1.0 + c2 * (x * x - theta * theta)
    out[1, 1] = 1.0 + c2 * (y * y - theta * theta)
    out[2, 2] = 1.0 + c2 * (z * z - theta * theta)
    out[0, 1] = -c1 * z + c2 * x * y
    out[1, 0] = c1 * z + c2 * x * y
    out[0, 2] = c1 * y + c2 * x * z
    out[2, 0] = -c1 * y + c2 * x * z
    out[1, 2] = -c1 * x + c2 * y * z
    out[2, 1] = c1 * x + c2 * y * z


@njit(cache=True)
def rodrigues(phi, out):
    """The l = 1 Cartesian rotation matrix exp([phi]_x) into ``out`` (3x3)."""
    theta = np.sqrt(phi[0] * phi[0] + phi[1] * phi[1] + phi[2] * phi[2])
    a, b, _ = _sinc_terms(theta)
    _identity_plus(phi, a, b, theta, out)


@njit(cache=True)
def left_jacobian(phi, out):
    """SO(3) left Jacobian J_l(phi) into ``out`` (3x3): d exp(phi) exp(phi)^-1 = (J_l dphi)^."""
    theta = np.sqrt(phi[0] * phi[0] + phi[1] * phi[1] + phi[2] * phi[2])
    _, b, c = _sinc_terms(theta)
    _identity_plus(phi, b, c, theta, out)


@njit(cache=True, inline="always")
def _z_left(m, start, dim, z_partner, z_rate, t):
    """m <- Z(t) m for the block's rows (local indices)."""
    for p in range(dim):
        c = z_rate[start + p]
        if c == 0.0:
            continue
        q = z_partner[start + p] - start
        cs = np.cos(c * t)
        sn = np.sin(c * t)
        for j in range(dim):
            mp = m[p, j]
            mq = m[q, j]
            m[p, j] = cs * mp - sn * mq
            m[q, j] = sn * mp + cs * mq


@njit(cache=True, inline="always")
def _z_right(m, start, dim, z_partner, z_rate, t):
    """m <- m Z(t) for the block's columns (local indices)."""
    for p in range(dim):
        c = z_rate[start + p]
        if c == 0.0:
            continue
        q = z_partner[start + p] - start
        cs = np.cos(c * t)
        sn = np.sin(c * t)
        for i in range(dim):
            mp = m[i, p]
            mq = m[i, q]
            m[i, p] = cs * mp + sn * mq
            m[i, q] = -sn * mp + cs * mq


@njit(cache=True)
def rho_exp(phi, block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out, scratch):
    """rho(exp(phi . G)) into ``out`` (K x K); ``scratch`` is (3, Kmax, Kmax)."""
    K = out.shape[0]
    for i in range(K):
        for j in range(K):
            out[i, j] = 0.0
    x, y, z = phi[0], phi[1], phi[2]
    theta = np.sqrt(x * x + y * y + z * z)
    for b in range(block_start.shape[0]):
        s = block_start[b]
        d = block_dim[b]
        spin = block_spin[b]
        if spin == 0:
            out[s, s] = 1.0
            continue
        blk = out[s:s + d, s:s + d]
        if spin == 1:
            rodrigues(phi, blk)
            continue
        if theta == 0.0:
            for i in range(d):
                blk[i, i] = 1.0
            continue
        azimuth = np.arctan2(y, x)
        polar = np.arctan2(np.sqrt(x * x + y * y), z)
        q = rotate_z[b, :d, :d]
        a_m = scratch[0, :d, :d]
        d_m = scratch[1, :d, :d]
        e_m = scratch[2, :d, :d]
        for i in range(d):
            for j in range(d):
                a_m[i, j] = q[i, j]
        _z_right(a_m, s, d, z_partner, z_rate, polar)  # Q Z(polar)
        matmul_nt(a_m, q, d_m)  # rho(Ry(polar)) = Q Z(polar) Q^T
        _z_left(d_m, s, d, z_partner, z_rate, azimuth)  # D = Z(azimuth) rho(Ry(polar))
        for i in range(d):
            for j in range(d):
                e_m[i, j] = d_m[i, j]
        _z_right(e_m, s, d, z_partner, z_rate, theta)  # D Z(theta)
        matmul_nt(e_m, d_m, blk)  # D Z(theta) D^T


@njit(cache=True, parallel=True)
def frames(phi, block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out):
    """rho(exp phi) for every row into ``out`` (S, K, K)."""
    kmax = rotate_z.shape[1]
    n = phi.shape[0]
    n_chunks = (n + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    for ch in prange(n_chunks):
        scratch = np.empty((3, kmax, kmax))  # one per chunk of rows, see chunking.ROWS_PER_CHUNK
        for r in range(ch * ROWS_PER_CHUNK, min(n, (ch + 1) * ROWS_PER_CHUNK)):
            rho_exp(phi[r], block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out[r], scratch)
