"""Gauge-invariant series, time in bits per scale, meta-agent lifetimes and the (replica, frame, feature) layout
(docs/model.md#invariant-series)."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gauge_vfe.agents.analysis.gauge_series import (as_replicas, gaussian_kl, kaplan_meier, km_median,
                                                    lifetime_survival, lifetime_table)
from gauge_vfe.agents.analysis.measures import frame_matrices
from gauge_vfe.agents.analysis.meta_agents import hierarchy
from gauge_vfe.agents.analysis.pipeline import LIFETIME_DTYPE, TIMESCALE_KINDS, analyze_frames
from gauge_vfe.agents.runner.simulation import Simulation
from factories import step_and_log

REL = 1e-9


def noisy_frames(seed: int = 5) -> Simulation:
    """Four agents on the whole 3x3 grid, free frames with frame noise (lr_phi > 0, temperature on phi and mu):
    they stay in consensus (one meta-agent) while their frames wander together."""
    prior = [0.4, -0.1, 0.2]
    return Simulation.from_config({
        "seed": seed, "grid": {"height": 3, "width": 3}, "fiber": {"spins": [1]},
        "agents": {"count": 4, "support": {"shape": "whole"}, "init": {"mu": {"value": prior}}},
        "priors": {"mu": {"value": prior}, "sigma": {"value": 1.0}},
        "energy": {"alpha": 1.0, "lambda_align": 1.0},
        "dynamics": {"lr_mu": 0.03, "lr_sigma": 0.0, "lr_phi": 0.1, "temperature": {"mu": 0.005, "phi": 0.0005}},
        "analysis": {"meta_agents": {"eps_belief": 0.5, "min_overlap": 1}, "holonomy": {"automatic": False}},
        "output": {"every": 2}}, keep_history=False)


def _sign(layout, state) -> float:
    """+1 or -1: the sign s with rho(exp phi) = Rotation.from_rotvec(s phi) for spin 1 (the generators' convention)."""
    R = frame_matrices(layout, state)
    for s in (1.0, -1.0):
        if np.allclose(R, Rotation.from_rotvec(s * state.phi).as_matrix(), atol=1e-12):
            return s
    raise AssertionError("spin-1 frames are not rotations of phi")


def gauge_transform(layout, state, rng):
    """A random global gauge transformation of one frame: ``phi_i -> log(exp(phi_i) exp(xi))`` on every row,
    beliefs (own frames) untouched; checked to give ``R_i -> R_i rho(exp xi)``."""
    s = _sign(layout, state)
    xi = rng.normal(size=3) * 1.5
    phi = s * (Rotation.from_rotvec(s * state.phi) * Rotation.from_rotvec(s * xi)).as_rotvec()
    out = dataclasses.replace(state, phi=np.ascontiguousarray(phi))
    g = Rotation.from_rotvec(s * xi).as_matrix()
    np.testing.assert_allclose(frame_matrices(layout, out), frame_matrices(layout, state) @ g, atol=1e-12)
    return out


def same(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=REL, atol=0.0) | (a == b)
    return bool((both_nan | close).all())


@pytest.fixture(scope="module")
def noisy_run():
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        sim = noisy_frames()
        steps, states, bits = step_and_log(sim, 1600, 2)
    finally:
        numba.set_num_threads(old)
    rng = np.random.default_rng(7)
    moved = [gauge_transform(sim.layout, st, rng) for st in states]  # a different g in every frame
    a = analyze_frames(sim.layout, steps, states, sim.config.analysis, info_bits=bits)
    b = analyze_frames(sim.layout, steps, moved, sim.config.analysis, info_bits=bits)
    return sim, steps, states, bits, a, b


FLOAT_COLUMNS = ("tau_frames", "tau_frames_err", "tau_blocking_frames", "tau_steps", "tau_steps_err",
                 "bits_per_step", "tau_bits", "tau_bits_err")


def test_every_reported_time_and_separation_is_gauge_invariant_and_the_common_frame_one_is_not(noisy_run):
    sim, steps, states, bits, a, b = noisy_run
    assert not np.array_equal(states[0].phi, states[-1].phi)  # the frames are free and move
    assert a.n_scales >= 2 and a.series_detail.size > 0
    # frames moved: only gauge-invariant rows, each naming its series
    assert a.series_detail["gauge_invariant"].all()
    assert set(a.series_detail["series"]) == {"own-frame prior offset", "transported offset"}
    assert np.array_equal(a.series_detail[["kind", "id", "member", "n_frames", "window"]],
                          b.series_detail[["kind", "id", "member", "n_frames", "window"]])
    for col in FLOAT_COLUMNS:
        assert same(a.series_detail[col], b.series_detail[col]), col
    # the frames wander (over a radian here) yet every invariant series has a finite time
    assert np.abs(states[-1].phi - states[0].phi).max() > 0.5
    assert a.series_detail["resolved"].all()
    sa, sb = a.invariant_separation(), b.invariant_separation()
    assert np.isfinite(sa["tau_collective_steps"]) and np.isfinite(sa["tau_agent_steps"])
    for key in sa:
        assert same(sa[key], sb[key]), key
    # time in bits per scale and lifetimes: unchanged too
    assert a.bits_by_meta.size and np.isfinite(a.bits_by_meta["ratio"]).any()
    for col in ("meta_bits_per_step", "member_bits_per_step", "ratio"):
        assert same(a.bits_by_meta[col], b.bits_by_meta[col]), col
    assert a.lifetime_stats.size and np.array_equal(a.lifetime_stats, b.lifetime_stats)
    # the old common-frame series (timescale_detail, stored by the run) changes: a gauge artefact
    old_a, old_b = a.timescale_detail, b.timescale_detail
    agents = old_a["kind"] == TIMESCALE_KINDS["agent"]
    assert not same(old_a["tau_frames"][agents], old_b["tau_frames"][agents])
    for x, y in ((a.invariant_series["agent"], b.invariant_series["agent"]),):
        np.testing.assert_allclose(x, y, rtol=REL, atol=1e-13)


def test_the_common_frame_series_is_kept_only_where_frames_are_fixed(one_thread):
    prior = [0.3, -0.2, 0.5]
    sim = Simulation.from_config({
        "seed": 3, "grid": {"height": 3, "width": 3}, "fiber": {"spins": [1]},
        "agents": {"count": 2, "support": {"shape": "whole"}, "init": {"mu": {"value": prior}}},
        "priors": {"mu": {"value": prior}},
        "energy": {"alpha": 1.0, "lambda_align": 1.0},
        "dynamics": {"lr_mu": 0.05, "lr_sigma": 0.0, "lr_phi": 0.0, "temperature": {"mu": 0.05}},
        "analysis": {"meta_agents": {"eps_belief": 0.5}, "holonomy": {"automatic": False}},
        "output": {"every": 2}}, keep_history=False)
    steps, states, bits = step_and_log(sim, 400, 2)
    r = analyze_frames(sim.layout, steps, states, sim.config.analysis, info_bits=bits)
    d = r.series_detail
    common = d[~d["gauge_invariant"]]
    assert common.size == r.timescale_detail.size and set(common["series"]) == {"common frame"}
    assert same(common["tau_frames"], r.timescale_detail["tau_frames"])
    # with one shared fixed frame every invariant series is its common-frame one up to a constant and a sign
    # (agent and collective: minus the prior; relative: the negative): the same times, row for row
    inv = d[d["gauge_invariant"]]
    assert np.array_equal(inv[["kind", "id", "member"]], common[["kind", "id", "member"]])
    assert set(inv["kind"]) == set(TIMESCALE_KINDS.values())
    np.testing.assert_allclose(inv["tau_frames"], common["tau_frames"], rtol=1e-9)
    assert np.isfinite(inv["tau_frames"]).any()  # the relative modes (200 frames: too short for the others)
    x = r.series_array("agent")
    assert x.shape == (1, len(steps), 2 * 3)


# --- lifetimes ---------------------------------------------------------------------------------------------------

def test_kaplan_meier_against_a_hand_computed_example_with_censoring():
    # durations 2 3 3+ 5 6+ 8 (+: censored). At 2: 6 at risk, 1 event: 5/6. At 3: 5 at risk (the censored 3 is
    # still at risk at 3), 1 event: 5/6 * 4/5 = 2/3. At 5: 3 at risk: 2/3 * 2/3 = 4/9. At 8: 1 at risk: 0.
    km = kaplan_meier([2, 3, 3, 5, 6, 8], [1, 1, 0, 1, 0, 1])
    assert km["time"].tolist() == [2, 3, 5, 8]
    assert km["at_risk"].tolist() == [6, 5, 3, 1] and km["events"].tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(km["survival"], [5 / 6, 2 / 3, 4 / 9, 0.0], rtol=1e-15)
    assert km_median(km) == 5.0
    assert np.isnan(km_median(kaplan_meier([4, 9, 9], [1, 0, 0])))  # S = 2/3 at most: no median
    # lifetimes of ids: ends at the first frame without the id; alive at the end (-1) censored at the last step
    lifetimes = np.array([(0, 2, 10, 30), (1, 2, 10, -1), (2, 3, 20, 40)], dtype=LIFETIME_DTYPE)
    steps = np.arange(0, 51)
    clock = (steps, np.tile([0.0, 0.5, 0.25, 1.0], (steps.size, 1)))  # 4 agents, constant bits per step
    clock[1][0] = 0.0
    t = lifetime_table(lifetimes, 50, {0: [0, 1], 1: [2], 2: [3]}, clock)
    assert t["steps"].tolist() == [20, 40, 20] and t["observed"].tolist() == [True, False, True]
    np.testing.assert_allclose(t["member_bits"], [20 * 0.25, 40 * 0.25, 20 * 1.0])
    s = lifetime_survival(t, scale=2)
    assert s["time"].tolist() == [20] and s["survival"].tolist() == [0.5]
    assert lifetime_survival(t, unit="bits")["time"].tolist() == [5.0, 20.0]


# --- bits per scale ---------------------------------------------------------------------------------------------

def test_bits_per_scale_against_a_direct_kl_of_the_coarse_grained_beliefs(noisy_run):
    sim, steps, states, bits, a, _ = noisy_run
    scale2 = a.bits_by_meta[a.bits_by_meta["scale"] == 2]
    row = scale2[np.argmax(scale2["n_intervals"])]
    # the meta-agent id's frames, recomputed directly: coarse-grain each frame, the KL of consecutive ones
    total, n_steps, member_bits = 0.0, 0, 0.0
    rec = a.records[a.records["id"] == row["id"]]
    present = {int(s): k for k, s in enumerate(rec["step"])}
    cumulative = np.cumsum(bits[1], axis=0)
    prev = None
    for f, st in enumerate(states):
        if steps[f] not in present:
            prev = None
            continue
        levels = hierarchy(sim.layout, st, sim.config.analysis.meta_agents)
        level = levels[0]
        mems = [m for m in a.meta_agents(f) if m["id"] == row["id"]][0]["members"]
        k = [i for i, c in enumerate(level.components) if sorted(c) == sorted(mems)][0]
        rows = level.layout.rows_of(k)
        cur = (level.layout.chi[rows], level.state.mu[rows], level.state.sigma[rows])
        if prev is not None:
            chi, mu1, s1 = cur
            _, mu0, s0 = prev
            # KL(N1 || N0) = 1/2 (tr(S0^-1 S1) + (m0 - m1)^T S0^-1 (m0 - m1) - K + ln det S0 / det S1)
            kl = 0.0
            assert mu0.shape == mu1.shape  # the whole grid: the same sites in the same order
            for c in range(chi.size):
                inv = np.linalg.inv(s0[c])
                d = mu0[c] - mu1[c]
                kl += chi[c] * 0.5 * (np.trace(inv @ s1[c]) + d @ inv @ d - 3
                                      + np.log(np.linalg.det(s0[c]) / np.linalg.det(s1[c])))
            total += kl / np.log(2)
            n_steps += steps[f] - steps[f - 1]
            member_bits += (cumulative[steps[f]] - cumulative[steps[f - 1]])[mems].mean()
        prev = cur
    assert n_steps == row["steps"] and n_steps > 0
    assert row["meta_bits_per_step"] == pytest.approx(total / n_steps, rel=1e-9)
    assert row["member_bits_per_step"] == pytest.approx(member_bits / n_steps, rel=1e-9)
    assert row["ratio"] == pytest.approx(member_bits / total, rel=1e-9)


def test_gaussian_kl_is_the_closed_form():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 3, 3))
    s1 = A @ A.transpose(0, 2, 1) + np.eye(3)
    s0 = np.eye(3)[None] * 2.0 + 0 * s1
    mu1, mu0 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    want = [0.5 * (np.trace(s1[i]) / 2 + (mu0[i] - mu1[i]) @ (mu0[i] - mu1[i]) / 2 - 3
                   + np.log(8.0 / np.linalg.det(s1[i]))) for i in range(5)]
    np.testing.assert_allclose(gaussian_kl(mu1, s1, mu0, s0), want, rtol=1e-12)


