"""A first run says that it compiles (runner/startup.py): real numba compilations, watched as in a run."""

from __future__ import annotations

import numpy as np
from numba import njit

from gauge_vfe.agents.runner import startup


def _fresh_kernel():
    @njit  # a new dispatcher each call: its first call compiles
    def kernel(x):
        s = 0.0
        for v in x:
            s += np.sin(v) * np.cos(v)
        return s

    return kernel


def test_a_compilation_is_announced_with_its_count_and_time(monkeypatch):
    kernel = _fresh_kernel()
    monkeypatch.setattr(startup, "_dispatchers", lambda: [kernel])
    said = []
    notice = startup.CompilationNotice(said.append, after=0.001)
    kernel(np.ones(3))  # compiles (tens of ms at least: the watcher, polling every ms, sees it under way)
    notice.update(None, None)  # the first step is done
    assert said[0] == "compiling kernels (first run only)..."
    assert said[1].startswith("compiled 1 kernel in ") and said[1].endswith("later runs load them from numba's cache")
    notice.finish(None, None)
    assert len(said) == 2  # said once


def test_a_warm_start_says_nothing(monkeypatch):
    kernel = _fresh_kernel()
    kernel(np.ones(3))  # compiled before the run starts
    monkeypatch.setattr(startup, "_dispatchers", lambda: [kernel])
    said = []
    notice = startup.CompilationNotice(said.append, after=0.001)
    kernel(np.ones(4))  # same types: no compilation
    notice.update(None, None)
    assert said == []


def test_the_package_kernels_are_all_watched():
    names = {d.py_func.__name__ for d in startup._dispatchers()}
    assert {"site_terms_kernel", "gauge_field_terms", "update_gaussians"} <= names


def test_a_quiet_notice_does_nothing():
    notice = startup.CompilationNotice(None)
    notice.update(None, None)
    notice.stop()


def test_openmp_threads_wait_passively_unless_the_user_says_otherwise():
    """Spinning OpenMP threads lost 2-3x on a machine with one busy neighbour (agents/kernels/openmp.py)."""
    import os
    import subprocess
    import sys

    code = ("import os; import gauge_vfe.agents.model.energy as e, numpy as np; "
            "print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_kernels_compile_into_one_per_user_cache_unless_the_user_names_another(tmp_path):
    """The CLI, notebooks and the tests share ~/.cache/gauge-vfe/numba (agents/kernels/cache.py): a kernel
    compiled in a process with no NUMBA_CACHE_DIR lands there and nowhere beside the sources; one the user
    points elsewhere lands there. Also when numba was imported before the package."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import gauge_vfe

    code = ("import numba, numpy as np\n"
            "from gauge_vfe.agents.kernels.information import bits_per_agent\n"
            "out = np.empty(1)\n"
            "bits_per_agent(np.ones(2), np.ones(2), np.array([0, 2]), out)\n"
            "print(numba.config.CACHE_DIR)\n")
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    sources = Path(gauge_vfe.__file__).parent / "agents" / "kernels"
    before = set(sources.rglob("information.bits_per_agent*"))
    out = subprocess.run([sys.executable, "-c", code], env={**base, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
                         capture_output=True, text=True, check=True)
    cache = tmp_path / "xdg" / "gauge-vfe" / "numba"
    assert Path(out.stdout.strip()).parent == cache  # cache/<digest of the kernel sources>
    assert list(cache.rglob("information.bits_per_agent*.nbi"))
    assert set(sources.rglob("information.bits_per_agent*")) == before  # nothing new beside the sources
    mine = tmp_path / "mine"
    subprocess.run([sys.executable, "-c", code], env={**base, "NUMBA_CACHE_DIR": str(mine)}, check=True,
                   capture_output=True)
    assert list(mine.rglob("information.bits_per_agent*.nbi"))
