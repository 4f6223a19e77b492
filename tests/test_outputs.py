"""No command replaces a file it did not make for this purpose, and an earlier output survives until the new one is
complete (agents/io/outputs.py; docs/model.md, "Which command writes which file").

Black-box where it matters: the kills, Ctrl-C and the live run are real processes (benchmarks/faults.py's
harness: own process group, signals as a terminal sends them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.lock import writer_active
from gauge_vfe.agents.io.outputs import OutputRefused, atomic_output, check_output, temporary_path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402
from factories import bare_tiny_yaml, kill_run_after_frames  # noqa: E402

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs of the tiny scenario (41 logged frames each)."""
    d = tmp_path_factory.mktemp("outputs")
    (d / "tiny.yaml").write_text(bare_tiny_yaml())
    for name, seed in (("a", 1), ("b", 2)):
        with gv.run(d / "tiny.yaml", output=d / f"{name}.h5", progress=False, seed=seed) as t:
            assert t.status == "completed"
    return d


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(r, fragment: str) -> None:
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], r.stderr


def pngs(folder: Path) -> dict[str, bytes]:
    """The visible PNGs (a killed write's hidden temporary aside) and their bytes."""
    return {p.name: p.read_bytes() for p in folder.glob("*.png") if not p.name.startswith(".")}


def no_temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".part" in p.name]


# --- the helper itself ---------------------------------------------------------------------------------------------

def test_atomic_output_replaces_only_on_success(tmp_path):
    target = tmp_path / "x.png"
    target.write_bytes(b"earlier")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".x.png.") and tmp.suffix == ".png"
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"earlier" and no_temporaries(tmp_path) == []
    with pytest.raises(OSError, match="nothing was replaced"):  # a writer that wrote nothing never "succeeds"
        with atomic_output(target):
            pass
    assert target.read_bytes() == b"earlier"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and no_temporaries(tmp_path) == []


def test_a_dead_process_temporary_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "m.mp4"
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    stale = target.with_name(f".m.mp4.{p.pid}-deadbeef.part.mp4")  # what a SIGKILL leaves
    stale.write_bytes(b"partial")
    live = temporary_path(target)  # this process's own (alive): never removed by another write
    live.write_bytes(b"mine")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"movie")
    assert not stale.exists() and live.exists() and target.read_bytes() == b"movie"


def test_check_output_refuses_runs_inputs_and_links(runs, tmp_path):
    a, b = runs / "a.h5", runs / "b.h5"
    with pytest.raises(OutputRefused, match="is a run's trajectory file"):
        check_output(b, [a], "export")
    with pytest.raises(OutputRefused, match="would overwrite the run file"):
        check_output(a, [a], "render")
    link = tmp_path / "link.vtkhdf"
    link.symlink_to(a)
    with pytest.raises(OutputRefused, match="would overwrite the run file"):
        check_output(link, [a], "export")
    hard = tmp_path / "hard.png"
    os.link(a, hard)
    with pytest.raises(OutputRefused, match="would overwrite the run file"):
        check_output(hard, [a], "plot")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(OutputRefused, match="not a regular file"):  # refused without opening it (no hang)
        check_output(fifo, [a], "plot")
    check_output(tmp_path / "new.mp4", [a], "render")  # a new path is fine
    (tmp_path / "old.png").write_bytes(b"\x89PNG earlier plot")
    check_output(tmp_path / "old.png", [a], "plot")  # an earlier output of the command's own kind is replaced


# --- export --------------------------------------------------------------------------------------------------------

def test_export_onto_another_run_is_refused_and_that_run_untouched(runs):
    a, b = runs / "a.h5", runs / "b.h5"
    before = b.read_bytes()
    r = invoke("export", a, "-o", b, "-q")
    one_error_line(r, f"{b}: exists and is a run's trajectory file; refusing to replace it")
    assert b.read_bytes() == before and no_temporaries(runs) == []
    with pytest.raises(OutputRefused):  # the Python API too
        gv.export(a, b)
    assert b.read_bytes() == before


def test_export_onto_its_input_is_refused_also_through_a_symlink(runs, tmp_path):
    a = runs / "a.h5"
    before = a.read_bytes()
    link = tmp_path / "a-link.vtkhdf"
    link.symlink_to(a)
    for target in (a, link):
        r = invoke("export", a, "-o", target, "-q")
        one_error_line(r, "would overwrite the run file")
    assert a.read_bytes() == before and link.is_symlink()


def test_export_replaces_an_earlier_export_only_when_complete(runs, tmp_path):
    out = tmp_path / "a.vtkhdf"
    assert invoke("export", runs / "a.h5", "-o", out, "-q").exit_code == 0
    first = out.read_bytes()
    r = invoke("export", runs / "b.h5", "-o", out, "-q")  # an export is the command's own kind: replaced
    assert r.exit_code == 0, r.output
    assert out.read_bytes() != first and no_temporaries(tmp_path) == []


