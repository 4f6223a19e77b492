"""The site-local terms of the action and their exact gradients: prior, observation and alignment.

One parallel pass over occupied sites. Every row (agent-site) belongs to exactly one site, so a site's
iteration owns its rows' outputs and no two threads write the same memory.

Alignment is computed in a common ("tilde") frame: with ``R_i = rho(exp phi_i)``,
``mt_i = R_i^T mu_i``, ``St_i = R_i^T Sigma_i R_i``, the transported divergence is
``KL(q_i || Omega_ij q_j) = KL(R_i^T q_i || R_j^T q_j) = KL(mt_i, St_i || mt_j, St_j)`` because KL is invariant
under a common rotation. Each row is rotated and inverted once (O(K^3)); each ordered pair costs O(K^2).

Gradient of the alignment term. With ``c_ij = dE_align/dKL_ij`` (the softmax derivative included, see
:func:`_pair_coefficients`), and ``d = mt_j - mt_i``, ``Pt = St^-1``:

* ``dKL_ij/dmt_i = -Pt_j d``, ``dKL_ij/dmt_j = Pt_j d``;
* ``dKL_ij/dSt_i = (Pt_j - Pt_i)/2``, ``dKL_ij/dSt_j = (Pt_j - Pt_j (St_i + d d^T) Pt_j)/2``; the j side is
  accumulated as ``B_j = sum_i c_ij (St_i + d d^T)`` so the O(K^3) product is done once per row.

Back to each agent's own frame: for ``g~ = dE/dmt``, ``G~ = dE/dSt``,
``dE/dmu = R g~``, ``dE/dSigma = R G~ R^T``, and through ``dR = ((J_l dphi).G) R``:
``dE/dphi = J_l(phi) tau`` with ``tau_a = tr(G_a X)``, ``X = g~ mt^T + 2 G~ St`` (only X's entries on the
generators' nonzero pattern are formed). The prior gradient ``(S^-1 - Sigma^-1)/2`` uses
``Sigma^-1 = R Pt R^T`` so it joins the same conjugation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lie import left_jacobian, rho_exp
from .gaussian import kl_common, own_frame, to_common_frame
from .linalg import congruence_nt, matmul, quad_form, trace_product

NOT_SPD = 1  # status code of a row whose Sigma is not positive definite


@njit(cache=True)
def _pair_coefficients(kl_row, chi_row, a, n, kappa, free_energy, include_self, beta_out):
    """Softmax weights of row ``a`` over its partners at a site, into ``beta_out``; returns (e, <KL>).

    ``beta_out[b] = beta_ab`` (0 for b == a unless include_self); ``e`` is the alignment energy density of
    the row divided by chi_a and lambda; ``<KL> = sum_b beta_ab KL_ab``. The caller forms dE/dKL_ab from them:
    weighted form ``E = sum_b beta_b KL_b``, ``dE/dKL_b = beta_b (1 - (KL_b - <KL>)/kappa)``;
    free-energy form ``E = -kappa ln sum_b chi_b exp(-KL_b/kappa)``, ``dE/dKL_b = beta_b``.
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