# --- (replica, frame, feature) and deeptime -------------------------------------------------------------------

def test_series_come_as_replica_frame_feature_arrays():
    x = as_replicas(np.arange(6.0), np.arange(6.0) * 2)
    assert x.shape == (2, 6, 1)
    assert as_replicas(np.zeros((4, 2, 3))).shape == (1, 4, 6)
    with pytest.raises(ValueError, match="different shapes"):
        as_replicas(np.zeros(4), np.zeros(5))


def test_deeptime_implied_timescales_match_the_spectrum_on_a_linear_case(one_thread):
    """Two agents sharing a 4x4 grid, one fixed frame, Sigma frozen, mu at T > 0: per site a linear system whose
    collective and relative modes are AR(1) (docs/model.md#separation). Their gauge-invariant agent series from
    4 independent replicas, as (replica, frame, feature), through deeptime's TICA: the implied timescales match
    gv.spectrum's tau_steps of the two physical rates (and the closed form)."""
    deeptime = pytest.importorskip("deeptime")
    import gauge_vfe as gv
    from gauge_vfe.agents.analysis.gauge_series import prior_offsets

    prior = [0.3, -0.2, 0.5]
    alpha, lam, lr, s = 1.0, 1.0, 0.02, 1.0

    def sim(seed):
        return Simulation.from_config({
            "seed": seed, "grid": {"height": 4, "width": 4}, "fiber": {"spins": [1]},
            "agents": {"count": 2, "support": {"shape": "whole"}, "init": {"mu": {"value": prior}}},
            "priors": {"mu": {"value": prior}, "sigma": {"value": s}},
            "energy": {"alpha": alpha, "lambda_align": lam},
            "dynamics": {"lr_mu": lr, "lr_sigma": 0.0, "lr_phi": 0.0, "temperature": {"mu": 0.01}},
            "output": {"every": 1}}, keep_history=False)

    replicas = []
    for seed in range(4):
        sm = sim(seed)
        xs = []
        for _ in range(8000):
            sm.step()
            xs.append(prior_offsets(sm.layout, sm.state))
        replicas.append(np.array(xs))
    x = as_replicas(*replicas)
    assert x.shape == (4, 8000, 6)
    lag = 8
    model = deeptime.decomposition.TICA(lagtime=lag, dim=6).fit(list(x)).fetch_model()
    its = np.sort(np.asarray(model.timescales(lagtime=lag)))[::-1]
    # closed form: a_c = 1 - lr alpha / s (3 components), a_r = 1 - lr (alpha + 4 lam) / s (3), tau = -1/ln a
    a_c, a_r = 1 - lr * alpha / s, 1 - lr * (alpha + 4 * lam) / s
    want_c, want_r = -1 / np.log(a_c), -1 / np.log(a_r)
    df = gv.spectrum(sim(0), k=2 * 16 * 3, method="dense")
    taus = np.sort(df[~df["gauge"]]["tau_steps"].to_numpy())[::-1]
    np.testing.assert_allclose(taus[0], want_c, rtol=1e-6)
    np.testing.assert_allclose(taus[-1], want_r, rtol=1e-6)
    print(f"TICA {its}, spectrum {taus[0]:.2f} / {taus[-1]:.2f}")
    # each estimate within 15 % (the spread of 4 x 8000 steps), the mean of the three within 5 %
    np.testing.assert_allclose(its[:3], taus[0], rtol=0.15)
    np.testing.assert_allclose(its[3:], taus[-1], rtol=0.15)
    np.testing.assert_allclose([its[:3].mean(), its[3:].mean()], [taus[0], taus[-1]], rtol=0.05)
