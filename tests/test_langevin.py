"""Langevin dynamics and information time (docs/model.md#temperature, #information-time).

The statistical tests run many independent copies of a one-agent, one-site system at once: one agent whose
support is the whole grid, with no term that couples sites (no smoothness, curvature or second agent), is
``H * W`` independent single-site systems stepped together, each with its own noise. Every tolerance is a few
standard errors, the standard error of a time average being ``std * sqrt(tau / n)`` with ``tau`` the series'
integrated autocorrelation time measured by the project's own estimator (Sokal's window). Each test also
checks that the prediction it confirms is distinguishable from the nearest wrong one (no finite-step
correction, the other measure), so none of them can pass by being blind.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.linalg
from scipy.special import digamma

from gauge_vfe import agents
from gauge_vfe.agents.analysis.timescales import mean_and_error
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.runner.simulation import Simulation
from gauge_vfe.agents.runner.updaters import ObservationResampling
from gauge_vfe.agents.io.schema import write_text
from gauge_vfe.agents.kernels.noise import normals, step_base, step_bases
from gauge_vfe.agents.kernels.update import noise_slots
from gauge_vfe.agents.setup.scenario import ScenarioError
from gauge_vfe.agents.setup.scenario import load_scenario
from factories import (InterruptAt, assert_resume_after_ctrl_c_is_bit_identical, datasets, kill_run_after_frames, same,
                       small_run_yaml)

Z = 4.0  # tolerance in standard errors: seeded runs, so a pass is reproducible; 4 sigma leaves no room to luck

# a prior covariance with correlations and unequal variances, so that a wrong matrix factor shows
S_PRIOR = np.array([[1.0, 0.3, 0.1], [0.3, 0.6, -0.1], [0.1, -0.1, 0.8]])


def replicas(extra: dict, size: int = 16, seed: int = 7) -> Simulation:
    """One agent on every site of a size x size grid, prior only: size^2 independent one-site systems."""
    cfg = {"seed": seed, "grid": {"height": size, "width": size}, "fiber": {"spins": [1]},
           "agents": {"count": 1, "support": {"shape": "whole"}},
           "energy": {"lambda_align": 0.0}}
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    return Simulation.from_config(cfg, keep_history=False)


def run_series(sim: Simulation, burn: int, n: int, observe, every: int = 1) -> np.ndarray:
    """``observe(state)`` at every ``every``-th of ``n`` steps after ``burn`` steps (thinning a series whose
    autocorrelation time is many steps loses almost nothing and saves the per-sample cost)."""
    for _ in range(burn):
        sim.step()
    out = []
    for k in range(1, n + 1):
        sim.step()
        if k % every == 0:
            out.append(observe(sim.state))
    return np.array(out)


# --- equipartition of mu ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gradient", "natural"])
def test_mu_equipartition_with_the_exact_finite_step_correction(method, one_thread):
    """Prior only, E = alpha/2 (mu - m)^T S^-1 (mu - m) + (terms without mu): the step is the linear recursion
    x' = x - B (x - m) + sqrt(2 lr T) M^(1/2) xi with A = alpha S^-1 and
      plain:   B = lr A,        M = I
      natural: B = lr Sigma A,  M = Sigma   (Sigma = S stays put: its gradient vanishes there, T_sigma = 0).
    Its stationary covariance solves C = (I - B) C (I - B)^T + 2 lr T M. Closed forms (A, B commute with S):
      plain:   C = T/alpha S (I - lr alpha S^-1 / 2)^-1     natural: C = T/alpha S / (1 - lr alpha / 2)
    both -> T S / alpha (equipartition) as lr -> 0."""
    m = np.array([0.3, -0.2, 0.5])
    alpha, T, lr = 2.0, 0.2, 0.05
    sim = replicas({"agents": {"init": {"mu": {"kind": "constant", "value": m.tolist()},
                                        "sigma": {"value": S_PRIOR.tolist()}}},
                    "priors": {"mu": {"value": m.tolist()}, "sigma": {"value": S_PRIOR.tolist()}},
                    "energy": {"alpha": alpha},
                    "dynamics": {"method": method, "lr_mu": lr, "lr_sigma": 0.0, "lr_phi": 0.0,
                                 "temperature": {"mu": T}}})
    A = alpha * np.linalg.inv(S_PRIOR)
    if method == "gradient":
        B, Q = lr * A, 2 * lr * T * np.eye(3)
        closed = T / alpha * S_PRIOR @ np.linalg.inv(np.eye(3) - lr * alpha * np.linalg.inv(S_PRIOR) / 2)
    else:
        B, Q = lr * S_PRIOR @ A, 2 * lr * T * S_PRIOR
        closed = T / alpha * S_PRIOR / (1 - lr * alpha / 2)
    C = scipy.linalg.solve_discrete_lyapunov(np.eye(3) - B, Q)  # the derivation, checked by a solver
    np.testing.assert_allclose(C, closed, rtol=1e-12, atol=1e-15)
    d = run_series(sim, 200, 4000, lambda s: s.mu - m, every=2)  # (n/2, sites, 3); tau is about 10 steps
    assert np.array_equal(sim.state.sigma[0], S_PRIOR)  # the premise: Sigma did not move
    for j in range(3):
        mean, se = mean_and_error(d[:, :, j].mean(axis=1))
        assert abs(mean) < Z * se, (j, mean, se)
    equipartition = T * S_PRIOR / alpha
    for j in range(3):
        for k in range(j, 3):
            cov, se = mean_and_error((d[:, :, j] * d[:, :, k]).mean(axis=1))
            print(f"{method} C[{j},{k}]: measured {cov:.5f} +- {se:.5f}, predicted {C[j, k]:.5f}, "
                  f"lr -> 0 limit {equipartition[j, k]:.5f}")
            assert abs(cov - C[j, k]) < Z * se, (j, k, cov, C[j, k], se)
            if j == k:  # the finite-step correction is resolved: the lr -> 0 value is excluded
                assert abs(cov - equipartition[j, k]) > 2 * Z * se, (j, cov, equipartition[j, k], se)


# --- phi under smoothness: one equipartition per Fourier mode -----------------------------------------------

def test_phi_fourier_modes_hold_T_over_their_stiffness(one_thread):
    """E = lambda/2 sum_c sum_mu |phi(c + mu) - phi(c)|^2 on a periodic H x W grid is diagonal in the unitary
    Fourier basis: each component of mode k has stiffness a_k = lambda (4 sin^2(kx/2) + 4 sin^2(ky/2)), so the
    plain Langevin recursion phi_k' = (1 - lr a_k) phi_k + sqrt(2 lr T) xi_k gives
    <|phi_k|^2> = 2 lr T / (1 - (1 - lr a_k)^2) = T / (a_k (1 - lr a_k / 2)) for every k != 0."""
    H = W = 8
    lam, T, lr = 1.0, 0.05, 0.1
    sim = Simulation.from_config({
        "seed": 3, "grid": {"height": H, "width": W, "boundary": "periodic"}, "fiber": {"spins": [1]},
        "agents": {"count": 1, "support": {"shape": "whole"}, "init": {"mu": {"kind": "constant"}}},
        "energy": {"lambda_align": 0.0, "lambda_smooth": lam},
        "dynamics": {"lr_mu": 0.0, "lr_sigma": 0.0, "lr_phi": lr, "temperature": {"phi": T}}}, keep_history=False)
    index = sim.layout.index

    def on_grid(state):
        g = np.empty((H * W, 3))
        g[index] = state.phi
        return g.reshape(H, W, 3)

    phi = run_series(sim, 300, 6000, on_grid)  # (n, H, W, 3)
    power = (np.abs(np.fft.fft2(phi, axes=(1, 2))) ** 2 / (H * W)).mean(axis=3)  # per mode, mean of 3 components
    ky = 2 * np.pi * np.fft.fftfreq(H)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(W)[None, :]
    a = lam * (4 * np.sin(ky / 2) ** 2 + 4 * np.sin(kx / 2) ** 2)
    worst = 0.0
    for y in range(H):
        for x in range(W):
            if y == 0 and x == 0:
                continue  # the uniform mode has no stiffness: it diffuses freely
            predicted = T / (a[y, x] * (1 - lr * a[y, x] / 2))
            mean, se = mean_and_error(power[:, y, x])
            worst = max(worst, abs(mean - predicted) / se)
            assert abs(mean - predicted) < Z * se, ((y, x), mean, predicted, se)
    # all modes together: sum_k a_k (1 - lr a_k / 2) |phi_k|^2 / T per mode is 1; without the correction it is not
    w = a * (1 - lr * a / 2)
    w[0, 0] = 0.0
    total, se = mean_and_error((power * w).sum(axis=(1, 2)) / T / (H * W - 1))
    uncorrected = float(((power * a).sum(axis=(1, 2)) / T / (H * W - 1)).mean())
    print(f"phi modes: worst |z| {worst:.2f}; all modes {total:.4f} +- {se:.4f} (1 expected), "
          f"{uncorrected:.4f} without the finite-step correction")
    assert abs(total - 1.0) < Z * se
    assert abs(uncorrected - 1.0) > 10 * Z * se


# --- Sigma: the stationary law and its measure -----------------------------------------------------------------

def _wishart_moments(dof: float, V: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean and E[ln det] of a Wishart law W(V, dof) in K dimensions."""
    K = V.shape[0]
    logdet = sum(digamma((dof - i + 1) / 2) for i in range(1, K + 1)) + K * np.log(2) + np.linalg.slogdet(V)[1]
    return dof * V, float(logdet)


