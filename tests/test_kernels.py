"""The kernels' pieces on their own: the consensus kernel against the energy's pair values, and each site-local
term function against its formula in docs/model.md (the whole gradient is checked by finite differences in
test_gradients.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from gauge_vfe.agents.kernels.bundles import Beliefs, ObservationArrays, Priors, fiber_arrays, site_tables
from gauge_vfe.agents.kernels.consensus import site_pair_kl
from gauge_vfe.agents.kernels.site_terms import attention_weights, observation_row, pair_coefficient, prior_row
from gauge_vfe.agents.model.energy import evaluate

from factories import params, random_spd, random_system


def consensus_kl(layout, state):
    out = np.full(int(layout.pair_ptr[-1]), np.nan)
    ok = np.ones(layout.n_rows, dtype=np.bool_)  # rows alone at their site are not checked
    site_pair_kl(site_tables(layout), Beliefs(state.mu, state.sigma, state.phi), fiber_arrays(layout.fiber), out, ok)
    return out, ok


@pytest.mark.parametrize("spins", [(0,), (1,), (2,), (1, 2), (0, 1, 3)])
@pytest.mark.parametrize("boundary,soft", [("open", False), ("periodic", True)])
@pytest.mark.parametrize("include_self", [False, True])
def test_consensus_kernel_equals_the_energy_pair_values(spins, boundary, soft, include_self):
    """Same code for both (gaussian.site_to_common_frame, pair_kl_row), so the same bits, slot for slot."""
    for seed in range(2):
        layout, state = random_system(spins=spins, boundary=boundary, soft=soft, seed=seed, height=5, width=5,
                                      n_agents=4)
        ev = evaluate(layout, params(lambda_align=0.9, include_self=include_self), state, want_grad=False)
        kl, ok = consensus_kl(layout, state)
        assert ok.all()
        assert (np.diff(layout.site_ptr)[layout.occupied] >= 2).any()
        np.testing.assert_array_equal(kl, ev.kl)


def test_consensus_kernel_flags_a_non_spd_row():
    layout, state = random_system(seed=1, height=4, width=4)
    sigma = state.sigma.copy()
    counts = np.diff(layout.site_ptr)
    shared = layout.occupied[counts[layout.occupied] >= 2][0]
    row = int(layout.site_rows[layout.site_ptr[shared]])  # a row at a site with partners
    sigma[row] = -np.eye(layout.K)
    _, ok = consensus_kl(layout, state.replace(sigma=sigma))
    assert not ok[row] and ok.sum() == layout.n_rows - 1


def _kl(m0, S0, m1, S1):
    P1 = np.linalg.inv(S1)
    d = m1 - m0
    K = m0.size
    return 0.5 * (np.trace(P1 @ S0) + d @ P1 @ d - K + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


@pytest.mark.parametrize("rotated", [False, True])
def test_prior_row_density_and_gradients(rotated, rng):
    """docs/model.md#prior and #gradients: alpha chi KL(q || p), alpha chi S^-1 (mu - m),
    alpha chi (S^-1 - Sigma^-1) / 2; the Sigma^-1 piece of a rotated row goes to the common-frame matrix."""
    S, K, r, w, alpha = 3, 5, 1, 0.7, 1.3
    mu, m = rng.normal(size=(S, K)), rng.normal(size=(S, K))
    sigma, prior_sigma = random_spd(rng, S, K), random_spd(rng, S, K)
    precision = np.linalg.inv(prior_sigma)
    beliefs = Beliefs(mu, sigma, np.zeros((S, 3)))
    priors = Priors(m, precision, np.linalg.slogdet(prior_sigma)[1])
    Pt = np.linalg.inv(sigma[r])  # the row's inverse in the frame it was inverted in (here its own)
    Gt = rng.normal(size=(K, K))
    Gt0 = Gt.copy()
    g_mu, g_sigma = np.full((S, K), np.nan), np.full((S, K, K), np.nan)
    e = prior_row(r, w, np.linalg.slogdet(sigma[r])[1], Pt, alpha, beliefs, priors, True, rotated, Gt,
                  np.empty(K), g_mu, g_sigma)
    assert e == pytest.approx(alpha * w * _kl(mu[r], sigma[r], m[r], prior_sigma[r]), rel=1e-12)
    np.testing.assert_allclose(g_mu[r], alpha * w * precision[r] @ (mu[r] - m[r]), rtol=1e-12)
    want = alpha * w * (precision[r] - Pt) / 2
    if rotated:
        np.testing.assert_allclose(g_sigma[r] + (Gt - Gt0), want, rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(g_sigma[r], want, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(Gt, Gt0)
    assert np.isnan(g_mu[0]).all() and np.isnan(g_sigma[2]).all()  # other rows untouched


def test_observation_row_density_and_gradients(rng):
    """docs/model.md#observation and #gradients; it adds to the gradients the prior set."""
    S, K, D, r, w, gamma = 3, 4, 2, 2, 0.6, 1.7
    mu, sigma = rng.normal(size=(S, K)), random_spd(rng, S, K)
    o, C, Rn = rng.normal(size=(S, D)), rng.normal(size=(D, K)), random_spd(rng, 1, D)[0]
    Rinv = np.linalg.inv(Rn)
    obs = ObservationArrays(o, C, Rinv, C.T @ Rinv @ C, True)
    g_mu, g_sigma = np.ones((S, K)), np.ones((S, K, K))
    e = observation_row(r, w, gamma, Beliefs(mu, sigma, np.zeros((S, 3))), obs, True, np.empty(D), np.empty(D),
                        g_mu, g_sigma)
    res = o[r] - C @ mu[r]
    assert e == pytest.approx(gamma * w * 0.5 * (res @ Rinv @ res + np.trace(Rinv @ C @ sigma[r] @ C.T)), rel=1e-12)
    np.testing.assert_allclose(g_mu[r] - 1, -gamma * w * C.T @ Rinv @ res, rtol=1e-12)
    np.testing.assert_allclose(g_sigma[r] - 1, gamma * w * C.T @ Rinv @ C / 2, rtol=1e-12, atol=1e-14)
    empty = ObservationArrays(np.zeros((S, 0)), np.zeros((0, K)), np.zeros((0, 0)), np.zeros((K, K)), False)
    assert observation_row(r, w, gamma, Beliefs(mu, sigma, np.zeros((S, 3))), empty, True, np.empty(0),
                           np.empty(0), g_mu, g_sigma) == 0.0


