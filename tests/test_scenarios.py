"""Every shipped scenario validates and runs end to end (at reduced steps)."""

from __future__ import annotations

import numpy as np
import pytest

from gauge_vfe import agents
from gauge_vfe.agents.setup.shipped import shipped_scenarios
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario

SHIPPED = shipped_scenarios()
EXPECTED = {"quickstart", "vacuum", "vacuum_l7", "symmetry_breaking", "emergence", "curvature", "transformer_limit",
            "attention_layer", "attention_collapse", "seed_timescales", "seed_timescales_l7",
            "image"}


def test_the_promised_scenarios_are_shipped():
    assert EXPECTED <= set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_scenario_runs(name, tmp_path):
    path = SHIPPED[name]
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 20, "first line: a one-line summary comment"
    sc = load_scenario(path, ["dynamics.steps=20", "output.every=10"])
    res = run_scenario(sc, tmp_path / f"{name}.h5")
    assert res.status == "completed", res.message
    assert res.energy_increases == 0, res.message
    with agents.load(res.path) as traj:
        assert list(traj.frame_steps) == [0, 10, 20]
        steps, total = traj.energy("total")
        assert total[-1] <= total[0]


def test_emergence_builds_a_hierarchy_that_inspect_reports(tmp_path):
    """The full emergence run: scale-2 meta-agents (the clusters) and a scale-3 one above them."""
    import json

    from click.testing import CliRunner

    from gauge_vfe.agents.cli import main

    res = run_scenario(load_scenario(SHIPPED["emergence"]), tmp_path / "emergence.h5")
    assert res.status == "completed"
    assert res.analysis.n_scales >= 3
    # the scenario's comment: within clusters the mean divergence ends 74x smaller than across (9x by median)
    from gauge_vfe.agents.analysis.meta_agents import pair_divergences

    with agents.load(res.path) as traj:
        pairs = pair_divergences(traj.layout(), traj.state(-1))
    within = pairs.i // 4 == pairs.j // 4
    mean_ratio = pairs.belief[~within].mean() / pairs.belief[within].mean()
    median_ratio = np.median(pairs.belief[~within]) / np.median(pairs.belief[within])
    assert 60 < mean_ratio < 90 and 7 < median_ratio < 11, (mean_ratio, median_ratio)
    info = json.loads(CliRunner().invoke(main, ["inspect", str(res.path), "--json"]).output)
    ma = info["meta_agents"]
    assert ma["highest_scale"] >= 3
    assert ma["last_frame_counts"]["scale 2"] >= 2 and ma["last_frame_counts"]["scale 3"] >= 1
    assert {row["scale"] for row in ma["timescales"]} >= {2, 3}
    text = CliRunner().invoke(main, ["inspect", str(res.path)]).output
    assert "scale 3" in text and "ratio" in text