@pytest.mark.parametrize("method", ["natural", "gradient"])
def test_sigma_stationary_law_refers_to_the_stated_measure(method, one_thread):
    """Prior only, E(Sigma) = alpha/2 (tr(S^-1 Sigma) - ln det Sigma) + const. The law exp(-E/T) has a density
    det(Sigma)^(alpha/(2T)) exp(-alpha/(2T) tr(S^-1 Sigma)) times that of the reference measure:
      natural (affine-invariant chart): the Riemannian volume det(Sigma)^(-(K+1)/2) dSigma
          -> Wishart with dof alpha/T and scale T S / alpha: E[Sigma] = S exactly;
      plain (Frobenius chart): Lebesgue measure on the entries dSigma
          -> Wishart with dof alpha/T + K + 1: E[Sigma] = S (1 + (K + 1) T / alpha).
    Both E[tr(S^-1 Sigma)]/K and E[ln det Sigma] are checked, and the other chart's measure is excluded."""
    alpha, T, K = 1.0, 0.05, 3
    lr, burn, n = {"natural": (0.02, 400, 3000), "gradient": (0.01, 800, 4500)}[method]
    sim = replicas({"agents": {"init": {"mu": {"kind": "constant"}, "sigma": {"value": S_PRIOR.tolist()}}},
                    "priors": {"sigma": {"value": S_PRIOR.tolist()}},
                    "energy": {"alpha": alpha},
                    "dynamics": {"method": method, "lr_mu": 0.0, "lr_sigma": lr, "lr_phi": 0.0,
                                 "temperature": {"sigma": T}}})
    Si = np.linalg.inv(S_PRIOR)
    retracted = []
    step = sim.step

    def counted_step():  # every step's retractions, also those of the steps between samples
        info = step()
        retracted.append(info.spd_retractions)
        return info

    sim.step = counted_step
    # sampled every 5 steps: the autocorrelation times are 50 to 200 steps (SPD-ness is checked by every step's
    # Cholesky, which stops the run as diverged otherwise)
    samples = run_series(sim, burn, n, lambda st: (np.einsum("ij,sji->s", Si, st.sigma).mean() / K,
                                                   np.linalg.slogdet(st.sigma)[1].mean()), every=5)
    tr, logdet = samples[:, 0], samples[:, 1]
    # the plain chart's claim holds while no step is retracted (docs/model.md#temperature): none may be here
    assert sum(retracted) == 0 and len(retracted) == burn + n
    V = T * S_PRIOR / alpha
    claims = {"natural": alpha / T, "gradient": alpha / T + K + 1}
    other = {"natural": "gradient", "gradient": "natural"}[method]
    mean_tr, se_tr = mean_and_error(tr)
    mean_ld, se_ld = mean_and_error(logdet)
    for label, dof in (("claimed", claims[method]), ("other", claims[other])):
        mean, ld = _wishart_moments(dof, V)
        want_tr = np.trace(Si @ mean) / K
        print(f"{method} Sigma, {label} measure: tr(S^-1 Sigma)/K {mean_tr:.4f} +- {se_tr:.4f} vs {want_tr:.4f}; "
              f"ln det {mean_ld:.4f} +- {se_ld:.4f} vs {ld:.4f}")
        if label == "claimed":
            assert abs(mean_tr - want_tr) < Z * se_tr
            assert abs(mean_ld - ld) < Z * se_ld
        else:
            assert abs(mean_tr - want_tr) > 10 * Z * se_tr
            assert abs(mean_ld - ld) > 10 * Z * se_ld


