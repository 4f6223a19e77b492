"""The trajectory file is valid H5MD 1.1 (the rules are in ``h5md_rules.py``), for every shipped scenario; the
checker catches what it should; a third-party H5MD reader (pyh5md) opens the file; files without the H5MD
metadata (older versions) still load."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from factories import tiny_yaml
from h5md_rules import check_h5md

import gauge_vfe as gv
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import prepare_scenario
from gauge_vfe.agents.setup.scenario import load_scenario
from gauge_vfe.agents.setup.shipped import shipped_scenarios


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h5md")
    (folder / "tiny.yaml").write_text(tiny_yaml(width=9, boundary="periodic", steps=8, all_fields=True))
    res = run_scenario(load_scenario(folder / "tiny.yaml"), folder / "tiny.h5")
    assert res.status == "completed"
    return res.path


def broken_copy(src, tmp_path, edit) -> str:
    """A copy of ``src`` changed by ``edit(h5py.File)``."""
    dst = tmp_path / "broken.h5"
    shutil.copyfile(src, dst)
    with h5py.File(dst, "a") as f:
        edit(f)
    return str(dst)


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_every_shipped_scenario_writes_valid_h5md(name, tmp_path):
    sc = prepare_scenario(shipped_scenarios()[name], ["dynamics.steps=3"])
    res = run_scenario(sc, tmp_path / f"{name}.h5")
    assert res.status == "completed", res.message
    assert check_h5md(res.path) == []
    cfg = sc.config
    with h5py.File(res.path, "r") as f:
        box = f["particles/agents/box"]
        boundary = "periodic" if cfg.grid.boundary == "periodic" else "none"
        assert [b.decode() for b in box.attrs["boundary"]] == [boundary, boundary]
        np.testing.assert_array_equal(box["edges"][...], [cfg.grid.height, cfg.grid.width])
        index = f["agents/sites/index"][...]
        np.testing.assert_array_equal(f["particles/agents/position"][...],
                                      np.stack([index // cfg.grid.width, index % cfg.grid.width], axis=1))
        units = {p: f[p].attrs["unit"] for p in ("particles/agents/mu/value", "particles/agents/sigma/value",
                                                  "particles/agents/phi/value", "observables/energy/total/value")}
        assert units == {"particles/agents/mu/value": "u", "particles/agents/sigma/value": "u+2",
                         "particles/agents/phi/value": "rad", "observables/energy/total/value": "nat"}


def test_the_tiny_run_is_valid_with_beta_and_a_periodic_box(tiny_run):
    assert check_h5md(tiny_run) == []
    with h5py.File(tiny_run, "r") as f:
        assert list(f["particles/agents/box"].attrs["boundary"]) == [b"periodic", b"periodic"]
        assert f["particles/agents/beta/value"].shape[1] == f["particles/agents/position"].shape[0]


def test_a_resumed_run_stays_valid_h5md(tmp_path):
    (tmp_path / "tiny.yaml").write_text(tiny_yaml(width=9, boundary="periodic", steps=8, all_fields=True))
    out = tmp_path / "run.h5"
    assert run_scenario(load_scenario(tmp_path / "tiny.yaml", ["dynamics.steps=4"]), out).status == "completed"
    res = run_scenario(load_scenario(tmp_path / "tiny.yaml", ["dynamics.steps=10"]), out, resume=True)
    assert res.status == "completed" and res.last_step == 10
    assert check_h5md(out) == []


def _del_box(f):
    del f["particles/agents/box"]


def _vl_author(f):
    del f["h5md/author"].attrs["name"]
    f["h5md/author"].attrs["name"] = "someone"  # h5py writes a variable-length string


def _short_step(f):
    f["observables/energy/prior/step"].resize((2,))


def _unit_on_step(f):
    f["particles/agents/mu/step"].attrs.create("unit", "s", dtype=h5py.string_dtype("ascii"))


def _open_boundary(f):
    f["particles/agents/box"].attrs.create("boundary", np.array([b"open", b"open"], dtype="S4"))


def _steps_go_back(f):
    s = f["particles/agents/mu/step"]
    s[0], s[1] = s[1], s[0]


def _wrong_version(f):
    f["h5md"].attrs["version"] = np.array([1, 0])


def _particle_count(f):
    del f["particles/agents/position"]
    f["particles/agents/position"] = np.zeros((3, 2), dtype=np.int64)


BROKEN = [
    (_del_box, "/particles/agents: `box` group missing"),
    (_vl_author, "/h5md/author@name: not a fixed-length string"),
    (_short_step, "/observables/energy/prior: `step` has 2 entries"),
    (_unit_on_step, "/particles/agents/mu/step@unit: `step` carries no unit"),
    (_open_boundary, "each value must be `periodic` or `none`"),
    (_steps_go_back, "/particles/agents/mu/step: steps do not increase"),
    (_wrong_version, "/h5md@version: (1, 0), expected (1, 1)"),
    (_particle_count, "elements disagree on the particle count"),
]


@pytest.mark.parametrize("edit,problem", BROKEN, ids=[edit.__name__.strip("_") for edit, _ in BROKEN])
def test_the_checker_reports_each_broken_rule(tiny_run, tmp_path, edit, problem):
    problems = check_h5md(broken_copy(tiny_run, tmp_path, edit))
    assert any(problem in p for p in problems), problems


def test_pyh5md_reads_the_file(tiny_run):
    pyh5md = pytest.importorskip("pyh5md")
    with h5py.File(tiny_run, "r") as raw, pyh5md.File(str(tiny_run), "r") as f:
        agents = f.particles_group("agents")
        for name in ("mu", "sigma", "phi", "beta"):
            el = pyh5md.element(agents, name)
            assert el.element_type == "TimeElement"
            np.testing.assert_array_equal(el.value[...], raw[f"particles/agents/{name}/value"][...])
            np.testing.assert_array_equal(el.step[...], raw[f"particles/agents/{name}/step"][...])
            np.testing.assert_array_equal(el.time[...], raw[f"particles/agents/{name}/time"][...])
        position = pyh5md.element(agents, "position")
        assert position.element_type == "FixedElement"
        np.testing.assert_array_equal(position.value[...], raw["particles/agents/position"][...])
        edges = pyh5md.element(agents["box"], "edges")
        np.testing.assert_array_equal(edges.value[...], [8, 9])
        total = pyh5md.element(f["observables/energy"], "total")
        np.testing.assert_array_equal(total.value[...], raw["observables/energy/total/value"][...])
        assert total.value.attrs["unit"] == "nat"


def _strip_h5md_additions(f):
    """What files of earlier versions lack: the box, positions, units and descriptions; VL-string names."""
    del f["particles/agents/box"]
    del f["particles/agents/position"]

    def strip(name, obj):
        for key in ("unit", "description"):
            if key in obj.attrs:
                del obj.attrs[key]

    f.visititems(strip)
    for group, key in (("h5md/creator", "name"), ("h5md/creator", "version"), ("h5md/author", "name")):
        text = f[group].attrs[key].decode()
        del f[group].attrs[key]
        f[group].attrs[key] = text


def test_files_without_the_h5md_metadata_still_load(tiny_run, tmp_path):
    old = broken_copy(tiny_run, tmp_path, _strip_h5md_additions)
    with gv.load(old) as a, gv.load(tiny_run) as b:
        np.testing.assert_array_equal(a.field("mu", step=4), b.field("mu", step=4))
        np.testing.assert_array_equal(a.to_xarray().sigma.values, b.to_xarray().sigma.values)
        assert a.status == "completed" and list(a.steps) == [0, 4, 8]
