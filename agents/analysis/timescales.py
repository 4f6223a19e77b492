"""Time scales of series of logged frames (docs/model.md#timescales).

- :func:`autocorrelation_time`: the historical per-component estimate (in samples) behind the stored
  ``timescales`` table (``tau``, ``tau_members``, ``ratio`` in logged frames); unchanged.
- :func:`integrated_time`: the integrated autocorrelation time of a (vector) series or of independent chains,
  Sokal's automatic window, the Madras-Sokal error bar and a batch-means cross-check.
- :func:`burn_in`: the initial transient by the MSER rule (White 1997).
- :func:`mean_and_error`: a time average and its standard error from the autocorrelation time.
- :func:`series_timescale`: one entity's series of logged frames: burn-in removed, ``tau`` in logged frames,
  steps and bits, flagged when the frame spacing does not resolve it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_C = 5.0  # Sokal's window factor: M >= c tau
RESOLVED_FRAMES = 4.0  # tau (logged frames) below this: the frame spacing does not resolve the time (see the docs)
# A series whose spread over its kept frames is below this times its largest magnitude (or 1) varies by rounding
# alone (docs/model.md#unresolved-times): an autocorrelation "time" of it is a number made of machine epsilon.
ROUNDING_SPREAD = 1e-12

# Why a time is not reported (docs/model.md#unresolved-times): code -> (name, why, what would resolve it). The codes
# are stored in the run file (series_detail's ``reason``); new ones are appended, never renumbered.
UNRESOLVED = {
    0: ("resolved", "", ""),
    1: ("no_fluctuations", "no fluctuations: the run has no noise (temperature 0, fixed observations), so it relaxes "
                           "and there is no autocorrelation time to measure",
        "run `vfe run timescales`, or set dynamics.temperature"),
    2: ("too_few_frames", "fewer than 4 analysed frames", "run longer or log more often (output.every)"),
    3: ("too_short", "too slow for this run: no Sokal window within a quarter of the series",
        "run longer: a 30 % error bar needs about 222 autocorrelation times of frames"),
    4: ("below_frame_spacing", "faster than the frame spacing (under 4 logged frames)",
        "log more often (output.every)"),
    5: ("no_variance", "no variance beyond rounding (machine epsilon): nothing moves",
        "set dynamics.temperature (or check that the field is not frozen)"),
    6: ("no_estimate", "no estimate (anti-correlated or too noisy)", "run longer"),
}
REASON = {name: code for code, (name, _, _) in UNRESOLVED.items()}


def unresolved_reason(tau_frames: float, n_frames: int, every: int, flat: bool = False) -> int:
    """The :data:`UNRESOLVED` code of a time estimate: ``tau_frames`` (logged frames) of ``n_frames`` kept frames
    ``every`` steps apart; ``flat``: the series varies by rounding alone. 0 (resolved) exactly when ``tau_steps``
    is a measured time."""
    if n_frames < 4 or every <= 0:
        return REASON["too_few_frames"]
    if flat:
        return REASON["no_variance"]
    if np.isinf(tau_frames):
        return REASON["too_short"]
    if not np.isfinite(tau_frames):
        return REASON["no_estimate"]
    if tau_frames < RESOLVED_FRAMES:
        return REASON["below_frame_spacing"]
    return REASON["resolved"]


def rounding_flat(x) -> bool:
    """True when the series ``x`` (T, ...) spreads over less than :data:`ROUNDING_SPREAD` of its magnitude."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return False
    spread = float(np.max(np.ptp(x.reshape(x.shape[0], -1), axis=0)))
    return spread <= ROUNDING_SPREAD * max(1.0, float(np.max(np.abs(x))))


def fluctuation_sources(config: dict) -> list[str]:
    """What makes a run's series fluctuate, from its resolved configuration (a dict): the Langevin temperature of
    each field (docs/model.md#temperature) and streaming observation draws (docs/model.md#streaming-observations).
    Empty: a deterministic descent, whose series relax instead of fluctuating (no autocorrelation time)."""
    out = []
    t = (config.get("dynamics") or {}).get("temperature", 0.0)
    for field_name, value in (t.items() if isinstance(t, dict) else [("", t)]):
        if float(value or 0.0) > 0:
            out.append(f"dynamics.temperature{'.' + field_name if field_name else ''} = {float(value):g}")
    every = (config.get("observations") or {}).get("resample_every")
    if every:
        out.append(f"observations.resample_every = {int(every)}")
    return out


def autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time (in frames) of a series (T,) or (T, d), Sokal's automatic window.

    ``tau = 1 + 2 sum_{k=1}^{M} rho(k)`` with the smallest M >= 5 tau; components are averaged. NaN for fewer
    than 4 samples or when no component gives a positive estimate; ``inf`` for a series that never
    decorrelates within its length.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    T = x.shape[0]
    if T < 4:
        return float("nan")
    taus = []
    for k in range(x.shape[1]):
        y = x[:, k] - x[:, k].mean()
        var = y @ y
        if var <= 0:
            continue
        f = np.fft.rfft(y, 2 * T)
        acf = np.fft.irfft(f * np.conj(f))[:T] / var
        tau = 1.0
        found = False
        for m in range(1, T):
            tau = 1.0 + 2.0 * acf[1:m + 1].sum()
            if m >= 5 * tau:
                found = True
                break
        if not found:
            taus.append(np.inf)
        elif tau > 0:
            taus.append(tau)
        # tau <= 0 (anti-correlated short series): the spectral density at zero, which tau estimates, is
        # never negative; such a component carries no estimate and is left out
    return float(np.mean(taus)) if taus else float("nan")


@dataclass(frozen=True)
class TauEstimate:
    """An integrated autocorrelation time in samples, with its error bar (docs/model.md#timescales)."""

    tau: float  # NaN: no estimate (too short, no variance); inf: no window M <= T/4 met the condition
    error: float  # Madras-Sokal: sqrt(2 (2M + 1) / N) tau, N = samples over all chains
    window: int  # Sokal's window M (0 when there is no estimate)
    n: int  # samples per chain
    chains: int
    blocking: float  # batch-means estimate, a cross-check (NaN when fewer than 8 batches fit)


def _pooled_acf(y: np.ndarray) -> np.ndarray:
    """sum over columns of sum_t y_t y_{t+n}, for n = 0..T-1 (columns already centred)."""
    T = y.shape[0]
    f = np.fft.rfft(y, 2 * T, axis=0)
    return np.fft.irfft((f * np.conj(f)).real, 2 * T, axis=0)[:T].sum(axis=1)


def integrated_time(x, c: float = WINDOW_C, chains: bool = False) -> TauEstimate:
    """Integrated autocorrelation time (in samples) of ``x``: (T,) or (T, d) one series, or with ``chains=True``
    (T, R) or (T, R, d) R independent, identically distributed chains.

    Each component is centred on its own mean (over time, and over the chains with ``chains=True``). The
    autocorrelation is pooled over components and chains, ``rho(n) = sum_t y_t . y_{t+n} / sum_t |y_t|^2``, and
    ``tau = 1 + 2 sum_{n=1..M} rho(n)`` with the smallest ``M >= c tau(M)`` (Sokal); ``inf`` when there is no
    such ``M <= T/4`` (the series is too short for its time scale). The error bar is Madras and
    Sokal's ``sqrt(2 (2M + 1) / N) tau`` with ``N = T R`` (``R = 1`` for one series): the components of one
    series count as one series, which is exact for one component and never too small for several. The bias of
    centring on the sample mean is removed to first order: ``tau / (1 - (2M + 1) / N)``.
    """
    x = np.asarray(x, dtype=float)
    if chains:
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3:
            raise ValueError(f"chains: expected (T, R) or (T, R, d), got shape {x.shape}")
        T, nchains = x.shape[:2]
        y = (x - x.mean(axis=(0, 1))).reshape(T, -1)
    else:
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"expected (T,) or (T, d), got shape {x.shape}")
        T, nchains = x.shape[0], 1
        y = x - x.mean(axis=0)
    nan = TauEstimate(np.nan, np.nan, 0, T, nchains, np.nan)
    if T < 4:
        return nan
    acf = _pooled_acf(y)
    if acf[0] <= 0:
        return nan
    rho = acf / acf[0]
    # tau(M) for every M at once; the first M meeting the window condition
    tau_m = 1.0 + 2.0 * np.cumsum(rho[1:])
    M = np.arange(1, T)
    ok = np.nonzero(M >= c * tau_m)[0]
    if ok.size == 0 or M[ok[0]] > T // 4:
        # never decorrelated, or only at a window beyond T/4, where rho(n) is mostly the noise of the
        # estimate (a random walk's mean-subtracted rho crosses 0 near T/3): no estimate
        return TauEstimate(np.inf, np.inf, int(M[ok[0]]) if ok.size else T - 1, T, nchains, np.nan)
    w = int(M[ok[0]])
    tau = float(tau_m[ok[0]])
    if tau <= 0:  # an anti-correlated short series: the spectral density at zero is never negative
        return nan
    # Centring on the sample mean lowers every rho(n) by about tau / N (N = T R samples around that mean), so the
    # windowed sum is low by (2M + 1) tau / N: -36 % for one AR(1) series of 25 tau, -8 % at 100 tau (measured
    # over 300 seeds). Undone to first order (docs/model.md#timescale-detail).
    tau /= max(1.0 - (2 * w + 1) / (T * nchains), 0.5)
    err = float(np.sqrt(2.0 * (2 * w + 1) / (T * nchains)) * tau)
    return TauEstimate(tau, err, w, T, nchains, _batch_means(y, tau))


