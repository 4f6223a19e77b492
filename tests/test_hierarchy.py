"""Cross-scale coupling (docs/model.md#hierarchy-coupling): members' priors pulled towards their meta-agent.

Between refreshes the targets are constants and the coupled action is the ordinary action with the coupled prior in
the prior term; its gradient is checked against central finite differences exactly as tests/test_gradients.py
checks every term (same helpers, float64, every field, soft and hard supports, open and periodic, two spin sets).
"""

from __future__ import annotations

import itertools
import textwrap
import warnings
from dataclasses import replace

import numpy as np
import pytest
from conftest import numba_threads

from gauge_vfe import agents
from gauge_vfe.agents.analysis.measures import frame_matrices
from gauge_vfe.agents.analysis.meta_agents import ConsensusParams, hierarchy
from gauge_vfe.agents.model.energy import evaluate
from gauge_vfe.agents.model.hierarchy import HierarchyParams, prior_constants, resume_problem
from gauge_vfe.agents.analysis.coupling import targets
from gauge_vfe.agents.runner.updaters import HierarchyCoupling
from gauge_vfe.agents.model.state import State
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.runner.simulation import EnergyIncreaseWarning, Simulation
from gauge_vfe.agents.setup.config import ConfigError, make_config
from gauge_vfe.agents.setup.scenario import load_scenario

from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import build_layout

from factories import InterruptAt, params, random_spd, random_system
from test_gradients import assert_gradients_match

# every overlapping pair is in consensus: the random systems then have meta-agents to couple to
EVERYONE = ConsensusParams(eps_belief=1e9, min_overlap=1)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Thousands of tiny evaluations (as in test_gradients): one thread avoids a parallel region's wake-up cost."""
    with numba_threads(1):
        yield


def coupled_system(spins, boundary, soft, seed, rho=0.6, max_scale=2):
    """A random layout coupled at one random state (the refresh), and another random state to differentiate at:
    the targets are held fixed between refreshes, so the gradient must not see the refresh state."""
    layout, at_refresh = random_system(spins, boundary, soft, height=3, width=4, seed=seed)
    coupling = HierarchyCoupling(HierarchyParams(enabled=True, rho=rho, max_scale=max_scale), EVERYONE)
    coupled = coupling.apply(layout, at_refresh)
    assert coupling.n_members > 0, "no meta-agent: the check would be of the uncoupled action"
    mu, sigma, _, _ = coupled.coupled_prior
    assert not np.allclose(mu, layout.prior_mu) and not np.allclose(sigma, layout.prior_sigma)
    rng = np.random.default_rng(seed + 100)
    S, K = layout.n_rows, layout.K
    state = State.from_arrays(rng.normal(size=(S, K)), random_spd(rng, S, K), rng.normal(size=(S, 3)) * 0.8)
    return coupled, state


CASES = list(itertools.product([(1,), (1, 2)], ["open", "periodic"], [False, True]))


@pytest.mark.parametrize("spins,boundary,soft", CASES)
@pytest.mark.parametrize("max_scale", [2, 3])
def test_coupled_action_gradient(spins, boundary, soft, max_scale):
    layout, state = coupled_system(spins, boundary, soft, seed=CASES.index((spins, boundary, soft)),
                                   max_scale=max_scale)
    assert_gradients_match(layout, params(), state)


@pytest.mark.parametrize("spins,boundary,soft", CASES)
def test_coupled_prior_term_alone(spins, boundary, soft):
    """The coupled prior alone: exact mu and Sigma gradients, and none in phi (the targets are held fixed)."""
    layout, state = coupled_system(spins, boundary, soft, seed=11 + CASES.index((spins, boundary, soft)))
    p = params(alpha=1.3, gamma=0.0, lambda_align=0.0, lambda_curv=0.0, lambda_smooth=0.0)
    ev = evaluate(layout, p, state)
    assert not ev.grad_phi.any()
    assert_gradients_match(layout, p, state, fields=("mu", "sigma"))
    # and the coupling is really in the term: the configured prior gives another energy
    plain = evaluate(replace(layout, coupled_prior=None), p, state, want_grad=False)
    assert plain.terms["prior"] != ev.terms["prior"]


# --- rho = 1 and rho = 0 ------------------------------------------------------------------------------------------

