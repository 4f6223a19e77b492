"""The float32 state (docs/model.md#precision): stored in float32, computed and summed in float64.

What is promised and checked here: the state, its gradients and every new state stay float32 while energies,
KL and beta stay float64; at one state the float32 evaluation is the float64 evaluation of the same values up to
the rounding of its gradients to float32; over whole runs (plain, natural, line search, Langevin noise,
hierarchy coupling) the total energy stays within 1e-4 of the float64 run's, relatively; a float32 run resumes
bit for bit from its (float64) checkpoint and does not depend on the thread count. Gradients are checked against
finite differences in float64 only (tests/test_gradients.py): float32 storage would drown a central difference.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from gauge_vfe.agents.model.energy import TERMS, evaluate
from gauge_vfe.agents.model.state import State
from gauge_vfe.agents.runner.simulation import Simulation
from gauge_vfe.agents.setup.scenario import load_scenario
from factories import assert_resume_after_ctrl_c_is_bit_identical, params, random_system, small_run_yaml

AGREE = 1e-4  # docs/model.md#precision: the total energy of a float32 run against the float64 run, relative


def _rounded(state: State) -> State:
    """The float64 state holding exactly the values a float32 state holds."""
    return state.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("spins,boundary,soft", [((1,), "open", False), ((1, 2), "periodic", True),
                                                 ((2, 3), "open", True)])
def test_one_evaluation_is_the_float64_one_of_the_same_values(spins, boundary, soft):
    layout, state = random_system(spins=spins, boundary=boundary, soft=soft, seed=4)
    p = params()
    s64 = _rounded(state)
    s32 = state.astype(np.float32)
    e64, e32 = evaluate(layout, p, s64), evaluate(layout, p, s32)
    for t in TERMS:  # the same values computed in float64 either way: the same bits
        assert e32.densities[t].dtype == np.float64
        assert np.array_equal(e32.densities[t], e64.densities[t]), t
    assert e32.kl.dtype == e32.beta.dtype == np.float64
    assert np.array_equal(e32.kl, e64.kl) and np.array_equal(e32.beta, e64.beta)
    for name in ("grad_mu", "grad_sigma", "grad_phi"):
        g32, g64 = getattr(e32, name), getattr(e64, name)
        assert g32.dtype == np.float32 and g64.dtype == np.float64
        # the float64 gradient stored in float32, rounded once per term that adds to it (up to three terms)
        np.testing.assert_allclose(g32, g64, rtol=4e-7, atol=4e-7 * np.abs(g64).max(), err_msg=name)

BASE = {"seed": 3, "grid": {"height": 16, "width": 16}, "fiber": {"spins": [1, 2]},
        "agents": {"count": 5, "support": {"shape": "disk", "radius": 5},
                   "init": {"phi": {"kind": "random", "per": "agent", "scale": 0.5}}},
        "observations": {"kind": "smooth", "dim": 2},
        "energy": {"lambda_curv": 0.2, "lambda_smooth": 0.1},
        "dynamics": {"steps": 150, "lr_mu": 0.02, "lr_sigma": 0.01, "lr_phi": 0.02}}

VARIANTS = {
    "gradient": {},
    "natural": {"dynamics": {"method": "natural"}},
    "line search": {"dynamics": {"lr_mu": 0.2, "lr_sigma": 0.1, "lr_phi": 0.2, "line_search": {"enabled": True}}},
    "noise": {"dynamics": {"method": "natural", "temperature": 0.02}},
    "hierarchy": {"hierarchy": {"enabled": True, "rho": 0.5, "every": 10}},
}


def _config(variant: str, precision: str) -> dict:
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for section, values in VARIANTS[variant].items():
        cfg[section] = {**cfg.get(section, {}), **values}
    cfg["dynamics"] = {**cfg["dynamics"], "precision": precision}
    return cfg


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_float32_run_keeps_the_energy_of_the_float64_run(variant):
    runs = {}
    for precision in ("float64", "float32"):
        sim = Simulation.from_config(_config(variant, precision))
        sim.run(stop=None)
        dtype = np.dtype(precision)
        assert sim.state.mu.dtype == sim.state.sigma.dtype == sim.state.phi.dtype == dtype
        assert sim.evaluation.grad_sigma.dtype == dtype
        runs[precision] = np.array(sim.history.energy["total"])
    e64, e32 = runs["float64"], runs["float32"]
    assert e64.size == e32.size == BASE["dynamics"]["steps"] + 1
    assert e64[-1] < e64[0]  # the run did something
    rel = np.abs(e32 - e64) / np.abs(e64)
    assert rel.max() <= AGREE, (variant, rel.max(), int(rel.argmax()))


def test_the_stored_state_is_float32_and_set_state_rounds_to_it():
    sim = Simulation.from_config(_config("gradient", "float32"))
    s = sim.state
    assert s.mu.dtype == np.float32 and sim.config.dynamics.precision == "float32"
    new = State.from_arrays(s.mu.astype(np.float64) + 0.1, s.sigma, s.phi, s.step)
    sim.set_state(new)
    assert sim.state.mu.dtype == np.float32
    np.testing.assert_array_equal(sim.state.mu, (s.mu.astype(np.float64) + 0.1).astype(np.float32))
    info = sim.step()
    assert sim.state.mu.dtype == np.float32 and np.isfinite(info.energy_after)
    assert info.info_bits.dtype == np.float64 and np.all(info.info_bits >= 0)


def test_float32_steps_do_not_depend_on_the_thread_count():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 threads")
    cfg = _config("noise", "float32")
    cfg["dynamics"]["steps"] = 20
    states = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            sim = Simulation.from_config(cfg)
            sim.thread_tuner = None
            sim.run(stop=None)
            states.append(sim.state)
    finally:
        numba.set_num_threads(before)
    for name in ("mu", "sigma", "phi"):
        assert np.array_equal(getattr(states[0], name), getattr(states[1], name)), name


def test_a_float32_run_resumes_bit_for_bit(tmp_path):
    scenario_file = tmp_path / "single.yaml"
    scenario_file.write_text(small_run_yaml("single", dynamics=", method: natural, temperature: 0.05, "
                                            "precision: float32"))
    resumed = assert_resume_after_ctrl_c_is_bit_identical(lambda: load_scenario(scenario_file), tmp_path, 13, 30)
    mu = resumed["checkpoint/mu"]  # a float32 state, stored exactly as float64
    assert mu.dtype == np.float64 and np.array_equal(mu, mu.astype(np.float32).astype(np.float64))


def test_the_memory_estimate_counts_the_state_in_its_type():
    from gauge_vfe.agents.setup.config import make_config
    from gauge_vfe.agents.setup.memory import estimate_memory

    parts = {p: estimate_memory(make_config(_config("gradient", p))).parts for p in ("float64", "float32")}
    assert parts["float32"]["state"] == parts["float64"]["state"] / 2
    assert parts["float32"]["layout"] == parts["float64"]["layout"]  # priors and observations stay float64
