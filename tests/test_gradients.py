"""Every gradient against central finite differences of the same energy, in float64.

Sigma is perturbed symmetrically (Sigma_pq and Sigma_qp together), so the finite difference of an off-diagonal
pair is 2 G_pq and of a diagonal entry G_pp, with G the symmetric gradient (dE = tr(G dSigma)).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import numba_threads

from gauge_vfe.agents.model.energy import TERMS, evaluate

from factories import params, random_system, total_energy

H = 1e-5
TOL = 1e-6


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Thousands of tiny evaluations: one thread avoids a parallel region's wake-up cost on each (and a
    busy machine's scheduler stalls); the kernels compute the same numbers with any thread count."""
    with numba_threads(1):
        yield


def finite_difference_gradients(layout, p, state):
    out = {}
    for name in ("mu", "sigma", "phi"):
        x = getattr(state, name)
        fd = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            if name == "sigma" and idx[1] > idx[2]:
                continue

            def energy(delta, idx=idx):
                y = x.copy()
                y[idx] += delta
                if name == "sigma" and idx[1] != idx[2]:
                    y[idx[0], idx[2], idx[1]] += delta
                return total_energy(layout, p, state.replace(**{name: y}))

            fd[idx] = (energy(H) - energy(-H)) / (2 * H)
        out[name] = fd
    return out


def assert_gradients_match(layout, p, state, fields=("mu", "sigma", "phi")):
    ev = evaluate(layout, p, state)
    fd = finite_difference_gradients(layout, p, state)
    K = layout.K
    upper = np.triu(np.ones((K, K), dtype=bool))
    sym_factor = np.where(np.eye(K, dtype=bool), 1.0, 2.0)
    analytic = {
        "mu": ev.grad_mu,
        "phi": ev.grad_phi,
        "sigma": (ev.grad_sigma * sym_factor)[:, upper],
    }
    fd["sigma"] = fd["sigma"][:, upper]
    # G must be symmetric for the pairing above to be the whole story
    np.testing.assert_allclose(ev.grad_sigma, ev.grad_sigma.transpose(0, 2, 1), atol=1e-12)
    for name in fields:
        scale = np.linalg.norm(fd[name])
        assert scale > 1e-8, f"{name}: gradient vanishes, the check would be empty"
        err = np.linalg.norm(analytic[name] - fd[name]) / scale
        assert err <= TOL, f"{name}: relative error {err:.2e}"


CASES = list(itertools.product([(1,), (2,), (3,), (1, 2)], ["open", "periodic"], [False, True]))


@pytest.mark.parametrize("spins,boundary,soft", CASES)
@pytest.mark.parametrize("form,include_self", [("weighted", False), ("weighted", True),
                                               ("free_energy", False), ("free_energy", True)])
def test_total_gradient(spins, boundary, soft, form, include_self):
    layout, state = random_system(spins, boundary, soft, height=3, width=4, seed=CASES.index((spins, boundary, soft)))
    assert_gradients_match(layout, params(form=form, include_self=include_self), state)


WEIGHTS = {"prior": "alpha", "observation": "gamma", "alignment": "lambda_align", "curvature": "lambda_curv",
           "smoothness": "lambda_smooth"}


@pytest.mark.parametrize("term", TERMS)
@pytest.mark.parametrize("spins,boundary,soft", [((1,), "open", False), ((1,), "periodic", True),
                                                 ((1, 2), "open", True), ((2,), "periodic", False)])
def test_each_term_alone(term, spins, boundary, soft):
    layout, state = random_system(spins, boundary, soft, height=4, width=3, seed=7)
    only = {w: 0.0 for w in WEIGHTS.values()}
    only[WEIGHTS[term]] = 1.3
    p = params(**only)
    ev = evaluate(layout, p, state)
    for other in TERMS:
        if other != term:
            assert ev.terms[other] == 0.0
    assert ev.terms[term] != 0.0
    if term in ("curvature", "smoothness"):
        # these see phi only: the Gaussian gradients must vanish exactly
        assert not ev.grad_mu.any() and not ev.grad_sigma.any()
        fd = finite_difference_gradients(layout, p, state)["phi"]
        np.testing.assert_allclose(ev.grad_phi, fd, rtol=0, atol=TOL * np.linalg.norm(fd))
    elif term in ("prior", "observation"):
        # frame independent: no phi gradient; check mu and Sigma
        assert not ev.grad_phi.any()
        assert_gradients_match(layout, p, state, fields=("mu", "sigma"))
    else:
        assert_gradients_match(layout, p, state)


def test_gradient_with_large_frames_and_near_identity_frames():
    """phi is never wrapped: |phi| beyond pi and phi ~ 0 both differentiate correctly."""
    for scale in (3.0, 1e-4):
        layout, state = random_system((1, 2), "open", False, height=3, width=3, seed=3, phi_scale=scale)
        assert_gradients_match(layout, params(), state)


def test_solitary_sites_have_no_alignment_gradient():
    """An agent alone at a site (include_self off) contributes no alignment there."""
    layout, state = random_system((1,), "open", False, height=5, width=5, n_agents=1, seed=2)
    ev = evaluate(layout, params(alpha=0, gamma=0, lambda_curv=0, lambda_smooth=0), state)
    assert ev.terms["alignment"] == 0.0
    assert not ev.grad_mu.any() and not ev.grad_phi.any()
