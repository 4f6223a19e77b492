"""``gv.spectrum``: the linearised spectrum of a run at one of its states (docs/model.md#linearised-spectrum).

    gv.spectrum(sim)                          # a Simulation: its current state, constants and step sizes
    gv.spectrum("runs/q.h5", step=5000, k=12) # a run file (or a Trajectory): a logged frame, default the last
    gv.spectrum(traj, checkpoint=True)        # the run's checkpoint (exact float64)

The work is :func:`gauge_vfe.agents.analysis.spectrum.spectrum`; this module only finds the layout, parameters
and state of a source (:func:`run_model`, the one place that knows how).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.spectrum import SpectrumWarning, spectrum as spectrum_of_state
from ..analysis.timescales import bits_per_step as clock_rate
from ..io.reader import Trajectory, load
from ..model.fiber import require_so3
from ..model.layout import Layout
from ..model.params import DynamicsParams, EnergyParams
from ..model.state import State
from .simulation import Simulation
from .updaters import HierarchyCoupling, configured_updaters

BITS_WINDOW = 1000  # steps of the information clock averaged for tau_bits in a noisy run


@dataclass
class RunModel:
    """What the spectrum needs of a source: the constants in force at ``state``, the parameters and the state;
    ``bits_per_step`` the run's clock rate where known; ``groups`` the base members of its scale-2 meta-agents at
    that state (from a stored analysis); ``notes`` what is approximate."""

    layout: Layout
    energy: EnergyParams
    dynamics: DynamicsParams
    state: State
    bits_per_step: float | None = None
    groups: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def trajectory_state(traj, step: int | None = None, checkpoint: bool = False):
    """A run's state at logged ``step`` (default: the last frame), or its checkpoint (ValueError naming the file
    if it wrote none): the state ``gv.spectrum`` and ``gv.relax`` read from a Trajectory."""
    if checkpoint:
        if step is not None:
            raise ValueError("give a step or checkpoint=True, not both")
        state = traj.checkpoint()
        if state is None:
            raise ValueError(f"{traj.path}: the run wrote no checkpoint")
        return state
    return traj.state(step=step)


def run_model(source, *, step: int | None = None, checkpoint: bool = False) -> RunModel:
    """The layout, parameters and state of a Simulation, a Trajectory or a run file's path. (When the reader
    gains ``Trajectory.evaluate``/``energy_params``, this is the function to switch.)"""
    # the CLI names the file
    require_so3(source.layout.fiber if isinstance(source, Simulation) else source, "the linearised spectrum")
    if isinstance(source, Simulation):
        if checkpoint or (step is not None and step != source.state.step):
            raise ValueError(f"a Simulation offers its current state only (step {source.state.step})")
        return RunModel(source.layout, source.energy_params, source.dynamics_params, source.state)
    if isinstance(source, (str, Path)):
        with load(source) as traj:
            return run_model(traj, step=step, checkpoint=checkpoint)
    if not isinstance(source, Trajectory):
        raise TypeError(f"spectrum of a Simulation, a Trajectory or a run file's path, not {type(source).__name__}")
    from ..setup.config import make_config

    traj = source
    state = trajectory_state(traj, step, checkpoint)
    config = make_config(traj.config)
    layout, notes = traj.layout(), []
    for updater in configured_updaters(config, layout):  # the constants in force at the state (streaming, coupling)
        layout = updater.apply(layout, state)
        if isinstance(updater, HierarchyCoupling) and not updater.trigger(state.step):
            notes.append(f"the hierarchy coupling's prior is recomputed at step {state.step}, not at its last refresh "
                         f"(every {updater.params.every} steps): exact at refresh steps only")
    bits = None
    if config.dynamics.noisy:
        bits = clock_rate(traj.info_bits(), range(traj.n_agents), max(0, state.step - BITS_WINDOW), state.step)
        bits = None if not np.isfinite(bits) else bits
    groups = [list(map(int, m["members"])) for m in traj.meta_agents(step=state.step)
              if m["scale"] == 2] if state.step in set(traj.frame_steps.tolist()) else []
    return RunModel(layout, config.energy, config.dynamics, state, bits, groups, notes)


def spectrum(source, *, step: int | None = None, k: int = 8, checkpoint: bool = False, groups=None,
             bits_per_step: float | None = None, **options) -> pd.DataFrame:
    """The ``k`` slowest modes of the run's linearised update map at a state of ``source`` (a
    :class:`Simulation`, a :class:`Trajectory` or a run file's path): the Simulation's current state, or the
    Trajectory's logged frame at ``step`` (default the last), or with ``checkpoint=True`` its checkpoint.

    ``groups`` (lists of agent indices) default to the stored analysis's scale-2 meta-agents at that frame;
    ``bits_per_step`` to the run's information-clock rate over the last 1000 steps when it is noisy (NaN
    ``tau_bits`` otherwise). ``options`` go to :func:`gauge_vfe.agents.analysis.spectrum.spectrum` (``method``,
    ``tol``, ``fd_step``, ``energy_scale``). ``df.attrs`` adds ``step`` and ``notes``.
    """
    model = run_model(source, step=step, checkpoint=checkpoint)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpectrumWarning)
        df = spectrum_of_state(model.layout, model.energy, model.dynamics, model.state, k=k,
                               groups=model.groups if groups is None else groups,
                               bits_per_step=model.bits_per_step if bits_per_step is None else bits_per_step,
                               **options)
    for w in caught:  # re-issued at the caller's line, not this module's
        warnings.warn(w.message, w.category, stacklevel=2)
    df.attrs["step"] = int(model.state.step)
    df.attrs["notes"] = model.notes
    df.attrs["groups"] = model.groups if groups is None else [list(map(int, g)) for g in groups]
    return df
