"""Gaussians in a common frame: the pieces the energy and the meta-agent analysis share.

``to_common_frame`` rotates a belief into the common ("tilde") frame, ``mt = R^T mu``, ``St = R^T Sigma R``,
and inverts it; ``kl_common`` is ``KL(N(mt_a, St_a) || N(mt_b, St_b))`` given b's precision and both
log-determinants. Since KL is invariant under a common rotation, ``KL(q_i || Omega_ij q_j)`` equals the KL of
the two rotated beliefs.
"""

from __future__ import annotations

from numba import njit

from .linalg import congruence_tn, quad_form, spd_inverse_logdet, trace_product


@njit(cache=True)
def to_common_frame(R, mu, sigma, mt, St, Pt, tmp, low):
    """mt = R^T mu, St = R^T sigma R, Pt = St^-1. Returns (ok, log det St); ok is False if sigma is not SPD."""
    K = mu.shape[0]
    congruence_tn(R, sigma, tmp, St)
    for i in range(K):
        s = 0.0
        for j in range(K):
            s += R[j, i] * mu[j]
        mt[i] = s
    return spd_inverse_logdet(St, low, Pt)


@njit(cache=True)
def own_frame(mu, sigma, mt, St, Pt, low):
    """The same with R = I (no rotation needed)."""
    K = mu.shape[0]
    for i in range(K):
        mt[i] = mu[i]
        for j in range(K):
            St[i, j] = sigma[i, j]
    return spd_inverse_logdet(St, low, Pt)


@njit(cache=True, inline="always")
def kl_common(mt_a, St_a, ld_a, mt_b, Pt_b, ld_b, dvec):
    """KL(N(mt_a, St_a) || N(mt_b, St_b)); ``dvec`` is scratch and holds mt_b - mt_a on return."""
    K = mt_a.shape[0]
    for i in range(K):
        dvec[i] = mt_b[i] - mt_a[i]
    return 0.5 * (trace_product(Pt_b, St_a) + quad_form(Pt_b, dvec) - K + ld_b - ld_a)
