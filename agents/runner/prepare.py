"""Python values as scenario input: a checked scenario from a shipped name, a path, a dict or a Config with Python
overrides, and those overrides as the ``--set`` texts and plain values the command-line path takes.

``gv.run`` and ``gv.sweep`` (:mod:`.notebook`) start here, so a notebook's scenario passes the checks ``vfe run``
makes (:func:`prepare`).
"""

from __future__ import annotations

import json

import numpy as np


def _flatten(overrides: dict, prefix: str = "") -> dict:
    """``{"energy": {"kappa": 0.5}}`` and ``{"energy.kappa": 0.5}`` both as ``{"energy.kappa": 0.5}`` (a nested
    mapping sets its keys one by one; a list or a scalar replaces the value)."""
    out = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _plain(value):
    """numpy scalars and arrays as the Python values JSON (and so YAML) knows."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def plain_overrides(overrides: dict) -> dict:
    """Dotted overrides (flattened as by :func:`_flatten`) with plain values: what a sweep hands every member."""
    return {key: _plain(value) for key, value in _flatten(overrides).items()}


def override_texts(overrides: dict) -> list[str]:
    """``--set`` texts (``key.path=value``, the value as JSON, which YAML reads back) of Python overrides."""
    return [f"{key}={json.dumps(value)}" for key, value in plain_overrides(overrides).items()]


def param_values(values) -> list:
    """A swept parameter's values from Python: a list, a single value, or a ``--param`` text."""
    from .sweep import parse_values

    if isinstance(values, str):
        return parse_values(values)  # "0:8" or "0.5,1,2", as --param takes them
    if isinstance(values, (list, tuple, np.ndarray, range)):
        return [_plain(v) for v in values]
    return [_plain(values)]


def prepare(scenario, overrides: dict | None = None, *, check_memory: bool = True):
    """A checked :class:`~gauge_vfe.agents.setup.scenario.Scenario` from a shipped name, a path, a dict or a
    Config, with Python ``overrides``; the same checks as ``vfe run`` (schema, memory, the files it names)."""
    from ..setup.scenario import prepare_scenario

    # numpy values in a dict become the plain ones YAML writes; a Config or a path goes as it is
    source = _plain(scenario) if isinstance(scenario, dict) else scenario
    return prepare_scenario(source, override_texts(overrides or {}), check_memory=check_memory)
