"""The scenarios and data that ship inside the package, found through ``importlib.resources``.

They are package data of ``gauge_vfe`` (the repository's ``scenarios/`` and ``data/`` folders), so they are found
the same way from a source checkout, an editable install and an installed wheel, from any working directory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _package_folder(name: str) -> Path:
    # Installed wheels and editable installs both unpack to the file system, so the Traversable is a real
    # folder; scenarios refer to data files by relative paths, which needs one.
    return Path(str(files("gauge_vfe") / name))


def scenario_folder() -> Path:
    return _package_folder("scenarios")


def data_folder() -> Path:
    return _package_folder("data")


def shipped_scenarios() -> dict[str, Path]:
    """{name: path} of every shipped scenario, sorted by name."""
    return {p.stem: p for p in sorted(scenario_folder().glob("*.yaml"))}


def scenario_summary(path: Path) -> str:
    """The first comment line of a scenario file: its one-line description."""
    return next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")


def resolve_scenario(name: str | Path) -> Path:
    """A path to a scenario file, or the name of a shipped scenario (``quickstart``)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    return shipped_scenarios().get(str(name), p)
