"""Gaussians in a common frame: the pieces the energy and the consensus measurement share.

``to_common_frame`` rotates a belief into the common ("tilde") frame, ``mt = R^T mu``, ``St = R^T Sigma R``,
and inverts it; ``kl_common`` is ``KL(N(mt_a, St_a) || N(mt_b, St_b))`` given b's precision and both
log-determinants. Since KL is invariant under a common rotation, ``KL(q_i || Omega_ij q_j)`` equals the KL of
the two rotated beliefs (docs/model.md#kl). ``site_to_common_frame`` and ``pair_kl_row`` apply them to all rows
of one site, so the energy (:mod:`agents.kernels.site_terms`) and the consensus kernel
(:mod:`agents.kernels.consensus`) compute every divergence with the same code, hence the same bits.
"""

from __future__ import annotations

from numba import njit

from .glk import frame_matrix
from .linalg import congruence_tn, quad_form, spd_inverse_logdet, trace_product


@njit(cache=True)
def to_common_frame(R, mu, sigma, mt, St, Pt, tmp, low):
    """mt = R^T mu, St = R^T sigma R, Pt = St^-1. Returns (ok, log det St); ok is False if sigma is not SPD."""
    congruence_tn(R, sigma, tmp, St)
    rotate_mean(R, mu, mt)
    return spd_inverse_logdet(St, low, Pt)


@njit(cache=True, inline="always")
def rotate_mean(R, mu, mt):
    """mt = R^T mu (the mean's part of :func:`to_common_frame`; alone where the covariance's part is kept from
    an earlier step: frozen Sigma and phi, docs/model.md#replica-ensembles)."""
    K = mu.shape[0]
    for i in range(K):
        s = 0.0
        for j in range(K):
            s += R[j, i] * mu[j]
        mt[i] = s


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


@njit(inline="always")  # bundles in its signature: not cached, see bundles.py
def site_to_common_frame(site_rows, p0, n, beliefs, fiber, rotate, R_s, mt_s, St_s, Pt_s, ld_s, ok_s, tmp, low, rsc):
    """Rows ``site_rows[p0:p0+n]`` of one site into the common frame (docs/model.md#transport), slot ``a`` each.

    With ``rotate``: ``R_s[a]`` the row's frame matrix (``rho(exp phi)``; ``exp(-phi^T)`` for GL(K) frames,
    :mod:`agents.kernels.glk`), ``mt_s[a] = R^T mu``, ``St_s[a] = R^T Sigma R``; without it
    (a site whose rows need no transport) the rows stay in their own frames and ``R_s`` is not written. Always
    ``Pt_s[a] = St_s[a]^-1``, ``ld_s[a] = ln det St_s[a]`` and ``ok_s[a]`` (False: Sigma is not SPD, the
    other outputs of that row undefined). Returns whether every row is SPD. ``tmp``, ``low`` (K, K) and ``rsc``
    (3, Kmax, Kmax) are scratch.
    """
    # fields read once per site, not once per row: each read of a field is a reference count numba cannot drop
    # around the calls below
    mu, sigma, phi = beliefs.mu, beliefs.sigma, beliefs.phi
    bs, bd, bsp, rz, zp, zr = (fiber.block_start, fiber.block_dim, fiber.block_spin, fiber.rotate_z, fiber.z_partner,
                               fiber.z_rate)
    glk = fiber.glk
    all_ok = True
    for a in range(n):
        r = site_rows[p0 + a]
        if rotate:
            frame_matrix(phi[r], glk, bs, bd, bsp, rz, zp, zr, R_s[a], rsc)
            ok, ld = to_common_frame(R_s[a], mu[r], sigma[r], mt_s[a], St_s[a], Pt_s[a], tmp, low)
        else:
            ok, ld = own_frame(mu[r], sigma[r], mt_s[a], St_s[a], Pt_s[a], low)
        ld_s[a] = ld
        ok_s[a] = ok
        if not ok:
            all_ok = False
    return all_ok


@njit(cache=True, inline="always")
def pair_kl_row(a, n, mt_s, St_s, Pt_s, ld_s, dvec, kl_row):
    """``kl_row[b] = KL_ab`` for the n rows of a site in the common frame, ``kl_row[a] = 0`` (docs/model.md#kl).

    Each ordered pair costs O(K^2): the rows' rotations and inverses are done once, by
    :func:`site_to_common_frame`. ``dvec`` is scratch.
    """
    for b in range(n):
        if b == a:
            kl_row[b] = 0.0
        else:
            kl_row[b] = kl_common(mt_s[a], St_s[a], ld_s[a], mt_s[b], Pt_s[b], ld_s[b], dvec)
