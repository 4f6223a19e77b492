"""The Gaussian part of one descent step, per agent-site, keeping every Sigma symmetric positive definite.

* Plain gradient: ``Sigma - t lr G``. Where that leaves the SPD cone (or comes within ``SPD_MARGIN`` of its
  edge, relative to Sigma) the step is replaced by the second-order retraction of the affine-invariant metric
  along the same direction, ``Sigma + V + V Sigma^-1 V / 2`` with ``V = -t lr G``: it agrees with the plain
  step to first order, is >= Sigma/2 whatever the step (so it never lands near the cone's edge) and grows
  only quadratically along expanding directions (an exponential map would grow exponentially there). Such
  agent-sites are counted. Eigenvalues are never clipped.
* Natural gradient (Fisher-Rao): ``mu - t lr Sigma g`` and ``Sigma <- L expm(-2 t lr L^T G L) L^T``, the
  exponential map of the affine-invariant metric along ``-2 lr Sigma G Sigma``.

Each row also returns the directional derivative of E along the step per unit ``t`` (the Armijo slope).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .chunking import ROWS_PER_CHUNK
from .linalg import cholesky, matmul, matmul_nt, matmul_tn, symmetric_expm, symmetrize
from .information import kl_cholesky, kl_factors
from .noise import normal

SPD_MARGIN = 1e-6  # a plain Sigma step may shrink no eigen-direction below this fraction (else: retract)


@njit(cache=True)
def _lower_solve(low, g, out):
    """out = L^-1 g for lower-triangular L (forward substitution, column by column)."""
    n = low.shape[0]
    for j in range(n):
        for i in range(n):
            s = g[i, j]
            for k in range(i):
                s -= low[i, k] * out[k, j]
            out[i, j] = s / low[i, i]


@njit(cache=True, parallel=True)
def update_gaussians(mu, sigma, g_mu, g_sigma, lr_mu, lr_sigma, natural, t, world, frozen_sigma, mu_out, sigma_out,
                     retracted, slope, kl_rows):
    """The deterministic step of every row, and ``kl_rows[r] = KL(new || old)`` in nats, the information
    clock's per-row share (docs/model.md#information-time), taken here while both beliefs are in cache.

    ``t`` holds one line-search multiplier per world (replica) and ``world[r]`` is row r's world
    (docs/model.md#replica-ensembles): a single run passes one multiplier and a world of zeros.
    ``frozen_sigma`` (plain steps with ``lr_sigma = 0`` whose Sigma gradient was not computed): Sigma is copied
    and its factor taken once for the clock (:func:`_frozen_sigma_row`)."""
    S, K = mu.shape
    n_chunks = (S + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    for ch in prange(n_chunks):
        # scratch per chunk of rows, not per row (chunking.ROWS_PER_CHUNK says why that size)
        low = np.empty((K, K))
        tmp = np.empty((K, K))
        x = np.empty((K, K))
        e = np.empty((K, K))
        work = np.empty((K, K))
        vecs = np.empty((K, K))
        vals = np.empty(K)
        for r in range(ch * ROWS_PER_CHUNK, min(S, (ch + 1) * ROWS_PER_CHUNK)):
            if frozen_sigma:
                sl = 0.0
                tr = t[world[r]]
                for i in range(K):
                    mu_out[r, i] = mu[r, i] - tr * lr_mu * g_mu[r, i]
                    sl -= lr_mu * g_mu[r, i] * g_mu[r, i]
                slope[r] = sl
                kl_rows[r] = _frozen_sigma_row(r, mu, sigma, mu_out, sigma_out, retracted, x, vals, False)
                continue
            _update_row(r, mu, sigma, g_mu, g_sigma, lr_mu, lr_sigma, natural, t[world[r]], mu_out, sigma_out,
                        retracted, slope, low, tmp, x, e, work, vecs, vals)
            kl_rows[r] = kl_cholesky(mu_out[r], sigma_out[r], mu[r], sigma[r], x, e, vals)


@njit(cache=True, inline="always")
def _frozen_sigma_row(r, mu, sigma, mu_out, sigma_out, retracted, low, y, symmetric):
    """Row r's Sigma unchanged (a frozen field, docs/model.md#replica-ensembles), its mean already stepped: the
    plain step at ``lr_sigma = 0`` (and zero Sigma temperature) adds a zero to every entry, i.e. keeps each value
    (a -0.0 entry may come out +0.0 there, and -0.0 here), and is never retracted. Returns the clock's KL from
    the one factor of the unchanged Sigma, the bits :func:`kl_cholesky` gives with two equal ones. ``symmetric``:
    symmetrise as the Langevin step does."""
    sigma_out[r] = sigma[r]
    if symmetric:
        symmetrize(sigma_out[r])
    retracted[r] = 0
    if not cholesky(sigma_out[r], low):
        return np.nan
    return kl_factors(mu_out[r], mu[r], low, low, y)


@njit(cache=True)
def _update_row(r, mu, sigma, g_mu, g_sigma, lr_mu, lr_sigma, natural, t, mu_out, sigma_out, retracted, slope,
                low, tmp, x, e, work, vecs, vals):
    K = mu.shape[1]
    sl = 0.0
    retracted[r] = 0
    if natural:
        for i in range(K):
            s = 0.0
            for j in range(K):
                s += np.float64(sigma[r, i, j]) * g_mu[r, j]  # float64 for a float32 state: float() keeps f32
            mu_out[r, i] = mu[r, i] - t * lr_mu * s
            sl -= lr_mu * g_mu[r, i] * s
        cholesky(sigma[r], low)
        matmul(g_sigma[r], low, tmp)
        matmul_tn(low, tmp, x)  # X = L^T G L
        symmetrize(x)
        fro = 0.0
        for i in range(K):
            for j in range(K):
                fro += x[i, j] * x[i, j]
        sl -= 2.0 * lr_sigma * fro  # tr(G Sigma G Sigma) = |L^T G L|_F^2
        symmetric_expm(x, -2.0 * t * lr_sigma, e, work, vecs, vals)
        matmul_nt(e, low, tmp)
        matmul(low, tmp, sigma_out[r])
        symmetrize(sigma_out[r])
    else:
        fro = 0.0
        for i in range(K):
            mu_out[r, i] = mu[r, i] - t * lr_mu * g_mu[r, i]
            sl -= lr_mu * g_mu[r, i] * g_mu[r, i]
            for j in range(K):
                g = np.float64(g_sigma[r, i, j])
                sigma_out[r, i, j] = sigma[r, i, j] - t * lr_sigma * g
                fro += g * g
        sl -= lr_sigma * fro
        # Accept the plain step only if Sigma' >= SPD_MARGIN * Sigma (Loewner order): a step that lands on the
        # edge of the cone passes a Cholesky test yet is singular to rounding once rotated into another frame.
        for i in range(K):
            for j in range(K):
                x[i, j] = sigma_out[r, i, j] - SPD_MARGIN * sigma[r, i, j]
        if not cholesky(x, low):
            # second-order retraction Sigma + V + V Sigma^-1 V / 2 with V = -t lr G; it equals
            # (Sigma + (Sigma + V) Sigma^-1 (Sigma + V)) / 2 >= Sigma / 2, so it is SPD whatever the step
            retracted[r] = 1
            cholesky(sigma[r], low)
            _lower_solve(low, g_sigma[r], tmp)  # T = L^-1 G, G Sigma^-1 G = T^T T
            h = 0.5 * (t * lr_sigma) ** 2
            for i in range(K):
                for j in range(K):
                    s = 0.0
                    for k in range(K):
                        s += tmp[k, i] * tmp[k, j]
                    sigma_out[r, i, j] += h * s
            symmetrize(sigma_out[r])
    slope[r] = sl


def noise_slots(K: int) -> int:
    """Normal draws addressed per row (docs/model.md#noise): K for mu, K (K + 1) / 2 for Sigma's entries i <= j,
    3 for phi, each field at fixed slots whether or not its temperature is > 0."""
    return K + K * (K + 1) // 2 + 3


@njit(cache=True, parallel=True)
def langevin_step(mu, sigma, phi, g_mu, g_sigma, g_phi, lr_mu, lr_sigma, lr_phi, natural, a_mu, a_sigma, a_phi, bases,
                  world, world_ptr, slots, frozen_sigma, mu_out, sigma_out, phi_out, retracted, kl_rows):
    """One Langevin step (docs/model.md#temperature) of every agent-site, and ``kl_rows`` as in
    :func:`update_gaussians`. One pass for all three fields: a kernel launch costs about as much as the phi work.

    ``a_mu = sqrt(2 lr_mu T_mu)`` (and likewise for Sigma and phi); row r's standard normal draws are
    ``noise.normal(base, r' * slots + m)``, with ``base = bases[world[r]]`` the step's base word of r's world
    and ``r' = r - world_ptr[world[r]]`` its row within that world (a single run: one world, ``r' = r``; a
    replica ensemble draws for each replica what its single run draws, docs/model.md#replica-ensembles): ``xi`` at slots m < K, the entries ``X_ij`` (i <= j, row by row) of a
    symmetric standard normal matrix next, phi's three last, drawn only where their amplitude is > 0. The
    deterministic step is :func:`update_gaussians` (T = 0 runs never come here, so they keep their bits); this
    one has no line-search multiplier (refused with noise).

    * plain: ``mu + a_mu xi``; ``Sigma + V`` with ``V = -lr G + a_sigma W``, ``W`` the standard Gaussian of the
      Frobenius metric on symmetric matrices (``W_ii = X_ii``, ``W_ij = X_ij / sqrt(2)``), retracted like the
      plain step where it would leave the cone.
    * natural: ``mu - lr Sigma g + a_mu L xi`` (``Sigma = L L^T``); ``Sigma <- L expm(-2 lr L^T G L + a_sigma Z)
      L^T`` with ``Z_ii = sqrt(2) X_ii``, ``Z_ij = X_ij``: the geodesic step of the affine-invariant (Fisher)
      metric along the natural gradient plus a standard Gaussian tangent vector of that metric.
    * phi, both: ``phi - lr dE/dphi + a_phi xi``.
    """
    S, K = mu.shape
    n_chunks = (S + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    for ch in prange(n_chunks):
        low = np.empty((K, K))
        tmp = np.empty((K, K))
        x = np.empty((K, K))
        e = np.empty((K, K))
        work = np.empty((K, K))
        vecs = np.empty((K, K))
        vals = np.empty(K)
        xi = np.zeros(K)
        xs = np.zeros((K, K))
        for r in range(ch * ROWS_PER_CHUNK, min(S, (ch + 1) * ROWS_PER_CHUNK)):
            w = world[r]
            base = bases[w]
            local = r - world_ptr[w]
            _row_draws(local, K, a_mu, a_sigma, base, slots, xi, xs)
            if frozen_sigma:  # plain, lr_sigma = 0, as in update_gaussians
                for i in range(K):
                    mu_out[r, i] = mu[r, i] - lr_mu * g_mu[r, i] + a_mu * xi[i]
                kl_rows[r] = _frozen_sigma_row(r, mu, sigma, mu_out, sigma_out, retracted, x, vals, True)
            else:
                _langevin_row(r, mu, sigma, g_mu, g_sigma, lr_mu, lr_sigma, natural, a_mu, a_sigma, xi, xs,
                              mu_out, sigma_out, retracted, low, tmp, x, e, work, vecs, vals)
                kl_rows[r] = kl_cholesky(mu_out[r], sigma_out[r], mu[r], sigma[r], x, e, vals)
            first = (local + 1) * slots - 3
            for a in range(3):
                n = normal(base, first + a) if a_phi > 0.0 else 0.0
                phi_out[r, a] = phi[r, a] - lr_phi * g_phi[r, a] + a_phi * n


@njit(cache=True, inline="always")
def _row_draws(r, K, a_mu, a_sigma, base, slots, xi, xs):
    """Row r's normals (r counted within its world): ``xi`` (K) for mu and the symmetric ``xs`` (K, K) for Sigma (left as they are, zeros,
    for a field at T = 0)."""
    first = r * slots
    if a_mu > 0.0:
        for i in range(K):
            xi[i] = normal(base, first + i)
    if a_sigma > 0.0:
        m = first + K
        for i in range(K):
            for j in range(i, K):
                xs[i, j] = normal(base, m)
                xs[j, i] = xs[i, j]
                m += 1


@njit(cache=True)
def _langevin_row(r, mu, sigma, g_mu, g_sigma, lr_mu, lr_sigma, natural, a_mu, a_sigma, xi, xs, mu_out,
                  sigma_out, retracted, low, tmp, x, e, work, vecs, vals):
    K = mu.shape[1]
    retracted[r] = 0
    if natural:
        cholesky(sigma[r], low)
        for i in range(K):
            s = 0.0
            for j in range(K):
                s += np.float64(sigma[r, i, j]) * g_mu[r, j]
            n = 0.0
            for j in range(i + 1):
                n += low[i, j] * xi[j]  # L xi ~ N(0, Sigma)
            mu_out[r, i] = mu[r, i] - lr_mu * s + a_mu * n
        matmul(g_sigma[r], low, tmp)
        matmul_tn(low, tmp, x)  # X = L^T G L
        symmetrize(x)
        root2 = np.sqrt(2.0)
        for i in range(K):
            for j in range(K):
                z = root2 * xs[i, i] if i == j else xs[i, j]
                x[i, j] = -2.0 * lr_sigma * x[i, j] + a_sigma * z
        symmetrize(x)
        symmetric_expm(x, 1.0, e, work, vecs, vals)
        matmul_nt(e, low, tmp)
        matmul(low, tmp, sigma_out[r])
        symmetrize(sigma_out[r])
    else:
        half = 1.0 / np.sqrt(2.0)
        for i in range(K):
            mu_out[r, i] = mu[r, i] - lr_mu * g_mu[r, i] + a_mu * xi[i]
            for j in range(K):
                w = xs[i, i] if i == j else half * xs[i, j]
                e[i, j] = -lr_sigma * g_sigma[r, i, j] + a_sigma * w  # V, symmetric
        for i in range(K):
            for j in range(K):
                sigma_out[r, i, j] = sigma[r, i, j] + e[i, j]
                x[i, j] = sigma_out[r, i, j] - SPD_MARGIN * sigma[r, i, j]
        if not cholesky(x, low):
            # the same retraction as the deterministic step, along the whole (drift + noise) move V:
            # Sigma + V + V Sigma^-1 V / 2 >= Sigma / 2
            retracted[r] = 1
            cholesky(sigma[r], low)
            _lower_solve(low, e, tmp)  # T = L^-1 V, V Sigma^-1 V = T^T T
            for i in range(K):
                for j in range(K):
                    s = 0.0
                    for k in range(K):
                        s += tmp[k, i] * tmp[k, j]
                    sigma_out[r, i, j] += 0.5 * s
        symmetrize(sigma_out[r])
