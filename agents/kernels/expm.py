"""The matrix exponential of a general real n x n matrix and its Frechet derivative, for GL(K) frames inside
kernels (docs/model.md#glk-frames).

Scaling and squaring with a Taylor polynomial: ``A`` is scaled by ``2^-s`` until its 1-norm is at most 1/2, the
degree-18 Taylor polynomial of the scaled matrix is evaluated by Horner's rule and squared ``s`` times. The
truncation error of the polynomial is then below ``0.5^19 / 19! < 2e-23`` relative, far under rounding; what is
left is the rounding of the squarings, the same as in Pade-based ``scipy.linalg.expm`` (tests/test_glk.py).

The Frechet derivative ``L(A, E) = d/dt exp(A + t E)`` at t = 0 is the top-right block of
``exp([[A, E], [0, A]])`` (Higham, Functions of Matrices, thm 3.6). ``E`` is scaled to A's 1-norm first (L is
linear in E) so the block's scaling is set by A, not by how large the direction is.

Every function writes into caller buffers and allocates nothing (they run inside ``prange`` bodies).
"""

from __future__ import annotations

import numpy as np
from numba import njit

TAYLOR_DEGREE = 18
SCALED_NORM = 0.5  # ||A / 2^s||_1 at most this before the polynomial


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
def _square_into(src, dst, n):
    """dst = src @ src (n x n leading blocks)."""
    for i in range(n):
        for j in range(n):
            t = 0.0
            for k in range(n):
                t += src[i, k] * src[k, j]
            dst[i, j] = t


@njit(cache=True)
def expm_inplace(a, out, work):
    """``out = exp(a)`` for n x n arrays; ``a`` is overwritten (scaled), ``work`` (n x n) is scratch.

    Returns the number of squarings. A non-finite ``a`` gives a non-finite ``out`` (no silent fix)."""
    n = a.shape[0]
    norm = _norm1(a, n)
    s = 0
    if norm > SCALED_NORM:
        s = int(np.ceil(np.log2(norm / SCALED_NORM)))
        if s > 1000:  # inf or NaN entries: let them propagate below without looping for ever
            s = 0
    scale = 0.5 ** s
    for i in range(n):
        for j in range(n):
            a[i, j] *= scale
    # Horner: P = I + a/k P, k = deg..1
    for i in range(n):
        for j in range(n):
            out[i, j] = 1.0 if i == j else 0.0
    for k in range(TAYLOR_DEGREE, 0, -1):
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
        _square_into(out, work, n)
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
def expm_frechet(a, e, out, big, big_out, big_work):
    """``out = L(a, e)``, the Frechet derivative of exp at ``a`` in direction ``e`` (n x n each); ``big``,
    ``big_out``, ``big_work`` are (2n, 2n) scratch. ``big_out``'s diagonal blocks hold ``exp(a)`` on return."""
    n = a.shape[0]
    na = _norm1(a, n)
    ne = _norm1(e, n)
    c = 1.0
    if ne > 0.0:
        c = max(na, 1.0) / ne
    for i in range(n):
        for j in range(n):
            big[i, j] = a[i, j]
            big[n + i, n + j] = a[i, j]
            big[i, n + j] = c * e[i, j]
            big[n + i, j] = 0.0
    expm_inplace(big, big_out, big_work)
    inv = 1.0 / c
    for i in range(n):
        for j in range(n):
            out[i, j] = big_out[i, n + j] * inv
