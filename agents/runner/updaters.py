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

from ..analysis.coupling import coupled_layout
from ..analysis.meta_agents import ConsensusParams
from ..model.hierarchy import HierarchyParams
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
        layout, self.n_members = coupled_layout(layout, state, self.params, self.consensus)
        self.refreshed_at = state.step
        return layout

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
