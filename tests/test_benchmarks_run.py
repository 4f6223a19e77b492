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


def test_relax_closed_form_over_a_sweeps_members(tmp_path):
    """--sweep: one point per member of a timescales sweep, with the member's own seed and its summary's times."""
    import json

    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"members": [{"energy.alpha": 1.0, "seed": 5}]}))
    (folder / "summary.csv").write_text("member,status,separation,separation_lower\nm0000,completed,3.5,\n")
    out = tmp_path / "relax.csv"
    r = run("benchmarks/relax_closed_form.py", "--sweep", str(folder), "--replicas", "4", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    import pandas as pd

    row = pd.read_csv(out).iloc[0]
    assert row["member"] == "m0000" and row["seed"] == 5 and row["ratio"] == 1.0
    assert row["autocorr_separation"] == 3.5 and row["tau_c"] > 0


def test_seed_protocol_on_a_small_sweep(tmp_path):
    """benchmarks/seed_protocol.py measures (a)-(e) on the members of a (shrunken) seed_timescales sweep."""
    from click.testing import CliRunner

    from gauge_vfe.agents.cli import main

    folder = tmp_path / "s"
    r = CliRunner().invoke(main, ["sweep", "seed_timescales", "--param", "seed=1,2", "--param", "energy.alpha=0.05",
                                  "--set", "grid.height=14", "--set", "grid.width=14", "--set", "agents.count=3",
                                  "--set", "agents.support.radius=6", "--set", "dynamics.steps=200",
                                  "--set", "analysis.meta_agents.min_overlap=5", "--set", "output.every=20",
                                  "--workers", "1", "-q", "-o", str(folder)])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    r = run("benchmarks/seed_protocol.py", "measure", str(folder), "-o", str(out), "--replicas", "4",
            "--relax-max", "40", "--spectrum-max", "1", "--spectrum-k", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    import pandas as pd

    members = pd.read_csv(out / "members.csv")
    assert len(members) == 2 and set(members["seed"]) == {1, 2}
    assert set(pd.read_csv(out / "definitions.csv")["definition"]) >= {"d", "e"}
    r = run("benchmarks/seed_protocol.py", "plot", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "separations.png").stat().st_size > 0
