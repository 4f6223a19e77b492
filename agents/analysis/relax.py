"""Relaxation from an ensemble: the estimator (docs/model.md#relaxation).

Copies of one state are displaced and run; each observable's **response** is the decay of its displacement,
averaged over the copies, and its relaxation time the e-folding time of that decay. Everything here is plain
numpy over the copies' observable series; running the copies is the runner's (:mod:`~gauge_vfe.agents.runner.relax`).

* Observables (:func:`observables`): the [gauge-invariant series](docs/model.md#invariant-series) of the agents, and
  of each group of agents (a meta-agent's base members, fixed at the source state) its collective mode and its
  members' relative modes, each a vector (components side by side).
* Response (:func:`response`): copies come in antithetic pairs, ``+d`` and ``-d`` with the same noise seed; a
  pair's response is ``y(t) = (x_+(t) - x_-(t)) / 2``, which cancels the undisplaced motion (drift, and to first
  order the noise) and the even orders of the nonlinearity. ``C(t) = sum_p y_p(t) . y_p(0) / sum_p |y_p(0)|^2``.
* Fit (:func:`fit_decay`): least squares of ``ln C`` on ``t`` over ``[0, t_end]``, ``t_end`` the last sample
  before ``C`` falls below ``e^-3`` or below ``NOISE_K`` times its bootstrap standard error; the error bar is the
  bootstrap over pairs (resampled with replacement, the range held) and the fit's own standard error, in
  quadrature; flags say when it is not to be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.layout import Layout
from ..model.state import State
from .gauge_series import covariance_offsets, prior_offsets, transported_offsets
from .measures import frame_matrices
from .meta_agents import coarse_grain

FIT_FLOOR = np.exp(-3.0)  # the fit stops once the response has decayed by 3 e-folds (beyond: rounding, mixtures)
NOISE_K = 3.0  # ... or once it is within this many bootstrap standard errors of 0 (the noise floor)
MIN_POINTS = 4  # fewer samples in the fit range: untrusted
MIN_PAIRS = 8  # fewer independent decays: the bootstrap error bar means little
MIN_DECAY = 0.02  # a range shorter than this fraction of tau cannot tell an exponential from a drift
MAX_REL_ERR = 0.3  # a larger relative error bar: untrusted
NONLINEAR = 0.1  # the amplitude extrapolation moved the time by more than this fraction: untrusted
CURVED = 0.1  # the two halves' slopes differ by more than this (and 3 sigma): not one exponential


KINDS = ("agent", "collective", "relative", "agent_sigma", "collective_sigma")  # what `observables` may ask for


@dataclass(frozen=True)
class Observable:
    """One observable: its ``name``, ``kind`` (agent, collective, relative), the group it belongs to (-1 for
    agents), the agents whose information clock times it, and its slice of the observable vector."""

    name: str
    kind: str
    group: int
    agents: tuple
    columns: slice


def observable_plan(n_agents: int, K: int, groups, kinds) -> list[Observable]:
    """The observables of ``kinds`` for ``n_agents`` agents and ``groups`` (lists of base agents), in the order
    :func:`observables` lays them out: ``agents`` (every agent's own-frame prior offset side by side),
    ``agents_sigma`` (every agent's covariance offset, packed), then per group ``collective[g]``,
    ``relative[g]`` (every member's transported offset side by side) and ``collective_sigma[g]`` (the
    coarse-grained covariance's offset)."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown observable kind(s) {sorted(unknown)}: use {', '.join(KINDS)}")
    P = K * (K + 1) // 2
    plan, col = [], 0

    def add(name, kind, group, agents, width):
        nonlocal col
        plan.append(Observable(name, kind, group, tuple(int(a) for a in agents), slice(col, col + width)))
        col += width

    if "agent" in kinds:
        add("agents", "agent", -1, range(n_agents), n_agents * K)
    if "agent_sigma" in kinds:
        add("agents_sigma", "agent_sigma", -1, range(n_agents), n_agents * P)
    for g, members in enumerate(groups):
        if "collective" in kinds:
            add(f"collective[{g}]", "collective", g, members, K)
        if "relative" in kinds:
            add(f"relative[{g}]", "relative", g, members, len(members) * K)
        if "collective_sigma" in kinds:
            add(f"collective_sigma[{g}]", "collective_sigma", g, members, P)
    return plan


def observables(layout: Layout, state: State, groups, plan: list[Observable]) -> np.ndarray:
    """The observable vector of one state (the plan's columns): gauge-invariant series of
    docs/model.md#invariant-series, with the groups held fixed (not detected again: a displaced copy keeps its
    meta-agents' identity even where its consensus test would flicker)."""
    out = np.empty(plan[-1].columns.stop if plan else 0)
    kinds = {o.kind for o in plan}
    for o in plan:
        if o.kind == "agent":
            out[o.columns] = prior_offsets(layout, state).ravel()
        elif o.kind == "agent_sigma":
            out[o.columns] = covariance_offsets(layout, state).ravel()
    if kinds & {"collective", "relative", "collective_sigma"} and groups:
        meta_layout, meta_state = coarse_grain(layout, state, [np.asarray(g) for g in groups])
        frames = frame_matrices(layout, state)
        meta_frames = frame_matrices(meta_layout, meta_state)
        collective = prior_offsets(meta_layout, meta_state) if "collective" in kinds else None
        collective_sigma = covariance_offsets(meta_layout, meta_state) if "collective_sigma" in kinds else None
        for o in plan:
            if o.kind == "collective":
                out[o.columns] = collective[o.group]
            elif o.kind == "collective_sigma":
                out[o.columns] = collective_sigma[o.group]
            elif o.kind == "relative":
                rel = transported_offsets(layout, state, meta_layout, meta_state, o.group, o.agents, frames,
                                          meta_frames)
                out[o.columns] = np.concatenate([rel[a] for a in o.agents])
    return out


def response(x: np.ndarray, paired: bool, reference: np.ndarray | None = None) -> np.ndarray:
    """Per decay, the displacement of the observables: ``x`` (copies, samples, d). Paired copies (``+d`` at even
    index, ``-d`` at the next, same seed): ``(x_+ - x_-) / 2``; otherwise ``x - reference`` (the undisplaced
    state's observables, exact only at a fixed point at T = 0)."""
    if paired:
        return 0.5 * (x[0::2] - x[1::2])
    return x - reference[None, None, :]


def decay_curve(y: np.ndarray, take=None) -> np.ndarray:
    """``C(t) = sum_p y_p(t) . y_p(0) / sum_p |y_p(0)|^2`` over the decays ``take`` (default all) of ``y``
    (decays, samples, d): the projection of the mean response on the initial displacement, 1 at ``t = 0``."""
    y = y if take is None else y[take]
    proj = np.einsum("psd,pd->s", y, y[:, 0])
    norm = proj[0]
    return proj / norm if norm > 0 else np.full(proj.shape, np.nan)


def _line(t: np.ndarray, c: np.ndarray) -> tuple[float, float, float]:
    """Least squares of ln c on t: (slope, intercept, standard error of the slope); NaN slope when it cannot."""
    ok = c > 0
    t, lc = t[ok], np.log(c[ok])
    if t.size < 2 or np.ptp(t) == 0:
        return np.nan, np.nan, np.nan
    A = np.stack([t, np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(A, lc, rcond=None)
    resid = lc - A @ coef
    dof = t.size - 2
    se = float(np.sqrt((resid @ resid) / dof / ((t - t.mean()) @ (t - t.mean())))) if dof > 0 else 0.0
    return float(coef[0]), float(coef[1]), se


@dataclass(frozen=True)
class DecayFit:
    """The fit of one observable's response (docs/model.md#relaxation)."""

    tau_steps: float
    tau_steps_err: float
    intercept: float  # exp(intercept) of the fit over every decay: 1 for one clean exponential
    fit_first: int  # steps since the displacement: the fit range
    fit_last: int
    n_points: int
    boot_err: float  # the bootstrap's part of the error bar
    fit_err: float  # the fit's own standard error (its residuals)
    nonlinear_shift: float  # (tau(2a) - tau(a)) / 3 / tau: the O(a^2) bias removed by the extrapolation (NaN: none)
    trusted: bool
    flags: str  # why not, ";"-separated (empty when trusted)


def _tau_of(t, n, y, doubled, take):
    """The estimate of one set of decays ``take``: with decays at amplitudes ``a`` and ``2a`` (``doubled``) the
    extrapolation to amplitude 0, ``(4 tau(a) - tau(2a)) / 3``, and its shift; else the fit of all. Also the
    fit's own standard error of the estimate."""
    def one(sel):
        slope, _, se = _line(t[:n], decay_curve(y, sel)[:n])
        return (-1.0 / slope, se / slope**2) if np.isfinite(slope) and slope < 0 else (np.nan, np.nan)

    take = np.asarray(take)
    if doubled is not None:
        lo, hi = take[~doubled[take]], take[doubled[take]]
        if lo.size and hi.size:
            (t1, e1), (t2, e2) = one(lo), one(hi)
            return (4.0 * t1 - t2) / 3.0, (t2 - t1) / 3.0, float(np.hypot(4.0 * e1, e2) / 3.0)
    tau, err = one(take)
    return tau, np.nan, err


def fit_decay(t: np.ndarray, y: np.ndarray, *, doubled: np.ndarray | None = None, n_boot: int = 200,
              seed: int = 0) -> tuple[DecayFit, np.ndarray, np.ndarray]:
    """Fit the response ``y`` (decays, samples, d) at ``t`` (samples, steps since the displacement, t[0] = 0).
    ``doubled`` (decays,) marks decays displaced at twice the amplitude of the others: the time is then
    extrapolated to amplitude 0 (the nonlinearity's O(a^2) bias removed). Returns the fit, ``C(t)`` of every
    decay and its bootstrap standard error (per sample); the bootstrap resamples decays within each amplitude."""
    t = np.asarray(t, dtype=float)
    n_dec = y.shape[0]
    doubled = None if doubled is None else np.asarray(doubled, dtype=bool)
    strata = [np.arange(n_dec)] if doubled is None else [np.nonzero(~doubled)[0], np.nonzero(doubled)[0]]
    strata = [s_ for s_ in strata if s_.size]
    rng = np.random.default_rng(seed)
    boots = [np.concatenate([rng.choice(s_, s_.size) for s_ in strata]) for _ in range(n_boot)] if n_dec > 1 else []
    c = decay_curve(y)
    cb = np.array([decay_curve(y, b) for b in boots]) if boots else np.zeros((0, t.size))
    se = cb.std(axis=0) if boots else np.zeros(t.size)
    flags = []
    floor = np.maximum(FIT_FLOOR, NOISE_K * se)
    below = np.nonzero(~(c > floor))[0]
    n = int(below[0]) if below.size else t.size  # samples [0, n) are in the range
    if below.size and NOISE_K * se[below[0]] >= FIT_FLOOR and (n == 0 or c[n - 1] > np.exp(-1.0)):
        flags.append("noise floor")  # the noise ended the range before the decay reached one e-fold
    if n < MIN_POINTS:
        flags.append("few points")
    if n_dec < MIN_PAIRS:
        flags.append("few decays")
    nan = float("nan")
    slope, icept, _ = _line(t[:n], c[:n]) if n >= 2 else (nan, nan, nan)
    tau, shift, fit_err = _tau_of(t, n, y, doubled, np.arange(n_dec)) if n >= 2 else (nan, nan, nan)
    if not (np.isfinite(slope) and slope < 0 and np.isfinite(tau) and tau > 0):
        flags.append("no decay")
        fit = DecayFit(nan, nan, nan, 0, int(t[max(n - 1, 0)]), n, nan, nan, nan, False, ";".join(flags))
        return fit, c, se
    btau = np.array([_tau_of(t, n, y, doubled, b)[0] for b in boots]) if boots else np.zeros(0)
    btau = btau[np.isfinite(btau)]
    boot_err = float(np.std(btau)) if btau.size > 1 else 0.0
    err = float(np.hypot(boot_err, fit_err))
    if t[n - 1] - t[0] < MIN_DECAY * tau:
        flags.append("range short")
    if err > MAX_REL_ERR * tau:
        flags.append("noisy")
    if np.isfinite(shift) and abs(shift) > NONLINEAR * tau:
        flags.append("nonlinear")
    if n >= 2 * MIN_POINTS:  # one exponential: both halves of the range decay at the same rate
        h = n // 2
        s1, s2 = _line(t[:h], c[:h])[0], _line(t[h - 1:n], c[h - 1:n])[0]
        d = np.array([_line(t[:h], b[:h])[0] - _line(t[h - 1:n], b[h - 1:n])[0] for b in cb]) if len(cb) else []
        sigma = float(np.nanstd(d)) if len(d) else 0.0
        if abs(s1 - s2) > CURVED * abs(slope) and abs(s1 - s2) > 3.0 * sigma:
            flags.append("not one exponential")
    fit = DecayFit(float(tau), err, float(np.exp(icept)), int(t[0]), int(t[n - 1]), n, boot_err, float(fit_err),
                   float(shift / tau) if np.isfinite(shift) else nan, not flags, ";".join(flags))
    return fit, c, se


def sample_offsets(steps: int, base: int = 1, dense: int = 50, growth: float = 1.05, first_step: int = 0
                   ) -> np.ndarray:
    """Steps since the displacement at which the copies are observed: 0, then every ``base`` steps up to
    ``dense * base`` (the fast modes), then geometrically (factor ``growth``) up to ``steps`` (the slow ones).
    Every sample after 0 falls on an absolute step ``first_step + t`` that is a multiple of ``base`` (the
    hierarchy coupling's refresh steps, where the collective decay is an exact AR(1))."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    shift = (-first_step) % base
    dense_t = shift + base * np.arange(dense + 1)
    geo = np.geomspace(max(dense_t[-1], 1), max(steps, 1), num=max(2, int(np.log(max(steps, 1) / max(
        dense_t[-1], 1)) / np.log(growth)) + 2)) if steps > dense_t[-1] else np.zeros(0)
    geo = shift + base * np.floor((geo - shift) / base)
    t = np.unique(np.concatenate([[0], dense_t, geo]).astype(np.int64))
    return t[(t >= 0) & (t <= steps)]