# --- determinism: no draws at T = 0, seeded streams, resume -----------------------------------------------------

SMALL = {"seed": 5, "grid": {"height": 8, "width": 8}, "fiber": {"spins": [1, 2]},
         "agents": {"count": 3, "support": {"shape": "disk", "radius": 3},
                    "init": {"phi": {"kind": "random", "per": "agent", "scale": 0.5}}},
         "energy": {"lambda_curv": 0.2, "lambda_smooth": 0.1},
         "dynamics": {"lr_mu": 0.01, "lr_sigma": 0.005, "lr_phi": 0.01}}


def _small(**dynamics) -> Simulation:
    return Simulation.from_config({**SMALL, "dynamics": {**SMALL["dynamics"], **dynamics}})


@pytest.mark.parametrize("temperature", [0, 0.0, {"mu": 0, "phi": 0, "sigma": 0}])
@pytest.mark.parametrize("method", ["gradient", "natural"])
def test_zero_temperature_draws_nothing_and_is_plain_descent(temperature, method):
    reference = _small(method=method)  # no temperature key at all
    sim = _small(method=method, temperature=temperature)
    sim.noise_key = None  # a step that drew noise would raise for want of it
    for _ in range(5):
        reference.step()
        info = sim.step()
        assert not info.noisy
    for name in ("mu", "sigma", "phi"):
        assert np.array_equal(getattr(sim.state, name), getattr(reference.state, name)), name


