"""Closed forms, the transformer limit (docs/model.md#transformer-limit), global gauge invariance and agent relabelling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.energy import TERMS, beta_matrix, evaluate, kl_matrix
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import Observations, build_layout
from gauge_vfe.agents.model.state import State

from factories import params, random_spd, random_system


def _rho(fiber, phi):
    return fiber.rho(phi)


def one_site_system(spins, mu, sigma, phi, prior_mu=None, prior_sigma=None):
    """N agents on a 1x1 grid (the point-like limit)."""
    grid = Grid(1, 1)
    fiber = make_fiber(spins)
    n = len(mu)
    chis = [supports.whole(grid) for _ in range(n)]
    K = fiber.K
    pm = np.zeros((n, K)) if prior_mu is None else prior_mu
    ps = np.tile(np.eye(K), (n, 1, 1)) if prior_sigma is None else prior_sigma
    layout = build_layout(grid, fiber, chis, pm, ps)
    return layout, State.from_arrays(mu, sigma, phi)


def test_kl_closed_form():
    """KL(N(0, I2) || N((1,0), 2 I2)) = 0.4431472 (two spin-0 copies make K = 2 with trivial frames)."""
    mu = np.array([[0.0, 0.0], [1.0, 0.0]])
    sigma = np.array([np.eye(2), 2 * np.eye(2)])
    layout, state = one_site_system([0, 0], mu, sigma, np.zeros((2, 3)))
    ev = evaluate(layout, EnergyParams(alpha=0, gamma=0), state)
    kl = kl_matrix(layout, ev)
    assert kl[0, 1] == pytest.approx(0.4431472, abs=5e-8)
    exact = 0.5 * (1.0 + 0.5 - 2.0 + np.log(4.0))
    assert kl[0, 1] == pytest.approx(exact, rel=1e-14)
    assert kl[1, 0] == pytest.approx(0.5 * (4.0 + 1.0 - 2.0 - np.log(4.0)), rel=1e-14)
    # one partner each: beta = 1 and the weighted alignment energy is the sum of the two divergences
    assert ev.terms["alignment"] == pytest.approx(kl[0, 1] + kl[1, 0], rel=1e-14)


def test_prior_and_observation_closed_forms():
    mu = np.array([[0.5, -1.0, 2.0]])
    sigma = np.array([np.diag([1.0, 2.0, 0.5])])
    grid = Grid(1, 1)
    fiber = make_fiber([1])
    prior_mu = np.array([[1.0, 0.0, 0.0]])
    prior_sigma = np.array([2.0 * np.eye(3)])
    C = np.array([[1.0, 0.0, 1.0]])
    obs = Observations(np.array([[3.0]]), C, np.array([[0.5]]))
    layout = build_layout(grid, fiber, [supports.whole(grid)], prior_mu, prior_sigma, obs)
    ev = evaluate(layout, EnergyParams(alpha=2.0, gamma=3.0), State.from_arrays(mu, sigma, np.zeros((1, 3))))
    d = prior_mu[0] - mu[0]
    kl = 0.5 * (np.trace(sigma[0]) / 2 + d @ d / 2 - 3 + 3 * np.log(2.0) - np.log(np.linalg.det(sigma[0])))
    assert ev.terms["prior"] == pytest.approx(2.0 * kl, rel=1e-14)
    resid = 3.0 - (mu[0, 0] + mu[0, 2])
    e_obs = 0.5 * (resid ** 2 / 0.5 + (C @ sigma[0] @ C.T)[0, 0] / 0.5)
    assert ev.terms["observation"] == pytest.approx(3.0 * e_obs, rel=1e-14)


def test_curvature_and_smoothness_closed_forms():
    """phi = x a + y b on an open 3x3 grid: F = a x b on each of the 4 plaquettes, |D_mu phi| constant."""
    grid = Grid(3, 3)
    fiber = make_fiber([1])
    a, b = np.array([0.1, 0.2, -0.3]), np.array([-0.2, 0.05, 0.4])
    yy, xx = grid.coordinates()
    phi = (xx.ravel()[:, None] * a + yy.ravel()[:, None] * b)
    layout = build_layout(grid, fiber, [supports.whole(grid)], np.zeros((9, 3)), np.tile(np.eye(3), (9, 1, 1)))
    state = State.from_arrays(np.zeros((9, 3)), np.tile(np.eye(3), (9, 1, 1)), phi)
    ev = evaluate(layout, EnergyParams(lambda_curv=2.0, lambda_smooth=0.5), state)
    assert ev.terms["curvature"] == pytest.approx(2.0 * 4 * 0.5 * np.sum(np.cross(a, b) ** 2), rel=1e-13)
    # 6 x-edges and 6 y-edges
    assert ev.terms["smoothness"] == pytest.approx(0.5 * 0.5 * 6 * (a @ a + b @ b), rel=1e-13)


@pytest.mark.parametrize("spins", [[1], [2], [1, 2]])
def test_transformer_limit_flat_frames(spins):
    """Equal frames, Sigma = s^2 I: beta_ij = softmax_j(mu_i.mu_j/(s^2 kappa) - |mu_j|^2/(2 s^2 kappa))."""
    rng = np.random.default_rng(0)
    n, s2, kappa = 6, 0.7, 1.3
    K = make_fiber(spins).K
    mu = rng.normal(size=(n, K))
    common = rng.normal(size=3)
    layout, state = one_site_system(spins, mu, np.tile(s2 * np.eye(K), (n, 1, 1)), np.tile(common, (n, 1)))
    beta = beta_matrix(layout, evaluate(layout, EnergyParams(kappa=kappa), state))
    for i in range(n):
        logits = mu @ mu[i] / (s2 * kappa) - np.sum(mu * mu, axis=1) / (2 * s2 * kappa)
        logits[i] = -np.inf
        expected = np.exp(logits - logits.max())
        expected /= expected.sum()
        np.testing.assert_allclose(beta[i], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("spins", [[1], [3]])
def test_transformer_limit_query_frame(spins):
    """Query in frame R_i, keys in one shared frame R: logits mu_i^T W mu_j/(s^2 kappa) + key bias, W = R_i R^T."""
    rng = np.random.default_rng(1)
    n, s2, kappa = 5, 1.4, 0.6
    fiber = make_fiber(spins)
    K = fiber.K
    mu = rng.normal(size=(n, K))
    phi_query, phi_keys = rng.normal(size=3), rng.normal(size=3)
    phi = np.tile(phi_keys, (n, 1))
    phi[0] = phi_query
    layout, state = one_site_system(spins, mu, np.tile(s2 * np.eye(K), (n, 1, 1)), phi)
    beta = beta_matrix(layout, evaluate(layout, EnergyParams(kappa=kappa), state))
    W = _rho(fiber, phi_query) @ _rho(fiber, phi_keys).T
    logits = (mu[0] @ W @ mu[1:].T) / (s2 * kappa) - np.sum(mu[1:] ** 2, axis=1) / (2 * s2 * kappa)
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    np.testing.assert_allclose(beta[0, 1:], expected, atol=1e-12, rtol=0)
    assert beta[0, 0] == 0.0


def rotate_system(layout, state, rotvec):
    """The global gauge transformation (docs/model.md#gauge-invariance): adjoint action on frames, _rho(g) on the fiber."""
    fiber = layout.fiber
    g = _rho(fiber, rotvec)
    r1 = Rotation.from_rotvec(rotvec).as_matrix()
    obs = layout.observations
    new_obs = None
    if obs is not None:
        new_obs = Observations(obs.value @ g.T, obs.C, g @ obs.Rn @ g.T)
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in range(layout.n_agents)]
    new_layout = build_layout(layout.grid, fiber, chis, layout.prior_mu @ g.T,
                              g @ layout.prior_sigma @ g.T, new_obs)
    new_state = State.from_arrays(state.mu @ g.T, g @ state.sigma @ g.T, state.phi @ r1.T)
    return new_layout, new_state


