"""The run description: one validated, fully defaulted tree (the scenario file's structure).

A notebook hands a plain dict to :func:`make_config`; the scenario YAML is the same structure. Unknown keys,
wrong types and out-of-range values raise :class:`ConfigError`, each problem named by its key path
(``agents.support.radius``).

Every field below carries its default and a description; the reference page of scenario keys is generated
from these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..analysis.meta_agents import ConsensusParams
from ..model.fiber import MAX_SPIN
from ..model.params import DynamicsParams, EnergyParams, NonNeg, Pos, StrictModel

Point = tuple[float, float]
_Strict = StrictModel


# --- grid and fiber ---------------------------------------------------------------------------------------------

class GridConfig(_Strict):
    height: int = Field(32, ge=1, description="number of rows H")
    width: int = Field(32, ge=1, description="number of columns W")
    boundary: Literal["open", "periodic"] = Field("open", description="open: differences leaving the grid are "
                                                  "dropped; periodic: they wrap (needs H, W >= 3)")

    @model_validator(mode="after")
    def _periodic_size(self):
        if self.boundary == "periodic" and (self.height < 3 or self.width < 3):
            raise ValueError("a periodic grid needs height and width >= 3")
        return self


class FiberConfig(_Strict):
    spins: list[Annotated[int, Field(ge=0, le=MAX_SPIN)]] = Field(
        default_factory=lambda: [1], min_length=1, description="irreps of the fiber, K = sum(2l+1)")

    @property
    def K(self) -> int:
        return sum(2 * s + 1 for s in self.spins)


# --- supports ---------------------------------------------------------------------------------------------------

class _Centered(_Strict):
    center: Point | None = Field(None, description="(y, x); drawn uniformly at random (seeded) when omitted")


class DiskSupport(_Centered):
    shape: Literal["disk"] = "disk"
    radius: Pos = Field(8.0, description="hard disk of this radius")


class EllipseSupport(_Centered):
    shape: Literal["ellipse"] = "ellipse"
    radii: tuple[Pos, Pos] = Field((8.0, 5.0), description="semi-axes (ry, rx)")
    angle: float = Field(0.0, description="rotation in degrees, counter-clockwise")


class RectangleSupport(_Strict):
    shape: Literal["rectangle"] = "rectangle"
    origin: tuple[int, int] | None = Field(None, description="(y0, x0) of the top-left corner; random if omitted")
    size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = Field((8, 8), description="(h, w)")


class WholeSupport(_Strict):
    shape: Literal["whole"] = "whole"


class GaussianSupport(_Centered):
    shape: Literal["gaussian"] = "gaussian"
    width: Pos = Field(4.0, description="soft bump exp(-d^2 / 2 width^2), 1 at the centre")


class BlobSupport(_Centered):
    shape: Literal["blob"] = "blob"
    radius: Pos = Field(8.0, description="mean radius of the seeded random blob")
    roughness: float = Field(0.4, ge=0, lt=1, description="relative radius variation, in [0, 1)")


class MaskSupport(_Strict):
    shape: Literal["mask"] = "mask"
    path: str = Field(..., description=".npy array in [0, 1] or an image (grey level / 255), resized to the grid")
    threshold: float | None = Field(None, gt=0, le=1, description="make the mask hard at this level")


def _default_shape(value):
    """A support without `shape` is a disk."""
    if isinstance(value, dict) and "shape" not in value:
        return {"shape": "disk", **value}
    return value


Support = Annotated[
    Union[DiskSupport, EllipseSupport, RectangleSupport, WholeSupport, GaussianSupport, BlobSupport, MaskSupport],
    Field(discriminator="shape"),
    BeforeValidator(_default_shape),
]


# --- field generators -------------------------------------------------------------------------------------------

class VectorField(_Strict):
    """A vector per agent-site: constant, i.i.d. random, or a seeded smooth random field."""

    kind: Literal["constant", "random", "smooth"] = "constant"
    value: float | list[float] = Field(0.0, description="constant value, or the mean of a random field; a scalar "
                                       "fills every component")
    scale: NonNeg = Field(1.0, description="standard deviation of random and smooth fields")
    length: Pos = Field(4.0, description="correlation length of smooth fields, in sites")
    per: Literal["site", "agent"] = Field("site", description="random: one draw per agent-site or per agent")
    shared: bool = Field(False, description="random/smooth: every agent gets the same values at a site")


class MatrixField(_Strict):
    """A covariance per agent-site: constant, or random SPD ``scale * expm(spread * A)``, A symmetric Gaussian."""

    kind: Literal["constant", "random"] = "constant"
    value: float | list[float] | list[list[float]] = Field(1.0, description="scalar (times I), diagonal, or full "
                                                           "SPD matrix")
    scale: Pos = Field(1.0, description="random: overall scale")
    spread: NonNeg = Field(0.3, description="random: log-eigenvalue spread")
    per: Literal["site", "agent"] = Field("site")
    shared: bool = Field(False)


class FromRun(_Strict):
    """Start from a frame of an earlier run (same grid, fiber and supports)."""

    path: str = Field(..., description="trajectory file (.h5) of the earlier run")
    frame: int = Field(-1, description="frame index (negative counts from the end; -1 = last)")


class InitConfig(_Strict):
    mu: VectorField = Field(default_factory=lambda: VectorField(kind="random", per="agent"))
    sigma: MatrixField = Field(default_factory=MatrixField)
    phi: VectorField = Field(default_factory=VectorField, description="frames, so(3) 3-vectors")
    from_run: FromRun | None = Field(None, alias="from", description="take mu, Sigma and phi from an earlier run "
                                     "(replaces the three generators)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AgentsConfig(_Strict):
    count: int | None = Field(None, ge=1, description="number of agents built from `support`")
    support: Support = Field(default_factory=DiskSupport, description="support template for `count` agents")
    supports: list[Support] | None = Field(None, min_length=1, description="explicit supports, one per agent")
    init: InitConfig = Field(default_factory=InitConfig)

    @model_validator(mode="after")
    def _count_or_list(self):
        if self.supports is not None and self.count is not None and self.count != len(self.supports):
            raise ValueError(f"count is {self.count} but {len(self.supports)} supports are listed")
        return self

    @property
    def n_agents(self) -> int:
        if self.supports is not None:
            return len(self.supports)
        return self.count if self.count is not None else 8


class PriorsConfig(_Strict):
    mu: VectorField = Field(default_factory=VectorField)
    sigma: MatrixField = Field(default_factory=MatrixField)


class ObservationsConfig(VectorField):
    kind: Literal["none", "constant", "random", "smooth", "file"] = Field("none")  # type: ignore[assignment]
    path: str | None = Field(None, description="file: .npy (H, W) or (H, W, D), or an image (pixels / 255)")
    dim: int | None = Field(None, ge=1, description="D for generated observations (default K)")
    C: list[list[float]] | None = Field(None, description="D x K observation matrix (default: eye(D, K))")
    noise: float | list[float] | list[list[float]] = Field(1.0, description="Rn: scalar (times I), diagonal or "
                                                           "D x D SPD")

    @model_validator(mode="after")
    def _file_needs_path(self):
        if self.kind == "file" and not self.path:
            raise ValueError("observations of kind 'file' need a path")
        return self


class OutputConfig(_Strict):
    path: str | None = Field(None, description="trajectory file; default runs/<name>.h5")
    every: int = Field(10, ge=1, description="log the fields every k-th step (energies: every step)")
    dtype: Literal["float32", "float64"] = Field("float32", description="logged fields' precision (energies and "
                                                 "the checkpoint are always float64)")
    fields: list[Literal["mu", "sigma", "phi", "beta"]] = Field(
        default_factory=lambda: ["mu", "sigma", "phi"], description="fields to log per frame")
    compression: Literal["gzip", "lzf", "none"] = Field("gzip", description="gzip (level below) opens in every "
                                                         "HDF5 reader; lzf is faster but h5py-only")
    compression_level: int = Field(1, ge=0, le=9)


class LoopConfig(_Strict):
    name: str = Field(..., description="loop name in the results")
    waypoints: list[tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]]] = \
        Field(..., min_length=2, description="[agent, y, x] points; lattice paths join points of one agent, "
              "consecutive points of two agents at one site switch frames; closed back to the first")


class HolonomyConfig(_Strict):
    automatic: bool = Field(True, description="loops around every overlap of two or three agents")
    loops: list[LoopConfig] = Field(default_factory=list, description="user loops")


class AnalysisConfig(_Strict):
    enabled: bool = Field(True, description="analyse every logged frame when the run ends (as `vfe analyze`)")
    meta_agents: ConsensusParams = Field(default_factory=ConsensusParams)
    holonomy: HolonomyConfig = Field(default_factory=HolonomyConfig)


class SweepConfig(_Strict):
    params: dict[str, list[Any] | str] = Field(default_factory=dict, description="key.path: list of values, "
                                               "or an integer range 'start:stop[:step]'")
    zip: bool = Field(False, description="pair the values (all lists equally long) instead of their product")


class Config(_Strict):
    name: str = Field("unnamed", description="run name; the default output is runs/NAME.h5")
    seed: int = Field(0, ge=0, description="root seed: one independent stream per purpose (supports, initial "
                      "fields, priors, observations)")
    grid: GridConfig = Field(default_factory=GridConfig)
    fiber: FiberConfig = Field(default_factory=FiberConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    priors: PriorsConfig = Field(default_factory=PriorsConfig)
    observations: ObservationsConfig = Field(default_factory=ObservationsConfig)
    energy: EnergyParams = Field(default_factory=EnergyParams)
    dynamics: DynamicsParams = Field(default_factory=DynamicsParams)
    output: OutputConfig = Field(default_factory=OutputConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    sweep: SweepConfig | None = Field(None, description="a parameter study over this scenario (`vfe sweep`)")

    def cross_field_problems(self) -> list[tuple[str, str]]:
        """(key path, message) of every problem that involves several keys at once (sizes, ranges, loops)."""
        K = self.fiber.K
        problems = []
        for path, fieldcfg in (("agents.init.mu", self.agents.init.mu), ("priors.mu", self.priors.mu)):
            problems += _vector_length(path, fieldcfg.value, K)
        problems += _vector_length("agents.init.phi", self.agents.init.phi.value, 3)
        for path, m in (("agents.init.sigma", self.agents.init.sigma), ("priors.sigma", self.priors.sigma)):
            problems += _matrix_problems(path + ".value", m.value, K)
        obs = self.observations
        if obs.kind != "none":
            D = obs.dim if obs.dim is not None else (len(obs.C) if obs.C is not None else K)
            if obs.C is not None:
                if any(len(row) != K for row in obs.C):
                    problems.append(("observations.C", f"every row needs K = {K} entries"))
            if obs.kind != "file":
                problems += _vector_length("observations", obs.value, D)
            problems += _matrix_problems("observations.noise", obs.noise, D)
        H, W = self.grid.height, self.grid.width
        supports = self.agents.supports if self.agents.supports is not None else [self.agents.support]
        for k, sup in enumerate(supports):
            where = f"agents.supports.{k}" if self.agents.supports is not None else "agents.support"
            problems += _support_problems(where, sup, H, W)
        n_agents = self.agents.n_agents
        for k, loop in enumerate(self.analysis.holonomy.loops):
            for p, (agent, y, x) in enumerate(loop.waypoints):
                if agent >= n_agents or y >= H or x >= W:
                    problems.append((f"analysis.holonomy.loops.{k}.waypoints.{p}", f"[{agent}, {y}, {x}] is not an "
                                     f"agent ({n_agents}) and site of the grid ({H}x{W})"))
        if self.sweep is not None:
            for key, values in self.sweep.params.items():
                if isinstance(values, str) and not _is_int_range(values):
                    problems.append((f"sweep.params.{key}", "a string must be an integer range start:stop[:step]"))
                if isinstance(values, list) and not values:
                    problems.append((f"sweep.params.{key}", "no values"))
            lengths = {len(v) for v in self.sweep.params.values() if isinstance(v, list)}
            if self.sweep.zip and len(lengths) > 1:
                problems.append(("sweep.zip", "every parameter needs the same number of values"))
        return problems

    def to_dict(self) -> dict:
        """The resolved configuration, every default filled in (JSON-compatible)."""
        return self.model_dump(mode="json", by_alias=True)


def _is_int_range(text: str) -> bool:
    parts = text.split(":")
    return 2 <= len(parts) <= 3 and all(p.strip().lstrip("-").isdigit() for p in parts)


def _vector_length(path: str, value, n: int) -> list[tuple[str, str]]:
    if isinstance(value, list) and len(value) != n:
        return [(f"{path}.value", f"needs {n} components, got {len(value)}")]
    return []


def _matrix_problems(path: str, value, n: int) -> list[tuple[str, str]]:
    if isinstance(value, (int, float)):
        return [] if value > 0 else [(path, f"must be > 0, got {value}")]
    if value and isinstance(value[0], list):
        m = np.array(value, dtype=float)
        if m.shape != (n, n):
            return [(path, f"needs a {n}x{n} matrix, got shape {m.shape}")]
        if not np.allclose(m, m.T):
            return [(path, "matrix is not symmetric")]
        if np.linalg.eigvalsh(m).min() <= 0:
            return [(path, "matrix is not positive definite")]
        return []
    if len(value) != n:
        return [(path, f"diagonal needs {n} entries, got {len(value)}")]
    if min(value) <= 0:
        return [(path, "diagonal entries must be > 0")]
    return []


def _support_problems(path: str, sup, H: int, W: int) -> list[tuple[str, str]]:
    out = []
    size = max(H, W)
    radius = getattr(sup, "radius", None)
    if radius is not None and radius > size:
        out.append((f"{path}.radius", f"{radius} is larger than the grid ({H}x{W})"))
    center = getattr(sup, "center", None)
    if center is not None and not (0 <= center[0] <= H - 1 and 0 <= center[1] <= W - 1):
        out.append((f"{path}.center", f"{list(center)} lies outside the grid ({H}x{W})"))
    if isinstance(sup, RectangleSupport):
        if sup.size[0] > H or sup.size[1] > W:
            out.append((f"{path}.size", f"{list(sup.size)} is larger than the grid ({H}x{W})"))
    return out


class ConfigError(ValueError):
    """Invalid configuration. ``problems`` is a list of (key path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in problems))


def make_config(data: dict | Config | None = None) -> Config:
    """Validate a plain dict (the scenario structure) into a :class:`Config` with every default filled in.

    Raises :class:`ConfigError` listing every problem found, each with its key path.
    """
    if isinstance(data, Config):
        config = data
    else:
        try:
            config = Config.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError([(".".join(str(p) for p in err["loc"] if not _is_union_tag(p)),
                                _strip_prefix(err["msg"])) for err in exc.errors()]) from None
    problems = config.cross_field_problems()
    if problems:
        raise ConfigError(problems)
    return config


def _strip_prefix(msg: str) -> str:
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _is_union_tag(part) -> bool:
    # pydantic puts the discriminator value ("disk") or the union member type in the location path
    return isinstance(part, str) and (part in {"disk", "ellipse", "rectangle", "whole", "gaussian", "blob", "mask"}
                                      or "[" in part or part.startswith("function-"))
