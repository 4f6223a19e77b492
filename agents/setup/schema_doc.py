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


def reference_markdown() -> str:
    lines = [HEADER, "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines += _rows(Config, "", set())
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(reference_markdown(), end="")