@pytest.mark.parametrize("spins,boundary", [((1,), "open"), ((2,), "periodic"), ((1, 2), "open")])
@pytest.mark.parametrize("form,include_self", [("weighted", False), ("free_energy", True)])
def test_global_gauge_invariance(spins, boundary, form, include_self):
    layout, state = random_system(spins, boundary, soft=True, height=4, width=4, seed=5, obs_dim=0,
                                  observations=False)
    # observations with C = identity (D = K), as the invariance requires
    rng = np.random.default_rng(9)
    K = layout.K
    obs = Observations(rng.normal(size=(layout.n_rows, K)), np.eye(K), random_spd(rng, 1, K)[0])
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in range(layout.n_agents)]
    layout = build_layout(layout.grid, layout.fiber, chis, layout.prior_mu, layout.prior_sigma, obs)
    p = params(form=form, include_self=include_self)
    ev = evaluate(layout, p, state)
    for rotvec in ([0.3, -1.2, 0.7], [2.5, 0.1, -0.4]):
        l2, s2 = rotate_system(layout, state, np.array(rotvec))
        ev2 = evaluate(l2, p, s2)
        for term in TERMS:
            assert ev2.terms[term] == pytest.approx(ev.terms[term], rel=1e-10, abs=1e-12), term
        np.testing.assert_allclose(beta_matrix(l2, ev2), beta_matrix(layout, ev), atol=1e-10)


