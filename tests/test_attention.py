"""The attention layer (docs/model.md#attention-layer): messages against numpy attention, the step decomposition,
the two roles against finite differences, the delta limit's scaling and the conserved mean of the collapse."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import numba_threads

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.attention import attention, beta_entropy, isotropic_beta, messages, row_entropy
from gauge_vfe.agents.model.energy import evaluate
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import build_layout
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.model.state import State
from gauge_vfe.agents.runner.simulation import Simulation

from factories import params, random_system

H = 1e-5
TOL = 1e-6


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many tiny evaluations: one thread avoids a parallel region's wake-up on each (same numbers on any count)."""
    with numba_threads(1):
        yield


def one_site(spins, mu, s2, phi):
    """N agents on a 1x1 grid with Sigma = s2 I (the transformer limit, docs/model.md#transformer-limit)."""
    grid = Grid(1, 1)
    fiber = make_fiber(spins)
    n, K = mu.shape
    layout = build_layout(grid, fiber, [supports.whole(grid) for _ in range(n)], np.zeros((n, K)),
                          np.tile(np.eye(K), (n, 1, 1)))
    return layout, State.from_arrays(mu, np.tile(s2 * np.eye(K), (n, 1, 1)), phi)


def numpy_attention(fiber, mu, phi, s2, kappa):
    """softmax(Q K^T / (s2 kappa) - |K_j|^2 / (2 s2 kappa)) (diagonal excluded) and the frames R_i, with the
    common-frame queries and keys Q_i = K_i = R_i^T mu_i (docs/model.md#attention-layer)."""
    R = np.array([fiber.rho(p) for p in phi])
    Q = np.einsum("nji,nj->ni", R, mu)  # R_i^T mu_i
    logits = Q @ Q.T / (s2 * kappa) - np.sum(Q * Q, axis=1)[None, :] / (2 * s2 * kappa)
    np.fill_diagonal(logits, -np.inf)
    A = np.exp(logits - logits.max(axis=1, keepdims=True))
    return A / A.sum(axis=1, keepdims=True), R


def test_messages_of_the_shipped_scenario_are_numpy_attention():
    """attention_layer (equal frames, Sigma = sigma^2 I): m = softmax(Q K^T / (sigma^2 kappa) + bias) V, V_j = mu_j."""
    sim = Simulation.from_scenario("attention_layer")
    st, p = sim.state, sim.energy_params
    s2 = float(st.sigma[0, 0, 0])
    A, R = numpy_attention(sim.layout.fiber, st.mu, st.phi, s2, p.kappa)
    np.testing.assert_allclose(R[1:], np.broadcast_to(R[0], R[1:].shape), atol=0)  # equal frames: Omega = I
    # V_j = R_i R_j^T mu_j = mu_j here
    np.testing.assert_allclose(sim.messages(), A @ st.mu, atol=1e-12, rtol=0)
    np.testing.assert_allclose(sim.beta(), A, atol=1e-12, rtol=0)  # the weights behind it are the energy's


@pytest.mark.parametrize("spins", [[1], [1, 2], [3]])
def test_messages_with_distinct_frames(spins):
    """Every agent in its own frame: m_i = sum_j A_ij V_ij with V_ij = R_i R_j^T mu_j (the value transported
    into the query's frame), A the attention of the common-frame queries and keys."""
    rng = np.random.default_rng(3)
    fiber = make_fiber(spins)
    n, s2, kappa = 6, 0.8, 1.7
    mu = rng.normal(size=(n, fiber.K))
    phi = rng.normal(size=(n, 3))
    layout, state = one_site(spins, mu, s2, phi)
    A, R = numpy_attention(fiber, mu, phi, s2, kappa)
    V = np.einsum("iab,jcb,jc->ija", R, R, mu)  # V[i, j] = R_i R_j^T mu_j
    expected = np.einsum("ij,ija->ia", A, V)
    got = messages(layout, EnergyParams(kappa=kappa, lambda_align=0.0), state)  # weights whatever lambda is
    np.testing.assert_allclose(got, expected, atol=1e-12, rtol=0)


def test_a_solitary_row_gets_no_message_unless_it_attends_to_itself():
    mu = np.array([[0.3, -1.0, 2.0]])
    layout, state = one_site([1], mu, 0.5, np.array([[0.2, 0.1, -0.4]]))
    assert np.all(messages(layout, EnergyParams(), state) == 0.0)
    np.testing.assert_allclose(messages(layout, EnergyParams(include_self=True), state), mu, atol=1e-15)


