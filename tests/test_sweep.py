"""Sweeps on Dask: local cluster, resume, failing members, a killed worker, an external scheduler."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import h5py
import pytest
from click.testing import CliRunner

from gauge_vfe import agents
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.runner.sweep import SweepError, members, parse_param, run_sweep

from factories import tiny_sweep_yaml


def scenario(tmp_path, text=None):
    """``text`` (default: the tiny sweep scenario) as ``tiny.yaml`` in ``tmp_path``."""
    p = tmp_path / "tiny.yaml"
    p.write_text(tiny_sweep_yaml() if text is None else text)
    return p


def summary(directory):
    with open(directory / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_parameters():
    assert parse_param("energy.kappa=0.1,0.3,1") == ("energy.kappa", [0.1, 0.3, 1])
    assert parse_param("seed=0:4") == ("seed", [0, 1, 2, 3])
    assert len(members([("a", [1, 2]), ("b", [3, 4, 5])])) == 6
    assert members([("a", [1, 2]), ("b", [3, 4])], zip_params=True) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    with pytest.raises(SweepError):
        members([("a", [1, 2]), ("b", [3])], zip_params=True)
    with pytest.raises(SweepError):
        parse_param("seed=4:0")


def test_local_cluster_summary_and_resume(tmp_path):
    out = tmp_path / "sweep"
    res = run_sweep(scenario(tmp_path), [("energy.kappa", [0.5, 2.0]), ("seed", [0, 1])], out, workers=2)
    assert res.ran == 4 and res.by_status() == {"completed": 4}
    rows = summary(out)
    assert [r["member"] for r in rows] == ["m0000", "m0001", "m0002", "m0003"]
    assert {(r["param:energy.kappa"], r["param:seed"]) for r in rows} == {("0.5", "0"), ("0.5", "1"), ("2.0", "0"),
                                                                        ("2.0", "1")}
    for r in rows:
        assert float(r["energy_total"]) > 0 and int(float(r["last_step"])) == 20
        with agents.load(r["path"]) as traj:  # an ordinary run, its overrides recorded
            assert traj.config["energy"]["kappa"] == float(r["param:energy.kappa"])
            assert traj.config["seed"] == int(r["param:seed"])
    with h5py.File(out / "summary.h5", "r") as f:
        assert list(f["param:seed"][...]) == [0, 1, 0, 1] and f["energy_total"].shape == (4,)
    mtimes = {r["member"]: os.path.getmtime(r["path"]) for r in rows}
    again = run_sweep(scenario(tmp_path), [("energy.kappa", [0.5, 2.0]), ("seed", [0, 1])], out, workers=2,
                      resume=True)
    assert again.ran == 0 and again.by_status() == {"completed": 4}
    assert {r["member"]: os.path.getmtime(r["path"]) for r in summary(out)} == mtimes
    with pytest.raises(SweepError, match="other parameters"):
        run_sweep(scenario(tmp_path), [("energy.kappa", [0.5])], out, workers=1, resume=True)


def test_a_failing_member_does_not_stop_the_others_and_resume_reruns_it(tmp_path):
    # a member that fails while running (its step size makes it diverge at once): recorded, the others go on
    out = tmp_path / "sweep"
    r = CliRunner().invoke(main, ["sweep", str(scenario(tmp_path)), "--param", "dynamics.lr_mu=0.02,1e9,0.01",
                                  "--workers", "2", "-o", str(out), "-q"])
    assert r.exit_code == 1, r.output
    assert "m0001: diverged" in r.output and "diverged at step 1" in r.output
    rows = {row["member"]: row for row in summary(out)}
    assert rows["m0000"]["status"] == rows["m0002"]["status"] == "completed"
    assert rows["m0001"]["status"] == "diverged"
    # resuming with the same members runs the one that did not complete again (and it diverges again)
    res = run_sweep(scenario(tmp_path), [("dynamics.lr_mu", [0.02, 1e9, 0.01])], out, workers=1, resume=True)
    assert res.ran == 1


def test_a_member_with_bad_input_stops_the_sweep_before_anything_runs(tmp_path):
    out = tmp_path / "sweep"
    r = CliRunner().invoke(main, ["sweep", str(scenario(tmp_path)), "--param", "energy.kappa=1,-1,2",
                                  "--workers", "2", "-o", str(out), "-q"])
    assert r.exit_code == 2, r.output
    assert "member m0001 (energy.kappa=-1)" in r.output and "energy.kappa: Input should be greater than 0" in r.output
    assert not (out / "summary.csv").exists() and not list(out.glob("m*.h5"))


def test_sweep_section_in_the_scenario(tmp_path):
    text = tiny_sweep_yaml() + "sweep:\n  params: {energy.kappa: [0.5, 1.0], seed: '0:2'}\n"
    r = CliRunner().invoke(main, ["sweep", str(scenario(tmp_path, text)), "--workers", "1", "-o",
                                  str(tmp_path / "s"), "-q"])
    assert r.exit_code == 0, r.output
    assert len(summary(tmp_path / "s")) == 4
    bad = tiny_sweep_yaml() + "sweep:\n  params: {seed: 'lots'}\n"
    r = CliRunner().invoke(main, ["sweep", str(scenario(tmp_path, bad)), "-o", str(tmp_path / "b")])
    assert r.exit_code == 2 and "sweep.params.seed: a string must be an integer range" in r.output
    r = CliRunner().invoke(main, ["plot", str(tmp_path / "s")])
    assert r.exit_code == 0 and "phase_energy_total.png" in r.output


def test_a_killed_worker_gets_its_member_rerun(tmp_path):
    import datetime as dt

    from dask.distributed import Client, LocalCluster

    slow = (tiny_sweep_yaml().replace("steps: 20", "steps: 40000")  # several s each
            .replace("every: 10", "every: 5000"))
    out = tmp_path / "sweep"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster.scheduler_address) as watcher:
        killed = {}

        def kill_a_busy_worker():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = {w: tasks for w, tasks in watcher.processing().items() if tasks}
                if busy:
                    time.sleep(1.0)  # the member is under way
                    pids = watcher.run(os.getpid)
                    addr, tasks = next(iter(busy.items()))
                    if addr in pids:
                        killed["time"] = time.time()
                        killed["keys"] = list(tasks)
                        os.kill(pids[addr], signal.SIGKILL)
                        return
                time.sleep(0.1)

        t = threading.Thread(target=kill_a_busy_worker)
        t.start()
        res = run_sweep(scenario(tmp_path, slow), [("seed", [0, 1, 2])], out, scheduler=cluster.scheduler_address)
        t.join()
    assert killed, "no worker was killed"
    assert res.by_status() == {"completed": 3}
    rows = {r["member"]: r for r in summary(out)}
    for r in rows.values():
        with agents.load(r["path"]) as traj:
            assert traj.status == "completed" and traj.last_step == 40000
    # the member that was running on the killed worker was started again after the kill
    victims = [k.rsplit("-", 1)[-1] for k in killed["keys"]]
    for name in victims:
        with agents.load(rows[name]["path"]) as traj:
            started = dt.datetime.fromisoformat(traj.started_at).timestamp()
        assert started >= killed["time"] - 1.0, (name, started, killed["time"])


def test_external_scheduler_and_workers_as_processes(tmp_path):
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--scheduler-file", str(sched_file), "--port", "0", "--host", "127.0.0.1",
                                      "--dashboard-address", ":0"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--nworkers", "1", "--no-dashboard"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address) as c:
            c.wait_for_workers(2, timeout=60)
        r = CliRunner().invoke(main, ["sweep", str(scenario(tmp_path)), "--param", "seed=0:4", "--scheduler",
                                      address, "-o", str(tmp_path / "ext"), "-q"])
        assert r.exit_code == 0, r.output
        assert "4 members (completed 4)" in r.output
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_ctrl_c_ends_a_running_sweep_with_one_line_and_resume_finishes_it(tmp_path):
    """SIGINT while members run: exit 130 with the one `interrupted` line (no worker warnings, no traceback), and
    --resume runs every member to completion."""
    long = tiny_sweep_yaml().replace("steps: 20", "steps: 200000").replace("every: 10", "every: 1000")
    path = scenario(tmp_path, long)
    cmd = [sys.executable, "-m", "gauge_vfe.agents.launch", "sweep", str(path), "--param", "seed=0:2", "--workers",
           "2", "-q", "-o", str(tmp_path / "s")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list((tmp_path / "s").glob("m*.h5")) and time.time() < deadline:  # members are running
            time.sleep(0.5)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130, err[-2000:]
    lines = [ln for ln in (out + err).splitlines() if ln.strip()]  # not even the resource tracker's warning
    assert len(lines) == 1 and lines[0].startswith("interrupted: finished members are in"), out + err
    short = long.replace("steps: 200000", "steps: 30")
    path.write_text(short)  # the same members (parameters), shorter: --resume reruns the unfinished ones
    r = CliRunner().invoke(main, ["sweep", str(path), "--param", "seed=0:2", "--workers", "2", "-q", "-o",
                                  str(tmp_path / "s"), "--resume"])
    assert r.exit_code == 0, r.output
    assert [row["status"] for row in summary(tmp_path / "s")] == ["completed", "completed"]


def test_per_member_seeds_are_distinct_recorded_and_exclusive_with_a_swept_seed():
    """sweep.seeds = per_member (docs/model.md#sweeps): member k gets member_seed(root, k), member 0 the root; the
    seeds differ from each other and from the ensemble's replica seeds; sweeping seed as well is refused."""
    from gauge_vfe.agents.setup.build import member_seed, replica_seed

    out = members([("a", [1, 2]), ("b", [3, 4, 5])], seed_root=11)
    seeds = [m["seed"] for m in out]
    assert seeds[0] == 11 and seeds == [member_seed(11, k) for k in range(6)]
    assert len(set(seeds)) == 6 and all(0 <= s < 2 ** 63 for s in seeds)
    assert not set(seeds[1:]) & {replica_seed(11, k) for k in range(1, 6)}
    assert [(m["a"], m["b"]) for m in out] == [(a, b) for a in (1, 2) for b in (3, 4, 5)]
    assert all("seed" not in m for m in members([("a", [1, 2])]))
    with pytest.raises(SweepError, match="per_member"):
        members([("seed", [1, 2])], seed_root=11)


def test_per_member_seeds_through_the_cli(tmp_path):
    """`sweep: {seeds: per_member}` (or --seeds per-member) runs each member with its own recorded seed; the
    members' files carry that seed and differ; --seeds shared overrides the scenario's choice."""
    from gauge_vfe.agents.setup.build import member_seed

    text = tiny_sweep_yaml() + "sweep:\n  params: {energy.kappa: [0.5, 1.0]}\n  seeds: per_member\n"
    path = scenario(tmp_path, text)
    r = CliRunner().invoke(main, ["sweep", str(path), "--workers", "1", "-o", str(tmp_path / "s"), "-q"])
    assert r.exit_code == 0, r.output
    rows = summary(tmp_path / "s")
    assert [int(row["param:seed"]) for row in rows] == [member_seed(1, 0), member_seed(1, 1)]
    seeds = [agents.load(row["path"]).config["seed"] for row in rows]
    assert seeds == [member_seed(1, 0), member_seed(1, 1)]
    r = CliRunner().invoke(main, ["sweep", str(path), "--workers", "1", "--seeds", "shared", "-o",
                                  str(tmp_path / "t"), "-q"])
    assert r.exit_code == 0, r.output
    assert "param:seed" not in summary(tmp_path / "t")[0]
