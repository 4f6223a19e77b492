"""How the parallel kernels cut their work into chunks: the two sizes, in one place.

Each parallel kernel runs a ``prange`` over chunks, and allocates its scratch buffers at the top of the loop
body. numba gives each thread one contiguous, equal share of the iterations (static scheduling) and moves those
allocations to the start of each thread's share ("allocation hoisting", listed by
``NUMBA_PARALLEL_DIAGNOSTICS=4``): scratch is allocated once per thread and pass. Were an allocation not hoisted,
it would be made once per chunk, still outside the loop over a chunk's items. Shares of equal chunk counts are
even only if the chunks cost about the same.
"""

from __future__ import annotations

# Rows (agent-sites) per chunk of the per-row kernels (lie.frames, update.update_gaussians), whose rows all cost
# the same. Were the scratch allocation not hoisted, 64 rows would still make it negligible (a few K x K buffers,
# under a microsecond, against O(64 K^3) work even at K = 3); the smallest benchmark (1602 rows) keeps 25
# chunks, far more than threads.
ROWS_PER_CHUNK = 64

# Number of chunks the layout cuts the occupied sites into for the site-local kernels (site_terms,
# consensus.site_pair_kl). Sites differ in cost (their number of rows, of pairs); the chunks are made of equal
# estimated cost (layout._balanced_chunks), so the threads' equal shares of chunks are uneven by at most one
# chunk: about T / 256 of the work for T threads, under 1 % on 2 cores and still a quarter of a thread's share
# at 64. With hoisted scratch more chunks would cost nothing at run time; without, one allocation set each.
SITE_CHUNKS = 256
