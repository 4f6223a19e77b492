"""Honest time-scale output (issue 24 item 1; docs/model.md#unresolved-times): `vfe inspect` and `vfe analyze` print
a time only when it was resolved, with its error bar, and say why any other is not and what would resolve it; the
gauge-invariant tables are stored in the run file, and files analysed before them still read."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import gauge_vfe as gv
from gauge_vfe.agents.analysis.timescales import (REASON, UNRESOLVED, fluctuation_sources, rounding_flat,
                                                  unresolved_reason)
from gauge_vfe.agents.cli import main

# a number with a time unit after it: what an unresolved group must never print
TIME = re.compile(r"\d[\d.e+-]*\s*(steps|bits|logged frames)\b")
MACHINE_EPSILON = re.compile(r"\d(\.\d+)?e-(1[0-9]|[2-9]\d)")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def inspect(path) -> tuple[list[str], dict]:
    text = invoke("inspect", path)
    assert text.exit_code == 0, text.output
    js = invoke("inspect", path, "--json")
    assert js.exit_code == 0, js.output
    return text.stdout.splitlines(), json.loads(js.stdout)


def time_scale_section(lines: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(lines) if "time scales of the" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  holonomy")), len(lines))
    return lines[start:end]


def assert_honest(lines: list[str], info: dict) -> list[str]:
    """No unresolved time printed as a number: the legacy quick table is gone, nothing at machine-epsilon level is
    printed, every printed time has its error bar and belongs to a group with resolved series, and every group
    without one names its reason and a remedy. Returns the time-scale section."""
    text = "\n".join(lines)
    assert "logged frames vs members" not in text and "series measured" not in text
    assert not MACHINE_EPSILON.search(text), text
    section = time_scale_section(lines)
    ts = info["meta_agents"]["time_scales"]
    for line in section:
        for m in re.finditer(r"tau (\S+)", line):
            assert "resolved: tau" in line and line[m.end():].startswith(" +- "), line
    groups = {(g["scale"], g["kind"], g["series"]): g for g in ts["by_scale"]}
    for line in section:
        m = re.match(r"\s+time scale, scale (\d+) (\w+) \(([^)]*)\): ", line)
        if not m:
            continue
        g = groups[(int(m.group(1)), m.group(2), m.group(3))]
        if g["n_resolved"] == 0:
            assert not TIME.search(line), line
            assert g["tau_steps"] is None and g["tau_bits"] is None
        for name in g["unresolved"]:
            code = REASON[name]
            assert UNRESOLVED[code][1] in line and UNRESOLVED[code][2] in line, line
    return section


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("honest")
    out = {}
    for name, steps in (("emergence", 120), ("quickstart", 120), ("timescales", 3000)):
        with gv.run(name, steps=steps, output=folder / f"{name}.h5", progress=False) as traj:
            assert traj.status == "completed"
        out[name] = folder / f"{name}.h5"
    return out


@pytest.mark.parametrize("name", ["emergence", "quickstart"])
def test_inspect_of_a_zero_temperature_run_says_no_fluctuations_and_prints_no_time(runs, name):
    lines, info = inspect(runs[name])
    section = assert_honest(lines, info)
    ts = info["meta_agents"]["time_scales"]
    assert ts["series"] == "gauge-invariant" and ts["fluctuations"] == []
    assert ts["by_scale"] and all(g["n_resolved"] == 0 for g in ts["by_scale"])
    assert all(g["unresolved"] == {"no_fluctuations": g["n"]} for g in ts["by_scale"])
    assert all(v is None for v in ts["separation_scale2"].values())
    line = next(line for line in section if "none measured" in line)
    assert "no fluctuations" in line and "`vfe run timescales`" in line and "dynamics.temperature" in line
    assert not any(re.search(r"\btau\b", line) for line in section)
    with gv.load(runs[name]) as traj:  # the stored table says the same
        d = traj.analysis().series_detail
        assert d.size and (d["reason"] == REASON["no_fluctuations"]).all() and not d["resolved"].any()
        assert np.isnan(d["tau_steps"]).all() and np.isnan(d["tau_bits"]).all()


def test_inspect_of_the_timescales_run_prints_resolved_times_with_error_bars_only(runs):
    lines, info = inspect(runs["timescales"])
    section = assert_honest(lines, info)
    ts = info["meta_agents"]["time_scales"]
    assert ts["fluctuations"] == ["dynamics.temperature.mu = 0.003"]
    series = {g["series"] for g in ts["by_scale"]}
    assert series == {"gauge-invariant", "common frame, frames fixed"}  # frames fixed: both, each labelled
    resolved = [g for g in ts["by_scale"] if g["n_resolved"]]
    assert resolved, section  # the agents' and relative modes' times (tens of steps) are resolved in 3000 steps
    for g in resolved:
        assert g["tau_steps"] > 0 and g["tau_steps_err"] > 0
        line = next(line for line in section
                    if line.startswith(f"    time scale, scale {g['scale']} {g['kind']} ({g['series']})"))
        assert f"{g['n_resolved']} of {g['n']} resolved: tau " in line and " +- " in line
    with gv.load(runs["timescales"]) as traj:
        d = traj.analysis().series_detail
        ok = d["reason"] == REASON["resolved"]
        assert (d["resolved"] == ok).all() and np.isfinite(d["tau_steps"][ok]).all()
        assert np.isnan(d["tau_steps"][~ok]).all()
        # the bits per scale and lifetimes are stored too, and printed
        a = traj.analysis()
        assert a.bits_by_meta is not None and a.bits_by_meta.size and a.lifetime_stats is not None
    assert any(line.startswith("    bits per step, members against") for line in section)
    assert any(line.startswith("    lifetimes, scale 2:") for line in section)


def test_a_file_analysed_before_the_invariant_tables_reads_and_vfe_analyze_adds_them(runs, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copyfile(runs["emergence"], old)
    with h5py.File(old, "r+") as f:  # as an older version wrote it
        for name in ("series_detail", "bits_by_meta", "lifetime_stats"):
            del f[f"observables/meta_agents/{name}"]
    with gv.load(old) as traj:
        a = traj.analysis()
        assert a.series_detail is None and a.bits_by_meta is None and a.lifetime_stats is None
        assert a.timescale_detail.size
    lines, info = inspect(old)
    section = assert_honest(lines, info)
    ts = info["meta_agents"]["time_scales"]
    assert ts["series"] == "common frame" and "vfe analyze" in ts["note"]
    assert any("vfe analyze" in line for line in section) and any("no fluctuations" in line for line in section)
    r = invoke("analyze", old)
    assert r.exit_code == 0, r.output
    assert "logged frames vs members" not in r.stdout and "no fluctuations" in r.stdout
    with gv.load(old) as traj:
        assert traj.analysis().series_detail.size and traj.analysis().bits_by_meta is not None
    assert inspect(old)[1]["meta_agents"]["time_scales"]["series"] == "gauge-invariant"


def test_reasons_and_fluctuation_sources():
    assert unresolved_reason(10.0, 100, 5) == REASON["resolved"]
    assert unresolved_reason(10.0, 3, 5) == REASON["too_few_frames"]
    assert unresolved_reason(float("inf"), 100, 5) == REASON["too_short"]
    assert unresolved_reason(1.5, 100, 5) == REASON["below_frame_spacing"]
    assert unresolved_reason(float("nan"), 100, 5) == REASON["no_estimate"]
    assert unresolved_reason(10.0, 100, 5, flat=True) == REASON["no_variance"]
    rng = np.random.default_rng(0)
    assert rounding_flat(0.5 + 1e-16 * rng.standard_normal((50, 3)))
    assert not rounding_flat(0.5 + 1e-6 * rng.standard_normal((50, 3)))
    assert fluctuation_sources({"dynamics": {"temperature": {"mu": 0.0, "sigma": 0.0, "phi": 0.0}}}) == []
    assert fluctuation_sources({"dynamics": {"temperature": 0.05}}) == ["dynamics.temperature = 0.05"]
    assert fluctuation_sources({"dynamics": {"temperature": {"mu": 0.0, "phi": 0.01}},
                                "observations": {"resample_every": 4}}) == [
        "dynamics.temperature.phi = 0.01", "observations.resample_every = 4"]


def test_a_sweep_row_reports_the_invariant_tables_and_load_sweep_types_them(runs, tmp_path):
    from gauge_vfe.agents.analysis.pipeline import SEPARATION_FIELDS, TIME_SCALE_FIELDS
    from gauge_vfe.agents.io.sweep_store import write_summary
    from gauge_vfe.agents.runner.sweep import SUMMARY_FIELDS

    assert set(SEPARATION_FIELDS + TIME_SCALE_FIELDS) <= set(SUMMARY_FIELDS)
    with gv.load(runs["timescales"]) as traj:
        a = traj.analysis()
        row = a.time_scale_summary(2)
        inv = a.series_detail[a.series_detail["gauge_invariant"]]
    assert set(row) == set(SEPARATION_FIELDS + TIME_SCALE_FIELDS)
    # the separation columns are the invariant series' (the relative modes resolved, the collective too slow)
    rel = inv[(inv["kind"] == 2) & inv["resolved"]]
    assert rel.size and row["tau_relative_steps"] == pytest.approx(rel["tau_steps"].mean())
    assert np.isnan(row["separation"])
    assert row["bits_ratio_n"] == 1 and row["bits_ratio"] > 0
    assert (row["lifetime_ids"], row["lifetime_ended"]) == (1, 0) and np.isnan(row["lifetime_median_steps"])
    with gv.load(runs["emergence"]) as traj:  # no noise: nothing resolved, so no separation, common frame or not
        cold = traj.analysis().time_scale_summary(2)
    assert np.isnan(cold["tau_relative_steps"]) and np.isnan(cold["common_frame_separation"])
    assert np.isnan(cold["separation_lower"]) and cold["lifetime_ids"] >= 1
    write_summary(tmp_path, SUMMARY_FIELDS, [{"member": "m0", "status": "completed", **row},
                                             {"member": "m1", "status": "completed", **cold}])
    df = gv.load_sweep(tmp_path)
    assert str(df["lifetime_ids"].dtype) == "Int64" and str(df["bits_ratio_n"].dtype) == "Int64"
    assert df["bits_ratio"].dtype == np.float64 and df["lifetime_ids"].tolist() == [1, cold["lifetime_ids"]]


def test_the_notebook_view_names_the_reasons(runs):
    a = gv.analyze(runs["emergence"])
    df = a.series_detail
    assert a.stored and len(df) and set(df["reason"]) == {"no_fluctuations"}
    assert df["gauge_invariant"].all() and df["tau_steps"].isna().all()
