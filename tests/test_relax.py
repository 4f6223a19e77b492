"""Relaxation from an ensemble (docs/model.md#relaxation): ``gv.relax`` against the closed-form collective and
relative times of the ``timescales`` system (docs/model.md#separation), the estimator on synthetic decays, the
copy backend's contract (the one the replica engine must keep), and ``vfe relax``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.analysis.relax import decay_curve, fit_decay, sample_offsets
from gauge_vfe.agents.analysis.timescales import linear_relaxation
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.runner.relax import run_copies

LR, LAMBDA, S, EVERY = 0.025, 1.0, 1.0, 5  # scenarios/timescales.yaml


def timescales_at_fixed_point(ratio: float, rho: float = 0.0, temperature: float = 0.0) -> gv.Simulation:
    """The ``timescales`` system at lambda_align / alpha = ``ratio``, every belief at its prior: the fixed point
    (consensus) of the closed form."""
    sim = gv.Simulation.from_scenario("timescales", [f"energy.alpha={LAMBDA / ratio}", f"hierarchy.rho={rho}",
                                                     f"dynamics.temperature.mu={temperature}"], keep_history=False)
    sim.set_state(sim.state.replace(mu=sim.layout.prior_mu.copy()))
    return sim


def predicted(ratio: float, rho: float = 0.0) -> dict:
    tau_r, tau_c = linear_relaxation(4, LAMBDA / ratio, LAMBDA, LR, S, rho, EVERY)
    return {"collective[0]": tau_c, "relative[0]": tau_r}


@pytest.mark.parametrize("ratio", [1.0, 10.0])
def test_closed_form_at_zero_temperature(ratio):
    """From random displacements at T = 0 the collective and relative times are the closed form's within their
    error bars (3 sigma), every fit trusted, over a run of a tenth of the collective time (at least 60 steps)."""
    pred = predicted(ratio)
    steps = int(max(60, 0.1 * pred["collective[0]"]))
    df = gv.relax(timescales_at_fixed_point(ratio), replicas=16, steps=steps, amplitude=1e-3, seed=3)
    assert df.attrs["groups"] == [[0, 1, 2, 3]]
    assert df.attrs["replica_steps"] == 16 * steps
    for name, tau in pred.items():
        row = df.loc[name]
        assert row.trusted, row.flags
        assert abs(row.tau_steps - tau) <= 3 * row.tau_steps_err, (name, row.tau_steps, row.tau_steps_err, tau)
        assert row.tau_steps_err < 1e-4 * tau  # deterministic and linear: the error bar is tiny, and still honest
        assert abs(row.nonlinear_shift) < 1e-4  # the amplitude extrapolation's correction: O(amplitude^2)
        assert row.bits_per_step > 0 and row.tau_bits == pytest.approx(row.bits_per_step * row.tau_steps)
    series = df.attrs["series"]
    assert series.index[0] == 0 and np.allclose(series.iloc[0], 1.0)
    # the averaged decay is the closed form's exponential
    t = series.index.to_numpy()
    assert np.allclose(series["collective[0]"], np.exp(-t / pred["collective[0]"]), rtol=1e-6)


def test_closed_form_with_noise():
    """At T > 0 the antithetic pairs share their noise: the collective decay (exactly linear) is still the closed
    form within its error bars; the relative one carries the softmax's anharmonic shift of order T / kappa (0.1 %
    at T = 0.003), which the error bar resolves, so it is compared to 1 %."""
    pred = predicted(1.0)
    df = gv.relax(timescales_at_fixed_point(1.0, temperature=0.003), replicas=16, steps=60, amplitude=1e-3, seed=5)
    c, r = df.loc["collective[0]"], df.loc["relative[0]"]
    assert c.trusted and r.trusted, (c.flags, r.flags)
    assert abs(c.tau_steps - pred["collective[0]"]) <= 3 * c.tau_steps_err
    assert r.tau_steps == pytest.approx(pred["relative[0]"], rel=0.01)
    assert r.tau_bits > 0  # noise keeps the clock running


@pytest.mark.slow
def test_hierarchy_coupling_collective():
    """With the coupling (rho = 0.5, refreshed every 5 steps) the collective decay read at refresh steps is the
    exact AR(1) of docs/model.md#separation, and the relative one unchanged."""
    pred = predicted(1.0, rho=0.5)
    df = gv.relax(timescales_at_fixed_point(1.0, rho=0.5), replicas=16, steps=80, amplitude=1e-3)
    assert np.all(df.attrs["series"].index[1:] % EVERY == 0)
    for name, tau in pred.items():
        row = df.loc[name]
        assert row.trusted and abs(row.tau_steps - tau) <= 3 * row.tau_steps_err, (name, row.tau_steps, tau)


