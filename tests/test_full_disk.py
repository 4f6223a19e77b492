"""A full disk outside `vfe run` (issue 27, build item 3): export, analyze, plot, the sweep's summaries and render
each stop with exit 1 and one line ("no space left on device while writing X; nothing was replaced"), never a
segmentation fault or a traceback, and leave the earlier output and the input as they were.

Real full disks: a small tmpfs (benchmarks/faults.py's mount helpers) filled up to the last kibibytes. Where no
tmpfs can be mounted (not root, a container without the capability) the tests are skipped, saying why.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from pathlib import Path

import pytest

import gauge_vfe as gv
from gauge_vfe.agents.io.outputs import NoSpaceLeft, is_disk_full
from gauge_vfe.agents.io.sweep_store import write_summary

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402
from factories import bare_tiny_yaml  # noqa: E402

MOUNTABLE, WHY_NOT = faults.can_mount()
needs_tmpfs = pytest.mark.skipif(not MOUNTABLE, reason=f"no tmpfs can be mounted here ({WHY_NOT})")
NO_SPACE = "no space left on device while writing"


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("diskfull-run")
    (d / "tiny.yaml").write_text(bare_tiny_yaml())
    with gv.run(d / "tiny.yaml", output=d / "run.h5", progress=False) as t:
        assert t.status == "completed"
    return d / "run.h5"


@pytest.fixture
def disk(tmp_path):
    """A 4 MiB tmpfs; ``faults._fill(disk, left_kib)`` leaves that much free."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ok, err = faults._mount(mnt, 4096)
    if not ok:
        pytest.skip(f"mount failed: {err}")
    try:
        yield mnt
    finally:
        faults._umount(mnt)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vfe(*args, python_code: str | None = None) -> faults.Done:
    cmd = faults.vfe_cmd(*args) if python_code is None else [sys.executable, "-X", "faulthandler", "-c", python_code]
    return faults.finish(faults.spawn(cmd), time.monotonic(), 300)


def one_no_space_line(d: faults.Done, target) -> None:
    assert d.rc == 1, (d.rc, d.err[:3000])  # not -11 (a segmentation fault), not 0
    lines = d.err_lines
    assert len(lines) == 1, d.err
    assert lines[0].startswith(f"error: {NO_SPACE} {target}") and lines[0].endswith("nothing was replaced"), lines
    assert "Traceback" not in d.err and "wrote" not in d.out


def no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob("*") if ".part" in p.name]


def test_is_disk_full_reads_h5py_text():
    assert is_disk_full(OSError(28, "x"))
    assert is_disk_full(RuntimeError("Can't write data (file write failed: ..., errno = 28, error message = ...)"))
    assert not is_disk_full(OSError(13, "Permission denied"))
    assert NoSpaceLeft("a/b.png").strerror == f"{NO_SPACE} a/b.png; nothing was replaced"


@needs_tmpfs
def test_export_to_a_full_disk_keeps_the_earlier_export(run_file, disk):
    earlier = disk / "x.vtkhdf"
    gv.export(run_file, earlier)
    before, run_before = digest(earlier), digest(run_file)
    faults._fill(disk, 64)
    for _ in range(2):  # twice, as the crash did
        d = vfe("export", run_file, "-o", earlier, "-q")
        one_no_space_line(d, earlier)
    assert digest(earlier) == before and digest(run_file) == run_before
    no_temporaries(disk)


@needs_tmpfs
def test_export_failing_inside_hdf5_is_one_line_not_a_crash(run_file, disk):
    """With the room check switched off, the write itself fails inside HDF5: the handle is released without a
    second write and the CLI leaves at once (before HDF5 frees its objects)."""
    faults._fill(disk, 200)
    code = ("import sys; import gauge_vfe.agents.io.outputs as o; o.SPACE_RESERVE_BYTES = -10**9; "
            "from gauge_vfe.agents.cli import main; "
            f"sys.argv = ['vfe', 'export', {str(run_file)!r}, '-o', {str(disk / 'y.vtkhdf')!r}, '-q']; main()")
    d = vfe(python_code=code)
    one_no_space_line(d, disk / "y.vtkhdf")
    assert not (disk / "y.vtkhdf").exists()
    no_temporaries(disk)


@needs_tmpfs
def test_analyze_on_a_full_disk_keeps_the_frames(run_file, disk):
    copy = disk / "run.h5"
    shutil.copyfile(run_file, copy)
    faults._fill(disk, 0)
    code = ("import sys; import gauge_vfe.agents.io.outputs as o; "
            "from gauge_vfe.agents.cli import main; "
            f"sys.argv = ['vfe', 'analyze', {str(copy)!r}]; main()")
    d = vfe(python_code=code)
    assert d.rc in (0, 1), (d.rc, d.err[-2000:])  # the analysis datasets exist up front: it may fit
    if d.rc == 1:
        assert len(d.err_lines) == 1 and NO_SPACE in d.err_lines[0] and "Traceback" not in d.err, d.err
    with gv.load(copy) as traj:  # the frames are intact either way
        assert len(traj.frame_steps) == 41


@needs_tmpfs
def test_plot_on_a_full_disk(run_file, disk):
    faults._fill(disk, 16)
    d = vfe("plot", run_file, "-o", disk / "plots")
    one_no_space_line(d, disk / "plots")
    assert not list((disk / "plots").glob("*.png"))
    no_temporaries(disk)


@needs_tmpfs
def test_sweep_summary_on_a_full_disk_keeps_the_earlier_one(disk):
    rows = [{"member": f"m{k:04d}", "status": "completed", "energy_total": float(k)} for k in range(3)]
    write_summary(disk, ["member", "status", "energy_total"], rows)
    before = {p.name: digest(p) for p in disk.glob("summary.*")}
    faults._fill(disk, 0)
    with pytest.raises(NoSpaceLeft, match=f"{NO_SPACE} .*summary"):
        write_summary(disk, ["member", "status", "energy_total"], rows * 20000)
    assert {p.name: digest(p) for p in disk.glob("summary.*")} == before
    no_temporaries(disk)


@needs_tmpfs
def test_render_whose_encoder_fails_never_says_wrote(run_file, disk):
    pytest.importorskip("pyvista")
    faults._fill(disk, 8)
    d = vfe("render", run_file, "-o", disk / "m.gif", "--size", "320x240", "--frames", "0:41:4", "-q")
    assert d.rc == 1, (d.rc, d.err[-2000:])
    assert "wrote" not in d.out and "Traceback" not in d.err and len(d.err_lines) == 1, d.err
    assert not (disk / "m.gif").exists()
    no_temporaries(disk)
