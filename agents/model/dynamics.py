"""Gradient descent on the full action in (mu, Sigma, phi) (docs/model.md#dynamics).

``step`` is pure: it takes the layout, parameters, a state and the evaluation at that state, and returns the
next state, the evaluation there and a small record of what happened. All three fields move simultaneously
from the gradients at the current state. phi always takes the plain gradient step and is never wrapped.

With a temperature > 0 (docs/model.md#temperature) the step is an overdamped Langevin step: its draws are a
pure function of the run's noise key and the step number (docs/model.md#noise), so the step stays a function of
its arguments and a resumed run needs no generator state; at T = 0 nothing is drawn and the step is the
deterministic one, bit for bit. The record holds the bits of belief update of every agent
(docs/model.md#information-time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .arrays import ArrayPool, empty
from .energy import Evaluation, evaluate, world_totals
from .params import NOISE_WITH_LINE_SEARCH, DynamicsParams, EnergyParams
from ..kernels.information import bits_of_rows
from ..kernels.noise import GENERATOR, step_bases
from ..kernels.reductions import sum_of_squares
from ..kernels.update import langevin_step, noise_slots, update_gaussians
from .layout import Layout, world_sums
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
    # (N,) bits of belief update of each agent in this step (docs/model.md#information-time)
    info_bits: np.ndarray | None = field(default=None, compare=False, repr=False)
    noisy: bool = False  # a Langevin step (temperature > 0)

    @property
    def energy_increased(self) -> bool:
        """E went up more than rounding allows. Never for a noisy step: noise raises E by design."""
        if self.noisy:
            return False
        return self.energy_after > self.energy_before + 1e-12 * max(1.0, abs(self.energy_before))


@dataclass(frozen=True)
class WorldsStepInfo:
    """:class:`StepInfo` of a step of R independent worlds (a replica ensemble, docs/model.md#replica-ensembles):
    every field but ``step`` and ``noisy`` is per world, (R,) (``info_bits`` (R, N))."""

    step: int
    energy_before: np.ndarray
    energy_after: np.ndarray
    step_scale: np.ndarray
    backtracks: np.ndarray
    spd_retractions: np.ndarray
    info_bits: np.ndarray = field(compare=False, repr=False)
    noisy: bool = False

    @property
    def energy_increased(self) -> np.ndarray:
        """(R,) bool: :attr:`StepInfo.energy_increased` per world."""
        if self.noisy:
            return np.zeros(self.energy_before.shape[0], dtype=bool)
        return self.energy_after > self.energy_before + 1e-12 * np.maximum(1.0, np.abs(self.energy_before))

    def world(self, w: int) -> StepInfo:
        """World w's record, as its single run's step returns it."""
        return StepInfo(self.step, float(self.energy_before[w]), float(self.energy_after[w]), float(self.step_scale[w]),
                        int(self.backtracks[w]), int(self.spd_retractions[w]), self.info_bits[w], self.noisy)


def _world_prefix(layout: Layout, w: int) -> str:
    """How a message names world w: nothing in a single run, ``replica w: `` in an ensemble."""
    return "" if layout.replicas == 1 else f"replica {w}: "


def _locate(layout: Layout, bad_rows: np.ndarray) -> str:
    r = int(bad_rows[0])
    w = int(layout.world[r])
    site = int(layout.index[r]) - w * layout.grid.n_sites  # an ensemble numbers sites world * H * W + y * W + x
    y, x = divmod(site, layout.grid.width)
    more = f" and {bad_rows.size - 1} more agent-sites" if bad_rows.size > 1 else ""
    agent = int(layout.agent[r]) - w * (layout.n_agents // layout.replicas)
    return f"{_world_prefix(layout, w)}agent {agent} at site (y={y}, x={x}){more}"


def _first_bad_rows(arr: np.ndarray, sum_sq: float | None = None) -> np.ndarray | None:
    """Rows holding a non-finite value, or None. The hot path is one pass: the sum of squares (``sum_sq``, if
    already known) is finite when every value is; only otherwise are the rows searched (a finite value whose
    square overflows is found to be fine there)."""
    if math.isfinite(sum_of_squares(arr) if sum_sq is None else sum_sq):
        return None
    bad = np.nonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1))[0]
    return bad if bad.size else None


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
        norms = evaluation.grad_norms()  # computed here once, for the log and the history too
        for name, arr in (("mu", evaluation.grad_mu), ("sigma", evaluation.grad_sigma), ("phi", evaluation.grad_phi)):
            bad = _first_bad_rows(arr, norms[name] ** 2)
            if bad is not None:
                raise DivergenceError(step, f"dE/d{name}", f"non-finite gradient at {_locate(layout, bad)}")
    for term, dens in evaluation.densities.items():
        bad = _first_bad_rows(dens)
        if bad is not None:
            raise DivergenceError(step, f"energy.{term}", f"non-finite energy density at {_locate(layout, bad)}")


def _trial(layout: Layout, dyn: DynamicsParams, state: State, ev: Evaluation, t: np.ndarray, pool: ArrayPool | None,
           frozen: tuple[str, ...] = ()):
    """The deterministic step with line-search multiplier ``t[w]`` in world w; returns the trial state, the
    retractions, the Armijo slope and the per-row KL. The slope is summed per world, in the single run's order
    (docs/model.md#replica-ensembles)."""
    S, K = state.mu.shape
    mu = empty((S, K), state.dtype, pool)  # the state's own type (dynamics.precision); the kernel computes in float64
    sigma = empty((S, K, K), state.dtype, pool)
    retracted = np.empty(S, dtype=np.int8)
    slope = np.empty(S)
    kl_rows = np.empty(S)  # a rejected line-search trial's KL is wasted: a few % of the evaluation it also costs
    update_gaussians(state.mu, state.sigma, ev.grad_mu, ev.grad_sigma, float(dyn.lr_mu), float(dyn.lr_sigma),
                     dyn.method == "natural", t, layout.world, "sigma" in frozen, mu, sigma, retracted, slope, kl_rows)
    # in float64 whatever the state's type (docs/model.md#precision); a no-op conversion for a float64 state
    scale = (t[0] * dyn.lr_phi) if t.shape[0] == 1 else (t * dyn.lr_phi)[layout.world][:, None]
    phi = (state.phi.astype(np.float64, copy=False) - scale * ev.grad_phi.astype(np.float64, copy=False)
           ).astype(state.dtype, copy=False)
    total_slope = world_sums(layout, slope) - dyn.lr_phi * world_sums(layout, ev.grad_phi * ev.grad_phi, np.float64)
    return State(mu, sigma, phi, state.step + 1), world_sums(layout, retracted, np.int64), total_slope, kl_rows


def noise_resume_problem(config: dict, stored: dict | None) -> str | None:
    """Why a run with this (JSON) config cannot continue the noise recorded in its checkpoint (``stored``, the
    checkpoint's generator description), or None. The draws depend on the seed and the step only, so any
    checkpoint of this generator continues exactly; one written by numpy's PCG64 (versions before the
    counter-based noise) cannot be continued by it, which matters only to a run that draws noise."""
    if not stored or stored.get("generator") == GENERATOR:
        return None
    if not DynamicsParams.model_validate(config.get("dynamics") or {}).noisy:
        return None
    return ("cannot resume: this run's Langevin noise was drawn by numpy's "
            f"{stored.get('bit_generator', 'generator')} (an earlier version of gauge-vfe), and this version draws "
            "it by counter (docs/model.md#noise): the continuation would not be the run's own noise. Resume it "
            "with the version that began it, or start it again")


def _langevin(layout: Layout, dyn: DynamicsParams, state: State, ev: Evaluation, noise_keys: np.ndarray,
              pool: ArrayPool | None, frozen: tuple[str, ...] = ()):
    """x <- x - lr dE/dx + sqrt(2 lr T) (preconditioned) xi for every field (docs/model.md#temperature); the
    draws of the step from ``state.step`` are addressed by world w's key ``noise_keys[w]`` and that step
    (docs/model.md#noise)."""
    t_mu, t_sigma, t_phi = dyn.temperatures
    S, K = state.mu.shape
    bases, slots = step_bases(noise_keys, state.step), noise_slots(K)
    mu = empty((S, K), state.dtype, pool)
    sigma = empty((S, K, K), state.dtype, pool)
    phi = np.empty((S, 3), state.dtype)
    retracted = np.empty(S, dtype=np.int8)
    kl_rows = np.empty(S)
    a_mu, a_sigma, a_phi = (float(np.sqrt(2.0 * lr * temp)) for lr, temp in
                            ((dyn.lr_mu, t_mu), (dyn.lr_sigma, t_sigma), (dyn.lr_phi, t_phi)))
    langevin_step(state.mu, state.sigma, state.phi, ev.grad_mu, ev.grad_sigma, ev.grad_phi, float(dyn.lr_mu),
                  float(dyn.lr_sigma), float(dyn.lr_phi), dyn.method == "natural", a_mu, a_sigma, a_phi, bases,
                  layout.world, layout.world_ptr, slots, "sigma" in frozen and t_sigma == 0, mu, sigma, phi, retracted,
                  kl_rows)
    return State(mu, sigma, phi, state.step + 1), world_sums(layout, retracted, np.int64), kl_rows


def step(layout: Layout, energy: EnergyParams, dyn: DynamicsParams, state: State, ev: Evaluation,
         noise_key: np.uint64 | None = None, pool: ArrayPool | None = None):
    """One descent step from ``state`` (whose evaluation, with gradients, is ``ev``).

    With a temperature > 0 the step is a Langevin step whose normal draws are addressed by ``noise_key`` (the
    run's key, required then; unused at T = 0) and the step number (docs/model.md#noise). Returns
    ``(new_state, new_evaluation, StepInfo)``; the large new arrays come from ``pool`` if given (a run's
    :class:`~agents.model.arrays.ArrayPool`, docs/model.md#memory). Raises :class:`DivergenceError` if the new
    state, its gradient or its energy is not finite.
    """
    keys = None if noise_key is None else np.array([noise_key], dtype=np.uint64)
    new, new_ev, info = step_worlds(layout, energy, dyn, state, ev, keys, pool)
    return new, new_ev, info.world(0)


def frozen_fields(dyn: DynamicsParams) -> tuple[str, ...]:
    """The fields whose gradient a step need not compute (docs/model.md#replica-ensembles, frozen fields): phi at
    ``lr_phi = 0``; Sigma at ``lr_sigma = 0`` under the plain gradient (the natural step recomputes Sigma from its
    Cholesky factor and the gradient's eigenvectors even at a zero rate, so its bits need the gradient)."""
    out = ()
    if dyn.lr_sigma == 0 and dyn.method == "gradient":
        out += ("sigma",)
    if dyn.lr_phi == 0:
        out += ("phi",)
    return out


def step_worlds(layout: Layout, energy: EnergyParams, dyn: DynamicsParams, state: State, ev: Evaluation,
                noise_keys: np.ndarray | None = None, pool: ArrayPool | None = None, frozen: tuple[str, ...] = (),
                frames: tuple | None = None):
    """:func:`step` for a layout of R independent worlds (a replica ensemble, docs/model.md#replica-ensembles;
    a single run is R = 1): every world has its own energy, line-search multiplier, Armijo test and noise key
    (``noise_keys`` (R,) uint64), and each world's result is bit for bit that of its own single run. Returns
    ``(new_state, new_evaluation, WorldsStepInfo)``; raises :class:`DivergenceError` naming the first world
    whose state, gradient or energy broke. ``frozen`` (from :func:`frozen_fields`): gradients left uncomputed
    (zeros in the new evaluation); the state moves as with them, up to the sign of a zero entry. ``frames``: with
    Sigma and phi both frozen, :func:`~.energy.frame_cache` of the state, valid for every state the step makes.
    """
    R = layout.replicas
    e0 = world_totals(layout, ev)
    t = np.ones(R)
    backtracks = np.zeros(R, dtype=np.int64)
    if dyn.noisy:
        if noise_keys is None:
            raise ValueError("a step at temperature > 0 needs the run's noise key")
        if dyn.line_search.enabled:
            raise ValueError(NOISE_WITH_LINE_SEARCH)
        new, n_retracted, kl_rows = _langevin(layout, dyn, state, ev, noise_keys, pool, frozen)
    else:
        new, n_retracted, slope, kl_rows = _trial(layout, dyn, state, ev, t, pool, frozen)
    if dyn.line_search.enabled and not dyn.noisy:
        ls = dyn.line_search
        searching = np.ones(R, dtype=bool)  # worlds still backtracking; an accepted world keeps its t
        while True:
            e_trial = world_totals(layout, evaluate(layout, energy, new, want_grad=False, pool=pool, frames=frames))
            accepted = np.isfinite(e_trial) & (e_trial <= e0 + ls.c1 * t * slope)
            # a world out of backtracks takes the smallest step tried; the caller sees the increase
            searching &= ~accepted & (backtracks < ls.max_backtracks)
            if not searching.any():
                break
            t[searching] *= ls.shrink
            backtracks[searching] += 1
            new, n_retracted, slope, kl_rows = _trial(layout, dyn, state, ev, t, pool, frozen)
    new_ev = evaluate(layout, energy, new, want_grad=True, pool=pool, frozen=frozen, frames=frames)
    check_finite(layout, new, new_ev)
    e1 = world_totals(layout, new_ev)
    jumped = np.abs(e1) > ENERGY_JUMP * np.maximum(np.abs(e0), 1.0)
    if jumped.any():
        w = int(np.argmax(jumped))
        rows = slice(int(layout.world_ptr[w]), int(layout.world_ptr[w + 1]))
        growth = np.abs(sum(new_ev.densities.values()) - sum(ev.densities.values()))[rows]
        worst = np.argsort(growth)[-1:] + rows.start
        raise DivergenceError(new.step, "energy.total", f"{_world_prefix(layout, w)}jumped from {e0[w]:.6g} to "
                              f"{e1[w]:.6g} in one step (more than {ENERGY_JUMP:.0e} times), most at "
                              f"{_locate(layout, worst)}: the step sizes are far too large")
    bits = bits_of_rows(layout, kl_rows).reshape(R, -1)  # the clock, from the KL each update kernel took per row
    return new, new_ev, WorldsStepInfo(new.step, e0, e1, t, backtracks, n_retracted, bits, dyn.noisy)
