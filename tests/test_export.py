"""vfe export / gv.export: a run as VTKHDF ImageData with a time series, read back by pyvista (vtkHDFReader, what
ParaView uses) and compared, step by step, with what the trajectory reader gives."""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.export import agent_array_name
from gauge_vfe.agents.model.energy import TERMS

pv = pytest.importorskip("pyvista")

# Four overlapping agents on a 8x10 grid with curvature and smoothness on (so every energy term and the plaquette
# angles are non-zero) and a consensus threshold at which agents 0 and 3 join the scale-2 meta-agent only after
# a few steps: the meta-agent ids differ between agents and change over time.
SMALL = textwrap.dedent("""\
    name: small
    seed: 4
    grid: {height: 8, width: 10}
    agents:
      supports:
        - {shape: disk, center: [3, 3], radius: 3}
        - {shape: disk, center: [3, 4], radius: 3}
        - {shape: disk, center: [4, 6], radius: 3}
        - {shape: disk, center: [5, 7], radius: 3}
    energy: {lambda_curv: 0.5, lambda_smooth: 0.5}
    observations: {kind: random}
    dynamics: {steps: 12, lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.02}
    output: {every: 4}
    analysis:
      meta_agents: {eps_belief: 0.5, min_overlap: 4, max_scale: 3}
    """)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    (folder / "small.yaml").write_text(SMALL)
    with gv.run(folder / "small.yaml", output=folder / "small.h5", progress=False) as t:
        assert t.status == "completed"
    return folder / "small.h5"


def frames_of(path):
    """(time value, pyvista ImageData) for every time step, requested through the VTK pipeline as ParaView does."""
    from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline as Pipeline

    reader = pv.get_reader(str(path)).reader  # the vtkHDFReader pyvista wraps
    reader.UpdateInformation()
    times = np.array(reader.GetOutputInformation(0).Get(Pipeline.TIME_STEPS()))
    for t in times:
        reader.UpdateTimeStep(t)
        yield t, pv.wrap(reader.GetOutputDataObject(0))


def on_grid(traj, rows):
    """Agent-site rows (S,) scattered per agent onto (N, H, W), NaN outside each support (written here, from the
    file's index tables, not with the exporter's code)."""
    H, W = traj.grid.height, traj.grid.width
    out = np.full((traj.n_agents, H * W), np.nan)
    for i in range(traj.n_agents):
        lo, hi = traj.offset[i], traj.offset[i + 1]
        out[i, traj.index[lo:hi]] = rows[lo:hi]
    return out.reshape(traj.n_agents, H, W)


