"""The benchmark scripts still run (smoke tests; no timing is asserted: figures live in benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_engine_benchmark_quick():
    r = run("benchmarks/bench_engine.py", "--quick", "--only", "B1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "B1" in r.stdout and "steps/s" in r.stdout


def test_engine_glk_child_quick():
    """B1 with GL(3) frames (benchmarks/glk.py's third child) runs its timed blocks without diverging."""
    import json

    r = run("benchmarks/bench_engine.py", "--child", "B1glk", "--quick")
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("@@BENCH_RESULT@@ "))
    result = json.loads(line.split(" ", 1)[1])
    assert result["K"] == 3 and result["steps_per_s"] > 0 and result["energy_final"] < result["energy_initial"]


def test_render_benchmark_small():
    r = run("benchmarks/bench_render.py", "--frames", "3", "--size", "320x240")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "frames/s" in r.stdout


def test_noise_benchmark_small():
    r = run("benchmarks/bench_noise.py", "--rounds", "2", "--block", "5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "T = 0.01" in r.stdout and "information clock" in r.stdout


def test_logging_benchmark_small():
    r = run("benchmarks/bench_logging.py", "--rounds", "1", "--steps", "40", "--every", "10")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "every" in r.stdout


def test_attention_benchmarks_small(tmp_path):
    """The three attention-layer scripts (docs/model.md#attention-layer) at a few points each."""
    r = run("benchmarks/attention_layer.py", "--scenarios", "attention_layer", "--steps", "2", "-o",
            str(tmp_path / "share.csv"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "share" in r.stdout and (tmp_path / "share.csv").read_text().count("\n") == 3
    r = run("benchmarks/attention_delta_limit.py", "--points", "4", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "delta_limit.png").stat().st_size > 0
    r = run("benchmarks/attention_collapse.py", "--steps", "20", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "collapse.png").stat().st_size > 0 and "linear theory" in r.stdout


def test_relax_closed_form_small(tmp_path):
    out = tmp_path / "relax.csv"
    r = run("benchmarks/relax_closed_form.py", "--ratios", "1", "--rhos", "0", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "replica-steps" in r.stdout and "trusted" in r.stdout and out.exists()
