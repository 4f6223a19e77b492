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
from ..model.grid import SUPPORT_CUTOFF, Grid
from ..model.layout import Layout, Observations, build_layout, compress_supports
from ..model.state import State

PURPOSES = {"supports": 1, "init.mu": 2, "init.sigma": 3, "init.phi": 4, "priors.mu": 5, "priors.sigma": 6,
            "observations": 7, "dynamics": 8, "observations.resample": 9}


def _seed_sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],))


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """The random stream of one purpose under the root seed."""
    return np.random.default_rng(_seed_sequence(seed, purpose))


def noise_key(seed: int) -> np.uint64:
    """The Langevin noise's key under the root seed: one 64-bit word of the ``dynamics`` purpose's seed sequence
    (its draws are addressed by this key and the step, docs/model.md#noise)."""
    return _seed_sequence(seed, "dynamics").generate_state(1, np.uint64)[0]


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
        try:
            world = sup.load_grid_array(path if path.is_absolute() else base_dir / path, grid)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input, named by its key
            raise ValueError(f"observations.path: {_why(exc)}") from None
        if world.ndim == 2:
            world = world[:, :, None]
        if world.ndim != 3 or world.shape[2] == 0:
            raise ValueError(f"observations.path: {path} has shape {world.shape}: expected (H, W) or (H, W, D)")
        if not np.isfinite(world).all():
            raise ValueError(f"observations.path: {path} contains NaN or infinite values")
        D = world.shape[2]
        value = world.reshape(grid.n_sites, D)[index]
    else:
        D = ocfg.dim if ocfg.dim is not None else (len(ocfg.C) if ocfg.C is not None else K)
        value = vector_field(ocfg, grid, offset, index, D, rng)
    C = np.asarray(ocfg.C, dtype=float) if ocfg.C is not None else np.eye(D, K)
    if C.shape != (D, K):
        raise ValueError(f"observations.C: must be {D}x{K} for {D}-dimensional observations, got {C.shape}")
    Rn = constant_matrix(ocfg.noise, D)
    if Rn.shape != (D, D):
        raise ValueError(f"observations.noise: must be {D}x{D} for {D}-dimensional observations, got {Rn.shape}")
    return Observations(np.ascontiguousarray(value), C, Rn)


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, (ValueError, OSError)) and text else f"{type(exc).__name__}: {text}"


def _support_key(cfg: Config, agent: int) -> str:
    if cfg.agents.supports is not None:
        return f"agents.supports.{agent}"
    return "agents.support"


def _check_finite(key: str, arr: np.ndarray) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{key}: the generated values overflow (not finite): reduce value or scale")