def test_export_reads_back_in_pyvista_with_the_trajectorys_values(run_file, tmp_path):
    out = tmp_path / "small.vtkhdf"
    with gv.load(run_file) as traj:
        result = gv.export(traj, out)
        assert result.path == out and result.notes == []
        H, W, N = traj.grid.height, traj.grid.width, traj.n_agents
        steps = traj.steps

        first = pv.read(out)  # what pyvista.read gives: an ImageData of H x W cells at the first step
        assert isinstance(first, pv.ImageData) and first.n_cells == H * W
        np.testing.assert_array_equal(first.cell_data[agent_array_name(traj, 0, "mu")].reshape(H, W, -1),
                                      traj.field("mu", step=int(steps[0]), agent=0).astype(np.float32))
        # cell (row y, column x) is centred at (x, y): the grid is not transposed or flipped on the way
        centres = first.cell_centers().points.reshape(H, W, 3)
        np.testing.assert_array_equal(centres[..., 0], np.broadcast_to(np.arange(W), (H, W)))
        np.testing.assert_array_equal(centres[..., 1], np.broadcast_to(np.arange(H)[:, None], (H, W)))

        seen = []
        analysis = traj.analysis()
        for t, frame in frames_of(out):
            step = int(t)
            assert step == t
            seen.append(step)
            k = int(np.nonzero(analysis.steps == step)[0][0])
            meta_ids = {s: np.full(N, -1.0) for s in (2, 3)}
            for m in traj.meta_agents(step=step):
                if m["scale"] >= 2:
                    meta_ids[m["scale"]][m["members"]] = m["id"]
            angle = on_grid(traj, analysis.plaquette_angle[k])
            dens = {term: 0.0 for term in TERMS + ("total",)}
            for i in range(N):
                def got(q):  # agent i's exported array on the (H, W[, c]) grid
                    a = frame.cell_data[agent_array_name(traj, i, q)]
                    return a.reshape((H, W) + a.shape[1:])

                mu = traj.field("mu", step=step, agent=i)
                sigma = traj.field("sigma", step=step, agent=i)
                chi = traj.field("chi", agent=i)
                outside = np.isnan(chi)
                assert 0 < outside.sum() < H * W
                # logged fields: the same float32 values
                np.testing.assert_array_equal(got("mu"), mu.astype(np.float32))
                np.testing.assert_array_equal(got("phi"), traj.field("phi", step=step, agent=i).astype(np.float32))
                np.testing.assert_array_equal(got("chi"), chi.astype(np.float32))
                # derived: to float32 precision, NaN exactly outside the support
                np.testing.assert_allclose(got("mu_norm"), np.linalg.norm(mu, axis=-1), rtol=1e-6)
                np.testing.assert_allclose(got("trace_sigma"), np.trace(sigma, axis1=-2, axis2=-1), rtol=1e-6)
                np.testing.assert_array_equal(np.isnan(got("trace_sigma")), outside)
                # the stored analysis
                np.testing.assert_allclose(got("plaquette_angle"), angle[i], rtol=1e-6)
                for s in (2, 3):
                    np.testing.assert_array_equal(got(f"meta_id_scale{s}"), np.where(outside, np.nan, meta_ids[s][i]))
                for term in dens:
                    dens[term] += float(np.nansum(got(f"energy_{term}").astype(np.float64)))
            # the recomputed densities add up to the energy the run logged at that step (float32 rounding of the
            # logged state and of the densities)
            for term in TERMS + ("total",):
                logged = traj.energy(term)[1][traj.energy(term)[0] == step][0]
                np.testing.assert_allclose(dens[term], logged, rtol=2e-6, atol=1e-6)
        np.testing.assert_array_equal(seen, steps)
        assert len(seen) == 4
        # the meta-agent ids do change over the run (the comparison above is not of constants)
        labels = analysis.labels
        assert (labels == -1).any() and (labels >= 0).any()


