"""The run description: one validated, fully defaulted tree (the scenario file's structure).

A notebook hands a plain dict to :func:`make_config`; the scenario YAML is the same structure. Unknown keys,
wrong types and out-of-range values raise :class:`ConfigError`, each problem named by its key path
(``agents.support.radius``).

Every field below carries its default and a description; the reference page of scenario keys is generated
from these models.
"""

from __future__ import annotations

import math
import re
import types
import typing
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WrapValidator,
                      field_validator, model_serializer, model_validator)

from ..analysis.meta_agents import ConsensusParams
from ..model.fiber import MAX_GLK_DIM, MAX_SPIN
from ..model.hierarchy import HierarchyParams
from ..model.params import NOISE_WITH_LINE_SEARCH, DynamicsParams, EnergyParams, NonNeg, Pos, StrictModel
from ..io.suggest import did_you_mean
from .shapes import SHAPES, DiskSupport, PathText, Support

_Strict = StrictModel

MAX_GRID_SITES = 10**8  # grid.height * grid.width: refused above this before any array is made
MAX_INT64 = 2**63 - 1
MAX_AGENTS = 10**8  # agents.count: far beyond any memory; keeps the size arithmetic in range


# --- numbers: every float finite, and one clear message for "a number, a list, or a matrix" -------------------

def _bad_number(value, where: str = "") -> str | None:
    """Why ``value`` is not a finite real number, or None if it is one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r}{where} is not a number"
    if not math.isfinite(value):
        return f"{value!r}{where} is not a finite number"
    return None


def _numeric(value, depth: int) -> str | None:
    """Why ``value`` is not a number (depth 0), a list of numbers (1) or a list of lists of numbers (2)."""
    if depth == 0 or not isinstance(value, (list, tuple)):
        return _bad_number(value)
    for i, item in enumerate(value):
        if isinstance(item, (list, tuple)):
            if depth < 2:
                return f"entry {i} is a list: expected numbers"
            for j, x in enumerate(item):
                if (why := _bad_number(x, f" (entry [{i}][{j}])")) is not None:
                    return why
        elif (why := _bad_number(item, f" (entry {i})")) is not None:
            return why
    return None


def _numbers(kinds: str, depth: int):
    """A validator that replaces pydantic's one-error-per-union-member with one message saying what is wrong."""

    def check(value, handler):
        try:
            return handler(value)
        except ValidationError:
            why = _numeric(value, depth)
            if why is None and depth == 2 and isinstance(value, (list, tuple)) and \
                    any(isinstance(v, (list, tuple)) for v in value):
                why = "mixes numbers and lists"
            raise ValueError(f"{why + ': ' if why else ''}expected {kinds}") from None

    return WrapValidator(check)


