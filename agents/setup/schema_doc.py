"""Generate the scenario key reference (docs/scenario-reference.md) from the config schema.

    python -m gauge_vfe.agents.setup.schema_doc > docs/scenario-reference.md

A test checks that the committed page matches, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import Config

HEADER = """# Scenario file reference

Generated from the scenario schema (`agents/setup/config.py`) by `python -m gauge_vfe.agents.setup.schema_doc`;
do not edit by hand.

A scenario is one YAML mapping. Every key is optional and has the default below. Unknown keys, wrong types and
out-of-range values are errors reported as `FILE:LINE: key.path: message` (exit code 2). Any key can be
overridden on the command line with `--set key.path=value` (the value is read as YAML).

Supports (`agents.support`, or each item of `agents.supports`) are chosen by `shape`; a support without `shape`
is a disk. Missing centres are drawn at random from the root seed.
"""


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return json.dumps(value)


def _models(annotation) -> list[type[BaseModel]]:
    found = []
    for arg in (typing.get_args(annotation) or (annotation,)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            found.append(arg)
        elif typing.get_args(arg):
            found += _models(arg)
    return found


def _rows(model: type[BaseModel], prefix: str, seen: set) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        rows.append(f"| `{path}` | {_type_name(field.annotation).replace('|', '&#124;')} | `{_default(field)}` | "
                    f"{(field.description or '').replace('|', '&#124;')} |")
        for sub in _models(field.annotation):
            if (path, sub) in seen:
                continue
            seen.add((path, sub))
            tag = sub.model_fields.get("shape")
            sub_prefix = f"{path}[shape={tag.default}]." if tag is not None and len(_models(field.annotation)) > 1 \
                else f"{path}."
            rows += _rows(sub, sub_prefix, seen)
    return rows


def limits_markdown() -> str:
    """What a scenario may be (its size, lists, names, booleans) and where its paths lead: from the constants the
    checks use, so the page states the limits the code enforces."""
    from .config import MAX_NAME_LENGTH, NAME_PATTERN
    from .scenario import MAX_ALIAS_NODES, MAX_DEPTH, MAX_LIST_ITEMS, MAX_SCENARIO_BYTES

    return f"""
## Limits

Checked before the YAML is parsed or its values are built, so a hostile or mistaken file is refused within a
second with one line (exit code 2):

- a scenario file is a regular file (not a FIFO or a device) of UTF-8 text of at most {MAX_SCENARIO_BYTES} bytes
  ({MAX_SCENARIO_BYTES // 2**20} MiB); the same bound holds for scenario text given directly;
- no list holds more than {MAX_LIST_ITEMS} items (`agents.supports`, loop waypoints, a sweep's values);
- mappings and lists nest at most {MAX_DEPTH} levels; aliases may add at most {MAX_ALIAS_NODES} nodes when
  expanded; a key appears once per mapping;
- `true` and `false` are booleans, never numbers: `agents.count: true` or `--set agents.count=true` is refused
  (write 1);
- `name` (the run's name, which names the default output `runs/NAME.h5`) is 1 to {MAX_NAME_LENGTH} characters of
  `{NAME_PATTERN}`: letters, digits and `. _ + = , @ -`, not starting with `.` or `-`; no `/`, space or newline;
- a sweep checks its grid once (every swept key, and each value alone) and builds its first member before it
  starts; every other member is validated by the worker that runs it (a bad combination is that member's failed
  row), so a sweep of any size starts within seconds.

## Paths

Every file path in a scenario (`observations.path`, `agents.init.from.path`, a mask support's `path`,
`output.path`) is either absolute, or relative to **the folder of the scenario file** (not the current folder).
A relative path may lead outside that folder (`../data/obs.npy`, `output.path: ../elsewhere/x.h5`): gauge-vfe is
a local tool and reads and writes what its user can. Input files must be regular files; a FIFO or a device is
refused. Without `output.path` (and without `-o`) a run writes `runs/NAME.h5` relative to the current folder.
"""


def reference_markdown() -> str:
    lines = [HEADER, "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += _rows(Config, "", set())
    return "\n".join(lines) + "\n" + limits_markdown()


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
