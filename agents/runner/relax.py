"""``gv.relax``: relaxation times from an ensemble of displaced copies of one state (docs/model.md#relaxation).

    gv.relax("runs/t.h5", replicas=32, steps=4000)          # a run's last logged frame (or step=, checkpoint=True)
    gv.relax("timescales", replicas=32, steps=500)           # a scenario's initial state
    gv.relax(sim, displace="modes", modes=4, temperature=0.0)  # a Simulation's state, along its 4 slowest modes

The estimator is :mod:`gauge_vfe.agents.analysis.relax`; this module finds the source's state, displaces the copies
and runs them through :func:`run_copies`, the one function that knows how copies are stepped.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..analysis.meta_agents import detect
from ..analysis.relax import fit_decay, observable_plan, observables as observe_state, response, sample_offsets
from ..analysis.spectrum import SpectrumWarning, mode_displacement, spectrum as spectrum_of_state, tau_steps
from ..io.reader import Trajectory, load
from ..model.fiber import require_so3
from ..model.layout import Layout
from ..model.state import State
from ..setup.build import Built, build
from ..setup.config import Config, make_config
from .simulation import Simulation
from .spectrum import trajectory_state

DEFAULT_FRACTION = 0.25  # default run length: this fraction of the slowest predicted time (a clean exponential
# needs only a fraction of tau; docs/model.md#relaxation)


# --- the backend: the one place that steps copies ----------------------------------------------------------------

def run_copies(config: Config, layout: Layout, initial_states: list[State], seeds: list[int], sample_at,
               observe) -> tuple[np.ndarray, np.ndarray]:
    """Run one copy per ``(initial_states[r], seeds[r])`` for ``sample_at[-1]`` steps and observe it.

    Copy ``r`` is exactly the run ``Simulation(Built(config with seed = seeds[r], layout, initial_states[r]))``:
    the source's layout (so every copy is the same world), that seed's noise stream and streaming-observation
    draws, updaters (hierarchy coupling) applied at its first state and then at their steps. ``sample_at`` are
    the steps since the start (sorted, from 0) at which ``observe(state) -> (d,)`` is read.

    Returns ``(x, bits)``: ``x`` (copies, samples, d) the observables, ``bits`` (copies, samples, N) each agent's
    information clock since the start. The copies are the replicas of one :class:`~.ensemble.Ensemble` (one engine
    call per step for all of them, replica r bit-identical to the single run above). Two copies may share a seed
    (the antithetic pairs of :func:`relax` do).
    """
    from .ensemble import Ensemble

    sample_at = np.asarray(sample_at, dtype=np.int64)
    built = [Built(config.model_copy(update={"seed": int(seed)}), layout, state)
             for state, seed in zip(initial_states, seeds)]
    ens = Ensemble.from_built(config, built)
    x, bits = None, np.zeros((len(initial_states), sample_at.size, layout.n_agents))
    done = 0
    for j, t in enumerate(sample_at):
        if t > done:
            ens.run(int(t - done), stop=None)
            done = int(t)
        for r, state in enumerate(ens.states()):
            obs = observe(state)
            if x is None:
                x = np.empty((len(initial_states), sample_at.size, obs.size))
            x[r, j] = obs
        bits[:, j] = ens.clock
    return x, bits


# --- the source --------------------------------------------------------------------------------------------------

@dataclass
class Source:
    """A state to relax from, with the configuration and layout of its run."""

    config: Config
    layout: Layout
    state: State
    label: str


def resolve_source(source, *, step: int | None = None, checkpoint: bool = False) -> Source:
    """A Simulation (its current state), a Trajectory or a run file (``.h5``: its logged frame at ``step``,
    default the last, or its checkpoint), or a scenario (a shipped name, a scenario file, a dict or a Config:
    its initial state)."""
    # the CLI names the file or scenario
    require_so3(source.layout.fiber if isinstance(source, Simulation) else source, "the relaxation measurement")
    if isinstance(source, Simulation):
        if checkpoint or (step is not None and step != source.state.step):
            raise ValueError(f"a Simulation offers its current state only (step {source.state.step})")
        return Source(source.config, source.layout, source.state, f"simulation at step {source.state.step}")
    if isinstance(source, Trajectory):
        state = trajectory_state(source, step, checkpoint)
        return Source(make_config(source.config), source.layout(), state, f"{source.path} at step {state.step}")
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".h5", ".hdf5"):
        with load(source) as traj:
            return resolve_source(traj, step=step, checkpoint=checkpoint)
    if step is not None or checkpoint:
        raise ValueError("a scenario offers its initial state only: --step and checkpoint are for run files")
    from ..setup.scenario import Scenario, prepare_scenario

    sc = source if isinstance(source, Scenario) else prepare_scenario(source)
    built = build(sc.config, sc.base_dir, sc.inputs)
    name = source if isinstance(source, (str, Path)) else (getattr(sc, "path", None) or sc.config.name)
    require_so3(built.layout.fiber, "the relaxation measurement")
    return Source(sc.config, built.layout, built.state, f"{name} (initial state)")


def with_temperature(config: Config, temperature) -> Config:
    """``config`` with ``dynamics.temperature`` replaced (validated as a scenario's would be)."""
    if temperature is None:
        return config
    data = config.model_dump(mode="json")
    data.pop("sweep", None)  # the copies run no sweep (and its keys may name the mapping form replaced here)
    if not isinstance(temperature, dict):  # a number is every field's temperature: the mapping says so
        temperature = {"mu": temperature, "sigma": temperature, "phi": temperature}
    data["dynamics"]["temperature"] = temperature
    return make_config(data)


# --- displacements -------------------------------------------------------------------------------------------------

def _free(config: Config) -> dict:
    d = config.dynamics
    return {"mu": d.lr_mu > 0, "sigma": d.lr_sigma > 0, "phi": d.lr_phi > 0}


def _rms(parts, free) -> float:
    sq = [np.sum(p * p) for p, f in zip(parts, free) if f]
    n = sum(p.size for p, f in zip(parts, free) if f)
    return float(np.sqrt(sum(sq) / n)) if n else 0.0


def displacements(src: Source, n: int, amplitude: float, modes, rng: np.random.Generator,
                  spectrum_options: dict | None = None):
    """``n`` displacements ``(dmu, dSigma, dphi)`` of the free fields, each with RMS ``amplitude`` per free
    coordinate: independent Gaussian in every coordinate, or a Gaussian combination of physical modes of the
    linearised map at the state (docs/model.md#linearised-spectrum): ``modes`` the ``k`` slowest, or a list of
    their indices (0 the slowest); ``spectrum_options`` go to the spectrum (``tol``, ``method``, ...)."""
    cfg, layout, state = src.config, src.layout, src.state
    free = _free(cfg)
    flags = (free["mu"], free["sigma"], free["phi"])
    if not any(flags):
        raise ValueError("every step size (lr_mu, lr_sigma, lr_phi) is 0: nothing relaxes")
    S, K = state.mu.shape
    vectors = None
    if modes is not None:
        chosen = list(range(int(modes))) if np.isscalar(modes) else [int(m) for m in modes]
        if not chosen or min(chosen) < 0:
            raise ValueError(f"modes: the k slowest (k >= 1) or indices >= 0 of the physical modes, got {modes!r}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SpectrumWarning)
            df = spectrum_of_state(layout, cfg.energy, cfg.dynamics, state, k=max(chosen) + 1,
                                   **(spectrum_options or {}))
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=3)
        vectors = df.attrs["modes"].vectors[:, ~df["gauge"].to_numpy()][:, chosen]
    out = []
    for _ in range(n):
        if vectors is None:
            g = rng.standard_normal((S, K, K))
            parts = (rng.standard_normal((S, K)), (g + np.swapaxes(g, 1, 2)) / 2.0, rng.standard_normal((S, 3)))
        else:
            parts = mode_displacement(layout, cfg.energy, cfg.dynamics, state,
                                      vectors @ rng.standard_normal(vectors.shape[1]))
        scale = amplitude / _rms(parts, flags)
        out.append(tuple(p * scale if f else np.zeros_like(p) for p, f in zip(parts, flags)))
    return out


def displaced(state: State, d, sign: float) -> State:
    """``state + sign d``, refused when Sigma leaves the SPD cone."""
    mu = state.mu.astype(np.float64) + sign * d[0]
    sigma = state.sigma.astype(np.float64) + sign * d[1]
    if np.linalg.eigvalsh(sigma).min() <= 0:
        raise ValueError("the displacement takes Sigma out of the SPD cone: lower the amplitude")
    # float64 whatever the source's storage (a float32 frame): the copy's Simulation casts to the run's precision
    return State.from_arrays(mu, sigma, state.phi + sign * d[2], state.step, np.float64)


# --- gv.relax ------------------------------------------------------------------------------------------------------

def relax(source, *, replicas: int = 32, steps: int | None = None, displace: str = "random", amplitude: float = 1e-3,
          modes=4, temperature=None, observables=("collective", "relative"), seed: int = 0, step: int | None = None,
          checkpoint: bool = False, groups=None, paired: bool = True, n_boot: int = 200,
          spectrum_options: dict | None = None) -> pd.DataFrame:
    """Relaxation times of gauge-invariant observables from ``replicas`` displaced copies of a state
    (docs/model.md#relaxation).

    ``source``: a Simulation, a Trajectory or run file (its frame at ``step``, default the last, or
    ``checkpoint=True``), or a scenario (its initial state). The copies are displaced with RMS ``amplitude`` per
    free coordinate (every other decay at twice that, so that the time is extrapolated to amplitude 0):
    ``displace="random"`` in every free coordinate, or ``displace="modes"`` along physical modes of ``gv.spectrum``
    at the state (``modes``: the ``k`` slowest, or a list of their indices, 0 the slowest); with ``paired``
    (default) in antithetic pairs sharing a seed. They run ``steps`` steps (default: a quarter of the slowest
    predicted time) at ``temperature`` (default the run's). ``observables``: of ``agent``, ``collective``,
    ``relative``, and the covariances' ``agent_sigma``, ``collective_sigma``; ``groups`` (lists of agents) default to the meta-agents detected at the source state;
    ``spectrum_options`` go to the spectrum behind ``displace="modes"`` and the default ``steps`` (``tol``,
    ``method``: a state far from a fixed point may need a looser Lanczos tolerance).

    One row per observable: ``tau_steps`` and its error bar (bootstrap over decays and the fit's own error),
    ``tau_bits`` (``bits_per_step`` over the fit range times ``tau_steps``), the fit range, ``trusted`` and
    ``flags``. ``df.attrs``: ``series``/``series_err`` (the averaged decays ``C(t)`` and their bootstrap errors,
    indexed by steps since the displacement), ``replica_steps`` (the cost), ``wall_seconds``, ``groups``,
    ``source``, ``step``, ``seeds``.
    """
    t0 = time.perf_counter()
    if replicas < 2 or (paired and replicas % 2):
        raise ValueError(f"replicas must be an even number >= 2 (antithetic pairs), got {replicas}"
                         if paired else f"replicas must be at least 2, got {replicas}")
    if not amplitude > 0:
        raise ValueError(f"amplitude must be > 0, got {amplitude}")
    if displace not in ("random", "modes"):
        raise ValueError(f"displace must be 'random' or 'modes', got {displace!r}")
    src = resolve_source(source, step=step, checkpoint=checkpoint)
    src.config = with_temperature(src.config, temperature)
    state = src.state
    if groups is None:
        comps, _, _ = detect(src.layout, state.astype(np.float64), src.config.analysis.meta_agents)
        groups = [sorted(int(a) for a in c) for c in comps]
    groups = [sorted(int(a) for a in g) for g in groups]
    plan = observable_plan(src.layout.n_agents, src.layout.K, groups, tuple(observables))
    if not plan:
        raise ValueError("no observable to measure: the state has no meta-agent for collective and relative modes; "
                         "ask for the agents' series (observables 'agent') or relax from a state with consensus")
    if steps is None:
        rate = spectrum_of_state(src.layout, src.config.energy, src.config.dynamics, state, k=1,
                                 **(spectrum_options or {}))
        slow = float(tau_steps(rate.loc[~rate["gauge"], "rate"].min()))
        if not (np.isfinite(slow) and slow > 0):
            raise ValueError("the slowest predicted mode does not decay: give steps explicitly")
        steps = max(50, int(np.ceil(DEFAULT_FRACTION * slow)))
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")

    rng = np.random.default_rng([seed, 0])
    n_dec = replicas // 2 if paired else replicas
    ds = displacements(src, n_dec, amplitude, modes if displace == "modes" else None, rng, spectrum_options)
    seed_of = [int(s) for s in np.random.default_rng([seed, 1]).integers(0, 2**31 - 1, n_dec)]
    # every other decay at twice the amplitude: the fit extrapolates the time to amplitude 0
    doubled = np.arange(n_dec) % 2 == 1
    ds = [tuple(2.0 * p for p in d) if big else d for d, big in zip(ds, doubled)]
    if paired:
        states = [displaced(state, d, sgn) for d in ds for sgn in (1.0, -1.0)]
        seeds = [s for s in seed_of for _ in (0, 1)]
    else:
        states, seeds = [displaced(state, d, 1.0) for d in ds], seed_of
    hier = src.config.hierarchy
    base = hier.every if (hier.enabled and hier.rho > 0) else 1  # refresh steps: the collective decay is exact there
    t = sample_offsets(steps, base, first_step=state.step)

    def observe(s: State) -> np.ndarray:
        return observe_state(src.layout, s.astype(np.float64), groups, plan)

    x, bits = run_copies(src.config, src.layout, states, seeds, t, observe)
    reference = observe(state)
    rows, series, errs = [], {}, {}
    for o in plan:
        y = response(x[:, :, o.columns], paired, reference[o.columns])
        fit, c, se = fit_decay(t, y, doubled=doubled, n_boot=n_boot, seed=seed)
        i0, i1 = int(np.searchsorted(t, fit.fit_first)), int(np.searchsorted(t, fit.fit_last))
        span = t[i1] - t[i0]
        bps = (float((bits[:, i1, list(o.agents)] - bits[:, i0, list(o.agents)]).mean() / span) if span > 0
               else float("nan"))
        rows.append({"observable": o.name, "kind": o.kind, "group": o.group, "agents": list(o.agents),
                     "tau_steps": fit.tau_steps, "tau_steps_err": fit.tau_steps_err,
                     "tau_bits": fit.tau_steps * bps, "tau_bits_err": fit.tau_steps_err * bps,
                     "bits_per_step": bps, "fit_first": fit.fit_first, "fit_last": fit.fit_last,
                     "n_points": fit.n_points, "intercept": fit.intercept, "boot_err": fit.boot_err,
                     "fit_err": fit.fit_err, "nonlinear_shift": fit.nonlinear_shift, "trusted": fit.trusted,
                     "flags": fit.flags})
        series[o.name], errs[o.name] = c, se
    df = pd.DataFrame(rows).set_index("observable")
    index = pd.Index(t, name="steps")
    df.attrs.update({"series": pd.DataFrame(series, index=index), "series_err": pd.DataFrame(errs, index=index),
                     "replicas": len(states), "steps": int(steps), "replica_steps": int(len(states) * steps),
                     "wall_seconds": time.perf_counter() - t0, "groups": groups, "source": src.label,
                     "step": int(state.step), "seeds": seeds, "paired": paired, "amplitude": amplitude,
                     "displace": displace, "modes": modes if displace == "modes" else None,
                     "temperature": list(src.config.dynamics.temperatures)})
    return df


def relax_record(df: pd.DataFrame) -> dict:
    """The result as plain JSON-compatible values (``vfe relax --json``): NaN as None."""
    def clean(v):
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (np.bool_,)):
            return bool(v)
        return v

    rows = [{"observable": name, **{k: clean(v) for k, v in row.items()}} for name, row in df.iterrows()]
    keep = ("source", "step", "replicas", "steps", "replica_steps", "wall_seconds", "groups", "paired", "amplitude",
            "displace", "modes", "temperature")
    return {**{k: clean(df.attrs[k]) for k in keep}, "observables": rows}


def relax_lines(df: pd.DataFrame) -> list[str]:
    """The result as text (``vfe relax``)."""
    a = df.attrs
    out = [f"{a['source']}: {a['replicas']} copies x {a['steps']} steps = {a['replica_steps']} replica-steps "
           f"({a['wall_seconds']:.1f} s), groups {a['groups']}",
           f"{'observable':<16} {'tau_steps':>22} {'tau_bits':>22} {'fit range':>15}  trust"]
    for name, r in df.iterrows():
        out.append(f"{name:<16} {r['tau_steps']:>10.5g} +- {r['tau_steps_err']:<9.3g} "
                   f"{r['tau_bits']:>10.4g} +- {r['tau_bits_err']:<9.3g} {r['fit_first']:>6d}..{r['fit_last']:<7d} "
                   f" {'yes' if r['trusted'] else 'no: ' + r['flags']}")
    return out
