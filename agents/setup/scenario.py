"""Scenario files: YAML in, a validated :class:`~gauge_vfe.agents.setup.config.Config` out.

Every problem is reported as ``FILE:LINE: key.path: message`` (or ``--set key.path=value: message`` for a
command-line override), found by mapping pydantic's error locations onto the YAML node tree.

Reading is defensive: the file must be a regular file of UTF-8 text of at most ``MAX_SCENARIO_BYTES`` (checked
before it is read), hold one non-empty YAML mapping, use no duplicate keys, no list longer than ``MAX_LIST_ITEMS``
(checked on the node tree, before any value is built), and its aliases may add at most ``MAX_ALIAS_NODES`` nodes
when expanded (a "billion laughs" document is refused before it is expanded). The limits are stated in the
scenario reference (:mod:`.schema_doc`).

:func:`prepare_scenario` is set-up's one entry point (the CLI, ``Simulation.from_scenario``, ``gv.run`` and
``gv.sweep`` call it): the YAML and schema here, then the memory model (:mod:`.memory`) and the files the scenario
names, read and checked once (:mod:`.inputs`), so a file that is not what the scenario says is reported with its
line, before anything is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from .config import Config, ConfigError, make_config
from .inputs import Inputs, missing_files, read_inputs
from .memory import memory_problem, parse_memory_limit
from ..io.suggest import did_you_mean
from .shipped import resolve_scenario, shipped_scenarios

MAX_SCENARIO_BYTES = 2**20  # a scenario is a page of YAML; 1 MiB holds explicit lists of 10k supports, and parses
# in seconds (PyYAML reads about 1 MB/s and keeps ~100 bytes per node: 10 MB took a minute and 1.3 GiB)
MAX_LIST_ITEMS = 10_000  # items of any one list (supports, loop waypoints, a sweep's values)
MAX_ALIAS_NODES = 10_000  # nodes that alias expansion may add to a document
MAX_DEPTH = 64  # nesting of mappings and lists (the schema needs 6)


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``messages`` are complete ``file:line: key: message`` lines.

    A message ``FILE: key.path: text`` about a scenario loaded in this process (as a build error is reported)
    gets the line of ``key.path`` in FILE (or the ``--set`` that set it) filled in.
    """

    def __init__(self, messages: list[str]):
        self.messages = [_relocate(" ".join(str(m).split()) if "\n" in str(m) else str(m)) for m in messages]
        super().__init__("\n".join(self.messages))


_LOADED: dict = {}  # {file name: the Scenario last loaded from it}, to put lines on build errors


def _relocate(message: str) -> str:
    for name, scenario in list(_LOADED.items()):
        if message.startswith(name + ": "):
            key, sep, text = message[len(name) + 2:].partition(": ")
            if sep and _is_key_path(key):
                return scenario.locate(key, text)
    return message


@dataclass(frozen=True)
class Scenario:
    config: Config
    text: str  # the YAML verbatim (recorded in the trajectory)
    path: Path | None
    overrides: tuple[str, ...] = ()
    # {key path tuple: line} of the file, and the (key, --set text) of each override: to locate problems
    lines: dict = field(default_factory=dict, compare=False, repr=False)
    override_keys: tuple = field(default=(), compare=False, repr=False)
    inputs: Inputs | None = field(default=None, compare=False, repr=False)  # the arrays its files hold, once read

    @property
    def base_dir(self) -> Path:
        """Relative file paths in the scenario are relative to the scenario's folder."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else "<scenario>"

    def locate(self, key: str, message: str) -> str:
        """``FILE:LINE: key: message`` (or ``--set KEY=VALUE: key: message``) for a problem at ``key``."""
        return _locate(self.name, self.lines, self.override_keys, key, message)

    def locate_error(self, exc: BaseException) -> str:
        """One located line for an exception raised while building: its text may start with ``key.path: ``."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        key, sep, rest = text.partition(": ")
        if sep and _is_key_path(key):
            return self.locate(key, rest)
        return f"{self.name}: {text}"


def _is_key_path(text: str) -> bool:
    """Whether ``text`` looks like a scenario key path (``agents.init.from.frame``)."""
    return bool(text) and " " not in text and text.split(".")[0] in Config.model_fields


# --- reading ---------------------------------------------------------------------------------------------------

def _read_text(path: Path, name: str) -> str:
    try:
        return _read_text_checked(path, name)
    except OSError as exc:  # a name too long, a loop of links
        raise ScenarioError([f"{name}: cannot read the scenario file ({exc.strerror or exc})"]) from None