def _slot_draws(sim: Simulation, step: int) -> np.ndarray:
    """(S, slots) the normals addressed by the run's key at ``step``, straight from the generator."""
    S, slots = sim.layout.n_rows, noise_slots(sim.layout.K)
    out = np.empty(S * slots)
    normals(step_base(sim.noise_key, step), 0, out)
    return out.reshape(S, slots)


def test_each_field_draws_at_its_own_slots_of_key_step_and_row():
    """mu's draws are slots 0..K-1 of its row, phi's the last three, whatever else is at a temperature: the step
    is the drift plus exactly those normals, and switching on noise in another field leaves them unchanged."""
    K = _small().layout.K
    lr_mu, lr_phi = SMALL["dynamics"]["lr_mu"], SMALL["dynamics"]["lr_phi"]
    for temperature in ({"mu": 0.1, "phi": 0.2}, {"mu": 0.1, "phi": 0.2, "sigma": 0.05}):
        sim = _small(temperature=temperature)
        for t in range(3):
            mu, phi, grads = sim.state.mu.copy(), sim.state.phi.copy(), sim.gradients()
            sim.step()
            xi = _slot_draws(sim, t)
            np.testing.assert_allclose(sim.state.mu, mu - lr_mu * grads["mu"] + np.sqrt(2 * lr_mu * 0.1) * xi[:, :K],
                                       rtol=0, atol=1e-15)
            np.testing.assert_allclose(sim.state.phi, phi - lr_phi * grads["phi"] + np.sqrt(2 * lr_phi * 0.2) *
                                       xi[:, -3:], rtol=0, atol=1e-15)
    assert not np.array_equal(_slot_draws(sim, 0), _slot_draws(sim, 1))


def test_noise_moves_the_state_and_energy_increases_are_not_reported():
    cold, hot = _small(), _small(temperature=0.05)
    for _ in range(5):
        cold.step()
        info = hot.step()
        assert info.noisy and not info.energy_increased
    assert not np.array_equal(cold.state.mu, hot.state.mu)
    assert hot.energy_increases == 0


SCENARIO = small_run_yaml("noisy", dynamics=", method: natural, temperature: 0.05")


def scenario(tmp_path, *overrides, text=SCENARIO):
    p = tmp_path / "noisy.yaml"
    p.write_text(text)
    return load_scenario(p, list(overrides))


