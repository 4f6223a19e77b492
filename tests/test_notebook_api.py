"""The notebook API: gv.run, steps as well as frames, to_xarray / to_netcdf, gv.analyze, gv.sweep / load_sweep,
Simulation.from_scenario, sim.run(observers=[ProgressBar()]), shipped names in load_scenario, strict JSON of vfe inspect.

Values are checked against the file read with h5py directly, and runs against `vfe run` with the same options.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import threading
import time

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.sweep_store import write_summary
from gauge_vfe.agents.model.energy import TERMS
from gauge_vfe.agents.runner.sweep import summary_columns
from gauge_vfe.agents.setup.shipped import shipped_scenarios

from factories import tiny_yaml


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    path = folder / "tiny.yaml"
    path.write_text(tiny_yaml(width=9, all_fields=True))
    return path


@pytest.fixture(scope="module")
def traj(tiny):
    t = gv.run(tiny, output=tiny.parent / "tiny.h5", progress=False)
    yield t
    t.close()


def grid_of_rows(f, name, k, agent, H, W):
    """What the reader must give: frame k's rows of one agent scattered on the grid, NaN elsewhere (h5py)."""
    offset, index = f["agents/sites/offset"][...], f["agents/sites/index"][...]
    rows = f[f"particles/agents/{name}/value"][k]
    lo, hi = offset[agent], offset[agent + 1]
    out = np.full((H * W,) + rows.shape[1:], np.nan)
    out[index[lo:hi]] = rows[lo:hi]
    return out.reshape((H, W) + rows.shape[1:])


# --- gv.run ---------------------------------------------------------------------------------------------------------

def test_run_is_vfe_run_with_the_same_options(tiny, tmp_path):
    """Steps, seed, dotted and nested overrides do what --steps, --seed and --set do: the same file contents."""
    t = gv.run(tiny, steps=8, seed=9, output=tmp_path / "py.h5", progress=False,
               energy={"kappa": 0.5}, **{"dynamics.lr_mu": 0.01})
    r = CliRunner().invoke(main, ["run", str(tiny), "-o", str(tmp_path / "cli.h5"), "--steps", "8", "--seed", "9",
                                  "--set", "energy.kappa=0.5", "--set", "dynamics.lr_mu=0.01", "-q"])
    assert r.exit_code == 0, r.output
    with t, gv.load(tmp_path / "cli.h5") as c:
        assert (t.status, t.last_step, t.seed) == ("completed", 8, 9)
        assert t.config["energy"]["kappa"] == 0.5 and t.config["dynamics"]["lr_mu"] == 0.01
        assert t.config == c.config
        for term in ("total",) + TERMS:
            np.testing.assert_array_equal(t.energy(term)[1], c.energy(term)[1])
        np.testing.assert_array_equal(t.rows("mu", -1), c.rows("mu", -1))


def test_run_without_output_writes_a_temporary_file_deleted_on_close(tiny):
    t = gv.run(tiny, steps=2, progress=False)
    path, folder = t.path, t.folder
    assert path.exists() and t.last_step == 2
    t.close()
    assert not folder.exists()
    t = gv.run({"grid": {"height": 6, "width": 6}, "agents": {"count": 2, "support": {"shape": "disk", "radius": 2}},
                "dynamics": {"steps": 1}}, progress=False)
    folder = t.folder
    assert t.grid.height == 6 and t.n_agents == 2
    del t
    gc.collect()  # the folder lives as long as the trajectory object
    assert not folder.exists()


