"""How close can K x K products in numba come to the machine's matmul rate? The ceiling behind issue 14's item 3.

    python benchmarks/bench_small_products.py              # K = 3, 9, 15; rows in cache and rows from memory
    python benchmarks/bench_small_products.py --K 15 --rows 512

The engine's per-row work is products, inverses and exponentials of K x K matrices. This script measures the
best case of that work, a batched product ``C_r = A_r B_r`` over rows r (2 K^3 flops each, nothing else), as a
share of numpy's large-matrix rate (a 2000 x 2000 dgemm, the same yardstick as ``bench_engine.py``'s
``% matmul``), three ways, in one run:

* ``runtime K``: ``linalg.matmul``, the engine's own product, whose loop bounds come from the arrays' shapes at
  run time (numba's array types carry no sizes, so that is what every engine kernel compiles);
* ``compile-time K``: the same triple loop with K a constant of the compiled code, so the compiler can unroll
  and vectorise it for that K (one compiled kernel per K);
* ``numpy.matmul`` on the stack of matrices.

Each is a parallel pass over the rows (``prange``, the default thread count), timed as the best of 3 blocks.
``--rows`` sets how many rows: 512 keep the three arrays in the caches (the engine's scratch is), 20,000 do not
(B3's size; then memory traffic also limits). The engine's whole step mixes these products with Cholesky
factorisations, triangular inverses, rotations and passes over whole arrays, all of lower arithmetic intensity:
its share of the matmul rate is below what the product alone reaches here.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit, prange

from gauge_vfe.agents.kernels.linalg import matmul


@njit(parallel=True)
def _runtime_k(A, B, C):
    for r in prange(A.shape[0]):
        matmul(A[r], B[r], C[r])


def _compile_time_k(K: int):
    """A batched product kernel with ``K`` a compile-time constant (a closure over it: one compilation per K)."""

    @njit(parallel=True)
    def kernel(A, B, C):
        for r in prange(A.shape[0]):
            for i in range(K):
                for j in range(K):
                    C[r, i, j] = 0.0
                for k in range(K):
                    a = A[r, i, k]
                    for j in range(K):
                        C[r, i, j] += a * B[r, k, j]

    return kernel


def _gflops(f, args, flops: float, budget: float = 0.3) -> float:
    """Best rate of 3 timed blocks, each about ``budget`` seconds, after one call that compiles and warms."""
    f(*args)
    t = time.perf_counter()
    f(*args)
    reps = max(1, int(budget / max(time.perf_counter() - t, 1e-6)))
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            f(*args)
        best = min(best, (time.perf_counter() - t) / reps)
    return flops / best / 1e9


def matmul_rate(n: int = 2000) -> float:
    """numpy's dgemm rate in GFLOP/s on n x n matrices, the best of 3."""
    a = np.random.default_rng(0).random((n, n))
    return _gflops(np.matmul, (a, a), 2.0 * n ** 3, budget=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--K", default="3,9,15", help="comma-separated fiber dimensions")
    ap.add_argument("--rows", default="512,20000", help="comma-separated row counts")
    args = ap.parse_args()
    peak = matmul_rate()
    print(f"numpy dgemm 2000 x 2000: {peak:.1f} GFLOP/s (the 100 % below)")
    print(f"{'K':>3} {'rows':>6}  {'runtime K':>18}  {'compile-time K':>18}  {'numpy.matmul':>18}")
    rng = np.random.default_rng(1)
    for K in (int(k) for k in args.K.split(",")):
        fixed = _compile_time_k(K)
        for rows in (int(r) for r in args.rows.split(",")):
            A, B = rng.random((rows, K, K)), rng.random((rows, K, K))
            C = np.empty_like(A)
            flops = 2.0 * rows * K ** 3
            rates = [_gflops(f, (A, B, C), flops) for f in (_runtime_k, fixed, np.matmul)]
            print(f"{K:>3} {rows:>6}  " + "  ".join(f"{g:7.2f} GF/s {100 * g / peak:5.1f}%" for g in rates))


if __name__ == "__main__":
    main()
