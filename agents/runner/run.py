"""A run: scenario in, trajectory file out, nothing lost on the way (docs/model.md#file).

:func:`run_scenario` is what ``vfe run`` calls and what a notebook or a sweep worker can call unchanged: the one
run loop (:meth:`Simulation.run`) with the trajectory writer, the progress bar and the analysis attached as
observers. Every run ends with a status in its file: ``completed``; ``interrupted`` (Ctrl-C or SIGTERM: the
checkpoint holds the last state, ``--resume`` continues it); ``diverged`` (the last good state is logged and
the message names the step and the field); ``failed`` (an unexpected error, re-raised after the file is
closed). A SIGKILL leaves ``running`` with a dead writer, which the reader reports as ``killed``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..analysis.pipeline import AnalysisResult
from ..io import provenance
from ..io.lock import FileInUse, RunLock
from ..io.recovery import resume_basis
from ..io.writer import NoCheckpointYet, TrajectoryWriter
from ..model.dynamics import DivergenceError
from ..model.energy import TERM_TABLE
from ..setup.build import build
from ..setup.inputs import input_hashes
from ..setup.preflight import check_output_path
from ..setup.scenario import Scenario, ScenarioError
from .observers import EndOfRunAnalysis, ProgressBar, RunFile, TrajectoryObserver
from .resume import (change_lines, config_changes, input_changes, input_lines, inputs_refusal, resume_refusal,
                     settings_refusal)
from .simulation import EnergyIncreaseWarning, Simulation
from .startup import CompilationNotice


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
    kept_earlier: Path | None = None  # where an existing file at the output path was moved
    notes: tuple[str, ...] = ()  # what the analysis skipped or could not do
    interrupted_after_steps: bool = False  # Ctrl-C or SIGTERM while the file was finished or analysed
    changes: tuple[str, ...] = ()  # what a resume changed (accepted settings, allowed input files), one line each


def _say(line: str) -> None:
    """A line on stderr that leaves a running progress bar intact."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def output_path(scenario: Scenario, output: str | Path | None) -> Path:
    """``-o``, else the scenario's ``output.path`` (relative to its folder), else ``runs/NAME.h5``."""
    if output is not None:
        return Path(output)
    if scenario.config.output.path is not None:
        p = Path(scenario.config.output.path)
        return p if p.is_absolute() else scenario.base_dir / p
    return Path("runs") / f"{scenario.config.name}.h5"


def keep_earlier(path: Path) -> Path:
    """Rename an existing run file out of the way (the first free NAME.k.h5) and return its new name."""
    k = 1
    while (kept := path.with_name(f"{path.stem}.{k}{path.suffix}")).exists():
        k += 1
    path.rename(kept)
    return kept


# Where an initial state that cannot be evaluated comes from, by the field the divergence check names.
_INITIAL_STATE_KEYS = {"mu": "agents.init.mu", "sigma": "agents.init.sigma", "phi": "agents.init.phi",
                       **{f"energy.{t.name}": t.init_key for t in TERM_TABLE}}


def build_simulation(scenario: Scenario) -> Simulation:
    """Build and evaluate the initial state; every set-up problem becomes a located :class:`ScenarioError`
    (bad files and shapes, and finite input whose energy is not, e.g. absurdly large values)."""
    try:
        return Simulation(build(scenario.config, scenario.base_dir, scenario.inputs), keep_history=False)
    except DivergenceError as exc:
        field = exc.field.removeprefix("dE/d")
        from_run = scenario.config.agents.init.from_run is not None and field in ("mu", "sigma", "phi")
        key = "agents.init.from" if from_run else _INITIAL_STATE_KEYS.get(field, "agents.init")
        raise ScenarioError([scenario.locate(key, f"the initial state cannot be evaluated: {exc}")]) from None
    except (ValueError, OSError) as exc:
        raise ScenarioError([scenario.locate_error(exc)]) from None
    except MemoryError:
        raise ScenarioError([f"{scenario.name}: out of memory while building the run (its estimate fitted: "
                             "try a smaller scenario, or --max-memory below the free memory)"]) from None


