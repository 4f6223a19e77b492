"""Named bundles of the arrays the kernels take.

The kernels read a dozen arrays each; passing them one by one made signatures of 40 positional parameters in
which a swapped pair still compiles. A namedtuple keeps the names and costs nothing inside compiled code: numba
types it field by field, so ``beliefs.mu`` compiles to the same array value as a separate ``mu`` parameter.
Three numba limits shape how the kernels use them:

* numba's on-disk cache records a namedtuple type as a reference to its class by module name, and the package
  is imported under two names (``gauge_vfe.agents`` installed, ``agents`` by ``python -m agents.cli`` in the
  checkout): an index entry written under one name makes a process of the other fail to load the cache
  (``No module named 'agents'``). So no cached function has a bundle in its signature: the compiled entry points
  (``site_terms_kernel``, ``site_pair_kl_kernel``) take each bundle as a plain tuple and name it again inside,
  and the functions below them that take bundles are inlined and not cached themselves. Plain tuples are also
  typed on numba's fast path when called from Python, namedtuples on a slow one.
* inside a ``prange`` body numba drops writes made through a namedtuple's field (numba issues #5872, #7135: its
  alias analysis does not see that ``bundle.field`` is the bundle's array and removes the stores as dead).
  Bundles therefore carry inputs only; outputs and scratch are plain arrays there (:class:`Outputs` is unpacked
  before the loop).
* an inlined function receives its arguments as copies, and each copied array (each array of a copied bundle)
  costs two atomic reference counts per call; numba's parallel pipeline removes the copies, but only in a
  ``prange`` body. A non-inlined call instead passes every bundle flattened, hundreds of words per call. Both
  made the pass a third slower or more at K = 3, so the term functions are inlined into the ``prange`` body.

Field shapes use ``S`` rows (agent-sites), ``K`` the fiber dimension, ``D`` the observation dimension, ``P``
the number of pair slots (``sum_c n_c^2`` over occupied sites) and ``B`` the irreducible blocks of the fiber.
The builders at the end read the objects of :mod:`agents.model` by attribute name only, so this module
imports nothing from the model layer.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

SiteTables = namedtuple("SiteTables", ["site_ptr", "site_rows", "occupied", "pair_ptr", "chunks", "max_per_site",
                                       "chi"])
SiteTables.__doc__ = """Who sits where (docs/model.md#supports): CSR rows per grid site and the work chunks.

site_ptr (H*W + 1,), site_rows (S,): the rows at site c are ``site_rows[site_ptr[c]:site_ptr[c+1]]``, in agent
order; occupied (n_occ,): the sites holding a row; pair_ptr (n_occ + 1,): first pair slot of each occupied
site, whose ``n^2`` slots hold ``(a, b)`` at ``a * n + b``; chunks (n_chunks + 1,): boundaries into
``occupied``; max_per_site: the largest ``n``; chi (S,): the support weight of each row."""

Beliefs = namedtuple("Beliefs", ["mu", "sigma", "phi"])
Beliefs.__doc__ = """The state (or any Gaussian field with frames): mu (S, K), sigma (S, K, K), phi (S, 3) (so(3))
or (S, K^2) (gl(K))."""

Priors = namedtuple("Priors", ["mu", "precision", "logdet"])
Priors.__doc__ = """Prior means (S, K), precisions S^-1 (S, K, K) and ln det S (S,) (docs/model.md#prior)."""

ObservationArrays = namedtuple("ObservationArrays", ["value", "C", "precision", "info", "present"])
ObservationArrays.__doc__ = """Observations (docs/model.md#observation): value o (S, D), C (D, K), precision
Rn^-1 (D, D), info C^T Rn^-1 C (K, K) and ``present`` (False: the vacuum theory, arrays of size 0)."""

Weights = namedtuple("Weights", ["alpha", "gamma", "lam", "kappa", "free_energy", "include_self"])
Weights.__doc__ = """Weights of the site-local terms (docs/model.md#action): alpha, gamma, lam (lambda_align),
kappa (floats); free_energy (the alignment form is ``free_energy``, else ``weighted``) and include_self (bools)."""

FiberArrays = namedtuple("FiberArrays", ["block_start", "block_dim", "block_spin", "rotate_z", "z_partner",
                                         "z_rate", "gen_a", "gen_p", "gen_q", "gen_val", "glk"])
FiberArrays.__doc__ = """The representation (docs/model.md#fiber) as the kernels read it: the first six fields
are what :func:`agents.kernels.lie.rho_exp` takes (blocks (B,), rotate_z (B, Kmax, Kmax), z_partner and z_rate
(K,)); the next four are the nonzero entries ``(G_a)_pq = gen_val`` of the generators as flat arrays; glk (bool):
GL(K) frames, phi (S, K^2), and the arrays before it are only sized (docs/model.md#glk-frames,
:mod:`agents.kernels.glk`)."""

Outputs = namedtuple("Outputs", ["e_prior", "e_obs", "e_align", "g_mu", "g_sigma", "g_phi", "kl", "beta",
                                 "status"])
Outputs.__doc__ = """What the site-local pass writes: densities e_prior, e_obs, e_align (S,); gradients g_mu
(S, K), g_sigma (S, K, K), g_phi (S, 3); KL_ab and beta_ab per pair slot (P,); status (S,) int8."""


def site_tables(layout) -> SiteTables:
    """The site tables of a layout."""
    return SiteTables(layout.site_ptr, layout.site_rows, layout.occupied, layout.pair_ptr, layout.chunks,
                      int(layout.max_per_site), layout.chi)


def fiber_arrays(fiber) -> FiberArrays:
    """The kernel arrays of a fiber."""
    return FiberArrays(fiber.block_start, fiber.block_dim, fiber.block_spin, fiber.rotate_z, fiber.z_partner,
                       fiber.z_rate, fiber.gen_a, fiber.gen_p, fiber.gen_q, fiber.gen_val, bool(fiber.glk))


def no_observations(n_rows: int, K: int) -> ObservationArrays:
    """The vacuum theory: empty observation arrays of the right dimensions, ``present`` False."""
    return ObservationArrays(np.zeros((n_rows, 0)), np.zeros((0, K)), np.zeros((0, 0)), np.zeros((K, K)), False)
