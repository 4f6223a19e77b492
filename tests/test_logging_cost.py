"""Logging that costs little (issue 14): the buffered trajectory writer keeps every promise of the per-frame one.

Correctness only (the cost is measured by benchmarks/bench_logging.py): a batched file equals a per-frame one;
Ctrl-C, SIGTERM, a failure and the end write the buffered frames; resume after a kill at any point of a batch
write is bit-identical; a live SWMR reader and a SIGKILL lose no frame older than the flush budget
(agents/io/writer.py, "What a SIGKILL costs"). The flush budget is set through ``writer.FLUSH_SECONDS``:
0 writes every step as it comes (per-frame writing), a huge one writes only the first frame, at interrupts
and at the end.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import pytest

from gauge_vfe import agents
from gauge_vfe.agents.io.schema import checkpoint_hash
from gauge_vfe.agents.io import writer as writer_module
from gauge_vfe.agents.io.recovery import open_trajectory_file
from gauge_vfe.agents.io.writer import TrajectoryWriter
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario
from factories import InterruptAt, SignalAt, same, small_run_yaml

SCENARIO = small_run_yaml("logcost", seed=5, spins="[1]", steps=40, every=4)
NEVER = 1e9  # a flush budget that never runs out: only the first frame, interrupts and the end write


def scenario(tmp_path, steps: int = 40, every: int = 4, analysis: bool = True):
    p = tmp_path / "logcost.yaml"
    text = SCENARIO.replace("steps: 40", f"steps: {steps}").replace("every: 4", f"every: {every}")
    p.write_text(text + ("" if analysis else "analysis: {enabled: false}\n"))
    return p


def run(tmp_path, name: str, monkeypatch, flush_seconds: float, steps: int = 40, resume: bool = False,
        observers=()):
    monkeypatch.setattr(writer_module, "FLUSH_SECONDS", flush_seconds)
    return run_scenario(load_scenario(scenario(tmp_path, steps)), tmp_path / name, resume=resume,
                        observers=observers)


def contents(path) -> dict:
    """Every dataset of the file by HDF5 path, but the time the run finished and the history (its records hold
    times, hosts and pids, and a resumed run has one more: docs/model.md#file-provenance)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name != "parameters/finished_at" and \
                    not name.startswith("provenance/"):
                out[name] = obj[...]
        f.visititems(visit)
    return out


def assert_same_file(path, reference) -> None:
    a, b = contents(path), contents(reference)
    assert a.keys() == b.keys()
    differ = [k for k in a if not same(a[k], b[k])]
    assert not differ, differ


@pytest.fixture
def per_frame(tmp_path, monkeypatch):
    """The reference: every step's energies and every frame written as it comes."""
    return run(tmp_path, "per_frame.h5", monkeypatch, 0.0).path


# --- batched against per-frame writing ---------------------------------------------------------------------------

@pytest.mark.parametrize("flush_seconds", [NEVER, 0.05])
def test_batched_file_equals_the_per_frame_file(tmp_path, monkeypatch, per_frame, flush_seconds):
    res = run(tmp_path, "batched.h5", monkeypatch, flush_seconds)
    assert res.status == "completed" and res.last_step == 40
    assert_same_file(res.path, per_frame)


def test_the_buffer_cap_writes_a_batch_whatever_the_time(tmp_path, monkeypatch, per_frame):
    batches = count_batches(monkeypatch)
    rows = agents.Simulation.from_config(load_scenario(scenario(tmp_path)).config).layout.n_rows
    frame_bytes = 4 * rows * (3 + 9 + 3 + 4)  # float32 mu, sigma, phi and beta (4 agents)
    monkeypatch.setattr(writer_module, "FRAME_BUFFER_BYTES", int(2.5 * frame_bytes))
    res = run(tmp_path, "capped.h5", monkeypatch, NEVER)
    assert batches[0] == 1 and set(batches[1:]) <= {1, 2, 3} and 3 in batches  # never a frame past the cap
    assert_same_file(res.path, per_frame)


def count_batches(monkeypatch) -> list:
    """The sizes of the frame batches written from now on."""
    sizes = []
    original = TrajectoryWriter._write_frames

    def counted(self):
        sizes.append(len(self._frame_buffer))
        return original(self)

    monkeypatch.setattr(TrajectoryWriter, "_write_frames", counted)
    return sizes


def test_frames_are_written_in_batches_not_one_by_one(tmp_path, monkeypatch):
    batches = count_batches(monkeypatch)
    run(tmp_path, "a.h5", monkeypatch, NEVER)
    # the first frame at once (a new file needs a checkpoint), then the other 10 with the final write
    assert batches == [1, 10]
    batches.clear()
    run(tmp_path, "b.h5", monkeypatch, 0.0)
    assert batches == [1] * 11


# --- interrupts, failures and the end write the buffered frames ---------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_writes_every_buffered_frame_and_resume_is_bit_identical(tmp_path, monkeypatch, per_frame,
                                                                              sig):
    res = run(tmp_path, "cut.h5", monkeypatch, NEVER, observers=[SignalAt(23, sig)])
    assert res.status == "interrupted" and res.last_step == 23
    with agents.load(res.path) as traj:
        assert list(traj.frame_steps) == list(range(0, 24, 4))  # none lost: all were in memory
        assert traj.checkpoint().step == 23 and traj.last_step == 23
    res = run(tmp_path, "cut.h5", monkeypatch, NEVER, resume=True)
    assert res.status == "completed" and res.last_step == 40
    assert_same_file(res.path, per_frame)