@pytest.mark.parametrize("form", ["free_energy", "weighted"])
@pytest.mark.parametrize("frames", ["equal", "distinct"])
def test_one_plain_step_is_attention_plus_reverse_term(form, frames):
    """docs/model.md#step-decomposition: with Sigma = s I, chi = 1 and only the alignment on,

        mu_i' = mu_i + lr lambda / s [ (m_i - mu_i) + c_i + r_i ],
        c_i = -(1/kappa) sum_j beta_ij (KL_ij - <KL>_i) V_ij                  (weighted form; 0 for free_energy)
        r_i = sum_j b_ji (V_ij - mu_i),  b_ji = dE/dKL_ji / lambda            (the reverse, key/value role)

    with V_ij = Omega_ij mu_j; one step of the shipped attention_layer scenario (its dynamics) against numpy."""
    overrides = ["energy.alpha=0", f"energy.form={form}", "dynamics.steps=1"]
    if frames == "distinct":
        overrides.append("agents.init.phi={kind: random, per: agent, scale: 1.0}")
    sim = Simulation.from_scenario("attention_layer", overrides)
    st, p = sim.state, sim.energy_params
    lr, lam, kappa = sim.dynamics_params.lr_mu, p.lambda_align, p.kappa
    assert (np.ptp(st.phi, axis=0).max() > 0.1) == (frames == "distinct")
    s = float(st.sigma[0, 0, 0])
    mu = st.mu
    m = sim.messages()
    beta, kl = sim.beta(), np.nan_to_num(sim.kl())
    R = np.array([sim.layout.fiber.rho(x) for x in st.phi])
    V = np.einsum("iab,jcb,jc->ija", R, R, mu)
    mean_kl = np.sum(beta * kl, axis=1, keepdims=True)
    b = beta * (1 - (kl - mean_kl) / kappa) if form == "weighted" else beta
    c = np.einsum("ij,ija->ia", b - beta, V)
    r = np.einsum("ji,ija->ia", b, V) - b.sum(axis=0)[:, None] * mu
    sim.step()
    expected = mu + lr * lam / s * ((m - mu) + c + r)
    np.testing.assert_allclose(sim.state.mu, expected, atol=1e-12, rtol=0)
    if form == "free_energy":
        assert np.all(c == 0)
    # the two roles of the kernel are the bracket's two parts
    att = attention(sim.layout, p, st)
    np.testing.assert_allclose(att.forward, -lam / s * ((m - mu) + c), atol=1e-12, rtol=0)
    np.testing.assert_allclose(att.reverse, -lam / s * r, atol=1e-12, rtol=0)


def _alignment_only(**kw):
    return params(alpha=0.0, gamma=0.0, lambda_curv=0.0, lambda_smooth=0.0, **kw)


@pytest.mark.parametrize("spins,form,include_self", [((1,), "weighted", False), ((1, 2), "free_energy", False),
                                                     ((2,), "weighted", True), ((1,), "free_energy", True)])
def test_roles_sum_to_the_alignment_gradient_and_match_finite_differences(spins, form, include_self):
    """forward_i = d(density_i)/dmu_i (i as the query), reverse_i = d(sum of the others' densities)/dmu_i (i as a
    key and value), each by central differences in float64; their sum is the energy's alignment gradient."""
    layout, state = random_system(spins, "open", soft=True, observations=False, height=3, width=3, seed=4)
    p = _alignment_only(form=form, include_self=include_self)
    att = attention(layout, p, state)
    np.testing.assert_allclose(att.forward + att.reverse, evaluate(layout, p, state).grad_mu, atol=1e-12, rtol=0)
    fd_f = np.zeros_like(state.mu)
    fd_r = np.zeros_like(state.mu)
    for r, a in np.ndindex(*state.mu.shape):
        dens = []
        for delta in (H, -H):
            y = state.mu.copy()
            y[r, a] += delta
            dens.append(evaluate(layout, p, state.replace(mu=y), want_grad=False).densities["alignment"])
        own = (dens[0][r] - dens[1][r]) / (2 * H)
        fd_f[r, a] = own
        fd_r[r, a] = (dens[0].sum() - dens[1].sum()) / (2 * H) - own
    np.testing.assert_allclose(att.forward, fd_f, atol=TOL, rtol=0)
    np.testing.assert_allclose(att.reverse, fd_r, atol=TOL, rtol=0)
    assert np.abs(att.reverse).max() > 1e-2  # the reverse role is there to be checked


def test_frame_reading_of_a_logged_frame(tmp_path):
    """traj.messages(step) recomputes what the simulation had at that step."""
    import gauge_vfe as gv

    sim = Simulation.from_scenario("attention_layer", ["dynamics.steps=10"])
    traj = gv.run("attention_layer", output=tmp_path / "a.h5", steps=10)
    sim.run(10)
    np.testing.assert_array_equal(traj.messages(step=10), sim.messages())
    np.testing.assert_array_equal(traj.attention(step=10).reverse, sim.attention().reverse)


SIGMAS = np.logspace(0, -3, 7)


