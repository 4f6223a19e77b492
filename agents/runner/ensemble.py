"""Replica ensembles: R independent copies of a scenario stepped in one engine (docs/model.md#replica-ensembles).

    ens = Ensemble("timescales", replicas=64)                  # or Ensemble(config_or_dict, replicas=...)
    ens.run(1000, observe_every=5, observer=lambda step, states: ...)   # states: one State view per replica
    ens.replica(3).state.mu                                      # replica 3's rows, a view (no copy)
    ens.energies()["total"]                                      # (R,)
    for step, state, offset in ens.iterate(1000, every=5): ...   # the stacked State and its replica offsets

Replica r runs with the seed :func:`~agents.setup.build.replica_seed` (root seed, r) (replica 0 with the root
seed itself) and is bit for bit the single run of that seed: its layout (supports, priors, observations) and its
initial state are built from it, its Langevin draws come from its own key, and everything a single run sums over
its rows is summed per replica in the same order. The step has no Python loop over replicas
(:func:`~agents.model.dynamics.step_worlds`); the hierarchy coupling and streaming observations, which change the
action's constants every few steps, are refreshed replica by replica at their trigger steps.

This is the interface the relaxation method (``gv.relax``) builds on; keep it stable:

* ``Ensemble(source, replicas=None, *, initial_states=None, seeds=None, overrides=(), base_dir=None,
  skip_frozen=True)``: with ``skip_frozen`` the gradient of a field whose step size is 0 is not computed
  (``.frozen`` names them; their norms read NaN); the states stay the single runs' bits
* ``.replicas``, ``.seeds``, ``.layout`` (stacked), ``.state`` (stacked :class:`State`), ``.replica_offset``
  ((R+1,) row offsets: replica r owns rows ``replica_offset[r]:replica_offset[r+1]``), ``.replica_layouts``
* ``.replica(r) -> ReplicaView`` (``.state``, ``.layout``, ``.seed``, ``.energy()``, ``.grad_norms()``,
  ``.clock`` (N,) bits since the ensemble was built)
* ``.states() -> list[State]`` (views), ``.energies() -> {term: (R,)}``, ``.grad_norms() -> {field: (R,)}``,
  ``.clock`` ((R, N) cumulative bits of belief update per agent, docs/model.md#information-time)
* ``.step() -> WorldsStepInfo``; ``.run(steps, *, observe_every=1, observer=None, stop="config")
  -> EnsembleOutcome``; ``.iterate(steps, every=1)`` yields ``(step, State, replica_offset)`` at step 0 of the
  call and every ``every`` steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from ..model.arrays import ArrayPool
from ..model.dynamics import DivergenceError, WorldsStepInfo, check_finite, frozen_fields, step_worlds
from ..model.energy import TERMS, Evaluation, evaluate, frame_cache, world_grad_norms, world_terms
from ..model.layout import Layout
from ..model.replicas import stack_states, tile_layouts, world_rows, world_state
from ..model.state import State
from ..setup.build import Built, build, noise_key, replica_seed
from ..setup.config import Config, make_config
from .updaters import configured_updaters

Observer = Callable[[int, list], None]


@dataclass(frozen=True)
class EnsembleOutcome:
    """How :meth:`Ensemble.run` ended: ``status`` ``completed`` or ``diverged`` (``error`` holds the
    :class:`DivergenceError`, naming the replica; the state is the last good one), and per replica the step at
    which its gradient norm first met ``dynamics.tol`` (-1: not met; the run stops once every replica has)."""

    status: str
    message: str
    first_step: int
    last_step: int
    converged_at: np.ndarray
    energy_increases: np.ndarray  # (R,) steps whose energy went up (deterministic steps only)
    error: BaseException | None = None


@dataclass(frozen=True)
class ReplicaView:
    """One replica of an ensemble, read without copies: its state's arrays are views into the stacked ones."""

    index: int
    seed: int
    layout: Layout  # the replica's own layout (its single run's), with the constants in force now
    state: State
    _ensemble: "Ensemble"

    def energy(self) -> dict[str, float]:
        """Energy by term and total, as :meth:`Simulation.energy` gives the single run's."""
        terms = {t: float(v[self.index]) for t, v in self._ensemble.energies().items()}
        return terms

    def grad_norms(self) -> dict[str, float]:
        return {k: float(v[self.index]) for k, v in self._ensemble.grad_norms().items()}

    @property
    def clock(self) -> np.ndarray:
        """(N,) bits of belief update of each agent since the ensemble was built."""
        return self._ensemble.clock[self.index]


