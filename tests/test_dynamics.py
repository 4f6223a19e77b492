"""Dynamics: descent, natural gradient, SPD retraction, line search, divergence, the vacuum's consensus."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from gauge_vfe import agents
from gauge_vfe.agents import DivergenceError, EnergyIncreaseWarning, Simulation
from gauge_vfe.agents.analysis.measures import transported_mean_spread
from gauge_vfe.agents.model.dynamics import check_finite

ALL_TERMS = {
    "seed": 4,
    "grid": {"height": 10, "width": 12, "boundary": "open"},
    "fiber": {"spins": [1, 2]},
    "agents": {"count": 4, "support": {"shape": "disk", "radius": 4},
               "init": {"mu": {"kind": "smooth", "scale": 1.0, "length": 2.0},
                        "sigma": {"kind": "random", "spread": 0.3},
                        "phi": {"kind": "smooth", "scale": 0.6, "length": 3.0}}},
    "priors": {"mu": {"kind": "random", "per": "agent"}},
    "observations": {"kind": "smooth", "scale": 1.0, "dim": 3},
    "energy": {"alpha": 0.5, "gamma": 0.8, "lambda_align": 1.2, "kappa": 0.7, "lambda_curv": 0.5,
               "lambda_smooth": 0.3},
    "dynamics": {"lr_mu": 0.01, "lr_sigma": 0.005, "lr_phi": 0.01},
}


def spd_everywhere(sigma):
    return bool(np.all(np.linalg.eigvalsh(sigma) > 0))


@pytest.mark.parametrize("method", ["gradient", "natural"])
def test_energy_never_increases_with_small_steps(method):
    cfg = {**ALL_TERMS, "dynamics": {**ALL_TERMS["dynamics"], "method": method}}
    sim = Simulation.from_config(cfg)
    terms = sim.energy()
    assert all(terms[t] > 0 for t in agents.TERMS), terms  # every term is on
    sim.run(200)
    total = np.array(sim.history.energy["total"])
    assert len(total) == 201
    assert np.all(np.diff(total) <= 1e-12 * np.abs(total[:-1])), np.diff(total).max()
    assert total[-1] < 0.9 * total[0]
    assert spd_everywhere(sim.state.sigma)
    assert sim.energy_increases == 0


def test_vacuum_reaches_consensus():
    """No observations, equal priors: transported means across overlapping agents agree (spread falls > 100x)."""
    sim = Simulation.from_config({
        "seed": 3, "grid": {"height": 16, "width": 16},
        "agents": {"count": 4, "support": {"shape": "disk", "radius": 6},
                   "init": {"mu": {"kind": "random", "per": "agent"},
                            "phi": {"kind": "random", "scale": 0.5, "per": "agent"}}},
        "priors": {"mu": {"value": [1.0, 0.0, 0.0]}},
        "energy": {"alpha": 0.1},
        "dynamics": {"lr_mu": 0.1, "lr_sigma": 0.05, "lr_phi": 0.1},
    })
    before = transported_mean_spread(sim.layout, sim.state)
    sim.run(300)
    after = transported_mean_spread(sim.layout, sim.state)
    assert before > 1.0
    assert after < before / 100, (before, after)


def test_spd_retraction_keeps_sigma_positive_and_is_counted():
    # Sigma = 4 I, prior 0.05 I, only the prior term: G = (20 - 0.25)/2 I, so Sigma - 0.5 G leaves the cone
    cfg = {**ALL_TERMS, "energy": {"alpha": 1.0, "gamma": 0.0, "lambda_align": 0.0},
           "agents": {**ALL_TERMS["agents"], "init": {"sigma": {"value": 4.0}}},
           "priors": {"sigma": {"value": 0.05}},
           "dynamics": {"lr_mu": 0.0, "lr_sigma": 0.5, "lr_phi": 0.0}}
    sim = Simulation.from_config(cfg)
    info = sim.step()
    assert info.spd_retractions == sim.layout.n_rows
    assert sim.history.spd_retractions[-1] == info.spd_retractions
    assert spd_everywhere(sim.state.sigma)
    # Sigma' = Sigma + V + V Sigma^-1 V / 2 with V = -0.5 G, and the energy still falls
    g = 0.5 * (1 / 0.05 - 1 / 4.0)
    np.testing.assert_allclose(sim.state.sigma, np.broadcast_to((4.0 - 0.5 * g + 0.5 * (0.5 * g) ** 2 / 4.0)
                                                                * np.eye(sim.layout.K), sim.state.sigma.shape))
    assert sim.history.energy["total"][1] < sim.history.energy["total"][0]


def test_line_search_prevents_increase_where_plain_steps_overshoot():
    big = {**ALL_TERMS, "dynamics": {"lr_mu": 1.5, "lr_sigma": 0.5, "lr_phi": 1.0}}
    plain = Simulation.from_config(big)
    with pytest.warns(EnergyIncreaseWarning, match="energy increased at step"):
        plain.step()
    searched = Simulation.from_config({**big, "dynamics": {**big["dynamics"], "line_search": {"enabled": True}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyIncreaseWarning)
        searched.run(20)
    total = np.array(searched.history.energy["total"])
    assert np.all(np.diff(total) <= 0)


def test_divergence_stops_with_step_and_field():
    cfg = {**ALL_TERMS, "dynamics": {"lr_mu": 5.0, "lr_sigma": 5.0, "lr_phi": 50.0}}
    sim = Simulation.from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnergyIncreaseWarning)
        with pytest.raises(DivergenceError) as err:
            sim.run(100)
    e = err.value
    assert e.field in {"mu", "sigma", "phi"} or e.field.startswith(("dE/d", "energy."))
    assert f"diverged at step {e.step}" in str(e) and "agent" in str(e) and "site (y=" in str(e)
    # the simulation keeps the last good state
    assert sim.state.step == e.step - 1
    assert np.all(np.isfinite(sim.state.sigma))


def test_nan_is_named_not_swallowed():
    sim = Simulation.from_config(ALL_TERMS)
    phi = sim.state.phi.copy()
    phi[5, 1] = np.nan
    with pytest.raises(DivergenceError, match=r"phi: non-finite value at agent \d+ at site"):
        sim.set_state(sim.state.replace(phi=phi))
    sigma = sim.state.sigma.copy()
    sigma[3] = -np.eye(sim.layout.K)
    with pytest.raises(DivergenceError, match="sigma: not positive definite"):
        sim.set_state(sim.state.replace(sigma=sigma))


def test_phi_is_never_wrapped():
    cfg = {**ALL_TERMS, "agents": {**ALL_TERMS["agents"], "init": {"phi": {"value": [4.0, 0.0, 0.0]}}}}
    sim = Simulation.from_config(cfg)
    sim.run(5)
    assert np.abs(sim.state.phi).max() > np.pi


def test_energy_logged_at_step_t_is_energy_of_state_t():
    sim = Simulation.from_config(ALL_TERMS)
    sim.run(3)
    assert sim.history.step == [0, 1, 2, 3]
    assert sim.history.energy["total"][-1] == pytest.approx(sim.energy()["total"], rel=1e-15)
    fresh = agents.evaluate(sim.layout, sim.energy_params, sim.state, want_grad=False)
    assert fresh.total == pytest.approx(sim.history.energy["total"][-1], rel=1e-14)


def test_tolerance_stops_early():
    cfg = {**ALL_TERMS, "dynamics": {**ALL_TERMS["dynamics"], "tol": 1e9}}
    sim = Simulation.from_config(cfg)
    sim.run(50)
    assert sim.state.step == 1


def _count_python_lines(sim, steps):
    """Python line events inside the package during ``steps`` steps."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if "/agents/" in frame.f_code.co_filename:
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        for _ in range(steps):
            sim.step()
    finally:
        sys.settrace(None)
    return count