def test_export_onto_a_live_runs_file_is_refused(runs, tmp_path):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(bare_tiny_yaml(steps=200000, every=1000))
    live = tmp_path / "live.h5"
    t0 = time.monotonic()
    p = faults.spawn(faults.vfe_cmd("run", scenario, "-o", live, "-q"))
    try:
        deadline = time.monotonic() + 240
        while writer_active(live) is None or not live.exists():
            assert p.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        before = live.stat()
        r = invoke("export", runs / "a.h5", "-o", live, "-q")
        one_error_line(r, f"{live}: a live run is writing this file")
        assert p.poll() is None  # the run goes on, in the same file
        after = live.stat()
        assert (after.st_ino, after.st_dev) == (before.st_ino, before.st_dev)
    finally:
        faults._killpg(p, signal.SIGINT)
        d = faults.finish(p, t0, 120, signalled=True)
    assert d.rc == 130, d.err[-500:]
    with gv.load(live) as traj:
        assert traj.status == "interrupted"


# --- plot ----------------------------------------------------------------------------------------------------------

KILLED_SAVE = """
import os, signal, sys
import matplotlib.figure

def savefig(self, fname, *args, **kwargs):  # half a PNG, then the process dies as under SIGKILL
    with open(fname, "wb") as fh:
        fh.write(b"\\x89PNG\\r\\n\\x1a\\n half written")
        fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)

matplotlib.figure.Figure.savefig = savefig
sys.argv = ["vfe", *sys.argv[1:]]
from gauge_vfe.agents.launch import main
main()
"""