def build(config: Config, base_dir: str | Path | None = None) -> Built:
    """Build everything a run needs. Relative file paths are resolved against ``base_dir`` (default: cwd).

    Every problem with the input raises ``ValueError("key.path: message")`` naming the key it comes from.
    """
    cfg = config
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    grid = Grid(cfg.grid.height, cfg.grid.width, cfg.grid.boundary)
    fiber = make_fiber(cfg.fiber.spins)
    K = fiber.K
    rng = rng_for(cfg.seed, "supports")
    specs = cfg.agents.supports if cfg.agents.supports is not None else [cfg.agents.support] * cfg.agents.n_agents
    chis = []
    for i, spec in enumerate(specs):
        key = _support_key(cfg, i)
        try:
            chi = support_array(spec, grid, rng, base)
        except Exception as exc:  # noqa: BLE001 - a mask file that cannot be read, or values out of range
            raise ValueError(f"{key}{'.path' if isinstance(spec, MaskSupport) else ''}: {_why(exc)}") from None
        if not np.any(chi >= SUPPORT_CUTOFF):
            who = f"agent {i}'s support" if cfg.agents.supports is None else "the support"
            raise ValueError(f"{key}: {who} is empty: no site of the {grid.height}x{grid.width} grid has chi >= "
                             f"{SUPPORT_CUTOFF:g} (a larger radius, or a centre on the grid?)")
        chis.append(chi)
    try:
        offset, index, _ = compress_supports(grid, chis)
    except ValueError as exc:
        agent = str(exc).split(":")[0].removeprefix("agent ")
        key = _support_key(cfg, int(agent)) if agent.isdigit() else "agents"
        raise ValueError(f"{key}: {exc}") from None
    n_sites = grid.n_sites
    prior_mu = vector_field(cfg.priors.mu, grid, offset, index, K, rng_for(cfg.seed, "priors.mu"))
    prior_sigma = matrix_field(cfg.priors.sigma, offset, index, K, rng_for(cfg.seed, "priors.sigma"), n_sites)
    _check_finite("priors.mu", prior_mu)
    _check_finite("priors.sigma", prior_sigma)
    obs = _observations(cfg, grid, offset, index, K, base)
    if obs is not None:
        _check_finite("observations", obs.value)
    try:
        layout = build_layout(grid, fiber, chis, prior_mu, prior_sigma, obs)
    except ValueError as exc:
        text = str(exc)
        key = "priors.sigma" if "prior" in text else "observations" if "observ" in text else "agents"
        raise ValueError(f"{key}: {text}") from None
    _check_loops(cfg, layout)
    init = cfg.agents.init
    if init.from_run is not None:
        state = _state_from_run(init.from_run, layout, base)
        return Built(cfg, layout, state)
    mu = vector_field(init.mu, grid, offset, index, K, rng_for(cfg.seed, "init.mu"))
    sigma = matrix_field(init.sigma, offset, index, K, rng_for(cfg.seed, "init.sigma"), n_sites)
    phi = vector_field(init.phi, grid, offset, index, 3, rng_for(cfg.seed, "init.phi"))
    for key, arr in (("agents.init.mu", mu), ("agents.init.sigma", sigma), ("agents.init.phi", phi)):
        _check_finite(key, arr)
    return Built(cfg, layout, State.from_arrays(mu, sigma, phi))


def _check_loops(cfg: Config, layout: Layout) -> None:
    """The scenario's holonomy loops must run through the agents' supports (checked now, not after the run)."""
    if not cfg.analysis.holonomy.loops:
        return
    from ..analysis.holonomy import loop_from_waypoints

    for k, lp in enumerate(cfg.analysis.holonomy.loops):
        try:
            loop_from_waypoints(layout, lp.name, [tuple(w) for w in lp.waypoints])
        except (ValueError, IndexError) as exc:
            raise ValueError(f"analysis.holonomy.loops.{k}.waypoints: {exc}") from None


def _state_from_run(spec, layout: Layout, base: Path) -> State:
    """mu, Sigma and phi of a frame of an earlier run, which must have the same supports and fiber."""
    from ..io.reader import load

    path = Path(spec.path)
    path = path if path.is_absolute() else base / path
    try:
        traj_cm = load(path)
    except Exception as exc:  # noqa: BLE001 - not HDF5, not a trajectory, unreadable
        raise ValueError(f"agents.init.from.path: {path} is not a readable trajectory ({_why(exc)})") from None
    with traj_cm as traj:
        try:
            fields, n = list(traj.fields), len(traj.frame_steps)
            same = (traj.K == layout.K and np.array_equal(traj.offset, layout.offset)
                    and np.array_equal(traj.index, layout.index))
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"agents.init.from.path: {path} is not a readable trajectory ({_why(exc)})") from None
        missing = [f for f in ("mu", "sigma", "phi") if f not in fields]
        if missing:
            raise ValueError(f"agents.init.from.path: {path} did not log {', '.join(missing)}")
        if not same:
            raise ValueError(f"agents.init.from.path: {path} has other supports or another fiber than this scenario")
        if not -n <= spec.frame < n:
            raise ValueError(f"agents.init.from.frame: frame {spec.frame} is out of range: {path} holds {n} logged "
                             f"frames")
        try:
            state = traj.state(spec.frame)
        except Exception as exc:  # noqa: BLE001 - a damaged frame
            raise ValueError(f"agents.init.from.path: frame {spec.frame} of {path} cannot be read ({_why(exc)})") \
                from None
    for name in ("mu", "sigma", "phi"):
        if not np.isfinite(getattr(state, name)).all():
            raise ValueError(f"agents.init.from.frame: frame {spec.frame} of {path} holds non-finite {name}")
    return State.from_arrays(state.mu, state.sigma, state.phi)  # a new run starts counting at step 0