@njit(cache=True, parallel=True)
def local_terms(
    site_ptr, site_rows, occupied, pair_ptr, chunks, max_per_site, chi,
    mu, sigma, phi,
    prior_mu, prior_precision, prior_logdet,
    obs, obs_C, obs_precision, obs_info, has_obs,
    alpha, gamma, lam, kappa, free_energy, include_self,
    block_start, block_dim, block_spin, rotate_z, z_partner, z_rate,
    gen_a, gen_p, gen_q, gen_val,
    want_grad,
    e_prior, e_obs, e_align, g_mu, g_sigma, g_phi, kl_buf, beta_buf, status,
):
    K = mu.shape[1]
    D = obs_C.shape[0]
    kmax = rotate_z.shape[1]
    m = max_per_site
    n_chunks = chunks.shape[0] - 1
    for ch in prange(n_chunks):
        # Scratch owned by this chunk: allocated once per chunk, never inside the site loops.
        R_s = np.zeros((m, K, K))
        St_s = np.empty((m, K, K))
        Pt_s = np.empty((m, K, K))
        Gt_s = np.empty((m, K, K))
        B_s = np.empty((m, K, K))
        mt_s = np.empty((m, K))
        gt_s = np.empty((m, K))
        ld_s = np.empty(m)
        acc_s = np.empty(m)
        chi_s = np.empty(m)
        kl_s = np.empty(m)
        beta_s = np.empty(m)
        v = np.empty(K)
        dvec = np.empty(K)
        tmp = np.empty((K, K))
        tmp2 = np.empty((K, K))
        low = np.empty((K, K))
        rsc = np.empty((3, kmax, kmax))
        jac = np.empty((3, 3))
        tau = np.empty(3)
        resid = np.empty(D)
        u = np.empty(D)
        for k in range(chunks[ch], chunks[ch + 1]):
            site = occupied[k]
            p0 = site_ptr[site]
            n = site_ptr[site + 1] - p0
            rotate = lam != 0.0 and n >= 2
            site_ok = True
            # 1. Per row: frame, rotated belief, precision, log-determinant.
            for a in range(n):
                r = site_rows[p0 + a]
                chi_s[a] = chi[r]
                if rotate:
                    rho_exp(phi[r], block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, R_s[a], rsc)
                    ok, ld = to_common_frame(R_s[a], mu[r], sigma[r], mt_s[a], St_s[a], Pt_s[a], tmp, low)
                else:
                    ok, ld = own_frame(mu[r], sigma[r], mt_s[a], St_s[a], Pt_s[a], low)
                ld_s[a] = ld
                status[r] = 0 if ok else NOT_SPD
                if not ok:
                    site_ok = False
            if not site_ok:
                for a in range(n):
                    r = site_rows[p0 + a]
                    e_prior[r] = np.inf
                    e_obs[r] = 0.0
                    e_align[r] = 0.0
                continue
            # 2. Prior and observation, in the agent's own frame.
            for a in range(n):
                r = site_rows[p0 + a]
                w = chi_s[a]
                # tr(S^-1 Sigma) = tr(Pt... ) is frame independent; use own-frame Sigma.
                for i in range(K):
                    dvec[i] = prior_mu[r, i] - mu[r, i]
                kl_prior = 0.5 * (trace_product(prior_precision[r], sigma[r]) + quad_form(prior_precision[r], dvec)
                                  - K + prior_logdet[r] - ld_s[a])
                e_prior[r] = alpha * w * kl_prior
                e_o = 0.0
                if has_obs:
                    for i in range(D):
                        s = obs[r, i]
                        for j in range(K):
                            s -= obs_C[i, j] * mu[r, j]
                        resid[i] = s
                    e_o = 0.5 * (quad_form(obs_precision, resid) + trace_product(obs_info, sigma[r]))
                e_obs[r] = gamma * w * e_o
                e_align[r] = 0.0
                if want_grad:
                    for i in range(K):
                        s = 0.0
                        for j in range(K):
                            s -= prior_precision[r, i, j] * dvec[j]
                        g_mu[r, i] = alpha * w * s
                    if has_obs:
                        # dE/dmu = -C^T Rn^-1 (o - C mu); u = Rn^-1 resid once per row
                        for j in range(D):
                            t = 0.0
                            for l in range(D):
                                t += obs_precision[j, l] * resid[l]
                            u[j] = t
                        for i in range(K):
                            s = 0.0
                            for j in range(D):
                                s += obs_C[j, i] * u[j]
                            g_mu[r, i] -= gamma * w * s
                    for i in range(3):
                        g_phi[r, i] = 0.0
                    if rotate:
                        for i in range(K):
                            gt_s[a, i] = 0.0
                            for j in range(K):
                                Gt_s[a, i, j] = 0.0
                                B_s[a, i, j] = 0.0
                        acc_s[a] = 0.0
            # 3. Alignment: transported KL between every ordered pair at the site, softmax weights.
            if lam != 0.0 and (n >= 2 or include_self):
                q0 = pair_ptr[k]
                for a in range(n):
                    kl_s[a] = 0.0
                    for b in range(n):
                        if b == a:
                            continue
                        kl_s[b] = kl_common(mt_s[a], St_s[a], ld_s[a], mt_s[b], Pt_s[b], ld_s[b], dvec)
                    energy, mean_kl = _pair_coefficients(kl_s, chi_s, a, n, kappa, free_energy, include_self, beta_s)
                    r = site_rows[p0 + a]
                    e_align[r] = lam * chi_s[a] * energy
                    for b in range(n):
                        kl_buf[q0 + a * n + b] = kl_s[b]
                        beta_buf[q0 + a * n + b] = beta_s[b]
                    if not (want_grad and rotate):
                        continue
                    for b in range(n):
                        if b == a:
                            continue
                        coef = lam * chi_s[a] * beta_s[b]
                        if not free_energy:
                            coef *= 1.0 - (kl_s[b] - mean_kl) / kappa
                        if coef == 0.0:
                            continue
                        for i in range(K):
                            dvec[i] = mt_s[b, i] - mt_s[a, i]
                        for i in range(K):
                            s = 0.0
                            for j in range(K):
                                s += Pt_s[b, i, j] * dvec[j]
                            v[i] = s
                        for i in range(K):
                            gt_s[a, i] -= coef * v[i]
                            gt_s[b, i] += coef * v[i]
                            for j in range(K):
                                Gt_s[a, i, j] += 0.5 * coef * (Pt_s[b, i, j] - Pt_s[a, i, j])
                                B_s[b, i, j] += coef * (St_s[a, i, j] + dvec[i] * dvec[j])
                        acc_s[b] += coef
            if not want_grad:
                continue
            # 4. Back to each agent's own frame.
            for a in range(n):
                r = site_rows[p0 + a]
                w = chi_s[a]
                if rotate:
                    # j-side covariance gradient: (acc Pt - Pt B Pt)/2
                    matmul(B_s[a], Pt_s[a], tmp)
                    matmul(Pt_s[a], tmp, tmp2)
                    for i in range(K):
                        for j in range(K):
                            Gt_s[a, i, j] += 0.5 * (acc_s[a] * Pt_s[a, i, j] - tmp2[i, j])
                    # phi: tau_c = tr(G_c X), X = g~ mt^T + 2 G~ St, on the generators' nonzeros
                    tau[0] = 0.0
                    tau[1] = 0.0
                    tau[2] = 0.0
                    for e in range(gen_val.shape[0]):
                        p = gen_p[e]
                        q = gen_q[e]
                        x = gt_s[a, q] * mt_s[a, p]
                        s = 0.0
                        for l in range(K):
                            s += Gt_s[a, q, l] * St_s[a, l, p]
                        tau[gen_a[e]] += gen_val[e] * (x + 2.0 * s)
                    left_jacobian(phi[r], jac)
                    for i in range(3):
                        g_phi[r, i] = jac[i, 0] * tau[0] + jac[i, 1] * tau[1] + jac[i, 2] * tau[2]
                    # mu: R g~
                    R = R_s[a]
                    for i in range(K):
                        s = 0.0
                        for j in range(K):
                            s += R[i, j] * gt_s[a, j]
                        g_mu[r, i] += s
                    # Sigma: R (G~ - alpha chi Pt / 2) R^T + alpha chi S^-1 / 2
                    for i in range(K):
                        for j in range(K):
                            Gt_s[a, i, j] -= 0.5 * alpha * w * Pt_s[a, i, j]
                    congruence_nt(R, Gt_s[a], tmp, g_sigma[r])
                    for i in range(K):
                        for j in range(K):
                            g_sigma[r, i, j] += 0.5 * alpha * w * prior_precision[r, i, j]
                else:
                    for i in range(K):
                        for j in range(K):
                            g_sigma[r, i, j] = 0.5 * alpha * w * (prior_precision[r, i, j] - Pt_s[a, i, j])
                if has_obs:
                    for i in range(K):
                        for j in range(K):
                            g_sigma[r, i, j] += 0.5 * gamma * w * obs_info[i, j]
