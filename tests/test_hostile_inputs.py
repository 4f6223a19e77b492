"""Inputs that cannot hang or swallow the machine (issue 27, build item 4): one clear line each, exit 2, fast.

The table drives `vfe validate` (the scenario checks every command shares) over odd inputs; the sweep test starts a
real 100,000-member sweep and stops it once its first member's file appears.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.setup.config import MAX_NAME_LENGTH, ConfigError, make_config
from gauge_vfe.agents.setup.scenario import MAX_LIST_ITEMS, MAX_SCENARIO_BYTES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402
from factories import bare_tiny_yaml  # noqa: E402

S = "grid: {height: 8, width: 8}\nagents: {count: 2, support: {shape: disk, radius: 2}}\n"  # a valid base


def _big(path: Path) -> None:
    """10 MB of valid-looking YAML (a comment line repeated): refused by its size before it is read."""
    path.write_text(S + ("# " + "x" * 98 + "\n") * 100_000)


def _long_list(path: Path) -> None:
    path.write_text(S + "sweep:\n  params:\n    seed: [" + ", ".join(["0"] * (MAX_LIST_ITEMS + 1)) + "]\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _fifo_observations(path: Path) -> None:
    os.mkfifo(path.parent / "obs.npy")
    path.write_text(S + "observations:\n  kind: file\n  path: obs.npy\n")


# (id, scenario text or a function writing the file, extra arguments, fragments of the one error line)
CASES = [
    ("ten-megabytes", _big, [], ["s.yaml:", "too large for a scenario file", f"{MAX_SCENARIO_BYTES // 2**20} MiB"]),
    ("list-too-long", _long_list, [], ["sweep.params.seed", f"at most {MAX_LIST_ITEMS}"]),
    ("bool-count-yaml", S.replace("count: 2", "count: true"), [], ["s.yaml:2: agents.count:", "boolean"]),
    ("bool-count-set", S, ["--set", "agents.count=true"], ["--set agents.count=true: agents.count:", "boolean"]),
    ("bool-height-set", S, ["--set", "grid.height=false"], ["grid.height:", "false is a boolean"]),
    ("bool-in-list", S + "fiber: {spins: [1, true]}\n", [], ["fiber.spins.1:", "boolean"]),
    ("bool-float", S + "energy: {kappa: yes}\n", [], ["energy.kappa:", "boolean"]),
    ("name-newline", S + 'name: "a\\nb"\n', [], ["name:", "cannot contain '\\n'"]),
    ("name-space", S + "name: my run\n", [], ["name:", "cannot contain ' '"]),
    ("name-dash", S + "name: -rf\n", [], ["name:", "start with '.' or '-'"]),
    ("name-too-long", S + f"name: {'a' * (MAX_NAME_LENGTH + 1)}\n", [], ["name:", f"at most {MAX_NAME_LENGTH}"]),
    ("name-set-newline", S, ["--set", "name=a\nb"], ["name:", "cannot contain"]),
    ("scenario-fifo", _fifo, [], ["s.yaml: not a regular file"]),
    ("observations-fifo", _fifo_observations, [], ["observations.path", "not a regular file"]),
]


@pytest.mark.parametrize("content, args, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_odd_input_is_one_line_exit_2_and_fast(tmp_path, content, args, fragments):
    path = tmp_path / "s.yaml"
    if callable(content):
        content(path)
    else:
        path.write_text(content)
    t0 = time.perf_counter()
    r = CliRunner().invoke(main, ["validate", str(path), *args], catch_exceptions=False)
    seconds = time.perf_counter() - t0
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert seconds < 5, f"{seconds:.1f} s"  # the bounds are checked before parsing: nothing hangs


def test_ten_megabytes_refused_within_a_second(tmp_path):
    path = tmp_path / "s.yaml"
    _big(path)
    assert path.stat().st_size >= 10_000_000
    t0 = time.perf_counter()
    r = CliRunner().invoke(main, ["validate", str(path)], catch_exceptions=False)
    assert r.exit_code == 2 and "too large" in r.stderr
    assert time.perf_counter() - t0 < 1.0


def test_booleans_stay_booleans_where_the_schema_wants_one():
    config = make_config({"analysis": {"enabled": False, "holonomy": {"automatic": False}}})
    assert config.analysis.enabled is False and config.analysis.holonomy.automatic is False
    with pytest.raises(ConfigError, match="agents.count: true is a boolean"):
        make_config({"agents": {"count": True}})
    assert make_config({"name": "lr=0.1,seed@2_b-c.d+e"}).name == "lr=0.1,seed@2_b-c.d+e"


def test_sweep_grid_value_checked_once(tmp_path):
    from gauge_vfe.agents.runner.sweep import SweepError, validate_grid

    path = tmp_path / "s.yaml"
    path.write_text(bare_tiny_yaml())
    with pytest.raises(SweepError, match="member m0001 .*agents.count: true is a boolean"):
        validate_grid(path, [("agents.count", [2, True])])
    with pytest.raises(SweepError, match="no such key"):
        validate_grid(path, [("energy.kapa", [1.0])])
    with pytest.raises(SweepError, match=r"member m4999 \(energy.kappa=-1\): energy.kappa: .*greater than 0"):
        validate_grid(path, [("energy.kappa", list(range(1, 5000)) + [-1])])  # the extremes stand for the rest
    validate_grid(path, [("seed", list(range(100_000)))])  # quick: not one load per member


@pytest.fixture
def finished_run(tmp_path):
    (tmp_path / "tiny.yaml").write_text(bare_tiny_yaml(steps=10))
    out = tmp_path / "run.h5"
    with gv.run(tmp_path / "tiny.yaml", output=out, progress=False) as t:
        assert t.status == "completed"
    return tmp_path / "tiny.yaml", out


def test_corrupt_checkpoint_index_is_one_line(finished_run):
    scenario, out = finished_run
    with h5py.File(out, "a") as f:
        f["checkpoint"]["active"][0] = 7
    before = out.read_bytes()
    r = CliRunner().invoke(main, ["run", str(scenario), "-o", str(out), "--resume", "--steps", "20", "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "checkpoint index is corrupt (7" in lines[0] and str(out) in lines[0], r.stderr
    assert out.read_bytes() == before  # refused before anything was written


@pytest.mark.slow
def test_a_100000_member_sweep_starts_its_first_member_within_10_s(tmp_path):
    """Measured from the command's start: the grid is validated once, members lazily (each by its worker), and
    they are handed to the cluster a few at a time. Stopped (its process group) once m0000.h5 appears."""
    (tmp_path / "tiny.yaml").write_text(bare_tiny_yaml(steps=2000))
    out = tmp_path / "sweep"
    t0 = time.monotonic()
    p = faults.spawn(faults.vfe_cmd("sweep", tmp_path / "tiny.yaml", "--param", "seed=0:100000", "--workers", "1",
                                    "-o", out, "-q"))
    try:
        while not (out / "m0000.h5").exists():
            assert p.poll() is None, p.communicate()
            assert time.monotonic() - t0 < 10, "no member file within 10 s"
            time.sleep(0.05)
        started = time.monotonic() - t0
    finally:
        faults._killpg(p, signal.SIGKILL)
        p.communicate(timeout=30)
    print(f"first member's file after {started:.1f} s")
    assert started < 10
