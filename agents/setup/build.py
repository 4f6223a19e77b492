"""From a validated :class:`~agents.config.Config` to the plain arrays of a run: Layout, State and parameters.

One root seed, one independent stream per purpose (``numpy.random.SeedSequence`` with a fixed spawn key per
purpose name), so the same config and seed give bit-identical arrays, and adding e.g. observations does not
change the initial beliefs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import supports as sup
from .config import (BlobSupport, Config, DiskSupport, EllipseSupport, GaussianSupport, MaskSupport,
                     RectangleSupport, WholeSupport)
from ..model.fiber import make_fiber
from .generators import constant_matrix, matrix_field, vector_field
from ..model.grid import Grid
from ..model.layout import Layout, Observations, build_layout, compress_supports
from ..model.state import State

PURPOSES = {"supports": 1, "init.mu": 2, "init.sigma": 3, "init.phi": 4, "priors.mu": 5, "priors.sigma": 6,
            "observations": 7}


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """The random stream of one purpose under the root seed."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],)))


@dataclass(frozen=True)
class Built:
    config: Config
    layout: Layout
    state: State

    @property
    def energy(self):
        """The energy's parameters: the validated ``energy`` section itself."""
        return self.config.energy

    @property
    def dynamics(self):
        """The dynamics' parameters: the validated ``dynamics`` section itself."""
        return self.config.dynamics


def _random_center(grid: Grid, margin: float, rng: np.random.Generator) -> tuple[float, float]:
    if grid.periodic:
        return float(rng.uniform(0, grid.height)), float(rng.uniform(0, grid.width))
    my = min(margin, (grid.height - 1) / 2)
    mx = min(margin, (grid.width - 1) / 2)
    return float(rng.uniform(my, grid.height - 1 - my)), float(rng.uniform(mx, grid.width - 1 - mx))


def support_array(spec, grid: Grid, rng: np.random.Generator, base_dir: Path) -> np.ndarray:
    """Dense (H, W) chi of one support spec; missing centres and origins are drawn from ``rng``."""
    if isinstance(spec, WholeSupport):
        return sup.whole(grid)
    if isinstance(spec, MaskSupport):
        path = Path(spec.path)
        return sup.from_file(grid, path if path.is_absolute() else base_dir / path, spec.threshold)
    if isinstance(spec, RectangleSupport):
        if spec.origin is not None:
            origin = spec.origin
        else:
            origin = (int(rng.integers(0, grid.height - spec.size[0] + 1)),
                      int(rng.integers(0, grid.width - spec.size[1] + 1)))
        return sup.rectangle(grid, origin, spec.size)
    margin = {DiskSupport: lambda s: s.radius, BlobSupport: lambda s: s.radius,
              EllipseSupport: lambda s: max(s.radii), GaussianSupport: lambda s: s.width}[type(spec)](spec)
    center = spec.center if spec.center is not None else _random_center(grid, margin, rng)
    if isinstance(spec, DiskSupport):
        return sup.disk(grid, center, spec.radius)
    if isinstance(spec, EllipseSupport):
        return sup.ellipse(grid, center, spec.radii, spec.angle)
    if isinstance(spec, GaussianSupport):
        return sup.gaussian(grid, center, spec.width)
    return sup.blob(grid, center, spec.radius, spec.roughness, rng)


def _observations(cfg: Config, grid: Grid, offset, index, K: int, base_dir: Path) -> Observations | None:
    ocfg = cfg.observations
    if ocfg.kind == "none":
        return None
    rng = rng_for(cfg.seed, "observations")
    if ocfg.kind == "file":
        path = Path(ocfg.path)
        world = sup.load_grid_array(path if path.is_absolute() else base_dir / path, grid)
        if world.ndim == 2:
            world = world[:, :, None]
        D = world.shape[2]
        value = world.reshape(grid.n_sites, D)[index]
    else:
        D = ocfg.dim if ocfg.dim is not None else (len(ocfg.C) if ocfg.C is not None else K)
        value = vector_field(ocfg, grid, offset, index, D, rng)
    C = np.asarray(ocfg.C, dtype=float) if ocfg.C is not None else np.eye(D, K)
    if C.shape != (D, K):
        raise ValueError(f"observations.C: must be {D}x{K} for {D}-dimensional observations, got {C.shape}")
    Rn = constant_matrix(ocfg.noise, D)
    return Observations(np.ascontiguousarray(value), C, Rn)


def build(config: Config, base_dir: str | Path | None = None) -> Built:
    """Build everything a run needs. Relative file paths are resolved against ``base_dir`` (default: cwd)."""
    cfg = config
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    grid = Grid(cfg.grid.height, cfg.grid.width, cfg.grid.boundary)
    fiber = make_fiber(cfg.fiber.spins)
    K = fiber.K
    rng = rng_for(cfg.seed, "supports")
    specs = cfg.agents.supports if cfg.agents.supports is not None else [cfg.agents.support] * cfg.agents.n_agents
    chis = [support_array(s, grid, rng, base) for s in specs]
    offset, index, _ = compress_supports(grid, chis)
    n_sites = grid.n_sites
    prior_mu = vector_field(cfg.priors.mu, grid, offset, index, K, rng_for(cfg.seed, "priors.mu"))
    prior_sigma = matrix_field(cfg.priors.sigma, offset, index, K, rng_for(cfg.seed, "priors.sigma"), n_sites)
    obs = _observations(cfg, grid, offset, index, K, base)
    layout = build_layout(grid, fiber, chis, prior_mu, prior_sigma, obs)
    init = cfg.agents.init
    if init.from_run is not None:
        state = _state_from_run(init.from_run, layout, base)
        return Built(cfg, layout, state)
    state = State.from_arrays(
        vector_field(init.mu, grid, offset, index, K, rng_for(cfg.seed, "init.mu")),
        matrix_field(init.sigma, offset, index, K, rng_for(cfg.seed, "init.sigma"), n_sites),
        vector_field(init.phi, grid, offset, index, 3, rng_for(cfg.seed, "init.phi")),
    )
    return Built(cfg, layout, state)


def _state_from_run(spec, layout: Layout, base: Path) -> State:
    """mu, Sigma and phi of a frame of an earlier run, which must have the same supports and fiber."""
    from ..io.reader import load

    path = Path(spec.path)
    path = path if path.is_absolute() else base / path
    with load(path) as traj:
        if (traj.K != layout.K or not np.array_equal(traj.offset, layout.offset)
                or not np.array_equal(traj.index, layout.index)):
            raise ValueError(f"agents.init.from: {path} has other supports or another fiber than this scenario")
        state = traj.state(spec.frame)
    return State.from_arrays(state.mu, state.sigma, state.phi)  # a new run starts counting at step 0