def test_run_refuses_bad_input_before_writing(tiny, tmp_path):
    with pytest.raises(gv.ScenarioError, match="energy.kappa"):
        gv.run(tiny, output=tmp_path / "x.h5", progress=False, **{"energy.kappa": -1})
    with pytest.raises(TypeError, match="output.every"):
        gv.run(tiny, output={"every": 2}, progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_ctrl_c_ends_the_run_cleanly_and_then_stops_the_caller(tiny, tmp_path):
    out = tmp_path / "long.h5"

    def press_ctrl_c():  # once the run is under way (its file exists), as a user would
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    with pytest.raises(KeyboardInterrupt, match="interrupted at step"):
        gv.run(tiny, steps=10**7, output=out, progress=False)
    presser.join()
    with gv.load(out) as t:
        assert t.status == "interrupted" and 0 < t.checkpoint().step < 10**7


def test_run_takes_a_shipped_name(tmp_path):
    with gv.run("vacuum", steps=2, output=tmp_path / "v.h5", progress=False) as t:
        assert t.config["name"] == "vacuum" and t.last_step == 2 and t.status == "completed"


# --- steps as well as frames ----------------------------------------------------------------------------------------

def test_steps_map_to_the_files_frames(traj):
    H, W = traj.grid.height, traj.grid.width
    with h5py.File(traj.path, "r") as f:
        steps = f["particles/agents/mu/step"][...]
        np.testing.assert_array_equal(traj.steps, steps)
        assert list(steps) == [0, 4, 8, 12]
        for k, s in enumerate(steps):
            for name in ("mu", "sigma", "beta"):
                np.testing.assert_array_equal(traj.field(name, step=int(s), agent=2),
                                              grid_of_rows(f, name, k, 2, H, W))
            np.testing.assert_array_equal(traj.state(step=int(s)).phi, traj.state(k).phi)
            np.testing.assert_allclose(traj.state(step=int(s)).mu, f["particles/agents/mu/value"][k], rtol=1e-7)
        # the frame-index API is unchanged
        np.testing.assert_array_equal(traj.field("mu", 1), traj.field("mu", step=4))
        np.testing.assert_array_equal(traj.field("mu", frame=-1, agent=0), traj.field("mu", step=12, agent=0))
    assert traj.field("mu", step=4, agent=1).shape == (H, W, traj.K)


def test_an_unlogged_step_names_the_nearest_logged_steps(traj):
    with pytest.raises(gv.StepNotLogged, match="nearest logged steps are 4 and 8"):
        traj.field("mu", step=5, agent=0)
    with pytest.raises(IndexError, match="nearest logged step is 12"):  # StepNotLogged is an IndexError
        traj.state(step=200)
    with pytest.raises(TypeError):
        traj.field("mu", 1, step=4)
    with pytest.raises(IndexError, match="agent 3 out of range"):
        traj.field("mu", step=4, agent=3)


# --- xarray ---------------------------------------------------------------------------------------------------------

def test_to_xarray_holds_the_files_numbers_with_labels_and_units(traj):
    ds = traj.to_xarray()
    H, W = traj.grid.height, traj.grid.width
    assert ds.mu.dims == ("step", "agent", "y", "x", "k")
    assert ds.sigma.dims == ("step", "agent", "y", "x", "k", "l")
    assert ds.beta.dims == ("step", "agent", "y", "x", "j")
    with h5py.File(traj.path, "r") as f:
        np.testing.assert_array_equal(ds.step, f["particles/agents/mu/step"][...])
        for k, s in enumerate(ds.step.values):
            for name in ("mu", "sigma", "phi", "beta"):
                np.testing.assert_array_equal(ds[name].sel(step=s, agent=1).values,
                                              grid_of_rows(f, name, k, 1, H, W).astype(ds[name].dtype))
        np.testing.assert_array_equal(ds.energy_step, f["observables/energy/total/step"][...])
        for term in ("total",) + TERMS:
            np.testing.assert_array_equal(ds.energy.sel(term=term), f[f"observables/energy/{term}/value"][...])
        labels = f["observables/meta_agents/labels"][...]
        np.testing.assert_array_equal(ds.meta_label.values, labels)
        angles = f["observables/holonomy/plaquette_angle"][...]
        index, offset = f["agents/sites/index"][...], f["agents/sites/offset"][...]
        y, x = divmod(int(index[offset[2]]), W)
        np.testing.assert_array_equal(ds.plaquette_angle.sel(agent=2, y=y, x=x).values, angles[:, offset[2]])
        detail = f["observables/meta_agents/timescale_detail"][...]
    # the detailed time scales, one row per series, with the file's numbers and kinds spelled out
    assert detail.size == ds.series.size >= traj.n_agents
    for name in ("id", "scale", "member", "n_frames", "resolved", "tau_frames", "tau_steps", "tau_bits"):
        np.testing.assert_array_equal(ds[f"series_{name}"].values, detail[name])
    assert list(ds.series_kind.values[:traj.n_agents]) == ["agent"] * traj.n_agents
    assert set(ds.series_kind.values) <= {"agent", "collective", "relative"}
    assert ds.series_tau_steps.attrs["units"] == "step" and ds.series_tau_bits.attrs["units"] == "bit"
    assert ds.mu.attrs["units"] == "u" and ds.sigma.attrs["units"] == "u2" and ds.phi.attrs["units"] == "rad"
    assert ds.energy.attrs["units"] == "nat" and ds.y.attrs["units"] == "site"
    assert all("description" in ds[v].attrs for v in list(ds.data_vars) + list(ds.coords))
    # a part of the run: the logged steps asked for
    part = traj.to_xarray(steps=[4, 12], fields=["mu"])
    assert list(part.step.values) == [4, 12] and "sigma" not in part
    np.testing.assert_array_equal(part.mu.sel(step=12).values, ds.mu.sel(step=12).values)


@pytest.mark.parametrize("engine", ["h5netcdf", "scipy"])
def test_to_netcdf_reads_back_the_same_numbers(traj, tmp_path, engine):
    pytest.importorskip(engine)
    ds = traj.to_xarray()
    out = tmp_path / f"run.{engine}.nc"
    ds.to_netcdf(out, engine=engine)
    with xr.open_dataset(out, engine=engine) as back:
        xr.testing.assert_identical(back.load(), ds)
        with h5py.File(traj.path, "r") as f:
            np.testing.assert_array_equal(back.energy.sel(term="alignment"),
                                          f["observables/energy/alignment/value"][...])


# --- gv.analyze -----------------------------------------------------------------------------------------------------

def test_analyze_a_trajectory_returns_the_stored_tables(traj):
    a = gv.analyze(traj)
    assert a.stored
    with h5py.File(traj.path, "r") as f:
        records = f["observables/meta_agents/records"][...]
        members, offset = f["observables/meta_agents/members"][...], f["observables/meta_agents/members_offset"][...]
        ts = f["observables/meta_agents/timescales"][...]
        summary = f["observables/holonomy/summary"][...]
        counts = f["observables/meta_agents/count"][...]
    df = a.meta_agents
    assert len(df) == len(records)
    for name in records.dtype.names:
        np.testing.assert_array_equal(df[name].to_numpy(), records[name])
    assert [list(m) for m in df["members"]] == [members[offset[k]:offset[k + 1]].tolist() for k in range(len(df))]
    assert df.dtypes["step"] == np.int64 and df.dtypes["dead"] == bool
    np.testing.assert_array_equal(a.timescales["ratio"].to_numpy(), ts["ratio"])
    np.testing.assert_array_equal(a.holonomy["mean"].to_numpy(), summary[:, 0])
    assert a.holonomy.index.name == "step" and list(a.holonomy.index) == list(traj.steps)
    assert a.holonomy.dtypes["count"] == np.int64
    np.testing.assert_array_equal(a.counts.to_numpy(), counts[:, 2:])
    assert isinstance(a.events["kind"].dtype, pd.CategoricalDtype)


def test_analyze_with_thresholds_equals_vfe_analyze(traj, tmp_path):
    copy = tmp_path / "copy.h5"
    shutil.copyfile(traj.path, copy)
    r = CliRunner().invoke(main, ["analyze", str(copy), "--eps-belief", "0.5", "--max-scale", "3"])
    assert r.exit_code == 0, r.output
    a = gv.analyze(traj, eps_belief=0.5, max_scale=3)
    assert not a.stored and a.result.params["eps_belief"] == 0.5
    with h5py.File(copy, "r") as f:
        np.testing.assert_array_equal(a.result.labels, f["observables/meta_agents/labels"][...])
        np.testing.assert_array_equal(a.result.counts, f["observables/meta_agents/count"][...])
        np.testing.assert_array_equal(a.result.plaquette_angle, f["observables/holonomy/plaquette_angle"][...])
    with pytest.raises(TypeError, match="eps_beleif"):
        gv.analyze(traj, eps_beleif=0.5)


def test_analyze_a_simulation_in_memory_is_its_runs_last_frame(tiny, traj):
    sim = gv.Simulation.from_scenario(tiny)
    sim.run(12)
    a = gv.analyze(sim)
    # the file's last frame is the run's final state (analysed exactly, from the float64 checkpoint)
    stored = gv.analyze(traj).result
    assert list(a.steps) == [12]
    np.testing.assert_array_equal(a.result.labels[0], stored.labels[-1])
    np.testing.assert_allclose(a.result.plaquette_angle[0], stored.plaquette_angle[-1], equal_nan=True)


# --- Simulation.from_scenario, sim.run with a ProgressBar, load_scenario -----------------------------------------------

def test_shipped_names_load_and_build():
    sc = gv.load_scenario("emergence")
    assert sc.path == shipped_scenarios()["emergence"] and sc.config.name == "emergence"
    sim = gv.Simulation.from_scenario("quickstart", ["agents.count=3", "grid.height=12", "grid.width=12"])
    assert sim.config.name == "quickstart" and sim.layout.n_agents == 3
    with pytest.raises(gv.ScenarioError, match="no such scenario file"):
        gv.load_scenario("no_such_scenario")


def test_sim_run_shows_a_progress_bar_only_when_asked(tiny, capsys):
    sim = gv.Simulation.from_scenario(tiny)
    sim.run(3)
    assert capsys.readouterr().err == ""
    sim.run(3, observers=[gv.ProgressBar()])
    err = capsys.readouterr().err
    assert "6/6" in err and "step/s" in err  # from step 3 to step 6
    # the last line shows the final energy (updates in between are throttled to a few a second)
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"E={sim.energy()['total']:.5g}" in last


# --- gv.sweep and gv.load_sweep ------------------------------------------------------------------------------------

@pytest.mark.slow  # a local Dask cluster: 10-30 s
def test_sweep_returns_a_typed_table_of_its_members(tiny, tmp_path):
    df = gv.sweep(tiny, {"energy.kappa": [0.5, 2.0], "seed": "0:2"}, workers=2, output=tmp_path / "sw",
                  progress=False)
    assert list(df["member"]) == ["m0000", "m0001", "m0002", "m0003"]
    assert df.dtypes["param:energy.kappa"] == np.float64 and df.dtypes["param:seed"] == "Int64"
    assert df.dtypes["last_step"] == "Int64" and df.dtypes["energy_total"] == np.float64
    assert df.dtypes["status"] == "string"
    assert list(df["param:energy.kappa"]) == [0.5, 0.5, 2.0, 2.0] and list(df["param:seed"]) == [0, 1, 0, 1]
    for _, row in df.iterrows():
        with h5py.File(row["path"], "r") as f:
            assert row["energy_total"] == f["observables/energy/total/value"][-1]
            assert row["last_step"] == f["observables/energy/total/step"][-1]
    pd.testing.assert_frame_equal(gv.load_sweep(tmp_path / "sw"), df)
    # overrides (vfe sweep --set) apply to every member and are no columns
    short = gv.sweep(tiny, {"energy.kappa": [0.5, 2.0]}, workers=2, output=tmp_path / "sw2", progress=False,
                     dynamics={"steps": 7})
    assert list(short["last_step"]) == [7, 7] and "param:dynamics.steps" not in short.columns


def test_load_sweep_types_gaps_flags_and_texts(tmp_path):
    """A failed member leaves gaps: integers stay integers (nullable), floats get NaN; flags are booleans."""
    keys = ["dynamics.line_search.enabled", "energy.kappa", "agents.support.shape"]
    rows = [
        {"member": "m0000", "param:dynamics.line_search.enabled": True, "param:energy.kappa": 1,
         "param:agents.support.shape": "disk", "status": "completed", "message": "", "wall_time": 0.25,
         "last_step": 20, "uphill_steps": 0, "path": "m0000.h5", "energy_total": 1.5, "meta_agents": 2,
         "meta_max_scale": 2, "holonomy_mean": 0.125, "holonomy_max": 0.5},
        {"member": "m0001", "param:dynamics.line_search.enabled": False, "param:energy.kappa": 2.5,
         "param:agents.support.shape": "blob", "status": "failed", "message": "ValueError: bad", "wall_time": 0.5,
         "last_step": -1, "path": "m0001.h5"},
    ]
    write_summary(tmp_path, summary_columns(keys), rows)
    df = gv.load_sweep(tmp_path)
    assert df.dtypes["param:dynamics.line_search.enabled"] == "boolean"
    assert df.dtypes["param:energy.kappa"] == np.float64 and list(df["param:energy.kappa"]) == [1.0, 2.5]
    assert df.dtypes["param:agents.support.shape"] == "string"
    assert df.dtypes["meta_agents"] == "Int64" and df["meta_agents"].isna().tolist() == [False, True]
    assert df.dtypes["uphill_steps"] == "Int64" and list(df["last_step"]) == [20, -1]
    assert df.dtypes["energy_total"] == np.float64 and np.isnan(df["energy_total"][1])
    assert df.dtypes["energy_prior"] == np.float64  # a column no member filled is still numeric
    assert df["holonomy_max"][0] == 0.5 and df["message"][1] == "ValueError: bad"
    with pytest.raises(FileNotFoundError):
        gv.load_sweep(tmp_path / "nothing")


# --- vfe inspect --json ---------------------------------------------------------------------------------------------

def _refuse(constant):
    raise AssertionError(f"not strict JSON: {constant}")


def test_inspect_json_is_strict_with_null_for_missing_numbers(traj, tmp_path):
    copy = tmp_path / "nan.h5"
    shutil.copyfile(traj.path, copy)
    with h5py.File(copy, "a") as f:  # a non-finite energy, as a diverging run logs
        f["observables/energy/prior/value"][-1] = np.inf
        f["observables/energy/total/value"][-1] = np.nan
    r = CliRunner().invoke(main, ["inspect", str(copy), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output, parse_constant=_refuse)
    assert info["energy"]["total"][1] is None and info["energy"]["prior"][1] is None
    assert info["energy"]["total"][0] is not None
    assert "NaN" not in r.output and "Infinity" not in r.output