def test_a_failed_run_keeps_the_frames_it_buffered(tmp_path, monkeypatch):
    class Fail:
        def start(self, sim):
            pass

        def update(self, sim, info):
            if sim.state.step == 17:
                raise RuntimeError("an observer broke")

        def finish(self, sim, outcome):
            pass

    with pytest.raises(RuntimeError, match="an observer broke"):
        run(tmp_path, "failed.h5", monkeypatch, NEVER, observers=[Fail()])
    with agents.load(tmp_path / "failed.h5") as traj:
        assert traj.status == "failed"
        assert list(traj.frame_steps) == [0, 4, 8, 12, 16]
        assert traj.checkpoint().step == 16 and traj.last_step == 17


def test_ctrl_c_with_a_budget_that_never_runs_out_still_matches_the_reference(tmp_path, monkeypatch, per_frame):
    """The factories' Ctrl-C, at a frame step: that frame and the ones before it are all in the file."""
    res = run(tmp_path, "c.h5", monkeypatch, NEVER, observers=[InterruptAt(28)])
    assert res.status == "interrupted"
    with agents.load(res.path) as traj:
        assert traj.frame_steps[-1] == 28 and traj.checkpoint().step == 28
    run(tmp_path, "c.h5", monkeypatch, NEVER, resume=True)
    assert_same_file(tmp_path / "c.h5", per_frame)


# --- resume after a kill at any point of a batch write (the file states it can leave, made by hand) ----------------

def killed_copy(tmp_path, monkeypatch, name: str, cut_steps: dict[str, int], checkpoint_from: int | None = None,
                cut_off_entry: bool = False):
    """A 20-step run (frames 0..20, a frame every 4 steps) turned into what a kill during a batch write leaves:
    ``cut_steps`` drops the last entries of those fields' ``step`` (values and times stay: the commit had not
    happened); ``checkpoint_from`` puts the checkpoint back to that step (the switch had not happened either);
    ``cut_off_entry`` adds an entry of zeros to every field's value and time (the next batch's write, cut off).
    """
    path = run(tmp_path, name, monkeypatch, NEVER, steps=20).path
    earlier = None
    if checkpoint_from is not None:
        earlier = agents.load(run(tmp_path, f"{name}.early.h5", monkeypatch, NEVER, steps=checkpoint_from).path)
    with h5py.File(path, "a") as f:
        for field, n in cut_steps.items():
            ds = f[f"particles/agents/{field}/step"]
            ds.resize(ds.shape[0] - n, axis=0)
        if earlier is not None:
            ck = earlier.checkpoint()
            for slot in ("slot0", "slot1"):
                for key in ("mu", "sigma", "phi"):
                    f[f"checkpoint/{slot}/{key}"][...] = getattr(ck, key)
                f[f"checkpoint/{slot}/step"][0] = ck.step
                # the slot's hash is written with its arrays (docs/model.md#file-integrity)
                rng = bytes(f[f"checkpoint/{slot}/rng"][...]) if "rng" in f[f"checkpoint/{slot}"] else b""
                f[f"checkpoint/{slot}/sha256"][...] = checkpoint_hash(ck.mu, ck.sigma, ck.phi, ck.step, rng)
            earlier.close()
        if cut_off_entry:
            for field in ("mu", "sigma", "phi", "beta"):
                for key in ("value", "time"):
                    ds = f[f"particles/agents/{field}/{key}"]
                    ds.resize(ds.shape[0] + 1, axis=0)
        f["parameters/status"][0] = b"running"
    return path