def _shipped_hint(name: str) -> str:
    """For a bare name (no folder, no .yaml): the closest shipped scenarios, and where the list is."""
    if Path(name).suffix in (".yaml", ".yml") or len(Path(name).parts) != 1:
        return ""
    return f" or shipped scenario{did_you_mean(name, shipped_scenarios())} (`vfe scenarios` lists them)"


def _read_text_checked(path: Path, name: str) -> str:
    if path.is_dir():
        raise ScenarioError([f"{name}: is a folder, not a scenario file"])
    if not path.exists():
        raise ScenarioError([f"{name}: no such scenario file" + _shipped_hint(name)])
    if not path.is_file():
        raise ScenarioError([f"{name}: not a regular file"])
    try:
        with open(path, "rb") as fh:  # at most one byte past the bound, even if the file grows meanwhile
            raw = fh.read(MAX_SCENARIO_BYTES + 1)
            size = max(len(raw), os.fstat(fh.fileno()).st_size)
        if size > MAX_SCENARIO_BYTES:
            raise ScenarioError([f"{name}: {size} bytes is too large for a scenario file "
                                 f"(at most {MAX_SCENARIO_BYTES // 2**20} MiB)"])
    except OSError as exc:
        raise ScenarioError([f"{name}: cannot read the scenario file ({exc.strerror or exc})"]) from None
    return decode_text(raw, name)


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 text (a leading byte-order mark is dropped), or one clear error naming the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"]) \
            from None
    return text[1:] if text.startswith("\ufeff") else text


def _at(name: str, line: int | None) -> str:
    """``FILE:LINE`` (just ``--set ...`` for a command-line value: it has no lines)."""
    return name if line is None or name.startswith("--set ") else f"{name}:{line}"


def _yaml_error(name: str, exc: yaml.YAMLError, text: str) -> ScenarioError:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        c = exc.character
        what = f"character U+{c if isinstance(c, int) else ord(c):04X}" if isinstance(c, (int, str)) and c != "" \
            else "a character"
        return ScenarioError([f"{_at(name, line)}: not valid YAML: {what} is not allowed ({exc.reason})"])
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
    problem = (f"{problem} ({context})" if problem and context else problem or context or str(exc))
    return ScenarioError([f"{_at(name, mark.line + 1 if mark is not None else None)}: not valid YAML: {problem}"])


