"""The rough edges a new user meets (issue 24, item 5): each input below gives exit 2 and ONE clear line on stderr
that names what is wrong and what to do, no traceback, and leaves the folder as it was. Then the same edges
through the Python API (an energy term's name, a frame out of range, the Simulation's repr, inspect's uphill line),
and the progress bars and warnings a session should not see.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from gauge_vfe.agents.cli import main

from factories import tiny_yaml


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A 12-step, 4-frame run of the tiny scenario (3 agents on 8x8)."""
    d = tmp_path_factory.mktemp("tiny")
    (d / "s.yaml").write_text(tiny_yaml())
    r = CliRunner().invoke(main, ["run", str(d / "s.yaml"), "-o", str(d / "run.h5"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run.h5"


def _old_sweep(d: Path) -> None:
    """A sweep folder as `vfe sweep s.yaml --param energy.kappa=0.5,1 -o sweep` leaves its spec (no member run)."""
    (d / "sweep").mkdir()
    members = [{"energy.kappa": 0.5}, {"energy.kappa": 1.0}]
    (d / "sweep" / "sweep.json").write_text(json.dumps({"scenario": str(d / "s.yaml"), "scenario_yaml": "",
                                                        "params": [["energy.kappa", [0.5, 1.0]]], "zip": False,
                                                        "members": members}))


# (id, arguments ({s}: a scenario file, {r}: a finished run, {d}: the test's folder), set-up, expected start of the
# line after "error: ", fragments it must contain)
EDGES = [
    ("render-frames-past-the-end", ["render", "{r}", "-o", "{d}/f.png", "--frames", "9999"], None,
     "--frames 9999: the run has 4 logged frames", ["0 to 3", "-1 for the last"]),
    ("render-frames-not-a-slice", ["render", "{r}", "-o", "{d}/f.png", "--frames", "a:b"], None,
     "--frames a:b: expected an index or start:stop:step", []),
    ("render-frames-select-none", ["render", "{r}", "-o", "{d}/m.gif", "--frames", "5:9"], None,
     "--frames 5:9: selects none of the run's 4 logged frames", []),
    ("sweep-resume-changed-param", ["sweep", "{s}", "--param", "energy.kappa=0.5,2", "-o", "{d}/sweep", "--resume",
                                    "-q"], _old_sweep,
     "{d}/sweep: --resume with other parameters than the sweep there: --param energy.kappa was 0.5,1.0 there and "
     "is 0.5,2 now", ["sweep.json lists them", "-o NEW_DIR"]),
    ("sweep-workers-zero", ["sweep", "{s}", "--param", "energy.kappa=0.5,1", "-o", "{d}/sw", "--workers", "0"], None,
     "vfe sweep: Invalid value for '--workers': 0 is not in the range x>=1", []),
    ("run-output-folder-missing", ["run", "{s}", "-o", "{d}/typo/dir/x.h5", "-q"], None,
     "-o/--output {d}/typo/dir/x.h5: the folder {d}/typo/dir does not exist", ["not created", "mkdir -p"]),
    ("render-output-folder-missing", ["render", "{r}", "-o", "{d}/typo/f.png"], None,
     "-o/--output {d}/typo/f.png: the folder {d}/typo does not exist", []),
    ("export-output-folder-missing", ["export", "{r}", "-o", "{d}/typo/x.vtkhdf", "-q"], None,
     "-o/--output {d}/typo/x.vtkhdf: the folder {d}/typo does not exist", []),
    ("plot-output-parent-missing", ["plot", "{r}", "-o", "{d}/typo/plots"], None,
     "-o/--output {d}/typo/plots: the folder {d}/typo does not exist", []),
    ("sweep-output-parent-missing", ["sweep", "{s}", "--param", "energy.kappa=0.5,1", "-o", "{d}/typo/sw"], None,
     "-o/--output {d}/typo/sw: the folder {d}/typo does not exist", []),
    ("plot-unknown-format", ["plot", "{r}", "--format", "jpg"], None,
     "vfe plot: Invalid value for '--format': 'jpg' is not one of 'png', 'pdf', 'svg'", []),
    ("plot-dpi-zero", ["plot", "{r}", "--dpi", "0"], None, "vfe plot: Invalid value for '--dpi'", ["10<=x<=2400"]),
    ("scenario-name-typo", ["run", "quickstrt", "-q"], None,
     "quickstrt: no such scenario file or shipped scenario; did you mean 'quickstart'?", ["vfe scenarios"]),
    ("scenario-name-unknown", ["validate", "nothing_like_it"], None,
     "nothing_like_it: no such scenario file or shipped scenario; the names are: ", ["emergence", "quickstart"]),
    ("yaml-key-typo", ["validate", "{d}/typo.yaml"], lambda d: (d / "typo.yaml").write_text(
        "grid: {height: 8, width: 8}\nagents: {count: 2, suport: {shape: disk, radius: 2}}\n"),
     "{d}/typo.yaml:2: agents.suport: no such key; did you mean 'support' or 'supports'?", []),
    ("yaml-nested-key-typo", ["validate", "{d}/typo.yaml"], lambda d: (d / "typo.yaml").write_text(
        "grid: {height: 8, width: 8}\nagents: {count: 2, support: {shape: disk, radus: 2}}\n"),
     "{d}/typo.yaml:2: agents.support.radus: no such key; did you mean 'radius'", []),
    ("set-key-typo", ["validate", "{s}", "--set", "energy.kapa=0.5"], None,
     "--set energy.kapa=0.5: energy.kapa: no such key; did you mean 'kappa'", []),
]


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(d.rglob("*"))}


@pytest.mark.parametrize("args,setup,start,fragments", [pytest.param(*e[1:], id=e[0]) for e in EDGES])
def test_a_rough_edge_gets_one_clear_line(tiny, tmp_path, args, setup, start, fragments):
    s = tmp_path / "s.yaml"
    s.write_text(tiny_yaml())
    if setup is not None:
        setup(tmp_path)
    before = _listing(tmp_path)
    argv = [a.format(s=s, r=tiny, d=tmp_path) for a in args]
    try:
        r = CliRunner().invoke(main, argv, prog_name="vfe", catch_exceptions=False)
    except Exception as exc:  # a traceback: the input was not handled
        pytest.fail(f"{argv}: raised {type(exc).__name__}: {exc}")
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    expected = "error: " + start.format(d=tmp_path)
    assert lines[0].startswith(expected), f"\n{lines[0]}\n  does not start with\n{expected}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert _listing(tmp_path) == before, "a refused command created or changed a file"


def test_an_explicit_output_in_the_default_runs_folder_makes_it(tmp_path, monkeypatch):
    """`vfe run s.yaml -o runs/q.h5` in a fresh folder (as the README and the gallery write it): `runs/` is the
    tool's own default folder, made as for the default output; a folder one level further is still refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(tiny_yaml())
    r = CliRunner().invoke(main, ["run", "s.yaml", "-o", "runs/q.h5", "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "runs" / "q.h5").is_file()
    r = CliRunner().invoke(main, ["run", "s.yaml", "-o", "runs/typo/q.h5", "-q"], catch_exceptions=False)
    assert r.exit_code == 2 and "runs/typo does not exist" in r.output, r.output
    assert not (tmp_path / "runs" / "typo").exists()


def test_plot_without_output_writes_into_a_default_folder_beside_the_run(tiny):
    r = CliRunner().invoke(main, ["plot", str(tiny)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    folder = tiny.with_name("run_plots")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{n}.png" for n in ("energy", "holonomy", "meta_agents", "hierarchy", "attention", "beliefs"))
    assert f"wrote {folder / 'energy.png'}" in r.output
    assert "RUN_plots/" in CliRunner().invoke(main, ["plot", "--help"]).output  # the help says where


def test_every_command_has_examples_and_states_its_defaults():
    """Every subcommand's help ends with examples; every option with a value states its default (click's
    [default: ...] or ours); the run file is RUN_FILE in every command that takes one."""
    for name, command in main.commands.items():
        text = CliRunner().invoke(main, [name, "--help"]).output
        assert re.search(r"Examples:\n +vfe ", text), name
        for p in command.params:
            if p.name == "help" or getattr(p, "is_flag", False) or p.required:
                continue
            if getattr(p, "param_type_name", "") == "option" and not p.multiple:
                assert p.default is not None and p.show_default is not False or "[default:" in (p.help or ""), \
                    f"vfe {name} {p.opts[0]}: no default stated"
        files = [p for p in command.params if getattr(p, "param_type_name", "") == "argument" and "run" in p.name]
        for p in files:
            assert p.name == "run_file" and p.make_metavar(click_context(command)).startswith("RUN_FILE"), name


def click_context(command):
    import click

    return click.Context(command)


# --- the same edges from Python -----------------------------------------------------------------------------------

def test_an_unknown_energy_term_lists_the_terms(tiny):
    from gauge_vfe import agents

    with agents.load(tiny) as traj, pytest.raises(KeyError) as info:
        traj.energy("totl")
    text = str(info.value)
    assert "unknown energy term 'totl'; did you mean 'total'?" in text
    for term in ("prior", "observation", "alignment", "curvature", "smoothness"):
        assert term in text


def test_a_frame_out_of_range_says_which_frames_exist(tiny, tmp_path):
    from gauge_vfe import viz
    from gauge_vfe.viz.render import FrameOutOfRange

    with pytest.raises(FrameOutOfRange, match=r"^--frames 9999: the run has 4 logged frames \(0 to 3"):
        viz.render(tiny, tmp_path / "f.png", frames=9999)
    with pytest.raises(FrameOutOfRange, match="the run has 4 logged frames"):
        viz.render(tiny, tmp_path / "f.png", frames=[0, -5])
    assert not (tmp_path / "f.png").exists()


def test_simulation_repr_says_what_and_where(tmp_path):
    import gauge_vfe as gv

    (tmp_path / "s.yaml").write_text(tiny_yaml())
    sim = gv.Simulation.from_scenario(str(tmp_path / "s.yaml"))
    text = repr(sim)
    assert text.startswith("<Simulation 'tiny': 8x8 grid, 3 agents, K=3, step 0 of 12, ")
    assert f"energy {sim.energy()['total']:.6g} nats>" in text


def test_inspect_states_uphill_steps_even_when_there_are_none(tiny):
    r = CliRunner().invoke(main, ["inspect", str(tiny)], catch_exceptions=False)
    assert "  uphill steps (energy went up): 0: every step went downhill" in r.output.splitlines()


# --- progress bars and warnings -------------------------------------------------------------------------------------

def test_a_log_file_gets_no_progress_bar(tiny, tmp_path, monkeypatch):
    """stderr that is no terminal (CliRunner's, a redirected log) shows no bar: nothing but the result."""
    monkeypatch.delenv("VFE_PROGRESS", raising=False)
    from gauge_vfe.agents.runner.progress import watched

    assert not watched(open(tmp_path / "log.txt", "w"))
    r = CliRunner().invoke(main, ["export", str(tiny), "-o", str(tmp_path / "x.vtkhdf")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stderr == "", r.stderr  # no "0frame [00:00, ?frame/s]", no carriage-return frames
    r = CliRunner().invoke(main, ["render", str(tiny), "-o", str(tmp_path / "f.png"), "--frames", "9999"])
    assert r.stderr.count("\n") == 1 and "frame [" not in r.stderr


def test_no_eta_while_the_kernels_compile(monkeypatch):
    """A first step that takes long (the kernels compiling) is not counted in the rate: the ETA afterwards is that
    of the steps themselves, not hours."""
    monkeypatch.setenv("VFE_PROGRESS", "1")
    from gauge_vfe.agents.runner.observers import ProgressBar

    sim = SimpleNamespace(run_until=1000, state=SimpleNamespace(step=0),
                          energy=lambda: {"total": 1.0, **{t: 0.0 for t in ("prior", "observation", "alignment",
                                                                              "curvature", "smoothness")}})
    bar = ProgressBar()
    bar.start(sim)
    assert bar._bar.format_dict["rate"] is None  # "?" until the first step is done
    time.sleep(1.0)  # the first step, compiling
    bar.update(sim, None)
    for _ in range(20):
        bar.update(sim, None)
    d = bar._bar.format_dict
    assert d["n"] == 21 and d["elapsed"] < 0.5, d
    rate = (d["n"] - d["initial"]) / max(d["elapsed"], 1e-9)
    assert rate > 100, d  # measured over the fast steps only (a rate of ~20 steps/s would include the second)
    bar.finish(sim, None)


NOTEBOOK_IMPORT = """
import sys, types, warnings
shell = type("ZMQInteractiveShell", (), {})()
sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: shell)  # what a Jupyter kernel looks like
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    %s
print(sorted({w.category.__name__ for w in caught}))
"""


@pytest.mark.parametrize("code,shows", [("import tqdm.autonotebook", True),  # the warning exists: the test can fail
                                        ("from gauge_vfe.viz.backend import import_pyvista; import_pyvista()", False)])
def test_no_tqdm_warning_in_a_notebook(code, shows):
    out = subprocess.run([sys.executable, "-c", NOTEBOOK_IMPORT % code], capture_output=True, text=True, check=True)
    assert ("TqdmWarning" in out.stdout) == shows, out.stdout + out.stderr


def test_show_raises_no_pyvista_deprecation_warning(tiny, monkeypatch):
    import warnings

    from pyvista.core.errors import PyVistaDeprecationWarning

    from gauge_vfe import viz

    monkeypatch.delenv("DISPLAY", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PyVistaDeprecationWarning)
        scene = viz.show(tiny, size=(160, 120), interactive=True)
    assert "vtk" in scene.html.lower()
