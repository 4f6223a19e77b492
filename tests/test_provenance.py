"""The run's history (docs/model.md#file-provenance, #resume-settings): one record per invocation that writes a
run file, settings a resume may and may not change, input files that changed between two invocations, files of
a version without a history, and a killed invocation's record."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gauge_vfe import agents
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import ScenarioError, load_scenario

from factories import InterruptAt, kill_run_after_frames

OBS_YAML = ("name: prov\n"
            "seed: 4\n"
            "grid: {height: 8, width: 8}\n"
            "agents: {count: 3, support: {shape: disk, radius: 3}}\n"
            "observations: {kind: file, path: obs.npy}\n"
            "dynamics: {steps: 12, lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.02}\n"
            "output: {every: 4}\n")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def scenario_dir(tmp_path):
    np.save(tmp_path / "obs.npy", np.random.default_rng(0).normal(size=(8, 8, 3)))
    (tmp_path / "s.yaml").write_text(OBS_YAML)
    return tmp_path


def scenario(folder, *overrides):
    return load_scenario(folder / "s.yaml", overrides=overrides)


def interrupted_run(folder, path, stop_at=6):
    res = run_scenario(scenario(folder), path, observers=[InterruptAt(stop_at)])
    assert res.status == "interrupted" and res.last_step == stop_at
    return path


def test_create_and_resume_are_recorded(scenario_dir):
    path = interrupted_run(scenario_dir, scenario_dir / "run.h5")
    res = run_scenario(scenario(scenario_dir), path, resume=True)
    assert res.status == "completed" and res.changes == ()
    with agents.load(path) as traj:
        seg = traj.segments()
        history = traj.history
    assert [r["command"] for r in seg] == ["create", "resume"]
    assert [(r["status"], r["first_step"], r["last_step"]) for r in seg] == [("interrupted", 0, 6),
                                                                           ("completed", 6, 12)]
    obs = str(scenario_dir / "obs.npy")
    for r in seg:  # the input file's content hash, the process, the versions, the command line
        assert r["inputs"] == {"observations.path": {"path": obs, "sha256": sha(scenario_dir / "obs.npy")}}
        assert r["versions"]["package"] and r["host"] and r["argv"] and r["time"] and r["ended_at"]
    assert seg[0]["config"]["dynamics"]["steps"] == 12 and "config" not in seg[1] and seg[1]["changes"] == {}
    assert list(history["command"]) == ["create", "resume"] and list(history["last_step"]) == [6, 12]
    assert str(history["first_step"].dtype) == "Int64" and history.loc[1, "changes"] == {}
    assert history.loc[1, "status"] == "completed"


def test_accepted_changes_are_said_recorded_and_never_rewrite_the_stored_configuration(scenario_dir):
    """Fewer or more steps, another output.every: accepted, one line each, recorded per segment; config_json keeps
    the configuration the run was created with (issue 27: it claimed steps=100 for a file of 200 steps)."""
    path = scenario_dir / "run.h5"
    run_scenario(scenario(scenario_dir), path)
    said = []
    res = run_scenario(scenario(scenario_dir, "dynamics.steps=20", "output.every=2"), path, resume=True,
                       say=said.append)
    assert res.status == "completed" and res.last_step == 20
    assert said == list(res.changes) and len(said) == 2
    assert "dynamics.steps = 20 (was 12)" in said[0] and "output.every = 2 (was 4)" in said[1]
    res = run_scenario(scenario(scenario_dir, "dynamics.steps=6"), path, resume=True)  # fewer steps: none run
    assert res.status == "completed" and res.last_step == 20
    with agents.load(path) as traj:
        assert traj.config["dynamics"]["steps"] == 12 and traj.config["output"]["every"] == 4
        seg = traj.segments()
        assert list(traj.frame_steps) == [0, 4, 8, 12, 14, 16, 18, 20]
    assert seg[1]["changes"] == {"dynamics.steps": [12, 20], "output.every": [4, 2]}
    assert seg[2]["changes"] == {"dynamics.steps": [12, 6]} and (seg[2]["first_step"], seg[2]["last_step"]) == (20, 20)


@pytest.mark.parametrize("override, key, values", [
    ("dynamics.lr_mu=0.04", "dynamics.lr_mu", ("0.04", "0.02")),
    ("output.dtype=float64", "output.dtype", ("float64", "float32")),
    ("output.fields=[mu,sigma,phi,beta]", "output.fields",
     ('["mu", "sigma", "phi", "beta"]', '["mu", "sigma", "phi"]')),
    ("energy.kappa=2.0", "energy.kappa", ("2.0", "1.0")),
])
def test_a_setting_that_would_make_the_file_lie_is_refused_with_nothing_written(scenario_dir, override, key, values):
    path = interrupted_run(scenario_dir, scenario_dir / "run.h5")
    before = sha(path)
    with pytest.raises(ScenarioError) as err:
        run_scenario(scenario(scenario_dir, override), path, resume=True)
    line = str(err.value.messages[0])
    assert len(err.value.messages) == 1 and "\n" not in line
    assert f"cannot resume with {key} = {values[0]}" in line and f"used {values[1]}" in line, line
    assert sha(path) == before  # byte-identical: the check reads the file only


def test_a_changed_input_file_is_refused_and_the_file_untouched(scenario_dir):
    path = scenario_dir / "run.h5"
    r = invoke("run", scenario_dir / "s.yaml", "-o", path, "-q")
    assert r.exit_code == 0, r.output
    old = sha(scenario_dir / "obs.npy")
    np.save(scenario_dir / "obs.npy", np.random.default_rng(1).normal(size=(8, 8, 3)))
    new = sha(scenario_dir / "obs.npy")
    before = sha(path)
    r = invoke("run", scenario_dir / "s.yaml", "-o", path, "-q", "--resume", "--steps", 20)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert "obs.npy" in lines[0] and old[:12] in lines[0] and new[:12] in lines[0] and \
        "--allow-changed-inputs" in lines[0], lines[0]
    assert sha(path) == before


def test_allow_changed_inputs_records_the_change_and_inspect_shows_it(scenario_dir):
    path = scenario_dir / "run.h5"
    assert invoke("run", scenario_dir / "s.yaml", "-o", path, "-q").exit_code == 0
    old = sha(scenario_dir / "obs.npy")
    np.save(scenario_dir / "obs.npy", np.random.default_rng(1).normal(size=(8, 8, 3)))
    new = sha(scenario_dir / "obs.npy")
    r = invoke("run", scenario_dir / "s.yaml", "-o", path, "-q", "--resume", "--steps", 20, "--allow-changed-inputs")
    assert r.exit_code == 0, r.output
    assert "changed" in r.output and "obs.npy" in r.output  # said in one line
    with agents.load(path) as traj:
        seg = traj.segments()
    assert seg[1]["changed_inputs"] == {"observations.path": {"path": str(scenario_dir / "obs.npy"), "was": old,
                                                              "now": new}}
    assert seg[1]["inputs"]["observations.path"]["sha256"] == new
    out = invoke("inspect", path).output
    lines = [line for line in out.splitlines() if "segment" in line]
    assert len(lines) == 2 and "create" in lines[0] and "steps 0..12" in lines[0] and "completed" in lines[0]
    assert "resume" in lines[1] and "steps 12..20" in lines[1] and "input files changed" in lines[1] \
        and new[:12] in lines[1], out
    info = json.loads(invoke("inspect", path, "--json").output)
    assert info["segments"][1]["changed_inputs"]["observations.path"]["now"] == new
    # the next resume compares with the last segment's files: the new one, unchanged since
    assert invoke("run", scenario_dir / "s.yaml", "-o", path, "-q", "--resume", "--steps", 24).exit_code == 0


def test_a_file_without_a_history_gets_a_before_provenance_record(scenario_dir):
    path = interrupted_run(scenario_dir, scenario_dir / "old.h5")
    with h5py.File(path, "a") as f:  # as a version without the history wrote it
        del f["provenance"]
    said = []
    res = run_scenario(scenario(scenario_dir), path, resume=True, say=said.append)
    assert res.status == "completed" and any("without a history" in line for line in said)
    with agents.load(path) as traj:
        seg = traj.segments()
    assert [r["command"] for r in seg] == ["before provenance", "resume"]
    assert (seg[0]["status"], seg[0]["first_step"], seg[0]["last_step"]) == ("interrupted", 0, 6)
    assert seg[0]["versions"]["package"] and seg[0]["config"]["name"] == "prov"
    assert (seg[1]["first_step"], seg[1]["last_step"], seg[1]["status"]) == (6, 12, "completed")


def test_analyze_and_repair_append_their_records(scenario_dir):
    path = scenario_dir / "run.h5"
    assert invoke("run", scenario_dir / "s.yaml", "-o", path, "-q").exit_code == 0
    assert invoke("analyze", path).exit_code == 0
    assert invoke("repair", path).exit_code == 0  # nothing to repair: nothing written, nothing recorded
    with agents.load(path) as traj:
        seg = traj.segments()
    assert [(r["command"], r["status"]) for r in seg] == [("create", "completed"), ("analyze", "completed")]
    assert seg[1]["settings"]["meta_agents"] and seg[1]["last_step"] is None
    with agents.load(path) as traj:
        history = traj.history
    assert history.loc[0, "last_step"] == 12 and history["last_step"].isna().tolist() == [False, True]


def test_the_digest_of_a_run_is_unchanged_by_its_history(scenario_dir):
    """The history is per invocation (times, host, pid): everything else is what a run without it wrote."""
    a, b = run_scenario(scenario(scenario_dir), scenario_dir / "a.h5"), run_scenario(scenario(scenario_dir),
                                                                                      scenario_dir / "b.h5")
    with h5py.File(a.path, "r") as fa, h5py.File(b.path, "r") as fb:
        assert fa["provenance/status"].shape == (1,)
        for name in ("particles/agents/mu/value", "observables/energy/total/value", "checkpoint/slot0/mu"):
            assert np.array_equal(fa[name][...], fb[name][...])
        assert fa["parameters"].attrs["config_json"] == fb["parameters"].attrs["config_json"]


@pytest.mark.slow
def test_a_killed_run_leaves_a_running_record_that_reads_as_killed(scenario_dir):
    """SIGKILL during the steps: the record stays `running`, the reader and inspect say `killed`; vfe repair (of a
    copy, flags still set) and the resume each append a record, and the killed one then ends at the checkpoint the
    resume continued from."""
    import shutil

    (scenario_dir / "s.yaml").write_text(OBS_YAML.replace("steps: 12", "steps: 4000").replace("every: 4", "every: 2"))
    path = scenario_dir / "run.h5"
    kill_run_after_frames(scenario_dir / "s.yaml", path, frames=6)
    copy = scenario_dir / "copy.h5"
    shutil.copyfile(path, copy)
    assert "repaired" in invoke("repair", copy).output
    with agents.load(copy) as traj:
        assert [(r["command"], r["status"]) for r in traj.segments()] == [("create", "killed"),
                                                                          ("repair", "completed")]
    with agents.load(path) as traj:
        seg = traj.segments()
        last = traj.last_step
    assert [(r["command"], r["status"]) for r in seg] == [("create", "killed")] and seg[0]["last_step"] == last
    lines = [line for line in invoke("inspect", path).output.splitlines() if "segment" in line]
    assert len(lines) == 1 and "killed" in lines[0] and f"steps 0..{last}" in lines[0]
    from gauge_vfe.agents.io.recovery import open_trajectory_file

    # as recorded: running (the reader decides it was killed); read as every reader does, since readers never
    # clear a killed writer's flags (a plain h5py open refuses the file until `vfe repair`)
    with open_trajectory_file(path) as f:
        assert f["provenance/status"][0].rstrip(b"\0") == b"running"
    r = invoke("run", scenario_dir / "s.yaml", "-o", path, "-q", "--resume", "--steps", last + 4)
    assert r.exit_code == 0, r.output
    with agents.load(path) as traj:
        seg = traj.segments()
    assert [(r["command"], r["status"]) for r in seg] == [("create", "killed"), ("resume", "completed")]
    assert seg[0]["last_step"] == seg[1]["first_step"] <= last and seg[1]["last_step"] == last + 4


def test_vfe_analyze_uses_the_analysis_settings_of_the_last_resume(scenario_dir):
    from gauge_vfe.agents.runner.analyze import analysis_settings

    path = scenario_dir / "run.h5"
    run_scenario(scenario(scenario_dir), path)
    run_scenario(scenario(scenario_dir, "dynamics.steps=16", "analysis.meta_agents.eps_belief=0.3"), path,
                 resume=True)
    with agents.load(path) as traj:
        assert traj.config["analysis"]["meta_agents"]["eps_belief"] != 0.3  # the first configuration
        assert traj.segments()[1]["changes"]["analysis.meta_agents.eps_belief"][1] == 0.3
    assert analysis_settings(path).meta_agents.eps_belief == 0.3


def test_analyze_of_a_file_without_a_history_records_what_came_before(scenario_dir):
    path = scenario_dir / "old.h5"
    run_scenario(scenario(scenario_dir), path)
    with h5py.File(path, "a") as f:
        del f["provenance"]
    assert invoke("analyze", path).exit_code == 0
    with agents.load(path) as traj:
        seg = traj.segments()
    assert [(r["command"], r["status"]) for r in seg] == [("before provenance", "completed"), ("analyze", "completed")]
    assert (seg[0]["first_step"], seg[0]["last_step"]) == (0, 12)
    lines = [line for line in invoke("inspect", path).output.splitlines() if "segment" in line]
    assert "before provenance" in lines[0] and "steps 0..12" in lines[0]


def test_each_replica_file_of_an_ensemble_records_its_creation(scenario_dir):
    from gauge_vfe.agents.runner.run_ensemble import replica_folder, run_ensemble

    path = scenario_dir / "ens.h5"
    run_ensemble(scenario(scenario_dir), 2, path)
    for r in range(2):
        with agents.load(replica_folder(path) / f"r{r:04d}.h5") as traj:
            (seg,) = traj.segments()
        assert (seg["command"], seg["call"], seg["replica"], seg["status"]) == ("create", "run_ensemble", r,
                                                                                "completed")
        assert seg["inputs"]["observations.path"]["sha256"] == sha(scenario_dir / "obs.npy")