def test_rho_one_makes_the_prior_the_transported_meta_belief():
    layout, state = random_system((1, 2), "open", True, height=5, width=5, n_agents=4, seed=5)
    # agent 3 believes something else entirely: it is in no meta-agent and must keep its configured prior
    mu = state.mu.copy()
    rows3 = slice(layout.offset[3], layout.offset[4])
    mu[rows3] += 1e3
    state = state.replace(mu=mu)
    consensus = ConsensusParams(eps_belief=1e4, min_overlap=1)
    coupled = HierarchyCoupling(HierarchyParams(enabled=True, rho=1.0), consensus).apply(layout, state)
    levels = hierarchy(layout, state, consensus.model_copy(update={"max_scale": 2}))
    members = np.concatenate(levels[0].components)
    assert 3 not in members and members.size >= 2
    pmu, psig, prec, logdet = coupled.coupled_prior
    R = frame_matrices(layout, state)
    meta, mstate = levels[0].layout, levels[0].state
    RM = frame_matrices(meta, mstate)
    checked = 0
    for a, comp in enumerate(levels[0].components):
        mrows = np.arange(meta.offset[a], meta.offset[a + 1])
        for m in comp:
            for r in range(layout.offset[m], layout.offset[m + 1]):
                u = mrows[meta.index[mrows] == layout.index[r]]
                assert u.size == 1
                u = u[0]
                # compared in the common frame: R_i^T m_eff = R_M^T mu_M, R_i^T S_eff R_i = R_M^T Sigma_M R_M
                np.testing.assert_allclose(R[r].T @ pmu[r], RM[u].T @ mstate.mu[u], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(R[r].T @ psig[r] @ R[r], RM[u].T @ mstate.sigma[u] @ RM[u],
                                           rtol=1e-12, atol=1e-12)
                checked += 1
    assert checked == np.isin(layout.agent, members).sum()
    # the non-member keeps its prior bit for bit, and the kernel's constants are those of the coupled covariance
    assert np.array_equal(pmu[rows3], layout.prior_mu[rows3]) and np.array_equal(psig[rows3], layout.prior_sigma[rows3])
    np.testing.assert_allclose(np.einsum("sij,sjk->sik", prec, psig), np.broadcast_to(np.eye(layout.K), psig.shape),
                               atol=1e-10)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(psig)[1], rtol=1e-12, atol=1e-12)


def two_groups(spins=(1,), boundary="open", seed=0):
    """Four agents on a 3 x 12 strip, min_overlap 7: a-b and c-d overlap on 12 sites (two meta-agents at scale 2),
    every cross pair on at most 6 (none at scale 1), and the two unions on 12, so they merge at scale 3."""
    rng = np.random.default_rng(seed)
    grid = Grid(3, 12, boundary)
    fiber = make_fiber(spins)
    cols = {"a": [0, 1, 2, 3, 4, 5], "b": [0, 1, 2, 3, 6, 7], "c": [6, 7, 8, 9, 10, 11], "d": [4, 5, 8, 9, 10, 11]}
    chis = []
    for c in cols.values():
        chi = np.zeros((3, 12))
        chi[:, c] = 1.0
        chis.append(chi)
    S, K = sum(int(c.sum()) for c in chis), fiber.K
    layout = build_layout(grid, fiber, chis, rng.normal(size=(S, K)), random_spd(rng, S, K))
    state = State.from_arrays(rng.normal(size=(S, K)), random_spd(rng, S, K), rng.normal(size=(S, 3)) * 0.8)
    return layout, state, ConsensusParams(eps_belief=1e9, min_overlap=7)


