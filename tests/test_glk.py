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
    out, w1, w2 = np.empty((n, n)), np.empty((n, n)), np.empty((n, n))
    expm(a, out, w1, w2)
    np.testing.assert_array_equal(a, a_before)  # expm leaves its argument alone
    ref = scipy.linalg.expm(a)
    assert np.abs(out - ref).max() <= rel * max(1.0, np.abs(ref).max())
    big = [np.empty((2 * n, 2 * n)) for _ in range(3)]
    lf = np.empty((n, n))
    expm_frechet(a, e, lf, *big)
    _, lref = scipy.linalg.expm_frechet(a, e)
    assert np.abs(lf - lref).max() <= rel * max(1.0, np.abs(lref).max())
    # L is linear in its direction: a huge or tiny direction gives the same relative accuracy
    expm_frechet(a, 1e9 * e, lf, *big)
    assert np.abs(lf / 1e9 - lref).max() <= rel * max(1.0, np.abs(lref).max())


def test_expm_of_nonfinite_is_nonfinite():
    a = np.array([[np.nan, 0.0], [0.0, 1.0]])
    out = np.empty((2, 2))
    expm(a, out, np.empty((2, 2)), np.empty((2, 2)))
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
