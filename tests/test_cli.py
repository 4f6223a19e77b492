"""The `vfe` command through click's test runner, and the table of malformed scenarios."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gauge_vfe.agents.cli import main

from factories import tiny_yaml


def write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_inspect_validate(tmp_path):
    s = write(tmp_path, tiny_yaml())
    out = tmp_path / "run.h5"
    r = invoke("run", s, "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "completed" in r.output and out.exists()
    r = invoke("inspect", out)
    assert r.exit_code == 0 and "tiny (completed)" in r.output and "alignment" in r.output
    r = invoke("inspect", out, "--json")
    info = json.loads(r.output)
    assert info["status"] == "completed" and info["last_step"] == 12 and info["frames"] == 4
    assert set(info["energy"]) == {"total", "prior", "observation", "alignment", "curvature", "smoothness"}
    r = invoke("validate", s)
    assert r.exit_code == 0 and "3 agents" in r.output


def test_run_options_override_the_scenario(tmp_path):
    s = write(tmp_path, tiny_yaml())
    out = tmp_path / "o.h5"
    r = invoke("run", s, "-o", out, "--steps", 5, "--seed", 9, "--set", "energy.kappa=0.5", "--set",
               "output.dtype=float64", "-q")
    assert r.exit_code == 0, r.output
    info = json.loads(invoke("inspect", out, "--json").output)
    assert info["last_step"] == 5 and info["seed"] == 9 and info["dtype"] == "float64"
    from gauge_vfe import agents
    with agents.load(out) as traj:
        assert traj.config["energy"]["kappa"] == 0.5


def test_an_existing_run_is_kept_not_overwritten(tmp_path):
    s = write(tmp_path, tiny_yaml())
    out = tmp_path / "run.h5"
    assert invoke("run", s, "-o", out, "-q").exit_code == 0
    first = out.read_bytes()
    r = invoke("run", s, "-o", out, "-q", "--steps", 4)
    assert r.exit_code == 0 and "kept the earlier" in r.output
    assert (tmp_path / "run.1.h5").read_bytes() == first
    assert invoke("run", s, "-o", out, "-q", "--steps", 2).exit_code == 0
    assert (tmp_path / "run.2.h5").exists()


def test_scenarios_lists_the_shipped_ones():
    r = invoke("scenarios")
    assert r.exit_code == 0
    assert "quickstart" in r.output


def test_inspect_missing_file(tmp_path):
    r = invoke("inspect", tmp_path / "nope.h5")
    assert r.exit_code == 2 and "no such file" in r.output


def test_diverging_run_exits_1_with_a_valid_file(tmp_path):
    s = write(tmp_path, tiny_yaml().replace("lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.02",
                                     "lr_mu: 5.0, lr_sigma: 5.0, lr_phi: 50.0")
              .replace("grid: {height: 8, width: 8}", "grid: {height: 8, width: 8}\nenergy: {lambda_curv: 1.0}")
              .replace("steps: 12", "steps: 200"))
    out = tmp_path / "d.h5"
    r = invoke("run", s, "-o", out, "-q")
    assert r.exit_code == 1
    assert "diverged at step" in r.output
    from gauge_vfe import agents
    with agents.load(out) as traj:
        assert traj.status == "diverged" and "diverged at step" in traj.message
        last = traj.state(-1)  # the last good state is kept as a frame
        assert last.step == traj.last_step


def test_resume_without_a_file_is_bad_input(tmp_path):
    s = write(tmp_path, tiny_yaml())
    r = invoke("run", s, "-o", tmp_path / "none.h5", "--resume", "-q")
    assert r.exit_code == 2 and "nothing to resume" in r.output


# --- malformed scenarios: (yaml text, the message it must print) ------------------------------------------------
BAD = [
    ("grid: {height: 8, widht: 8}\n", "s.yaml:1: grid.widht: no such key; did you mean 'width'?"),
    ("name: x\ngrid:\n  height: eight\n", "s.yaml:3: grid.height: Input should be a valid integer"),
    ("energy:\n  kappa: 0\n", "s.yaml:2: energy.kappa: Input should be greater than 0"),
    ("energy:\n  kappa: -1.5\n", "s.yaml:2: energy.kappa: Input should be greater than 0"),
    ("dynamics:\n  lr_mu: -0.1\n", "s.yaml:2: dynamics.lr_mu: Input should be greater than or equal to 0"),
    ("dynamics:\n  steps: 10.5\n", "s.yaml:2: dynamics.steps: Input should be a valid integer"),
    ("dynamics:\n  method: adam\n", "s.yaml:2: dynamics.method: Input should be 'gradient' or 'natural'"),
    ("agents:\n  support: {shape: disk, radius: 40}\n",
     "s.yaml:2: agents.support.radius: 40.0 is larger than the grid (32x32)"),
    ("agents:\n  support:\n    shape: hexagon\n", "s.yaml:2: agents.support: Input tag 'hexagon'"),
    ("fiber:\n  spins: [1, -2]\n", "s.yaml:2: fiber.spins.1: Input should be greater than or equal to 0"),
    ("fiber:\n  spins: []\n", "s.yaml:2: fiber.spins: List should have at least 1 item"),
    ("agents:\n  init:\n    sigma: {value: [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}\n",
     "s.yaml:3: agents.init.sigma.value: matrix is not positive definite"),
    ("agents:\n  init:\n    sigma: {value: [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]}\n",
     "s.yaml:3: agents.init.sigma.value: matrix is not symmetric"),
    ("priors:\n  sigma: {value: -1.0}\n", "s.yaml:2: priors.sigma.value: must be > 0"),
    ("priors:\n  mu: {value: [1, 2]}\n", "s.yaml:2: priors.mu.value: needs 3 components, got 2"),
    ("observations:\n  kind: file\n  path: missing.npy\n", "s.yaml:3: observations.path: file not found: missing.npy"),
    ("observations:\n  kind: file\n", "s.yaml:1: observations: observations of kind 'file' need a path"),
    ("agents:\n  support: {shape: mask, path: nowhere.png}\n",
     "s.yaml:2: agents.support.path: file not found: nowhere.png"),
    ("grid: {height: 2, width: 8, boundary: periodic}\n", "s.yaml:1: grid: a periodic grid needs height and width >= 3"),
    ("grid: {boundary: twisted}\n", "s.yaml:1: grid.boundary: Input should be 'open' or 'periodic'"),
    ("seed: -4\n", "s.yaml:1: seed: Input should be greater than or equal to 0"),
    ("output:\n  dtype: float16\n", "s.yaml:2: output.dtype: Input should be 'float32' or 'float64'"),
    ("output:\n  every: 0\n", "s.yaml:2: output.every: Input should be greater than or equal to 1"),
    ("energy:\n  form: softmax\n", "s.yaml:2: energy.form: Input should be 'weighted' or 'free_energy'"),
    ("agents:\n  count: 3\n  supports:\n    - {shape: whole}\n",
     "s.yaml:1: agents: count is 3 but 1 supports are listed"),
    ("agents:\n  supports:\n    - {shape: whole}\n    - {shape: disk, radius: 0}\n",
     "s.yaml:4: agents.supports.1.radius: Input should be greater than 0"),
    ("grid: {height: 8}\ngrid: {width: 8}\n", "s.yaml:2: grid: duplicate key"),
    ("grid: [8, 8\n", "s.yaml:2: not valid YAML"),
    ("- just\n- a list\n", "s.yaml:1: a scenario must be a mapping"),
    ("energy:\n  lambda_curv: lots\n", "s.yaml:2: energy.lambda_curv: Input should be a valid number"),
    ("agents:\n  init:\n    from: {path: earlier.h5}\n", "s.yaml:3: agents.init.from.path: file not found: earlier.h5"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(": ")[1] if ": " in m else m for _, m in BAD])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_malformed_scenarios(tmp_path, text, message, command):
    s = write(tmp_path, text)
    r = CliRunner().invoke(main, [command, str(s)] + (["-o", str(tmp_path / "x.h5")] if command == "run" else []))
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert message in r.output, r.output
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("override,message", [
    ("energy.kappa=-1", "--set energy.kappa=-1: energy.kappa: Input should be greater than 0"),
    ("grid.height=big", "--set grid.height=big: grid.height: Input should be a valid integer"),
    ("energy.temperature=2", "--set energy.temperature=2: energy.temperature: no such key"),
    ("kappa", "--set kappa: expected key.path=value"),
])
def test_bad_overrides(tmp_path, override, message):
    s = write(tmp_path, tiny_yaml())
    r = CliRunner().invoke(main, ["validate", str(s), "--set", override])
    assert r.exit_code == 2 and message in r.output, r.output


def test_missing_scenario_file(tmp_path):
    r = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "no such scenario file" in r.output
