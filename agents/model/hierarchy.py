"""Cross-scale coupling (docs/model.md#hierarchy-coupling): members' priors pulled towards their meta-agent.

Every ``hierarchy.every`` steps the run loop calls :meth:`Coupling.refresh`: meta-agents are detected and
coarse-grained by :func:`gauge_vfe.agents.analysis.meta_agents.hierarchy` (the detector of ``vfe analyze``, with
the thresholds of ``analysis.meta_agents``), each meta-agent's belief is transported into every member's frame
(frames as they are at the refresh) and the member's prior row becomes the moment interpolation

    m_eff = (1 - rho) m + rho m_T,        S_eff = (1 - rho) S + rho S_T

The result is a layout whose ``coupled_prior`` (mu, precision, ln det) replaces the configured prior in the prior
term of the one kernel (:func:`gauge_vfe.agents.model.energy.evaluate`): between refreshes the targets are
constants, the action is the ordinary one with other prior constants, and its exact gradient is the prior term's.
The configured priors (``layout.prior_mu``, ``prior_sigma``) stay as they are: the file stores them and the
detection's "epistemically dead" test reads them.

With ``max_scale`` s > 2 the belief a meta-agent of scale k passes down to its members is itself pulled, with the
same rho, towards the belief its own meta-agent (scale k + 1 <= s) passes down, transported into its frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from .layout import Layout
from .params import StrictModel
from .state import State


class HierarchyParams(StrictModel):
    """Top-down coupling of meta-agents to their members (docs/model.md#hierarchy-coupling)."""

    enabled: bool = Field(False, description="pull each meta-agent member's prior towards the meta-agent's "
                          "coarse-grained belief (off: the configured priors, bit for bit)")
    every: int = Field(10, ge=1, description="detect and coarse-grain the meta-agents every this many steps "
                       "(at the steps that are multiples of it, and where a run starts); the targets are "
                       "constants in between")
    rho: float = Field(0.5, ge=0, le=1, allow_inf_nan=False, description="coupling weight: 0 none, 1 the "
                       "meta-agent's transported belief is the member's prior")
    max_scale: int = Field(2, ge=2, le=10, description="highest scale coupled: 2 members to their meta-agent; "
                           "3 also meta-agents to theirs, and so on down")


def prior_constants(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, ln det) of prior covariances, computed exactly as :func:`build_layout` does (same bits)."""
    chol = np.linalg.cholesky(sigma)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    precision = np.linalg.inv(sigma)
    return 0.5 * (precision + precision.transpose(0, 2, 1)), logdet


def pull_down(lower: Layout, lower_state: State, components, upper: Layout, upper_state: State,
              up_mu: np.ndarray, up_sigma: np.ndarray):
    """The belief ``(up_mu, up_sigma)`` of each upper entity (a meta-agent, rows of ``upper``) transported into the
    frame of each of its members (``components[a]``: agents of ``lower``) at each of the member's sites.

    Returns ``(mask, mu_T, sigma_T)`` over the rows of ``lower``: ``mask`` marks member rows; elsewhere the targets
    are 0. The transport is ``Omega = R_i R_M^T`` with the frames of ``lower_state`` and ``upper_state``.
    """
    from ..analysis.measures import frame_matrices  # analysis imports model: import here, not at the top

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


def targets(layout: Layout, state: State, consensus, max_scale: int, rho: float):
    """``(mask, mu_T, sigma_T, levels)``: the transported meta-agent beliefs every scale-1 row is pulled towards
    (``mask``: rows of members of some meta-agent), composed down from ``max_scale``; ``levels`` as detected."""
    from ..analysis.meta_agents import hierarchy

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


def effective_prior(layout: Layout, mask: np.ndarray, mu_t: np.ndarray, sigma_t: np.ndarray, rho: float):
    """``(mu, sigma)`` of the coupled prior: the moment interpolation on member rows, the configured prior elsewhere."""
    mu = layout.prior_mu.copy()
    sigma = layout.prior_sigma.copy()
    mu[mask] = (1.0 - rho) * layout.prior_mu[mask] + rho * mu_t[mask]
    sigma[mask] = (1.0 - rho) * layout.prior_sigma[mask] + rho * sigma_t[mask]
    return mu, sigma


def with_coupled_prior(layout: Layout, mu: np.ndarray, sigma: np.ndarray) -> Layout:
    """``layout`` whose prior term uses ``(mu, sigma)`` instead of the configured prior (which it keeps)."""
    precision, logdet = prior_constants(sigma)
    return replace(layout, coupled_prior=(np.ascontiguousarray(mu), np.ascontiguousarray(sigma),
                                          np.ascontiguousarray(precision), np.ascontiguousarray(logdet)))


class Coupling:
    """The refresh state of a coupled run: what the run loop calls every ``every`` steps (not the kernels).

    ``refresh(layout, state)`` returns the layout with the coupled prior computed at ``state``; the targets are a
    function of that state alone, so a run resumed from a checkpoint taken at a refresh step recomputes them bit
    for bit (:func:`resume_problem` refuses the other steps).
    """

    def __init__(self, params: HierarchyParams, consensus):
        self.params = params
        self.consensus = consensus
        self.refreshed_at: int | None = None
        self.n_members = 0

    def due(self, step: int) -> bool:
        return step % self.params.every == 0

    def refresh(self, layout: Layout, state: State) -> Layout:
        p = self.params
        # the measurement reads float64 states only (as the analysis of logged frames does): one compiled kernel
        mask, mu_t, sig_t, _ = targets(layout, state.astype(np.float64), self.consensus, p.max_scale, p.rho)
        mu, sigma = effective_prior(layout, mask, mu_t, sig_t, float(p.rho))
        self.refreshed_at = state.step
        self.n_members = int(mask.sum())
        return with_coupled_prior(layout, mu, sigma)


def resume_problem(config: dict, step: int) -> str | None:
    """Why a run with this (JSON) config cannot resume at checkpoint ``step``, or None.

    The targets in force at a step were computed at the last refresh step; they are not stored in the checkpoint,
    so only a checkpoint at a refresh step (a multiple of ``every``, where the resumed run recomputes them from the
    checkpoint state) continues bit for bit. Any other is refused instead of silently differing."""
    h = config.get("hierarchy") or {}
    if not h.get("enabled"):
        return None
    every = int(h.get("every", HierarchyParams().every))
    if step % every == 0:
        return None
    return (f"cannot resume: hierarchy coupling is enabled and the checkpoint (step {step}) is not a refresh step "
            f"(a multiple of hierarchy.every = {every}); the meta-agent targets in force there are not stored, so a "
            "resumed run would differ from an uninterrupted one. Choose output.every as a multiple of "
            "hierarchy.every (or vice versa) to make every checkpoint resumable")