def test_no_python_loop_over_sites_or_pairs_on_the_hot_path():
    """The Python work per step is the same for a 6x6 grid with 2 agents and a 24x24 grid with 12 agents."""
    def make(size, count):
        return Simulation.from_config({**ALL_TERMS, "grid": {"height": size, "width": size},
                                       "agents": {**ALL_TERMS["agents"], "count": count}})

    small, large = make(6, 2), make(32, 16)
    assert large.layout.n_rows > 10 * small.layout.n_rows
    small.step()
    large.step()  # compile outside the traced region
    assert _count_python_lines(small, 2) == _count_python_lines(large, 2)


def test_check_finite_accepts_a_good_state():
    sim = Simulation.from_config(ALL_TERMS)
    check_finite(sim.layout, sim.state, sim.evaluation)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 3), (63, 3), (64, 9, 9), (1000, 3), (130, 1), (3001, 5, 5)])
def test_sum_of_squares_is_numpys_and_the_same_on_any_thread_count(shape, dtype):
    import numba

    from gauge_vfe.agents.kernels.reductions import sum_of_squares

    x = np.random.default_rng(1).normal(size=shape).astype(dtype)
    expected = np.sum(x.astype(np.float64) ** 2)
    got = sum_of_squares(x)
    assert got == pytest.approx(expected, rel=1e-13)
    if numba.config.NUMBA_NUM_THREADS >= 2:
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(1)
            one = sum_of_squares(x)
        finally:
            numba.set_num_threads(before)
        assert one == got  # bit for bit
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y.flat[-1] = bad
        assert not np.isfinite(sum_of_squares(y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_of_squares_serial_and_parallel_passes_give_the_same_bits(dtype):
    """Small arrays are summed serially, large ones in parallel: the same chunks in the same order either way, so
    an array's sum does not depend on which pass ran."""
    from gauge_vfe.agents.kernels import reductions

    for size in (1, 13, reductions.ELEMENTS_PER_CHUNK, 3 * reductions.ELEMENTS_PER_CHUNK + 13):
        flat = np.random.default_rng(size).normal(size=size).astype(dtype)
        serial = reductions.serial_sum_of_squares(flat)
        assert serial == reductions.parallel_sum_of_squares(flat)  # bit for bit
        assert serial == pytest.approx(np.sum(flat.astype(np.float64) ** 2), rel=1e-13)


def test_the_finiteness_check_finds_the_bad_row_and_is_not_fooled_by_an_overflowing_square():
    from gauge_vfe.agents.model.dynamics import _first_bad_rows

    x = np.ones((200, 3, 3))
    assert _first_bad_rows(x) is None
    x[150, 1, 2] = 1e200  # finite, but its square overflows the sum of squares
    assert _first_bad_rows(x) is None
    x[77, 0, 0] = np.nan
    x[190, 2, 2] = -np.inf
    assert list(_first_bad_rows(x)) == [77, 190]


def test_gradient_norms_are_computed_once_and_match_numpy():
    sim = Simulation.from_config(ALL_TERMS)
    ev = sim.evaluation
    norms = ev.grad_norms()
    assert ev.grad_norms() is norms
    for name, g in (("mu", ev.grad_mu), ("sigma", ev.grad_sigma), ("phi", ev.grad_phi)):
        assert norms[name] == pytest.approx(np.linalg.norm(g.ravel()), rel=1e-13)
