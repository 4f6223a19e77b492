"""Replica ensembles (docs/model.md#replica-ensembles): replica r of an ensemble is bit for bit the single run
with replica r's seed, at every step, for every kind of step; one replica is the single run; seeds are a
documented function of the root seed."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from conftest import numba_threads
from gauge_vfe.agents.model.dynamics import DivergenceError
from gauge_vfe.agents.model.layout import world_sums
from gauge_vfe.agents.model.replicas import tile_layouts
from gauge_vfe.agents.runner.ensemble import Ensemble
from gauge_vfe.agents.runner.simulation import Simulation
from gauge_vfe.agents.setup.build import replica_seed
from gauge_vfe.agents.setup.config import make_config

# A small world with everything moving: random disk supports (so replicas differ in size), random observations,
# free frames with curvature and smoothness, Sigma moving.
SMALL = {
    "seed": 5,
    "grid": {"height": 7, "width": 6, "boundary": "open"},
    "agents": {"count": 3, "support": {"shape": "disk", "radius": 2.2},
               "init": {"mu": {"kind": "random", "per": "agent", "scale": 1.0},
                        "phi": {"kind": "random", "per": "agent", "scale": 0.5}}},
    "observations": {"kind": "smooth", "shared": True, "scale": 1.0, "length": 3.0, "noise": 2.0},
    "energy": {"alpha": 0.3, "gamma": 0.5, "lambda_align": 1.5, "kappa": 2.0, "lambda_curv": 0.05,
               "lambda_smooth": 0.05},
    "dynamics": {"method": "gradient", "lr_mu": 0.05, "lr_sigma": 0.02, "lr_phi": 0.04, "tol": 0.0,
                 "line_search": {"enabled": False}},
    "hierarchy": {"enabled": False},
    "analysis": {"enabled": False},
}


def _with(base: dict, **sections) -> dict:
    out = copy.deepcopy(base)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


VARIANTS = {
    "plain": SMALL,
    "natural": _with(SMALL, dynamics={"method": "natural"}),
    "line_search": _with(SMALL, dynamics={"lr_mu": 0.4, "lr_phi": 0.3, "line_search": {"enabled": True}}),
    "langevin": _with(SMALL, dynamics={"temperature": {"mu": 0.01, "sigma": 0.005, "phi": 0.01}}),
    "langevin_natural": _with(SMALL, dynamics={"method": "natural", "temperature": {"mu": 0.01, "sigma": 0.005}}),
    "hierarchy": _with(SMALL, hierarchy={"enabled": True, "every": 2, "rho": 0.5},
                       analysis={"enabled": False, "meta_agents": {"eps_belief": 5.0, "min_overlap": 2}}),
    "streaming": _with(SMALL, observations={"resample_every": 4}),
    # frozen fields: their gradients are skipped (docs/model.md#replica-ensembles), the moving ones keep their bits
    "frozen": _with(SMALL, dynamics={"lr_sigma": 0.0, "lr_phi": 0.0}),
    "frozen_langevin": _with(SMALL, dynamics={"lr_sigma": 0.0, "lr_phi": 0.0, "temperature": {"mu": 0.01}}),
    "frozen_phi_natural": _with(SMALL, dynamics={"method": "natural", "lr_phi": 0.0}),
}


def _assert_same_state(a, b, where: str):
    for name in ("mu", "sigma", "phi"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, where
        assert np.array_equal(x.view(np.uint8), np.ascontiguousarray(y).view(np.uint8)), f"{where}: {name} differs"
    assert a.step == b.step


def _check_against_single_runs(cfg: dict, replicas: int, steps: int):
    ens = Ensemble(cfg, replicas=replicas)
    assert ens.seeds == [replica_seed(cfg["seed"], r) for r in range(replicas)]
    singles = [Simulation.from_config({**cfg, "seed": s}) for s in ens.seeds]
    clock = np.zeros((replicas, singles[0].layout.n_agents))
    for k in range(steps):
        info = ens.step()
        energies, norms = ens.energies(), ens.grad_norms()
        for r, sim in enumerate(singles):
            one = sim.step()
            clock[r] += one.info_bits
            where = f"replica {r} step {k + 1}"
            _assert_same_state(ens.replica(r).state, sim.state, where)
            assert info.world(r) == one, where  # energies before/after, t, backtracks, retractions
            assert np.array_equal(info.info_bits[r], one.info_bits), where
            assert energies["total"][r] == sim.energy()["total"], where
            assert all(energies[t][r] == v for t, v in sim.energy().items()), where
            assert all(norms[f][r] == v for f, v in sim.evaluation.grad_norms().items() if f not in ens.frozen), where
            assert all(np.isnan(norms[f][r]) for f in ens.frozen)
    assert np.array_equal(ens.clock, clock)
    return ens, singles


@pytest.mark.parametrize("variant", ["plain", "natural", "line_search", "langevin", "hierarchy", "frozen"])
def test_replica_is_its_single_run(variant):
    """Each replica equals the single run of its seed, state, records, energies and norms, at every step."""
    with numba_threads(1):
        ens, _ = _check_against_single_runs(VARIANTS[variant], 3, 8)
    sizes = np.diff(ens.replica_offset)
    assert sizes.min() != sizes.max()  # random supports: the unequal-worlds path was taken
    if variant == "hierarchy":  # the coupling did pull some member's prior (else the variant tests nothing)
        assert ens.layout.coupled_prior is not None
        assert not np.array_equal(ens.layout.coupled_prior[0], ens.layout.prior_mu)


def test_frozen_fields_are_skipped():
    """Which gradients an ensemble skips: phi at lr_phi = 0; Sigma at lr_sigma = 0 under the plain gradient only."""
    assert Ensemble(VARIANTS["frozen"], replicas=1).frozen == ("sigma", "phi")
    assert Ensemble(VARIANTS["frozen_phi_natural"], replicas=1).frozen == ("phi",)
    assert Ensemble(_with(SMALL, dynamics={"method": "natural", "lr_sigma": 0.0}), replicas=1).frozen == ()
    assert Ensemble(VARIANTS["frozen"], replicas=1, skip_frozen=False).frozen == ()
    # both frozen: the frames and rotated covariances are kept (the "frozen" variants above check their bits)
    assert Ensemble(VARIANTS["frozen"], replicas=1)._frames is not None
    assert Ensemble(VARIANTS["frozen_phi_natural"], replicas=1)._frames is None


def test_line_search_backtracks_per_replica():
    """The variant's rates are large enough that replicas backtrack, and by different amounts."""
    with numba_threads(1):
        ens = Ensemble(VARIANTS["line_search"], replicas=3)
        scales = np.array([ens.step().step_scale for _ in range(4)])
    assert (scales < 1).any() and len({tuple(c) for c in scales.T}) > 1


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["langevin_natural", "streaming", "frozen_langevin", "frozen_phi_natural"])
def test_replica_is_its_single_run_more(variant):
    with numba_threads(1):
        _check_against_single_runs(VARIANTS[variant], 3, 10)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["plain", "langevin", "hierarchy"])
