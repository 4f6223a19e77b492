"""The counter-based normal draws of the Langevin noise (agents/kernels/noise.py, docs/model.md#noise).

The draws are a deterministic function of (key, step, element), so every test here is reproducible; each bound is
a few standard errors of the exact law (Z = 4), or a p-value of an exact test above 1e-4.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from gauge_vfe.agents.kernels.noise import normals, step_base
from gauge_vfe.agents.kernels.update import noise_slots
from gauge_vfe.agents.runner.simulation import Simulation

Z = 4.0
KEYS = (1, 2, 2**63 - 1, 2**63 + 5, 2**64 - 1)  # words both sides of 2^63: numba types them differently


def draws(key, step: int, n: int, first: int = 0) -> np.ndarray:
    out = np.empty(n)
    normals(step_base(key, step), first, out)
    return out


@pytest.mark.parametrize("key", KEYS)
def test_the_law_is_standard_normal(key):
    x = draws(key, 3, 1_000_000)
    n = x.size
    assert abs(x.mean()) < Z / np.sqrt(n)
    assert abs(x.var() - 1) < Z * np.sqrt(2 / n)
    assert abs(stats.skew(x)) < Z * np.sqrt(6 / n)
    assert abs(stats.kurtosis(x)) < Z * np.sqrt(24 / n)
    assert stats.kstest(x, "norm").pvalue > 1e-4
    # 400 equally likely bins resolve the wedges between the ziggurat's 128 layers
    edges = stats.norm.ppf(np.linspace(0, 1, 401))
    counts = np.histogram(x, edges)[0]
    assert stats.chisquare(counts).pvalue > 1e-4


def test_the_tail_beyond_the_ziggurat_base_has_its_exact_mass():
    """Beyond R = 3.44 the draws come from a separate algorithm (Marsaglia's tail): its mass and shape."""
    x = np.concatenate([draws(7, t, 2_000_000) for t in range(5)])
    for c in (3.0, 3.4426, 3.8, 4.2, 4.6):
        expected = 2 * stats.norm.sf(c) * x.size
        assert abs(np.sum(np.abs(x) > c) - expected) < Z * np.sqrt(expected), c
    tail = np.abs(x[np.abs(x) > 3.4426])
    conditional = stats.truncnorm(3.4426, np.inf)
    assert stats.kstest(tail, conditional.cdf).pvalue > 1e-4


def test_draws_are_uncorrelated_across_elements_steps_and_keys():
    n, slots = 500_000, noise_slots(3)  # a row's stride in the kernels at K = 3
    a = draws(11, 4, n + slots)
    pairs = {
        "next element": (a[:n], a[1:n + 1]),
        "same slot, next row": (a[:n], a[slots:n + slots]),
        "next step": (a[:n], draws(11, 5, n)),
        "other key": (a[:n], draws(12, 4, n)),
        "step 0 against a far step": (draws(11, 0, n), draws(11, 10**9, n)),
    }
    for name, (x, y) in pairs.items():
        assert abs(np.corrcoef(x, y)[0, 1]) < Z / np.sqrt(n), name
        # a dependence a correlation misses: the joint law of the pair on a 10 x 10 grid of equally likely cells
        cells = stats.norm.ppf(np.linspace(0, 1, 11))
        joint = np.histogram2d(x, y, [cells, cells])[0].ravel()
        assert stats.chisquare(joint).pvalue > 1e-4, name


def test_an_element_is_the_same_draw_whoever_asks_for_it():
    """Addressed by counter: a slice drawn on its own equals the same slice of a longer draw, and a key given as
    a Python int or a numpy word is one key."""
    whole = draws(2**63 + 5, 9, 1000)
    np.testing.assert_array_equal(draws(np.uint64(2**63 + 5), 9, 300, first=500), whole[500:800])
    assert step_base(2, 9) == step_base(np.uint64(2), 9)
    assert step_base(2, 9) != step_base(2, 10) and step_base(2, 9) != step_base(3, 9)


def test_a_noisy_run_has_the_same_bits_on_one_thread_and_on_all():
    cfg = {"seed": 3, "grid": {"height": 12, "width": 12}, "fiber": {"spins": [1]},
           "agents": {"count": 3, "support": {"shape": "disk", "radius": 4}},
           "energy": {"lambda_smooth": 0.1},
           "dynamics": {"method": "natural", "lr_mu": 0.01, "lr_sigma": 0.005, "lr_phi": 0.01,
                        "temperature": 0.05}}
    n = numba.get_num_threads()
    states = []
    try:
        for threads in (1, n):
            numba.set_num_threads(threads)
            sim = Simulation.from_config(cfg, keep_history=False)
            for _ in range(20):
                sim.step()
            states.append(sim.state)
    finally:
        numba.set_num_threads(n)
    for name in ("mu", "sigma", "phi"):
        assert np.array_equal(getattr(states[0], name), getattr(states[1], name)), name