def test_noisy_runs_same_seed_bit_identical_other_seed_different(tmp_path):
    first = datasets(run_scenario(scenario(tmp_path), tmp_path / "a.h5").path, rng=True)
    second = datasets(run_scenario(scenario(tmp_path), tmp_path / "b.h5").path, rng=True)
    assert first.keys() == second.keys()
    for k in first:
        assert same(first[k], second[k]), k
    third = datasets(run_scenario(scenario(tmp_path, "seed=3"), tmp_path / "c.h5").path, rng=True)
    assert not np.array_equal(first["particles/agents/mu/value"], third["particles/agents/mu/value"])
    cold = datasets(run_scenario(scenario(tmp_path, "dynamics.temperature=0"), tmp_path / "d.h5").path, rng=True)
    assert np.array_equal(first["particles/agents/mu/value"][0], cold["particles/agents/mu/value"][0])
    assert not np.array_equal(first["particles/agents/mu/value"][-1], cold["particles/agents/mu/value"][-1])


@pytest.mark.parametrize("stop_at", [13, 15])  # between logged frames, and on one
def test_noisy_run_resumed_after_ctrl_c_is_bit_identical(tmp_path, stop_at):
    assert_resume_after_ctrl_c_is_bit_identical(lambda: scenario(tmp_path), tmp_path, stop_at, 30)


def test_resume_that_lost_the_step_number_would_differ(tmp_path, monkeypatch):
    """The draws are addressed by the step: a resumed run whose noise restarted at step 0 differs from the
    uninterrupted one, so the resume tests above cannot pass by accident."""
    from gauge_vfe.agents.model import dynamics

    reference = datasets(run_scenario(scenario(tmp_path), tmp_path / "ref.h5").path, rng=True)
    path = tmp_path / "cut.h5"
    run_scenario(scenario(tmp_path), path, observers=[InterruptAt(13)])
    monkeypatch.setattr(dynamics, "step_bases", lambda keys, step: step_bases(keys, 0))  # one key per replica
    run_scenario(scenario(tmp_path), path, resume=True)
    resumed = datasets(path, rng=True)
    assert not np.array_equal(resumed["particles/agents/mu/value"][-1], reference["particles/agents/mu/value"][-1])


PCG64_STATE = json.dumps({"bit_generator": "PCG64", "state": {"state": 1, "inc": 3}, "has_uint32": 0, "uinteger": 0})


@pytest.mark.parametrize("temperature", ["0.05", "0"])
def test_a_checkpoint_of_the_earlier_numpy_noise_resumes_only_without_noise(tmp_path, temperature):
    """A run begun by a version that drew its noise with numpy's PCG64 cannot continue that noise: a noisy one is
    refused with one line and its file left as it was; at T = 0 the stored state never mattered."""
    text = SCENARIO.replace("temperature: 0.05", f"temperature: {temperature}")
    path = tmp_path / "old.h5"
    run_scenario(scenario(tmp_path, text=text), path, observers=[InterruptAt(13)])
    with h5py.File(path, "r+") as f:
        ck = f["checkpoint"]
        write_text(ck[f"slot{int(ck['active'][0])}"]["rng"], PCG64_STATE)
        del ck["slot0/sha256"], ck["slot1/sha256"]  # that version stored no checkpoint hash
    if temperature == "0":
        assert run_scenario(scenario(tmp_path, text=text), path, resume=True).status == "completed"
        return
    before = datasets(path, rng=True)
    with pytest.raises(ScenarioError, match="cannot resume: this run's Langevin noise was drawn by numpy's PCG64"):
        run_scenario(scenario(tmp_path, text=text), path, resume=True)
    after = datasets(path, rng=True)
    assert after.keys() == before.keys() and all(same(after[k], before[k]) for k in before)