def test_replica_is_its_single_run_two_threads(variant):
    """On 2 numba threads (other chunk splits): the same bits."""
    with numba_threads(2):
        _check_against_single_runs(VARIANTS[variant], 4, 6)


def test_timescales_replicas_equal_worlds():
    """The shipped timescales scenario (Langevin, equal worlds: the one-call per-replica sums)."""
    with numba_threads(1):
        ens = Ensemble("timescales", replicas=4)
        singles = [Simulation.from_scenario("timescales", [f"seed={s}"]) for s in ens.seeds]
        assert len(set(np.diff(ens.replica_offset))) == 1
        for k in range(15):
            ens.step()
            for r, sim in enumerate(singles):
                sim.step()
                _assert_same_state(ens.replica(r).state, sim.state, f"replica {r} step {k + 1}")
                assert ens.energies()["total"][r] == sim.energy()["total"]


def test_world_sums_match_numpy_sum_of_each_block():
    """The one-call per-world sum is np.sum of each world's block, bit for bit, at many sizes."""
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 9, 36, 127, 128, 129, 300, 1602, 4097):
        worlds = 5
        values = rng.standard_normal((worlds * n, 3)) * np.exp(4 * rng.standard_normal((worlds * n, 3)))

        class L:  # world_sums reads only these
            replicas = worlds
            world_ptr = np.arange(worlds + 1) * n

        got = world_sums(L, values)
        assert np.array_equal(got, [np.sum(values[w * n:(w + 1) * n]) for w in range(worlds)])
    # unequal worlds whose total is R times the first's (45 + 43 + 48 + 44 = 4 * 45): summed world by world
    ptr = np.concatenate([[0], np.cumsum([45, 43, 48, 44])])
    values = rng.standard_normal(180)

    class U:
        replicas = 4
        world_ptr = ptr

    assert np.array_equal(world_sums(U, values), [np.sum(values[a:b]) for a, b in zip(ptr[:-1], ptr[1:])])


def test_seeds():
    """Replica 0 keeps the root seed (one replica is the single run); the others are distinct, reproducible,
    63-bit and recorded on the ensemble."""
    seeds = [replica_seed(11, r) for r in range(256)]
    assert seeds[0] == 11
    assert len(set(seeds)) == 256 and all(0 <= s < 2 ** 63 for s in seeds)
    assert seeds == [replica_seed(11, r) for r in range(256)]
    assert replica_seed(12, 1) != replica_seed(11, 1)


def test_one_replica_is_the_single_run_config():
    """``ensemble: {replicas: 1}`` is the single run: the same resolved config (so the same file)."""
    assert make_config({"ensemble": {"replicas": 1}}).to_dict() == make_config({}).to_dict()
    assert "ensemble" not in make_config({}).to_dict()
    assert make_config({"ensemble": {"replicas": 4}}).replicas == 4