def _built_replicas(source, replicas: int | None, seeds, overrides, base_dir) -> tuple[Config, list[Built]]:
    """The config and one Built per replica (each from its own seed); the input files are read once."""
    from ..setup.scenario import Scenario, prepare_scenario

    if isinstance(source, Scenario):  # prepared and checked already (vfe run)
        if overrides:
            raise ValueError("overrides apply to a scenario name or file, not to a prepared Scenario")
        config, inputs, base_dir = source.config, source.inputs, source.base_dir
    elif isinstance(source, (Config, dict)) or source is None:
        config, inputs = make_config(source), None
        if overrides:
            raise ValueError("overrides apply to a scenario name or file; edit the dict or Config instead")
    else:
        sc = prepare_scenario(source, list(overrides))
        config, inputs, base_dir = sc.config, sc.inputs, sc.base_dir
    R = replicas if replicas is not None else config.replicas
    if R < 1:
        raise ValueError(f"replicas must be >= 1, not {R}")
    if seeds is None:
        seeds = [replica_seed(config.seed, r) for r in range(R)]
    elif len(seeds) != R:
        raise ValueError(f"{len(seeds)} seeds for {R} replicas")
    if inputs is None:
        from ..setup.inputs import load_inputs
        from pathlib import Path

        inputs = load_inputs(config, Path(base_dir) if base_dir is not None else Path.cwd())
    built = [build(config.model_copy(update={"seed": int(s)}), base_dir, inputs) for s in seeds]
    return config, built