def run_scenario(scenario: Scenario, output=None, resume: bool = False, progress: bool = False,
                 observers=(), allow_changed_inputs: bool = False, say=None) -> RunResult:
    """Run ``scenario`` into a trajectory file (``output``, default :func:`output_path`).

    An existing file at the output path is never overwritten: it is renamed ``NAME.k.h5`` first (once the
    scenario has been built, so a scenario that fails to build leaves it alone). ``resume`` continues the run
    in ``output`` from its checkpoint, bit-identically to a run that was never stopped. ``progress`` shows a
    progress bar on stderr. ``observers`` are attached to the run loop after the trajectory writer (see
    :class:`~gauge_vfe.agents.runner.simulation.Observer`).

    Each call appends a record to the file's history (docs/model.md#file-provenance). A resume may change only
    the settings of :data:`.resume.ACCEPTED` (each said in one line, through ``say`` when given, and recorded);
    any other changed setting, or an input file whose content changed since the run's last segment (unless
    ``allow_changed_inputs``, which records it), is a :class:`ScenarioError` raised before the file is touched.

    Raises :class:`ScenarioError` for bad input (nothing touched), :class:`~gauge_vfe.agents.io.lock.RunFileBusy`
    when another live run writes ``output``, and :class:`~gauge_vfe.agents.io.writer.DiskFullError` when the
    disk fills up (the file keeps every committed frame; ``--resume`` continues once there is space).
    """
    cfg = scenario.config
    if cfg.replicas > 1:  # never silently one run of an ensemble (docs/model.md#replica-ensembles)
        raise ScenarioError([scenario.locate("ensemble.replicas", f"{cfg.replicas} replicas run as an ensemble "
                                             "(vfe run, or runner.run_ensemble.run_ensemble), not as one run")])
    path = output_path(scenario, output)
    if (problem := check_output_path(path, scenario.path, resume)) is not None:
        raise ScenarioError([problem])
    notice = CompilationNotice(_say if progress else None)  # a first run compiles for a minute: say so
    try:
        sim = build_simulation(scenario)  # every input problem surfaces here, before any file is touched
        lock = RunLock(path).acquire()  # a second run aimed at this path stops here (RunFileBusy)
    except BaseException:
        notice.stop()
        raise
    config_json = json.dumps(cfg.to_dict(), sort_keys=True)
    out = cfg.output
    kept = None
    writer = None
    hashes = input_hashes(cfg, scenario.base_dir)
    changes: list[str] = []
    try:
        if resume:
            if not path.exists():
                raise ScenarioError([f"{path}: nothing to resume (no such file)"])
            record = _resume_record(path, json.loads(config_json), hashes, allow_changed_inputs, changes)
            try:
                writer, state = TrajectoryWriter.resume(path, sim.layout, config_json, lock,
                                                        refusal=resume_refusal(config_json), record=record)
                for line in changes if say is not None else ():  # said once the file's own checks passed
                    say(line)
                sim.set_state(state)  # the noise continues by itself: it depends on the seed and the step only
            except NoCheckpointYet:
                # killed before its first write: the file holds no frame, so the run starts again in it
                path.unlink()  # under the lock: no live run writes it
            except (ValueError, OSError) as exc:
                raise ScenarioError([str(exc) if isinstance(exc, FileInUse) or "cannot resume" in str(exc)
                                     else f"{path}: cannot resume: {exc}"]) from None
        fresh = writer is None
        if fresh:
            if path.exists():
                kept = keep_earlier(path)  # under the lock: never a live file
                lock.uncover()  # the kept file is no longer this run's: its own lock goes with it
            writer = TrajectoryWriter.create(path, sim.layout, config_json, scenario.text, cfg.seed, lock,
                                             out.dtype, out.fields, out.compression, out.compression_level,
                                             record=create_record(scenario, config_json, hashes))
    except BaseException:
        notice.stop()
        lock.release()
        raise
    run_file = RunFile(writer)
    # the analysis runs when the run file closes (after its final frame), through the same handle
    analysis = EndOfRunAnalysis(run_file, cfg.analysis) if cfg.analysis.enabled else None
    observers = [TrajectoryObserver(run_file, out.every, log_initial=fresh),
                 ProgressBar(cfg.dynamics.steps, enabled=progress, only_when_watched=True), *observers, notice]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnergyIncreaseWarning)  # counted by the simulation, reported below
        outcome = sim.run(observers=observers, throw=False, catch_signals=True)
    wall = time.perf_counter() - t0
    message = outcome.message
    if outcome.energy_increases:
        message = (message + "; " if message else "") + (
            f"energy increased in {outcome.energy_increases} steps: reduce the step sizes or enable "
            "dynamics.line_search")
    return RunResult(path, outcome.status, message, outcome.last_step, wall,
                     outcome.steps_taken / wall if wall > 0 else float("nan"), sim.energy(),
                     outcome.energy_increases, analysis.result if analysis is not None else None, kept,
                     tuple(analysis.notes) if analysis is not None else (),
                     analysis is not None and analysis.interrupted, tuple(changes))


def create_record(scenario: Scenario, config_json: str, inputs: dict, call: str = "run_scenario", **fields) -> dict:
    """The history record of a new run file (docs/model.md#file-provenance): the full configuration it runs with,
    and the sha256 of each input file (``inputs``, :func:`~..setup.inputs.input_hashes`)."""
    return provenance.invocation("create", call=call, scenario=str(scenario.path), config=json.loads(config_json),
                                 first_step=0, inputs=inputs, **fields)


def _resume_record(path: Path, config: dict, hashes: dict, allow_changed_inputs: bool, lines: list) -> dict | None:
    """The history record of a resume of ``path`` with ``config`` and input files of these ``hashes``, after the
    checks of :mod:`.resume` on a read-only look at the file (docs/model.md#resume-settings): a refused setting or
    changed input raises :class:`ScenarioError` with nothing written; ``lines`` receives the changes accepted.
    None when the file cannot be looked at (the writer's own checks then say why) or has no checkpoint (it is
    started again from step 0: nothing of an earlier configuration is kept)."""
    basis = resume_basis(path, locked=True)  # under the run's lock (run_scenario took it)
    if basis is None or not basis.has_checkpoint:
        return None
    changes = config_changes(basis.config, config)
    if (problem := settings_refusal(changes)) is not None:
        raise ScenarioError([f"{path}: {problem}"])
    changed = input_changes(provenance.last_inputs(basis.history), hashes)
    if changed and not allow_changed_inputs:
        raise ScenarioError([f"{path}: {inputs_refusal(changed)}"])
    lines += change_lines(changes)
    lines += input_lines(changed)
    if not basis.history:
        lines.append(f"{path} was begun by a version without a history: its earlier steps are recorded as one "
                     "'before provenance' segment, and its input files are not compared")
    return provenance.invocation("resume", call="run_scenario", changes=changes, inputs=hashes,
                                 changed_inputs=changed or None)