@pytest.mark.parametrize("free_energy", [False, True])
@pytest.mark.parametrize("include_self", [False, True])
def test_attention_weights_and_pair_coefficients(free_energy, include_self, rng):
    """docs/model.md#alignment and #softmax-derivative: beta is the softmax of ln chi - KL / kappa over the
    partners, and lambda chi de/dKL_ab (the coefficient) matches a finite difference of the density."""
    n, a, kappa, lam_chi = 5, 2, 0.8, 1.3
    kl = rng.uniform(0, 3, n)
    kl[a] = 0.0
    chi = rng.uniform(0.2, 1.0, n)

    def density(kl_row):
        beta = np.empty(n)
        e, mean_kl = attention_weights(kl_row, chi, a, n, kappa, free_energy, include_self, beta)
        return e, mean_kl, beta

    e, mean_kl, beta = density(kl)
    partners = np.ones(n, dtype=bool)
    partners[a] = include_self
    want = np.zeros(n)
    want[partners] = softmax(np.log(chi[partners]) - kl[partners] / kappa)
    np.testing.assert_allclose(beta, want, rtol=1e-14, atol=1e-16)
    assert mean_kl == pytest.approx(want @ kl, rel=1e-14)
    if free_energy:
        assert e == pytest.approx(-kappa * np.log(np.sum(chi[partners] * np.exp(-kl[partners] / kappa))), rel=1e-13)
    else:
        assert e == pytest.approx(want @ kl, rel=1e-14)
    h = 1e-6
    for b in range(n):
        if b == a:
            continue
        up, down = kl.copy(), kl.copy()
        up[b] += h
        down[b] -= h
        fd = lam_chi * (density(up)[0] - density(down)[0]) / (2 * h)
        assert pair_coefficient(lam_chi, beta[b], kl[b], mean_kl, kappa, free_energy) == pytest.approx(fd, abs=1e-8)
