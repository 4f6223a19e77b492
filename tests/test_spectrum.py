"""The linearised spectrum (docs/model.md#linearised-spectrum): against dense finite-difference references of the
same map on tiny systems, against the closed-form linear modes of docs/model.md#separation, the gauge modes of
free frames, and ``vfe spectrum``."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import factories
import gauge_vfe as gv
from gauge_vfe.agents.analysis.spectrum import (SpectrumWarning, right_jacobian_inverse, spectrum, sym_pack,
                                                sym_unpack)
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.model.dynamics import step
from gauge_vfe.agents.model.energy import evaluate
from gauge_vfe.agents.model.params import DynamicsParams
from gauge_vfe.agents.model.state import State

LR = dict(lr_mu=0.1, lr_sigma=0.05, lr_phi=0.1)


# --- dense references ------------------------------------------------------------------------------------------
class Coords:
    """x = (mu, the upper triangle of Sigma, phi) of every row: plain coordinates, independent of the module's
    Frobenius packing (eigenvalues do not depend on the coordinates)."""

    def __init__(self, state: State):
        self.S, self.K = state.mu.shape
        self.iu = np.triu_indices(self.K)
        self.step = state.step

    def pack(self, st: State) -> np.ndarray:
        return np.concatenate([st.mu.ravel(), st.sigma[:, self.iu[0], self.iu[1]].ravel(), st.phi.ravel()])

    def unpack(self, x: np.ndarray) -> State:
        S, K, (a, b) = self.S, self.K, self.iu
        n_mu, n_sig = S * K, S * a.size
        sig = np.zeros((S, K, K))
        sig[:, a, b] = sig[:, b, a] = x[n_mu:n_mu + n_sig].reshape(S, -1)
        return State(x[:n_mu].reshape(S, K).copy(), sig, x[n_mu + n_sig:].reshape(S, 3).copy(), self.step)


def jacobian(f, x0: np.ndarray, h: float = 1e-6) -> np.ndarray:
    cols = []
    for j in range(x0.size):
        e = np.zeros(x0.size)
        e[j] = h
        cols.append((f(x0 + e) - f(x0 - e)) / (2 * h))
    return np.stack(cols, axis=1)


def dense_PH_rates(layout, p, dyn: DynamicsParams, state: State) -> np.ndarray:
    """Eigenvalues of J = P H by a dense finite difference of x -> P (the step's preconditioner, frozen at
    ``state``, written from docs/model.md#dynamics) applied to the exact gradient at x."""
    c = Coords(state)
    sig0 = state.sigma
    natural = dyn.method == "natural"

    def drift(x):
        ev = evaluate(layout, p, c.unpack(x))
        gm, G, gp = ev.grad_mu, ev.grad_sigma, ev.grad_phi
        if natural:
            gm, G = np.einsum("sij,sj->si", sig0, gm), 2.0 * sig0 @ G @ sig0
        return c.pack(State(dyn.lr_mu * gm, dyn.lr_sigma * G, dyn.lr_phi * gp))

    return np.sort(np.linalg.eigvals(jacobian(drift, c.pack(state))).real)


def map_rates(layout, p, dyn, state):
    """Eigenvalues of I - d(step)/dx: the run's own step map, linearised by a dense central difference."""
    c = Coords(state)

    def f(x):
        st = c.unpack(x)
        return c.pack(step(layout, p, dyn, st, evaluate(layout, p, st))[0])

    x0 = c.pack(state)
    r = np.linalg.eigvals(np.eye(x0.size) - jacobian(f, x0))
    assert np.abs(r.imag).max() < 1e-6  # at a fixed point J is similar to a symmetric matrix
    return np.sort(r.real)


def fixed_point(layout, p, dyn, state, warm=1000):
    """Descend (line search) and polish with damped Newton on x - step(x) until the step is below 1e-12."""
    ls = DynamicsParams(**{**dyn.model_dump(), "line_search": {"enabled": True}})
    ev = evaluate(layout, p, state)
    for _ in range(warm):
        state, ev, _ = step(layout, p, ls, state, ev)
    c = Coords(state)

    def F(x):
        st = c.unpack(x)
        return x - c.pack(step(layout, p, dyn, st, evaluate(layout, p, st))[0])

    x = c.pack(state)
    for _ in range(12):
        r = F(x)
        if np.linalg.norm(r) < 1e-12:
            break
        dx = np.linalg.lstsq(jacobian(F, x), r, rcond=1e-9)[0]
        t = 1.0
        while t > 1e-3:
            try:
                if np.linalg.norm(F(x - t * dx)) < np.linalg.norm(r):
                    break
            except gv.DivergenceError:
                pass
            t *= 0.5
        x = x - t * dx
    assert np.linalg.norm(F(x)) < 1e-10
    return c.unpack(x)


def physical(df):
    return df.rate[~df.gauge].to_numpy()


# --- tests -----------------------------------------------------------------------------------------------------
def test_frobenius_packing_is_orthonormal(rng):
    a, b = factories.random_spd(rng, 2, 3)
    assert sym_pack(a) @ sym_pack(b) == pytest.approx(np.trace(a @ b), rel=1e-14)
    assert np.allclose(sym_unpack(sym_pack(a), 3), a, rtol=1e-15, atol=0)


def test_gauge_tangent_is_the_derivative_of_right_rotation(rng):
    from scipy.spatial.transform import Rotation

    phi = rng.normal(size=(4, 3)) * 0.8
    assert np.linalg.norm(phi, axis=1).max() < np.pi  # scipy's rotation vectors are wrapped; phi never is
    xi, t = rng.normal(size=3), 1e-6
    moved = [Rotation.from_rotvec(p) * Rotation.from_rotvec(s * t * xi) for p in phi for s in (1, -1)]
    d = np.array([(a.as_rotvec() - b.as_rotvec()) / (2 * t) for a, b in zip(moved[::2], moved[1::2])])
    assert np.allclose(d, right_jacobian_inverse(phi) @ xi, atol=1e-7)


@pytest.mark.parametrize("smooth", [False, True])
def test_gauge_directions(smooth):
    """Without curvature and smoothness, 3 orthonormal directions per occupied site (each in the span of its
    site's rows' J_r^-1); with smoothness only where the frames are constant along edges (here per agent), and
    then one rotation per linked set of sites (the whole grid: 3). The global rotation lies in their span."""
    from gauge_vfe.agents.analysis.spectrum import _Map, gauge_directions

    layout, state = factories.random_system(height=4, width=4, n_agents=3, seed=2)
    p = factories.params(**({} if smooth else dict(lambda_curv=0.0, lambda_smooth=0.0)))
    dyn = DynamicsParams(**LR)
    Q, Qg, info = gauge_directions(_Map(layout, p, dyn, state))
    assert not info.exact if smooth else info.exact and info.dim == 3 * 16
    if smooth:  # the frames vary along edges: nothing is projected; constant per agent they do not
        phi = np.repeat(np.random.default_rng(0).normal(size=(3, 3)), np.diff(layout.offset), axis=0)
        Q, Qg, info = gauge_directions(_Map(layout, p, dyn, state.replace(phi=phi)))
        assert info.exact and info.dim == 3
    Qd = Q.toarray()
    assert np.allclose(Qd.T @ Qd, np.eye(info.dim), atol=1e-14)
    assert np.allclose(Qd @ (Qd.T @ Qg), Qg, atol=1e-14)


@pytest.mark.parametrize("method", ["gradient", "natural"])
@pytest.mark.parametrize("boundary,size", [("open", 2), ("periodic", 3)])
def test_rates_match_a_dense_finite_difference_hessian(method, boundary, size):
    """Every term and field on (observations, curvature, smoothness), 2 agents, spins [1]: the k slowest rates of
    the Lanczos estimator agree with a dense P H to 1e-6 relative (no gauge here: the frames vary along edges)."""
    layout, state = factories.random_system(boundary=boundary, height=size, width=size, n_agents=2, seed=1,
                                            phi_scale=0.3)
    p = factories.params()
    dyn = DynamicsParams(method=method, **LR)
    ls = DynamicsParams(method=method, line_search={"enabled": True}, **LR)
    ev = evaluate(layout, p, state)
    for _ in range(300):  # towards a minimum, so that the slow modes are positive; no fixed point is needed
        state, ev, _ = step(layout, p, ls, state, ev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)
        df = spectrum(layout, p, dyn, state, k=6, method="lanczos")
    assert not df.gauge.any() and not df.attrs["gauge"]["exact"]
    ref = dense_PH_rates(layout, p, dyn, state)
    assert np.allclose(physical(df), ref[:6], rtol=1e-6, atol=0)
    shares = df[["share_mu", "share_sigma", "share_phi"]].sum(axis=1)
    assert np.allclose(shares, 1) and np.allclose([sum(x) for x in df.participation], 1)


@pytest.mark.parametrize("method", ["gradient", "natural"])
def test_linearisation_is_the_run_map_at_a_fixed_point(method):
    """At a fixed point (curvature and smoothness off: each site's frames are a gauge orbit), the spectrum is the
    run's own step map linearised: the eigenvalues of I - d step/dx, its 3 x (sites) gauge zeros aside."""
    layout, state = factories.random_system(height=2, width=2, n_agents=2, seed=1)
    p = factories.params(lambda_curv=0.0, lambda_smooth=0.0)
    dyn = DynamicsParams(method=method, **LR)
    state = fixed_point(layout, p, dyn, state)
    df = spectrum(layout, p, dyn, state, k=8, method="lanczos")
    g = df.attrs["gauge"]
    assert g["exact"] and g["dim"] == 3 * 4
    ref = map_rates(layout, p, dyn, state)
    assert np.abs(ref[:g["dim"]]).max() < 1e-8  # the map's gauge zeros
    assert np.allclose(physical(df), ref[g["dim"]:g["dim"] + 8], rtol=1e-6, atol=0)
    assert df.attrs["fixed_point"]["ratio"] < 1e-3 and not df.attrs["fixed_point"]["moving"]
    dense = spectrum(layout, p, dyn, state, k=8, method="dense")
    assert np.allclose(physical(dense), physical(df), rtol=1e-7, atol=0)


def test_gauge_modes_of_free_frames():
    """One site, 3 agents, every field free, anisotropic beliefs and observations: exactly the 3 global frame
    rotations are gauge (rates ~0 within the difference error), they move phi only, the energy is flat along
    them to second order, and every physical mode is orthogonal to them."""
    layout, state = factories.random_system(height=1, width=1, n_agents=3, seed=5)
    p = factories.params()
    dyn = DynamicsParams(method="natural", **LR)
    state = fixed_point(layout, p, dyn, state, warm=300)
    df = spectrum(layout, p, dyn, state, k=10, method="lanczos")
    assert df.gauge.sum() == 3 and df.attrs["gauge"]["dim"] == 3
    gauge_rates, phys = df.rate[df.gauge].to_numpy(), physical(df)
    assert np.abs(gauge_rates).max() < 1e-8 * phys.max()
    assert phys.min() > 1e3 * np.abs(gauge_rates).max()
    assert np.allclose(df.share_phi[df.gauge], 1)
    V = df.attrs["modes"].vectors
    assert np.abs(V[:, df.gauge.to_numpy()].T @ V[:, ~df.gauge.to_numpy()]).max() < 1e-10
    # the directions are a symmetry: E changes by rounding only along a finite global right rotation
    from scipy.spatial.transform import Rotation

    g = Rotation.from_rotvec([0.3, -0.2, 0.5])
    turned = np.array([(Rotation.from_rotvec(v) * g).as_rotvec() for v in state.phi])
    e0 = evaluate(layout, p, state, want_grad=False).total
    e1 = evaluate(layout, p, state.replace(phi=turned), want_grad=False).total
    assert e1 == pytest.approx(e0, rel=1e-12)
    assert df.attrs["gauge"]["gradient"] < 1e-9


def consensus_config(N, rho, s=0.8, alpha=0.3, lam=1.2, lr=0.02, m=(0.4, -0.2, 0.1), form="weighted"):
    """docs/model.md#separation: N agents on one site, one frame, Sigma = s I frozen, frames frozen, no
    observations, every mean at the prior (exact consensus, a fixed point)."""
    return {"grid": {"height": 1, "width": 1}, "fiber": {"spins": [1]},
            "agents": {"count": N, "support": {"shape": "whole"},
                       "init": {"mu": {"kind": "constant", "value": list(m)}, "sigma": {"kind": "constant", "value": s},
                                "phi": {"kind": "constant", "value": [0.0, 0.0, 0.0]}}},
            "priors": {"mu": {"kind": "constant", "value": list(m)}, "sigma": {"kind": "constant", "value": s}},
            "observations": {"kind": "none"},
            "energy": {"alpha": alpha, "gamma": 0.0, "lambda_align": lam, "kappa": 1.0, "form": form},
            "dynamics": {"lr_mu": lr, "lr_sigma": 0.0, "lr_phi": 0.0},
            "hierarchy": {"enabled": rho > 0, "every": 5, "rho": rho, "max_scale": 2}}


@pytest.mark.parametrize("N", [2, 3, 4])
@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_closed_form_linear_modes(N, rho):
    """Relative rate lr (alpha + 2 N lambda_align / (N - 1)) / s (multiplicity K (N - 1)), collective lr alpha / s
    (multiplicity K), to 1e-6 relative. The hierarchy coupling (rho > 0, attached to the Simulation) replaces the
    prior only at its refresh steps: between them the per-step map, hence its spectrum, is the rho = 0 one, which
    is what is checked; the collective mode's refresh-to-refresh factor is in docs/model.md#separation."""
    s, alpha, lam, lr, K = 0.8, 0.3, 1.2, 0.02, 3
    sim = gv.Simulation.from_config(consensus_config(N, rho))
    assert len(sim.updaters) == (rho > 0)
    df = gv.spectrum(sim, k=K * N, groups=[list(range(N))], method="dense")
    collective, relative = lr * alpha / s, lr * (alpha + 2 * N * lam / (N - 1)) / s
    expect = np.array([collective] * K + [relative] * (K * (N - 1)))
    assert np.allclose(df.rate.to_numpy(), expect, rtol=1e-6, atol=0)
    assert np.allclose(df.tau_steps, -1 / np.log(1 - expect), rtol=1e-6)
    # the collective modes move the members together, the relative ones not at all
    assert np.allclose(df.collective_0[:K], 1) and np.allclose(df.collective_0[K:], 0, atol=1e-9)
    assert np.allclose(df.share_mu, 1) and not df.gauge.any()
    lanczos = gv.spectrum(sim, k=K + 1, method="lanczos", bits_per_step=0.5)
    assert np.allclose(lanczos.rate, expect[:K + 1], rtol=1e-6, atol=0)
    assert np.allclose(lanczos.tau_bits, 0.5 * lanczos.tau_steps)


@pytest.mark.parametrize("N", [2, 3, 4])
def test_free_frames_at_isotropic_consensus(N):
    """The separation state with free frames: 3 gauge rows, and N - 1 more zero modes, the members' frames turning
    about the common mean's axis (isotropic Sigma: flat at this state, no symmetry of E), which count as zero
    modes and not as a saddle; the mu rates are unchanged."""
    cfg = consensus_config(N, 0.0)
    cfg["dynamics"]["lr_phi"] = 0.05
    sim = gv.Simulation.from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpectrumWarning)
        df = gv.spectrum(sim, k=4 * N)
    assert df.gauge.sum() == 3 and np.abs(df.rate[df.gauge]).max() < 1e-10
    rates = physical(df)
    assert np.abs(rates[:N - 1]).max() < 1e-10 and rates[N - 1] > 1e-4
    assert df.attrs["fixed_point"]["zero_modes"] == N - 1
    lr, alpha, s = 0.02, 0.3, 0.8
    assert np.isclose(rates, lr * alpha / s, rtol=1e-6).sum() == 3