def test_plot_killed_mid_write_keeps_the_earlier_plots_and_a_full_plot_replaces_them(runs, tmp_path):
    out = tmp_path / "plots"
    r = invoke("plot", runs / "a.h5", "-o", out)
    assert r.exit_code == 0, r.output
    earlier = pngs(out)
    assert "energy.png" in earlier
    p = subprocess.run([sys.executable, "-c", KILLED_SAVE, "plot", str(runs / "b.h5"), "-o", str(out)],
                       env=faults.child_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr[-500:]
    assert pngs(out) == earlier  # byte-identical
    assert len(no_temporaries(out)) == 1  # what the kill left: hidden, beside it
    r = invoke("plot", runs / "b.h5", "-o", out)  # complete: replaces them, and removes the dead temporary
    assert r.exit_code == 0, r.output
    assert (out / "energy.png").read_bytes() != earlier["energy.png"]
    assert no_temporaries(out) == []


def test_plot_refuses_a_png_path_that_is_a_run(runs, tmp_path):
    out = tmp_path / "plots"
    out.mkdir()
    os.symlink(runs / "b.h5", out / "energy.png")
    before = (runs / "b.h5").read_bytes()
    r = invoke("plot", runs / "a.h5", "-o", out)
    one_error_line(r, "energy.png: exists and is a run's trajectory file")
    assert (runs / "b.h5").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["energy.png"]


# --- render --------------------------------------------------------------------------------------------------------

def _render(runs, run, out, *extra):
    return faults.spawn(faults.vfe_cmd("render", runs / run, "-o", out, "--size", "320x240", "--fps", "2",
                                       "--no-title-card", *extra))


def _signal_mid_render(p, sig, timeout=240):
    step, _ = faults.wait_for_step(p, 3, timeout)  # three frames of 41 are in the temporary movie
    assert step is not None, "the render ended before the signal"
    assert faults._killpg(p, sig)
    return faults.finish(p, time.monotonic(), timeout, signalled=True)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_render_killed_keeps_the_earlier_movie_and_a_complete_one_replaces_it(runs, tmp_path, suffix):
    out = tmp_path / f"movie{suffix}"
    earlier = b"an earlier movie"  # any file of the command's own kind (not a run): replaced only when complete
    out.write_bytes(earlier)
    d = _signal_mid_render(_render(runs, "b.h5", out), signal.SIGKILL)
    assert d.rc == -signal.SIGKILL
    assert out.read_bytes() == earlier
    r = invoke("render", runs / "b.h5", "-o", out, "--size", "320x240", "--frames", "0:4", "--no-title-card", "-q")
    assert r.exit_code == 0, r.output  # complete: replaces it, and removes the killed render's temporary
    assert out.read_bytes() != earlier and no_temporaries(tmp_path) == []


def test_ctrl_c_during_a_render_exits_130_with_one_line_and_the_earlier_movie_intact(runs, tmp_path):
    out = tmp_path / "movie.mp4"
    earlier = b"an earlier movie"
    out.write_bytes(earlier)
    d = _signal_mid_render(_render(runs, "b.h5", out), signal.SIGINT)
    assert d.rc == 130, d.err[-1000:]
    assert d.err_lines == [f"interrupted; {out} left as it was"], d.err[-1000:]
    assert out.read_bytes() == earlier and no_temporaries(tmp_path) == []


def test_render_refuses_a_run_file_as_its_output(runs):
    before = (runs / "b.h5").read_bytes()
    r = invoke("render", runs / "a.h5", "-o", runs / "b.h5", "-q")
    assert r.exit_code == 2 and "output must end in" in r.stderr  # .h5 is no movie
    link = runs / "b-link.png"
    link.symlink_to(runs / "b.h5")
    try:
        r = invoke("render", runs / "a.h5", "-o", link, "-q")
        one_error_line(r, "exists and is a run's trajectory file")
    finally:
        link.unlink()
    assert (runs / "b.h5").read_bytes() == before


# --- sweeps --------------------------------------------------------------------------------------------------------

def _killed_member(tmp_path, output: Path, seed: int) -> None:
    """A member file as an interrupted sweep leaves it: its run killed by SIGKILL mid-way, once its file holds
    frames beyond step 0 (waiting on the file, not the progress bar: the writer commits about once a second)."""
    scenario = tmp_path / "member.yaml"
    scenario.write_text(bare_tiny_yaml(steps=200000, every=500, seed=seed))
    output.unlink(missing_ok=True)  # (`vfe run` itself would keep an earlier file aside)
    kill_run_after_frames(scenario, output, frames=3, timeout=240)


# far beyond where the killed run got (it is killed once its file holds frames, about a second in)
MEMBER_STEPS = 30000


@pytest.mark.slow  # three member runs of 30 000 steps: about 45 s
def test_an_interrupted_member_is_resumed_in_place_or_restarted_never_kept_aside(tmp_path):
    from gauge_vfe.agents.runner.sweep import run_member

    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(bare_tiny_yaml(steps=MEMBER_STEPS, every=500))
    out = tmp_path / "m0000.h5"
    _killed_member(tmp_path, out, 3)
    with gv.load(out) as traj:
        started, killed_at = traj.started_at, traj.last_step
    assert 0 < killed_at < MEMBER_STEPS
    row = run_member(str(scenario), {"seed": 3}, str(out), 1, resume=True)  # sweep --resume: in place
    assert row["status"] == "completed" and row["last_step"] == MEMBER_STEPS, row
    with gv.load(out) as traj:
        assert traj.started_at == started  # the same file, continued
    _killed_member(tmp_path, out, 3)
    with gv.load(out) as traj:
        started = traj.started_at
    time.sleep(1.1)  # started_at has whole seconds
    row = run_member(str(scenario), {"seed": 3}, str(out), 1, resume=False)  # a retry after a worker died
    assert row["status"] == "completed", row
    with gv.load(out) as traj:
        assert traj.started_at != started and traj.last_step == MEMBER_STEPS  # started again in its own file
    out.write_bytes(b"\x89HDF\r\n\x1a\n and then nothing")  # an attempt that cannot be continued (damaged)
    row = run_member(str(scenario), {"seed": 3}, str(out), 1, resume=True)
    assert row["status"] == "completed" and row["last_step"] == MEMBER_STEPS, row
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["m0000.h5"]


@pytest.mark.slow
def test_a_sweep_interrupted_and_resumed_leaves_no_renamed_aside_members(tmp_path):
    long = bare_tiny_yaml(steps=4000, every=500)
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(long)
    folder = tmp_path / "s"
    args = ["sweep", scenario, "--param", "seed=0:2", "--workers", "2", "-q", "-o", folder]
    p = faults.spawn(faults.vfe_cmd(*args))
    t0 = time.monotonic()
    while not list(folder.glob("m*.h5")) and time.monotonic() - t0 < 240 and p.poll() is None:
        time.sleep(0.2)
    time.sleep(2)
    faults._killpg(p, signal.SIGINT)
    d = faults.finish(p, t0, 240, signalled=True)
    assert d.rc == 130, d.err[-1000:]
    d = faults.run_cli([*args, "--resume"], 600)
    assert d.rc == 0, d.err[-1000:]
    assert sorted(q.name for q in folder.glob("*.h5")) == ["m0000.h5", "m0001.h5", "summary.h5"]
    assert no_temporaries(folder) == []


# --- inputs (issue 27, item 4: a FIFO named as an input hung `vfe run`) ---------------------------------------------

@pytest.mark.parametrize("text", [
    "grid: {height: 8, width: 8}\nobservations:\n  kind: file\n  path: obs.npy\n",
    "grid: {height: 8, width: 8}\nagents:\n  count: 1\n  support: {shape: mask, path: obs.npy}\n",
])
def test_an_input_naming_a_fifo_is_refused_at_once_with_one_line(tmp_path, text):
    os.mkfifo(tmp_path / "obs.npy")  # nobody ever writes it: opening it to read would wait forever
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    for command in ("validate", "run"):
        d = faults.run_cli([command, scenario, "-q"] if command == "run" else [command, scenario], 120,
                           cwd=tmp_path)
        assert d.rc == 2, (d.rc, d.err[-500:])
        assert len(d.err_lines) == 1 and "obs.npy is not a regular file (a FIFO or a device)" in d.err_lines[0], \
            d.err
    assert not list(tmp_path.glob("**/*.h5"))
