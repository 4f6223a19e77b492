"""Sums over whole per-row arrays, one compiled pass each, with the same bits on any thread count.

The run loop checks every step that the state, its gradient and the energy densities are finite (11 arrays), and
logs the gradient norms. In numpy that is a temporary array and two passes per array (``np.isfinite(a).all()``,
``np.sum(a * a)``): at 20,000 rows of K = 15 they took 20 ms of a 260 ms step. One sum of squares answers both
(it is finite exactly when every value is, unless a finite value's square overflows, which the caller's slow path
tells apart) and reads each array once, allocating nothing.

The values are summed in fixed chunks of ``ELEMENTS_PER_CHUNK`` consecutive elements, each chunk with eight
running sums (one running sum is a chain of dependent additions, four cycles each: 23 us for B1's 14,000
gradient values, 3.3 ms for B3's 4.5 million), and the chunk sums are added in order afterwards. The result
therefore depends only on the array, not on the thread count nor on whether the chunks ran in parallel. Small
arrays run serially: waking the sleeping worker threads for one of B1's arrays cost more than the whole sum
(11 parallel calls took 0.36 ms of a 1.7 ms step).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

ELEMENTS_PER_CHUNK = 4096
PARALLEL_FROM = 1 << 16  # elements: below this an array is summed on the calling thread


@njit(cache=True, inline="always")
def _chunk_sum_of_squares(flat, c):
    """The sum of squares of chunk ``c`` of ``flat``, in float64 whatever its type, with eight running sums."""
    lo = c * ELEMENTS_PER_CHUNK
    return _range_sum_of_squares(flat, lo, min(flat.shape[0], lo + ELEMENTS_PER_CHUNK))


@njit(cache=True, inline="always")
def _range_sum_of_squares(flat, lo, hi):
    """The sum of squares of ``flat[lo:hi]`` (one chunk), in float64, with eight running sums."""
    acc = np.zeros(8)
    i = lo
    while i + 8 <= hi:
        for j in range(8):
            v = np.float64(flat[i + j])  # numba's float() would keep a float32 value float32
            acc[j] += v * v
        i += 8
    for k in range(i, hi):
        v = np.float64(flat[k])
        acc[0] += v * v
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


@njit(cache=True, inline="always")
def _in_order(chunk_sums):
    total = 0.0
    for c in range(chunk_sums.shape[0]):
        total += chunk_sums[c]
    return total


@njit(cache=True, parallel=True)
def parallel_sum_of_squares(flat):
    """The sum of squares of the 1-D array ``flat``: its chunks in parallel, their sums added in order."""
    chunk_sums = np.empty((flat.shape[0] + ELEMENTS_PER_CHUNK - 1) // ELEMENTS_PER_CHUNK)
    for c in prange(chunk_sums.shape[0]):
        chunk_sums[c] = _chunk_sum_of_squares(flat, c)
    return _in_order(chunk_sums)


@njit(cache=True)
def serial_sum_of_squares(flat):
    """:func:`parallel_sum_of_squares` on the calling thread: the same chunks and order, so the same bits."""
    chunk_sums = np.empty((flat.shape[0] + ELEMENTS_PER_CHUNK - 1) // ELEMENTS_PER_CHUNK)
    for c in range(chunk_sums.shape[0]):
        chunk_sums[c] = _chunk_sum_of_squares(flat, c)
    return _in_order(chunk_sums)


def sum_of_squares(x: np.ndarray) -> float:
    """``sum(x**2)`` in float64 over any array (inf or NaN if it holds one)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.shape[0] < PARALLEL_FROM:
        return serial_sum_of_squares(flat)
    return parallel_sum_of_squares(flat)


@njit(cache=True)
def segment_sums_of_squares(flat, seg_ptr, out):
    """``out[s]`` = :func:`sum_of_squares` of ``flat[seg_ptr[s]:seg_ptr[s+1]]``, bit for bit: each segment cut
    into the same chunks, counted from its own start, and their sums added in the same order. A replica
    ensemble's per-replica gradient norms are thus those of the replica's single run
    (docs/model.md#replica-ensembles), in one call for all replicas."""
    for s in range(seg_ptr.shape[0] - 1):
        lo0 = seg_ptr[s]
        n = seg_ptr[s + 1] - lo0
        total = 0.0
        for c in range((n + ELEMENTS_PER_CHUNK - 1) // ELEMENTS_PER_CHUNK):
            lo = lo0 + c * ELEMENTS_PER_CHUNK
            total += _range_sum_of_squares(flat, lo, min(lo0 + n, lo + ELEMENTS_PER_CHUNK))
        out[s] = total
