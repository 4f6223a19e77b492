"""Meta-agents: consensus under transport, components, invariances, tracking, coarse-graining, time scales."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.analysis.measures import frame_matrices
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import build_layout
from gauge_vfe.agents.analysis.timescales import autocorrelation_time
from gauge_vfe.agents.analysis.meta_agents import (ConsensusParams, Tracker, base_members, coarse_grain, detect,
                         hierarchy, pair_divergences)
from gauge_vfe.agents.model.state import State

from factories import random_spd


def _rho(fiber, phi):
    return fiber.rho(phi)


def two_agents(spins=(1,), seed=0, perturb=0.0):
    """Agents 0 and 1 overlap; agent 1's belief is agent 0's transported: q_1 = Omega_10 q_0 on the overlap."""
    g = Grid(8, 10)
    chis = [supports.rectangle(g, (0, 0), (8, 6)), supports.rectangle(g, (0, 3), (8, 7))]
    fiber = make_fiber(spins)
    K = fiber.K
    rng = np.random.default_rng(seed)
    S = sum(int(c.sum()) for c in chis)
    layout = build_layout(g, fiber, chis, np.zeros((S, K)), np.tile(np.eye(K), (S, 1, 1)))
    phi = rng.normal(size=(S, 3))
    mu = rng.normal(size=(S, K))
    sigma = random_spd(rng, S, K)
    st = State.from_arrays(mu, sigma, phi)
    R = frame_matrices(layout, st)
    rows0 = np.arange(layout.offset[0], layout.offset[1])
    rows1 = np.arange(layout.offset[1], layout.offset[2])
    site_to_row0 = dict(zip(layout.index[rows0], rows0))
    for r in rows1:
        r0 = site_to_row0.get(layout.index[r])
        if r0 is None:
            continue
        omega = R[r] @ R[r0].T  # Omega_10
        mu[r] = omega @ mu[r0] + perturb * rng.normal(size=K)
        sigma[r] = omega @ sigma[r0] @ omega.T
    return layout, State.from_arrays(mu, sigma, phi)


@pytest.mark.parametrize("spins", [(1,), (2,), (1, 2)])
def test_gauge_equivalent_beliefs_form_one_meta_agent(spins):
    layout, st = two_agents(spins)
    pairs = pair_divergences(layout, st)
    assert pairs.n_sites[0] == 8 * 3 and pairs.belief[0] < 1e-12
    comps, dead, _ = detect(layout, st, ConsensusParams(eps_belief=0.1, min_overlap=3))
    assert [list(c) for c in comps] == [[0, 1]]


def test_perturbed_past_the_threshold_they_do_not():
    layout, st = two_agents(perturb=0.5)
    pairs = pair_divergences(layout, st)
    assert pairs.belief[0] > 0.1
    comps, _, _ = detect(layout, st, ConsensusParams(eps_belief=0.1, min_overlap=3))
    assert comps == []
    comps, _, _ = detect(layout, st, ConsensusParams(eps_belief=10 * pairs.belief[0], min_overlap=3))
    assert len(comps) == 1
    comps, _, _ = detect(layout, st, ConsensusParams(eps_belief=10 * pairs.belief[0], min_overlap=25))
    assert comps == []  # too small an overlap


def clusters(seed=0, spread=0.02):
    """Six agents in two clusters of three; within a cluster beliefs nearly agree, between clusters they do not."""
    g = Grid(10, 20)
    centers = [(5, 4), (4, 6), (6, 5), (5, 14), (4, 15), (6, 13)]
    chis = [supports.disk(g, c, 4) for c in centers]
    # bridge agent overlapping both clusters' regions weakly
    fiber = make_fiber([1])
    S = sum(int(c.sum()) for c in chis)
    layout = build_layout(g, fiber, chis, np.zeros((S, 3)), np.tile(np.eye(3), (S, 1, 1)))
    rng = np.random.default_rng(seed)
    mu = np.empty((S, 3))
    for i in range(6):
        base = np.array([1.0, 0, 0]) if i < 3 else np.array([0, 0, 3.0])
        rows = layout.rows_of(i)
        mu[rows] = base + spread * rng.normal(size=(rows.stop - rows.start, 3))
    return layout, State.from_arrays(mu, np.tile(np.eye(3), (S, 1, 1)), np.zeros((S, 3)))


def test_relabelling_and_gauge_rotation_leave_labels_unchanged():
    layout, st = clusters()
    params = ConsensusParams(eps_belief=0.05, min_overlap=3)
    comps, _, _ = detect(layout, st, params)
    assert [list(c) for c in comps] == [[0, 1, 2], [3, 4, 5]]
    perm = np.array([4, 0, 5, 2, 3, 1])  # new agent k = old agent perm[k]
    rows = np.concatenate([np.arange(layout.offset[i], layout.offset[i + 1]) for i in perm])
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in perm]
    l2 = build_layout(layout.grid, layout.fiber, chis, layout.prior_mu[rows], layout.prior_sigma[rows])
    s2 = State.from_arrays(st.mu[rows], st.sigma[rows], st.phi[rows])
    comps2, _, _ = detect(l2, s2, params)
    assert sorted(sorted(perm[c].tolist()) for c in comps2) == [[0, 1, 2], [3, 4, 5]]
    # global gauge rotation: phi -> g phi, mu -> _rho(g) mu, Sigma -> _rho(g) Sigma _rho(g)^T (priors too)
    rotvec = np.array([0.7, -0.4, 1.1])
    gm = _rho(layout.fiber, rotvec)
    r1 = Rotation.from_rotvec(rotvec).as_matrix()
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in range(6)]
    l3 = build_layout(layout.grid, layout.fiber, chis, layout.prior_mu @ gm.T, gm @ layout.prior_sigma @ gm.T)
    s3 = State.from_arrays(st.mu @ gm.T, gm @ st.sigma @ gm.T, (st.phi + 0.3) @ r1.T)
    s_shift = State.from_arrays(st.mu, st.sigma, st.phi + 0.3)
    comps3, _, pairs3 = detect(l3, s3, params)
    _, _, pairs_shift = detect(layout, s_shift, params)
    np.testing.assert_allclose(pairs3.belief, pairs_shift.belief, atol=1e-10)
    assert [list(c) for c in comps3] == [list(c) for c in detect(layout, s_shift, params)[0]]


def test_epistemic_death_when_priors_agree_too():
    layout, st = clusters()
    comps, dead, _ = detect(layout, st, ConsensusParams(eps_belief=0.05, min_overlap=3))
    assert dead == [True, True]  # all priors are equal here
    prior_mu = layout.prior_mu.copy()
    prior_mu[layout.rows_of(0)] += 5.0
    chis = [layout.to_grid(layout.chi, i, fill=0.0) for i in range(6)]
    l2 = build_layout(layout.grid, layout.fiber, chis, prior_mu, layout.prior_sigma)
    comps, dead, _ = detect(l2, st, ConsensusParams(eps_belief=0.05, min_overlap=3))
    assert dead == [False, True]


def test_coarse_graining_and_a_second_scale():
    layout, st = clusters()
    params = ConsensusParams(eps_belief=0.05, min_overlap=3)
    comps, _, _ = detect(layout, st, params)
    lay2, st2 = coarse_grain(layout, st, comps)
    assert lay2.n_agents == 2
    union0 = np.isfinite(layout.to_grid(layout.chi, 0)) | np.isfinite(layout.to_grid(layout.chi, 1)) | \
        np.isfinite(layout.to_grid(layout.chi, 2))
    assert np.array_equal(np.isfinite(lay2.to_grid(lay2.chi, 0)), union0)
    # fused means lie between the members' (all near [1, 0, 0] for cluster 0)
    assert np.allclose(st2.mu[lay2.rows_of(0)], [1.0, 0, 0], atol=0.1)
    # the two clusters do not overlap: no third scale; make them overlap and agree, and one appears
    levels = hierarchy(layout, st, params)
    assert len(levels) == 2 and levels[1].components == []


def _two_clusters_with_arms(shift_b=0.0):
    """Two clusters of three agents on a 12x20 grid that reach scale 3.

    Each cluster's agents share a large core (8 columns x 12 rows), so each cluster is one scale-2 meta-agent.
    Each agent also has an arm reaching towards the other cluster in its own band of rows, so an agent of A
    and an agent of B overlap on at most 4 x 2 = 8 sites (below min_overlap = 10: they never pair up
    directly), while the two clusters' unions overlap on 12 x 2 = 24 sites: the scale-2 meta-agents pair up
    at scale 2 and form one scale-3 meta-agent when they agree.
    """
    g = Grid(12, 20)
    chis = []
    for band in range(3):  # cluster A: core columns 0-7, arm columns 8-10
        chis.append(np.maximum(supports.rectangle(g, (0, 0), (12, 8)), supports.rectangle(g, (4 * band, 8), (4, 3))))
    for band in range(3):  # cluster B: core columns 12-19, arm columns 9-11
        chis.append(np.maximum(supports.rectangle(g, (0, 12), (12, 8)), supports.rectangle(g, (4 * band, 9), (4, 3))))
    fiber = make_fiber([1])
    S = sum(int(c.sum()) for c in chis)
    lay = build_layout(g, fiber, chis, np.zeros((S, 3)), np.tile(np.eye(3), (S, 1, 1)))
    rng = np.random.default_rng(3)
    mu = np.empty((S, 3))
    for i in range(6):
        rows = lay.rows_of(i)
        target = [1.0, shift_b if i >= 3 else 0.0, 0.0]
        mu[rows] = target + 0.01 * rng.normal(size=(rows.stop - rows.start, 3))
    return lay, State.from_arrays(mu, np.tile(np.eye(3), (S, 1, 1)), np.zeros((S, 3)))


def test_overlapping_agreeing_clusters_reach_scale_three():
    lay, st = _two_clusters_with_arms()
    pairs = pair_divergences(lay, st)
    cross = (pairs.i < 3) & (pairs.j >= 3)
    assert cross.any() and pairs.n_sites[cross].max() == 8  # agents of A and B touch, but too little to pair
    params = ConsensusParams(eps_belief=0.05, min_overlap=10)
    levels = hierarchy(lay, st, params)
    assert [sorted(c.tolist()) for c in levels[0].components] == [[0, 1, 2], [3, 4, 5]]
    assert len(levels) >= 2 and [sorted(c.tolist()) for c in levels[1].components] == [[0, 1]]
    assert levels[1].pairs.n_sites.tolist() == [24]  # the clusters' unions share two full columns
    members = base_members(levels)
    assert sorted(members[1][0].tolist()) == [0, 1, 2, 3, 4, 5]
    # controls: clusters that disagree, or overlap too little, stop at scale 2
    for lay_c, st_c, p in ((*_two_clusters_with_arms(shift_b=1.0), params),
                           (lay, st, ConsensusParams(eps_belief=0.05, min_overlap=30))):
        levels = hierarchy(lay_c, st_c, p)
        assert len(levels[0].components) == 2
        assert all(not lv.components for lv in levels[1:])


def test_tracking_keeps_ids_and_records_merges():
    t = Tracker()
    a = t.update(0, 2, [np.array([0, 1]), np.array([2, 3])])
    b = t.update(10, 2, [np.array([0, 1]), np.array([2, 3])])
    assert a == b == [0, 1]
    c = t.update(20, 2, [np.array([0, 1, 2, 3])])
    assert len(c) == 1 and c[0] in (0, 1)
    kinds = [(e[1], e[0]) for e in t.events]
    assert ("merge", 20) in kinds
    d = t.update(30, 2, [np.array([0, 1]), np.array([2, 3])])
    assert c[0] in d and ("split", 30) in [(e[1], e[0]) for e in t.events]
    t.update(40, 2, [])
    assert [e[1] for e in t.events[-2:]] == ["death", "death"]


def test_autocorrelation_time():
    rng = np.random.default_rng(0)
    white = rng.normal(size=20000)
    assert autocorrelation_time(white) == pytest.approx(1.0, abs=0.1)
    # AR(1) with coefficient a: tau = (1 + a) / (1 - a)
    from scipy.signal import lfilter

    a = 0.9
    x = lfilter([1.0], [1.0, -a], rng.normal(size=200000))
    assert autocorrelation_time(x) == pytest.approx((1 + a) / (1 - a), rel=0.15)
    assert np.isnan(autocorrelation_time(np.ones(3)))
    assert np.isnan(autocorrelation_time(np.array([0.0, 1, 0, 1, 0, 1, 0, 1])))  # no negative times