@pytest.mark.slow
def test_displaced_along_the_slowest_modes():
    """``modes=k``: the displacements lie in the k slowest modes of the spectrum, here collective ones (27 degenerate
    modes, one per site and component, at lambda_align/alpha = 10): the collective time is recovered, and the
    relative modes, not displaced, give no trusted time."""
    pred = predicted(10.0)
    df = gv.relax(timescales_at_fixed_point(10.0), replicas=16, steps=60, amplitude=1e-3, displace="modes", modes=4)
    c = df.loc["collective[0]"]
    assert c.trusted and abs(c.tau_steps - pred["collective[0]"]) <= 3 * c.tau_steps_err
    assert not df.loc["relative[0]"].trusted


# --- the estimator on synthetic decays -----------------------------------------------------------------------------
def synthetic(taus, weights, t, n=16, noise=0.0, seed=0):
    """Decays (n, samples, 1) of sum_k w_k exp(-t / tau_k) with Gaussian noise."""
    rng = np.random.default_rng(seed)
    clean = sum(w * np.exp(-t / tau) for tau, w in zip(taus, weights))
    return clean[None, :, None] + noise * rng.standard_normal((n, t.size, 1)) * (t > 0)[None, :, None]


def test_fit_recovers_an_exponential_and_its_error():
    t = sample_offsets(400, 1)
    fits = [fit_decay(t, synthetic([100.0], [1.0], t, noise=0.02, seed=s))[0] for s in range(12)]
    z = np.array([(f.tau_steps - 100.0) / f.tau_steps_err for f in fits])
    assert all(f.trusted for f in fits)
    assert np.abs(z).max() < 4 and 0.3 < np.std(z) < 2.5  # error bars of the right size


def test_fit_flags():
    t = sample_offsets(400, 1)
    mixed = fit_decay(t, synthetic([5.0, 200.0], [0.7, 0.3], t))[0]
    assert not mixed.trusted and "not one exponential" in mixed.flags
    few = fit_decay(t, synthetic([100.0], [1.0], t, n=4))[0]
    assert "few decays" in few.flags
    short = fit_decay(t[t <= 10], synthetic([1e4], [1.0], t[t <= 10]))[0]
    assert "range short" in short.flags
    flat = fit_decay(t, synthetic([100.0], [1.0], t, noise=3.0))[0]
    assert not flat.trusted and ("noise floor" in flat.flags or "noisy" in flat.flags)
    growing = fit_decay(t, synthetic([-100.0], [1.0], t))[0]
    assert "no decay" in growing.flags and np.isnan(growing.tau_steps)


def test_amplitude_extrapolation():
    """Decays at amplitude a relax with tau (1 + e), at 2a with tau (1 + 4 e) (an O(a^2) nonlinearity): the
    extrapolation gives tau, and the shift e."""
    t = sample_offsets(300, 1)
    small = synthetic([100.0 * 1.01], [1.0], t, n=8)
    large = synthetic([100.0 * 1.04], [1.0], t, n=8)
    y = np.concatenate([small, large])
    doubled = np.r_[np.zeros(8, bool), np.ones(8, bool)]
    fit = fit_decay(t, y, doubled=doubled)[0]
    assert fit.tau_steps == pytest.approx(100.0, rel=1e-9)
    assert fit.nonlinear_shift == pytest.approx(0.01, rel=1e-6)
    assert fit.trusted
    assert not fit_decay(t, np.concatenate([small, synthetic([130.0], [1.0], t, n=8)]), doubled=doubled)[0].trusted


def test_decay_curve_projects_on_the_initial_displacement():
    y = np.zeros((2, 3, 2))
    y[0, :, 0] = [1.0, 0.5, 0.25]
    y[1, :, 1] = [-2.0, -1.0, -0.5]
    y[1, 1:, 0] = 7.0  # motion orthogonal to a decay's start does not count
    assert np.allclose(decay_curve(y), [1.0, 0.5, 0.25])


def test_sample_offsets_on_refresh_steps():
    t = sample_offsets(10_000, 5, first_step=3)
    assert t[0] == 0 and np.all((t[1:] + 3) % 5 == 0) and t[-1] <= 10_000 and np.all(np.diff(t) > 0)
    assert t.size < 150  # dense for the fast modes, geometric for the slow: the samples stay few


