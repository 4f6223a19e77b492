"""The site-local terms of the action and their exact gradients: prior, observation and alignment
(docs/model.md#action, docs/model.md#gradients).

:func:`site_terms` is one parallel pass over chunks of occupied sites (:func:`site_terms_kernel`). Every row
(agent-site) belongs to exactly one site, so a site's iteration owns its rows' outputs and no two threads write
the same memory. At each site:

1. :func:`~agents.kernels.gaussian.site_to_common_frame`: every row's frame matrix ``R = rho(exp phi)`` (for GL(K)
   frames ``exp(-phi^T)``, :mod:`agents.kernels.glk`), its belief in
   the common frame ``mt = R^T mu``, ``St = R^T Sigma R``, the precision ``Pt = St^-1`` and ``ln det St``
   (O(K^3) per row). Rows need no transport when they are alone at the site or ``lambda_align = 0``; they stay
   in their own frames (``R = I``).
2. :func:`alignment_site`: ``KL_ab`` for every ordered pair (O(K^2) each, docs/model.md#kl), the softmax weights
   and the density, and the rows' gradients in the common frame, both roles of every pair.
3. Per row, each term with its own energy density and gradient: :func:`phi_gradient` (the alignment is the
   only site-local term that depends on phi), :func:`prior_row`, :func:`observation_row`, and
   :func:`sigma_to_own_frame`, :func:`mu_to_own_frame`, which take the common-frame gradient back to the row's
   own frame.

The term functions are inlined into the ``prange`` body, as numba's parallel pipeline needs to see them there
to drop the copies of their array arguments (each copy of an array is an atomic reference count, which would
cost a third of the pass at K = 3). They read the inputs through the bundles of :mod:`agents.kernels.bundles`
but write only to arrays passed by name: in a ``prange`` body numba drops writes made through a namedtuple's
field (numba issues #5872, #7135: its alias analysis does not see that ``bundle.field`` is the bundle's array,
and removes the stores as dead). Scratch buffers are allocated in the ``prange`` body, which numba does once per
thread (see :mod:`agents.kernels.chunking`), never inside the site loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .bundles import Beliefs, FiberArrays, ObservationArrays, Priors, SiteTables, Weights
from .chunking import ROWS_PER_CHUNK
from .gaussian import pair_kl_row, rotate_mean, site_to_common_frame
from .glk import frame_matrix, glk_phi_gradient, trace_of
from .lie import left_jacobian
from .linalg import congruence_nt, congruence_tn, matmul, quad_form, spd_inverse_logdet, trace_product

NOT_SPD = 1  # status code of a row whose Sigma is not positive definite


# --- prior ---------------------------------------------------------------------------------------------------------

@njit(inline="always")  # bundles in its signature: not cached, see bundles.py
def prior_row(r, w, ld, Pt, alpha, beliefs, priors, want_grad, rotated, Gt, dvec, g_mu, g_sigma):
    """The prior at row ``r`` (docs/model.md#prior): returns its density ``alpha chi KL(q || p)``.

    ``w = chi``; ``ld = ln det Sigma`` and ``Pt`` the inverse computed in step 1 (``Sigma^-1`` itself for a row
    in its own frame, ``(R^T Sigma R)^-1`` for a ``rotated`` one). With ``want_grad`` it *sets* the row's
    gradients, being the first term to write them (docs/model.md#gradients):

    * ``dE/dmu = alpha chi S^-1 (mu - m)`` into ``g_mu[r]``;
    * ``dE/dSigma = alpha chi (S^-1 - Sigma^-1) / 2`` into ``g_sigma[r]``. For a rotated row only the ``S^-1``
      part: its ``-Sigma^-1 = -R Pt R^T`` part is added to the common-frame gradient ``Gt`` instead, where
      :func:`sigma_to_own_frame` takes it back together with the alignment's (one conjugation per row, not two).
    """
    K = dvec.shape[0]
    P = priors.precision[r]
    for i in range(K):
        dvec[i] = priors.mu[r, i] - beliefs.mu[r, i]
    # every piece in the row's own frame (the prior is not transported); ln det is frame independent
    kl = 0.5 * (trace_product(P, beliefs.sigma[r]) + quad_form(P, dvec) - K + priors.logdet[r] - ld)
    if want_grad:
        for i in range(K):
            s = 0.0
            for j in range(K):
                s -= P[i, j] * dvec[j]
            g_mu[r, i] = alpha * w * s
        if rotated:
            for i in range(K):
                for j in range(K):
                    g_sigma[r, i, j] = 0.5 * alpha * w * P[i, j]
                    Gt[i, j] -= 0.5 * alpha * w * Pt[i, j]
        else:
            for i in range(K):
                for j in range(K):
                    g_sigma[r, i, j] = 0.5 * alpha * w * (P[i, j] - Pt[i, j])
    return alpha * w * kl


# --- observation ---------------------------------------------------------------------------------------------------

@njit(inline="always")  # bundles in its signature: not cached, see bundles.py
def observation_row(r, w, gamma, beliefs, obs, want_grad, resid, u, g_mu, g_sigma):
    """The observation term at row ``r`` (docs/model.md#observation): returns its density
    ``gamma chi [(o - C mu)^T Rn^-1 (o - C mu) + tr(Rn^-1 C Sigma C^T)] / 2`` (0 without observations).

    With ``want_grad`` it adds ``dE/dmu = -gamma chi C^T Rn^-1 (o - C mu)`` to ``g_mu[r]`` and
    ``dE/dSigma = gamma chi C^T Rn^-1 C / 2`` to ``g_sigma[r]``, in the row's own frame (observations are read
    there, docs/model.md#gradients). ``resid``, ``u`` (D,) are scratch.
    """
    e = 0.0
    if obs.present:
        D, K = obs.C.shape
        for i in range(D):
            s = obs.value[r, i]
            for j in range(K):
                s -= obs.C[i, j] * beliefs.mu[r, j]
            resid[i] = s
        # tr(Rn^-1 C Sigma C^T) = tr(C^T Rn^-1 C Sigma)
        e = 0.5 * (quad_form(obs.precision, resid) + trace_product(obs.info, beliefs.sigma[r]))
        if want_grad:
            # u = Rn^-1 (o - C mu) once per row, then C^T u
            for j in range(D):
                t = 0.0
                for l in range(D):
                    t += obs.precision[j, l] * resid[l]
                u[j] = t
            for i in range(K):
                s = 0.0
                for j in range(D):
                    s += obs.C[j, i] * u[j]
                g_mu[r, i] -= gamma * w * s
            for i in range(K):
                for j in range(K):
                    g_sigma[r, i, j] += 0.5 * gamma * w * obs.info[i, j]
    return gamma * w * e


# --- alignment -----------------------------------------------------------------------------------------------------

@njit(cache=True)
def attention_weights(kl_row, chi_row, a, n, kappa, free_energy, include_self, beta_out):
    """Softmax weights of row ``a`` over its partners at a site (docs/model.md#alignment); returns (e, <KL>).

    ``beta_out[b] = beta_ab = softmax_b(ln chi_b - KL_ab / kappa)`` (0 for b == a unless include_self); ``e`` is
    the row's alignment density without its factor ``lambda_align chi_a`` (weighted: ``sum_b beta_ab KL_ab``,
    free energy: ``-kappa ln sum_b chi_b exp(-KL_ab / kappa)``) and ``<KL> = sum_b beta_ab KL_ab``, from which
    :func:`pair_coefficient` forms ``dE/dKL_ab``. The maximum is subtracted before ``exp`` so no weight
    overflows and at least one is 1 before normalising.
    """
    big = -np.inf
    for b in range(n):
        if b == a and not include_self:
            continue
        v = np.log(chi_row[b]) - kl_row[b] / kappa
        if v > big:
            big = v
    z = 0.0
    for b in range(n):
        if b == a and not include_self:
            beta_out[b] = 0.0
            continue
        w = np.exp(np.log(chi_row[b]) - kl_row[b] / kappa - big)
        beta_out[b] = w
        z += w
    mean_kl = 0.0
    for b in range(n):
        beta_out[b] /= z
        mean_kl += beta_out[b] * kl_row[b]
    if free_energy:
        return -kappa * (np.log(z) + big), mean_kl
    return mean_kl, mean_kl


@njit(cache=True, inline="always")
def pair_coefficient(lam_chi, beta_b, kl_b, mean_kl, kappa, free_energy):
    """``a_ab = dE_align/dKL_ab = lambda_align chi_a de_a/dKL_ab`` (docs/model.md#softmax-derivative), with
    ``lam_chi = lambda_align chi_a``: weighted ``beta_ab (1 - (KL_ab - <KL>_a) / kappa)``, free energy
    ``beta_ab``."""
    coef = lam_chi * beta_b
    if not free_energy:
        coef *= 1.0 - (kl_b - mean_kl) / kappa
    return coef


@njit(cache=True, inline="always")
def pair_gradient(a, b, coef, mt, St, Pt, gt, Gt, B, acc, dvec, v, shape):
    """Add ``coef`` times the derivatives of ``KL_ab`` to rows a and b, in the common frame
    (docs/model.md#gradient-common-frame), with ``d = mt_b - mt_a``:

    ``dKL_ab/dmt_a = -Pt_b d``, ``dKL_ab/dmt_b = Pt_b d``, ``dKL_ab/dSt_a = (Pt_b - Pt_a) / 2`` go straight
    into ``gt`` and ``Gt``. ``dKL_ab/dSt_b = (Pt_b - Pt_b (St_a + d d^T) Pt_b) / 2`` is only summed here,
    ``acc[b] += coef`` and ``B[b] += coef (St_a + d d^T)``, so :func:`partner_side` forms its O(K^3) products
    once per row instead of once per pair. ``dvec``, ``v`` (K,) are scratch. Without ``shape`` only the mean
    gradients are formed: no Sigma or phi gradient is wanted (both frozen, docs/model.md#replica-ensembles).
    """
    K = dvec.shape[0]
    for i in range(K):
        dvec[i] = mt[b, i] - mt[a, i]
    for i in range(K):
        t = 0.0
        for j in range(K):
            t += Pt[b, i, j] * dvec[j]
        v[i] = t
    for i in range(K):
        gt[a, i] -= coef * v[i]
        gt[b, i] += coef * v[i]
    if not shape:
        return
    for i in range(K):
        for j in range(K):
            Gt[a, i, j] += 0.5 * coef * (Pt[b, i, j] - Pt[a, i, j])
            B[b, i, j] += coef * (St[a, i, j] + dvec[i] * dvec[j])
    acc[b] += coef


@njit(cache=True, inline="always")
def partner_side(a, Pt, B, acc, Gt, tmp, tmp2):
    """``G~_a += (acc_a Pt_a - Pt_a B_a Pt_a) / 2``: the ``dKL_ba/dSt_a`` of every pair where row a is the
    partner, from the sums of :func:`pair_gradient` (docs/model.md#gradient-common-frame)."""
    K = tmp.shape[0]
    matmul(B[a], Pt[a], tmp)
    matmul(Pt[a], tmp, tmp2)  # Pt B Pt
    for i in range(K):
        for j in range(K):
            Gt[a, i, j] += 0.5 * (acc[a] * Pt[a, i, j] - tmp2[i, j])


@njit(inline="always")  # a bundle in its signature: not cached, see bundles.py
def alignment_site(k, p0, n, tables, weights, gradient, shape, chi, mt, St, Pt, ld, kl_row, beta_row, gt, Gt, B,
                   acc, dvec, v, e_align, kl_out, beta_out):
    """The alignment at occupied site ``k`` with rows ``p0..p0+n`` (docs/model.md#alignment), the rows already in
    the common frame: ``chi``, ``mt``, ``St``, ``Pt``, ``ld`` (slot ``a`` = the site's a-th row).

    For each row a: ``KL_ab`` to every row b, the weights ``beta_ab`` and the density
    ``lambda_align chi_a e_a`` into ``e_align``; ``KL_ab`` and ``beta_ab`` into the site's pair slots of
    ``kl_out``, ``beta_out``. With ``gradient`` also the sums of every pair's derivatives in the common frame,
    both roles (``gt``, ``Gt``, and ``B``, ``acc`` for :func:`partner_side`; the last three only with
    ``shape``, see :func:`pair_gradient`). ``kl_row``, ``beta_row`` (m,),
    ``dvec``, ``v`` (K,) are scratch.
    """
    q0 = tables.pair_ptr[k]
    lam = weights.lam
    K = dvec.shape[0]
    if gradient:
        for a in range(n):
            acc[a] = 0.0
            for i in range(K):
                gt[a, i] = 0.0
                for j in range(K):
                    Gt[a, i, j] = 0.0
                    B[a, i, j] = 0.0
    for a in range(n):
        pair_kl_row(a, n, mt, St, Pt, ld, dvec, kl_row)
        energy, mean_kl = attention_weights(kl_row, chi, a, n, weights.kappa, weights.free_energy,
                                            weights.include_self, beta_row)
        e_align[tables.site_rows[p0 + a]] = lam * chi[a] * energy
        for b in range(n):
            kl_out[q0 + a * n + b] = kl_row[b]
            beta_out[q0 + a * n + b] = beta_row[b]
        if not gradient:
            continue
        for b in range(n):
            if b == a:  # KL_aa = 0 whatever the state: no gradient, also under include_self
                continue
            coef = pair_coefficient(lam * chi[a], beta_row[b], kl_row[b], mean_kl, weights.kappa,
                                    weights.free_energy)
            if coef == 0.0:
                continue
            pair_gradient(a, b, coef, mt, St, Pt, gt, Gt, B, acc, dvec, v, shape)


@njit(inline="always")  # a bundle in its signature: not cached, see bundles.py
def phi_gradient(phi_r, gt, Gt, mt, St, fiber, tau, jac, g_phi_r):
    """``dE/dphi = J_l(phi) tau``, ``tau_c = tr(G_c X)``, ``X = g~ mt^T + 2 G~ St``: the frame's gradient from the
    common-frame one (docs/model.md#gradient-common-frame).

    Only X's entries on the generators' nonzero pattern are formed. ``g~``, ``G~`` must hold the alignment
    alone: the other site-local terms do not depend on phi (the prior's common-frame piece, a multiple of
    ``Pt``, has ``tau = 0`` exactly but not in rounding, so it is added after this).
    """
    K = mt.shape[0]
    tau[0] = 0.0
    tau[1] = 0.0
    tau[2] = 0.0
    for e in range(fiber.gen_val.shape[0]):
        p = fiber.gen_p[e]
        q = fiber.gen_q[e]
        x = gt[q] * mt[p]
        t = 0.0
        for l in range(K):
            t += Gt[q, l] * St[l, p]
        tau[fiber.gen_a[e]] += fiber.gen_val[e] * (x + 2.0 * t)
    left_jacobian(phi_r, jac)
    for i in range(3):
        g_phi_r[i] = jac[i, 0] * tau[0] + jac[i, 1] * tau[1] + jac[i, 2] * tau[2]


@njit(cache=True, inline="always")
def sigma_to_own_frame(R, Gt, tmp, tmp2, g_sigma_r):
    """``dE/dSigma += R G~ R^T`` (symmetrised exactly): a common-frame covariance gradient back in the row's own
    frame (docs/model.md#gradient-common-frame). ``tmp``, ``tmp2`` (K, K) are scratch."""
    K = Gt.shape[0]
    congruence_nt(R, Gt, tmp, tmp2)
    for i in range(K):
        for j in range(K):
            g_sigma_r[i, j] += tmp2[i, j]


@njit(cache=True, inline="always")
def mu_to_own_frame(R, gt, g_mu_r):
    """``dE/dmu += R g~``: a common-frame mean gradient back in the row's own frame
    (docs/model.md#gradient-common-frame)."""
    K = gt.shape[0]
    for i in range(K):
        t = 0.0
        for j in range(K):
            t += R[i, j] * gt[j]
        g_mu_r[i] += t


# --- the pass ------------------------------------------------------------------------------------------------------

@njit(cache=True, parallel=True)
def site_terms_kernel(tables, beliefs, priors, observations, weights, fiber, want_grad, grad_sigma, grad_phi, frames,
                      out):
    """The compiled pass behind :func:`site_terms`: the same arguments, each bundle as a plain tuple (the cache
    keeps no namedtuple in a signature, see bundles.py); the inputs get their names back here, the outputs are
    unpacked into plain arrays (see the module docstring)."""
    tb = SiteTables(*tables)
    bel = Beliefs(*beliefs)
    pri = Priors(*priors)
    obs = ObservationArrays(*observations)
    wts = Weights(*weights)
    fib = FiberArrays(*fiber)
    e_prior, e_obs, e_align, g_mu, g_sigma, g_phi, kl_out, beta_out, status = out
    # the rows' frames, rotated covariances, their inverses and log-determinants kept from an earlier step (both
    # Sigma and phi frozen, docs/model.md#replica-ensembles); empty arrays: computed here
    cR, cSt, cPt, cld, cok = frames
    cached = cld.shape[0] > 0
    K = bel.mu.shape[1]
    D = obs.C.shape[0]
    kmax = fib.rotate_z.shape[1]
    m = tb.max_per_site
    lam = wts.lam
    # the alignment's covariance-side sums feed both the Sigma and the phi gradient: skipped when neither is wanted
    shape = want_grad and (grad_sigma or grad_phi)
    for ch in prange(tb.chunks.shape[0] - 1):
        # Scratch; slot a of the (m, ...) buffers is the a-th row of the current site.
        R = np.zeros((m, K, K))  # the rows in the common frame (step 1)
        mt = np.empty((m, K))
        St = np.empty((m, K, K))
        Pt = np.empty((m, K, K))
        ld = np.empty(m)
        ok = np.empty(m, dtype=np.bool_)
        chi = np.empty(m)
        gt = np.empty((m, K))  # their common-frame gradients (step 2)
        Gt = np.empty((m, K, K))
        B = np.empty((m, K, K))
        acc = np.empty(m)
        kl_row = np.empty(m)  # work space
        beta_row = np.empty(m)
        dvec = np.empty(K)
        v = np.empty(K)
        tmp = np.empty((K, K))
        tmp2 = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        jac = np.empty((3, 3))
        tau = np.empty(3)
        resid = np.empty(D)
        u = np.empty(D)
        for k in range(tb.chunks[ch], tb.chunks[ch + 1]):
            site = tb.occupied[k]
            p0 = tb.site_ptr[site]
            n = tb.site_ptr[site + 1] - p0
            rotate = lam != 0.0 and n >= 2  # transport only matters between two rows; KL_aa = 0 in any frame
            for a in range(n):
                chi[a] = tb.chi[tb.site_rows[p0 + a]]
            if cached and rotate:
                site_ok = True
                for a in range(n):
                    r = tb.site_rows[p0 + a]
                    R[a] = cR[r]
                    St[a] = cSt[r]
                    Pt[a] = cPt[r]
                    ld[a] = cld[r]
                    ok[a] = cok[r]
                    site_ok = site_ok and cok[r]
                    rotate_mean(R[a], bel.mu[r], mt[a])
            else:
                site_ok = site_to_common_frame(tb.site_rows, p0, n, bel, fib, rotate, R, mt, St, Pt, ld, ok, tmp,
                                               low, rsc)
            for a in range(n):
                status[tb.site_rows[p0 + a]] = 0 if ok[a] else NOT_SPD
            if not site_ok:
                # no term is defined at a site with a non-SPD Sigma: the prior density says so, the others are 0
                for a in range(n):
                    r = tb.site_rows[p0 + a]
                    e_prior[r] = np.inf
                    e_obs[r] = 0.0
                    e_align[r] = 0.0
                continue
            if lam != 0.0 and (n >= 2 or wts.include_self):
                alignment_site(k, p0, n, tb, wts, want_grad and rotate, shape, chi, mt, St, Pt, ld, kl_row, beta_row,
                               gt, Gt, B, acc, dvec, v, e_align, kl_out, beta_out)
            else:
                for a in range(n):
                    e_align[tb.site_rows[p0 + a]] = 0.0
            for a in range(n):
                r = tb.site_rows[p0 + a]
                if want_grad:
                    if rotate and shape:
                        partner_side(a, Pt, B, acc, Gt, tmp, tmp2)
                    if rotate and grad_phi:
                        if fib.glk:
                            glk_phi_gradient(bel.phi[r], bel.mu[r], bel.sigma[r], R[a], gt[a], Gt[a], rsc, g_phi[r])
                        else:
                            phi_gradient(bel.phi[r], gt[a], Gt[a], mt[a], St[a], fib, tau, jac, g_phi[r])
                    else:
                        for i in range(g_phi.shape[1]):
                            g_phi[r, i] = 0.0
                # The terms add into the row's gradients in one fixed order, mu: prior, observation, alignment;
                # Sigma: prior, alignment, observation. Floating-point sums depend on their order, and this one
                # keeps the results bit-identical to those of earlier versions of this kernel.
                ld_own = ld[a]  # ln det Sigma: ln det St for a rotation, ln det St + 2 tr phi for GL(K) frames
                if rotate and fib.glk:
                    ld_own += 2.0 * trace_of(bel.phi[r], K)
                e_prior[r] = prior_row(r, chi[a], ld_own, Pt[a], wts.alpha, bel, pri, want_grad, rotate, Gt[a],
                                       dvec, g_mu, g_sigma)
                if want_grad and rotate and grad_sigma:
                    sigma_to_own_frame(R[a], Gt[a], tmp, tmp2, g_sigma[r])
                e_obs[r] = observation_row(r, chi[a], wts.gamma, bel, obs, want_grad, resid, u, g_mu, g_sigma)
                if want_grad and rotate:
                    mu_to_own_frame(R[a], gt[a], g_mu[r])


@njit(cache=True, parallel=True)
def frame_cache_kernel(phi, sigma, fiber, R, St, Pt, ld, ok):
    """Per row what :func:`~.gaussian.to_common_frame` computes of the covariance (``R = rho(exp phi)``,
    ``St = R^T Sigma R``, ``Pt = St^-1``, ``ld = ln det St``, ``ok``), by the same calls, hence the same bits."""
    fib = FiberArrays(*fiber)
    S, K = sigma.shape[0], sigma.shape[1]
    kmax = fib.rotate_z.shape[1]
    n_chunks = (S + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    for ch in prange(n_chunks):
        tmp = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        for r in range(ch * ROWS_PER_CHUNK, min(S, (ch + 1) * ROWS_PER_CHUNK)):
            frame_matrix(phi[r], fib.glk, fib.block_start, fib.block_dim, fib.block_spin, fib.rotate_z,
                         fib.z_partner, fib.z_rate, R[r], rsc)
            congruence_tn(R[r], sigma[r], tmp, St[r])
            good, logdet = spd_inverse_logdet(St[r], low, Pt[r])
            ok[r] = good
            ld[r] = logdet


def frame_cache(phi, sigma, fiber) -> tuple:
    """The frames and rotated covariances of every row, for :func:`site_terms` while Sigma and phi stay as they
    are (frozen, docs/model.md#replica-ensembles). ``phi`` in float64, as the energy reads it."""
    S, K = sigma.shape[0], sigma.shape[1]
    out = (np.zeros((S, K, K)), np.empty((S, K, K)), np.empty((S, K, K)), np.empty(S), np.empty(S, dtype=np.bool_))
    frame_cache_kernel(phi, sigma, tuple(fiber), *out)
    return out


def no_frame_cache(K: int) -> tuple:
    """The empty cache: :func:`site_terms` computes every row's frame."""
    return (np.zeros((0, K, K)), np.zeros((0, K, K)), np.zeros((0, K, K)), np.zeros(0), np.zeros(0, dtype=np.bool_))


def site_terms(tables, beliefs, priors, observations, weights, fiber, want_grad, out, grad_sigma=True,
               grad_phi=True, frames=None):
    """Prior, observation and alignment densities of every row, the pair KLs and weights, and with
    ``want_grad`` their gradients in (mu, Sigma, phi), into ``out``: one parallel pass over the occupied sites.

    Arguments are the bundles of :mod:`agents.kernels.bundles` (``SiteTables``, ``Beliefs``, ``Priors``,
    ``ObservationArrays``, ``Weights``, ``FiberArrays``, ``Outputs``) and a bool. ``out.g_phi`` receives the
    site-local part only (the frame-field terms add theirs afterwards); ``out.status[r]`` is ``NOT_SPD`` where
    Sigma is not positive definite, and then every row of that site has ``e_prior = inf``, no gradient and no
    pair values. Pair slots of sites without alignment are not written. ``grad_sigma=False`` (``grad_phi``)
    leaves ``out.g_sigma`` (``out.g_phi``) incomplete and skips the work only it needs: for a frozen field
    (docs/model.md#replica-ensembles); the other gradients are the same bits either way. ``frames``: a
    :func:`frame_cache` of this state's Sigma and phi, read instead of recomputing them at sites that rotate.
    """
    if frames is None:
        frames = no_frame_cache(beliefs.mu.shape[1])
    site_terms_kernel(tuple(tables), tuple(beliefs), tuple(priors), tuple(observations), tuple(weights),
                      tuple(fiber), bool(want_grad), bool(grad_sigma), bool(grad_phi), tuple(frames), tuple(out))
