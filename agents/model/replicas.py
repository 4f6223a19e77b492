"""Replica ensembles as one layout of independent worlds (docs/model.md#replica-ensembles).

R copies of a scenario are stacked into one :class:`~.layout.Layout`: the rows of replica w follow those of
replica w - 1, and its sites are numbered ``w * H * W + y * W + x``. The site tables (``site_ptr``,
``site_rows``, ``occupied``, ``pair_ptr``) and the neighbour tables (which stay inside their world) are the
replicas' own, shifted; agents of different worlds never share a site. Every kernel works per site or per row,
so one call steps all worlds, and each world's arrays are exactly those of its single run. What is summed over
rows (energies, slopes, gradient norms, the information clock) is summed per world by
:func:`~.layout.world_sums` and its kin, in the order the single run sums it.
"""

from __future__ import annotations

import numpy as np

from ..kernels.chunking import SITE_CHUNKS
from .layout import Layout, Observations, _balanced_chunks
from .state import State


def _shifted(arrays: list[np.ndarray], shifts) -> np.ndarray:
    """Concatenate ``arrays`` with ``shifts[w]`` added to the w-th; entries < 0 (no neighbour) stay -1."""
    return np.concatenate([np.where(a >= 0, a + s, a) for a, s in zip(arrays, shifts)]).astype(np.int64)


def tile_layouts(layouts: list[Layout]) -> Layout:
    """One layout of ``len(layouts)`` independent worlds, world w being ``layouts[w]`` (built from replica w's
    seed). They must share the grid, the fiber, the agent count and the observation model (C, Rn): they are
    copies of one scenario."""
    first = layouts[0]
    for lay in layouts[1:]:
        if (lay.grid != first.grid or lay.fiber.spins != first.fiber.spins or lay.n_agents != first.n_agents
                or (lay.observations is None) != (first.observations is None)):
            raise ValueError("replicas of one scenario must share the grid, the fiber, the agents and observations")
    R = len(layouts)
    n_sites = first.grid.n_sites
    rows = np.array([lay.n_rows for lay in layouts], dtype=np.int64)
    row0 = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    site0 = np.arange(R, dtype=np.int64) * n_sites
    pair0 = np.concatenate([[0], np.cumsum([int(lay.pair_ptr[-1]) for lay in layouts])]).astype(np.int64)
    cat = np.concatenate
    site_ptr = cat([[0]] + [lay.site_ptr[1:] + row0[w] for w, lay in enumerate(layouts)]).astype(np.int64)
    occupied = _shifted([lay.occupied for lay in layouts], site0)
    pair_ptr = cat([[0]] + [lay.pair_ptr[1:] + pair0[w] for w, lay in enumerate(layouts)]).astype(np.int64)
    n_occ = np.diff(site_ptr)[occupied]
    K = first.K
    # the same per-site cost as build_layout: chunks only cut the work, results do not depend on them
    chunks = _balanced_chunks(n_occ * K ** 3 + n_occ * n_occ * K * K, SITE_CHUNKS)
    obs = None
    if first.observations is not None:
        obs = Observations(cat([lay.observations.value for lay in layouts]), first.observations.C,
                           first.observations.Rn)
    return Layout(
        grid=first.grid,
        fiber=first.fiber,
        n_agents=R * first.n_agents,
        offset=cat([[0]] + [lay.offset[1:] + row0[w] for w, lay in enumerate(layouts)]).astype(np.int64),
        index=_shifted([lay.index for lay in layouts], site0),
        chi=cat([lay.chi for lay in layouts]),
        agent=_shifted([lay.agent for lay in layouts], np.arange(R) * first.n_agents),
        site_ptr=site_ptr,
        site_rows=_shifted([lay.site_rows for lay in layouts], row0),
        occupied=occupied,
        pair_ptr=pair_ptr,
        chunks=chunks,
        max_per_site=max(lay.max_per_site for lay in layouts),
        fwd_x=_shifted([lay.fwd_x for lay in layouts], row0),
        fwd_y=_shifted([lay.fwd_y for lay in layouts], row0),
        bwd_x=_shifted([lay.bwd_x for lay in layouts], row0),
        bwd_y=_shifted([lay.bwd_y for lay in layouts], row0),
        prior_mu=cat([lay.prior_mu for lay in layouts]),
        prior_sigma=cat([lay.prior_sigma for lay in layouts]),
        prior_precision=cat([lay.prior_precision for lay in layouts]),
        prior_logdet=cat([lay.prior_logdet for lay in layouts]),
        observations=obs,
        obs_precision=first.obs_precision,
        obs_info=first.obs_info,
        coupled_prior=_stacked_coupled_prior(layouts),
        world=np.repeat(np.arange(R, dtype=np.int64), rows),
        world_ptr=row0,
    )


def _stacked_coupled_prior(layouts: list[Layout]) -> tuple | None:
    """The hierarchy coupling's prior of every world stacked (a world without one contributes its configured
    prior, which is what its prior term then reads); None when no world has one."""
    if all(lay.coupled_prior is None for lay in layouts):
        return None
    parts = [lay.coupled_prior if lay.coupled_prior is not None else
             (lay.prior_mu, lay.prior_sigma, lay.prior_precision, lay.prior_logdet) for lay in layouts]
    return tuple(np.ascontiguousarray(np.concatenate([p[k] for p in parts])) for k in range(4))


def stack_states(states: list[State]) -> State:
    """The worlds' states as one state (rows of world w after those of world w - 1); all at one step."""
    steps = {s.step for s in states}
    if len(steps) != 1:
        raise ValueError(f"replica states are at different steps: {sorted(steps)}")
    return State(np.concatenate([s.mu for s in states]), np.concatenate([s.sigma for s in states]),
                 np.concatenate([s.phi for s in states]), steps.pop())


def world_rows(layout: Layout, w: int) -> slice:
    """The rows of world w."""
    if not 0 <= w < layout.replicas:
        raise IndexError(f"replica {w} out of range: the ensemble has {layout.replicas}")
    return slice(int(layout.world_ptr[w]), int(layout.world_ptr[w + 1]))


def world_state(layout: Layout, state: State, w: int) -> State:
    """World w's state as views into the stacked arrays (no copies)."""
    rows = world_rows(layout, w)
    return State(state.mu[rows], state.sigma[rows], state.phi[rows], state.step)