@pytest.mark.parametrize("case", [
    dict(cut_steps={"mu": 2, "sigma": 2, "phi": 2, "beta": 2}),  # after the checkpoint switch, before the commit
    dict(cut_steps={"mu": 2}),  # during the commit: mu's steps come last
    dict(cut_steps={"mu": 2, "sigma": 2}),
    dict(cut_steps={"mu": 2, "sigma": 2, "phi": 2, "beta": 2}, checkpoint_from=12),  # before the switch
    dict(cut_steps={}, cut_off_entry=True),  # the next batch's values cut off
    dict(cut_steps={"mu": 2, "sigma": 2, "phi": 2, "beta": 2}, cut_off_entry=True),
], ids=["before-commit", "mu-uncommitted", "mu-sigma-uncommitted", "before-switch", "cut-off-write",
        "before-commit-and-cut-off"])
def test_resume_after_a_kill_during_a_batch_is_bit_identical(tmp_path, monkeypatch, per_frame, case):
    path = killed_copy(tmp_path, monkeypatch, "killed.h5", **case)
    with agents.load(path) as traj:
        ck = traj.checkpoint()
        assert ck.step == case.get("checkpoint_from", 20)
        assert traj.frame_steps[-1] <= 20
    res = run(tmp_path, "killed.h5", monkeypatch, NEVER, resume=True)
    assert res.status == "completed" and res.last_step == 40
    assert_same_file(path, per_frame)


# --- a real SIGKILL and a live reader (child processes) -----------------------------------------------------------

CHILD = textwrap.dedent("""\
    import os, signal, sys, time
    from gauge_vfe.agents.io import writer
    from gauge_vfe.agents.runner.run import run_scenario
    from gauge_vfe.agents.setup.scenario import load_scenario

    scenario_path, out, flush_seconds, kill_in_batch = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    writer.FLUSH_SECONDS = flush_seconds
    if kill_in_batch == "yes":  # SIGKILL right after the second batch's checkpoint switch, before its commit
        original = writer.TrajectoryWriter._write_checkpoint_due

        def switch_then_die(self):
            in_batch = bool(self._frame_buffer)
            original(self)
            if in_batch and self._frames > 0:
                os.kill(os.getpid(), signal.SIGKILL)

        writer.TrajectoryWriter._write_checkpoint_due = switch_then_die

    class Report:  # when each frame was logged (attached after the trajectory observer: just after it)
        def start(self, sim):
            print(sim.state.step, time.monotonic(), flush=True)

        def update(self, sim, info):
            if sim.state.step % sim.config.output.every == 0:
                print(sim.state.step, time.monotonic(), flush=True)

        def finish(self, sim, outcome):
            pass

    run_scenario(load_scenario(scenario_path), out, observers=[Report()])
    """)


def start_child(tmp_path, out, flush_seconds: float, kill_in_batch: bool) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(scenario(tmp_path, steps=1_000_000, every=2, analysis=False)),
                             str(out), str(flush_seconds), "yes" if kill_in_batch else "no"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_reports(proc: subprocess.Popen, logged: dict[int, float], timeout: float = 0.0) -> None:
    """The child's ``step time`` lines available now (or within ``timeout``) into ``logged``."""
    while select.select([proc.stdout], [], [], timeout)[0]:
        line = proc.stdout.readline()
        if not line:
            return
        step, t = line.split()
        logged[int(step)] = float(t)
        timeout = 0.0


