"""From a validated :class:`~agents.config.Config` to the plain arrays of a run: Layout, State and parameters.

One root seed, one independent stream per purpose (``numpy.random.SeedSequence`` with a fixed spawn key per
purpose name), so the same config and seed give bit-identical arrays, and adding e.g. observations does not
change the initial beliefs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.fiber import fiber_of
from ..model.grid import SUPPORT_CUTOFF, Grid
from ..model.layout import Layout, Observations, build_layout, compress_supports
from ..model.state import State
from .config import Config
from .generators import constant_matrix, matrix_field, vector_field
from .inputs import EarlierRun, Inputs, load_inputs

PURPOSES = {"supports": 1, "init.mu": 2, "init.sigma": 3, "init.phi": 4, "priors.mu": 5, "priors.sigma": 6,
            "observations": 7, "dynamics": 8, "observations.resample": 9, "ensemble": 10,
            "sweep": 11}


def _seed_sequence(seed: int, purpose: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose],))


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """The random stream of one purpose under the root seed."""
    return np.random.default_rng(_seed_sequence(seed, purpose))


def noise_key(seed: int) -> np.uint64:
    """The Langevin noise's key under the root seed: one 64-bit word of the ``dynamics`` purpose's seed sequence
    (its draws are addressed by this key and the step, docs/model.md#noise)."""
    return _seed_sequence(seed, "dynamics").generate_state(1, np.uint64)[0]


def replica_seed(seed: int, replica: int) -> int:
    """Replica ``replica``'s root seed in an ensemble under the root seed ``seed`` (docs/model.md#replica-ensembles):
    replica 0 runs with ``seed`` itself (so it is the single run, and ``replicas: 1`` is today's run); replica
    r >= 1 with the first 63 bits of ``SeedSequence(seed, spawn_key=(10, r))`` (the ``ensemble`` purpose, r)."""
    return _derived_seed(seed, "ensemble", replica)


def member_seed(seed: int, member: int) -> int:
    """Sweep member ``member``'s root seed under ``sweep: {seeds: per_member}`` (docs/model.md#sweeps): member 0
    keeps ``seed``, member k >= 1 gets the first 63 bits of ``SeedSequence(seed, spawn_key=(11, k))`` (the
    ``sweep`` purpose: independent of the replicas' seeds, so a member's replicas never repeat another member)."""
    return _derived_seed(seed, "sweep", member)


def _derived_seed(seed: int, purpose: str, index: int) -> int:
    if index == 0:
        return int(seed)
    hi, lo = (int(v) for v in np.random.SeedSequence(seed, spawn_key=(PURPOSES[purpose], index))
              .generate_state(2, np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


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


def _observations(cfg: Config, grid: Grid, offset, index, K: int, inputs: Inputs) -> Observations | None:
    ocfg = cfg.observations
    if ocfg.kind == "none":
        return None
    if ocfg.kind == "file":  # (H, W, D), checked against C, dim and noise when it was read
        D = inputs.observations.shape[2]
        value = inputs.observations.reshape(grid.n_sites, D)[index]
    else:
        D = ocfg.dim if ocfg.dim is not None else (len(ocfg.C) if ocfg.C is not None else K)
        value = vector_field(ocfg, grid, offset, index, D, rng_for(cfg.seed, "observations"))
    C = np.asarray(ocfg.C, dtype=float) if ocfg.C is not None else np.eye(D, K)
    return Observations(np.ascontiguousarray(value), C, constant_matrix(ocfg.noise, D))


def _check_finite(key: str, arr: np.ndarray) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{key}: the generated values overflow (not finite): reduce value or scale")


def build(config: Config, base_dir: str | Path | None = None, inputs: Inputs | None = None) -> Built:
    """Build everything a run needs from the config and the arrays of the files it names (``inputs``, as
    :func:`~.scenario.prepare_scenario` read them; read here, relative to ``base_dir`` (default: cwd), when
    not given).

    Every problem with the input raises ``ValueError("key.path: message")`` naming the key it comes from.
    """
    cfg = config
    if inputs is None:
        inputs = load_inputs(cfg, Path(base_dir) if base_dir is not None else Path.cwd())
    grid = Grid(cfg.grid.height, cfg.grid.width, cfg.grid.boundary)
    fiber = fiber_of(cfg.fiber)
    K = fiber.K
    rng = rng_for(cfg.seed, "supports")
    named = cfg.agents.named_supports()  # one per agent: the listed supports, or the template N times
    named = named if cfg.agents.supports is not None else named * cfg.agents.n_agents
    chis = []
    for i, (key, spec) in enumerate(named):
        chi = spec.chi(grid, rng, inputs.masks.get(key))
        if not np.any(chi >= SUPPORT_CUTOFF):
            who = f"agent {i}'s support" if cfg.agents.supports is None else "the support"
            raise ValueError(f"{key}: {who} is empty: no site of the {grid.height}x{grid.width} grid has chi >= "
                             f"{SUPPORT_CUTOFF:g} (a larger radius, or a centre on the grid?)")
        chis.append(chi)
    try:
        offset, index, _ = compress_supports(grid, chis)
    except ValueError as exc:
        agent = str(exc).split(":")[0].removeprefix("agent ")
        key = named[int(agent)][0] if agent.isdigit() and int(agent) < len(named) else "agents"
        raise ValueError(f"{key}: {exc}") from None
    n_sites = grid.n_sites
    prior_mu = vector_field(cfg.priors.mu, grid, offset, index, K, rng_for(cfg.seed, "priors.mu"))
    prior_sigma = matrix_field(cfg.priors.sigma, offset, index, K, rng_for(cfg.seed, "priors.sigma"), n_sites)
    _check_finite("priors.mu", prior_mu)
    _check_finite("priors.sigma", prior_sigma)
    obs = _observations(cfg, grid, offset, index, K, inputs)
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
        return Built(cfg, layout, _state_from_run(inputs.from_run, layout))
    mu = vector_field(init.mu, grid, offset, index, K, rng_for(cfg.seed, "init.mu"))
    sigma = matrix_field(init.sigma, offset, index, K, rng_for(cfg.seed, "init.sigma"), n_sites)
    phi = vector_field(init.phi, grid, offset, index, fiber.n_phi, rng_for(cfg.seed, "init.phi"))
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


def _state_from_run(run: EarlierRun, layout: Layout) -> State:
    """mu, Sigma and phi of the earlier run's frame, which must have been run on the same supports."""
    if not (np.array_equal(run.offset, layout.offset) and np.array_equal(run.index, layout.index)):
        raise ValueError(f"agents.init.from.path: {run.name} has other supports or another fiber than this scenario")
    return State.from_arrays(run.state.mu, run.state.sigma, run.state.phi)  # a new run counts from step 0
