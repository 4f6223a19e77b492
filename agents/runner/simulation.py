"""The Python API a notebook uses: build from a config dict, step, read energies, gradients, beta and fields.

    sim = Simulation.from_config({"grid": {"height": 16, "width": 16}, "agents": {"count": 4}})
    sim.run(200)
    sim.energy()            # {"total": ..., "prior": ..., ...}
    sim.gradients()["phi"]  # (S, 3)
    sim.agent_field("mu", 0)  # (H, W, K), NaN outside agent 0's support

``Simulation`` only holds the layout, the current state and its evaluation; all physics is in
:func:`agents.energy.evaluate` and :func:`agents.dynamics.step`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..setup.build import Built, build
from ..setup.config import Config, make_config
from ..model.dynamics import StepInfo, check_finite, step
from ..model.energy import TERMS, Evaluation, beta_matrix, evaluate, kl_matrix
from ..model.state import State


class EnergyIncreaseWarning(RuntimeWarning):
    """E went up in a step: a too-large step size (or a bug). Enable the line search or reduce the rates."""


@dataclass
class History:
    """Energies by term and gradient norms at every state visited, starting with the initial one."""

    step: list[int] = field(default_factory=list)
    energy: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in ("total",) + TERMS})
    grad_norm: dict[str, list[float]] = field(default_factory=lambda: {"mu": [], "sigma": [], "phi": []})
    spd_retractions: list[int] = field(default_factory=list)

    def record(self, step_no: int, ev: Evaluation, retractions: int) -> None:
        self.step.append(step_no)
        terms = ev.terms
        self.energy["total"].append(sum(terms.values()))
        for t in TERMS:
            self.energy[t].append(terms[t])
        for k, v in ev.grad_norms().items():
            self.grad_norm[k].append(v)
        self.spd_retractions.append(retractions)

    def as_arrays(self) -> dict:
        return {"step": np.array(self.step), **{f"energy.{k}": np.array(v) for k, v in self.energy.items()},
                **{f"grad_norm.{k}": np.array(v) for k, v in self.grad_norm.items()},
                "spd_retractions": np.array(self.spd_retractions)}


class Simulation:
    def __init__(self, built: Built, keep_history: bool = True):
        """``keep_history=False`` keeps memory flat in long runs (the trajectory file is the record)."""
        self.keep_history = keep_history
        self.config: Config = built.config
        self.layout = built.layout
        self.energy_params = built.energy
        self.dynamics_params = built.dynamics
        self.energy_increases = 0
        self._set(built.state)

    @classmethod
    def from_config(cls, data: dict | Config | None = None, base_dir=None, keep_history: bool = True
                    ) -> "Simulation":
        """Validate ``data`` (the scenario structure, every key optional) and build the run."""
        return cls(build(make_config(data), base_dir), keep_history)

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

    def _set(self, state: State) -> None:
        ev = evaluate(self.layout, self.energy_params, state)
        check_finite(self.layout, state, ev)  # raises before anything is replaced
        self._state, self._ev = state, ev
        self.history = History()
        if self.keep_history:
            self.history.record(state.step, ev, 0)

    # --- reading ---------------------------------------------------------------------------------------------
    def energy(self) -> dict[str, float]:
        """Energy by term (weights included) and the total, at the current state."""
        terms = self._ev.terms
        return {"total": sum(terms.values()), **terms}

    def gradients(self) -> dict[str, np.ndarray]:
        """dE/dmu (S, K), dE/dSigma (S, K, K; symmetric G with dE = tr(G dSigma)), dE/dphi (S, 3)."""
        return {"mu": self._ev.grad_mu, "sigma": self._ev.grad_sigma, "phi": self._ev.grad_phi}

    def beta(self) -> np.ndarray:
        """(S, N) attention weights: row (i, c) holds beta_ij(c) for every agent j."""
        return beta_matrix(self.layout, self._ev)

    def kl(self) -> np.ndarray:
        """(S, N) transported divergences KL_ij(c) (NaN where j is absent; computed when alignment is on)."""
        return kl_matrix(self.layout, self._ev)

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
    def step(self) -> StepInfo:
        """One descent step (raises :class:`agents.dynamics.DivergenceError` if the state blows up)."""
        new, ev, info = step(self.layout, self.energy_params, self.dynamics_params, self._state, self._ev)
        self._state, self._ev = new, ev
        if self.keep_history:
            self.history.record(new.step, ev, info.spd_retractions)
        if info.energy_increased:
            self.energy_increases += 1
            warnings.warn(f"energy increased at step {info.step}: {info.energy_before:.10g} -> "
                          f"{info.energy_after:.10g}; the step is too large (reduce the rates or enable "
                          "dynamics.line_search)", EnergyIncreaseWarning, stacklevel=2)
        return info

    def run(self, steps: int | None = None, callback=None) -> History:
        """Take ``steps`` steps (default: the config's), stopping early once the gradient norm is <= tol.

        ``callback(sim, info)`` is called after each step; returning True stops the run.
        """
        n = self.config.dynamics.steps if steps is None else steps
        tol = self.config.dynamics.tol
        for _ in range(n):
            info = self.step()
            if callback is not None and callback(self, info):
                break
            if tol > 0 and np.sqrt(sum(v * v for v in self._ev.grad_norms().values())) <= tol:
                break
        return self.history