def test_scale_three_composes_down():
    """max_scale 3: the scale-2 belief a member is pulled towards is itself pulled towards scale 3, so with rho = 1
    every member's target is the scale-3 belief, transported into its frame."""
    layout, state, consensus = two_groups((1, 2))
    mask2, mu2, sig2, lv2 = targets(layout, state, consensus, 2, 1.0)
    mask3, mu3, sig3, lv3 = targets(layout, state, consensus, 3, 1.0)
    assert [len(lv.components) for lv in lv3] == [2, 1]  # the system is what its docstring says
    assert np.array_equal(mask2, mask3) and mask3.all()
    assert not np.allclose(mu2, mu3)  # scale 3 changes the targets
    R = frame_matrices(layout, state)
    top, top_state = lv3[1].layout, lv3[1].state
    R3 = frame_matrices(top, top_state)
    for r in range(layout.n_rows):
        u = np.nonzero(top.index == layout.index[r])[0]
        assert u.size == 1
        u = u[0]
        np.testing.assert_allclose(R[r].T @ mu3[r], R3[u].T @ top_state.mu[u], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(R[r].T @ sig3[r] @ R[r], R3[u].T @ top_state.sigma[u] @ R3[u], rtol=1e-10,
                                   atol=1e-10)


@pytest.mark.parametrize("spins,boundary", [((1,), "open"), ((1, 2), "periodic")])
def test_coupled_action_gradient_through_scale_three(spins, boundary):
    layout, at_refresh, consensus = two_groups(spins, boundary, seed=1)
    coupled = HierarchyCoupling(HierarchyParams(enabled=True, rho=0.6, max_scale=3), consensus).apply(layout,
                                                                                       at_refresh)
    rng = np.random.default_rng(9)
    S, K = layout.n_rows, layout.K
    state = State.from_arrays(rng.normal(size=(S, K)), random_spd(rng, S, K), rng.normal(size=(S, 3)) * 0.8)
    assert_gradients_match(coupled, params(), state)


def _small(hier: dict | None, **dynamics) -> Simulation:
    cfg = {"seed": 3, "grid": {"height": 8, "width": 8},
           "agents": {"count": 4, "support": {"shape": "disk", "radius": 3},
                      "init": {"phi": {"kind": "random", "scale": 0.3}, "mu": {"kind": "random"}}},
           "energy": {"lambda_smooth": 0.1},
           "dynamics": {"lr_mu": 0.05, "lr_sigma": 0.02, "lr_phi": 0.05, **dynamics},
           "analysis": {"meta_agents": {"eps_belief": 50.0, "min_overlap": 2}}}
    if hier is not None:
        cfg["hierarchy"] = hier
        cfg["output"] = {"every": hier.get("every", 10)}  # checkpoints at refresh steps (a config rule)
    return Simulation.from_config(cfg)


@pytest.mark.parametrize("dynamics", [{}, {"method": "natural", "line_search": {"enabled": True}}])
def test_rho_zero_is_the_uncoupled_run_bit_for_bit(dynamics):
    plain = _small(None, **dynamics)
    coupled = _small({"enabled": True, "every": 4, "rho": 0.0}, **dynamics)
    # nothing to refresh at rho = 0 (the refresh's own arithmetic: next test)
    assert coupled.updater(HierarchyCoupling) is None
    plain.run(13)
    coupled.run(13)
    for name in ("mu", "sigma", "phi"):
        assert np.array_equal(getattr(plain.state, name), getattr(coupled.state, name)), name
    assert plain.history.energy == coupled.history.energy
    # and rho > 0 does change the run (so the comparison above is not vacuous)
    pulled = _small({"enabled": True, "every": 4, "rho": 0.5}, **dynamics)
    pulled.run(13)
    assert pulled.updater(HierarchyCoupling).refreshed_at == 12
    assert not np.array_equal(plain.state.mu, pulled.state.mu)


def test_a_refresh_at_rho_zero_gives_the_configured_prior_bit_for_bit():
    layout, state = random_system((1, 2), "open", True, height=5, width=5, n_agents=4, seed=5)
    consensus = ConsensusParams(eps_belief=1e4, min_overlap=1)
    coupling = HierarchyCoupling(HierarchyParams(enabled=True, rho=0.0), consensus)
    pmu, psig, prec, logdet = coupling.apply(layout, state).coupled_prior
    assert coupling.n_members > 0  # members were found and their rows interpolated, with weight 0
    want_prec, want_logdet = prior_constants(layout.prior_sigma)
    for got, want in ((pmu, layout.prior_mu), (psig, layout.prior_sigma), (prec, want_prec), (logdet, want_logdet)):
        assert np.array_equal(got, want)


def test_energy_decreases_between_refreshes_with_line_search():
    sim = _small({"enabled": True, "every": 5, "rho": 0.7}, line_search={"enabled": True})
    assert sim.updater(HierarchyCoupling).n_members > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyIncreaseWarning)
        sim.run(30)
    steps = np.array(sim.history.step)
    total = np.array(sim.history.energy["total"])
    inside = steps[1:] % 5 != 0  # steps into a state that is not a refresh: the same action on both sides
    d = np.diff(total)
    assert inside.sum() >= 20
    assert np.all(d[inside] <= 1e-12 * np.maximum(1.0, np.abs(total[:-1][inside])))
    # at a refresh the action itself changes: the logged energy there is the new action's
    refresh = ~inside
    assert np.any(np.abs(d[refresh]) > 0)


# --- configuration ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,path,fragment", [
    ({"hierarchy": {"rho": 1.5}}, "hierarchy.rho", "less than or equal to 1"),
    ({"hierarchy": {"rho": -0.1}}, "hierarchy.rho", "greater than or equal to 0"),
    ({"hierarchy": {"every": 0}}, "hierarchy.every", "greater than or equal to 1"),
    ({"hierarchy": {"max_scale": 1}}, "hierarchy.max_scale", "greater than or equal to 2"),
    ({"hierarchy": {"strength": 1}}, "hierarchy.strength", ""),
])
def test_bad_hierarchy_values_name_their_key(data, path, fragment):
    with pytest.raises(ConfigError) as err:
        make_config(data)
    problems = err.value.problems
    assert any(p == path and fragment in m for p, m in problems), problems


