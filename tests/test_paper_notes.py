"""docs/model.md#paper-notes: the key's sign convention and the Mahalanobis-to-KL step, each checked."""

from __future__ import annotations

import numpy as np
import pytest

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.energy import beta_matrix, evaluate, kl_matrix
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import build_layout
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.model.state import State

from factories import random_spd


def _one_site(fiber, mu, sigma, phi):
    grid = Grid(1, 1)
    n, K = mu.shape
    layout = build_layout(grid, fiber, [supports.whole(grid) for _ in range(n)], np.zeros((n, K)),
                          np.tile(np.eye(K), (n, 1, 1)))
    return layout, State.from_arrays(mu, sigma, phi)


def _softmax_rows(logits):
    np.fill_diagonal(logits, -np.inf)
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("spins", [[1], [1, 2]])
def test_key_sign_convention(spins):
    """With Omega_ij = e^{phi_i} e^{-phi_j} (this code: R = rho(exp phi), Omega_ij = R_i R_j^T) and row vectors,
    mu_i^T Omega_ij mu_j = Q_i K_j^T with Q_i = mu_i^T e^{phi_i}, K_j = mu_j^T e^{+phi_j}; the paper's
    K_j = mu_j^T e^{-phi_j} is wrong there. The paper's Q_i = mu_i^T e^{-phi_i}, K_j = mu_j^T e^{-phi_j} hold when
    frames act as e^{-phi} (Omega_ij = e^{-phi_i} e^{phi_j}): the code's weights at frames -phi."""
    rng = np.random.default_rng(8)
    fiber = make_fiber(spins)
    n, K, s2, kappa = 5, fiber.K, 0.6, 1.3
    mu = rng.normal(size=(n, K))
    phi = rng.normal(size=(n, 3))
    E = np.array([fiber.rho(p) for p in phi])  # e^{phi_i} in the representation
    Einv = np.array([fiber.rho(-p) for p in phi])  # e^{-phi_i} = (e^{phi_i})^T
    omega = np.einsum("iab,jcb->ijac", E, E)  # R_i R_j^T
    logit = np.einsum("ia,ijab,jb->ij", mu, omega, mu)
    Q = np.einsum("ia,iab->ib", mu, E)  # row vectors mu_i^T e^{phi_i}
    K_plus = np.einsum("ja,jab->jb", mu, E)
    K_paper = np.einsum("ja,jab->jb", mu, Einv)
    np.testing.assert_allclose(Q @ K_plus.T, logit, atol=1e-12, rtol=0)
    assert np.abs(Q @ K_paper.T - logit).max() > 0.1
    # the paper's convention: beta of the code at frames -phi is softmax(Q' K'^T / (s2 kappa) - |K'_j|^2 / (2 s2 kappa))
    Qp, Kp = np.einsum("ia,iab->ib", mu, Einv), K_paper
    expected = _softmax_rows(Qp @ Kp.T / (s2 * kappa) - np.sum(Kp * Kp, axis=1)[None, :] / (2 * s2 * kappa))
    layout, state = _one_site(fiber, mu, np.tile(s2 * np.eye(K), (n, 1, 1)), -phi)
    got = beta_matrix(layout, evaluate(layout, EnergyParams(kappa=kappa), state, want_grad=False))
    np.testing.assert_allclose(got, expected, atol=1e-12, rtol=0)


def test_expected_mahalanobis_is_the_reverse_kl():
    """E[d^2 / 2] under q_i q_j, d^2 = (x_i - Omega_ij x_j)^T Sigma_i^-1 (x_i - Omega_ij x_j), equals
    KL(Omega_ij q_j || q_i) + K - (ln det Sigma_i - ln det Sigma_j) / 2, the reverse divergence, not the forward
    KL(q_i || Omega_ij q_j) the alignment uses. Monte Carlo with a fixed seed (the error bar is the samples' own
    standard error: 24.86 +- 0.04 against 24.77 reverse, 9.23 forward) and exactly from the moments."""
    rng = np.random.default_rng(2024)
    fiber = make_fiber([1])
    K = fiber.K
    mu = np.array([[0.4, -1.0, 0.8], [1.5, 0.3, -0.6]])
    sigma = np.array([np.diag([0.3, 0.5, 0.4]), random_spd(rng, 1, K, spread=0.9, floor=1.0)[0]])
    phi = np.array([[0.2, -0.5, 0.9], [-1.1, 0.4, 0.3]])
    layout, state = _one_site(fiber, mu, sigma, phi)
    kl = kl_matrix(layout, evaluate(layout, EnergyParams(), state, want_grad=False))
    forward, reverse = kl[0, 1], kl[1, 0]  # KL(q_i || Omega q_j); KL(q_j || Omega_ji q_i) = KL(Omega_ij q_j || q_i)
    ld = np.linalg.slogdet(sigma)[1]
    const = K - 0.5 * (ld[0] - ld[1])
    omega = fiber.rho(phi[0]) @ fiber.rho(phi[1]).T
    n = 400_000
    xi = rng.multivariate_normal(mu[0], sigma[0], size=n)
    xj = rng.multivariate_normal(mu[1], sigma[1], size=n)
    d = xi - xj @ omega.T
    half_d2 = 0.5 * np.einsum("na,ab,nb->n", d, np.linalg.inv(sigma[0]), d)
    mc, se = half_d2.mean(), half_d2.std(ddof=1) / np.sqrt(n)
    assert abs(mc - (reverse + const)) < 4 * se, (mc, se, reverse + const)
    assert abs(mc - (forward + const)) > 50 * se, (mc, se, forward + const)
    assert abs(mc - forward) > 50 * se
    # and exactly, from the moments: E[d^2] = K + tr(Sigma_i^-1 Omega Sigma_j Omega^T) + D^T Sigma_i^-1 D
    P = np.linalg.inv(sigma[0])
    D = mu[0] - omega @ mu[1]
    exact = 0.5 * (K + np.trace(P @ omega @ sigma[1] @ omega.T) + D @ P @ D)
    assert exact == pytest.approx(reverse + const, rel=1e-12)
