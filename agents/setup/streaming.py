"""Streaming observations (docs/model.md#streaming-observations): a fresh noisy draw every k steps.

Draw ``j`` (in force from step ``j k`` to step ``(j + 1) k - 1``; draw 0 is the configured observations) adds to
the configured values, at every site of the grid, a sample of ``N(0, Rn)``, the same at a site for every agent
there (each reads it in its own frame, as file observations are read). Draw ``j`` comes from its own child of the
``observations.resample`` stream, ``SeedSequence(seed, spawn_key=(9, j))``: any draw is reproducible from the seed
and its index alone, so nothing needs storing and a resumed run sees the same observations.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..model.layout import Layout
from .build import PURPOSES


def draw_index(step: int, every: int | None) -> int:
    """The draw in force at ``step`` (0: the configured observations)."""
    return 0 if every is None else step // every


def observation_draw(base: np.ndarray, Rn: np.ndarray, index: np.ndarray, n_sites: int, seed: int,
                     draw: int) -> np.ndarray:
    """(S, D) observations of draw ``draw`` >= 1: ``base`` plus one N(0, Rn) sample per site."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSES["observations.resample"], draw)))
    noise = rng.standard_normal((n_sites, Rn.shape[0])) @ np.linalg.cholesky(Rn).T
    return np.ascontiguousarray(base + noise[index])


def with_draw(layout: Layout, base: np.ndarray, seed: int, draw: int) -> Layout:
    """``layout`` with the observations of draw ``draw`` (``base`` for draw 0)."""
    obs = layout.observations
    value = base if draw == 0 else observation_draw(base, obs.Rn, layout.index, layout.grid.n_sites, seed, draw)
    return replace(layout, observations=replace(obs, value=value))