def _check_node_tree(node, name: str, where: str = "") -> None:
    """Refuse recursive aliases, too deep nesting, and alias expansion beyond ``MAX_ALIAS_NODES`` nodes.

    Sizes are memoised per node, so the check itself is linear in the document, however large its expansion.
    """
    size: dict[int, int] = {}
    active: set[int] = set()
    extra = 0

    def fail(n, path, message):
        line = n.start_mark.line + 1 if n is not None and n.start_mark is not None else 1
        key = ".".join(path[:8]) + (".(...)" if len(path) > 8 else "") or "(top level)"
        raise ScenarioError([f"{_at(name, line)}: {key}: {message}"])

    def walk(n, path, depth):
        nonlocal extra
        nid = id(n)
        if nid in active:
            fail(n, path, "an alias refers to a node that contains it (a recursive structure)")
        if nid in size:  # an alias: its whole subtree is repeated
            extra += size[nid]
            if extra > MAX_ALIAS_NODES:
                fail(n, path, f"aliases expand the document by more than {MAX_ALIAS_NODES} nodes "
                              "(refused: an alias bomb?)")
            return size[nid]
        if depth > MAX_DEPTH:
            fail(n, path, f"nested more than {MAX_DEPTH} levels deep")
        active.add(nid)
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += walk(k, path, depth + 1)
                label = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                total += walk(v, path + (label,), depth + 1)
        elif isinstance(n, yaml.SequenceNode):
            if len(n.value) > MAX_LIST_ITEMS:
                fail(n, path, f"a list of {len(n.value)} items: at most {MAX_LIST_ITEMS} are allowed")
            for i, item in enumerate(n.value):
                total += walk(item, path + (str(i),), depth + 1)
        active.discard(nid)
        size[nid] = total
        return total

    walk(node, (where,) if where else (), 0)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loading, except that a mapping key is always its text: ``on:``, ``yes:`` or ``1:`` are the
    keys "on", "yes" and "1" (every key of a scenario is a name), not True and 1."""

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep)
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
            else:
                raise yaml.constructor.ConstructorError(None, None, "a key must be a name, not a list or mapping",
                                                        key_node.start_mark)
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def parse_yaml(text: str, name: str, where: str = ""):
    """(node tree, data) of one YAML document, or (None, None) for an empty one; errors as ScenarioError."""
    if len(text) > MAX_SCENARIO_BYTES:  # text given directly (a notebook, --set): the file's bound, before parsing
        raise ScenarioError([f"{name}: {len(text)} characters is too large for a scenario "
                             f"(at most {MAX_SCENARIO_BYTES // 2**20} MiB)"])
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader checks the characters at once
        raise _yaml_error(name, exc, text) from None
    try:
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _check_node_tree(node, name, where)
            lines, dups = _line_map(node)  # before construction, which flattens merge keys (<<) in place
            if dups:
                line, key, msg = dups[0]
                more = f" (and {len(dups) - 1} more)" if len(dups) > 1 else ""
                raise ScenarioError([f"{_at(name, line)}: {key}: {msg}{more}"])
            data = loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(name, exc, text) from None
        except RecursionError:
            raise ScenarioError([f"{name}: not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()
    return node, (data, lines)


def _line_map(node, path=(), out=None, problems=None, seen_nodes=None):
    """{key path tuple: 1-based line} for every mapping key and sequence item; duplicate keys are reported.

    An aliased node is walked once (its lines are those of its anchor).
    """
    if out is None:
        out, problems, seen_nodes = {}, [], set()
    if id(node) in seen_nodes:
        return out, problems
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if name in seen and name != "<<":
                problems.append((key.start_mark.line + 1, ".".join(path + (name,)), "duplicate key"))
            seen.add(name)
            out.setdefault(path + (name,), key.start_mark.line + 1)
            _line_map(value, path + (name,), out, problems, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.setdefault(path + (str(i),), item.start_mark.line + 1)
            _line_map(item, path + (str(i),), out, problems, seen_nodes)
    return out, problems


# --- command-line overrides ------------------------------------------------------------------------------------

def _describe(value) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    return f"the value {value!r}"


def _set_path(data: dict, dotted: str, value, item: str | None = None) -> None:
    """Set ``data[a][b][0][c] = value`` for ``dotted = a.b.0.c``; mappings on the way are created."""
    where = f"--set {item if item is not None else dotted}"
    parts = dotted.split(".")
    if any(not p.strip() for p in parts):
        raise ScenarioError([f"{where}: empty key in {dotted!r}"])
    node = data
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        here = ".".join(parts[:k]) or "(top level)"
        if isinstance(node, dict):
            if last:
                node[part] = value
                return
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, (dict, list)):
                raise ScenarioError([f"{where}: {'.'.join(parts[:k + 1])} is {_describe(child)}, not a mapping"])
            node = child
        elif isinstance(node, list):
            if not part.isdigit():
                raise ScenarioError([f"{where}: {here} is a list: expected an index 0..{len(node) - 1}, "
                                     f"got {part!r}"])
            i = int(part)
            if i >= len(node):
                raise ScenarioError([f"{where}: {here} has {len(node)} items: index {i} is past its end"
                                     + (f" (use 0..{len(node) - 1})" if node else "")])
            if last:
                node[i] = value
            elif isinstance(node[i], (dict, list)):
                node = node[i]
            else:
                raise ScenarioError([f"{where}: {'.'.join(parts[:k + 1])} is {_describe(node[i])}, "
                                     "not a mapping"])
        else:  # pragma: no cover - the loop never descends into a scalar
            raise ScenarioError([f"{where}: {here} is not a mapping"])


def parse_override(text: str) -> tuple[str, object]:
    """``key.path=value`` with the value read as YAML (numbers, lists, booleans, strings)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError([f"--set {text}: expected key.path=value"])
    if not raw.strip():
        return key, None
    _, parsed = parse_yaml(raw, f"--set {text}")
    if parsed is None:
        return key, None
    value, _lines = parsed
    return key, value


# --- the pipeline: source in, checked scenario out -----------------------------------------------------------------

