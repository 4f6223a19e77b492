"""Gradient descent on the full action in (mu, Sigma, phi) (docs/model.md#dynamics).

``step`` is pure: it takes the layout, parameters, a state and the evaluation at that state, and returns the
next state, the evaluation there and a small record of what happened. All three fields move simultaneously
from the gradients at the current state. phi always takes the plain gradient step and is never wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .energy import Evaluation, evaluate
from .params import DynamicsParams, EnergyParams
from ..kernels.update import update_gaussians
from .layout import Layout
from .state import State


# A step whose energy grows by more than this factor (relative to max(|E|, 1 nat)) is a divergence: stopping
# there keeps a last good state whose energy is still meaningful, instead of ~1e300 after a long blow-up.
ENERGY_JUMP = 1e6


class DivergenceError(RuntimeError):
    """The state or the energy stopped being finite. ``field`` names what broke, ``step`` when."""

    def __init__(self, step: int, field: str, detail: str):
        self.step = step
        self.field = field
        super().__init__(f"diverged at step {step}: {field}: {detail}")


@dataclass(frozen=True)
class StepInfo:
    step: int  # the step number of the new state
    energy_before: float
    energy_after: float
    step_scale: float  # accepted line-search multiplier t (1 without line search)
    backtracks: int
    spd_retractions: int  # agent-sites whose Sigma step was retracted to stay SPD

    @property
    def energy_increased(self) -> bool:
        return self.energy_after > self.energy_before + 1e-12 * max(1.0, abs(self.energy_before))


def _locate(layout: Layout, bad_rows: np.ndarray) -> str:
    r = int(bad_rows[0])
    y, x = divmod(int(layout.index[r]), layout.grid.width)
    more = f" and {bad_rows.size - 1} more agent-sites" if bad_rows.size > 1 else ""
    return f"agent {int(layout.agent[r])} at site (y={y}, x={x}){more}"


def _first_bad_rows(arr: np.ndarray) -> np.ndarray | None:
    """Rows holding a non-finite value, or None; the cheap whole-array test runs first (hot path)."""
    if np.isfinite(arr).all():
        return None
    return np.nonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1))[0]


def check_finite(layout: Layout, state: State, evaluation: Evaluation) -> None:
    """Raise :class:`DivergenceError` naming the first field (state, then gradient, then energy) that broke."""
    step = state.step
    for name, arr in (("mu", state.mu), ("sigma", state.sigma), ("phi", state.phi)):
        bad = _first_bad_rows(arr)
        if bad is not None:
            raise DivergenceError(step, name, f"non-finite value at {_locate(layout, bad)}")
    if evaluation.status.any():
        raise DivergenceError(step, "sigma", f"not positive definite at {_locate(layout, np.nonzero(evaluation.status)[0])}")
    if evaluation.grad_mu is not None:
        for name, arr in (("mu", evaluation.grad_mu), ("sigma", evaluation.grad_sigma), ("phi", evaluation.grad_phi)):
            bad = _first_bad_rows(arr)
            if bad is not None:
                raise DivergenceError(step, f"dE/d{name}", f"non-finite gradient at {_locate(layout, bad)}")
    for term, dens in evaluation.densities.items():
        bad = _first_bad_rows(dens)
        if bad is not None:
            raise DivergenceError(step, f"energy.{term}", f"non-finite energy density at {_locate(layout, bad)}")


def _trial(layout: Layout, dyn: DynamicsParams, state: State, ev: Evaluation, t: float):
    S, K = state.mu.shape
    mu = np.empty((S, K))
    sigma = np.empty((S, K, K))
    retracted = np.empty(S, dtype=np.int8)
    slope = np.empty(S)
    update_gaussians(state.mu, state.sigma, ev.grad_mu, ev.grad_sigma, float(dyn.lr_mu), float(dyn.lr_sigma),
                     dyn.method == "natural", float(t), mu, sigma, retracted, slope)
    phi = state.phi - (t * dyn.lr_phi) * ev.grad_phi
    total_slope = float(slope.sum()) - dyn.lr_phi * float(np.sum(ev.grad_phi * ev.grad_phi))
    return State(mu, sigma, phi, state.step + 1), int(retracted.sum()), total_slope


def step(layout: Layout, energy: EnergyParams, dyn: DynamicsParams, state: State, ev: Evaluation):
    """One descent step from ``state`` (whose evaluation, with gradients, is ``ev``).

    Returns ``(new_state, new_evaluation, StepInfo)``. Raises :class:`DivergenceError` if the new state, its
    gradient or its energy is not finite.
    """
    e0 = ev.total
    t = 1.0
    backtracks = 0
    new, n_retracted, slope = _trial(layout, dyn, state, ev, t)
    if dyn.line_search.enabled:
        ls = dyn.line_search
        while True:
            e_trial = evaluate(layout, energy, new, want_grad=False).total
            if np.isfinite(e_trial) and e_trial <= e0 + ls.c1 * t * slope:
                break
            if backtracks >= ls.max_backtracks:
                break  # take the smallest step tried; the caller sees the increase in StepInfo
            t *= ls.shrink
            backtracks += 1
            new, n_retracted, slope = _trial(layout, dyn, state, ev, t)
    new_ev = evaluate(layout, energy, new, want_grad=True)
    check_finite(layout, new, new_ev)
    e1 = new_ev.total
    if abs(e1) > ENERGY_JUMP * max(abs(e0), 1.0):
        growth = np.abs(sum(new_ev.densities.values()) - sum(ev.densities.values()))
        raise DivergenceError(new.step, "energy.total", f"jumped from {e0:.6g} to {e1:.6g} in one step (more than "
                              f"{ENERGY_JUMP:.0e} times), most at {_locate(layout, np.argsort(growth)[-1:])}: "
                              "the step sizes are far too large")
    return new, new_ev, StepInfo(new.step, e0, e1, t, backtracks, n_retracted)
