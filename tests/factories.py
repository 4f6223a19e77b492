"""Shared factories: small random configurations in float64 built straight from arrays (no config layer).

Imported by the test modules as ``factories`` (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import numpy as np

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.energy import evaluate
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.model.fiber import make_fiber, make_glk_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import Observations, build_layout, compress_supports
from gauge_vfe.agents.model.state import State


def random_spd(rng, n: int, K: int, spread: float = 0.4, floor: float = 0.6) -> np.ndarray:
    a = rng.normal(size=(n, K, K)) * spread
    return np.einsum("nij,nkj->nik", a, a) + floor * np.eye(K)


def random_system(spins=(1,), boundary="open", soft=False, observations=True, height=4, width=4, n_agents=3,
                  seed=0, obs_dim=2, phi_scale=0.8, glk=None):
    """A small layout and state with every field random; agent 0 covers the whole grid so pairs exist. ``glk=K``:
    GL(K) frames instead of ``spins`` (docs/model.md#glk-frames), phi (S, K^2)."""
    rng = np.random.default_rng(seed)
    grid = Grid(height, width, boundary)
    fiber = make_fiber(spins) if glk is None else make_glk_fiber(glk)
    K = fiber.K
    chis = [supports.whole(grid) * (0.7 if soft else 1.0)]
    for _ in range(n_agents - 1):
        center = (rng.uniform(0, height), rng.uniform(0, width))
        chis.append(supports.gaussian(grid, center, 1.5) if soft else supports.disk(grid, center, 2.2))
    _, index, _ = compress_supports(grid, chis)
    S = index.size
    obs = None
    if observations:
        obs = Observations(rng.normal(size=(S, obs_dim)), rng.normal(size=(obs_dim, K)),
                           random_spd(rng, 1, obs_dim)[0])
    layout = build_layout(grid, fiber, chis, rng.normal(size=(S, K)), random_spd(rng, S, K), obs)
    state = State.from_arrays(rng.normal(size=(S, K)), random_spd(rng, S, K),
                              rng.normal(size=(S, fiber.n_phi)) * phi_scale)
    return layout, state


ALL_ON = dict(alpha=0.7, gamma=1.3, lambda_align=1.1, kappa=0.8, lambda_curv=0.5, lambda_smooth=0.3)


def params(**kw) -> EnergyParams:
    return EnergyParams(**{**ALL_ON, **kw})


def total_energy(layout, p, state) -> float:
    return evaluate(layout, p, state, want_grad=False).total


class SignalAt:
    """A run-loop observer that sends this process ``sig`` (a real signal) after a given step."""

    def __init__(self, step, sig=None):
        import signal

        self.step, self.sig = step, signal.SIGINT if sig is None else sig

    def start(self, sim):
        pass

    def update(self, sim, info):
        if sim.state.step == self.step:
            import os

            os.kill(os.getpid(), self.sig)

    def finish(self, sim, outcome):
        pass


def InterruptAt(step) -> SignalAt:  # noqa: N802 - reads as the class it was: Ctrl-C after a given step
    """Press Ctrl-C (SIGINT to this process) after ``step``."""
    return SignalAt(step)


def small_run_yaml(name: str, *, seed: int = 2, spins: str = "[1, 2]", steps: int = 30, every: int = 5,
                   dynamics: str = "") -> str:
    """The small file-test scenario: 10 x 10, 4 overlapping agents with their own frames, every term on, every
    field logged. ``dynamics``: more keys of the dynamics mapping (``", temperature: 0.05"``)."""
    return (f"name: {name}\n"
            f"seed: {seed}\n"
            "grid: {height: 10, width: 10}\n"
            f"fiber: {{spins: {spins}}}\n"
            "agents:\n"
            "  count: 4\n"
            "  support: {shape: disk, radius: 4}\n"
            "  init: {phi: {kind: random, per: agent, scale: 0.5}}\n"
            "observations: {kind: smooth, dim: 2}\n"
            "energy: {lambda_curv: 0.2, lambda_smooth: 0.1}\n"
            f"dynamics: {{steps: {steps}, lr_mu: 0.01, lr_sigma: 0.005, lr_phi: 0.01{dynamics}}}\n"
            f"output: {{every: {every}, fields: [mu, sigma, phi, beta]}}\n")


def tiny_yaml(*, seed: int = 3, width: int = 8, boundary: str | None = None, observations: bool = True,
              steps: int = 12, every: int = 4, all_fields: bool = False) -> str:
    """The tiny scenario of the CLI, file, notebook and sweep tests: an 8 x ``width`` grid, 3 disk agents of radius
    3, random observations (none with ``observations=False``), ``steps`` steps of plain gradient descent logged
    every ``every`` steps (``all_fields``: mu, sigma, phi and beta). As text, so a test can edit a line
    (``.replace("steps: 12", ...)``) or append a section."""
    grid = f"height: 8, width: {width}" + (f", boundary: {boundary}" if boundary else "")
    return (f"name: tiny\n"
            f"seed: {seed}\n"
            f"grid: {{{grid}}}\n"
            "agents:\n"
            "  count: 3\n"
            "  support: {shape: disk, radius: 3}\n"
            + ("observations: {kind: random}\n" if observations else "")
            + f"dynamics: {{steps: {steps}, lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.02}}\n"
            f"output: {{every: {every}" + (", fields: [mu, sigma, phi, beta]" if all_fields else "") + "}\n")


def tiny_sweep_yaml() -> str:
    """The sweep tests' tiny scenario: seed 1, no observations, 20 steps logged every 10 (a member runs in well
    under a second)."""
    return tiny_yaml(seed=1, observations=False, steps=20, every=10)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical arrays, NaN equal to NaN (structured arrays field by field)."""
    if a.dtype.names:
        return a.dtype == b.dtype and all(same(a[n], b[n]) for n in a.dtype.names)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def datasets(path, rng: bool = False) -> dict:
    """Every time series of a trajectory file by HDF5 path, and the committed checkpoint as ``checkpoint/...``
    (with ``rng``: also the noise's generator and key)."""
    import h5py

    from gauge_vfe import agents

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.startswith(("particles", "observables")):
                out[name] = obj[...]
        f.visititems(visit)
        if rng:
            active = int(f["checkpoint/active"][0])
            out["checkpoint/rng"] = f[f"checkpoint/slot{active}/rng"][...]
    with agents.load(path) as traj:
        ck = traj.checkpoint()
    for name in ("mu", "sigma", "phi"):
        out[f"checkpoint/{name}"] = getattr(ck, name)
    out["checkpoint/step"] = np.array([ck.step])
    return out


def assert_resume_after_ctrl_c_is_bit_identical(load_scenario, tmp_path, stop_at: int, steps: int) -> dict:
    """Run ``load_scenario()`` to the end, and again with Ctrl-C after step ``stop_at`` then ``--resume``: every
    series and the checkpoint (with the noise's key) must be bit-identical. Returns the resumed run's datasets."""
    from gauge_vfe import agents
    from gauge_vfe.agents.runner.run import run_scenario

    reference = datasets(run_scenario(load_scenario(), tmp_path / "ref.h5").path, rng=True)
    path = tmp_path / "cut.h5"
    res = run_scenario(load_scenario(), path, observers=[InterruptAt(stop_at)])
    assert res.status == "interrupted" and res.last_step == stop_at
    with agents.load(path) as traj:
        assert traj.checkpoint().step == stop_at
    res = run_scenario(load_scenario(), path, resume=True)
    assert res.status == "completed" and res.last_step == steps
    resumed = datasets(path, rng=True)
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert same(resumed[k], reference[k]), k
    return resumed


def kill_run_after_frames(scenario_path, out_path, frames: int = 6, timeout: float = 120.0) -> None:
    """Start ``vfe run SCENARIO -o OUT`` in a child process (one numba thread), SIGKILL it once its file holds
    ``frames`` committed frames, and return when it is dead."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import h5py

    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gauge_vfe.agents.launch", "run", str(scenario_path), "-o",
                             str(out_path), "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline and seen < frames:
            time.sleep(0.2)
            if proc.poll() is not None:
                raise AssertionError(f"run ended early: {proc.stderr.read().decode()}")
            if os.path.exists(out_path):
                try:
                    with h5py.File(out_path, "r", swmr=True) as f:
                        seen = f["particles/agents/mu/step"].shape[0]  # the step entries commit a frame
                except (OSError, KeyError):
                    seen = 0  # created but not yet initialised
        assert seen >= frames, "the run did not log frames in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def bare_tiny_yaml(*, steps: int = 40, every: int = 1, seed: int = 1) -> str:
    """3 agents on an 8x8 grid, no observations: the cheapest complete run (41 frames at the defaults)."""
    return (f"name: tiny\nseed: {seed}\ngrid: {{height: 8, width: 8}}\n"
            "agents: {count: 3, support: {shape: disk, radius: 3}}\n"
            f"dynamics: {{steps: {steps}, lr_mu: 0.02, lr_sigma: 0.01, lr_phi: 0.02}}\n"
            f"output: {{every: {every}}}\n")


def step_and_log(sim, n: int, every: int):
    """Step ``sim`` ``n`` times as a run logging every ``every`` steps would: the logged steps, the logged states,
    and the information clock ``(steps (E+1,), bits (E+1, N))`` from step 0 on."""
    steps, states, bits = [], [], [(0, np.zeros(sim.layout.n_agents))]
    for k in range(1, n + 1):
        info = sim.step()
        bits.append((sim.state.step, info.info_bits))
        if k % every == 0:
            steps.append(sim.state.step)
            states.append(sim.state)
    return steps, states, (np.array([s for s, _ in bits]), np.array([b for _, b in bits]))


def invoke(*argv):
    """``vfe ARGV`` in-process; a raised exception (a traceback, a MemoryError) fails the test: the file was not
    handled."""
    import pytest
    from click.testing import CliRunner

    from gauge_vfe.agents.cli import main

    try:
        return CliRunner().invoke(main, [str(a) for a in argv], catch_exceptions=False)
    except BaseException as exc:
        pytest.fail(f"{argv}: raised {type(exc).__name__}: {exc}")


def one_error_line(r, code: int = 2) -> str:
    """The one stderr line of a refused command (exit ``code``, no traceback)."""
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]
