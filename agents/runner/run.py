"""A run: scenario in, trajectory file out, nothing lost on the way (SPEC sections 8-10).

``run_scenario`` is what ``vfe run`` calls and what a notebook or a sweep worker can call unchanged. It
ends every run with a status in the file: ``completed``; ``interrupted`` (Ctrl-C or SIGTERM: the checkpoint
holds the last state, ``--resume`` continues it); ``diverged`` (the last good state is logged as a frame and
the message names the step and the field); ``failed`` (an unexpected error, re-raised after the file is
closed). A SIGKILL leaves ``running`` with a dead writer, which the reader reports as ``killed``.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..analysis.pipeline import AnalysisResult, analyze_run
from ..setup.build import build
from ..analysis.meta_agents import ConsensusParams
from ..model.dynamics import DivergenceError
from ..setup.scenario import Scenario, ScenarioError
from .simulation import EnergyIncreaseWarning, Simulation
from ..io.writer import TrajectoryWriter


@dataclass(frozen=True)
class RunResult:
    path: Path
    status: str
    message: str
    last_step: int
    wall_time: float
    steps_per_second: float
    energy: dict
    energy_increases: int
    analysis: AnalysisResult | None = None


def output_path(scenario: Scenario, output: str | Path | None) -> Path:
    if output is not None:
        return Path(output)
    if scenario.config.output.path is not None:
        p = Path(scenario.config.output.path)
        return p if p.is_absolute() else scenario.base_dir / p
    return Path("runs") / f"{scenario.config.name}.h5"


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM ends a run like Ctrl-C (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_simulation(scenario: Scenario) -> Simulation:
    """Build, turning set-up problems (bad files, shapes) into :class:`ScenarioError`."""
    try:
        return Simulation(build(scenario.config, scenario.base_dir), keep_history=False)
    except (ValueError, FileNotFoundError, OSError) as exc:
        where = str(scenario.path) if scenario.path is not None else "<scenario>"
        raise ScenarioError([f"{where}: {exc}"]) from None


def run_scenario(scenario: Scenario, output=None, resume: bool = False, progress=None) -> RunResult:
    """Run ``scenario`` into a trajectory file.

    ``progress`` is None (silent) or a callable ``progress(sim, total_steps)`` returning an object with
    ``update(sim)`` and ``close()`` (see :mod:`agents.cli` for the progress bar).
    """
    cfg = scenario.config
    path = output_path(scenario, output)
    sim = build_simulation(scenario)
    config_json = _config_json(cfg)
    out = cfg.output
    if resume:
        if not path.exists():
            raise ScenarioError([f"{path}: nothing to resume (no such file)"])
        try:
            writer, state = TrajectoryWriter.resume(path, sim.layout, config_json)
        except (ValueError, RuntimeError) as exc:
            raise ScenarioError([str(exc)]) from None
        sim.set_state(state)
    else:
        writer = TrajectoryWriter.create(path, sim.layout, config_json, scenario.text, cfg.seed, out.dtype,
                                         out.fields, out.compression, out.compression_level)
        _log(writer, sim, 0, frame=True)
    total = cfg.dynamics.steps
    tol = cfg.dynamics.tol
    bar = progress(sim, total) if progress is not None else None
    start_step = sim.state.step
    t0 = time.perf_counter()
    status, message = "completed", ""
    try:
        with _sigterm_as_interrupt(), warnings.catch_warnings():
            warnings.simplefilter("ignore", EnergyIncreaseWarning)  # counted by the simulation, reported below
            while sim.state.step < total:
                info = sim.step()
                step = sim.state.step
                _log(writer, sim, info.spd_retractions, frame=(step % out.every == 0))
                if bar is not None:
                    bar.update(sim)
                if tol > 0 and np.sqrt(sum(v * v for v in sim.evaluation.grad_norms().values())) <= tol:
                    message = f"converged: gradient norm <= tol = {tol:g} at step {step}"
                    break
            if sim.energy_increases:
                message = (message + "; " if message else "") + (
                    f"energy increased in {sim.energy_increases} steps: reduce the step sizes or enable "
                    "dynamics.line_search")
            writer.log_frame(sim.state, _beta(writer, sim))
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted at step {sim.state.step}; continue with --resume"
        writer.checkpoint(sim.state)
    except DivergenceError as exc:
        status, message = "diverged", str(exc)
        writer.log_frame(sim.state, _beta(writer, sim))  # the last good state
    except BaseException as exc:
        status, message = "failed", f"{type(exc).__name__}: {exc}"
        writer.close(status, message)
        raise
    finally:
        if bar is not None:
            bar.close()
        writer.close(status, message)
    wall = time.perf_counter() - t0
    done = sim.state.step - start_step
    analysis = None
    if cfg.analysis.enabled:
        analysis = analyze_run(path, consensus_params(cfg), [lp.model_dump() for lp in cfg.analysis.holonomy.loops],
                               cfg.analysis.holonomy.automatic)
    return RunResult(path, status, message, sim.state.step, wall, done / wall if wall > 0 else float("nan"),
                     sim.energy(), sim.energy_increases, analysis)


def consensus_params(cfg) -> ConsensusParams:
    m = cfg.analysis.meta_agents
    return ConsensusParams(m.eps_belief, m.min_overlap, m.eps_prior, m.max_scale)


def _config_json(cfg) -> str:
    import json

    return json.dumps(cfg.to_dict(), sort_keys=True)


def _beta(writer: TrajectoryWriter, sim: Simulation):
    return sim.beta() if "beta" in writer.fields else None


def _log(writer: TrajectoryWriter, sim: Simulation, spd_retractions: int, frame: bool) -> None:
    ev = sim.evaluation
    writer.log_energy(sim.state.step, ev.terms, ev.grad_norms(), spd_retractions)
    if frame:
        writer.log_frame(sim.state, _beta(writer, sim))
