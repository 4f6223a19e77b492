"""What does not change during a run: supports, per-agent-site storage, neighbour tables, priors, observations.

Storage is per agent-site ("row"), as in the trajectory file (docs/model.md#file): agent ``i`` owns rows
``offset[i]:offset[i+1]``, sorted by flat site index ``y*W + x``. Memory therefore grows with the total
support area, not with N x H x W.

Derived tables, all plain int64 arrays built once per support layout:

* ``site_ptr``/``site_rows``: the rows present at each grid site (CSR, rows in agent order). Every pair of
  rows at one site is an overlapping agent pair there; ``pair_ptr`` gives each occupied site a block of
  ``n_c^2`` slots for the pairwise KL and beta values.
* ``occupied``: the sites holding at least one row; ``chunks`` splits them into balanced work units for the
  parallel kernels.
* ``fwd_x``, ``fwd_y``, ``bwd_x``, ``bwd_y``: the row of the same agent at the neighbouring site (-1 if the
  neighbour is off an open grid or outside the support).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.chunking import SITE_CHUNKS
from .fiber import Fiber
from .grid import SUPPORT_CUTOFF, Grid


PAIR_BLOCK = 1 << 20  # pair slots handled at once when counting overlaps (bounded temporary memory)


@dataclass(frozen=True)
class Observations:
    """Linear Gaussian observations o_i(c) = C x + noise, noise ~ N(0, Rn) (docs/model.md#observation)."""

    value: np.ndarray  # (S, D), in each agent's own frame
    C: np.ndarray  # (D, K)
    Rn: np.ndarray  # (D, D) SPD

    @property
    def D(self) -> int:
        return self.C.shape[0]


@dataclass(frozen=True, repr=False)
class Layout:
    grid: Grid
    fiber: Fiber
    n_agents: int
    offset: np.ndarray  # (N+1,)
    index: np.ndarray  # (S,) flat site index of each row
    chi: np.ndarray  # (S,)
    agent: np.ndarray  # (S,) agent of each row
    site_ptr: np.ndarray  # (H*W + 1,)
    site_rows: np.ndarray  # (S,)
    occupied: np.ndarray  # (n_occ,) sites with >= 1 row
    pair_ptr: np.ndarray  # (n_occ + 1,) offsets of the n_c^2 pair slots of each occupied site
    chunks: np.ndarray  # (n_chunks + 1,) boundaries into `occupied`
    max_per_site: int
    fwd_x: np.ndarray
    fwd_y: np.ndarray
    bwd_x: np.ndarray
    bwd_y: np.ndarray
    prior_mu: np.ndarray  # (S, K)
    prior_sigma: np.ndarray  # (S, K, K)
    prior_precision: np.ndarray  # (S, K, K)
    prior_logdet: np.ndarray  # (S,)
    observations: Observations | None = None
    # Derived observation constants (None without observations)
    obs_precision: np.ndarray | None = field(default=None, repr=False)  # Rn^-1
    obs_info: np.ndarray | None = field(default=None, repr=False)  # C^T Rn^-1 C
    # (mu, sigma, precision, ln det) of the prior the prior term uses instead of the configured one, set by a
    # hierarchy coupling's refresh (docs/model.md#hierarchy-coupling); None: the configured prior
    coupled_prior: tuple | None = field(default=None, repr=False)
    # Replica ensembles (docs/model.md#replica-ensembles): the layout may hold R independent worlds, world w
    # owning rows world_ptr[w]:world_ptr[w+1]; world (S,) is each row's world. A single run is one world (both
    # filled in by __post_init__ when not given).
    world: np.ndarray | None = field(default=None, repr=False)
    world_ptr: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.world is None:
            object.__setattr__(self, "world", np.zeros(self.index.shape[0], dtype=np.int64))
            object.__setattr__(self, "world_ptr", np.array([0, self.index.shape[0]], dtype=np.int64))

    @property
    def replicas(self) -> int:
        """The number of independent worlds (1 for a single run)."""
        return int(self.world_ptr.shape[0] - 1)

    def __repr__(self) -> str:
        obs = "none" if self.observations is None else f"D={self.observations.D}"
        return (f"Layout({self.grid.height}x{self.grid.width} {self.grid.boundary}, {self.fiber.describe()}, "
                f"agents={self.n_agents}, agent-sites={self.n_rows}, "
                f"max agents per site={self.max_per_site}, observations={obs})")

    @property
    def n_rows(self) -> int:
        return int(self.index.shape[0])

    @property
    def K(self) -> int:
        return self.fiber.K

    def rows_of(self, agent: int) -> slice:
        return slice(int(self.offset[agent]), int(self.offset[agent + 1]))

    def overlap_pairs(self) -> np.ndarray:
        """(P, 3) array of (i, j, number of shared sites) for every overlapping pair i < j, sorted.

        Counted from the per-site pair slots a block of sites at a time: no N x N matrix, no loop over sites.
        """
        counts = np.diff(self.site_ptr)[self.occupied]
        N = self.n_agents
        codes, tallies = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        bounds = np.searchsorted(self.pair_ptr, np.arange(0, int(self.pair_ptr[-1]), PAIR_BLOCK)).tolist()
        bounds = sorted(set(bounds + [counts.size]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            n = counts[lo:hi]
            site = np.repeat(np.arange(lo, hi), n * n)
            a, b = np.divmod(np.arange(site.size) + self.pair_ptr[lo] - self.pair_ptr[site], counts[site])
            keep = a < b
            start = self.site_ptr[self.occupied[site[keep]]]
            code = self.agent[self.site_rows[start + a[keep]]] * N + self.agent[self.site_rows[start + b[keep]]]
            u, c = np.unique(code, return_counts=True)
            codes.append(u)
            tallies.append(c)
        u, inverse = np.unique(np.concatenate(codes), return_inverse=True)
        total = np.bincount(inverse, np.concatenate(tallies)).astype(np.int64)
        i, j = np.divmod(u, N)
        return np.stack([i, j, total], axis=1).astype(np.int64)

    def overlapping_pair_count(self) -> int:
        return int(self.overlap_pairs().shape[0])

    def to_grid(self, values: np.ndarray, agent: int, fill=np.nan) -> np.ndarray:
        """Scatter one agent's per-row values into a (H, W, ...) array, ``fill`` outside its support."""
        rows = self.rows_of(agent)
        v = values[rows]
        out = np.full((self.grid.n_sites,) + v.shape[1:], fill, dtype=float)
        out[self.index[rows]] = v
        return out.reshape((self.grid.height, self.grid.width) + v.shape[1:])


def world_sums(layout: Layout, values: np.ndarray, dtype=None) -> np.ndarray:
    """(R,): the sum of ``values`` (S, ...) over each world's rows, each exactly ``np.sum`` of that world's
    block as its single run sums it (docs/model.md#replica-ensembles). Worlds of equal size are one numpy call:
    a reduction along the last axis of an (R, n) array runs numpy's pairwise sum over each row, as ``np.sum``
    does over a 1-D array of n values (tests/test_replicas.py checks it); worlds of unequal size (random
    supports) are summed one by one."""
    R = layout.replicas
    if R == 1:
        return np.array([np.sum(values, dtype=dtype)])
    ptr = layout.world_ptr
    sizes = np.diff(ptr)
    if (sizes == sizes[0]).all():
        return np.ascontiguousarray(values).reshape(R, -1).sum(axis=1, dtype=dtype)
    return np.array([np.sum(values[ptr[w]:ptr[w + 1]], dtype=dtype) for w in range(R)])


def compress_supports(grid: Grid, chis: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offset, index, chi) of the agent-site rows from dense (H, W) support arrays."""
    offset = [0]
    index, values = [], []
    for i, c in enumerate(chis):
        c = np.asarray(c, dtype=float)
        if c.shape != (grid.height, grid.width):
            raise ValueError(f"agent {i}: support shape {c.shape} is not the grid's {(grid.height, grid.width)}")
        if np.any(c < 0) or np.any(c > 1) or not np.all(np.isfinite(c)):
            raise ValueError(f"agent {i}: support weights must lie in [0, 1]")
        flat = c.ravel()
        sites = np.nonzero(flat >= SUPPORT_CUTOFF)[0]
        if sites.size == 0:
            raise ValueError(f"agent {i}: empty support (no site with chi >= {SUPPORT_CUTOFF})")
        index.append(sites)
        values.append(flat[sites])
        offset.append(offset[-1] + sites.size)
    return (np.array(offset, dtype=np.int64), np.concatenate(index).astype(np.int64), np.concatenate(values))


def _neighbor_rows(grid: Grid, offset: np.ndarray, index: np.ndarray, axis: str, forward: bool) -> np.ndarray:
    """Row of the same agent at c +/- axis, or -1."""
    out = -np.ones(index.shape[0], dtype=np.int64)
    for i in range(offset.shape[0] - 1):  # set-up only: one vectorised search per agent
        lo, hi = offset[i], offset[i + 1]
        sites = index[lo:hi]
        target = grid.neighbor(sites, axis, 1 if forward else -1)
        pos = np.searchsorted(sites, target)
        pos_c = np.minimum(pos, sites.size - 1)
        found = (target >= 0) & (sites[pos_c] == target)
        out[lo:hi] = np.where(found, lo + pos_c, -1)
    return out


def _balanced_chunks(cost: np.ndarray, n_chunks: int) -> np.ndarray:
    """Boundaries splitting consecutive work items into ~equal-cost chunks."""
    n = cost.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    n_chunks = max(1, min(n_chunks, n))
    cum = np.cumsum(cost, dtype=float)
    targets = cum[-1] * np.arange(1, n_chunks) / n_chunks
    cuts = np.searchsorted(cum, targets) + 1
    bounds = np.unique(np.concatenate([[0], cuts, [n]]))
    return bounds.astype(np.int64)


def build_layout(grid: Grid, fiber: Fiber, chis: list[np.ndarray], prior_mu: np.ndarray, prior_sigma: np.ndarray,
                 observations: Observations | None = None) -> Layout:
    """Assemble the layout. ``prior_mu`` (S, K) and ``prior_sigma`` (S, K, K) are per row, as are observations."""
    offset, index, chi = compress_supports(grid, chis)
    n_rows = index.shape[0]
    K = fiber.K
    agent = np.repeat(np.arange(len(chis), dtype=np.int64), np.diff(offset))
    order = np.argsort(index, kind="stable")  # rows grouped by site, agents in order within a site
    counts = np.bincount(index, minlength=grid.n_sites)
    site_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    site_rows = order.astype(np.int64)
    occupied = np.nonzero(counts)[0].astype(np.int64)
    n_occ = counts[occupied]
    pair_ptr = np.concatenate([[0], np.cumsum(n_occ * n_occ)]).astype(np.int64)
    # Work per site: per-row O(K^3) rotations and inverses, per-pair O(K^2) divergences.
    cost = n_occ * K ** 3 + n_occ * n_occ * K * K
    chunks = _balanced_chunks(cost, SITE_CHUNKS)

    prior_mu = np.ascontiguousarray(prior_mu, dtype=float)
    prior_sigma = np.ascontiguousarray(prior_sigma, dtype=float)
    if prior_mu.shape != (n_rows, K) or prior_sigma.shape != (n_rows, K, K):
        raise ValueError("prior arrays must have shapes (S, K) and (S, K, K)")
    sym_err = np.abs(prior_sigma - prior_sigma.transpose(0, 2, 1)).max(initial=0.0)
    if sym_err > 1e-10 * max(1.0, np.abs(prior_sigma).max(initial=0.0)):
        raise ValueError("prior covariance is not symmetric")
    try:
        chol = np.linalg.cholesky(prior_sigma)
    except np.linalg.LinAlgError:
        raise ValueError("prior covariance is not positive definite at some agent-site") from None
    prior_logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    prior_precision = np.linalg.inv(prior_sigma)
    prior_precision = 0.5 * (prior_precision + prior_precision.transpose(0, 2, 1))

    obs_precision = obs_info = None
    if observations is not None:
        D = observations.C.shape[0]
        if observations.C.shape != (D, K) or observations.Rn.shape != (D, D):
            raise ValueError(f"observation matrix C must be (D, {K}) and Rn (D, D)")
        if observations.value.shape != (n_rows, D):
            raise ValueError(f"observation values must be (S, D) = ({n_rows}, {D})")
        try:
            np.linalg.cholesky(observations.Rn)
        except np.linalg.LinAlgError:
            raise ValueError("observation noise Rn is not positive definite") from None
        obs_precision = np.linalg.inv(observations.Rn)
        obs_precision = 0.5 * (obs_precision + obs_precision.T)
        obs_info = observations.C.T @ obs_precision @ observations.C
        obs_info = 0.5 * (obs_info + obs_info.T)

    return Layout(
        grid=grid,
        fiber=fiber,
        n_agents=len(chis),
        offset=offset,
        index=index,
        chi=chi,
        agent=agent,
        site_ptr=site_ptr,
        site_rows=site_rows,
        occupied=occupied,
        pair_ptr=pair_ptr,
        chunks=chunks,
        max_per_site=int(counts.max()),
        fwd_x=_neighbor_rows(grid, offset, index, "x", True),
        fwd_y=_neighbor_rows(grid, offset, index, "y", True),
        bwd_x=_neighbor_rows(grid, offset, index, "x", False),
        bwd_y=_neighbor_rows(grid, offset, index, "y", False),
        prior_mu=prior_mu,
        prior_sigma=prior_sigma,
        prior_precision=prior_precision,
        prior_logdet=prior_logdet,
        observations=observations,
        obs_precision=obs_precision,
        obs_info=obs_info,
    )
