"""Kernel of the consensus measurement: the transported divergence of every ordered pair of rows at every site
(docs/model.md#consensus).

It computes ``KL_ab`` with the same pieces as the energy's alignment (:func:`~agents.kernels.gaussian
.site_to_common_frame`, :func:`~agents.kernels.gaussian.pair_kl_row`), so its values equal the energy's
``kl`` slot for slot, bit for bit, wherever the energy computes them (``lambda_align != 0``); here they are
computed whatever the energy's weights, and for priors as well as beliefs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .bundles import Beliefs, FiberArrays, SiteTables
from .gaussian import pair_kl_row, site_to_common_frame


@njit(cache=True, parallel=True)
def site_pair_kl_kernel(tables, beliefs, fiber, out, ok_out):
    """The compiled pass behind :func:`site_pair_kl`, the bundles as plain tuples (see bundles.py). Written
    arrays are plain arrays, for the reason given in :mod:`agents.kernels.site_terms`."""
    tb = SiteTables(*tables)
    bel = Beliefs(*beliefs)
    fib = FiberArrays(*fiber)
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
        tmp = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        dvec = np.empty(K)
        for k in range(tb.chunks[ch], tb.chunks[ch + 1]):
            site = tb.occupied[k]
            p0 = tb.site_ptr[site]
            n = tb.site_ptr[site + 1] - p0
            q0 = tb.pair_ptr[k]
            if n < 2:
                out[q0] = 0.0  # KL_aa
                continue
            site_to_common_frame(site_rows, p0, n, bel, fib, True, R, mt, St, Pt, ld, ok, tmp, low, rsc)
            for a in range(n):
                ok_out[site_rows[p0 + a]] = ok[a]
            for a in range(n):
                pair_kl_row(a, n, mt, St, Pt, ld, dvec, out[q0 + a * n:q0 + (a + 1) * n])


def site_pair_kl(tables, beliefs, fiber, out, ok_out):
    """``KL(q_a || Omega_ab q_b)`` for every ordered pair of rows at every occupied site into the pair slots
    ``out[pair_ptr[k] + a * n + b]`` (0 for ``a == b``), the energy's layout. ``ok_out[row]`` is set for the rows
    that share their site, False where Sigma is not SPD (the values of that site are then undefined); rows alone
    at their site have no pair and are not looked at.

    ``tables``: :class:`~agents.kernels.bundles.SiteTables`; ``beliefs``: any (mu, sigma, phi), e.g. the priors
    with the current frames; ``fiber``: :class:`~agents.kernels.bundles.FiberArrays`.
    """
    site_pair_kl_kernel(tuple(tables), tuple(beliefs), tuple(fiber), out, ok_out)
