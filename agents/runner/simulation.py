"""The one run loop, and the Python API a notebook uses: build, step, run, read energies, gradients and fields.

    sim = Simulation.from_config({"grid": {"height": 16, "width": 16}, "agents": {"count": 4}})
    outcome = sim.run(200)              # RunOutcome(status="completed", ...)
    sim.energy()                        # {"total": ..., "prior": ..., ...}
    sim.gradients()["phi"]              # (S, 3), (S, K^2) for GL(K) frames
    sim.agent_field("mu", 0)            # (H, W, K), NaN outside agent 0's support

``Simulation`` holds the layout, the current state and its evaluation; the physics is in
:func:`gauge_vfe.agents.model.energy.evaluate` and :func:`gauge_vfe.agents.model.dynamics.step`.

:meth:`Simulation.run` is the only run loop of the project. What happens around the steps is attached to it
as observers (in the way diffrax passes ``saveat``/``progress_meter`` and HOOMD-blue attaches writers with a
trigger): the trajectory writer, the progress bar and the end-of-run analysis are observers
(:mod:`gauge_vfe.agents.runner.observers`), and ``vfe run`` is this loop plus file and status handling.
"""

from __future__ import annotations

import signal
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numba
import numpy as np

from ..model.arrays import ArrayPool
from ..model.attention import Attention, attention
from ..model.dynamics import DivergenceError, StepInfo, check_finite, step
from ..model.energy import TERMS, Evaluation, beta_matrix, evaluate, kl_matrix
from ..model.state import State
from ..kernels.noise import GENERATOR as NOISE_GENERATOR
from ..setup.build import Built, build, noise_key
from ..setup.config import Config, make_config
from .signals import InterruptFlag, take_startup_signal, terminate_as_interrupt
from .threads import ThreadTuner
from .updaters import Updater, configured_updaters


class EnergyIncreaseWarning(RuntimeWarning):
    """E went up in a step: a too-large step size (or a bug). Enable the line search or reduce the rates."""


@dataclass
class History:
    """Energies by term and gradient norms at every state visited, starting with the initial one."""

    step: list[int] = field(default_factory=list)
    energy: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in ("total",) + TERMS})
    grad_norm: dict[str, list[float]] = field(default_factory=lambda: {"mu": [], "sigma": [], "phi": []})
    spd_retractions: list[int] = field(default_factory=list)
    info_bits: list[np.ndarray] = field(default_factory=list)  # (N,) per state: bits of the step that made it

    def record(self, step_no: int, ev: Evaluation, retractions: int, info_bits: np.ndarray | None = None) -> None:
        self.step.append(step_no)
        if info_bits is not None:
            self.info_bits.append(info_bits)
        terms = ev.terms
        self.energy["total"].append(sum(terms.values()))
        for t in TERMS:
            self.energy[t].append(terms[t])
        for k, v in ev.grad_norms().items():
            self.grad_norm[k].append(v)
        self.spd_retractions.append(retractions)


@dataclass(frozen=True)
class RunOutcome:
    """How a call of :meth:`Simulation.run` ended (a value, so a sweep can carry it).

    ``status``: ``completed`` (all steps taken, or a stop condition met: ``message`` says which),
    ``interrupted`` (Ctrl-C or SIGTERM: the state is the last completed step), ``diverged`` (``error`` holds the
    :class:`DivergenceError`; the state is the last good one) or ``failed`` (an observer or the engine raised
    something else; it is re-raised after the observers have finished).
    """

    status: str
    message: str
    first_step: int
    last_step: int
    energy_increases: int
    error: BaseException | None = None

    @property
    def steps_taken(self) -> int:
        return self.last_step - self.first_step


class Observer(Protocol):
    """Something attached to a run: told when it starts, after every step, and how it ended."""

    def start(self, sim: "Simulation") -> None: ...

    def update(self, sim: "Simulation", info: StepInfo) -> None: ...

    def finish(self, sim: "Simulation", outcome: RunOutcome) -> None: ...


StopCondition = Callable[["Simulation", StepInfo], "str | None"]