def _batch_means(y: np.ndarray, tau: float) -> float:
    """``B var(batch means) / var(y)`` with batches of ``B = ceil(10 tau)`` samples per column (a cross-check:
    for an exponential decay it is low by about ``tau / (2 B)``, i.e. 5 %). NaN when fewer than 8 batches."""
    T = y.shape[0]
    B = int(np.ceil(10 * tau))
    nb = T // B
    if nb < 8:
        return float("nan")
    means = y[:nb * B].reshape(nb, B, -1).mean(axis=1)  # (nb, d)
    means = means - means.mean(axis=0)
    var = (y * y).sum() / (y.size - y.shape[1])
    return float(B * (means * means).sum() / (means.size - means.shape[1]) / var)


def mean_and_error(y) -> tuple[float, float]:
    """Time average of a stationary series ``y`` (T,) and its standard error ``std * sqrt(tau / T)``, ``tau``
    from :func:`integrated_time`. ValueError when the series does not decorrelate within its length."""
    y = np.asarray(y, dtype=float)
    tau = integrated_time(y).tau
    if not np.isfinite(tau):
        raise ValueError("the series did not decorrelate within its length: run longer")
    return float(y.mean()), float(y.std() * np.sqrt(tau / y.size))


def burn_in(x) -> tuple[int, bool]:
    """MSER burn-in of ``x`` (T,) or (T, d): ``d* = argmin_{0 <= d <= T/2} sum_{t >= d} |x_t - xbar_d|^2 /
    (T - d)^2`` (``xbar_d`` the mean of ``x[d:]``, components summed). Returns ``(d*, stationary)``;
    ``stationary`` is False when the minimum is at the bound ``T/2`` (MSER's sign that the series has not
    settled within its length)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    T = x.shape[0]
    if T < 4:
        return 0, False
    # suffix sums: n_d = T - d, S1 = sum x, S2 = sum |x|^2 over t >= d
    s1 = np.cumsum(x[::-1], axis=0)[::-1]
    s2 = np.cumsum((x * x).sum(axis=1)[::-1])[::-1]
    n = T - np.arange(T)
    ss = s2 - (s1 * s1).sum(axis=1) / n  # sum_{t >= d} |x_t - xbar_d|^2
    dmax = T // 2
    stat = ss[:dmax + 1] / n[:dmax + 1] ** 2
    d = int(np.argmin(stat))
    return d, d < dmax


def frame_spacing(steps) -> int:
    """The logged-frame spacing in steps: the most frequent difference of consecutive frame steps (0: < 2)."""
    diffs = np.diff(np.asarray(steps, dtype=np.int64))
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        return 0
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def regular_run(steps, every: int) -> slice:
    """The longest run of consecutive entries of ``steps`` spaced by exactly ``every`` (the first if tied)."""
    steps = np.asarray(steps, dtype=np.int64)
    if steps.size == 0 or every <= 0:
        return slice(0, steps.size)
    breaks = np.nonzero(np.diff(steps) != every)[0] + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [steps.size]])
    k = int(np.argmax(ends - starts))
    return slice(int(starts[k]), int(ends[k]))


def bits_per_step(info_bits, agents, first: int, last: int) -> float:
    """Mean over ``agents`` of their bits of belief update per step over the steps ``first < t <= last`` (those
    that produced the states from ``first + 1`` to ``last``): ``(B_i(last) - B_i(first)) / (last - first)``.
    NaN without ``info_bits`` (``(steps, values (E, N))``) or when a step of the window is not logged."""
    if info_bits is None or last <= first:
        return float("nan")
    bsteps, values = info_bits
    bsteps = np.asarray(bsteps)
    sel = (bsteps > first) & (bsteps <= last)
    if int(sel.sum()) != last - first:
        return float("nan")
    return float(np.asarray(values)[sel][:, list(agents)].sum(axis=0).mean() / (last - first))


@dataclass(frozen=True)
class SeriesTimescale:
    """One entity's time scale over its logged frames (docs/model.md#timescales)."""

    first_step: int  # first step of the regular run of frames analysed
    burn_in_step: int  # first step kept after the burn-in
    n_frames: int  # frames kept
    every: int  # frame spacing in steps
    stationary: bool  # the MSER minimum was not at its bound
    tau_frames: float
    tau_frames_err: float
    tau_blocking_frames: float
    window: int
    resolved: bool  # tau_frames >= RESOLVED_FRAMES; otherwise tau_steps, tau_bits are NaN
    tau_steps: float
    tau_steps_err: float
    bits_per_step: float
    tau_bits: float
    tau_bits_err: float
    reason: int = 0  # UNRESOLVED code: 0 resolved; also flags a series that varies by rounding alone