@pytest.mark.slow
def test_noisy_run_resumed_after_sigkill_is_bit_identical(tmp_path):
    text = SCENARIO.replace("steps: 30", "steps: 1000000").replace("every: 5", "every: 2")
    (tmp_path / "long.yaml").write_text(text)
    path = tmp_path / "killed.h5"
    kill_run_after_frames(tmp_path / "long.yaml", path, frames=6)
    with agents.load(path) as traj:
        assert traj.status == "killed"
        last = traj.checkpoint().step
    final = last + 7
    short = text.replace("steps: 1000000", f"steps: {final}")
    (tmp_path / "long.yaml").write_text(short)
    res = run_scenario(load_scenario(tmp_path / "long.yaml"), path, resume=True)
    assert res.status == "completed" and res.last_step == final
    reference = datasets(run_scenario(load_scenario(tmp_path / "long.yaml"), tmp_path / "ref.h5").path, rng=True)
    resumed = datasets(path, rng=True)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert same(resumed[k], reference[k]), k


# --- information time -----------------------------------------------------------------------------------------

def _kl_numpy(mu0, s0, mu1, s1) -> float:
    """KL(N(mu0, s0) || N(mu1, s1)) in nats, straight from the formula (docs/model.md#kl)."""
    K = mu0.size
    p1 = np.linalg.inv(s1)
    d = mu1 - mu0
    return 0.5 * (np.trace(p1 @ s0) + d @ p1 @ d - K + np.linalg.slogdet(s1)[1] - np.linalg.slogdet(s0)[1])


def _bits_numpy(layout, old, new) -> np.ndarray:
    out = np.zeros(layout.n_agents)
    for r in range(old.mu.shape[0]):
        out[layout.agent[r]] += layout.chi[r] * _kl_numpy(new.mu[r], new.sigma[r], old.mu[r], old.sigma[r])
    return out / np.log(2)


@pytest.mark.parametrize("temperature", [0.0, 0.05])
def test_information_bits_match_a_direct_kl_computation(temperature):
    cfg = {**SMALL, "agents": {**SMALL["agents"], "support": {"shape": "gaussian", "width": 2.0}},
           "dynamics": {**SMALL["dynamics"], "method": "natural", "temperature": temperature}}
    sim = Simulation.from_config(cfg)
    assert sim.layout.chi.min() < 0.5  # soft supports: the chi weighting is exercised
    states = [sim.state]
    for _ in range(4):
        sim.step()
        states.append(sim.state)
    assert np.array_equal(sim.history.info_bits[0], np.zeros(sim.layout.n_agents))  # nothing made step 0
    for t in range(4):
        want = _bits_numpy(sim.layout, states[t], states[t + 1])
        assert np.all(want > 0)
        np.testing.assert_allclose(sim.history.info_bits[t + 1], want, rtol=1e-9, atol=1e-14)


def test_information_bits_are_logged_every_step_and_add_up_to_the_clock(tmp_path):
    res = run_scenario(scenario(tmp_path, "output.every=1", "output.dtype=float64"), tmp_path / "a.h5")
    with agents.load(res.path) as traj:
        steps, bits = traj.info_bits()
        _, clock = traj.info_bits(cumulative=True)
        layout = traj.layout()
        assert np.array_equal(steps, np.arange(31)) and bits.shape == (31, traj.n_agents)
        assert np.array_equal(steps, traj.energy()[0])
        assert np.all(bits[0] == 0) and np.all(bits[1:] > 0)
        np.testing.assert_allclose(clock, np.cumsum(bits, axis=0), rtol=0, atol=0)
        for t in (1, 2, 17, 30):  # the logged float64 frames at consecutive steps
            want = _bits_numpy(layout, traj.state(t - 1), traj.state(t))
            np.testing.assert_allclose(bits[t], want, rtol=1e-9)
    with h5py.File(res.path, "r") as f:
        assert f["observables/info_bits/value"].dtype == np.float64
        assert f["observables/info_bits/step"].dtype == np.int64


# --- configuration ------------------------------------------------------------------------------------------------