def test_left_action_breaks_only_the_frame_field_terms():
    """R_i -> _rho(g) R_i (phi_i -> log(g exp phi_i)) keeps prior, observation, alignment; not curvature."""
    layout, state = random_system((1,), "open", False, observations=False, seed=11)
    g = Rotation.from_rotvec([0.4, 0.9, -0.3])
    phi2 = (g * Rotation.from_rotvec(state.phi)).as_rotvec()
    gm = g.as_matrix()
    # beliefs move with the frames: q_i -> _rho(g) q_i, priors too
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in range(layout.n_agents)]
    l2 = build_layout(layout.grid, layout.fiber, chis, layout.prior_mu @ gm.T, gm @ layout.prior_sigma @ gm.T)
    s2 = State.from_arrays(state.mu @ gm.T, gm @ state.sigma @ gm.T, phi2)
    p = params()
    e1, e2 = evaluate(layout, p, state).terms, evaluate(l2, p, s2).terms
    for term in ("prior", "alignment"):
        assert e2[term] == pytest.approx(e1[term], rel=1e-10)
    assert abs(e2["curvature"] - e1["curvature"]) > 1e-6


def test_relabelling_agents_permutes_labels_only():
    layout, state = random_system((1, 2), "periodic", True, height=4, width=4, n_agents=4, seed=8)
    p = params()
    ev = evaluate(layout, p, state)
    perm = np.array([2, 0, 3, 1])  # new agent k is old agent perm[k]
    rows = np.concatenate([np.arange(layout.offset[i], layout.offset[i + 1]) for i in perm])
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in perm]
    obs = layout.observations
    l2 = build_layout(layout.grid, layout.fiber, chis, layout.prior_mu[rows], layout.prior_sigma[rows],
                      Observations(obs.value[rows], obs.C, obs.Rn))
    s2 = State.from_arrays(state.mu[rows], state.sigma[rows], state.phi[rows])
    ev2 = evaluate(l2, p, s2)
    for term in TERMS:
        assert ev2.terms[term] == pytest.approx(ev.terms[term], rel=1e-12), term
    np.testing.assert_allclose(ev2.grad_mu, ev.grad_mu[rows], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ev2.grad_sigma, ev.grad_sigma[rows], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ev2.grad_phi, ev.grad_phi[rows], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(beta_matrix(l2, ev2), beta_matrix(layout, ev)[rows][:, perm], atol=1e-14)