def gradient_tolerance(tol: float) -> StopCondition:
    """Stop once the gradient norm over all fields is at most ``tol`` (``dynamics.tol``)."""

    def stop(sim: "Simulation", info: StepInfo) -> str | None:
        norms = sim.evaluation.grad_norms().values()
        if np.sqrt(sum(v * v for v in norms)) <= tol:
            return f"converged: gradient norm <= tol = {tol:g} at step {sim.state.step}"
        return None

    return stop


class Simulation:
    """One run in memory: the built layout and state, stepped by the one run loop (:meth:`run`) with observers
    (a writer, a progress bar) and updaters attached; ``energy()``, ``gradients()``, ``beta()`` and
    ``agent_field()`` read the current state. ``vfe run``, ``gv.run`` and every sweep member use this class.

    Build it with :meth:`from_config` (a scenario structure, every key optional) or :meth:`from_scenario` (a
    shipped name or a scenario file, checked as ``vfe run`` checks it).
    """

    def __init__(self, built: Built, keep_history: bool = True):
        """``keep_history=False`` keeps memory flat in long runs (the trajectory file is the record)."""
        self.keep_history = keep_history
        self.config: Config = built.config
        self.layout = built.layout
        self.energy_params = built.energy
        self.dynamics_params = built.dynamics
        self.energy_increases = 0
        self.run_until = self.config.dynamics.steps  # the last step of the current (or next) run
        self._pool = ArrayPool()  # the steps' large arrays, reused once dropped (docs/model.md#memory)
        # the Langevin noise's key (docs/model.md#noise): with the step number it fixes every draw
        self.noise_key = noise_key(self.config.seed)
        # chooses the kernels' thread count by timing the steps (threads.py says why); None leaves numba's
        # setting alone. Results do not depend on it.
        self.thread_tuner: ThreadTuner | None = ThreadTuner() if numba.get_num_threads() > 1 else None
        # what replaces constants of the action during the run (streaming observations, the hierarchy coupling),
        # each at the steps its trigger names (updaters.py); the step itself stays pure
        self.updaters: list[Updater] = configured_updaters(self.config, self.layout)
        self._set(built.state)

    @classmethod
    def from_config(cls, data: dict | Config | None = None, base_dir=None, keep_history: bool = True
                    ) -> "Simulation":
        """Validate ``data`` (the scenario structure, every key optional) and build the run."""
        return cls(build(make_config(data), base_dir), keep_history)

    @classmethod
    def from_scenario(cls, scenario, overrides=(), keep_history: bool = True) -> "Simulation":
        """Build the run of a scenario: a shipped scenario's name (``emergence``) or a scenario file, with
        ``--set``-style ``overrides`` (``["energy.kappa=0.5"]``). Checked as ``vfe run`` checks it (the YAML, the
        schema, the memory estimate, the files it names); problems raise ``ScenarioError`` with their lines."""
        from ..setup.scenario import prepare_scenario

        sc = prepare_scenario(scenario, list(overrides))
        return cls(build(sc.config, sc.base_dir, sc.inputs), keep_history)

    def __repr__(self) -> str:
        """One line a notebook shows: which run, its size, where it stands and its energy (already computed)."""
        lay, cfg = self.layout, self.config
        energy = getattr(self, "_ev", None)
        total = f", energy {sum(energy.terms.values()):.6g} nats" if energy is not None else ""
        return (f"<Simulation {cfg.name!r}: {lay.grid.height}x{lay.grid.width} grid, {lay.n_agents} agents, K={lay.K}, "
                f"step {self.state.step} of {self.run_until}, {cfg.dynamics.method} descent{total}>")

    # --- state -----------------------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def evaluation(self) -> Evaluation:
        return self._ev

    def set_state(self, state: State) -> None:
        """Replace the state (e.g. edited in a notebook); history restarts from it. A bad state is refused."""
        self._set(state)

    def attach(self, updater: Updater) -> None:
        """Attach an updater (updaters.py): it applies at the current state and then at its trigger's steps.
        The current state is evaluated again against what it returns, and the history restarts there."""
        self.updaters.append(updater)
        self._set(self._state)

    def updater(self, kind: type) -> Updater | None:
        """The attached updater of this type, or None."""
        return next((u for u in self.updaters if isinstance(u, kind)), None)

    def _set(self, state: State) -> None:
        state = state.astype(self.dynamics_params.dtype)  # dynamics.precision; a float64 checkpoint is exact
        layout = self.layout
        if any(u.reads_state for u in self.updaters):
            # a bad state is refused as such before an updater (the meta-agent detection) sees it
            check_finite(layout, state, evaluate(layout, self.energy_params, state, want_grad=False, pool=self._pool))
        for u in self.updaters:  # the constants in force at this state (a resume is allowed where resumable)
            layout = u.apply(layout, state)
        ev = evaluate(layout, self.energy_params, state, pool=self._pool)
        check_finite(layout, state, ev)  # raises before anything is replaced
        self.layout, self._state, self._ev = layout, state, ev
        self.history = History()
        if self.keep_history:
            self.history.record(state.step, ev, 0, np.zeros(self.layout.n_agents))

    def noise_state(self) -> dict:
        """What the checkpoint stores of the Langevin noise: its generator and key (JSON-compatible). The draws
        of a step depend on these and the step number only, so resuming needs nothing else."""
        return {"generator": NOISE_GENERATOR, "key": f"{int(self.noise_key):#018x}"}

    # --- reading ---------------------------------------------------------------------------------------------
    def energy(self) -> dict[str, float]:
        """Energy by term (weights included) and the total, at the current state."""
        terms = self._ev.terms
        return {"total": sum(terms.values()), **terms}

    def gradients(self) -> dict[str, np.ndarray]:
        """dE/dmu (S, K), dE/dSigma (S, K, K; symmetric G with dE = tr(G dSigma)), dE/dphi (S, 3) or (S, K^2)
        (GL(K) frames)."""
        return {"mu": self._ev.grad_mu, "sigma": self._ev.grad_sigma, "phi": self._ev.grad_phi}

    def beta(self) -> np.ndarray:
        """(S, N) attention weights: row (i, c) holds beta_ij(c) for every agent j."""
        return beta_matrix(self.layout, self._ev)

    def kl(self) -> np.ndarray:
        """(S, N) transported divergences KL_ij(c) (NaN where j is absent; computed when alignment is on)."""
        return kl_matrix(self.layout, self._ev)

    def messages(self) -> np.ndarray:
        """(S, K) the aggregated messages m_i(c) = sum_j beta_ij(c) Omega_ij(c) mu_j(c), each in its agent's frame
        (docs/model.md#attention-layer)."""
        return self.attention().messages

    def attention(self) -> Attention:
        """The messages and the query-role and key-role parts of the alignment's mu-gradient at the current state
        (docs/model.md#step-decomposition)."""
        return attention(self.layout, self.energy_params, self._state)

    def agent_field(self, name: str, agent: int) -> np.ndarray:
        """A field of one agent on the grid, (H, W, ...) with NaN outside its support.

        ``name`` is ``mu``, ``sigma``, ``phi``, ``chi``, or an energy term's density (``prior``, ...).
        """
        if name in ("mu", "sigma", "phi"):
            values = getattr(self._state, name)
        elif name == "chi":
            values = self.layout.chi
        elif name in TERMS:
            values = self._ev.densities[name]
        else:
            raise KeyError(f"unknown field {name!r}")
        return self.layout.to_grid(values, agent)

    # --- dynamics --------------------------------------------------------------------------------------------
    def _resumable_here(self) -> bool:
        """A checkpoint of the current state continues bit for bit: every updater allows it here. With the hierarchy
        coupling only at a refresh step (its targets are not stored): an interrupt then waits up to
        hierarchy.every - 1 more steps."""
        return all(u.resumable(self._state.step) for u in self.updaters)

    def step(self) -> StepInfo:
        """One descent step (raises :class:`DivergenceError` if the state blows up; the state is kept)."""
        tuner = self.thread_tuner
        if tuner is not None:
            tuner.before_step()
            t0 = time.perf_counter()
        new, ev, info = step(self.layout, self.energy_params, self.dynamics_params, self._state, self._ev,
                             self.noise_key, self._pool)
        if tuner is not None:
            tuner.after_step(time.perf_counter() - t0, new.step)
        layout = self.layout
        for u in self.updaters:
            if u.trigger(new.step):
                layout = u.apply(layout, new)
        if layout is not self.layout:
            # a fresh observation draw or new hierarchy targets from this step on: the state is evaluated (and
            # logged) against them
            self.layout = layout
            ev = evaluate(self.layout, self.energy_params, new, pool=self._pool)
            check_finite(self.layout, new, ev)
        self._state, self._ev = new, ev
        if self.keep_history:
            self.history.record(new.step, ev, info.spd_retractions, info.info_bits)
        if info.energy_increased:
            self.energy_increases += 1
            warnings.warn(f"energy increased at step {info.step}: {info.energy_before:.10g} -> "
                          f"{info.energy_after:.10g}; the step is too large (reduce the rates or enable "
                          "dynamics.line_search)", EnergyIncreaseWarning, stacklevel=3)
        return info

    def run(self, steps: int | None = None, *, observers: Sequence[Observer] = (),
            stop: StopCondition | None | str = "config", throw: bool = True,
            catch_signals: bool = False) -> RunOutcome:
        """Take ``steps`` steps (default: up to the config's ``dynamics.steps`` in all), the one run loop.

        ``observers`` are told ``start``, ``update`` after every step, and ``finish`` with the outcome, in
        their order. ``stop(sim, info)`` may end the run early by returning a message; the default is the
        config's gradient-norm tolerance (``dynamics.tol``; ``stop=None``: never stop early).
        With ``throw`` (default) a divergence or an interrupt is raised after the observers have finished;
        without it, it is returned in the outcome. ``catch_signals`` turns SIGINT and SIGTERM into a clean
        stop between steps (main thread only), as ``vfe run`` does. A progress bar is an observer too:
        ``sim.run(100, observers=[ProgressBar()])`` (:mod:`~gauge_vfe.agents.runner.observers`) shows ``vfe run``'s.
        """
        if steps is None:
            steps = max(0, self.config.dynamics.steps - self._state.step)
        self.run_until = self._state.step + steps  # what a progress bar counts to
        if stop == "config":
            tol = self.config.dynamics.tol
            stop = gradient_tolerance(tol) if tol > 0 else None
        first = self._state.step
        increases0 = self.energy_increases
        status, message, error = "completed", "", None
        flag = InterruptFlag()

        def outcome() -> RunOutcome:
            return RunOutcome(status, message, first, self._state.step, self.energy_increases - increases0,
                              error)

        try:
            with flag.installed(catch_signals):
                if catch_signals and (early := take_startup_signal()) is not None:
                    flag.signal = early  # a Ctrl-C during start-up that something swallowed (signals.py)
                for obs in observers:
                    obs.start(self)
                for _ in range(steps):
                    if flag.signal is not None and self._resumable_here():
                        break
                    info = self.step()
                    for obs in observers:
                        obs.update(self, info)
                    if stop is not None and (reason := stop(self, info)):
                        message = reason
                        break
                if flag.signal is not None:
                    status = "interrupted"
                    message = f"interrupted at step {self._state.step} ({signal.Signals(flag.signal).name})"
        except KeyboardInterrupt as exc:  # Ctrl-C without catch_signals, e.g. in a notebook
            status, message, error = "interrupted", f"interrupted at step {self._state.step}", exc
        except DivergenceError as exc:
            status, message, error = "diverged", str(exc), exc
        except BaseException as exc:
            status, message, error = "failed", f"{type(exc).__name__}: {exc}", exc
            _finish_all(observers, self, outcome())
            raise
        result = outcome()
        with terminate_as_interrupt(catch_signals):  # e.g. a SIGTERM during the end-of-run analysis
            _finish_all(observers, self, result)
        if throw and error is not None:
            raise error
        return result


def _finish_all(observers: Sequence[Observer], sim: Simulation, outcome: RunOutcome) -> None:
    """Finish every observer, even when one of them fails (a writer must still be closed, a bar ended); the
    first failure is raised afterwards."""
    first: BaseException | None = None
    for obs in observers:
        try:
            obs.finish(sim, outcome)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others have finished
            first = first or exc
    if first is not None:
        raise first