def test_a_run_without_analysis_exports_the_fields_and_says_what_is_missing(tmp_path):
    with gv.run({"grid": {"height": 6, "width": 7}, "agents": {"count": 2, "support": {"shape": "disk", "radius": 2}},
                 "dynamics": {"steps": 4}, "output": {"every": 2, "dtype": "float64"},
                 "analysis": {"enabled": False}}, output=tmp_path / "r.h5", progress=False) as traj:
        assert traj.analysis() is None
        result = gv.export(traj.path, tmp_path / "r.vtkhdf")
        assert len(result.notes) == 1 and "vfe analyze" in result.notes[0]
        assert not any("meta_id" in a or "plaquette" in a for a in result.arrays)
        frames = list(frames_of(tmp_path / "r.vtkhdf"))
        assert [t for t, _ in frames] == [0, 2, 4]
        for t, frame in frames:  # a float64 run exports float64: equal to the last bit
            mu = frame.cell_data[agent_array_name(traj, 1, "mu")]
            assert mu.dtype == np.float64
            np.testing.assert_array_equal(mu.reshape(6, 7, 3), traj.field("mu", step=int(t), agent=1))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_vfe_export(run_file, tmp_path):
    out = tmp_path / "cli.vtkhdf"
    r = invoke("export", run_file, "--format", "vtkhdf", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.stdout and "4 frames" in r.stdout
    with h5py.File(out, "r") as f:  # the VTKHDF header ParaView and VisIt look for
        assert f["VTKHDF"].attrs["Type"] == b"ImageData" and list(f["VTKHDF"].attrs["Version"]) == [2, 0]
        assert f["VTKHDF/Steps"].attrs["NSteps"] == 4
    assert isinstance(pv.read(out), pv.ImageData)


@pytest.mark.parametrize("args, fragment", [
    (["{d}/missing.h5"], "no such file"),
    (["{run}", "--format", "xdmf", "-o", "{d}/x.vtkhdf"], "unknown export format 'xdmf'"),
    (["{run}", "-o", "{run}"], "would overwrite the run file"),
    (["{run}", "-o", "{d}/no/such/folder/x.vtkhdf"], "does not exist"),
    (["{d}/not-a-run.h5"], "not an HDF5 file"),
    (["{run}", "-o", "{d}/x.vtk"], ".vtk (VTK's legacy format, which vfe export does not write)"),
    (["{run}", "--format", "vtkhdf", "-o", "{d}/x.vtu"], "name the output .vtkhdf or .hdf (e.g. x.vtkhdf)"),
])
def test_vfe_export_bad_input_is_one_line_and_exit_2(run_file, tmp_path, args, fragment):
    (tmp_path / "not-a-run.h5").write_text("name: x\n")
    before = run_file.read_bytes()
    r = invoke("export", *[a.format(d=tmp_path, run=run_file) for a in args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr
    assert run_file.read_bytes() == before  # the run file is never touched
    assert not list(tmp_path.glob("*.vtkhdf*")) and not list(tmp_path.glob("x.*"))  # no output, not even partial


def test_the_suffix_picks_the_format_and_a_legacy_vtk_name_is_refused(run_file, tmp_path):
    """`-o x.vtk` once wrote VTKHDF under a legacy name pyvista could not read: now one line, nothing written."""
    r = invoke("export", run_file, "-o", tmp_path / "x.vtk", "-q")
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.output
    assert str(tmp_path / "x.vtk") in r.stderr and "x.vtkhdf" in r.stderr
    assert not (tmp_path / "x.vtk").exists()
    with pytest.raises(ValueError, match="does not name the vtkhdf format"):
        gv.export(run_file, tmp_path / "y.vtk")
    r = invoke("export", run_file, "-o", tmp_path / "x.hdf", "-q")  # VTKHDF's other suffix, chosen by the name
    assert r.exit_code == 0, r.output
    assert isinstance(pv.read(tmp_path / "x.hdf"), pv.ImageData)


def test_read_export_round_trips_two_chosen_time_steps(run_file, tmp_path):
    """The documented recipe (gv.viz.read_export, export_steps) gives each chosen logged step's values, and a grid
    read earlier is not changed by reading another step."""
    out = tmp_path / "rt.vtkhdf"
    with gv.load(run_file) as traj:
        gv.export(traj, out)
        steps = gv.viz.export_steps(out)
        np.testing.assert_array_equal(steps, traj.frame_steps)
        H, W = traj.grid.height, traj.grid.width
        last, second = int(steps[-1]), int(steps[1])
        grids = {s: gv.viz.read_export(out, step=s) for s in (last, second)}
        for s, grid in grids.items():
            for i in range(traj.n_agents):
                mu = grid.cell_data[agent_array_name(traj, i, "mu")].reshape(H, W, -1)
                np.testing.assert_array_equal(mu, traj.field("mu", step=s, agent=i).astype(np.float32))
        assert not np.array_equal(np.nan_to_num(grids[last].cell_data[agent_array_name(traj, 0, "mu")]),
                                  np.nan_to_num(grids[second].cell_data[agent_array_name(traj, 0, "mu")]))
        first = gv.viz.read_export(out)  # no step: the first, as pv.read gives
        np.testing.assert_array_equal(first.cell_data[agent_array_name(traj, 1, "phi")],
                                      pv.read(out).cell_data[agent_array_name(traj, 1, "phi")])
    with pytest.raises(ValueError, match="step 3 is not in the export"):
        gv.viz.read_export(out, step=3)
