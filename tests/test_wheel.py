"""The package as a user installs it: a wheel, a fresh venv, an empty working directory.

Builds the wheel from this checkout, installs it (non-editable, with its dependencies from the registry or the
pip cache) into a new virtual environment, and runs the shipped scenarios from a temporary folder with no
checkout in sight. About two minutes: most of it is pip installing the dependencies into the new venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None, timeout=900):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv with the wheel installed, an empty working folder, its environment)."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT],
         cwd=base)
    (wheel,) = wheels.glob("gauge_vfe-*.whl")
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], cwd=base)
    work = base / "empty"
    work.mkdir()
    # the child sees nothing of this checkout: no PYTHONPATH, its own numba cache inside the new venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR", "VIRTUAL_ENV")}
    env["NUMBA_CACHE_DIR"] = str(base / "numba-cache")
    return bin_dir, work, env


def test_wheel_adds_one_top_level_import_name(installed):
    bin_dir, work, env = installed
    script = ("import importlib.metadata as m, json; d = m.distribution('gauge-vfe'); "
              "print(json.dumps(sorted({str(f).split('/')[0] for f in d.files})))")
    tops = json.loads(_run([bin_dir / "python", "-c", script], cwd=work, env=env).stdout)
    names = [t for t in tops if not t.endswith((".dist-info", ".data")) and t not in ("..",)]
    assert names == ["gauge_vfe"], tops
    top_level = _run([bin_dir / "python", "-c", "import importlib.metadata as m; "
                      "print(m.distribution('gauge-vfe').read_text('top_level.txt'))"], cwd=work, env=env).stdout
    assert top_level.split() == ["gauge_vfe"]
    out = _run([bin_dir / "python", "-c", "import gauge_vfe as gv; print(gv.Simulation.__module__, gv.viz.__name__ "
                "if hasattr(gv, 'viz') else '', gv.__version__)"], cwd=work, env=env).stdout
    assert out.startswith("gauge_vfe.agents.runner.simulation")


def test_wheel_lists_and_runs_shipped_scenarios_from_an_empty_folder(installed):
    bin_dir, work, env = installed
    listed = _run([bin_dir / "vfe", "scenarios"], cwd=work, env=env).stdout
    shipped = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    assert [line.split()[0] for line in listed.splitlines()] == shipped
    # the first run in a fresh environment compiles the kernels, and says so (with its progress bar on)
    run = _run([bin_dir / "vfe", "run", "quickstart", "--steps", "20"], cwd=work, env=env)
    assert run.stdout.splitlines()[-1].startswith("completed: runs/quickstart.h5")
    assert "compiling kernels (first run only)..." in run.stderr, run.stderr[-2000:]
    assert "later runs load them from numba's cache" in run.stderr, run.stderr[-2000:]
    assert (work / "runs" / "quickstart.h5").is_file()
    info = json.loads(_run([bin_dir / "vfe", "inspect", "runs/quickstart.h5", "--json"], cwd=work, env=env).stdout)
    assert info["status"] == "completed" and info["last_step"] == 20
    # the image scenario reads its picture from the package's data folder
    run = _run([bin_dir / "vfe", "run", "image", "--steps", "3", "-q", "-o", "image.h5"], cwd=work, env=env)
    assert run.stdout.splitlines()[-1].startswith("completed: image.h5")
    assert sorted(p.name for p in work.iterdir()) == ["image.h5", "runs"]


def test_a_wheel_install_and_this_checkout_share_one_compile(installed):
    """README command 1 (a wheel install) then command 2 (this editable checkout) then `vfe run quickstart`: the
    kernels compile once (issue 24 item 5). The wheel's run compiles them (or finds them); the checkout's run, a
    package at another path with the same sources and the same cache, loads them and says nothing about compiling."""
    bin_dir, work, env = installed
    _run([bin_dir / "vfe", "run", "quickstart", "--steps", "5", "-q", "-o", "wheel.h5"], cwd=work, env=env)
    checkout_vfe = Path(sys.executable).parent / "vfe"
    if not checkout_vfe.exists():
        pytest.skip("this checkout's vfe entry point is not beside its python")
    run = _run([checkout_vfe, "run", "quickstart", "--steps", "5", "-o", "checkout.h5"], cwd=work, env=env)
    assert run.stdout.splitlines()[-1].startswith("completed: checkout.h5")
    assert "compiling kernels" not in run.stderr and "compiled" not in run.stderr, run.stderr[-2000:]
