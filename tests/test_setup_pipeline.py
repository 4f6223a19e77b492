"""Set-up as one pipeline: shapes that carry their own geometry, files read once, one entry point, no back-arrows.

No kernel runs here: building stops before the energy is evaluated.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from gauge_vfe.agents.model.grid import SUPPORT_CUTOFF, Grid
from gauge_vfe.agents.setup import build as build_module
from gauge_vfe.agents.setup import inputs as inputs_module
from gauge_vfe.agents.setup.build import build
from gauge_vfe.agents.setup.config import ConfigError, make_config
from gauge_vfe.agents.setup.scenario import ScenarioError, load_scenario, prepare_scenario
from gauge_vfe.agents.setup.shapes import SHAPES

SETUP = Path(build_module.__file__).parent

# A spec of every registered shape with a random centre/origin; a new shape without an entry fails below.
SPECS = {"disk": {"radius": 4.0}, "ellipse": {"radii": [5.0, 2.0], "angle": 30.0}, "rectangle": {"size": [4, 7]},
         "whole": {}, "gaussian": {"width": 1.5}, "blob": {"radius": 4.0, "roughness": 0.5},
         "mask": {"path": "m.npy"}}


def test_every_shape_is_registered_in_the_schema_and_its_error_locations():
    assert set(SHAPES) == set(SPECS), "give a new shape an entry in SPECS"
    for name in SHAPES:
        cfg = make_config({"grid": {"height": 20, "width": 24}, "agents": {"support": {"shape": name, **SPECS[name]}}})
        assert type(cfg.agents.support) is SHAPES[name]
    from gauge_vfe.agents.setup.config import _is_union_tag

    assert all(_is_union_tag(name) for name in SHAPES)


@pytest.mark.parametrize("boundary", ["open", "periodic"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_each_shapes_footprint_and_centre_range_describe_its_chi(name, boundary):
    """What the memory model assumes of a shape (area, extent, where its centre falls) holds for the chi it
    builds, over many random placements: a shape cannot be added with a footprint that disagrees with it."""
    H, W = 20, 24
    grid = Grid(H, W, boundary)
    spec = SHAPES[name](**SPECS[name])
    area, Ly, Lx = spec.footprint(H, W)
    rng = np.random.default_rng(3)
    data = np.full((H, W), 0.5) if name == "mask" else None
    for _ in range(20):
        chi = spec.chi(grid, rng, data)
        assert chi.shape == (H, W) and chi.min() >= 0 and chi.max() <= 1
        sites = int((chi >= SUPPORT_CUTOFF).sum())
        # an upper estimate (the model refuses runs that cannot fit): never well below the sites, nor far above
        assert area / 8 <= sites <= 1.3 * area, (sites, area)
        assert 1 <= Ly <= H and 1 <= Lx <= W
        if boundary == "open" and name not in ("whole", "mask"):
            ys, xs = np.nonzero(chi >= 0.5 if name == "gaussian" else chi >= SUPPORT_CUTOFF)
            for axis, coords, n in ((0, ys, H), (1, xs, W)):
                lo, hi = spec.centre_range(axis, n, False)
                middle = (coords.min() + coords.max()) / 2
                assert lo - 1.5 <= middle <= hi + 1.5, (axis, middle, lo, hi)
    if boundary == "periodic" and name in ("disk", "ellipse", "gaussian", "blob"):
        assert spec.centre_range(0, H, True) is None  # uniform on a periodic axis


def test_a_shapes_grid_check_names_its_own_key():
    with pytest.raises(ConfigError) as err:
        make_config({"grid": {"height": 10, "width": 10},
                     "agents": {"supports": [{"radius": 2}, {"shape": "ellipse", "radii": [30, 2]}]}})
    assert err.value.problems == [("agents.supports.1.radii", "[30.0, 2.0] is larger than the grid (10x10)")]


# --- files: read and checked once, by set-up ------------------------------------------------------------------

def _files_scenario(tmp_path: Path) -> Path:
    mask = np.zeros((8, 8))
    mask[1:6, 2:7] = 0.8
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "obs.npy", np.linspace(0, 1, 8 * 8 * 2).reshape(8, 8, 2))
    path = tmp_path / "s.yaml"
    path.write_text("grid: {height: 8, width: 8}\n"
                    "agents:\n  supports:\n    - {shape: mask, path: mask.npy}\n"
                    "    - {shape: mask, path: mask.npy, threshold: 0.5}\n    - {radius: 2}\n"
                    "observations: {kind: file, path: obs.npy}\n")
    return path


def test_each_file_is_read_once_and_build_reads_none(tmp_path, monkeypatch):
    reads = []
    real = inputs_module.read_grid_file
    monkeypatch.setattr(inputs_module, "read_grid_file", lambda path, *a: reads.append(Path(path).name) or
                        real(path, *a))
    sc = prepare_scenario(_files_scenario(tmp_path), check_memory=False)
    assert sorted(reads) == ["mask.npy", "obs.npy"]  # the mask named twice is read once
    built = build(sc.config, sc.base_dir, sc.inputs)
    assert sorted(reads) == ["mask.npy", "obs.npy"]  # build used the arrays it was handed
    assert built.layout.observations.value.shape[1] == 2
    # build without the arrays reads the files itself, through the same reader, with the same result
    again = build(sc.config, sc.base_dir)
    assert sorted(reads) == ["mask.npy", "mask.npy", "obs.npy", "obs.npy"]
    assert np.array_equal(again.layout.chi, built.layout.chi)
    assert np.array_equal(again.layout.observations.value, built.layout.observations.value)


def test_the_model_layer_reads_no_files():
    model = SETUP.parent / "model"
    for f in model.glob("*.py"):
        tree = ast.parse(f.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
            {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not names & {"open", "load", "read_bytes", "read_text", "Image"}, f.name


def test_a_bad_file_is_one_problem_with_one_message(tmp_path):
    path = _files_scenario(tmp_path)
    np.save(tmp_path / "mask.npy", np.full((8, 8), 2.0))
    with pytest.raises(ScenarioError) as err:
        prepare_scenario(path, check_memory=False)
    assert err.value.messages == [
        f"{path}:4: agents.supports.0.path: mask.npy: mask values must lie in [0, 1] (found 2..2)",
        f"{path}:5: agents.supports.1.path: mask.npy: mask values must lie in [0, 1] (found 2..2)"]
    with pytest.raises(ValueError, match=r"^agents.supports.0.path: mask.npy: mask values must lie in \[0, 1\]"):
        build(load_scenario(path, check_files=False).config, tmp_path)  # the same text without a scenario


# --- one entry point -------------------------------------------------------------------------------------------

def test_prepare_scenario_takes_a_name_a_path_a_dict_or_a_config(tmp_path, monkeypatch):
    from gauge_vfe.agents.setup.shipped import shipped_scenarios

    by_name = prepare_scenario("quickstart", ["seed=5"], check_memory=False)
    by_path = prepare_scenario(shipped_scenarios()["quickstart"], ["seed=5"], check_memory=False)
    assert by_name.config == by_path.config and by_name.path == by_path.path
    monkeypatch.chdir(tmp_path)
    data = by_name.config.to_dict()
    by_dict = prepare_scenario(data, check_memory=False)
    by_config = prepare_scenario(by_name.config, check_memory=False)
    assert by_dict.config == by_config.config == by_name.config
    assert by_dict.path is None and by_dict.base_dir == tmp_path
    with pytest.raises(ScenarioError, match=r"^--set energy.kappa=-1: energy.kappa: "):
        prepare_scenario(data, ["energy.kappa=-1"], check_memory=False)
    with pytest.raises(TypeError, match="a shipped name, a path, a dict or a Config, not int"):
        prepare_scenario(3)


def test_the_memory_check_comes_before_any_file_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs_module, "read_grid_file", lambda *a: pytest.fail("read before the memory check"))
    with pytest.raises(ScenarioError, match=r"s.yaml:1: .*the run needs"):
        prepare_scenario(_files_scenario(tmp_path), max_memory=1e-6)


def _imports(path: Path) -> set[str]:
    """The setup modules a setup module imports (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {a.name for a in node.names}
    return found


def test_setup_modules_import_downwards_only():
    """shapes < config < generators < inputs < memory < build < streaming < shipped < scenario < preflight,
    schema_doc: no module imports one after it, so there is no circle (scenario and preflight had one)."""
    order = ["shapes", "config", "generators", "inputs", "memory", "build", "streaming", "shipped", "scenario",
             "preflight", "schema_doc"]
    assert sorted(order) == sorted(p.stem for p in SETUP.glob("*.py") if p.stem != "__init__")
    for i, name in enumerate(order):
        later = _imports(SETUP / f"{name}.py") & set(order[i:])
        assert not later, f"{name} imports {later}"
