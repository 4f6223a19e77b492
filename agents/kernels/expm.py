"""The matrix exponential of a general real n x n matrix and its Frechet derivative, for GL(K) frames inside
kernels (docs/model.md#glk-frames).

Scaling and squaring with a Taylor polynomial: ``A`` is scaled by ``2^-s`` until its 1-norm x is at most 1/2,
the Taylor polynomial of the scaled matrix, of the smallest degree (at most 18) whose first left-out term
``x^(m+1)/(m+1)!`` is under 1e-18, is evaluated by Horner's rule and squared ``s`` times. What is left is the
rounding of the squarings, as in Pade-based ``scipy.linalg.expm`` (tests/test_glk.py).

The Frechet derivative ``L(A, E) = d/dt exp(A + t E)`` at t = 0 is the top-right block of
``exp([[A, E], [0, A]])`` (Higham, Functions of Matrices, thm 3.6), computed on the blocks
(:func:`frechet_inplace`).

Every function writes into caller buffers and allocates nothing (they run inside ``prange`` bodies).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_DEGREE = 18
SCALED_NORM = 0.5  # ||A / 2^s||_1 at most this before the polynomial
TRUNCATION = 1e-18  # the first left-out Taylor term's bound, relative: far under rounding


@njit(cache=True, inline="always")
def _norm1(a, n):
    best = 0.0
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += abs(a[i, j])
        if s > best:
            best = s
    return best


@njit(cache=True, inline="always")
def _scaling(a, n):
    """(s, degree): squarings that bring ||a||_1 to at most SCALED_NORM, and the smallest Taylor degree m whose first
    left-out term ``x^(m+1) / (m+1)!`` of the scaled norm x is below TRUNCATION (at most MAX_DEGREE)."""
    norm = _norm1(a, n)
    s = 0
    if norm > SCALED_NORM:
        s = int(np.ceil(np.log2(norm / SCALED_NORM)))
        if s > 1000:  # inf or NaN entries: let them propagate without looping for ever
            s = 0
    x = norm * 0.5 ** s
    m = 1
    term = x * x / 2.0
    while m < MAX_DEGREE and term > TRUNCATION:
        m += 1
        term *= x / (m + 1)
    return s, m


@njit(cache=True)
def expm_inplace(a, out, work):
    """``out = exp(a)`` for n x n arrays; ``a`` is overwritten (scaled), ``work`` (n x n) is scratch.

    Returns the number of squarings. A non-finite ``a`` gives a non-finite ``out`` (no silent fix)."""
    n = a.shape[0]
    s, m = _scaling(a, n)
    scale = 0.5 ** s
    for i in range(n):
        for j in range(n):
            a[i, j] *= scale
    # Horner: P = I + a/k P, k = m..1
    for i in range(n):
        for j in range(n):
            out[i, j] = 1.0 if i == j else 0.0
    for k in range(m, 0, -1):
        inv = 1.0 / k
        for i in range(n):
            for j in range(n):
                t = 0.0
                for l in range(n):
                    t += a[i, l] * out[l, j]
                work[i, j] = t * inv
        for i in range(n):
            for j in range(n):
                out[i, j] = work[i, j] + (1.0 if i == j else 0.0)
    for _ in range(s):
        for i in range(n):
            for j in range(n):
                t = 0.0
                for l in range(n):
                    t += out[i, l] * out[l, j]
                work[i, j] = t
        for i in range(n):
            for j in range(n):
                out[i, j] = work[i, j]
    return s


@njit(cache=True)
def expm(a, out, work, work2):
    """``out = exp(a)``, ``a`` left as it is; ``work``, ``work2`` (n x n) scratch."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            work2[i, j] = a[i, j]
    expm_inplace(work2, out, work)


@njit(cache=True)
def frechet_inplace(a, e, p1, p2, t1, t2):
    """``p1 = exp(a)`` and ``p2 = L(a, e)`` (n x n each); ``a`` and ``e`` are overwritten (scaled), ``t1``, ``t2``
    scratch.

    The block ``X = [[a, e], [0, a]]`` has powers ``[[a^k, L_k], [0, a^k]]``, so Horner's rule and the squarings
    run on the two distinct blocks: ``X P = [[a P1, a P2 + e P1], [0, a P1]]``, ``P^2 = [[P1^2, P1 P2 + P2 P1],
    [0, P1^2]]``, three n x n products a step instead of one 2n x 2n (eight). The scaling and the degree are set by
    ``a`` alone: ``L`` is linear in ``e``, and its Taylor tail ``sum_k>m ||a||^(k-1)/(k-1)! ||e||`` converges as
    exp's."""
    n = a.shape[0]
    s, m = _scaling(a, n)
    scale = 0.5 ** s
    for i in range(n):
        for j in range(n):
            a[i, j] *= scale
            e[i, j] *= scale
            p1[i, j] = 1.0 if i == j else 0.0
            p2[i, j] = 0.0
    for k in range(m, 0, -1):
        inv = 1.0 / k
        for i in range(n):
            for j in range(n):
                u = 0.0
                v = 0.0
                for l in range(n):
                    u += a[i, l] * p1[l, j]
                    v += a[i, l] * p2[l, j] + e[i, l] * p1[l, j]
                t1[i, j] = u * inv
                t2[i, j] = v * inv
        for i in range(n):
            for j in range(n):
                p1[i, j] = t1[i, j] + (1.0 if i == j else 0.0)
                p2[i, j] = t2[i, j]
    for _ in range(s):
        for i in range(n):
            for j in range(n):
                u = 0.0
                v = 0.0
                for l in range(n):
                    u += p1[i, l] * p1[l, j]
                    v += p1[i, l] * p2[l, j] + p2[i, l] * p1[l, j]
                t1[i, j] = u
                t2[i, j] = v
        for i in range(n):
            for j in range(n):
                p1[i, j] = t1[i, j]
                p2[i, j] = t2[i, j]


def expm_frechet(a, e):
    """``(exp(a), L(a, e))`` of two n x n arrays, left as they are (for tests and set-up code, not kernels)."""
    n = a.shape[0]
    a = np.array(a, dtype=np.float64)
    e = np.array(e, dtype=np.float64)
    out = [np.empty((n, n)) for _ in range(4)]
    frechet_inplace(a, e, *out)
    return out[0], out[1]
