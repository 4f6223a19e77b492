"""Kernel of the attention layer: the aggregated message of every agent-site and the two roles of its
alignment gradient (docs/model.md#attention-layer).

At each occupied site, with the rows in the common frame (``mt = R^T mu``, ...), row ``a``'s message is

    m_a = sum_b beta_ab Omega_ab mu_b = R_a sum_b beta_ab mt_b

and its alignment gradient ``dE_align/dmu_a`` splits into the derivative of its own density (the query role,
``forward``) and that of its partners' densities (the key/value role, ``reverse``):

    forward_a = R_a sum_b a_ab dKL_ab/dmt_a = -R_a sum_b a_ab Pt_b (mt_b - mt_a)
    reverse_a = R_a sum_b a_ba dKL_ba/dmt_a =  R_a sum_b a_ba Pt_a (mt_a - mt_b)

with ``a_ab = dE_align/dKL_ab`` from :func:`~agents.kernels.site_terms.pair_coefficient`. The divergences and
weights come from the same functions as the energy's (:func:`~agents.kernels.gaussian.site_to_common_frame`,
:func:`~agents.kernels.gaussian.pair_kl_row`, :func:`~agents.kernels.site_terms.attention_weights`), so the
weights behind a message are the energy's ``beta`` bit for bit wherever the energy computes them
(``lambda_align != 0``); here they are computed whatever ``lambda_align`` is. ``forward + reverse`` is the
energy's alignment gradient in mu up to the order of the sums (rounding).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .bundles import Beliefs, FiberArrays, SiteTables, Weights
from .gaussian import pair_kl_row, site_to_common_frame
from .site_terms import attention_weights, pair_coefficient


@njit(cache=True, inline="always")
def _rotate_back(R, v, out_row):
    """``out_row = R v``: a common-frame vector in the row's own frame."""
    K = v.shape[0]
    for i in range(K):
        t = 0.0
        for j in range(K):
            t += R[i, j] * v[j]
        out_row[i] = t


@njit(cache=True, parallel=True)
def site_attention_kernel(tables, beliefs, fiber, weights, messages, forward, reverse):
    """The compiled pass behind :func:`site_attention`, the bundles as plain tuples (see bundles.py); the
    written arrays are plain arrays, for the reason given in :mod:`agents.kernels.site_terms`."""
    tb = SiteTables(*tables)
    bel = Beliefs(*beliefs)
    fib = FiberArrays(*fiber)
    wts = Weights(*weights)
    K = bel.mu.shape[1]
    m = tb.max_per_site
    kmax = fib.rotate_z.shape[1]
    site_rows = tb.site_rows
    for ch in prange(tb.chunks.shape[0] - 1):
        R = np.empty((m, K, K))  # scratch, allocated once per thread (see agents.kernels.chunking)
        mt = np.empty((m, K))
        St = np.empty((m, K, K))
        Pt = np.empty((m, K, K))
        ld = np.empty(m)
        ok = np.empty(m, dtype=np.bool_)
        chi = np.empty(m)
        msum = np.empty((m, K))  # sum_b beta_ab mt_b, and the two roles' common-frame gradients
        gf = np.empty((m, K))
        gr = np.empty((m, K))
        kl_row = np.empty(m)
        beta_row = np.empty(m)
        tmp = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        dvec = np.empty(K)
        v = np.empty(K)
        for k in range(tb.chunks[ch], tb.chunks[ch + 1]):
            site = tb.occupied[k]
            p0 = tb.site_ptr[site]
            n = tb.site_ptr[site + 1] - p0
            if n < 2 and not wts.include_self:
                # nobody to attend to: beta = 0, so the message and both roles are 0 (docs/model.md#alignment)
                for a in range(n):
                    r = site_rows[p0 + a]
                    for i in range(K):
                        messages[r, i] = 0.0
                        forward[r, i] = 0.0
                        reverse[r, i] = 0.0
                continue
            for a in range(n):
                chi[a] = tb.chi[site_rows[p0 + a]]
            site_ok = site_to_common_frame(site_rows, p0, n, bel, fib, True, R, mt, St, Pt, ld, ok, tmp, low, rsc)
            if not site_ok:
                # no divergence is defined at a site with a non-SPD Sigma: NaN says so (the energy says inf)
                for a in range(n):
                    r = site_rows[p0 + a]
                    for i in range(K):
                        messages[r, i] = np.nan
                        forward[r, i] = np.nan
                        reverse[r, i] = np.nan
                continue
            for a in range(n):
                for i in range(K):
                    msum[a, i] = 0.0
                    gf[a, i] = 0.0
                    gr[a, i] = 0.0
            for a in range(n):
                pair_kl_row(a, n, mt, St, Pt, ld, dvec, kl_row)
                _, mean_kl = attention_weights(kl_row, chi, a, n, wts.kappa, wts.free_energy, wts.include_self,
                                               beta_row)
                for b in range(n):
                    for i in range(K):
                        msum[a, i] += beta_row[b] * mt[b, i]
                    if b == a:  # KL_aa = 0 whatever the state: no gradient
                        continue
                    coef = pair_coefficient(wts.lam * chi[a], beta_row[b], kl_row[b], mean_kl, wts.kappa,
                                            wts.free_energy)
                    # v = Pt_b (mt_b - mt_a): dKL_ab/dmt_a = -v (a's query role), dKL_ab/dmt_b = +v (b's key role)
                    for i in range(K):
                        t = 0.0
                        for j in range(K):
                            t += Pt[b, i, j] * (mt[b, j] - mt[a, j])
                        v[i] = t
                    for i in range(K):
                        gf[a, i] -= coef * v[i]
                        gr[b, i] += coef * v[i]
            for a in range(n):
                r = site_rows[p0 + a]
                _rotate_back(R[a], msum[a], messages[r])
                _rotate_back(R[a], gf[a], forward[r])
                _rotate_back(R[a], gr[a], reverse[r])


def site_attention(tables, beliefs, fiber, weights, messages, forward, reverse):
    """Messages ``m`` (S, K) and the query-role and key-role parts of ``dE_align/dmu`` (S, K) of every row, in
    its own frame, into ``messages``, ``forward``, ``reverse``: one parallel pass over the occupied sites.

    ``tables``: :class:`~agents.kernels.bundles.SiteTables`; ``beliefs``: (mu, sigma, phi) in float64;
    ``fiber``: :class:`~agents.kernels.bundles.FiberArrays`; ``weights``: :class:`~agents.kernels.bundles.Weights`
    (alpha and gamma unused). Rows alone at their site get 0 (without ``include_self``), rows of a site with a
    non-SPD Sigma get NaN.
    """
    site_attention_kernel(tuple(tables), tuple(beliefs), tuple(fiber), tuple(weights), messages, forward, reverse)