def resume_and_compare(tmp_path, path, ck_step: int) -> None:
    """Resume the killed file to ``ck_step + 6`` steps and compare it with a run that never stopped."""
    steps = ck_step + 6
    scenario_text = scenario(tmp_path, steps=steps, every=2, analysis=False)
    res = run_scenario(load_scenario(scenario_text), path, resume=True)
    assert res.status == "completed" and res.last_step == steps
    reference = run_scenario(load_scenario(scenario_text), tmp_path / "reference.h5")
    assert_same_file(path, reference.path)


def test_sigkill_between_checkpoint_and_commit_then_resume_is_bit_identical(tmp_path, monkeypatch):
    path = tmp_path / "killed.h5"
    proc = start_child(tmp_path, path, 0.3, kill_in_batch=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    with agents.load(path) as traj:
        assert traj.status == "killed"
        ck = traj.checkpoint()
        committed = list(traj.frame_steps)
    assert committed == [0] and ck.step > 0  # the checkpoint is ahead of the commit: resume commits the frames
    resume_and_compare(tmp_path, path, ck.step)


@pytest.mark.slow  # a child process run for a few seconds, then a resume and a reference of as many steps: 8-30 s
def test_a_live_reader_and_a_sigkill_lose_no_frame_older_than_the_flush_budget(tmp_path, monkeypatch):
    flush_seconds = 0.5
    # what the bound allows beyond the budget on a busy machine: a step, a write, and the reader's own latency
    slack = 1.5
    path = tmp_path / "live.h5"
    proc = start_child(tmp_path, path, flush_seconds, kill_in_batch=False)
    logged: dict[int, float] = {}
    polls = []  # (time of the poll, last committed frame's step the reader saw)
    reader = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not polls or polls[-1][0] - polls[0][0] < 3.0):
            read_reports(proc, logged, timeout=0.1)
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            if reader is None:
                reader = open_reader(path)
                continue
            t = time.monotonic()
            polls.append((t, last_committed_step(reader)))
        read_reports(proc, logged)
        t_kill = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if reader is not None:
            reader.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    read_reports(proc, logged)
    assert len(polls) >= 10 and len(logged) >= 20, (len(polls), len(logged))
    for t, seen in polls:  # the reader saw every frame logged more than the bound before it looked
        due = [s for s, t_logged in logged.items() if t_logged < t - flush_seconds - slack]
        assert seen is not None or not due
        assert not due or seen >= max(due), (t, seen, max(due))
    with agents.load(path) as traj:
        assert traj.status == "killed"
        on_disk = list(traj.frame_steps)
        ck = traj.checkpoint()
    due = [s for s, t_logged in logged.items() if t_logged < t_kill - flush_seconds - slack]
    assert due and on_disk[-1] >= max(due)  # the kill lost no frame older than the bound
    assert on_disk == list(range(0, on_disk[-1] + 1, 2))
    assert ck.step >= on_disk[-1]  # the checkpoint is never behind the committed frames
    resume_and_compare(tmp_path, path, ck.step)


def open_reader(path):
    """The run's file in SWMR-read mode once the writer has set it up, else None."""
    if not path.exists():
        return None
    try:
        f = h5py.File(path, "r", swmr=True)
    except OSError:
        return None
    if "particles/agents/mu/step" not in f:
        f.close()
        return None
    return f


def last_committed_step(f) -> int | None:
    """The step of the last frame a reader counts: ``mu``'s steps are the last written of a commit."""
    ds = f["particles/agents/mu/step"]
    ds.refresh()
    n = ds.shape[0]
    return int(ds[n - 1]) if n else None


def test_open_trajectory_file_sees_committed_frames_of_a_finished_batched_run(tmp_path, monkeypatch):
    res = run(tmp_path, "r.h5", monkeypatch, NEVER)
    with open_trajectory_file(res.path) as f:
        assert f["particles/agents/mu/step"][-1] == 40
        assert f["observables/energy/total/step"].shape == (41,)