def _delta_limit_system(seed=2, n=8, K=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, K)), rng.normal(size=3)


@pytest.mark.parametrize("power", [2, 0])
def test_delta_limit_against_the_closed_form(power):
    """kappa = kappa0 sigma^power, Sigma = sigma^2 I, sigma from 1 to 1e-3: the engine's weights and their entropy
    are softmax(-|mu_i - mu_j|^2 / (2 kappa0 sigma^(2 + power))) (docs/model.md#delta-limit); with kappa ~ sigma^2
    the logits grow as sigma^-4 and attention is hard (entropy 0) by sigma = 1e-3."""
    mu, phi = _delta_limit_system()
    kappa0 = 1.5
    entropies = []
    for sigma in SIGMAS:
        s2, kappa = sigma ** 2, kappa0 * sigma ** power
        layout, state = one_site([1], mu, s2, np.tile(phi, (len(mu), 1)))
        ev = evaluate(layout, EnergyParams(kappa=kappa), state, want_grad=False)
        expected = isotropic_beta(mu, s2, kappa)
        from gauge_vfe.agents.model.energy import beta_matrix

        np.testing.assert_allclose(beta_matrix(layout, ev), expected, atol=1e-12, rtol=0)
        h = beta_entropy(layout, ev)
        np.testing.assert_allclose(h, row_entropy(expected), atol=1e-10, rtol=0)
        entropies.append(h.mean())
    assert entropies[0] > 0.3
    assert entropies[-1] < 1e-12
    assert np.all(np.diff(entropies) <= 1e-12)  # hardening is monotone in sigma here


def test_kappa_times_sigma_squared_fixed_keeps_attention():
    """kappa = kappa0 / sigma^2 holds the logit temperature sigma^2 kappa: the weights do not change with sigma."""
    mu, phi = _delta_limit_system()
    betas = []
    for sigma in SIGMAS:
        layout, state = one_site([1], mu, sigma ** 2, np.tile(phi, (len(mu), 1)))
        from gauge_vfe.agents.model.energy import beta_matrix

        betas.append(beta_matrix(layout, evaluate(layout, EnergyParams(kappa=1.5 / sigma ** 2), state,
                                                  want_grad=False)))
    for b in betas[1:]:
        np.testing.assert_allclose(b, betas[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("form", ["free_energy", "weighted"])
def test_attention_only_collapse_conserves_the_mean(form):
    """attention_collapse (alpha = 0, no observations, equal frames): the alignment depends on the means only
    through their differences, so every plain step keeps their average (docs/model.md#attention-collapse)."""
    sim = Simulation.from_scenario("attention_collapse", [f"energy.form={form}"], keep_history=False)
    x0 = sim.state.mu.mean(axis=0)
    spread0 = np.linalg.norm(sim.state.mu - x0)
    for _ in range(60):
        sim.step()
        np.testing.assert_allclose(sim.state.mu.mean(axis=0), x0, atol=1e-14, rtol=0)
    if form == "free_energy":  # the weighted form at kappa 1 splits into clusters instead (the benchmark)
        assert np.linalg.norm(sim.state.mu - x0) < 0.7 * spread0  # and the beliefs did move towards it


def test_collapse_reaches_the_mean_at_the_linear_rate():
    """free_energy collapse: once attention is uniform the spread contracts per step by the linear theory's
    a_r = 1 - lr 2 N lambda_align / ((N - 1) s) (docs/model.md#attention-collapse, #separation at alpha = 0)."""
    sim = Simulation.from_scenario("attention_collapse", keep_history=False)
    n, lr, lam = sim.layout.n_agents, sim.dynamics_params.lr_mu, sim.energy_params.lambda_align
    s = float(sim.state.sigma[0, 0, 0])
    a_r = 1 - lr * 2 * n * lam / ((n - 1) * s)
    x0 = sim.state.mu.mean(axis=0)
    spreads = []
    for _ in range(250):
        sim.step()
        spreads.append(np.linalg.norm(sim.state.mu - x0))
    assert spreads[-1] / spreads[-2] == pytest.approx(a_r, abs=1e-6)
    assert spreads[-1] < 1e-4 * np.linalg.norm(Simulation.from_scenario("attention_collapse").state.mu - x0)


def test_messages_do_not_depend_on_the_thread_count():
    """Each site is computed by one thread (docs/model.md#threads): the same bits on 1 and 2 threads."""
    layout, state = random_system((1, 2), "periodic", soft=True, observations=False, height=6, width=6, n_agents=4,
                                  seed=9)
    p = _alignment_only()
    one = attention(layout, p, state)
    with numba_threads(2):
        two = attention(layout, p, state)
    for a, b in ((one.messages, two.messages), (one.forward, two.forward), (one.reverse, two.reverse)):
        np.testing.assert_array_equal(a, b)