def prepare_scenario(source=None, overrides=(), *, text: str | None = None, max_memory=None,
                     check_memory: bool = True, read_files: bool = True) -> Scenario:
    """The one way in to set-up: a checked :class:`Scenario` (config, base folder, the arrays of its files).

    ``source``: a scenario file, the name of a shipped scenario (``quickstart``), a dict of scenario keys or a
    :class:`Config` (both as a scenario file without a file: relative paths are relative to the working
    folder), or None with ``text`` (YAML). ``overrides`` are ``--set`` texts (``key.path=value``).

    In order: the YAML and the schema, that the files it names exist, the estimated peak memory against
    ``max_memory`` GiB (default: what this machine has available; skipped without ``check_memory``), then
    each file it names read and checked once (:func:`~.inputs.read_inputs`; skipped without ``read_files``),
    its arrays kept in ``Scenario.inputs`` for :func:`~.build.build`. Raises :class:`ScenarioError` with located
    lines (``FILE:LINE: key: message``); nothing is touched.
    """
    try:
        limit = parse_memory_limit(max_memory) if check_memory else None
    except ValueError as exc:
        raise ScenarioError([str(exc)]) from None
    if text is None:
        if isinstance(source, Config):
            source = source.to_dict()
        if isinstance(source, dict):
            text = yaml.safe_dump(source, sort_keys=False)
        elif not isinstance(source, (str, Path)):
            raise TypeError(f"a scenario is a shipped name, a path, a dict or a Config, not {type(source).__name__}")
    try:
        sc = _parse(resolve_scenario(source) if text is None else None, overrides, text)
    except OSError as exc:  # a scenario name the file system refuses (too long, a loop of links)
        raise ScenarioError([f"{source}: cannot read the scenario file ({exc.strerror or exc})"]) from None
    if problems := missing_files(sc.config, sc.base_dir):
        raise ScenarioError([sc.locate(key, msg) for key, msg in problems])
    if check_memory and (problem := memory_problem(sc.config, limit)) is not None:
        raise ScenarioError([sc.locate(*problem)])
    if not read_files:
        return sc
    inputs, problems = read_inputs(sc.config, sc.base_dir)
    if problems:
        raise ScenarioError([sc.locate(key, msg) for key, msg in problems])
    return replace(sc, inputs=inputs)


def load_scenario(path: str | Path | None = None, overrides=(), text: str | None = None,
                  check_files: bool = True) -> Scenario:
    """:func:`prepare_scenario` without the memory check (``check_files``: read and check the files it names)."""
    return prepare_scenario(path if text is None else None, overrides, text=text, check_memory=False,
                            read_files=check_files)


def _parse(path: Path | None, overrides, text: str | None) -> Scenario:
    """Read, override (``--set key.path=value``) and validate a scenario file (or ``text``)."""
    name = str(path) if path is not None else "<scenario>"
    if text is None:
        text = _read_text(Path(path), name)
    node, parsed = parse_yaml(text, name)
    if parsed is None or parsed[0] is None:
        raise ScenarioError([f"{name}:1: the scenario is empty"])
    data, lines = parsed
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise ScenarioError([f"{name}:{line}: a scenario must be a mapping of keys (name, grid, agents, ...), "
                             f"not {_describe(data)}"])
    override_keys = []
    for item in overrides:
        key, value = parse_override(item)
        _set_path(data, key, value, item)
        override_keys.append((key, item))
    try:
        config = make_config(data)
    except ConfigError as exc:
        raise ScenarioError([_locate(name, lines, override_keys, key, msg) for key, msg in exc.problems]) from None
    scenario = Scenario(config, text, Path(path) if path is not None else None, tuple(overrides), lines,
                        tuple(override_keys))
    if path is not None:
        _LOADED.pop(name, None)
        _LOADED[name] = scenario
        while len(_LOADED) > 32:
            _LOADED.pop(next(iter(_LOADED)))
    return scenario


def _match_lines(lines: dict, parts: tuple) -> tuple:
    """The longest prefix of ``parts`` with a line; a YAML key may itself contain dots (sweep keys)."""
    best: tuple = ()
    prefix: tuple = ()
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            cand = prefix + (".".join(parts[i:j]),)
            if cand in lines:
                prefix, i = cand, j
                best = prefix
                break
        else:
            break
    return best


def _locate(name: str, lines: dict, override_keys, key: str, msg: str) -> str:
    for okey, item in reversed(list(override_keys)):
        if key == okey or key.startswith(okey + ".") or okey.startswith(key + ".") and key:
            return f"--set {item}: {key}: {msg}"
    parts = tuple(key.split(".")) if key else ()
    found = _match_lines(lines, parts)
    line = lines.get(found, 1)
    return f"{name}:{line}: {key or '(top level)'}: {msg}"
