"""The run lock is one lock per FILE, not per path (issue 26, item 2; agents/io/lock.py).

Each case starts a real `vfe run` in a subprocess, lets it reach its step loop (its progress bar shows step
STOP_AT, so the file holds frames and a checkpoint) and stops it with SIGSTOP: a stopped process is a live
writer (its locks and open file stay), and the attack no longer races the run's end on a loaded machine. Then
the attack, under another name of the file: it must exit 2 with one line naming the live run, and leave the
file's bytes as they were. After SIGCONT the run must end `completed` with every frame in its file.

Before this lock, `--resume` through a symlink or after `RUN.h5.lock` was deleted, and `vfe analyze` through a
hard link, destroyed the live file; `vfe repair` through a symlink reported "repaired".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402

STEPS, EVERY, STOP_AT = 600, 50, 20
TIMEOUT = 300.0


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lock-identity")
    yield faults.write_scenario(folder, steps=STEPS, every=EVERY)
    shutil.rmtree(folder, ignore_errors=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class LiveRun:
    """A `vfe run` stopped (SIGSTOP) inside its step loop; :meth:`finish` lets it go on and end."""

    def __init__(self, scenario: Path, out: Path):
        self.out = out
        self.t0 = time.monotonic()
        self.p = faults.spawn(faults.vfe_cmd(*faults.run_args(scenario, out, quiet=False)))
        seen, self.early_err = faults.wait_for_step(self.p, STOP_AT, TIMEOUT)
        if seen is None or seen >= STEPS:
            self.p.kill()
            pytest.fail(f"the run ended or stalled before step {STOP_AT}: {self.early_err[-500:]}")
        os.kill(self.p.pid, signal.SIGSTOP)

    def finish(self) -> faults.Done:
        os.kill(self.p.pid, signal.SIGCONT)
        return faults.finish(self.p, self.t0, TIMEOUT)


def _assert_refused(d: faults.Done, live: LiveRun, before: str) -> None:
    assert d.rc == 2, (d.rc, d.err)
    assert len(d.err_lines) == 1, d.err_lines  # one line, no traceback
    line = d.err_lines[0]
    assert "another process" in line and f"pid {live.p.pid}" in line, line
    assert _sha(live.out) == before, "the refused command changed the live file"


def _assert_completed(live: LiveRun) -> None:
    from gauge_vfe import agents

    d = live.finish()
    assert d.rc == 0, (d.rc, d.err[-800:])
    with agents.load(live.out) as traj:
        assert traj.status == "completed"
        assert list(traj.frame_steps) == list(range(0, STEPS + 1, EVERY))
        assert traj.last_step == STEPS
        traj.field("mu", frame=-1)  # the last frame reads


def _attack(scenario: Path, tmp_path: Path, make_name, command) -> None:
    out = tmp_path / "run.h5"
    live = LiveRun(scenario, out)
    try:
        name = make_name(out)
        before = _sha(out)
        d = faults.run_cli(command(scenario, name), TIMEOUT)
        _assert_refused(d, live, before)
    except BaseException:
        live.p.kill()
        raise
    _assert_completed(live)


def _symlink(out: Path) -> Path:
    link = out.parent / "elsewhere" / "link.h5"
    link.parent.mkdir()
    link.symlink_to(out)
    return link


def _hard_link(out: Path) -> Path:
    link = out.parent / "hard.h5"
    os.link(out, link)
    return link


def _dot_dot(out: Path) -> Path:
    (out.parent / "sub").mkdir()
    return out.parent / "sub" / ".." / out.name


def _lock_removed(out: Path) -> Path:
    lock = out.with_name(out.name + ".lock")
    assert lock.exists()
    lock.unlink()
    return out


def _resume(scenario, name):
    return faults.run_args(scenario, name, "--resume")


def _analyze(scenario, name):
    return ["analyze", name]


def _repair(scenario, name):
    return ["repair", name]


@pytest.mark.parametrize("make_name, command", [
    (_symlink, _resume), (_hard_link, _analyze), (_symlink, _repair), (_lock_removed, _resume),
    (_hard_link, _resume), (_dot_dot, _resume)],
    ids=["resume-symlink", "analyze-hard-link", "repair-symlink", "resume-lock-file-removed",
         "resume-hard-link", "resume-dot-dot"])
def test_a_live_run_is_refused_by_every_name_of_its_file(scenario, tmp_path, make_name, command):
    _attack(scenario, tmp_path, make_name, command)


def test_a_second_analyze_or_an_inspect_during_analyze_names_the_first(scenario, tmp_path):
    """`vfe analyze` has the file open for writing (HDF5's own lock): a second `analyze` and an `inspect` say
    that another process holds the file, naming it, instead of 'not a readable HDF5 trajectory ([Errno 11]
    ...)'; the first analyze then ends normally."""
    from gauge_vfe.agents.io.lock import _flock_holder, writer_active

    out = tmp_path / "done.h5"
    d = faults.run_cli(faults.run_args(scenario, out, "--set", "analysis.enabled=false"), TIMEOUT)
    assert d.rc == 0, d.err[-800:]
    first = faults.spawn(faults.vfe_cmd("analyze", out))
    t0 = time.monotonic()
    try:
        # stop it once it holds the run lock and has the file open (HDF5's lock), i.e. writes the results
        while (writer_active(out) or {}).get("pid") != first.pid or _flock_holder(out.stat()).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() - t0 < TIMEOUT, "the first analyze never opened it"
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        before = _sha(out)
        for command in (["analyze", out], ["inspect", out]):
            d = faults.run_cli(command, TIMEOUT)
            assert d.rc == 2 and len(d.err_lines) == 1, (command[0], d.rc, d.err)
            line = d.err_lines[0]
            assert "another process is reading or writing this file" in line and f"pid {first.pid}" in line, line
            assert "Errno" not in line, line
        assert _sha(out) == before
    except BaseException:
        first.kill()
        raise
    os.kill(first.pid, signal.SIGCONT)
    d = faults.finish(first, t0, TIMEOUT)
    assert d.rc == 0, d.err[-800:]
    from gauge_vfe import agents

    with agents.load(out) as traj:
        assert traj.analysis() is not None and traj.status == "completed"


