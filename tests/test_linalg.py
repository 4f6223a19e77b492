"""Every function of agents/kernels/linalg.py against numpy / scipy, in float64, for K = 1, 3, 5, 9, 15."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from gauge_vfe.agents.kernels.linalg import (cholesky, congruence_nt, congruence_tn, matmul, matmul_nt, matmul_tn,
                                             quad_form, spd_inverse_logdet, symmetric_eigen, symmetric_expm,
                                             symmetrize, trace_product)

KS = [1, 3, 5, 9, 15]
RTOL = 1e-13


def spd(rng, K, floor=0.3):
    a = rng.normal(size=(K, K))
    return a @ a.T + floor * np.eye(K)


def symmetric(rng, K):
    a = rng.normal(size=(K, K))
    return a + a.T


def assert_close(got, want, rtol=RTOL):
    """Entries within ``rtol`` of the largest entry of ``want`` (the scale of the rounding of a sum)."""
    scale = max(1.0, np.abs(want).max(initial=0.0))
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("K", KS)
def test_matmul_variants(K, rng):
    a, b = rng.normal(size=(K, K)), rng.normal(size=(K, K))
    a[rng.random((K, K)) < 0.3] = 0.0  # matmul skips exact zeros of a: the result must not change
    for fn, want in ((matmul, a @ b), (matmul_tn, a.T @ b), (matmul_nt, a @ b.T)):
        out = np.full((K, K), np.nan)  # every entry must be written
        fn(a, b, out)
        assert_close(out, want)


def test_matmul_variants_rectangular(rng):
    a, b = rng.normal(size=(4, 7)), rng.normal(size=(7, 2))
    out = np.empty((4, 2))
    matmul(a, b, out)
    assert_close(out, a @ b)
    c = rng.normal(size=(4, 2))
    out = np.empty((7, 2))
    matmul_tn(a, c, out)
    assert_close(out, a.T @ c)
    d = rng.normal(size=(3, 7))
    out = np.empty((4, 3))
    matmul_nt(a, d, out)
    assert_close(out, a @ d.T)


@pytest.mark.parametrize("K", KS)
def test_congruences_are_exactly_symmetric(K, rng):
    r, s = rng.normal(size=(K, K)), symmetric(rng, K)
    tmp, out = np.empty((K, K)), np.empty((K, K))
    congruence_tn(r, s, tmp, out)
    assert_close(out, r.T @ s @ r)
    assert np.array_equal(out, out.T)
    congruence_nt(r, s, tmp, out)
    assert_close(out, r @ s @ r.T)
    assert np.array_equal(out, out.T)


@pytest.mark.parametrize("K", KS)
def test_symmetrize(K, rng):
    a = rng.normal(size=(K, K))
    want = 0.5 * (a + a.T)
    symmetrize(a)
    np.testing.assert_array_equal(a, want)


@pytest.mark.parametrize("K", KS)
def test_cholesky(K, rng):
    a = spd(rng, K)
    low = np.full((K, K), np.nan)
    assert cholesky(a, low)
    assert_close(low, np.linalg.cholesky(a))
    assert np.array_equal(np.triu(low, 1), np.zeros((K, K)))  # upper triangle written as zeros


@pytest.mark.parametrize("K", KS)
def test_cholesky_reads_only_the_lower_triangle(K, rng):
    a = spd(rng, K)
    b = np.tril(a) + np.triu(rng.normal(size=(K, K)), 1)  # garbage above the diagonal
    la, lb = np.empty((K, K)), np.empty((K, K))
    assert cholesky(a, la) and cholesky(b, lb)
    np.testing.assert_array_equal(la, lb)


@pytest.mark.parametrize("K", KS)
def test_cholesky_reports_non_positive_definite(K, rng):
    w, v = np.linalg.eigh(spd(rng, K))
    w[-1] = -0.5  # one negative eigenvalue
    low = np.empty((K, K))
    assert not cholesky((v * w) @ v.T, low)
    assert not cholesky(np.zeros((K, K)), low)  # singular
    nan = spd(rng, K)
    nan[K - 1, K - 1] = np.nan
    assert not cholesky(nan, low)
    ok, logdet = spd_inverse_logdet((v * w) @ v.T, low, np.empty((K, K)))
    assert not ok and np.isnan(logdet)


@pytest.mark.parametrize("K", KS)
def test_spd_inverse_logdet(K, rng):
    a = spd(rng, K)
    low, inv = np.empty((K, K)), np.empty((K, K))
    ok, logdet = spd_inverse_logdet(a, low, inv)
    assert ok
    want = np.linalg.inv(a)
    assert_close(inv, want, rtol=1e-11)  # an inverse loses digits with the condition number
    assert np.array_equal(inv, inv.T)
    sign, ref = np.linalg.slogdet(a)
    assert sign > 0 and logdet == pytest.approx(ref, rel=1e-13, abs=1e-13)
    assert_close(low, np.linalg.inv(np.linalg.cholesky(a)), rtol=1e-11)  # the scratch holds L^-1


@pytest.mark.parametrize("K", KS)
def test_quad_form_and_trace_product(K, rng):
    p, d = rng.normal(size=(K, K)), rng.normal(size=K)  # neither needs to be symmetric
    assert quad_form(p, d) == pytest.approx(d @ p @ d, rel=RTOL, abs=RTOL * np.abs(p).sum() * (d @ d))
    a, b = rng.normal(size=(K, K)), rng.normal(size=(K, K))
    assert trace_product(a, b) == pytest.approx(np.trace(a @ b), rel=RTOL, abs=RTOL * np.abs(a).sum() * np.abs(b).max())


@pytest.mark.parametrize("K", KS)
def test_symmetric_eigen(K, rng):
    a = symmetric(rng, K)
    work, w, v = a.copy(), np.empty(K), np.empty((K, K))
    symmetric_eigen(work, w, v)
    scale = np.abs(a).max()
    np.testing.assert_allclose(np.sort(w), np.linalg.eigvalsh(a), rtol=0, atol=1e-13 * scale)
    assert_close(v.T @ v, np.eye(K))
    assert_close((v * w) @ v.T, a)


def test_symmetric_eigen_of_a_diagonal_matrix_is_exact():
    a = np.diag([3.0, -1.0, 2.0])
    w, v = np.empty(3), np.empty((3, 3))
    symmetric_eigen(a.copy(), w, v)
    np.testing.assert_array_equal(w, [3.0, -1.0, 2.0])  # unsorted: in the diagonal's order
    np.testing.assert_array_equal(v, np.eye(3))


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("scale", [1.0, -0.3])
def test_symmetric_expm(K, scale, rng):
    a = symmetric(rng, K) * 0.5
    a_before = a.copy()
    out = np.empty((K, K))
    symmetric_expm(a, scale, out, np.empty((K, K)), np.empty((K, K)), np.empty(K))
    np.testing.assert_array_equal(a, a_before)  # the input is left intact
    assert_close(out, scipy.linalg.expm(scale * a), rtol=1e-12)
    assert np.array_equal(out, out.T)
    assert np.linalg.eigvalsh(out).min() > 0
