"""`vfe analyze` and the analysis at the end of a run: what lands in the file and what inspect reports."""

from __future__ import annotations

import json
import textwrap

import h5py

from gauge_vfe.agents.io.schema import read_text
from click.testing import CliRunner

from gauge_vfe.agents.cli import main
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario

CLUSTERS = textwrap.dedent("""\
    name: clusters
    seed: 1
    grid: {height: 12, width: 24}
    agents:
      supports:
        - {center: [6, 5], radius: 4}
        - {center: [5, 7], radius: 4}
        - {center: [7, 6], radius: 4}
        - {center: [6, 17], radius: 4}
        - {center: [5, 19], radius: 4}
      init:
        mu: {kind: random, per: agent, scale: 0.3}
        phi: {kind: random, per: agent, scale: 0.2}
    observations: {kind: smooth, shared: true, scale: 1.0, length: 3.0, noise: 2.0}
    energy: {alpha: 0.2, gamma: 0.5, lambda_align: 2.0}
    dynamics: {steps: 60, lr_mu: 0.05, lr_sigma: 0.02, lr_phi: 0.05}
    output: {every: 5}
    analysis:
      meta_agents: {eps_belief: 0.1, min_overlap: 3}
      holonomy:
        loops:
          - {name: around_0, waypoints: [[0, 4, 4], [0, 4, 7], [0, 7, 7], [0, 7, 4]]}
    """)


def run(tmp_path, text=CLUSTERS):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return run_scenario(load_scenario(p), tmp_path / "c.h5")


def test_run_writes_meta_agents_and_holonomy(tmp_path):
    res = run(tmp_path)
    assert res.status == "completed"
    a = res.analysis
    assert a.counts.shape == (13, 5)
    with h5py.File(res.path, "r") as f:
        g = f["observables/meta_agents"]
        assert g["labels"].shape == (13, 5) and list(g["step"][...]) == list(range(0, 61, 5))
        last = g["labels"][-1]
        # the two clusters end as two meta-agents (agents 0-2 and 3-4), with stable ids
        assert len(set(last[:3])) == 1 and len(set(last[3:])) == 1 and last[0] != last[3] and last[0] >= 0
        rec = g["records"][...]
        assert set(rec["scale"]) == {2}
        offs = g["members_offset"][...]
        assert offs[-1] == g["members"].shape[0] and offs.size == rec.size + 1
        assert json.loads(g["events"].attrs["kinds"])["birth"] == 0
        assert g["timescales"].shape[0] >= 2
        h = f["observables/holonomy"]
        assert h["plaquette_angle"].shape == (13, f["agents/sites/index"].shape[0])
        names = json.loads(read_text(h["loops/names"]))  # JSON text in a dataset: rewritable under SWMR
        assert names[0] == "around_0" and "overlap_0_1" in names
        assert h["loops/angle"].shape == (13, len(names))


def test_cli_analyze_with_other_thresholds_and_inspect(tmp_path):
    res = run(tmp_path)
    r = CliRunner().invoke(main, ["analyze", str(res.path), "--eps-belief", "1e-9"])
    assert r.exit_code == 0, r.output
    assert "meta-agents: none detected" in r.output
    r = CliRunner().invoke(main, ["analyze", str(res.path)])
    assert "scale 2: 2" in r.output and "ratio" in r.output
    info = json.loads(CliRunner().invoke(main, ["inspect", str(res.path), "--json"]).output)
    assert info["meta_agents"]["last_frame_counts"] == {"scale 2": 2}
    assert all("ratio" in row for row in info["meta_agents"]["timescales"])
    out = CliRunner().invoke(main, ["inspect", str(res.path)]).output
    assert "meta-agents per scale" in out and "ratio" in out
    r = CliRunner().invoke(main, ["analyze", str(res.path), "--max-scale", "1"])
    assert r.exit_code == 2


def test_bad_loop_is_a_scenario_error(tmp_path):
    text = CLUSTERS.replace("[0, 7, 4]]", "[9, 7, 4]]")
    p = tmp_path / "c.yaml"
    p.write_text(text)
    r = CliRunner().invoke(main, ["validate", str(p)])
    assert r.exit_code == 2 and "analysis.holonomy.loops.0.waypoints.3" in r.output
