"""Checksums and damaged or foreign files (issue 26, items 1 and 5; docs/model.md#file-integrity).

One small real run (6x6 grid, two agents) is copied and damaged in each test:

* a flipped bit in an energy value, in a logged frame's chunk and in the checkpoint is reported as "damaged at
  <dataset>" with the steps affected by the reader, ``vfe inspect`` and ``vfe verify``, never as a value;
  ``--resume`` is refused with one line naming the checkpoint slot, and the input keeps every byte;
* a checkpoint whose arrays were changed consistently (their fletcher32 valid) fails its sha256;
* a foreign HDF5 file, a look-alike with a malformed JSON attribute and files whose datasets claim huge shapes
  fed to every command that reads a run file and to ``gv.load``: exit 2, one line naming the file, no
  traceback, no MemoryError, the file untouched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.integrity import DamagedData, TrajectoryFileError
from gauge_vfe.agents.io.reader import load
from gauge_vfe.agents.model.energy import TERMS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402
from factories import invoke, one_error_line  # noqa: E402

SCENARIO = ("grid: {height: 6, width: 6}\nagents:\n  supports: [{radius: 2, center: [2, 2]}, {radius: 2, "
            "center: [3, 3]}]\ndynamics: {steps: 20}\noutput: {every: 2}\nanalysis: {enabled: false}\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("integrity")
    (d / "s.yaml").write_text(SCENARIO)
    r = CliRunner().invoke(main, ["run", str(d / "s.yaml"), "-o", str(d / "run.h5"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run.h5"


@pytest.fixture
def copy(run, tmp_path) -> Path:
    shutil.copy(run.parent / "s.yaml", tmp_path / "s.yaml")
    return Path(shutil.copy(run, tmp_path / "run.h5"))


flip_bit = faults.flip_bit  # one bit of a stored chunk, as a failing disk would


def test_every_dataset_carries_a_checksum(run):
    unchecked = []
    with h5py.File(run, "r") as f:
        f.visititems(lambda name, obj: unchecked.append(name) if isinstance(obj, h5py.Dataset) and not
                     obj.fletcher32 and obj.size else None)
    assert unchecked == []
    r = invoke("verify", run)
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"{run}: intact")


def test_energy_bit_flip_is_damage_not_a_value(copy):
    total = "observables/energy/total/value"
    flip_bit(copy, total)
    before = copy.read_bytes()
    with load(copy) as traj:
        with pytest.raises(DamagedData, match=f"damaged at /{total} \\(entries 0\\.\\.20, steps 0\\.\\.20\\)"):
            traj.energy("total")
        assert all(traj.energy(t)[1].size == 21 for t in TERMS)  # the other terms read intact
    line = one_error_line(invoke("inspect", copy))
    assert f"damaged at /{total}" in line and "steps 0..20" in line
    r = invoke("verify", copy)
    assert r.exit_code == 1
    damaged = [ln for ln in r.output.splitlines() if "damaged at" in ln]
    assert len(damaged) == 1 and f"/{total}" in damaged[0], r.output
    assert copy.read_bytes() == before


def test_frame_chunk_bit_flip_names_its_step(copy):
    flip_bit(copy, "particles/agents/mu/value", chunk=4)
    with load(copy) as traj:
        with pytest.raises(DamagedData, match="damaged at /particles/agents/mu/value \\(entries 4\\.\\.4, "
                                              "steps 8\\.\\.8\\)"):
            traj.field("mu", frame=4)
        assert np.isfinite(traj.rows("mu", frame=3)).all()  # the frames around it read intact
        assert np.isfinite(traj.rows("mu", frame=5)).all()
    r = invoke("verify", copy)
    assert r.exit_code == 1
    assert "damaged at /particles/agents/mu/value (entries 4..4, steps 8..8)" in r.output


@pytest.mark.parametrize("dataset", ["checkpoint/slot0/mu", "checkpoint/slot0/step"])
def test_checkpoint_bit_flip_refuses_resume_untouched(copy, dataset):
    flip_bit(copy, dataset, byte=0)
    before = copy.read_bytes()
    line = one_error_line(invoke("run", copy.parent / "s.yaml", "-o", copy, "--resume", "--steps", "30", "-q"))
    assert str(copy) in line and f"damaged at /{dataset}" in line, line
    assert copy.read_bytes() == before
    r = invoke("verify", copy)
    assert r.exit_code == 1 and f"damaged at /{dataset}" in r.output, r.output


def test_checkpoint_sha256_mismatch_refuses_resume(copy):
    with h5py.File(copy, "r+") as f:  # a consistent rewrite: its fletcher32 is valid, its sha256 is not
        mu = f["checkpoint/slot0/mu"]
        mu[0, 0] = mu[0, 0] + 1e-9
    before = copy.read_bytes()
    line = one_error_line(invoke("run", copy.parent / "s.yaml", "-o", copy, "--resume", "--steps", "30", "-q"))
    assert str(copy) in line and "checkpoint slot0" in line and "sha256" in line, line
    assert copy.read_bytes() == before


def test_resume_of_an_intact_file_still_works(copy):
    r = invoke("run", copy.parent / "s.yaml", "-o", copy, "--resume", "--steps", "24", "-q")
    assert r.exit_code == 0, r.output
    assert invoke("verify", copy).exit_code == 0


# --- foreign, look-alike and huge-shape files (benchmarks/faults.py's damage class, the same makers) -------------
KINDS = {k: faults.DAMAGE_CASES[k] for k in ("foreign", "look-alike", "huge series", "huge rows", "superblock bit")}
COMMANDS = {**faults.DAMAGE_COMMANDS, "spectrum": lambda p, d, sc: ["spectrum", p]}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bad_files_get_one_line(run, tmp_path, kind, command):
    make, fragment = KINDS[kind]
    shutil.copy(run.parent / "s.yaml", tmp_path / "s.yaml")
    path = tmp_path / "bad.h5"
    make(path, run)
    before = path.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    line = one_error_line(invoke(*COMMANDS[command](path, tmp_path, tmp_path / "s.yaml")))
    assert str(path) in line and fragment in line, line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no output, no lock left behind


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_load_raises_one_exception_type(run, tmp_path, kind):
    make, fragment = KINDS[kind]
    path = tmp_path / "bad.h5"
    make(path, run)
    with pytest.raises(TrajectoryFileError, match=fragment) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)


def test_files_without_checksums_still_read_and_resume(run, tmp_path, monkeypatch):
    """A file as versions before the checksums wrote it: no fletcher32, no checkpoint sha256."""
    from gauge_vfe.agents.io import schema

    shutil.copy(run.parent / "s.yaml", tmp_path / "s.yaml")
    old = tmp_path / "old.h5"
    monkeypatch.setattr(schema, "CHECKSUM", {})
    r = invoke("run", tmp_path / "s.yaml", "-o", old, "-q")
    assert r.exit_code == 0, r.output
    with h5py.File(old, "r+") as f:
        for slot in schema.CHECKPOINT_SLOTS:
            del f[f"checkpoint/{slot}/{schema.CHECKPOINT_HASH}"]
        assert not f["observables/energy/total/value"].fletcher32
    with load(old) as traj:
        assert traj.energy("total")[1].size == 21 and traj.checkpoint().step == 20
    r = invoke("verify", old)
    assert r.exit_code == 0 and "without a checksum" in r.output, r.output
    monkeypatch.undo()
    r = invoke("run", tmp_path / "s.yaml", "-o", old, "--resume", "--steps", "24", "-q")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("command", sorted(faults.DAMAGE_COMMANDS))
@pytest.mark.parametrize("case", ["energy bit", "frame bit", "checkpoint bit"])
def test_bit_flips_fed_to_every_command(run, tmp_path, case, command):
    """A command that reads the damaged part reports it (exit 2, or 1 from verify) and never a value; analyze and
    --resume check the whole file before writing; none changes the file."""
    make, fragment = faults.DAMAGE_CASES[case]
    shutil.copy(run.parent / "s.yaml", tmp_path / "s.yaml")
    path = tmp_path / "run.h5"
    make(path, run)
    before = path.read_bytes()
    r = invoke(*faults.DAMAGE_COMMANDS[command](path, tmp_path, tmp_path / "s.yaml"))
    if command == "verify":
        assert r.exit_code == 1 and fragment in r.output, r.output
    elif command in faults.READS_DAMAGE[case]:
        line = one_error_line(r)
        assert str(path) in line and fragment in line, line
    else:
        assert r.exit_code in (0, 2) and "Traceback" not in r.output
    assert path.read_bytes() == before