def series_timescale(x, steps, every: int, rate=None) -> SeriesTimescale:
    """The time scale of one series of logged frames ``x`` (F, K) at ``steps`` (F,), frames ``every`` steps
    apart. ``rate(first, last)`` gives the bits per step over a window of steps (None: bits are NaN).

    The longest regular run of frames is kept, its MSER burn-in discarded, and ``tau`` measured (logged
    frames); ``tau_steps = every tau``, ``tau_bits = tau_steps * rate(burn_in_step, last_step)``, both NaN when
    ``tau < RESOLVED_FRAMES`` (not resolved by the frame spacing) or not finite."""
    x = np.asarray(x, dtype=float)
    steps = np.asarray(steps, dtype=np.int64)
    run = regular_run(steps, every)
    x, steps = x[run], steps[run]
    d, stationary = burn_in(x) if x.shape[0] else (0, False)
    x, kept = x[d:], steps[d:]
    est = integrated_time(x)
    resolved = bool(np.isfinite(est.tau) and est.tau >= RESOLVED_FRAMES and every > 0)
    nan = float("nan")
    tau_steps = est.tau * every if resolved else nan
    err_steps = est.error * every if resolved else nan
    bits = rate(int(kept[0]), int(kept[-1])) if (rate is not None and kept.size >= 2) else nan
    return SeriesTimescale(
        first_step=int(steps[0]) if steps.size else -1, burn_in_step=int(kept[0]) if kept.size else -1,
        n_frames=int(kept.size), every=int(every), stationary=bool(stationary), tau_frames=est.tau,
        tau_frames_err=est.error, tau_blocking_frames=est.blocking, window=est.window, resolved=resolved,
        tau_steps=tau_steps, tau_steps_err=err_steps, bits_per_step=bits,
        tau_bits=tau_steps * bits, tau_bits_err=err_steps * bits,
        reason=unresolved_reason(est.tau, int(kept.size), int(every), rounding_flat(x)))