def test_temperature_forms_and_errors():
    from gauge_vfe.agents.setup.config import ConfigError, make_config

    assert make_config({"dynamics": {"temperature": 0.3}}).dynamics.temperatures == (0.3, 0.3, 0.3)
    t = make_config({"dynamics": {"temperature": {"phi": 0.2}}}).dynamics
    assert t.temperatures == (0.0, 0.0, 0.2) and t.noisy
    assert not make_config({}).dynamics.noisy
    for bad, key, text in ((-1, "dynamics.temperature", ">= 0"), ({"mu": -0.1}, "dynamics.temperature.mu", "greater than or equal to 0"),
                           ({"nu": 1}, "dynamics.temperature.nu", "no such key; the keys here are: mu, phi, sigma"), ("hot", "dynamics.temperature", "hot")):
        with pytest.raises(ConfigError) as err:
            make_config({"dynamics": {"temperature": bad}})
        assert [p for p, _ in err.value.problems] == [key] and text in str(err.value), str(err.value)
    with pytest.raises(ConfigError) as err:
        make_config({"dynamics": {"temperature": 0.1, "line_search": {"enabled": True}}})
    assert err.value.problems[0][0] == "dynamics.temperature" and "line_search" in err.value.problems[0][1]
    make_config({"dynamics": {"temperature": 0, "line_search": {"enabled": True}}})  # T = 0: allowed


# --- streaming observations ----------------------------------------------------------------------------------------

STREAM = {"seed": 11, "grid": {"height": 24, "width": 24}, "fiber": {"spins": [1]},
          "agents": {"count": 2, "supports": [{"shape": "whole"}, {"shape": "disk", "radius": 5}]},
          "observations": {"kind": "smooth", "dim": 2, "resample_every": 4, "noise": [[0.5, 0.2], [0.2, 0.3]]},
          "dynamics": {"lr_mu": 0.01, "lr_sigma": 0.005, "lr_phi": 0.01}}


def test_observations_are_redrawn_every_k_steps_with_noise_Rn_reproducibly():
    sim = Simulation.from_config(STREAM)
    base = sim.layout.observations.value.copy()
    Rn = np.array(STREAM["observations"]["noise"])
    seen = []
    for _ in range(13):
        seen.append(sim.layout.observations.value.copy())
        sim.step()
    for t in range(12):  # constant within [j k, (j + 1) k), fresh at every multiple of k
        assert np.array_equal(seen[t], seen[t + 1]) == ((t + 1) % 4 != 0), t
    assert np.array_equal(seen[0], base)  # draw 0: the configured observations
    # one draw per site, seen alike by every agent present there
    layout = sim.layout
    noise = seen[4] - base
    for site in np.intersect1d(layout.index[layout.rows_of(0)], layout.index[layout.rows_of(1)])[:5]:
        rows = np.nonzero(layout.index == site)[0]
        np.testing.assert_allclose(noise[rows[0]], noise[rows[1]], rtol=0, atol=1e-14)  # (base + n) - base
    # its covariance is Rn: the 576 sites of agent 0 (the whole grid) are independent draws
    per_site = noise[layout.rows_of(0)]
    cov = per_site.T @ per_site / per_site.shape[0]
    se = np.sqrt((np.outer(np.diag(Rn), np.diag(Rn)) + Rn ** 2) / per_site.shape[0])
    assert np.all(np.abs(cov - Rn) < Z * se), (cov, Rn)
    assert np.all(np.abs(per_site.mean(axis=0)) < Z * np.sqrt(np.diag(Rn) / per_site.shape[0]))
    # reproducible from the seed; another seed draws other noise; draws differ from each other
    again = Simulation.from_config(STREAM)
    for _ in range(8):
        again.step()
    assert np.array_equal(again.layout.observations.value, seen[8])
    assert not np.array_equal(seen[8], seen[4])
    other = Simulation.from_config({**STREAM, "seed": 12})
    for _ in range(4):
        other.step()
    assert not np.array_equal(other.layout.observations.value - other.updater(ObservationResampling).base, noise)


def test_the_energy_of_a_state_uses_the_observations_in_force_at_its_step():
    from gauge_vfe.agents.model.energy import evaluate

    sim = Simulation.from_config(STREAM)
    for _ in range(8):
        sim.step()
    e = evaluate(sim.layout, sim.energy_params, sim.state, want_grad=False).terms["observation"]
    assert sim.energy()["observation"] == e
    assert sim.history.energy["observation"][8] == e


