"""The matrix exponential of a general real n x n matrix and its Frechet derivative, for GL(K) frames inside
kernels (docs/model.md#glk-frames).

Scaling and squaring with a Taylor polynomial: ``A`` is scaled by ``2^-s`` until its 1-norm is at most 1/2, the
degree-16 Taylor polynomial of the scaled matrix (first left-out term ``0.5^17 / 17! < 3e-20``, far under
rounding) is evaluated by the Paterson-Stockmeyer scheme (``X^2, X^3, X^4`` and four Horner steps in ``X^4``:
seven products instead of sixteen) and squared ``s`` times. What is left is the rounding of the squarings, as in
Pade-based ``scipy.linalg.expm`` (tests/test_glk.py).

The Frechet derivative ``L(A, E) = d/dt exp(A + t E)`` at t = 0 is the top-right block of
``exp([[A, E], [0, A]])`` (Higham, Functions of Matrices, thm 3.6). Every power and product of such block
matrices keeps the form ``[[P1, P2], [0, P1]]``, so the same scheme runs on pairs ``(P1, P2)``:
``(A1, A2)(B1, B2) = (A1 B1, A1 B2 + A2 B1)``, three n x n products instead of one 2n x 2n (eight). The scaling
is set by ``A`` alone: ``L`` is linear in ``E``, and its Taylor tail converges as exp's.

Every function writes into caller buffers and allocates nothing (they run inside ``prange`` bodies).
"""

from __future__ import annotations

import numpy as np
from numba import njit

SCALED_NORM = 0.5  # ||A / 2^s||_1 at most this before the polynomial
DEGREE = 16  # Taylor degree: 0.5^17 / 17! < 3e-20
# 1/k!, k = 0..DEGREE
_INV_FACTORIAL = np.array([1.0 / float(np.prod(np.arange(1, k + 1), dtype=float)) for k in range(DEGREE + 1)])


@njit(cache=True, inline="always")
def _squarings(a, n):
    """The number s of squarings that bring ``||a||_1`` to at most SCALED_NORM (0 for a non-finite norm: the
    result is then non-finite, no silent fix)."""
    norm = 0.0
    for j in range(n):
        t = 0.0
        for i in range(n):
            t += abs(a[i, j])
        if t > norm:
            norm = t
    if not norm > SCALED_NORM or not np.isfinite(norm):
        return 0
    return int(np.ceil(np.log2(norm / SCALED_NORM)))


@njit(cache=True, inline="always")
def _pair_product(a1, a2, b1, b2, o1, o2, pair):
    """(o1, o2) = (a1 b1, a1 b2 + a2 b1); only o1 = a1 b1 without ``pair``. Outputs must not be inputs."""
    n = a1.shape[0]
    for i in range(n):
        for j in range(n):
            u = 0.0
            for l in range(n):
                u += a1[i, l] * b1[l, j]
            o1[i, j] = u
    if pair:
        for i in range(n):
            for j in range(n):
                v = 0.0
                for l in range(n):
                    v += a1[i, l] * b2[l, j] + a2[i, l] * b1[l, j]
                o2[i, j] = v


@njit(cache=True, inline="always")
def taylor_exp(a1, a2, pair, x2_1, x2_2, x3_1, x3_2, x4_1, x4_2, p1, p2, t1, t2):
    """``p1 = exp(a1)`` and, with ``pair``, ``p2 = L(a1, a2)``: scaling, the Paterson-Stockmeyer Taylor polynomial
    and squaring on pairs (module docstring). ``a1``, ``a2`` are overwritten (scaled); the other arrays (n x n)
    are scratch (``a2``, ``*_2`` unused without ``pair``)."""
    n = a1.shape[0]
    s = _squarings(a1, n)
    scale = 0.5 ** s
    for i in range(n):
        for j in range(n):
            a1[i, j] *= scale
            if pair:
                a2[i, j] *= scale
    _pair_product(a1, a2, a1, a2, x2_1, x2_2, pair)
    _pair_product(x2_1, x2_2, a1, a2, x3_1, x3_2, pair)
    _pair_product(x2_1, x2_2, x2_1, x2_2, x4_1, x4_2, pair)
    c = _INV_FACTORIAL
    # P = c16 I, then P = X^4 P + B_j, B_j = c_4j I + c_4j+1 X + c_4j+2 X^2 + c_4j+3 X^3, j = 3..0
    for i in range(n):
        for j in range(n):
            p1[i, j] = c[16] if i == j else 0.0
            if pair:
                p2[i, j] = 0.0
    for blk in range(3, -1, -1):
        _pair_product(x4_1, x4_2, p1, p2, t1, t2, pair)
        k = 4 * blk
        for i in range(n):
            for j in range(n):
                p1[i, j] = (t1[i, j] + c[k + 1] * a1[i, j] + c[k + 2] * x2_1[i, j] + c[k + 3] * x3_1[i, j]
                            + (c[k] if i == j else 0.0))
                if pair:
                    p2[i, j] = t2[i, j] + c[k + 1] * a2[i, j] + c[k + 2] * x2_2[i, j] + c[k + 3] * x3_2[i, j]
    for _ in range(s):
        _pair_product(p1, p2, p1, p2, t1, t2, pair)
        for i in range(n):
            for j in range(n):
                p1[i, j] = t1[i, j]
                if pair:
                    p2[i, j] = t2[i, j]


@njit(cache=True)
def expm(a, out, work):
    """``out = exp(a)`` for an n x n ``a``, left as it is; ``work`` (6, n, n) scratch."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            work[0, i, j] = a[i, j]
    taylor_exp(work[0], work[0], False, work[1], work[1], work[2], work[2], work[3], work[3], out, out, work[4],
               work[5])


@njit(cache=True)
def expm_frechet_into(a, e, exp_out, l_out, work):
    """``exp_out = exp(a)``, ``l_out = L(a, e)``; ``a``, ``e`` left as they are; ``work`` (10, n, n) scratch."""
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            work[0, i, j] = a[i, j]
            work[1, i, j] = e[i, j]
    taylor_exp(work[0], work[1], True, work[2], work[3], work[4], work[5], work[6], work[7], exp_out, l_out,
               work[8], work[9])


def expm_frechet(a, e):
    """``(exp(a), L(a, e))`` of two n x n arrays (for tests and set-up code; kernels call :func:`taylor_exp`)."""
    n = np.shape(a)[0]
    ex, lf = np.empty((n, n)), np.empty((n, n))
    expm_frechet_into(np.ascontiguousarray(a, dtype=np.float64), np.ascontiguousarray(e, dtype=np.float64), ex, lf,
                      np.empty((10, n, n)))
    return ex, lf
