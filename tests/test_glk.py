"""GL(K) frames (docs/model.md#glk-frames): the matrix exponential and its Frechet derivative against scipy, every
energy term's gradient by central finite differences, the so(3) restriction, gauge covariance, the transformer
limit for an arbitrary W_Q W_K^T, a run end to end and the refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gauge_vfe.agents.kernels.expm import expm, expm_frechet


# --- the matrix exponential ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("scale", [0.0, 1e-8, 0.1, 1.0, 2.5])
def test_expm_and_frechet_match_scipy(n, scale):
    rng = np.random.default_rng(100 * n + int(10 * scale))
    a = rng.normal(size=(n, n)) * scale
    e = rng.normal(size=(n, n))
    a_before = a.copy()
    # rounding of the squarings grows with the norm (scipy's Pade has the same): relative 2e-14 n per unit of it
    rel = 2e-14 * n * max(1.0, np.abs(a).sum(axis=0).max())
    out = np.empty((n, n))
    expm(a, out, np.empty((6, n, n)))
    np.testing.assert_array_equal(a, a_before)  # expm leaves its argument alone
    ref = scipy.linalg.expm(a)
    assert np.abs(out - ref).max() <= rel * max(1.0, np.abs(ref).max())
    e_before = e.copy()
    ex, lf = expm_frechet(a, e)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(e, e_before)
    eref, lref = scipy.linalg.expm_frechet(a, e)
    assert np.abs(ex - eref).max() <= rel * max(1.0, np.abs(eref).max())
    assert np.abs(lf - lref).max() <= rel * max(1.0, np.abs(lref).max())
    # L is linear in its direction: a huge or tiny direction gives the same relative accuracy
    _, lf = expm_frechet(a, 1e9 * e)
    assert np.abs(lf / 1e9 - lref).max() <= rel * max(1.0, np.abs(lref).max())


def test_expm_of_nonfinite_is_nonfinite():
    a = np.array([[np.nan, 0.0], [0.0, 1.0]])
    out = np.empty((2, 2))
    expm(a, out, np.empty((6, 2, 2)))
    assert not np.isfinite(out).all()


# --- every term's gradient by central finite differences -------------------------------------------------------

@pytest.fixture
def one_thread():
    """Thousands of tiny evaluations: one thread (as tests/test_gradients.py)."""
    from conftest import numba_threads

    with numba_threads(1):
        yield


GLK_CASES = [(K, boundary, soft) for K in (2, 3) for boundary in ("open", "periodic") for soft in (False, True)]
TERM_ONLY = {"prior": dict(gamma=0, lambda_align=0, lambda_curv=0, lambda_smooth=0),
             "observation": dict(alpha=0, lambda_align=0, lambda_curv=0, lambda_smooth=0),
             "alignment": dict(alpha=0, gamma=0, lambda_curv=0, lambda_smooth=0),
             "curvature": dict(alpha=0, gamma=0, lambda_align=0, lambda_smooth=0),
             "smoothness": dict(alpha=0, gamma=0, lambda_align=0, lambda_curv=0)}


@pytest.mark.parametrize("K,boundary,soft", GLK_CASES)
@pytest.mark.parametrize("form", ["weighted", "free_energy"])
def test_glk_total_gradient(one_thread, K, boundary, soft, form):
    from factories import params, random_system
    from test_gradients import assert_gradients_match

    layout, state = random_system(boundary=boundary, soft=soft, height=3, width=4, seed=GLK_CASES.index(
        (K, boundary, soft)), glk=K, phi_scale=0.4)
    assert state.phi.shape == (layout.n_rows, K * K)
    assert_gradients_match(layout, params(form=form), state)


@pytest.mark.parametrize("term", list(TERM_ONLY))
@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_glk_each_term_gradient(one_thread, term, boundary):
    """Each term alone (the fields it depends on): its gradient is its own, not a sum that hides a sign."""
    from factories import params, random_system
    from test_gradients import assert_gradients_match

    layout, state = random_system(boundary=boundary, height=3, width=4, seed=7, glk=3, phi_scale=0.4)
    fields = {"prior": ("mu", "sigma"), "observation": ("mu", "sigma"), "alignment": ("mu", "sigma", "phi"),
              "curvature": ("phi",), "smoothness": ("phi",)}[term]
    assert_gradients_match(layout, params(**TERM_ONLY[term]), state, fields=fields)


# --- so(3) inside gl(3): the same energies as SO(3) frames --------------------------------------------------------

def _hat(v):
    """[v]_x as gl(3) coordinates (row-major), the spin-1 generator combination v . G."""
    x, y, z = v
    return np.array([0.0, -z, y, z, 0.0, -x, -y, x, 0.0])


@pytest.mark.parametrize("boundary", ["open", "periodic"])
@pytest.mark.parametrize("form", ["weighted", "free_energy"])
def test_so3_coordinates_in_glk_give_the_so3_energy(one_thread, boundary, form):
    """phi = [v]_x in gl(3) gives every term, KL and beta of the SO(3) frame v (spin 1), to rounding: the
    transport exp([v]_x) is the same rotation, and |X|^2 = tr(X^T X)/2 makes the frame-field terms agree."""
    from factories import params, random_system
    from gauge_vfe.agents.model.energy import evaluate

    lay3, st3 = random_system(boundary=boundary, height=3, width=4, seed=11)
    layk, stk = random_system(boundary=boundary, height=3, width=4, seed=11, glk=3)
    np.testing.assert_array_equal(st3.mu, stk.mu)  # the same draws but phi's
    stk = stk.replace(phi=np.array([_hat(v) for v in st3.phi]))
    p = params(form=form)
    e3, ek = evaluate(lay3, p, st3), evaluate(layk, p, stk)
    for term in e3.terms:
        assert ek.terms[term] == pytest.approx(e3.terms[term], rel=1e-12, abs=1e-12), term
    np.testing.assert_allclose(ek.kl, e3.kl, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ek.beta, e3.beta, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ek.grad_mu, e3.grad_mu, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(ek.grad_sigma, e3.grad_sigma, rtol=1e-10, atol=1e-11)
    # the frame gradient in so(3) coordinates is the gl(3) one paired with the generators: dE/dv_a = <G_a, dE/dPhi>
    G = np.array([_hat(e) for e in np.eye(3)])  # (3, 9): G_a flattened
    np.testing.assert_allclose(ek.grad_phi @ G.T, e3.grad_phi, rtol=1e-9, atol=1e-10)


# --- gauge covariance -------------------------------------------------------------------------------------------

def _log_gl(m):
    """A real logarithm of m (near the identity here), as gl(K) coordinates."""
    out = scipy.linalg.logm(m)
    assert np.abs(np.imag(out)).max() < 1e-12
    return np.real(out).ravel()


def test_global_right_frame_change_leaves_the_site_terms(one_thread):
    """R_i -> R_i h for one h in GL(K) on every row, beliefs unchanged: Omega_ij = R_i h h^-1 R_j^-1 is unchanged,
    so are every KL, beta and the prior, observation and alignment energies. The frame-field terms read phi's
    coordinates (log(exp(phi) h) is no translation of phi), so they change, as for SO(3)
    (docs/model.md#glk-frames)."""
    from factories import params, random_system
    from gauge_vfe.agents.model.energy import evaluate

    layout, state = random_system(height=3, width=4, seed=5, glk=3, phi_scale=0.2)
    rng = np.random.default_rng(1)
    h = scipy.linalg.expm(0.2 * rng.normal(size=(3, 3)))
    moved = state.replace(phi=np.array([_log_gl(scipy.linalg.expm(p.reshape(3, 3)) @ h) for p in state.phi]))
    p = params()
    e0, e1 = evaluate(layout, p, state), evaluate(layout, p, moved)
    for term in ("prior", "observation", "alignment"):
        assert e1.terms[term] == pytest.approx(e0.terms[term], rel=1e-10), term
    np.testing.assert_allclose(e1.kl, e0.kl, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(e1.beta, e0.beta, rtol=1e-9, atol=1e-10)
    assert abs(e1.terms["smoothness"] - e0.terms["smoothness"]) > 1e-6  # not a symmetry of the field terms


def test_global_left_frame_change_with_beliefs_leaves_the_alignment(one_thread):
    """R_i -> g R_i with mu -> g mu, Sigma -> g Sigma g^T on every row: Omega_ij -> g Omega_ij g^-1, and the KL is
    invariant under the common map g, so every KL, beta and the alignment energy are unchanged."""
    from factories import params, random_system
    from gauge_vfe.agents.model.energy import evaluate

    layout, state = random_system(height=3, width=4, seed=6, glk=3, phi_scale=0.2)
    rng = np.random.default_rng(2)
    g = scipy.linalg.expm(0.3 * rng.normal(size=(3, 3)))
    moved = state.replace(mu=state.mu @ g.T, sigma=g @ state.sigma @ g.T,
                          phi=np.array([_log_gl(g @ scipy.linalg.expm(p.reshape(3, 3))) for p in state.phi]))
    p = params(alpha=0.0, gamma=0.0, lambda_curv=0.0, lambda_smooth=0.0)
    e0, e1 = evaluate(layout, p, state), evaluate(layout, p, moved)
    assert e1.terms["alignment"] == pytest.approx(e0.terms["alignment"], rel=1e-10)
    np.testing.assert_allclose(e1.kl, e0.kl, rtol=1e-9, atol=1e-10)


# --- the transformer limit: an arbitrary W_Q W_K^T ----------------------------------------------------------------

def _one_site(K, mu, sigma, phi):
    from gauge_vfe.agents.model import supports
    from gauge_vfe.agents.model.fiber import make_glk_fiber
    from gauge_vfe.agents.model.grid import Grid
    from gauge_vfe.agents.model.layout import build_layout
    from gauge_vfe.agents.model.state import State

    grid = Grid(1, 1)
    n = len(mu)
    layout = build_layout(grid, make_glk_fiber(K), [supports.whole(grid) for _ in range(n)], np.zeros((n, K)),
                          np.tile(np.eye(K), (n, 1, 1)))
    return layout, State.from_arrays(mu, sigma, phi)


@pytest.mark.parametrize("K", [2, 3, 5])
def test_transformer_limit_reaches_any_bilinear_form(K):
    """docs/model.md#transformer-limit, GL(K) frames: with Sigma_j = s^2 R_j R_j^T (isotropic in the common frame)
    beta_ij = softmax_j(Q_i . K_j / (s^2 kappa) - |K_j|^2 / (2 s^2 kappa)), Q_i = R_i^-1 mu_i, K_j = R_j^-1 mu_j.
    A random W (det W > 0), split by the polar decomposition W = U P (U a rotation, P SPD), is reached with the
    query frame exp(log U) and one key frame exp(-log P): Q_i . K_j = mu_i^T W mu_j."""
    from gauge_vfe.agents.model.energy import beta_matrix, evaluate
    from gauge_vfe.agents.model.params import EnergyParams

    rng = np.random.default_rng(K)
    W = rng.normal(size=(K, K))
    if np.linalg.det(W) < 0:
        W[0] *= -1
    U, P = scipy.linalg.polar(W)
    evals, evecs = np.linalg.eigh(P)
    phi_query = _log_gl(U) if K > 1 else np.zeros(1)
    phi_keys = -(evecs * np.log(evals)) @ evecs.T
    n, s2, kappa = 6, 0.8, 1.1
    mu = rng.normal(size=(n, K))
    R_keys = scipy.linalg.expm(phi_keys)
    sigma = np.array([s2 * np.eye(K)] + [s2 * R_keys @ R_keys.T] * (n - 1))  # R_query is a rotation
    phi = np.array([phi_query] + [phi_keys.ravel()] * (n - 1))
    layout, state = _one_site(K, mu, sigma, phi)
    # the model's own frames give exactly this bilinear form
    R = np.array([layout.fiber.rho(p) for p in phi])
    np.testing.assert_allclose(np.linalg.inv(R[0]).T @ np.linalg.inv(R[1]), W, atol=1e-10, rtol=0)
    beta = beta_matrix(layout, evaluate(layout, EnergyParams(kappa=kappa), state))
    keys = mu[1:] @ np.linalg.inv(R_keys).T  # K_j = R^-1 mu_j
    logits = (mu[0] @ W @ mu[1:].T) / (s2 * kappa) - np.sum(keys ** 2, axis=1) / (2 * s2 * kappa)
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    np.testing.assert_allclose(beta[0, 1:], expected, atol=1e-10, rtol=0)
    assert beta[0, 0] == 0.0


# --- a run end to end, and what is refused ------------------------------------------------------------------------

GLK_SCENARIO = """name: glk
grid: {height: 6, width: 6}
fiber: {group: glk, dim: 3}
agents:
  count: 3
  support: {shape: disk, radius: 3}
  init:
    mu: {kind: random, per: agent, scale: 1.0}
    phi: {kind: random, scale: 0.2}
observations: {kind: smooth, shared: true, scale: 1.0, length: 3.0, noise: 4.0}
energy: {alpha: 0.2, gamma: 0.5, lambda_align: 2.0, kappa: 4.0, lambda_curv: 0.2, lambda_smooth: 0.1}
dynamics: {steps: 12, lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.01, line_search: {enabled: true}}
output: {every: 4}
analysis: {enabled: false}
"""


def test_glk_run_end_to_end(tmp_path):
    """vfe run writes a glk trajectory that gv.load reads (phi with K^2 = 9 coordinates), the energy goes down,
    the stored state re-evaluates to the logged energy, and the analysis commands refuse it in one line without
    touching it."""
    import gauge_vfe as gv
    from factories import invoke, one_error_line

    (tmp_path / "g.yaml").write_text(GLK_SCENARIO)
    out = tmp_path / "g.h5"
    r = invoke("run", tmp_path / "g.yaml", "-o", out)
    assert r.exit_code == 0, r.output
    with gv.load(out) as traj:
        assert traj.group == "glk" and traj.K == 3
        state = traj.state(-1)
        assert state.phi.shape == (traj.index.size, 9)
        steps, energy = traj.energy()
        assert steps[-1] == 12 and energy[-1] < energy[0]
        assert np.all(np.diff(energy) <= 0)  # the line search keeps every step downhill
        from gauge_vfe.agents.model.energy import evaluate

        checkpoint = traj.checkpoint()  # float64, the state the run ended with
        assert checkpoint.phi.shape == (traj.index.size, 9)
        again = evaluate(traj.layout(), traj.energy_params, checkpoint, want_grad=False).total
        assert again == pytest.approx(energy[-1], rel=1e-12)
        assert traj.to_xarray().phi.shape[-1] == 9
    r = invoke("run", tmp_path / "g.yaml", "-o", out, "--resume", "--steps", "16")  # continues from the checkpoint
    assert r.exit_code == 0, r.output
    with gv.load(out) as traj:
        assert traj.last_step == 16 and traj.checkpoint().phi.shape[1] == 9
    before = out.read_bytes()
    for argv in (("analyze", out), ("export", out, "-o", tmp_path / "g.vtkhdf"), ("spectrum", out)):
        line = one_error_line(invoke(*argv))
        assert "GL(3) frames" in line and str(out) in line, line
    assert out.read_bytes() == before


@pytest.mark.parametrize("fiber,extra,message", [
    ("{group: glk}", "analysis: {enabled: false}", "fiber: group glk needs fiber.dim"),
    ("{group: glk, dim: 3, spins: [1]}", "analysis: {enabled: false}", "fiber: spins are for group so3"),
    ("{dim: 3}", "", "fiber: dim is for group glk"),
    ("{group: glk, dim: 3}", "", "analysis.enabled: the analysis"),
    ("{group: glk, dim: 2}", "analysis: {enabled: false}\nagents: {init: {phi: {value: [0, 0, 0]}}}",
     "agents.init.phi.value"),
])
def test_bad_glk_config_is_one_line(tmp_path, fiber, extra, message):
    from factories import invoke, one_error_line

    (tmp_path / "b.yaml").write_text(f"name: b\nfiber: {fiber}\n{extra}\n")
    line = one_error_line(invoke("validate", tmp_path / "b.yaml"))
    assert "b.yaml" in line and message in line, line


@pytest.mark.parametrize("overrides", [{"method": "natural"}, {"precision": "float32"}])
def test_glk_natural_gradient_and_float32_steps(overrides):
    """The natural-gradient step (frame-independent: it acts on the Gaussians in their own frames) and a float32
    state run with GL(K) frames; the energy goes down over a few steps."""
    import yaml

    from gauge_vfe.agents.runner.simulation import Simulation

    cfg = yaml.safe_load(GLK_SCENARIO)
    cfg["dynamics"].update(overrides)
    sim = Simulation.from_config(cfg)
    e0 = sim.energy()["total"]
    for _ in range(5):
        sim.step()
    assert sim.state.phi.shape[1] == 9 and sim.state.phi.dtype == sim.state.mu.dtype
    assert np.isfinite(sim.energy()["total"]) and sim.energy()["total"] < e0