# --- the backend's contract ------------------------------------------------------------------------------------
def test_copies_are_single_runs():
    """Copy r of ``run_copies`` is the single run with seed r from its state, bit for bit (at T > 0, hierarchy
    coupling on): the contract the replica engine keeps when it replaces the loop. Copies sharing a seed share
    their noise."""
    sim = timescales_at_fixed_point(1.0, rho=0.5, temperature=0.003)
    config, layout, state = sim.config, sim.layout, sim.state
    shifted = state.replace(mu=state.mu + 0.01)
    t = np.array([0, 5, 17])

    def observe(s):
        return s.mu.ravel().copy()

    x, bits = run_copies(config, layout, [state, shifted, state], [7, 7, 8], t, observe)
    single = gv.Simulation.from_scenario("timescales", ["energy.alpha=1.0", "hierarchy.rho=0.5",
                                                        "dynamics.temperature.mu=0.003", "seed=8"], keep_history=False)
    single.set_state(state)
    single.run(17, stop=None)
    assert np.array_equal(x[2, -1], single.state.mu.ravel())
    assert not np.array_equal(x[0, -1], x[2, -1])
    assert np.array_equal(x[0, 0], state.mu.ravel()) and np.all(bits[:, 0] == 0) and np.all(bits[:, -1] > 0)
    # shared noise: the difference of two copies with one seed is (nearly) the deterministic response
    assert np.abs((x[1, -1] - x[0, -1]) - 0.01).max() < 0.01


# --- sources and the command ---------------------------------------------------------------------------------------
def test_run_file_source_and_cli(tmp_path):
    out = tmp_path / "t.h5"
    gv.run("timescales", steps=20, output=out, progress=False).close()
    df = gv.relax(out, step=10, replicas=4, steps=10, observables=("agent",))
    assert list(df.index) == ["agents"] and df.attrs["step"] == 10 and df.attrs["replica_steps"] == 40
    r = CliRunner().invoke(main, ["relax", str(out), "--replicas", "4", "--steps", "10", "--json",
                                  "--observables", "agent,collective"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["step"] == 20 and info["replica_steps"] == 40 and info["observables"][0]["observable"] == "agents"
    r = CliRunner().invoke(main, ["relax", "timescales", "--replicas", "4", "--steps", "10", "--observables", "agent",
                                  "--temperature", "0.001"], catch_exceptions=False)
    assert r.exit_code == 0 and "replica-steps" in r.stdout and "timescales.yaml (initial state)" in r.stdout, r.output
    bad = ((["relax", str(tmp_path / "missing.h5")], "no such run file"),
           (["relax", str(out), "--step", "7"], "7"),
           (["relax", str(out), "--replicas", "5"], "even number"),
           (["relax", str(out), "--observables", "spin"], "--observables"),
           (["relax", "timescales", "--step", "5"], "--step is for run files"),
           (["relax", "timescales", "--steps", "5"], "no meta-agent"),  # random initial beliefs: no consensus
           (["relax", "no_such_scenario"], "no_such_scenario"),
           (["relax", str(out), "--amplitude", "0"], "amplitude"))
    for args, what in bad:
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and what in r.output, (args, r.output)


def test_covariance_observables_closed_form():
    """agent_sigma and collective_sigma (the covariances' prior offsets, docs/model.md#relaxation): with alignment
    off, each Sigma relaxes to its prior S = I under the prior term alone, at the plain step's linearised rate
    lr_sigma alpha / 2 (dE/dSigma = alpha (S^-1 - Sigma^-1) / 2, whose derivative at Sigma = I is alpha / 2 per
    Frobenius coordinate): tau = -1 / ln(1 - lr_sigma alpha / 2), for every agent and for the group's
    coarse-grained covariance alike."""
    lr_sigma, alpha = 0.5, 0.1
    sim = gv.Simulation.from_scenario("timescales", [f"energy.alpha={alpha}", "energy.lambda_align=0",
                                                     f"dynamics.lr_sigma={lr_sigma}", "dynamics.temperature.mu=0"],
                                      keep_history=False)
    sim.set_state(sim.state.replace(mu=sim.layout.prior_mu.copy()))
    tau = -1.0 / np.log(1.0 - lr_sigma * alpha / 2)
    df = gv.relax(sim, replicas=16, steps=int(tau), amplitude=1e-3, seed=1, groups=[[0, 1, 2, 3]],
                  observables=("agent_sigma", "collective_sigma", "collective"))
    for name in ("agents_sigma", "collective_sigma[0]"):
        row = df.loc[name]
        assert row.trusted, row.flags
        assert abs(row.tau_steps - tau) <= 3 * row.tau_steps_err + 1e-3 * tau, (name, row.tau_steps, tau)
    # the means are held by the prior alone as well (lambda_align = 0): lr_mu alpha per step
    assert df.loc["collective[0]"].tau_steps == pytest.approx(-1.0 / np.log(1.0 - LR * alpha), rel=1e-3)
    with pytest.raises(ValueError, match="collective_sigma"):
        gv.relax(sim, replicas=4, steps=5, observables=("sigma",))
