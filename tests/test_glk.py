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
