"""The hierarchy coupling's targets (docs/model.md#hierarchy-coupling): what each member's prior is pulled towards.

The meta-agents are detected and coarse-grained by the detector of ``vfe analyze``; each meta-agent's belief is
transported into every member's frame and composed down from ``max_scale``. :func:`coupled_layout` is the one
function the run (:class:`~gauge_vfe.agents.runner.updaters.HierarchyCoupling`) and a reader reproducing a logged
frame's energy (:meth:`~gauge_vfe.agents.io.reader.Trajectory.layout_at`) both call, so they agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..model.hierarchy import HierarchyParams, effective_prior, with_coupled_prior
from ..model.layout import Layout
from ..model.state import State
from .measures import frame_matrices
from .meta_agents import ConsensusParams, hierarchy


def coupled_layout(layout: Layout, state: State, params: HierarchyParams, consensus: ConsensusParams
                   ) -> tuple[Layout, int]:
    """``layout`` with the coupled prior computed at ``state``, and the number of member rows it pulls."""
    # the measurement reads float64 states only (as the analysis of logged frames does): one compiled kernel
    mask, mu_t, sig_t, _ = targets(layout, state.astype(np.float64), consensus, params.max_scale, params.rho)
    mu, sigma = effective_prior(layout, mask, mu_t, sig_t, float(params.rho))
    return with_coupled_prior(layout, mu, sigma), int(mask.sum())


def pull_down(lower: Layout, lower_state: State, components, upper: Layout, upper_state: State,
              up_mu: np.ndarray, up_sigma: np.ndarray):
    """The belief ``(up_mu, up_sigma)`` of each upper entity (a meta-agent, rows of ``upper``) transported into the
    frame of each of its members (``components[a]``: agents of ``lower``) at each of the member's sites.

    Returns ``(mask, mu_T, sigma_T)`` over the rows of ``lower``: ``mask`` marks member rows; elsewhere the targets
    are 0. The transport is ``Omega = R_i R_M^T`` with the frames of ``lower_state`` and ``upper_state``.
    """
    S, K = lower.n_rows, lower.K
    R_lo = frame_matrices(lower, lower_state)
    R_up = frame_matrices(upper, upper_state)
    mask = np.zeros(S, dtype=bool)
    mu_t = np.zeros((S, K))
    sig_t = np.zeros((S, K, K))
    pos = -np.ones(upper.grid.n_sites, dtype=np.int64)
    for a, members in enumerate(components):
        up_rows = np.arange(upper.offset[a], upper.offset[a + 1])
        pos[upper.index[up_rows]] = up_rows
        for m in members:
            rows = np.arange(lower.offset[m], lower.offset[m + 1])
            u = pos[lower.index[rows]]
            keep = u >= 0  # the meta-agent's support is the union of its members': every member site is there
            rows, u = rows[keep], u[keep]
            omega = np.einsum("sij,skj->sik", R_lo[rows], R_up[u])  # R_i R_M^T
            mu_t[rows] = np.einsum("sij,sj->si", omega, up_mu[u])
            st = np.einsum("sij,sjk,slk->sil", omega, up_sigma[u], omega)
            sig_t[rows] = 0.5 * (st + st.transpose(0, 2, 1))
            mask[rows] = True
        pos[upper.index[up_rows]] = -1
    return mask, mu_t, sig_t


def targets(layout: Layout, state: State, consensus: ConsensusParams, max_scale: int, rho: float):
    """``(mask, mu_T, sigma_T, levels)``: the transported meta-agent beliefs every scale-1 row is pulled towards
    (``mask``: rows of members of some meta-agent), composed down from ``max_scale``; ``levels`` as detected."""
    levels = hierarchy(layout, state, consensus.model_copy(update={"max_scale": max_scale}))
    levels = [lv for lv in levels if lv.components and lv.layout is not None]
    K = layout.K
    if not levels:
        return np.zeros(layout.n_rows, dtype=bool), np.zeros((layout.n_rows, K)), \
            np.zeros((layout.n_rows, K, K)), levels
    # the top meta-agents pass down their own belief; each scale below passes down its belief pulled towards it
    msg_mu, msg_sigma = levels[-1].state.mu, levels[-1].state.sigma
    for i in range(len(levels) - 1, 0, -1):
        lower_layout, lower_state = levels[i - 1].layout, levels[i - 1].state
        mask, mu_t, sig_t = pull_down(lower_layout, lower_state, levels[i].components, levels[i].layout,
                                      levels[i].state, msg_mu, msg_sigma)
        msg_mu = lower_state.mu.copy()
        msg_sigma = lower_state.sigma.copy()
        msg_mu[mask] = (1.0 - rho) * msg_mu[mask] + rho * mu_t[mask]
        msg_sigma[mask] = (1.0 - rho) * msg_sigma[mask] + rho * sig_t[mask]
    mask, mu_t, sig_t = pull_down(layout, state, levels[0].components, levels[0].layout, levels[0].state,
                                  msg_mu, msg_sigma)
    return mask, mu_t, sig_t, levels
