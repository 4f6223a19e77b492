"""Updaters: what changes the energy's inputs during a run, at the steps a trigger names.

The step (:func:`gauge_vfe.agents.model.dynamics.step`) is pure: the layout is the action's constants. Two things
replace some of those constants while a run goes on, and each is an updater attached to the simulation (the
pattern of HOOMD-blue's operations with triggers):

* :class:`ObservationResampling` -- streaming observations (docs/model.md#streaming-observations): a fresh
  draw every ``observations.resample_every`` steps;
* :class:`HierarchyCoupling` -- the cross-scale coupling (docs/model.md#hierarchy-coupling): the members'
  priors pulled towards their meta-agent, refreshed every ``hierarchy.every`` steps.

An updater is any object with a ``trigger`` (a function of the step number), ``apply(layout, state) -> layout``
(the constants in force at ``state``; return the same object when nothing changed), ``reads_state`` (True if
``apply`` reads more of the state than its step number: the simulation then refuses a bad state before the
updater sees it) and ``resumable(step)`` (whether a checkpoint at ``step`` continues bit for bit: an updater
whose effect is not stored in the checkpoint allows only its trigger steps). :class:`Updater` says it as a
protocol; attach one from Python with :meth:`~gauge_vfe.agents.runner.simulation.Simulation.attach`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from ..analysis.measures import frame_matrices
from ..analysis.meta_agents import ConsensusParams, hierarchy
from ..model.hierarchy import HierarchyParams, effective_prior, with_coupled_prior
from ..model.layout import Layout
from ..model.state import State
from ..setup.streaming import draw_index, with_draw

Trigger = Callable[[int], bool]


@dataclass(frozen=True)
class Periodic:
    """Fires at the steps ``phase``, ``phase + period``, ... (HOOMD-blue's ``Periodic``)."""

    period: int
    phase: int = 0

    def __post_init__(self):
        if self.period < 1 or not 0 <= self.phase < self.period:
            raise ValueError(f"Periodic({self.period}, {self.phase}): need period >= 1 and 0 <= phase < period")

    def __call__(self, step: int) -> bool:
        return step % self.period == self.phase


class Updater(Protocol):
    """Replaces constants of the action (the layout) at the steps its trigger names (see the module docstring)."""

    trigger: Trigger
    reads_state: bool

    def apply(self, layout: Layout, state: State) -> Layout: ...

    def resumable(self, step: int) -> bool: ...


class ObservationResampling:
    """Streaming observations: the draw in force at a step is a function of the seed and the step alone
    (:mod:`gauge_vfe.agents.setup.streaming`), so every checkpoint resumes."""

    reads_state = False

    def __init__(self, base: np.ndarray, seed: int, every: int):
        self.base = base
        self.seed = seed
        self.every = every
        self.trigger = Periodic(every)
        self.draw = 0  # the draw the layout holds (0: the configured observations)

    def apply(self, layout: Layout, state: State) -> Layout:
        draw = draw_index(state.step, self.every)
        if draw == self.draw:
            return layout
        self.draw = draw
        return with_draw(layout, self.base, self.seed, draw)

    def resumable(self, step: int) -> bool:
        return True


class HierarchyCoupling:
    """The refresh of a coupled run: meta-agents detected and coarse-grained by the detector of ``vfe analyze``,
    each member's prior pulled towards its meta-agent's transported belief.

    ``apply(layout, state)`` returns the layout with the coupled prior computed at ``state``. The targets are a
    function of that state alone, so a run resumed from a checkpoint taken at a refresh step recomputes them bit
    for bit; at other steps they are not stored, hence :meth:`resumable` (and
    :func:`~gauge_vfe.agents.model.hierarchy.resume_problem` for a file).
    """

    reads_state = True

    def __init__(self, params: HierarchyParams, consensus: ConsensusParams):
        self.params = params
        self.consensus = consensus
        self.trigger = Periodic(params.every)
        self.refreshed_at: int | None = None
        self.n_members = 0

    def apply(self, layout: Layout, state: State) -> Layout:
        p = self.params
        # the measurement reads float64 states only (as the analysis of logged frames does): one compiled kernel
        mask, mu_t, sig_t, _ = targets(layout, state.astype(np.float64), self.consensus, p.max_scale, p.rho)
        mu, sigma = effective_prior(layout, mask, mu_t, sig_t, float(p.rho))
        self.refreshed_at = state.step
        self.n_members = int(mask.sum())
        return with_coupled_prior(layout, mu, sigma)

    def resumable(self, step: int) -> bool:
        return self.trigger(step)


def configured_updaters(config, layout: Layout) -> list:
    """The updaters a scenario asks for, in the order they apply: observations first, then the coupling."""
    out = []
    obs = layout.observations
    if obs is not None and config.observations.resample_every is not None:
        out.append(ObservationResampling(obs.value, config.seed, config.observations.resample_every))
    hier = config.hierarchy
    # at rho = 0 the coupled prior is the configured one bit for bit, so there is nothing to refresh
    if hier.enabled and hier.rho > 0:
        out.append(HierarchyCoupling(hier, config.analysis.meta_agents))
    return out


# --- the coupling's targets (docs/model.md#hierarchy-coupling) ----------------------------------------------------
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
