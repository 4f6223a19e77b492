"""Scenario files (SPEC section 9): YAML in, a validated :class:`~agents.config.Config` out.

Every problem is reported as ``FILE:LINE: key.path: message`` (or ``--set key.path=...: message`` for a
command-line override), found by mapping pydantic's error locations onto the YAML node tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import Config, ConfigError, make_config


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``messages`` are complete ``file:line: key: message`` lines."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("\n".join(messages))


@dataclass(frozen=True)
class Scenario:
    config: Config
    text: str  # the YAML verbatim (recorded in the trajectory)
    path: Path | None
    overrides: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Relative file paths in the scenario are relative to the scenario's folder."""
        return self.path.parent if self.path is not None else Path.cwd()


def _line_map(node, path=(), out=None, problems=None):
    """{key path tuple: 1-based line} for every mapping key and sequence item; duplicate keys are reported."""
    if out is None:
        out, problems = {}, []
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                problems.append((key.start_mark.line + 1, ".".join(path + (name,)), "duplicate key"))
            seen.add(name)
            out[path + (name,)] = key.start_mark.line + 1
            _line_map(value, path + (name,), out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (str(i),)] = item.start_mark.line + 1
            _line_map(item, path + (str(i),), out, problems)
    return out, problems


def _set_path(data: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = data
    for k, part in enumerate(parts[:-1]):
        nxt = node[int(part)] if isinstance(node, list) and part.isdigit() else node.get(part) \
            if isinstance(node, dict) else None
        if nxt is None:
            if not isinstance(node, dict):
                raise ScenarioError([f"--set {dotted}: {'.'.join(parts[:k + 1])} is not a mapping"])
            nxt = node[part] = {}
        node = nxt
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError([f"--set {dotted}: {'.'.join(parts[:-1])} is not a mapping"])


def parse_override(text: str) -> tuple[str, object]:
    """``key.path=value`` with the value read as YAML (numbers, lists, booleans, strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError([f"--set {text}: expected key.path=value"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"--set {text}: value is not valid YAML ({exc.problem})"]) from None
    return key, value


def load_scenario(path: str | Path | None = None, overrides=(), text: str | None = None) -> Scenario:
    """Read, override (``--set key.path=value``) and validate a scenario file (or ``text``)."""
    name = str(path) if path is not None else "<scenario>"
    if text is None:
        p = Path(path)
        if not p.is_file():
            raise ScenarioError([f"{name}: no such scenario file"])
        text = p.read_text()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError([f"{name}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ScenarioError([f"{name}:1: a scenario must be a mapping of keys (name, grid, agents, ...)"])
    lines, dups = _line_map(root)
    if dups:
        raise ScenarioError([f"{name}:{line}: {key}: {msg}" for line, key, msg in dups])
    override_keys = []
    for item in overrides:
        key, value = parse_override(item)
        _set_path(data, key, value)
        override_keys.append((key, item))
    try:
        config = make_config(data)
    except ConfigError as exc:
        raise ScenarioError([_locate(name, lines, override_keys, key, msg) for key, msg in exc.problems]) from None
    scenario = Scenario(config, text, Path(path) if path is not None else None, tuple(overrides))
    missing = [(key, f) for key, f in referenced_files(config) if not (scenario.base_dir / f).exists()]
    if missing:
        raise ScenarioError([_locate(name, lines, override_keys, key, f"file not found: {f}") for key, f in missing])
    return scenario


def _locate(name: str, lines: dict, override_keys, key: str, msg: str) -> str:
    for okey, item in override_keys:
        if key == okey or key.startswith(okey + "."):
            return f"--set {item}: {key}: {msg}"
    parts = tuple(key.split(".")) if key else ()
    while parts and parts not in lines:
        parts = parts[:-1]
    line = lines.get(parts, 1)
    return f"{name}:{line}: {key or '(top level)'}: {msg}"


def referenced_files(config: Config) -> list[tuple[str, str]]:
    """(key path, file) of every file a scenario names (masks, observation files, earlier runs)."""
    out = []
    agents = config.agents
    if agents.supports is not None:
        for i, s in enumerate(agents.supports):
            if s.shape == "mask":
                out.append((f"agents.supports.{i}.path", s.path))
    elif agents.support.shape == "mask":
        out.append(("agents.support.path", agents.support.path))
    if config.observations.kind == "file":
        out.append(("observations.path", config.observations.path))
    if agents.init.from_run is not None:
        out.append(("agents.init.from.path", agents.init.from_run.path))
    return out