def test_streaming_observations_resume_bit_identical(tmp_path):
    text = SCENARIO.replace("observations: {kind: smooth, dim: 2}",
                            "observations: {kind: smooth, dim: 2, resample_every: 4, noise: 0.3}")
    assert text != SCENARIO
    reference = datasets(run_scenario(scenario(tmp_path, text=text), tmp_path / "ref.h5").path, rng=True)
    path = tmp_path / "cut.h5"
    run_scenario(scenario(tmp_path, text=text), path, observers=[InterruptAt(13)])
    run_scenario(scenario(tmp_path, text=text), path, resume=True)
    resumed = datasets(path, rng=True)
    for k in reference:
        assert same(resumed[k], reference[k]), k
    still = text.replace(", resample_every: 4", "")  # the same observations, never redrawn
    plain = datasets(run_scenario(scenario(tmp_path, text=still), tmp_path / "plain.h5").path, rng=True)
    energy = "observables/energy/observation/value"
    assert np.array_equal(reference[energy][:4], plain[energy][:4])  # draw 0 is the configured observations
    assert not np.array_equal(reference[energy][4:], plain[energy][4:])
    with h5py.File(path, "r") as f:  # the file stores the configured observations, not a draw
        with agents.load(tmp_path / "plain.h5") as traj:
            assert np.array_equal(f["agents/observation/value"][...], traj.layout().observations.value)


def test_resample_every_needs_observations():
    from gauge_vfe.agents.setup.config import ConfigError, make_config

    with pytest.raises(ConfigError) as err:
        make_config({"observations": {"resample_every": 3}})
    assert err.value.problems[0][0] == "observations.resample_every"
    with pytest.raises(ConfigError) as err:
        make_config({"observations": {"kind": "random", "resample_every": 0}})
    assert err.value.problems[0][0] == "observations.resample_every"


def test_a_run_written_before_these_keys_existed_still_resumes(tmp_path):
    """A file of the previous version: its config lacks observations.resample_every (and dynamics.temperature),
    its checkpoint slots hold no generator state and it has no info_bits series. It resumes, at T = 0 exactly as
    if never stopped; the information bits start at the resumed step."""
    import json

    text = SCENARIO.replace(", temperature: 0.05", "")
    reference = datasets(run_scenario(scenario(tmp_path, text=text), tmp_path / "ref.h5").path, rng=True)
    path = tmp_path / "old.h5"
    run_scenario(scenario(tmp_path, text=text), path, observers=[InterruptAt(13)])
    with h5py.File(path, "a") as f:  # make it look like the previous version's file
        cfg = json.loads(f["parameters"].attrs["config_json"])
        del cfg["observations"]["resample_every"], cfg["dynamics"]["temperature"]
        f["parameters"].attrs["config_json"] = json.dumps(cfg, sort_keys=True)
        del f["observables/info_bits"], f["checkpoint/slot0/rng"], f["checkpoint/slot1/rng"]
        del f["checkpoint/slot0/sha256"], f["checkpoint/slot1/sha256"]  # nor a checkpoint hash
    res = run_scenario(scenario(tmp_path, text=text), path, resume=True)
    assert res.status == "completed" and res.last_step == 30
    resumed = datasets(path, rng=True)
    for k in reference:
        if k.startswith("observables/info_bits"):
            continue
        assert same(resumed[k], reference[k]), k
    with agents.load(path) as traj:
        steps, bits = traj.info_bits()
        assert list(steps) == list(range(14, 31))
        assert np.array_equal(bits, reference["observables/info_bits/value"][14:])


def test_inspect_counts_no_uphill_steps_in_a_noisy_run_but_does_at_zero_temperature(tmp_path):
    """Noise raises E by design: `vfe inspect` must not report those rises as too-large steps."""
    from gauge_vfe.agents.runner.inspect import summarize_run, summary_lines, uphill_steps

    hot = ("dynamics.temperature=2", "dynamics.steps=200")  # hot enough that E rises in some steps
    noisy = run_scenario(scenario(tmp_path, *hot), tmp_path / "noisy.h5")
    info = summarize_run(noisy.path)
    with agents.load(noisy.path) as traj:
        assert uphill_steps(traj.energies()["total"]) > 0  # the energy does go up in this run
    assert info["uphill_steps"] is None
    assert not any("uphill steps" in line for line in summary_lines(info))
    cold = run_scenario(scenario(tmp_path, "dynamics.temperature=0", "dynamics.steps=200"), tmp_path / "cold.h5")
    assert summarize_run(cold.path)["uphill_steps"] == 0
