"""numba kernels over plain arrays (see each module).

Importing the package sets up how they run, before any kernel module loads: waiting OpenMP threads sleep
(:mod:`.openmp`), and compiled kernels go to one per-user cache folder per version of these sources
(:mod:`.cache`). Both only set environment variables (a value the user set is kept), so child processes (sweep
workers, tests) inherit them.
"""

from .cache import use_default_cache
from .openmp import wait_passively

wait_passively()
use_default_cache()
