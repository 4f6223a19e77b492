"""The trajectory file: the layout of docs/model.md#file, streaming, crash safety, resume, reproducibility, the reader."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time

import h5py
from click.testing import CliRunner
import numpy as np
import pytest

from gauge_vfe import agents
from gauge_vfe.agents.model.energy import TERMS, evaluate
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.schema import run_record
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario
from factories import InterruptAt, datasets, kill_run_after_frames, same, small_run_yaml

SCENARIO = small_run_yaml("traj")


def scenario(tmp_path, *overrides, text=SCENARIO):
    p = tmp_path / "traj.yaml"
    p.write_text(text)
    return load_scenario(p, list(overrides))


def test_file_layout_matches_the_spec(tmp_path):
    sc = scenario(tmp_path)
    res = run_scenario(sc, tmp_path / "run.h5")
    assert res.status == "completed" and res.last_step == 30
    with h5py.File(res.path, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        # fixed-length strings, as H5MD 1.1 asks: h5py reads them as bytes
        assert f["h5md/creator"].attrs["name"] == b"gauge-vfe" and "name" in f["h5md/author"].attrs
        p = f["parameters"].attrs
        assert p["scenario_yaml"] == SCENARIO
        record = run_record(f)  # status, message and finished_at are datasets: rewritable under SWMR
        assert record["status"] == "completed" and p["seed"] == 2 and record["finished_at"]
        import json
        cfg = json.loads(p["config_json"])
        assert cfg["energy"]["alpha"] == 1.0  # defaults filled in
        assert set(json.loads(p["versions"])) >= {"python", "numpy", "numba", "h5py", "package"}
        assert f["grid"].attrs["height"] == 10 and f["grid"].attrs["boundary"] == "open"
        assert list(f["fiber"].attrs["irreps"]) == [1, 2] and f["fiber"].attrs["K"] == 8
        assert f["fiber/generators"].shape == (3, 8, 8)
        S = f["agents/sites/index"].shape[0]
        assert f["agents/sites/offset"].shape == (5,) and f["agents/sites/offset"][-1] == S
        assert f["agents/support"].shape == (S,)
        assert f["agents/prior/mu"].shape == (S, 8) and f["agents/prior/sigma"].shape == (S, 8, 8)
        assert f["agents/observation/value"].shape == (S, 2) and f["agents/observation/C"].shape == (2, 8)
        assert f["agents/observation/Rn"].shape == (2, 2)
        frames = [0, 5, 10, 15, 20, 25, 30]
        for name, shape in (("mu", (S, 8)), ("sigma", (S, 8, 8)), ("phi", (S, 3)), ("beta", (S, 4))):
            g = f[f"particles/agents/{name}"]
            assert list(g["step"][...]) == frames
            assert np.array_equal(g["time"][...], np.array(frames, dtype=float))
            assert g["value"].shape == (7,) + shape and g["value"].dtype == np.float32
            assert g["value"].chunks[0] == 1 and g["value"].compression == "gzip"
        for term in ("total",) + TERMS:
            assert list(f[f"observables/energy/{term}/step"][...]) == list(range(31))
            assert f[f"observables/energy/{term}/value"].dtype == np.float64
        for name in ("mu", "sigma", "phi"):
            assert f[f"observables/grad_norm/{name}/value"].shape == (31,)
        assert f["observables/spd_retractions/value"].shape == (31,)
        active = f["checkpoint/active"][0]
        assert f[f"checkpoint/slot{active}/step"][0] == 30
        assert f[f"checkpoint/slot{active}/mu"].dtype == np.float64


def test_logged_energy_is_the_energy_of_the_logged_state(tmp_path):
    sc = scenario(tmp_path, "output.dtype=float64")
    res = run_scenario(sc, tmp_path / "run.h5")
    with agents.load(res.path) as traj:
        layout = traj.layout()
        steps, total = traj.energy("total")
        params = agents.build(sc.config).energy
        for frame in (0, 3, -1):
            state = traj.state(frame)
            assert traj.dtype == "float64"
            e = evaluate(layout, params, state, want_grad=False)
            assert e.total == pytest.approx(total[state.step], rel=1e-12)
        # frame 0 is the initial state, before any step
        built = agents.build(sc.config, sc.base_dir)
        assert np.array_equal(traj.state(0).mu, built.state.mu)


def test_float32_and_float64_output(tmp_path):
    r32 = run_scenario(scenario(tmp_path, "output.dtype=float32"), tmp_path / "a.h5")
    r64 = run_scenario(scenario(tmp_path, "output.dtype=float64"), tmp_path / "b.h5")
    a, b = datasets(r32.path), datasets(r64.path)
    assert a["particles/agents/mu/value"].dtype == np.float32 and b["particles/agents/mu/value"].dtype == np.float64
    np.testing.assert_allclose(a["particles/agents/mu/value"], b["particles/agents/mu/value"], rtol=1e-6, atol=1e-6)
    assert np.array_equal(a["observables/energy/total/value"], b["observables/energy/total/value"])
    assert a["checkpoint/mu"].dtype == np.float64


def test_same_seed_bit_identical_other_seed_different(tmp_path):
    first = datasets(run_scenario(scenario(tmp_path), tmp_path / "a.h5").path)
    second = datasets(run_scenario(scenario(tmp_path), tmp_path / "b.h5").path)
    third = datasets(run_scenario(scenario(tmp_path, "seed=3"), tmp_path / "c.h5").path)
    assert first.keys() == second.keys()
    for k in first:
        assert same(first[k], second[k]), k
    assert not np.array_equal(first["particles/agents/mu/value"], third["particles/agents/mu/value"])


def test_ctrl_c_leaves_a_valid_file_and_resume_is_bit_identical(tmp_path):
    reference = datasets(run_scenario(scenario(tmp_path), tmp_path / "ref.h5").path)
    path = tmp_path / "cut.h5"
    res = run_scenario(scenario(tmp_path), path, observers=[InterruptAt(13)])
    assert res.status == "interrupted" and res.last_step == 13
    with agents.load(path) as traj:
        assert traj.status == "interrupted" and "--resume" in traj.message
        assert traj.checkpoint().step == 13 and traj.last_step == 13
        assert list(traj.frame_steps) == [0, 5, 10]
    res = run_scenario(scenario(tmp_path), path, resume=True)
    assert res.status == "completed" and res.last_step == 30
    resumed = datasets(path)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert same(resumed[k], reference[k]), k


def _ctrl_c_then(fn):
    """``fn`` with a real SIGINT to this process first (the handler in force decides what it does)."""
    def pressed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # Python runs the handler at the next bytecode; be sure it has
        return fn(*args, **kwargs)
    return pressed


def test_ctrl_c_during_the_analysis_keeps_the_complete_run_and_exits_130(tmp_path, monkeypatch):
    from gauge_vfe.agents.runner import observers

    monkeypatch.setattr(observers, "analyze_frames", _ctrl_c_then(observers.analyze_frames))
    path = tmp_path / "a.h5"
    res = run_scenario(scenario(tmp_path), path)
    assert res.status == "completed" and res.last_step == 30 and res.interrupted_after_steps
    assert res.analysis is None and any("vfe analyze" in n for n in res.notes)
    with agents.load(path) as traj:
        assert traj.status == "completed" and traj.last_step == 30 and traj.frame_steps[-1] == 30
        assert traj.analysis() is None
    r = CliRunner().invoke(main, ["run", str(tmp_path / "traj.yaml"), "-o", str(tmp_path / "b.h5"), "-q"])
    assert r.exit_code == 130, r.output
    assert "analysis interrupted" in r.output and "interrupted after the last step" in r.output


@pytest.mark.parametrize("analysis", [True, False])
def test_ctrl_c_during_the_final_writes_is_held_until_they_are_done(tmp_path, monkeypatch, analysis):
    """The signal arrives while the last frame is being written: the frame and the status are complete, the
    analysis is not started, and the run still ends as interrupted (exit 130)."""
    from gauge_vfe.agents.io.writer import TrajectoryWriter

    monkeypatch.setattr(TrajectoryWriter, "settle_checkpoint", _ctrl_c_then(TrajectoryWriter.settle_checkpoint))
    path = tmp_path / "a.h5"
    sc = scenario(tmp_path, f"analysis.enabled={str(analysis).lower()}")
    if analysis:
        res = run_scenario(sc, path)
        assert res.status == "completed" and res.interrupted_after_steps and res.analysis is None
    else:
        with pytest.raises(KeyboardInterrupt):
            run_scenario(sc, path)
    with agents.load(path) as traj:
        assert traj.status == "completed" and traj.frame_steps[-1] == 30
        assert traj.checkpoint().step == 30


def test_signals_deferred_holds_a_signal_until_the_block_ends():
    from gauge_vfe.agents.runner.signals import signals_deferred

    before = signal.getsignal(signal.SIGINT)
    with signals_deferred() as held:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        done = True
    assert done and held.signal == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before


def test_longer_run_continues_with_resume(tmp_path):
    path = tmp_path / "grow.h5"
    run_scenario(scenario(tmp_path, "dynamics.steps=10"), path)
    res = run_scenario(scenario(tmp_path), path, resume=True)
    assert res.last_step == 30
    reference = datasets(run_scenario(scenario(tmp_path), tmp_path / "ref.h5").path)
    resumed = datasets(path)
    for k in reference:
        assert same(resumed[k], reference[k]), k


def test_a_run_killed_before_its_first_write_starts_again_on_resume(tmp_path):
    """A kill between creating the file and its first write (the first frame, with the first checkpoint) leaves
    a file with no frame and no checkpoint: `--resume` runs it from the start, bit-identical to a fresh run
    (the fault harness found such a kill refused with 'no checkpoint yet')."""
    import json

    from gauge_vfe.agents.io.lock import RunLock
    from gauge_vfe.agents.io.writer import TrajectoryWriter
    from gauge_vfe.agents.runner.run import build_simulation

    sc = scenario(tmp_path)
    path = tmp_path / "early.h5"
    lock = RunLock(path).acquire()
    out = sc.config.output
    writer = TrajectoryWriter.create(path, build_simulation(sc).layout, json.dumps(sc.config.to_dict(), sort_keys=True),
                                     sc.text, sc.config.seed, lock, out.dtype, out.fields, out.compression,
                                     out.compression_level)
    writer._f.close()  # what a kill leaves: the created file, status running, no checkpoint, no frame
    lock.release()
    with agents.load(path) as traj:
        assert traj.frame_steps.size == 0 and traj.checkpoint() is None
    res = run_scenario(scenario(tmp_path), path, resume=True)
    assert res.status == "completed" and res.kept_earlier is None  # nothing of the empty file was worth keeping
    reference = datasets(run_scenario(scenario(tmp_path), tmp_path / "ref.h5").path)
    resumed = datasets(path)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert same(resumed[k], reference[k]), k


def test_a_new_file_appears_at_its_path_only_complete(tmp_path, monkeypatch):
    """The file is built under a temporary name and renamed once its structure is complete, so a kill while it is
    being created leaves nothing at the path (a half-made HDF5 file there could not be resumed, nor safely
    replaced); a temporary left by such a kill is removed by the next run on the path."""
    from gauge_vfe.agents.io import writer as writer_module

    path = tmp_path / "new.h5"
    stale = tmp_path / ".new.h5.creating-999999"
    stale.write_bytes(b"what a kill during creation leaves")
    seen = []
    real_annotate = writer_module.annotate

    def annotate(f):  # the last step of building the structure
        seen.append((path.exists(), Path(f.filename).name))
        real_annotate(f)

    monkeypatch.setattr(writer_module, "annotate", annotate)
    assert run_scenario(scenario(tmp_path, "dynamics.steps=5"), path).status == "completed"
    assert seen == [(False, f".new.h5.creating-{os.getpid()}")]
    assert not stale.exists() and not list(tmp_path.glob(".new.h5.creating-*"))
    with agents.load(path) as traj:
        assert traj.status == "completed" and traj.last_step == 5


def test_resume_refuses_a_different_scenario(tmp_path):
    path = tmp_path / "r.h5"
    run_scenario(scenario(tmp_path, "dynamics.steps=5"), path)
    with pytest.raises(agents.ScenarioError, match="energy"):
        run_scenario(scenario(tmp_path, "energy.kappa=3"), path, resume=True)


def test_sigkill_mid_run_leaves_a_readable_file_and_resume_finishes(tmp_path):
    text = SCENARIO.replace("steps: 30", "steps: 1000000").replace("every: 5", "every: 2")
    (tmp_path / "long.yaml").write_text(text)
    path = tmp_path / "killed.h5"
    kill_run_after_frames(tmp_path / "long.yaml", path, frames=6)
    # a copy, as any HDF5 tool meets it: refused until `vfe repair` clears the killed writer's flags
    copy = tmp_path / "killed_copy.h5"
    shutil.copy(path, copy)
    with pytest.raises(OSError):
        h5py.File(copy, "r").close()
    r = CliRunner().invoke(main, ["repair", str(copy)])
    assert r.exit_code == 0 and "repaired" in r.output, r.output
    with h5py.File(copy, "r") as f:
        assert f["particles/agents/mu/step"].shape[0] >= 6
    if shutil.which("h5dump"):  # HDF5's own tool (1.10 here) reads the file: it is in the 1.10 format
        dump = subprocess.run(["h5dump", "-d", "/particles/agents/mu/step", str(copy)], capture_output=True,
                              text=True)
        assert dump.returncode == 0 and "DATASET" in dump.stdout, dump.stderr
    with agents.load(path) as traj:
        assert traj.status == "killed"
        n = len(traj.frame_steps)
        assert n >= 5
        mu = traj.field("mu", frame=n - 1)
        assert np.isfinite(mu[~np.isnan(mu)]).all()
        ck = traj.checkpoint()
        assert ck.step >= traj.frame_steps[4]
    text_short = text.replace("steps: 1000000", f"steps: {ck.step + 6}")
    (tmp_path / "long.yaml").write_text(text_short)
    res = run_scenario(load_scenario(tmp_path / "long.yaml"), path, resume=True)
    assert res.status == "completed" and res.last_step == ck.step + 6
    with h5py.File(path, "r") as f:  # a plain open works again once the run has been closed cleanly
        assert run_record(f)["status"] == "completed"
        steps = f["observables/energy/total/step"][...]
        assert np.array_equal(steps, np.arange(ck.step + 7))


def test_reader_grids_and_layout(tmp_path):
    res = run_scenario(scenario(tmp_path), tmp_path / "run.h5")
    sim = agents.Simulation.from_config(scenario(tmp_path).config)
    with agents.load(res.path) as traj:
        assert traj.n_agents == 4 and traj.K == 8 and traj.fields == ["mu", "sigma", "phi", "beta"]
        mu = traj.field("mu", frame=0)
        assert mu.shape == (4, 10, 10, 8)
        chi = traj.field("chi")
        assert np.array_equal(np.isnan(mu[..., 0]), np.isnan(chi))
        np.testing.assert_allclose(traj.field("mu", 0, agent=1), sim.agent_field("mu", 1), rtol=1e-6, atol=1e-7)
        assert traj.field("sigma", -1, agent=0).shape == (10, 10, 8, 8)
        beta = traj.rows("beta", -1)
        assert beta.shape == (traj.index.size, 4)
        lay = traj.layout()
        assert np.array_equal(lay.offset, sim.layout.offset) and lay.observations.D == 2
        e = traj.energies()
        assert set(e) == {"step", "total"} | set(TERMS) and e["total"].size == 31
        with pytest.raises(IndexError):
            traj.field("mu", frame=50)
        assert "traj" in repr(traj) or "Trajectory" in repr(traj)


def test_initial_state_from_an_earlier_run(tmp_path):
    first = run_scenario(scenario(tmp_path), tmp_path / "first.h5")
    text = SCENARIO.replace("init: {phi: {kind: random, per: agent, scale: 0.5}}",
                            "init: {from: {path: first.h5, frame: -1}}")
    sc = scenario(tmp_path, text=text)
    built = agents.build(sc.config, sc.base_dir)
    with agents.load(first.path) as traj:
        ck = traj.checkpoint()
    assert np.array_equal(built.state.mu, ck.mu) and built.state.step == 0
    other = text.replace("radius: 4", "radius: 3")
    with pytest.raises(ValueError, match="other supports"):
        sc2 = scenario(tmp_path, text=other)
        agents.build(sc2.config, sc2.base_dir)


def test_a_ctrl_c_swallowed_during_start_up_stops_the_run_before_its_first_step(tmp_path, monkeypatch):
    """A SIGINT that reached `vfe` during the command's imports or set-up, and whose KeyboardInterrupt a library's
    broad `except` swallowed, is recorded (runner/signals.py): the run loop takes it at its start, stops before step 1
    and says `interrupted`; a second run in the process is not affected."""
    from gauge_vfe.agents.runner import signals

    (tmp_path / "traj.yaml").write_text(SCENARIO)
    signals.note_startup_signal(signal.SIGINT)  # as launch.py's handler does, the exception then swallowed
    result = run_scenario(load_scenario(tmp_path / "traj.yaml", ["dynamics.steps=50"]), tmp_path / "a.h5")
    assert result.status == "interrupted" and result.last_step == 0, result
    assert "SIGINT" in result.message
    result = run_scenario(load_scenario(tmp_path / "traj.yaml", ["dynamics.steps=5"]), tmp_path / "b.h5")
    assert result.status == "completed" and result.last_step == 5


def test_ctrl_c_at_any_moment_of_start_up_exits_130_without_a_traceback(tmp_path):
    """From the interpreter's start through the imports, building and the first steps: always exit 130 and one
    line, never a traceback or a death by SIGINT (-2), which CPython chose after some interrupted imports."""
    (tmp_path / "traj.yaml").write_text(SCENARIO)
    for delay in (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.8):
        p = subprocess.Popen([sys.executable, "-m", "gauge_vfe.agents.launch", "run", str(tmp_path / "traj.yaml"),
                              "--steps", "1000000", "-q", "-o", str(tmp_path / f"run{delay}.h5")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        finally:
            p.kill()  # an interrupt that was lost must not leave a million-step run behind
        assert p.returncode == 130, (delay, p.returncode, err[-2000:])
        assert "Traceback" not in err, (delay, err[-2000:])
        # before the run loop: one `interrupted` line on stderr; in it: the status line on stdout
        assert err.strip().splitlines()[-1:] == ["interrupted"] or "\ninterrupted: " in "\n" + out, (delay, out, err)
