"""Readers never write; repair refuses what it cannot prove; a failed resume leaves its input as it was (issue 26,
build item 3; docs/model.md#file-integrity).

One small real run (6x6 grid, two agents) is copied into three kinds of file:

* a healthy finished file;
* a killed writer's file: a child process opens the copy for writing (in SWMR mode, as a run does, or not, as
  ``vfe analyze`` does), marks it running, flushes and dies by SIGKILL, leaving HDF5's consistency flags set;
* damaged files: a flipped bit in an energy value, and a flipped superblock address in a killed writer's file.

Every read-only command (``inspect``, ``plot``, ``render``, ``export``, ``verify``, and ``gv.load``) leaves each
byte-identical (sha256 and mtime); ``vfe repair`` refuses a damaged superblock without re-signing it; every failed
``--resume`` (another scenario, a damaged chunk, a foreign file, a held lock, a refused checkpoint) leaves its
input byte-identical. Before this, ``inspect`` cleared a killed writer's flags and re-signed a damaged superblock,
and a resume refused for its scenario had already cleared the flags.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import sys
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.errors import TrajectoryFileError
from gauge_vfe.agents.io.lock import RunLock
from gauge_vfe.agents.io.reader import load
from gauge_vfe.agents.io.recovery import lookup3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402
from factories import invoke, one_error_line  # noqa: E402

SCENARIO = ("grid: {height: 6, width: 6}\nagents:\n  supports: [{radius: 2, center: [2, 2]}, {radius: 2, "
            "center: [3, 3]}]\ndynamics: {steps: 20}\noutput: {every: 2}\nanalysis: {enabled: false}\n")


def fingerprint(path: Path) -> tuple[str, int]:
    """What must not change: every byte (sha256) and the modification time."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def superblock_flags(path: Path) -> int:
    with open(path, "rb") as fh:
        return fh.read(12)[11]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readers")
    (d / "s.yaml").write_text(SCENARIO)
    r = CliRunner().invoke(main, ["run", str(d / "s.yaml"), "-o", str(d / "run.h5"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run.h5"


kill_writer = faults.kill_writer  # a child process opens the file for writing and dies by SIGKILL
flip_root_address = faults.flip_root_address


def make(kind: str, run: Path, folder: Path) -> Path:
    path = folder / "run.h5"
    shutil.copy(run.parent / "s.yaml", folder / "s.yaml")
    shutil.copy(run, path)
    if kind == "killed":
        kill_writer(path)
    elif kind == "killed outside SWMR":
        kill_writer(path, swmr=False)
    elif kind == "energy bit":
        faults.flip_bit(path, "observables/energy/total/value")
    elif kind == "superblock bit, killed":
        kill_writer(path)
        flip_root_address(path)
    elif kind == "superblock re-signed, killed":
        kill_writer(path)
        flip_root_address(path, bit=40, resign=True)
    return path


READERS = {
    "inspect": lambda p, d: ["inspect", p],
    "plot": lambda p, d: ["plot", p, "-o", d / "plots"],
    "render": lambda p, d: ["render", p, "-o", d / "frame.png", "--size", "160x120", "-q"],
    "export": lambda p, d: ["export", p, "-o", d / "out.vtkhdf", "-q"],
    "verify": lambda p, d: ["verify", p],
}
KINDS = ["finished", "killed", "killed outside SWMR", "energy bit", "superblock bit, killed",
         "superblock re-signed, killed"]
QUICK = {"inspect", "verify", "export"}  # render and plot draw: slow


@pytest.mark.parametrize("command", [c if c in QUICK else pytest.param(c, marks=pytest.mark.slow) for c in READERS])
@pytest.mark.parametrize("kind", KINDS)
def test_read_only_commands_leave_the_file_byte_identical(run, tmp_path, kind, command):
    path = make(kind, run, tmp_path)
    before = fingerprint(path)
    r = invoke(*READERS[command](path, tmp_path))
    assert "Traceback" not in r.output
    assert fingerprint(path) == before, f"{command} changed the {kind} file (exit {r.exit_code}: {r.output})"
    if kind in ("finished", "killed", "killed outside SWMR"):  # a killed writer's file is read as it is
        assert r.exit_code == 0, r.output
    elif kind.startswith("superblock"):
        line = one_error_line(r)
        assert str(path) in line and "not a readable HDF5" in line, line
    if command == "inspect" and kind.startswith("killed"):
        assert "killed" in r.output


@pytest.mark.parametrize("kind", ["finished", "killed", "killed outside SWMR", "superblock bit, killed"])
def test_load_never_writes(run, tmp_path, kind):
    path = make(kind, run, tmp_path)
    before = fingerprint(path)
    try:
        with load(path) as traj:
            assert traj.status == ("completed" if kind == "finished" else "killed")
            assert traj.frame_steps[-1] == 20
            traj.field("mu", frame=-1)
    except TrajectoryFileError as exc:
        assert kind.startswith("superblock"), exc
        assert "\n" not in str(exc) and str(exc).startswith(f"{path}: ")
    assert fingerprint(path) == before


# --- vfe repair: the only command that changes metadata, and only of a file it can prove consistent -------------

@pytest.mark.parametrize("kind", ["superblock bit, killed", "superblock re-signed, killed"])
def test_repair_refuses_a_flipped_superblock_address(run, tmp_path, kind):
    path = make(kind, run, tmp_path)
    before = fingerprint(path)
    line = one_error_line(invoke("repair", path))
    assert line.startswith(f"error: {path}: cannot repair: ") and "was not changed" in line, line
    if kind == "superblock bit, killed":
        assert "checksum does not match" in line, line
    else:  # its checksum holds, but the root group's address lies beyond the file
        assert "root group address" in line and "outside the file" in line, line
    assert fingerprint(path) == before
    assert not (tmp_path / "run.h5.lock").exists()


def test_repair_refuses_an_end_of_file_address_far_beyond_the_file(run, tmp_path):
    path = make("killed", run, tmp_path)
    with open(path, "r+b") as fh:  # the end-of-file address 1 GiB on, the superblock re-signed over it
        head = bytearray(fh.read(12 + 4 * 8))
        struct.pack_into("<Q", head, 12 + 2 * 8, struct.unpack_from("<Q", head, 12 + 2 * 8)[0] + (1 << 30))
        fh.seek(0)
        fh.write(bytes(head) + struct.pack("<I", lookup3(bytes(head))))
    before = fingerprint(path)
    line = one_error_line(invoke("repair", path))
    assert "end-of-file address" in line and "beyond the file" in line, line
    assert fingerprint(path) == before


def test_repair_refuses_a_foreign_file_with_flags(run, tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        f["x"] = [1, 2, 3]
    kill_writer(path)
    assert superblock_flags(path) != 0
    before = fingerprint(path)
    line = one_error_line(invoke("repair", path))
    assert "cannot repair" in line and "not a gauge-vfe trajectory" in line, line
    assert fingerprint(path) == before


@pytest.mark.parametrize("kind", ["killed", "killed outside SWMR"])
def test_repair_clears_a_killed_writers_flags(run, tmp_path, kind):
    path = make(kind, run, tmp_path)
    r = invoke("repair", path)
    assert r.exit_code == 0 and "repaired" in r.output, r.output
    assert superblock_flags(path) == 0
    with h5py.File(path, "r") as f:  # every HDF5 tool opens it now
        assert f["particles/agents/mu/step"][-1] == 20
    assert invoke("verify", path).exit_code == 0
    r = invoke("repair", path)
    assert r.exit_code == 0 and "nothing to repair" in r.output, r.output


# --- a failed --resume leaves its input byte-identical -----------------------------------------------------------

def _other_scenario(folder: Path) -> Path:
    other = folder / "other.yaml"
    other.write_text(SCENARIO + "energy: {kappa: 3.0}\n")
    return other


def _resume(path: Path, scenario: Path):
    return invoke("run", scenario, "-o", path, "--resume", "--steps", "30", "-q")


@pytest.mark.parametrize("base", ["finished", "killed", "killed outside SWMR"])
@pytest.mark.parametrize("failure", ["another scenario", "damaged chunk", "refused checkpoint", "lock held"])
def test_failed_resume_leaves_the_input_byte_identical(run, tmp_path, base, failure):
    path = make("finished", run, tmp_path)
    scenario = tmp_path / "s.yaml"
    if failure == "another scenario":
        scenario = _other_scenario(tmp_path)
        fragment = "cannot resume with energy.kappa = 3.0"  # the history's settings check, on every base
    elif failure == "damaged chunk":
        faults.flip_bit(path, "particles/agents/mu/value", chunk=2)
        fragment = "damaged at /particles/agents/mu/value"
    elif failure == "refused checkpoint":
        faults.flip_bit(path, faults._active_slot(path) + "/mu", byte=0)
        fragment = "damaged at /checkpoint/slot"
    if base != "finished":  # the damage first (flip_bit opens the file plainly), then the writer killed
        kill_writer(path, swmr=base == "killed")
    before = fingerprint(path)
    if failure == "lock held":
        with RunLock(path):  # a live writer, by the file's identity
            line = one_error_line(_resume(path, scenario))
        fragment = "another process is writing this file"
    else:
        line = one_error_line(_resume(path, scenario))
    assert str(path) in line and fragment in line, line
    assert fingerprint(path) == before


def test_failed_resume_of_a_foreign_file_leaves_it_byte_identical(run, tmp_path):
    path = tmp_path / "run.h5"
    shutil.copy(run.parent / "s.yaml", tmp_path / "s.yaml")
    faults.damage_foreign(path, run)
    before = fingerprint(path)
    line = one_error_line(_resume(path, tmp_path / "s.yaml"))
    assert str(path) in line and "not a gauge-vfe trajectory" in line, line
    assert fingerprint(path) == before


@pytest.mark.parametrize("base", ["killed", "killed outside SWMR"])
def test_resume_of_a_killed_writers_file_still_works(run, tmp_path, base):
    path = make(base, run, tmp_path)
    r = _resume(path, tmp_path / "s.yaml")
    assert r.exit_code == 0, r.output
    with h5py.File(path, "r") as f:  # closed cleanly: a plain open works
        assert f["particles/agents/mu/step"][-1] == 30
    assert invoke("verify", path).exit_code == 0


def test_analyze_after_a_killed_analyze_still_works(run, tmp_path):
    """``vfe analyze`` holds the lock: it reads past a killed (non-SWMR) writer's flags and then clears them."""
    path = make("killed outside SWMR", run, tmp_path)
    r = invoke("analyze", path)
    assert r.exit_code == 0, r.output
    assert superblock_flags(path) == 0
    assert invoke("verify", path).exit_code == 0


@pytest.mark.parametrize("swmr", [True, False], ids=["killed", "killed outside SWMR"])
def test_damage_in_a_killed_writers_file_is_reported_naming_the_file(run, tmp_path, swmr):
    """Read as it is (SWMR-read mode, or the read-only view with the flags cleared in memory), a damaged chunk is
    still "damaged at", naming the file, and the file keeps every byte."""
    path = make("finished", run, tmp_path)
    faults.flip_bit(path, "observables/energy/total/value")
    kill_writer(path, swmr=swmr)
    before = fingerprint(path)
    line = one_error_line(invoke("inspect", path))
    assert f"{path}: damaged at /observables/energy/total/value" in line, line
    assert fingerprint(path) == before
