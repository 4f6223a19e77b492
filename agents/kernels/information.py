"""Information time: the bits of belief update per agent and step (docs/model.md#information-time).

``b_i(t) = sum_c chi_i(c) KL(q_i,t+1(c) || q_i,t(c)) / ln 2``, both beliefs in agent ``i``'s own frame. It runs
every step, so the KL is taken from the two Cholesky factors alone (no inverse, no copies; the energy's helper
:func:`.gaussian.kl_common` needs a precision matrix, which would cost a third factorisation's worth), and the
update kernels take it per row as they write the new belief (``kl_cholesky``). Rows of one agent are contiguous
(``offset[i]:offset[i+1]``), so the per-agent sum is a loop over that agent's rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .chunking import ROWS_PER_CHUNK
from .linalg import cholesky

LN2 = np.log(2.0)


@njit(cache=True, inline="always")
def kl_cholesky(mu_a, sigma_a, mu_b, sigma_b, la, lb, y):
    """KL(N(mu_a, sigma_a) || N(mu_b, sigma_b)) in nats from the two Cholesky factors alone:
    ``1/2 [ |Lb^-1 La|_F^2 + |Lb^-1 (mu_b - mu_a)|^2 - K + ln det sigma_b - ln det sigma_a ]`` (docs/model.md#kl),
    the same value as :func:`.gaussian.kl_common` without forming an inverse. NaN if either is not SPD."""
    if not (cholesky(sigma_a, la) and cholesky(sigma_b, lb)):
        return np.nan
    return kl_factors(mu_a, mu_b, la, lb, y)


@njit(cache=True, inline="always")
def kl_factors(mu_a, mu_b, la, lb, y):
    """:func:`kl_cholesky` from the factors ``la``, ``lb`` themselves (the same array for an unchanged Sigma:
    a frozen field, docs/model.md#replica-ensembles, whose factor is then taken once)."""
    K = mu_a.shape[0]
    tr = 0.0
    for j in range(K):  # column j of Lb^-1 La by forward substitution (La[:j, j] = 0)
        for i in range(K):
            if i < j:
                y[i] = 0.0
                continue
            t = la[i, j]
            for k in range(j, i):
                t -= lb[i, k] * y[k]
            y[i] = t / lb[i, i]
            tr += y[i] * y[i]
    quad = 0.0
    for i in range(K):
        t = np.float64(mu_b[i]) - mu_a[i]  # in float64 for a float32 state too
        for k in range(i):
            t -= lb[i, k] * y[k]
        y[i] = t / lb[i, i]
        quad += y[i] * y[i]
    ratio = 1.0  # one logarithm: consecutive beliefs have diagonal ratios near 1, far from over- or underflow
    for i in range(K):
        ratio *= lb[i, i] / la[i, i]
    return 0.5 * (tr + quad - K) + np.log(ratio)


@njit(cache=True, parallel=True)
def row_update_kl(mu_new, sigma_new, mu_old, sigma_old, out):
    """``out[r] = KL(N(mu_new, sigma_new) || N(mu_old, sigma_old))`` per row, in nats (NaN if not SPD)."""
    S, K = mu_new.shape
    n_chunks = (S + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    for ch in prange(n_chunks):
        # scratch per chunk of rows, not per row (chunking.ROWS_PER_CHUNK says why that size)
        la = np.empty((K, K))
        lb = np.empty((K, K))
        y = np.empty(K)
        for r in range(ch * ROWS_PER_CHUNK, min(S, (ch + 1) * ROWS_PER_CHUNK)):
            out[r] = kl_cholesky(mu_new[r], sigma_new[r], mu_old[r], sigma_old[r], la, lb, y)


@njit(cache=True)
def bits_per_agent(kl_rows, chi, offset, out):
    """``out[i] = sum over agent i's rows of chi * KL / ln 2``."""
    for i in range(offset.shape[0] - 1):
        s = 0.0
        for r in range(offset[i], offset[i + 1]):
            s += chi[r] * kl_rows[r]
        out[i] = s / LN2


def bits_of_rows(layout, kl_rows: np.ndarray) -> np.ndarray:
    """(N,) bits of belief update of every agent from the per-row KL of its beliefs' update (in nats). The
    update kernels take that KL as they step (update.update_gaussians, update.langevin_step)."""
    out = np.empty(layout.n_agents)
    bits_per_agent(kl_rows, layout.chi, layout.offset, out)
    return out


def information_bits(layout, old, new) -> np.ndarray:
    """(N,) bits of belief update of every agent in the step from state ``old`` to state ``new``, on its own
    (the dynamics take the per-row KL inside the update kernels instead)."""
    kl = np.empty(old.mu.shape[0])
    row_update_kl(new.mu, new.sigma, old.mu, old.sigma, kl)
    return bits_of_rows(layout, kl)
