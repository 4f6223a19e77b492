"""The run lock is one lock per FILE, not per path (issue 26, item 2; agents/io/lock.py).

The cases are benchmarks/faults.py's ``lock`` class (one implementation for both): a real `vfe run` in a
subprocess reaches its step loop (the file holds frames and a checkpoint) and is stopped with SIGSTOP: a
stopped process is a live writer (its locks and open file stay), and the attack no longer races the run's end
on a loaded machine. The attack, under another name of the file, must exit 2 with one line naming the live run
and leave the file's bytes as they were. After SIGCONT the run must end `completed`, bit-identical to an
uninterrupted run.

Before this lock, `--resume` through a symlink or after `RUN.h5.lock` was deleted, and `vfe analyze` through a
hard link, destroyed the live file; `vfe repair` through a symlink reported "repaired".
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402

TIMEOUT = 300.0


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The uninterrupted run every stopped-and-continued run must equal (faults.LOCK_STEPS steps)."""
    folder = tmp_path_factory.mktemp("lock-identity")
    reference = faults.make_reference(folder, steps=faults.LOCK_STEPS, every=faults.LOCK_EVERY, warmup=False,
                                      analyze=False)
    yield reference
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def scenario(ref):
    return ref.scenario


@pytest.mark.parametrize("case", list(faults.LOCK_CASES))
def test_a_live_run_is_refused_by_every_name_of_its_file(ref, case):
    t = faults.trial_lock(ref, case)
    assert not t.extra.get("skipped"), t.extra
    assert t.rc == 2 and t.extra["err_lines"] == 1, (t.rc, t.err)  # one line, no traceback
    assert "another process is writing this file" in t.err, t.err
    assert t.extra["clean_refusal"], t.err  # it names the live run's pid
    assert t.extra["untouched"], "the refused command changed the live file"
    assert t.extra["run_rc"] == 0, t.extra["run_err"]
    assert t.file.get("recorded_status") == "completed" and t.file.get("readable"), t.file
    assert t.identical, t.diffs  # every frame, bit for bit as an uninterrupted run


def test_a_second_analyze_or_an_inspect_during_analyze_names_the_first(scenario, tmp_path):
    """`vfe analyze` has the file open for writing (HDF5's own lock): a second `analyze` and an `inspect` say
    that another process holds the file, naming it, instead of 'not a readable HDF5 trajectory ([Errno 11]
    ...)'; the first analyze then ends normally."""
    from gauge_vfe.agents.io.lock import _identity, writer_active

    def hdf5_writer(path) -> int | None:
        """The pid holding HDF5's exclusive flock on the file (open for writing), from /proc/locks."""
        ident = f" {_identity(path.stat())} "
        with open("/proc/locks") as fh:
            for parts in (line.split() for line in fh if "FLOCK" in line and ident in line):
                if len(parts) > 4 and parts[3] == "WRITE" and parts[4].isdigit():
                    return int(parts[4])
        return None

    out = tmp_path / "done.h5"
    d = faults.run_cli(faults.run_args(scenario, out, "--set", "analysis.enabled=false"), TIMEOUT)
    assert d.rc == 0, d.err[-800:]
    first = faults.spawn(faults.vfe_cmd("analyze", out))
    t0 = time.monotonic()
    try:
        # stop it once it holds the run lock and has the file open for writing (HDF5's exclusive lock), i.e.
        # writes the results; before that it reads the file once, read-only, to check it (docs/model.md)
        while (writer_active(out) or {}).get("pid") != first.pid or hdf5_writer(out) != first.pid:
            assert first.poll() is None and time.monotonic() - t0 < TIMEOUT, "the first analyze never opened it"
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        before = faults.file_sha256(out)
        for command in (["analyze", out], ["inspect", out]):
            d = faults.run_cli(command, TIMEOUT)
            assert d.rc == 2 and len(d.err_lines) == 1, (command[0], d.rc, d.err)
            line = d.err_lines[0]
            # the second analyze meets the run lock ("is writing"), inspect HDF5's own ("is reading or writing")
            assert ("another process is writing this file" in line
                    or "another process is reading or writing this file" in line), line
            assert f"pid {first.pid}" in line, line
            assert "Errno" not in line, line
        assert faults.file_sha256(out) == before
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
    from gauge_vfe.agents.io.lock import RunFileBusy, RunLock, holder, writer_active

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
            assert writer_active(name) is not None and holder(name)["pid"] == os.getpid()
        # a refused lock leaves no lock file of its own behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.h5", "run.h5", "run.h5.lock", "sub", "sym.h5"]
    assert all(writer_active(n) is None for n in [path] + names)
    with RunLock(tmp_path / "hard.h5"):  # free again, by any name
        pass


def test_a_new_run_locks_its_new_file_and_frees_the_one_it_kept(scenario, tmp_path):
    """A fresh run over an existing file keeps that file as NAME.1.h5: while the run lives its new file is locked
    (a hard link to it is refused) and the kept one is not (`vfe analyze` may use it)."""
    from gauge_vfe.agents.io.lock import RunFileBusy, RunLock, holder, writer_active
    from gauge_vfe.agents.runner.run import run_scenario
    from gauge_vfe.agents.setup.scenario import load_scenario

    out = tmp_path / "run.h5"
    sc = load_scenario(scenario, ["dynamics.steps=10"])
    assert run_scenario(sc, out).status == "completed"
    seen = {}

    class Probe:
        def start(self, sim):
            os.link(out, tmp_path / "hard.h5")
            seen["new"] = holder(tmp_path / "hard.h5")
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