ScalarOrVector = Annotated[float | list[float], _numbers("a number or a list of numbers", 1)]
ScalarVectorOrMatrix = Annotated[float | list[float] | list[list[float]],
                                 _numbers("a number, a list of numbers (diagonal) or a list of rows (matrix)", 2)]


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=,@-]*"  # a run's and a scenario's name: it names files and log lines
MAX_NAME_LENGTH = 128
_NAME = re.compile(NAME_PATTERN)


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a run or scenario name, or None. Letters, digits and ``. _ + = , @ -`` only (not
    first: a name starting with '-' or '.' reads as an option or a hidden file): no '/', no space, no newline."""
    if not value.strip():
        return "the name is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"a name has at most {MAX_NAME_LENGTH} characters (this one has {len(value)})"
    if _NAME.fullmatch(value) is None:
        bad = next((c for c in value if _NAME.fullmatch("a" + c) is None), value[0])
        return (f"{value!r}: a name cannot contain {bad!r} (nor start with '.' or '-'): it names the output file "
                "runs/NAME.h5; use letters, digits and . _ + = , @ -")
    return None


def _clean_name(value: str) -> str:
    if (why := name_problem(value)) is not None:
        raise ValueError(why)
    return value


# --- booleans are not numbers: YAML's `true` and `--set x=true` are refused where a number is expected ---------

def _takes_bool(annotation) -> bool:
    """Whether a field of this type accepts true/false as such (bool, Any, or a union holding one)."""
    if annotation is bool or annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _takes_bool(args[0])
    if origin in (typing.Union, types.UnionType):
        return any(_takes_bool(a) for a in args)
    if origin is Literal:
        return any(isinstance(a, bool) for a in args)
    return False


def _unions(annotation) -> tuple:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _unions(args[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for a in args for m in _unions(a))
    return (annotation,)


def bool_problems(annotation, value, path: str = "") -> list[tuple[str, str]]:
    """(key path, message) of every ``true``/``false`` in ``value`` where ``annotation`` expects no boolean.

    pydantic (lax) reads true as 1 and 1.0, so ``agents.count: true`` would mean one agent: this walks the raw
    data along the schema before pydantic sees it."""
    if isinstance(value, bool):
        if _takes_bool(annotation) or not any(m in (int, float) for m in _unions(annotation)):
            return []  # a bool, or a type pydantic refuses true for by itself (text, a list)
        return [(path, f"{str(value).lower()} is a boolean, not a number (write 1 or 0 if a number is meant)")]
    out = []
    for member in _unions(annotation):
        origin, args = typing.get_origin(member), typing.get_args(member)
        if isinstance(value, dict) and isinstance(member, type) and issubclass(member, BaseModel):
            shape = member.model_fields.get("shape")
            if shape is not None and value.get("shape", "disk") != shape.default:
                continue  # a support of another shape
            for name, field in member.model_fields.items():
                key = field.alias or name
                if key in value:
                    out += bool_problems(field.annotation, value[key], f"{path}.{key}" if path else key)
            return out
        if isinstance(value, list) and origin in (list, tuple) and args:
            items = args if origin is tuple and Ellipsis not in args else (args[0],) * len(value)
            for i, (item, ann) in enumerate(zip(value, items)):
                out += bool_problems(ann, item, f"{path}.{i}")
            return out
    return out


# --- grid and fiber ---------------------------------------------------------------------------------------------

class GridConfig(_Strict):
    height: int = Field(32, ge=1, description="number of rows H")
    width: int = Field(32, ge=1, description="number of columns W")
    boundary: Literal["open", "periodic"] = Field("open", description="open: differences leaving the grid are "
                                                  "dropped; periodic: they wrap (needs H, W >= 3)")

    @model_validator(mode="after")
    def _periodic_size(self):
        if self.height * self.width > MAX_GRID_SITES:
            raise ValueError(f"{self.height}x{self.width} is more sites than a run can hold (at most 10^8 = "
                             "height * width)")
        if self.boundary == "periodic" and (self.height < 3 or self.width < 3):
            raise ValueError("a periodic grid needs height and width >= 3")
        return self


class FiberConfig(_Strict):
    group: Literal["so3", "glk"] = Field("so3", description="gauge group of the frames: so3 (a representation "
                                         "of SO(3), set by spins) or glk (GL(K) frames, K = dim; "
                                         "docs/model.md#glk-frames)")
    spins: list[Annotated[int, Field(ge=0, le=MAX_SPIN)]] = Field(
        default_factory=lambda: [1], min_length=1, description="so3: irreps of the fiber, K = sum(2l+1)")
    dim: int | None = Field(None, ge=1, le=MAX_GLK_DIM, description="glk: the fiber dimension K (phi has K^2 "
                            "coordinates a row)")

    @model_validator(mode="after")
    def _group_keys(self):
        if self.group == "glk":
            if self.dim is None:
                raise ValueError("group glk needs fiber.dim, the fiber dimension K")
            if "spins" in self.model_fields_set:
                raise ValueError("spins are for group so3; a glk fiber's dimension is fiber.dim")
        elif self.dim is not None:
            raise ValueError("dim is for group glk; an so3 fiber's dimension comes from fiber.spins")
        return self

    @model_serializer(mode="wrap")
    def _only_the_groups_keys(self, handler):
        # an so3 fiber is stored as before groups existed ({spins}), so existing runs' configurations and files
        # stay bit-identical; a glk fiber as {group, dim}
        out = handler(self)
        if self.group == "so3":
            out.pop("group", None)
            out.pop("dim", None)
        else:
            out.pop("spins", None)
        return out

    @property
    def K(self) -> int:
        return self.dim if self.group == "glk" else sum(2 * s + 1 for s in self.spins)

    @property
    def n_phi(self) -> int:
        """Coordinates of phi per row: 3 (so(3)) or K^2 (gl(K))."""
        return self.K * self.K if self.group == "glk" else 3


# --- field generators -------------------------------------------------------------------------------------------

class VectorField(_Strict):
    """A vector per agent-site: constant, i.i.d. random, or a seeded smooth random field."""

    kind: Literal["constant", "random", "smooth"] = "constant"
    value: ScalarOrVector = Field(0.0, description="constant value, or the mean of a random field; a scalar "
                                  "fills every component")
    scale: NonNeg = Field(1.0, description="standard deviation of random and smooth fields")
    length: Pos = Field(4.0, description="correlation length of smooth fields, in sites")
    per: Literal["site", "agent"] = Field("site", description="random: one draw per agent-site or per agent")
    shared: bool = Field(False, description="random/smooth: every agent gets the same values at a site")


class MatrixField(_Strict):
    """A covariance per agent-site: constant, or random SPD ``scale * expm(spread * A)``, A symmetric Gaussian."""

    kind: Literal["constant", "random"] = "constant"
    value: ScalarVectorOrMatrix = Field(1.0, description="scalar (times I), diagonal, or full SPD matrix")
    scale: Pos = Field(1.0, description="random: overall scale")
    spread: NonNeg = Field(0.3, description="random: log-eigenvalue spread")
    per: Literal["site", "agent"] = Field("site")
    shared: bool = Field(False)


class FromRun(_Strict):
    """Start from a frame of an earlier run (same grid, fiber and supports)."""

    path: PathText = Field(..., description="trajectory file (.h5) of the earlier run")
    frame: int = Field(-1, description="frame index (negative counts from the end; -1 = last)")


class InitConfig(_Strict):
    mu: VectorField = Field(default_factory=lambda: VectorField(kind="random", per="agent"))
    sigma: MatrixField = Field(default_factory=MatrixField)
    phi: VectorField = Field(default_factory=VectorField, description="frames: so(3) 3-vectors, or for fiber.group "
                             "glk gl(K) matrices as K^2 values, row-major")
    from_run: FromRun | None = Field(None, alias="from", description="take mu, Sigma and phi from an earlier run "
                                     "(replaces the three generators)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AgentsConfig(_Strict):
    count: int | None = Field(None, ge=1, le=MAX_AGENTS, description="number of agents built from `support`")
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

    def named_supports(self) -> list[tuple[str, Support]]:
        """(key path, spec) of the distinct supports: the listed ones, or the one template of ``count`` agents."""
        if self.supports is not None:
            return [(f"agents.supports.{i}", s) for i, s in enumerate(self.supports)]
        return [("agents.support", self.support)]


class PriorsConfig(_Strict):
    mu: VectorField = Field(default_factory=VectorField)
    sigma: MatrixField = Field(default_factory=MatrixField)


class ObservationsConfig(VectorField):
    kind: Literal["none", "constant", "random", "smooth", "file"] = Field("none")  # type: ignore[assignment]
    path: PathText | None = Field(None, description="file: .npy (H, W) or (H, W, D), or an image (pixels / 255)")
    dim: int | None = Field(None, ge=1, description="D for generated observations (default K)")
    C: list[Annotated[list[float], Field(min_length=1)]] | None = Field(
        None, min_length=1, description="D x K observation matrix (default: eye(D, K))")
    noise: ScalarVectorOrMatrix = Field(1.0, description="Rn: scalar (times I), diagonal or D x D SPD")
    resample_every: int | None = Field(None, ge=1, description="streaming observations: every k steps each observed "
                                       "site gets a fresh draw, the configured value plus N(0, Rn) noise")

    @model_validator(mode="after")
    def _file_needs_path(self):
        if self.kind == "file" and not self.path:
            raise ValueError("observations of kind 'file' need a path")
        return self


class OutputConfig(_Strict):
    path: PathText | None = Field(None, description="trajectory file; default runs/NAME.h5")
    every: int = Field(10, ge=1, description="log the fields every k-th step (energies: every step)")
    dtype: Literal["float32", "float64"] = Field("float32", description="logged fields' precision (energies and "
                                                 "the checkpoint are always float64)")
    fields: list[Literal["mu", "sigma", "phi", "beta"]] = Field(
        default_factory=lambda: ["mu", "sigma", "phi"], description="fields to log per frame: mu, sigma and phi "
        "(needed to resume, analyse and start other runs from a frame), optionally beta")

    @field_validator("fields")
    @classmethod
    def _needed_fields(cls, value):
        missing = [f for f in ("mu", "sigma", "phi") if f not in value]
        if missing:
            raise ValueError(f"must contain mu, sigma and phi (beta is optional); missing: {', '.join(missing)}")
        if len(set(value)) != len(value):
            raise ValueError("a field is listed twice")
        return value
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
    seeds: Literal["shared", "per_member"] = Field(
        "shared", description="shared: every member runs with the scenario's seed (members differ only in the swept "
        "values, and share their noise); per_member: member k runs with its own root seed derived from the "
        "scenario's (member 0 keeps it), recorded as the summary's param:seed column")


class EnsembleConfig(_Strict):
    """Replica ensembles (docs/model.md#replica-ensembles): R independent copies of the scenario stepped in one
    engine, replica r with the seed :func:`~agents.setup.build.replica_seed` (root seed, r)."""

    replicas: int = Field(1, ge=1, le=1 << 20, description="independent copies of the scenario, stepped together; "
                          "1: the single run, bit for bit")


class Config(_Strict):
    """The validated scenario with every default filled in: the one thing the CLI, a notebook or a sweep hands
    to the set-up. ``make_config`` builds it from a dict; docs/scenario-reference.md lists every key."""

    name: Annotated[str, AfterValidator(_clean_name)] = Field(
        "unnamed", description="run name; the default output is runs/NAME.h5")
    seed: int = Field(0, ge=0, le=MAX_INT64, description="root seed: one independent stream per purpose "
                      "(supports, initial fields, priors, observations)")
    grid: GridConfig = Field(default_factory=GridConfig)
    fiber: FiberConfig = Field(default_factory=FiberConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)
    priors: PriorsConfig = Field(default_factory=PriorsConfig)
    observations: ObservationsConfig = Field(default_factory=ObservationsConfig)
    energy: EnergyParams = Field(default_factory=EnergyParams)
    dynamics: DynamicsParams = Field(default_factory=DynamicsParams)
    hierarchy: HierarchyParams = Field(default_factory=HierarchyParams, description="cross-scale coupling: "
                                       "meta-agents pull their members' priors (docs/model.md#hierarchy-coupling)")
    output: OutputConfig = Field(default_factory=OutputConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    sweep: SweepConfig | None = Field(None, description="a parameter study over this scenario (`vfe sweep`)")
    ensemble: EnsembleConfig | None = Field(None, description="replica ensembles: R copies stepped in one engine "
                                            "(docs/model.md#replica-ensembles)")

    @model_validator(mode="after")
    def _single_replica_is_the_run(self):
        # one replica is the single run: the same config, so the same file (docs/model.md#replica-ensembles)
        if self.ensemble is not None and self.ensemble.replicas == 1:
            object.__setattr__(self, "ensemble", None)
        return self

    @property
    def replicas(self) -> int:
        """The number of replicas the scenario asks for (1: a single run)."""
        return 1 if self.ensemble is None else self.ensemble.replicas

    def cross_field_problems(self) -> list[tuple[str, str]]:
        """(key path, message) of every problem that involves several keys at once (sizes, ranges, loops)."""
        K = self.fiber.K
        problems = []
        for path, fieldcfg in (("agents.init.mu", self.agents.init.mu), ("priors.mu", self.priors.mu)):
            problems += _vector_length(path, fieldcfg.value, K)
        problems += _vector_length("agents.init.phi", self.agents.init.phi.value, self.fiber.n_phi)
        if self.fiber.group == "glk":
            problems += self._glk_problems()
        for path, m in (("agents.init.sigma", self.agents.init.sigma), ("priors.sigma", self.priors.sigma)):
            problems += _matrix_problems(path + ".value", m.value, K)
        obs = self.observations
        if obs.kind == "none" and obs.resample_every is not None:
            problems.append(("observations.resample_every", "needs observations (observations.kind is none)"))
        if obs.kind != "none":
            D = obs.dim if obs.dim is not None else (len(obs.C) if obs.C is not None else K)
            if obs.C is not None:
                if any(len(row) != K for row in obs.C):
                    problems.append(("observations.C", f"every row needs K = {K} entries"))
                if obs.dim is not None and len(obs.C) != obs.dim:
                    problems.append(("observations.C", f"has {len(obs.C)} rows but observations.dim is {obs.dim}"))
            if obs.kind != "file":
                problems += _vector_length("observations", obs.value, D)
                problems += _matrix_problems("observations.noise", obs.noise, D)
            elif obs.C is not None or obs.dim is not None:  # D of a file is known once it is read
                problems += _matrix_problems("observations.noise", obs.noise, D)
            else:
                problems += _matrix_problems("observations.noise", obs.noise, None)
        if self.dynamics.noisy and self.dynamics.line_search.enabled:
            problems.append(("dynamics.temperature", NOISE_WITH_LINE_SEARCH))
        if self.hierarchy.enabled and self.output.every % self.hierarchy.every != 0:
            # a coupled run resumes bit for bit only from a checkpoint at a refresh step (docs/model.md#hierarchy-
            # coupling): every logged checkpoint must be one, or a killed run could not be continued
            problems.append(("output.every", f"must be a multiple of hierarchy.every = {self.hierarchy.every} when "
                             "the hierarchy coupling is enabled (only a checkpoint at a refresh step can resume)"))
        H, W = self.grid.height, self.grid.width
        for where, sup in self.agents.named_supports():
            problems += [(f"{where}.{key}", msg) for key, msg in sup.grid_problems(H, W)]
        n_agents = self.agents.n_agents
        names = set()
        for k, loop in enumerate(self.analysis.holonomy.loops):
            if loop.name in names:
                problems.append((f"analysis.holonomy.loops.{k}.name", f"loop name {loop.name!r} is used twice"))
            names.add(loop.name)
            for p, (agent, y, x) in enumerate(loop.waypoints):
                if agent >= n_agents or y >= H or x >= W:
                    problems.append((f"analysis.holonomy.loops.{k}.waypoints.{p}", f"[{agent}, {y}, {x}] is not an "
                                     f"agent ({n_agents}) and site of the grid ({H}x{W})"))
        if self.sweep is not None:
            problems += self._sweep_problems()
        return problems

    def _glk_problems(self) -> list[tuple[str, str]]:
        """The features GL(K) frames do not support yet (docs/model.md#glk-frames): refused rather than computed
        for SO(3) frames."""
        why = "is not supported with fiber.group glk yet (docs/model.md#glk-frames)"
        problems = []
        if self.analysis.enabled:
            problems.append(("analysis.enabled", "the analysis (meta-agents, holonomy, gauge-invariant series) "
                             f"{why}: set analysis.enabled: false"))
        if self.dynamics.noisy:
            problems.append(("dynamics.temperature", f"Langevin noise {why}"))
        if self.hierarchy.enabled:
            problems.append(("hierarchy.enabled", f"the hierarchy coupling {why}"))
        if self.replicas > 1:
            problems.append(("ensemble.replicas", f"a replica ensemble {why}"))
        if self.agents.init.from_run is not None:
            problems.append(("agents.init.from", f"starting from an earlier run {why}"))
        return problems

    def _sweep_problems(self) -> list[tuple[str, str]]:
        """Range strings, empty lists, and every swept value checked alone against its key's type and range."""
        problems = []
        base = self.model_dump(mode="python", by_alias=True, exclude={"sweep"})
        for key, values in self.sweep.params.items():
            where = f"sweep.params.{key}"
            if isinstance(values, str):
                if not _is_int_range(values):
                    problems.append((where, "a string must be an integer range start:stop[:step]"))
                    continue
                nums = [int(p) for p in values.split(":")]
                if len(nums) == 3 and nums[2] == 0:
                    problems.append((where, "the range's step is 0"))
                    continue
                if not range(*nums):
                    problems.append((where, f"the range {values} is empty"))
                    continue
                values = list(range(*nums))[:2] + list(range(*nums))[-1:]  # the ends stand for the range
            if not values:
                problems.append((where, "no values"))
                continue
            if key.split(".")[0] == "sweep":
                problems.append((where, "the sweep section cannot sweep itself"))
                continue
            for i, value in enumerate(values):
                why = check_value(base, key, value)
                if why == "no such key":
                    problems.append((where, f"{key}: no such key in a scenario"))
                    break
                if why is not None:
                    problems.append((f"{where}.{i}" if not isinstance(self.sweep.params[key], str) else where,
                                     f"{key}={value!r}: {why}"))
                    break
        lengths = {len(v) for v in self.sweep.params.values() if isinstance(v, list)}
        if self.sweep.zip and len(lengths) > 1:
            problems.append(("sweep.zip", "every parameter needs the same number of values"))
        return problems

    def to_dict(self) -> dict:
        """The resolved configuration, every default filled in (JSON-compatible)."""
        # a single run's stored configuration has no ensemble key, as before ensembles existed
        return self.model_dump(mode="json", by_alias=True, exclude={"ensemble"} if self.ensemble is None else None)


def _is_int_range(text: str) -> bool:
    parts = text.split(":")
    return 2 <= len(parts) <= 3 and all(p.strip().lstrip("-").isdigit() for p in parts)


def _vector_length(path: str, value, n: int) -> list[tuple[str, str]]:
    if isinstance(value, list) and len(value) != n:
        return [(f"{path}.value", f"needs {n} components, got {len(value)}")]
    return []


def check_value(base: dict, key: str, value) -> str | None:
    """Why ``key = value`` alone is not valid in the resolved configuration ``base`` (a ``model_dump``): "no such
    key", a wrong type (a boolean for a number too), out of range; or None. A sweep checks its grid with this."""
    if bools := bool_problems(Config, _with_value({}, key, value)):
        return bools[0][1]
    return _check_value(base, key, value)


def _with_value(data: dict, key: str, value) -> dict:
    """``{a: {b: value}}`` for key ``a.b`` (list indices as keys: bool_problems then finds no list to walk)."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _check_value(base: dict, key: str, value) -> str | None:
    """Why ``key = value`` alone is not valid (unknown key, wrong type, out of range), or None."""
    import copy

    data = copy.deepcopy(base)
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                return "no such key"
            node = node[int(part)]
        elif isinstance(node, dict):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            node = child
        else:
            return "no such key"
    if isinstance(node, list):
        if not (parts[-1].isdigit() and int(parts[-1]) < len(node)):
            return "no such key"
        node[int(parts[-1])] = value
    elif isinstance(node, dict):
        node[parts[-1]] = value
    else:  # e.g. dynamics.temperature.mu after `--set dynamics.temperature=0` made the temperature one number
        return f"{'.'.join(parts[:-1])} is the value {node!r}, not a mapping"
    try:
        Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
            if loc == key or loc.startswith(key + ".") or key.startswith(loc + ".") and loc:
                msg = _strip_prefix(err["msg"])
                return "no such key" if msg.startswith("Extra inputs") else msg
    return None


def _matrix_problems(path: str, value, n: int | None) -> list[tuple[str, str]]:
    """A scalar (> 0), a diagonal (n entries > 0) or an n x n SPD matrix; ``n=None``: the size is not known yet."""
    if isinstance(value, (int, float)):
        return [] if value > 0 else [(path, f"must be > 0, got {value}")]
    if value and isinstance(value[0], list):
        if any(len(row) != len(value) for row in value):
            return [(path, f"needs a square matrix{f' ({n}x{n})' if n else ''}: every row needs {len(value)} "
                     "entries")]
        m = np.array(value, dtype=float)
        if n is not None and m.shape != (n, n):
            return [(path, f"needs a {n}x{n} matrix, got shape {m.shape}")]
        if not np.allclose(m, m.T):
            return [(path, "matrix is not symmetric")]
        with np.errstate(all="ignore"):
            eig = np.linalg.eigvalsh(m) if np.isfinite(m).all() else np.array([np.nan])
        if not np.isfinite(eig).all() or eig.min() <= 0:
            return [(path, "matrix is not positive definite")]
        return []
    if n is not None and len(value) != n:
        return [(path, f"diagonal needs {n} entries, got {len(value)}")]
    if not value or min(value) <= 0:
        return [(path, "diagonal entries must be > 0")]
    return []


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
        bools = bool_problems(Config, data) if isinstance(data, dict) else []
        if bools:
            raise ConfigError(bools)
        try:
            config = Config.model_validate(data or {})
        except ValidationError as exc:
            raise ConfigError(_merge([(".".join(str(p) for p in err["loc"] if not _is_union_tag(p)),
                                       _plain_message(err)) for err in exc.errors()])) from None
        except (OverflowError, RecursionError) as exc:  # pathological numbers or nesting, not a crash
            raise ConfigError([("", f"cannot be validated: {type(exc).__name__}: {exc}")]) from None
    problems = config.cross_field_problems()
    if problems:
        raise ConfigError(problems)
    return config


def _merge(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """One problem per key: the alternatives pydantic reports for a union become "A; or B"."""
    merged: dict[str, list[str]] = {}
    for key, msg in problems:
        if msg not in merged.setdefault(key, []):
            merged[key].append(msg)
    return [(key, "; or ".join(msgs)) for key, msgs in merged.items()]


def _plain_message(err: dict) -> str:
    """pydantic's message for one error, in plain words: an unknown key says so and names the closest valid
    keys at its place (a typo is the usual cause); other messages lose pydantic's "Value error, " prefix."""
    if err["type"] == "extra_forbidden":
        *where, key = err["loc"]
        return "no such key" + did_you_mean(key, keys_at(where), noun="keys here")
    return _strip_prefix(err["msg"])


def _models_in(annotation) -> list[type]:
    """The pydantic models an annotation can hold (through Optional, unions, lists and Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def keys_at(where) -> list[str]:
    """The valid scenario keys under the key path ``where`` (pydantic's location: list indices and union tags
    included, and skipped), e.g. ``keys_at(["grid"])`` -> height, width, boundary, ..."""
    models: list[type] = [Config]
    for part in where:
        if isinstance(part, str) and part in SHAPES:  # a support's shape tag: that shape's keys only
            models = [m for m in models if getattr(m.model_fields.get("shape"), "default", None) == part] or models
            continue
        if isinstance(part, int) or _is_union_tag(part):
            continue
        models = [m for model in models for name, f in model.model_fields.items() if part in (name, f.alias)
                  for m in _models_in(f.annotation)]
    return sorted({f.alias or name for model in models for name, f in model.model_fields.items()})


def _strip_prefix(msg: str) -> str:
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _is_union_tag(part) -> bool:
    # pydantic puts the discriminator value ("disk") or the union member type in the location path
    return isinstance(part, str) and (part in SHAPES
                                      or part in {"str", "int", "float", "bool", "Temperatures"}
                                      or "[" in part or part.startswith("function-"))
