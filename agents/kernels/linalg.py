"""Small dense linear algebra for per-site K x K matrices, written as plain loops.

Inside a ``prange`` body a call into (multi-threaded) BLAS/LAPACK would oversubscribe the cores and raise on
failure; these loops write into caller-provided buffers, allocate nothing and report failure as a value. An output
buffer must not be one of the inputs (``out`` is written while the inputs are still read). Tested against numpy
in tests/test_linalg.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def matmul(a, b, out):
    """out = a @ b.

    Exact zeros of ``a`` are skipped (frames are block diagonal, so most of their entries are 0 for a fiber of
    several spins); hence a 0 in ``a`` meeting an inf or NaN in ``b`` contributes nothing, where numpy gives NaN.
    """
    n, m = a.shape
    p = b.shape[1]
    for i in range(n):
        for j in range(p):
            out[i, j] = 0.0
        for k in range(m):
            aik = a[i, k]
            if aik != 0.0:
                for j in range(p):
                    out[i, j] += aik * b[k, j]


@njit(cache=True, inline="always")
def matmul_tn(a, b, out):
    """out = a.T @ b (exact zeros of ``a`` skipped, as in :func:`matmul`)."""
    m, n = a.shape
    p = b.shape[1]
    for i in range(n):
        for j in range(p):
            out[i, j] = 0.0
    for k in range(m):
        for i in range(n):
            aki = a[k, i]
            if aki != 0.0:
                for j in range(p):
                    out[i, j] += aki * b[k, j]


@njit(cache=True, inline="always")
def matmul_nt(a, b, out):
    """out = a @ b.T."""
    n, m = a.shape
    p = b.shape[0]
    for i in range(n):
        for j in range(p):
            s = 0.0
            for k in range(m):
                s += a[i, k] * b[j, k]
            out[i, j] = s


@njit(cache=True)
def congruence_tn(r, s, tmp, out):
    """out = r.T @ s @ r for symmetric ``s``, symmetrised exactly (so for any ``s`` it is r.T @ sym(s) @ r)."""
    matmul(s, r, tmp)
    matmul_tn(r, tmp, out)
    symmetrize(out)


@njit(cache=True)
def congruence_nt(r, s, tmp, out):
    """out = r @ s @ r.T for symmetric ``s``, symmetrised exactly (so for any ``s`` it is r @ sym(s) @ r.T)."""
    matmul_nt(s, r, tmp)
    matmul(r, tmp, out)
    symmetrize(out)


@njit(cache=True, inline="always")
def symmetrize(a):
    """a <- (a + a.T) / 2 in place: exactly symmetric afterwards."""
    n = a.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            v = 0.5 * (a[i, j] + a[j, i])
            a[i, j] = v
            a[j, i] = v


@njit(cache=True)
def cholesky(a, low):
    """Lower Cholesky factor of symmetric ``a`` into ``low`` (its upper triangle set to 0).

    Only the lower triangle of ``a`` is read. Returns False if ``a`` is not positive definite (a pivot <= 0 or
    NaN); ``low`` is then partly written.
    """
    n = a.shape[0]
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= low[j, k] * low[j, k]
        if not (s > 0.0):  # also catches NaN
            return False
        d = np.sqrt(s)
        low[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= low[i, k] * low[j, k]
            low[i, j] = t / d
        for i in range(j):
            low[i, j] = 0.0
    return True


@njit(cache=True)
def spd_inverse_logdet(a, low, inv):
    """Inverse and log-determinant of SPD ``a`` through its Cholesky factor.

    ``low`` is scratch (it holds L^{-1} on return). Returns (ok, logdet); on failure (False, NaN) and ``inv``
    is not written. ``inv`` is exactly symmetric.
    """
    n = a.shape[0]
    if not cholesky(a, low):
        return False, np.nan
    logdet = 0.0
    for i in range(n):
        logdet += 2.0 * np.log(low[i, i])
    # In-place inverse of the lower-triangular factor.
    for j in range(n):
        low[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, n):
            s = 0.0
            for k in range(j, i):
                s -= low[i, k] * low[k, j]
            low[i, j] = s / low[i, i]
    # inv = L^{-T} L^{-1}
    for i in range(n):
        for j in range(i, n):
            s = 0.0
            for k in range(j, n):
                s += low[k, i] * low[k, j]
            inv[i, j] = s
            inv[j, i] = s
    return True, logdet


@njit(cache=True, inline="always")
def quad_form(p, d):
    """d^T p d (any square ``p``)."""
    n = d.shape[0]
    s = 0.0
    for i in range(n):
        t = 0.0
        for j in range(n):
            t += p[i, j] * d[j]
        s += d[i] * t
    return s


@njit(cache=True, inline="always")
def trace_product(a, b):
    """tr(a @ b) = sum_ij a_ij b_ji, for any square ``a`` and ``b`` (it equals sum(a * b) when one is symmetric)."""
    n = a.shape[0]
    s = 0.0
    for i in range(n):
        for j in range(n):
            s += a[i, j] * b[j, i]
    return s


@njit(cache=True)
def symmetric_eigen(a, w, v):
    """Eigen-decomposition of symmetric ``a`` by cyclic Jacobi rotations: a = v diag(w) v^T, v orthogonal.

    ``a`` is overwritten (it ends nearly diagonal); the eigenvalues ``w`` are not sorted. Sweeps stop once the
    off-diagonal part is below 1e-16 of the diagonal in norm (at most 60 sweeps). Jacobi is accurate to
    rounding relative to the matrix's norm, allocates nothing and is fast for the small matrices of a fiber.
    """
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            v[i, j] = 1.0 if i == j else 0.0
    for _sweep in range(60):
        off = 0.0
        diag = 0.0
        for i in range(n):
            diag += a[i, i] * a[i, i]
            for j in range(i + 1, n):
                off += a[i, j] * a[i, j]
        if off <= 1e-32 * diag or off == 0.0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p, q]
                if apq == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * apq)
                t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                c = 1.0 / np.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):
                    akp = a[k, p]
                    akq = a[k, q]
                    a[k, p] = c * akp - s * akq
                    a[k, q] = s * akp + c * akq
                for k in range(n):
                    apk = a[p, k]
                    aqk = a[q, k]
                    a[p, k] = c * apk - s * aqk
                    a[q, k] = s * apk + c * aqk
                for k in range(n):
                    vkp = v[k, p]
                    vkq = v[k, q]
                    v[k, p] = c * vkp - s * vkq
                    v[k, q] = s * vkp + c * vkq
    for i in range(n):
        w[i] = a[i, i]


@njit(cache=True)
def symmetric_expm(a, scale, out, work, vecs, vals):
    """out = expm(scale * a) for symmetric ``a``, through its eigen-decomposition: exactly symmetric, and SPD
    because its eigenvalues are exponentials. ``a`` is left intact; ``work``/``vecs``/``vals`` are scratch."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            work[i, j] = scale * a[i, j]
    symmetric_eigen(work, vals, vecs)
    for i in range(n):
        vals[i] = np.exp(vals[i])
    for i in range(n):
        for j in range(i, n):
            s = 0.0
            for k in range(n):
                s += vecs[i, k] * vals[k] * vecs[j, k]
            out[i, j] = s
            out[j, i] = s
