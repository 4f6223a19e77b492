"""Shared factories: small random configurations in float64 built straight from arrays (no config layer).

Imported by the test modules as ``factories`` (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.energy import evaluate
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import Observations, build_layout, compress_supports
from gauge_vfe.agents.model.state import State


def random_spd(rng, n: int, K: int, spread: float = 0.4, floor: float = 0.6) -> np.ndarray:
    a = rng.normal(size=(n, K, K)) * spread
    return np.einsum("nij,nkj->nik", a, a) + floor * np.eye(K)


def random_system(spins=(1,), boundary="open", soft=False, observations=True, height=4, width=4, n_agents=3,
                  seed=0, obs_dim=2, phi_scale=0.8):
    """A small layout and state with every field random; agent 0 covers the whole grid so pairs exist."""
    rng = np.random.default_rng(seed)
    grid = Grid(height, width, boundary)
    fiber = make_fiber(spins)
    K = fiber.K
    chis = [supports.whole(grid) * (0.7 if soft else 1.0)]
    for _ in range(n_agents - 1):
        center = (rng.uniform(0, height), rng.uniform(0, width))
        chis.append(supports.gaussian(grid, center, 1.5) if soft else supports.disk(grid, center, 2.2))
    _, index, _ = compress_supports(grid, chis)
    S = index.size
    obs = None
    if observations:
        obs = Observations(rng.normal(size=(S, obs_dim)), rng.normal(size=(obs_dim, K)),
                           random_spd(rng, 1, obs_dim)[0])
    layout = build_layout(grid, fiber, chis, rng.normal(size=(S, K)), random_spd(rng, S, K), obs)
    state = State.from_arrays(rng.normal(size=(S, K)), random_spd(rng, S, K),
                              rng.normal(size=(S, 3)) * phi_scale)
    return layout, state


ALL_ON = dict(alpha=0.7, gamma=1.3, lambda_align=1.1, kappa=0.8, lambda_curv=0.5, lambda_smooth=0.3)


def params(**kw) -> EnergyParams:
    return EnergyParams(**{**ALL_ON, **kw})


def total_energy(layout, p, state) -> float:
    return evaluate(layout, p, state, want_grad=False).total