@dataclass(frozen=True)
class LinearModes:
    """Closed-form time scales of N agents sharing every site, in the linear regime (docs/model.md#separation):
    each in steps as the analysis measures them (``every`` times the integrated time of the series sampled every
    ``every`` steps)."""

    tau_relative: float
    tau_collective: float
    tau_agent: float

    @property
    def separation(self) -> float:
        return self.tau_collective / self.tau_relative

    @property
    def separation_agent(self) -> float:
        return self.tau_collective / self.tau_agent


def _sampled_tau(a: float, every: int) -> float:
    """``every (1 + a^every) / (1 - a^every)``: the measured time in steps of an AR(1) with per-step coefficient
    ``a`` logged every ``every`` steps (inf when ``a = 1``: no restoring force)."""
    ae = a ** every
    return float("inf") if ae >= 1.0 else every * (1.0 + ae) / (1.0 - ae)


def _linear_coefficients(n_agents: int, alpha: float, lambda_align: float, lr: float, s: float, rho: float,
                         refresh_every: int) -> tuple[float, float, float]:
    """``(a_r, a_c, A)`` of docs/model.md#separation: the relative and collective modes' per-step AR(1)
    coefficients, and the collective mode's from one coupling refresh to the next."""
    N, k = n_agents, refresh_every
    a_r = 1.0 - lr * (alpha + 2.0 * N * lambda_align / (N - 1)) / s
    a_c = 1.0 - lr * alpha / s
    return a_r, a_c, a_c ** k + rho * (1.0 - a_c ** k)


def linear_relaxation(n_agents: int, alpha: float, lambda_align: float, lr: float, s: float = 1.0,
                      rho: float = 0.0, refresh_every: int = 1) -> tuple[float, float]:
    """``(tau_relative, tau_collective)``: the e-folding times in steps of a displacement of the relative and the
    collective modes in the closed form of docs/model.md#separation (what ``gv.relax`` measures,
    docs/model.md#relaxation): ``-1 / ln a_r`` and ``-k / ln A`` (the collective one read at refresh steps)."""
    a_r, _, A = _linear_coefficients(n_agents, alpha, lambda_align, lr, s, rho, refresh_every)
    return -1.0 / np.log(abs(a_r)), (-refresh_every / np.log(A) if A < 1 else float("inf"))


def linear_modes(n_agents: int, alpha: float, lambda_align: float, lr: float, every: int, s: float = 1.0,
                 rho: float = 0.0, refresh_every: int = 1) -> LinearModes:
    """The closed form of docs/model.md#separation: ``n_agents`` agents on the same sites with equal frames,
    ``Sigma = s I`` frozen, plain gradient steps ``lr`` on mu at any temperature (it scales the variances, not
    the times), alignment ``lambda_align`` in either form near consensus, hierarchy coupling ``rho`` refreshed
    every ``refresh_every`` steps, and frames logged every ``every`` steps (a multiple of ``refresh_every``).

    Relative modes: ``a_r = 1 - lr (alpha + 2 N lambda_align / (N - 1)) / s`` per step. Collective mode: between
    refreshes ``a_c = 1 - lr alpha / s`` towards ``(1 - rho) m + rho x(t_r)``, so from refresh to refresh it is an
    AR(1) with ``A = a_c^k + rho (1 - a_c^k)``. An agent's series is the sum of the two, independent: its time
    is their variance-weighted mean."""
    if every % refresh_every:
        raise ValueError("every must be a multiple of refresh_every")
    N, k = n_agents, refresh_every
    a_r, a_c, A = _linear_coefficients(n_agents, alpha, lambda_align, lr, s, rho, refresh_every)
    tau_r = _sampled_tau(a_r, every)
    tau_c = _sampled_tau(A, every // k) * k
    # stationary variances per component at logged steps, in units of 2 lr T: a relative coordinate
    # (N - 1) / N / (1 - a_r^2); the mean of N agents the noise summed over one refresh interval over 1 - A^2
    var_r = (N - 1) / N / (1.0 - a_r ** 2)
    var_c = (1.0 - a_c ** (2 * k)) / (1.0 - a_c ** 2) / N / (1.0 - A ** 2) if A < 1 else float("inf")
    tau_a = (var_c * tau_c + var_r * tau_r) / (var_c + var_r) if np.isfinite(var_c) else float("inf")
    return LinearModes(tau_r, tau_c, tau_a)