def test_initial_states_and_views():
    """Given initial states are used; replica views are views, not copies."""
    with numba_threads(1):
        ens = Ensemble(SMALL, replicas=2)
        start = [s.copy() for s in ens.states()]
        start[1] = start[1].replace(mu=start[1].mu + 0.1)
        ens2 = Ensemble(SMALL, replicas=2, initial_states=start)
        assert np.array_equal(ens2.replica(1).state.mu, start[1].mu)
        assert np.shares_memory(ens2.replica(1).state.mu, ens2.state.mu)
        steps = [step for step, state, offset in ens2.iterate(4, every=2)]
        assert steps == [0, 2, 4]
        seen = []
        ens2.run(4, observe_every=2, observer=lambda step, states: seen.append((step, len(states))))
        assert seen == [(4, 2), (6, 2), (8, 2)]


def test_divergence_names_the_replica():
    cfg = _with(SMALL, dynamics={"lr_mu": 1e6, "lr_sigma": 0.0, "lr_phi": 0.0})
    with numba_threads(1):
        ens = Ensemble(cfg, replicas=2)
        with pytest.raises(DivergenceError, match="replica [01]"):
            for _ in range(5):
                ens.step()


def test_tile_refuses_other_scenarios():
    a = Simulation.from_config(SMALL).layout
    b = Simulation.from_config(_with(SMALL, agents={"count": 2})).layout
    with pytest.raises(ValueError, match="share"):
        tile_layouts([a, b])


# --- files: vfe run --replicas ------------------------------------------------------------------------------------

def _vfe(*args):
    from click.testing import CliRunner

    from gauge_vfe.agents.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_replica_files_are_single_run_files(tmp_path):
    """`vfe run --replicas 3`: every replica's file hashes as the single run of its seed (every dataset, the
    stored configuration included); gv.load reads the index per replica; commands refuse it with one line."""
    import gauge_vfe as gv
    from test_bit_identity import trajectory_digest

    common = ["--steps", 15, "--set", "output.every=5", "-q"]
    with numba_threads(1):
        r = _vfe("run", "timescales", "--replicas", 3, "-o", tmp_path / "ens.h5", *common)
        assert r.exit_code == 0, r.output
        seed = replica_seed(11, 2)
        r = _vfe("run", "timescales", "--seed", seed, "-o", tmp_path / "one.h5", *common)
        assert r.exit_code == 0, r.output
    assert trajectory_digest(tmp_path / "ens.replicas" / "r0002.h5") == trajectory_digest(tmp_path / "one.h5")
    ens = gv.load(tmp_path / "ens.h5")
    with ens:
        assert ens.replicas == 3 and ens.seeds == [replica_seed(11, r) for r in range(3)]
        assert ens.status == "completed" and ens.replica_status == ["completed"] * 3
        steps, energy = ens.energy()
        assert energy.shape == (3, 16)
        one = gv.load(tmp_path / "one.h5")
        assert np.array_equal(energy[2], one.energy()[1])
        assert np.array_equal(ens.info_bits()[1][2], one.info_bits()[1])
        assert np.array_equal(ens.states(step=15)[2].mu, one.state(step=15).mu)
        one.close()
    for command in ("inspect", "analyze", "export"):
        r = _vfe(command, tmp_path / "ens.h5")
        assert r.exit_code == 2
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and "replica ensemble of 3" in lines[0] and "ens.replicas/r0000.h5" in lines[0]


def test_ensemble_run_refusals(tmp_path):
    """An existing index or folder is refused untouched; --resume and --replicas 0 are refused; one line each."""
    (tmp_path / "ens.replicas").mkdir()
    (tmp_path / "ens.replicas" / "keep.txt").write_text("mine")
    r = _vfe("run", "timescales", "--replicas", 2, "-o", tmp_path / "ens.h5", "--steps", 2, "-q")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "exists" in r.output
    assert (tmp_path / "ens.replicas" / "keep.txt").read_text() == "mine" and not (tmp_path / "ens.h5").exists()
    r = _vfe("run", "timescales", "--replicas", 2, "--resume", "-o", tmp_path / "x.h5", "-q")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "resume" in r.output
    r = _vfe("run", "timescales", "--replicas", 0, "-q")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--replicas 0" in r.output


def test_scenario_ensemble_section(tmp_path):
    """`ensemble: {replicas: 2}` in a scenario file: `vfe run` runs the ensemble; run_scenario (one run: sweeps,
    notebooks) refuses it with a located line instead of silently running one replica."""
    from pathlib import Path

    import gauge_vfe as gv
    from gauge_vfe.agents.runner.run import run_scenario
    from gauge_vfe.agents.setup.scenario import ScenarioError, prepare_scenario

    text = (Path(__file__).resolve().parents[1] / "scenarios" / "timescales.yaml").read_text()
    scenario = tmp_path / "ts.yaml"
    scenario.write_text(text + "\nensemble: {replicas: 2}\n")
    with numba_threads(1):
        r = _vfe("run", scenario, "--steps", 5, "-o", tmp_path / "e.h5", "-q")
    assert r.exit_code == 0, r.output
    with gv.load(tmp_path / "e.h5") as ens:
        assert ens.replicas == 2 and ens.config["ensemble"] == {"replicas": 2}
    with pytest.raises(ScenarioError, match="ensemble.replicas"):
        run_scenario(prepare_scenario(str(scenario), []), tmp_path / "one.h5")
    assert not (tmp_path / "one.h5").exists()