class Ensemble:
    """R independent replicas of one scenario in one engine (see the module docstring for the interface).

    ``source``: a shipped scenario's name, a scenario file, a dict or a :class:`Config`; ``replicas``: R
    (default: the scenario's ``ensemble.replicas``, else 1); ``seeds``: each replica's root seed (default:
    ``replica_seed(seed, r)``); ``initial_states``: one :class:`State` per replica to start from instead of the
    scenario's initial state (e.g. a run's frame, displaced), all at one step.
    """

    def __init__(self, source=None, replicas: int | None = None, *, initial_states: Sequence[State] | None = None,
                 seeds: Sequence[int] | None = None, overrides: Sequence[str] = (), base_dir=None,
                 skip_frozen: bool = True):
        self.config, built = _built_replicas(source, replicas, seeds, overrides, base_dir)
        # a frozen field's gradient is not computed (docs/model.md#replica-ensembles): its norm reads NaN
        self.frozen = frozen_fields(self.config.dynamics) if skip_frozen else ()
        self.seeds = [int(b.config.seed) for b in built]
        self.energy_params = self.config.energy
        self.dynamics_params = self.config.dynamics
        self.replica_layouts: list[Layout] = [b.layout for b in built]
        self.noise_keys = np.array([noise_key(s) for s in self.seeds], dtype=np.uint64)
        # per replica: the updaters its single run would have (each its own seed's observation draws)
        self._updaters = [configured_updaters(b.config, b.layout) for b in built]
        self._pool = ArrayPool()
        states = [b.state for b in built] if initial_states is None else list(initial_states)
        if len(states) != len(built):
            raise ValueError(f"{len(states)} initial states for {len(built)} replicas")
        self.layout = tile_layouts(self.replica_layouts)
        # first pair slot (KL, beta) of each replica in the stacked evaluation
        self._pair0 = np.concatenate([[0], np.cumsum([int(lay.pair_ptr[-1]) for lay in self.replica_layouts])])
        self._set(states)

    # --- state -----------------------------------------------------------------------------------------------
    @property
    def replicas(self) -> int:
        return len(self.seeds)

    @property
    def replica_offset(self) -> np.ndarray:
        """(R+1,): replica r owns rows ``replica_offset[r]:replica_offset[r+1]`` of the stacked arrays."""
        return self.layout.world_ptr

    @property
    def state(self) -> State:
        return self._state

    @property
    def evaluation(self) -> Evaluation:
        return self._ev

    def set_states(self, states: Sequence[State]) -> None:
        """Replace every replica's state (one per replica, all at one step); the clock restarts at 0."""
        self._set(list(states))

    def _set(self, states: list[State]) -> None:
        dtype = self.dynamics_params.dtype
        states = [s.astype(dtype) for s in states]
        for r, s in enumerate(states):
            if s.mu.shape != (self.replica_layouts[r].n_rows, self.layout.K):
                raise ValueError(f"replica {r}: initial state has {s.mu.shape[0]} rows, its layout "
                                 f"{self.replica_layouts[r].n_rows}")
        state = stack_states(states)
        # Sigma and phi both frozen: every row's frame and rotated covariance stay what they are now, so the
        # energy reads them instead of recomputing them each step (docs/model.md#replica-ensembles)
        self._frames = frame_cache(self.layout, state) if set(self.frozen) == {"sigma", "phi"} else None
        self._apply_updaters(state, initial=True)
        ev = self._evaluate(state)
        check_finite(self.layout, state, ev)
        self._state, self._ev = state, ev
        self.clock = np.zeros((self.replicas, self.layout.n_agents // self.replicas))
        self.energy_increases = np.zeros(self.replicas, dtype=np.int64)

    def _evaluate(self, state: State) -> Evaluation:
        return evaluate(self.layout, self.energy_params, state, pool=self._pool, frozen=self.frozen,
                        frames=self._frames)

    def _apply_updaters(self, state: State, initial: bool = False) -> bool:
        """The hierarchy coupling's and streaming observations' constants of every replica at ``state``, as each
        single run's updaters give them (replica by replica: they run every few steps, not every step). True if
        the stacked layout changed."""
        if not self._updaters[0]:
            return False
        if not initial and not any(u.trigger(state.step) for u in self._updaters[0]):
            return False
        changed = False
        for r, ups in enumerate(self._updaters):
            lay = self.replica_layouts[r]
            view = world_state(self.layout, state, r)
            for u in ups:
                if initial or u.trigger(state.step):
                    lay = u.apply(lay, view)
            if lay is not self.replica_layouts[r]:
                self.replica_layouts[r] = lay
                changed = True
        if changed:
            obs = self.layout.observations
            if obs is not None:
                obs = dataclasses.replace(obs, value=np.concatenate(
                    [lay.observations.value for lay in self.replica_layouts]))
            from ..model.replicas import _stacked_coupled_prior

            self.layout = dataclasses.replace(self.layout, observations=obs,
                                              coupled_prior=_stacked_coupled_prior(self.replica_layouts))
        return changed

    # --- reading ---------------------------------------------------------------------------------------------
    def energies(self) -> dict[str, np.ndarray]:
        """Energy by term and total per replica, (R,) each, summed as each single run sums its own."""
        terms = world_terms(self.layout, self._ev)
        total = 0
        for v in terms.values():
            total = total + v
        return {"total": total, **terms}

    def grad_norms(self) -> dict[str, np.ndarray]:
        """Gradient norms per field and replica, (R,) each, as each single run logs its own; NaN for a frozen
        field whose gradient was skipped (:attr:`frozen`)."""
        norms = world_grad_norms(self.layout, self._ev)
        for name in self.frozen:
            norms[name] = np.full(self.replicas, np.nan)
        return norms

    def states(self) -> list[State]:
        """Every replica's state, as views into the stacked arrays."""
        return [world_state(self.layout, self._state, r) for r in range(self.replicas)]

    def replica_evaluation(self, r: int) -> Evaluation:
        """Replica r's evaluation as views into the stacked one: what its single run's evaluation holds, bit for
        bit (its energies, gradient norms, KL and beta are those of its single run)."""
        rows = world_rows(self.layout, r)
        pairs = slice(int(self._pair0[r]), int(self._pair0[r + 1]))
        ev = self._ev
        grads = [None if g is None else g[rows] for g in (ev.grad_mu, ev.grad_sigma, ev.grad_phi)]
        return Evaluation({t: d[rows] for t, d in ev.densities.items()}, *grads, ev.kl[pairs], ev.beta[pairs],
                          ev.status[rows])

    def replica(self, r: int) -> ReplicaView:
        """Replica r: its seed, its own layout and its state (views)."""
        world_rows(self.layout, r)  # the range check
        return ReplicaView(r, self.seeds[r], self.replica_layouts[r], world_state(self.layout, self._state, r),
                           self)

    # --- dynamics --------------------------------------------------------------------------------------------
    def step(self) -> WorldsStepInfo:
        """One step of every replica (raises :class:`DivergenceError` naming the replica; the state is kept)."""
        new, ev, info = step_worlds(self.layout, self.energy_params, self.dynamics_params, self._state, self._ev,
                                    self.noise_keys, self._pool, self.frozen, self._frames)
        if self._apply_updaters(new):
            ev = self._evaluate(new)
            check_finite(self.layout, new, ev)
        self._state, self._ev = new, ev
        self.clock += info.info_bits
        self.energy_increases += info.energy_increased
        return info

    def iterate(self, steps: int, every: int = 1) -> Iterator[tuple[int, State, np.ndarray]]:
        """Take ``steps`` steps, yielding ``(step, stacked State, replica_offset)`` now and after every
        ``every``-th step (the State is the ensemble's own: copy it to keep it past the next step)."""
        yield self._state.step, self._state, self.replica_offset
        for _ in range(steps):
            self.step()
            if self._state.step % every == 0:
                yield self._state.step, self._state, self.replica_offset

    def run(self, steps: int | None = None, *, observe_every: int = 1, observer: Observer | None = None,
            stop: str | None = "config", throw: bool = True) -> EnsembleOutcome:
        """Take ``steps`` steps (default: the config's ``dynamics.steps`` in all). ``observer(step, states)`` is
        called at the start and at every step that is a multiple of ``observe_every``, ``states`` being one
        :class:`State` view per replica. With ``stop="config"`` and ``dynamics.tol > 0`` the run ends once every
        replica's gradient norm has met the tolerance (each replica's step of meeting it is in the outcome; with
        ``skip_frozen`` the norm is over the moving fields, the single run's over all)."""
        if steps is None:
            steps = max(0, self.config.dynamics.steps - self._state.step)
        tol = self.config.dynamics.tol if stop == "config" else 0.0
        first = self._state.step
        increases0 = self.energy_increases.copy()
        converged = np.full(self.replicas, -1, dtype=np.int64)
        status, message, error = "completed", "", None
        if observer is not None:
            observer(self._state.step, self.states())
        try:
            for _ in range(steps):
                self.step()
                if observer is not None and self._state.step % observe_every == 0:
                    observer(self._state.step, self.states())
                if tol > 0:  # over the moving fields (a frozen field's gradient is not computed)
                    norms = [v for k, v in self.grad_norms().items() if k not in self.frozen]
                    met = np.sqrt(sum(v * v for v in norms)) <= tol
                    converged[(converged < 0) & met] = self._state.step
                    if (converged >= 0).all():
                        message = f"converged: every replica's gradient norm <= tol = {tol:g}"
                        break
        except DivergenceError as exc:
            status, message, error = "diverged", str(exc), exc
        result = EnsembleOutcome(status, message, first, self._state.step, converged,
                                 self.energy_increases - increases0, error)
        if throw and error is not None:
            raise error
        return result


__all__ = ["Ensemble", "EnsembleOutcome", "ReplicaView", "TERMS"]