def test_not_at_a_fixed_point_warns():
    cfg = consensus_config(3, 0.0)
    for scale in (0.02, 0.5):  # near consensus: moving on the slowest modes; far: a mode of negative rate
        cfg["agents"]["init"]["mu"] = {"kind": "random", "per": "agent", "value": [0.4, -0.2, 0.1], "scale": scale}
        sim = gv.Simulation.from_config(cfg)
        with pytest.warns(SpectrumWarning, match="not at a fixed point"):
            df = gv.spectrum(sim, k=3)
        fp = df.attrs["fixed_point"]
        assert fp["moving"] and (fp["ratio"] > 1 if scale < 0.1 else df.rate.min() < 0)


def test_cli_spectrum(tmp_path):
    out = tmp_path / "c.h5"
    cfg = consensus_config(3, 0.0)
    cfg["output"] = {"every": 5, "dtype": "float64"}
    gv.run(cfg, steps=10, output=out, progress=False).close()
    r = CliRunner().invoke(main, ["spectrum", str(out), "-k", "4"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "step 10" in r.stdout and "rate" in r.stdout and "fixed point" in r.stdout
    r = CliRunner().invoke(main, ["spectrum", str(out), "--step", "5", "-k", "4", "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["step"] == 5 and len(info["modes"]) == 4
    assert info["modes"][0]["rate"] == pytest.approx(0.02 * 0.3 / 0.8, rel=1e-6)
    for args, what in ((["--step", "7"], "step 7 was not logged"), ([], "no such file")):
        target = str(out) if args else str(tmp_path / "missing.h5")
        r = CliRunner().invoke(main, ["spectrum", target, *args], catch_exceptions=False)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and what in r.output, r.output


def test_trajectory_source(tmp_path):
    """A run file's logged frame: the constants in force there (the coupling's prior at a refresh step), the
    stored analysis's meta-agent as the default group, tau_bits at the noisy run's clock rate; its checkpoint."""
    cfg = consensus_config(3, 0.5)
    cfg["agents"]["init"]["mu"] = {"kind": "random", "per": "agent", "value": [0.4, -0.2, 0.1], "scale": 0.05}
    cfg["dynamics"]["temperature"] = {"mu": 0.001}
    cfg["output"] = {"every": 5}
    cfg["analysis"] = {"enabled": True, "meta_agents": {"eps_belief": 0.05, "min_overlap": 1, "max_scale": 2}}
    path = tmp_path / "t.h5"
    with gv.run(cfg, steps=200, output=path, progress=False) as traj:
        steps, bits = traj.info_bits()
        rate = bits[(steps > 0) & (steps <= 195)].sum(axis=0).mean() / 195
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpectrumWarning)  # a thermal sample is no fixed point
        df = gv.spectrum(path, step=195, k=4)
        ck = gv.spectrum(path, checkpoint=True, k=4)
    assert df.attrs["step"] == 195 and df.attrs["groups"] == [[0, 1, 2]] and df.attrs["notes"] == []
    assert np.allclose(df.collective_0[:3], 1) and df.collective_0[3] < 1e-9
    assert np.allclose(df.rate[:3], 0.02 * 0.3 / 0.8, rtol=1e-6)
    assert np.allclose(df.tau_bits, rate * df.tau_steps, rtol=1e-12) and rate > 0
    assert ck.attrs["step"] == 200
    sim = gv.Simulation.from_config(consensus_config(2, 0.0))
    with pytest.raises(ValueError, match="current state only"):
        gv.spectrum(sim, step=5)
    with pytest.raises(TypeError, match="not dict"):
        gv.spectrum({})