def test_default_is_off():
    assert make_config({}).hierarchy.enabled is False
    assert _small(None).updater(HierarchyCoupling) is None


# --- resume -------------------------------------------------------------------------------------------------------

SCENARIO = textwrap.dedent("""\
    name: coupled
    seed: 2
    grid: {height: 8, width: 8}
    agents:
      count: 4
      support: {shape: disk, radius: 3}
      init: {phi: {kind: random, scale: 0.3}, mu: {kind: random}}
    energy: {lambda_smooth: 0.1}
    dynamics: {steps: 20, temperature: 0.01}
    hierarchy: {enabled: true, every: 5, rho: 0.5}
    analysis: {enabled: false, meta_agents: {eps_belief: 50.0, min_overlap: 2}}
    output: {every: 5}
    """)


def _scenario(tmp_path):
    p = tmp_path / "coupled.yaml"
    p.write_text(SCENARIO)
    return load_scenario(p, [])


def test_resume_at_a_refresh_step_is_bit_identical_and_elsewhere_refused(tmp_path):
    ref = run_scenario(_scenario(tmp_path), tmp_path / "ref.h5")
    with agents.load(ref.path) as traj:
        want = traj.checkpoint()

    def resume_and_compare(path):
        res = run_scenario(_scenario(tmp_path), path, resume=True)
        assert res.status == "completed" and res.last_step == 20
        with agents.load(path) as traj:
            got = traj.checkpoint()
        for name in ("mu", "sigma", "phi"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name

    path = tmp_path / "cut.h5"
    run_scenario(_scenario(tmp_path), path, observers=[InterruptAt(10)])  # a refresh step
    resume_and_compare(path)

    # Ctrl-C between refresh steps: the run goes on to the next refresh step (10), so it can resume
    path = tmp_path / "odd.h5"
    res = run_scenario(_scenario(tmp_path), path, observers=[InterruptAt(7)])
    assert res.status == "interrupted" and res.last_step == 10
    resume_and_compare(path)


def test_output_every_must_be_a_multiple_of_the_refresh_interval(tmp_path):
    with pytest.raises(agents.ScenarioError, match=r"output\.every: must be a multiple of hierarchy\.every = 5"):
        load_scenario(_scenario(tmp_path).path, ["output.every=7"])


def test_resume_problem_only_for_enabled_runs_off_refresh_steps():
    assert resume_problem({}, 7) is None
    assert resume_problem({"hierarchy": {"enabled": False, "every": 5}}, 7) is None
    assert resume_problem({"hierarchy": {"enabled": True, "every": 5}}, 10) is None
    assert "step 7" in resume_problem({"hierarchy": {"enabled": True, "every": 5}}, 7)


def test_a_bad_state_is_refused_as_such_before_the_detection_sees_it():
    from gauge_vfe.agents.model.dynamics import DivergenceError

    sim = _small({"enabled": True, "every": 4, "rho": 0.5})
    layout, state = sim.layout, sim.state
    mu = state.mu.copy()
    mu[3, 0] = np.nan
    with pytest.raises(DivergenceError, match="mu"):
        sim.set_state(state.replace(mu=mu))
    assert sim.layout is layout and sim.state is state  # nothing replaced


def test_inspect_does_not_count_a_refresh_as_an_uphill_step(tmp_path):
    """At a refresh the action changes, so the logged energy may jump up without any step going uphill: vfe inspect
    compares only energies of one action, and agrees with the run's own count (which compares within a step)."""
    from gauge_vfe.agents.runner.inspect import summarize_run, uphill_steps

    p = tmp_path / "cold.yaml"
    p.write_text(SCENARIO.replace("temperature: 0.01", "temperature: 0.0, lr_mu: 0.02")
                 .replace("rho: 0.5", "rho: 1.0").replace("steps: 20", "steps: 60"))
    res = run_scenario(load_scenario(p, []), tmp_path / "cold.h5")
    with agents.load(res.path) as traj:
        total = traj.energies()["total"]
        info = summarize_run(traj)
    assert uphill_steps(total) > 0  # the raw series does rise, at refresh steps ...
    assert info["uphill_steps"] == res.energy_increases == 0  # ... but no step went uphill