def test_the_lock_is_the_files_in_one_process_too(tmp_path):
    """Unit level: a second RunLock on the same file through a hard link, a symlink or `..` is refused in the
    same process (an OFD lock belongs to its open file description), a reader sees the writer by every name,
    and closing another descriptor of the file does not drop the lock."""
    from gauge_vfe.agents.io.lock import RunFileBusy, RunLock, writer_active

    path = tmp_path / "run.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    os.link(path, tmp_path / "hard.h5")
    (tmp_path / "sym.h5").symlink_to(path)
    (tmp_path / "sub").mkdir()
    names = [tmp_path / "hard.h5", tmp_path / "sym.h5", tmp_path / "sub" / ".." / "run.h5"]
    assert all(writer_active(n) is None for n in [path] + names)
    with RunLock(path):
        os.close(os.open(path, os.O_RDONLY))  # what HDF5 and is_hdf5 do: must not release anything
        for name in names:
            with pytest.raises(RunFileBusy, match=f"pid {os.getpid()}"):
                RunLock(name).acquire()
            assert writer_active(name)["pid"] == os.getpid()
        # a refused lock leaves no lock file of its own behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.h5", "run.h5", "run.h5.lock", "sub", "sym.h5"]
    assert all(writer_active(n) is None for n in [path] + names)
    with RunLock(tmp_path / "hard.h5"):  # free again, by any name
        pass


def test_a_new_run_locks_its_new_file_and_frees_the_one_it_kept(scenario, tmp_path):
    """A fresh run over an existing file keeps that file as NAME.1.h5: while the run lives its new file is locked
    (a hard link to it is refused) and the kept one is not (`vfe analyze` may use it)."""
    from gauge_vfe.agents.io.lock import RunFileBusy, RunLock, writer_active
    from gauge_vfe.agents.runner.run import run_scenario
    from gauge_vfe.agents.setup.scenario import load_scenario

    out = tmp_path / "run.h5"
    sc = load_scenario(scenario, ["dynamics.steps=10"])
    assert run_scenario(sc, out).status == "completed"
    seen = {}

    class Probe:
        def start(self, sim):
            os.link(out, tmp_path / "hard.h5")
            seen["new"] = writer_active(tmp_path / "hard.h5")
            seen["kept"] = writer_active(tmp_path / "run.1.h5")
            with pytest.raises(RunFileBusy):
                RunLock(tmp_path / "hard.h5").acquire()
            RunLock(tmp_path / "run.1.h5").acquire().release()

        def update(self, sim, info):
            pass

        def finish(self, sim, outcome):
            pass

    res = run_scenario(load_scenario(scenario, ["dynamics.steps=10"]), out, observers=[Probe()])
    assert res.status == "completed" and res.kept_earlier == tmp_path / "run.1.h5"
    assert seen["new"]["pid"] == os.getpid() and seen["kept"] is None
    assert writer_active(out) is None and writer_active(tmp_path / "run.1.h5") is None
