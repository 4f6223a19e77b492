"""What a run does besides stepping, as observers of :meth:`Simulation.run` (one concern each).

* :class:`TrajectoryObserver` streams energies (every step) and frames (at the steps its trigger names) into a
  trajectory writer, which buffers them and writes them about once a second, and closes the run file with the
  run's status (every buffered frame written first);
* :class:`ProgressBar` shows the step, the energy by term, steps/s and the time left.

The run file's lifetime in a run is one :class:`RunFile`: the trajectory observer logs through it and closes it;
work that needs the complete file before it closes, the end-of-run analysis (:class:`EndOfRunAnalysis`),
registers with :meth:`RunFile.before_close` and runs inside that close, through the same handle. So no observer
depends on another's place in the list.
"""

from __future__ import annotations

import time

import numpy as np

from ..analysis.pipeline import AnalysisResult, analyze_frames
from ..io.writer import DiskFullError, TrajectoryWriter
from ..model.dynamics import DivergenceError, StepInfo
from ..model.energy import TERM, TERMS
from ..setup.config import AnalysisConfig
from .signals import signals_deferred
from .simulation import RunOutcome, Simulation
from .updaters import Periodic, Trigger


class RunFile:
    """A run file while a run writes it: the writer, the status and message it is closed with, a signal that
    arrived while it was being finished, and the work that must happen before it closes.

    :meth:`close` runs the registered tasks (each ``task(run_file, sim, outcome)``) once the final frame is
    written, then closes the writer with the status, whatever a task did. A task that reports a late signal itself
    (the analysis: "interrupted, redo it with vfe analyze") takes that signal over: the run then ends completed.
    """

    def __init__(self, writer: TrajectoryWriter):
        self.writer = writer
        self.status, self.message = "running", ""
        self.interrupt_pending = False  # a signal arrived while the file was being finished
        self._tasks: list = []

    def before_close(self, task) -> None:
        self._tasks.append(task)

    @property
    def has_tasks(self) -> bool:
        return bool(self._tasks)

    def close(self, sim: Simulation | None = None, outcome: RunOutcome | None = None) -> None:
        try:
            if not self.writer.closed:  # a full disk closed it already: nothing to add to it
                for task in self._tasks:
                    task(self, sim, outcome)
        finally:
            with signals_deferred() as held:
                self.writer.close(self.status, self.message)
            if held.signal is not None:
                self.interrupt_pending = True


class TrajectoryObserver:
    """Energies every step, a logged frame every ``every`` steps and at the end; the checkpoint with each write.

    The writer buffers what it is given and writes it when its flush budget is spent (see
    :mod:`~gauge_vfe.agents.io.writer`); :meth:`finish` writes whatever is still buffered, however the run
    ended. ``log_initial``: write the state the run starts from as frame 0 (a new file; a resumed file has it).
    """

    def __init__(self, run_file: RunFile, every: int | Trigger, log_initial: bool = True):
        self.file = run_file
        self.writer = run_file.writer
        self.frame_due: Trigger = Periodic(every) if isinstance(every, int) else every
        self.log_initial = log_initial

    def _beta(self, sim: Simulation):
        return sim.beta() if "beta" in self.writer.fields else None

    def _log(self, sim: Simulation, spd_retractions: int, frame: bool, info_bits=None) -> None:
        ev = sim.evaluation
        self.writer.log_energy(sim.state.step, ev.terms, ev.grad_norms(), spd_retractions, info_bits,
                               frame_follows=frame)
        if frame:
            self._check_representable(sim)
            self.writer.log_frame(sim.state, self._beta(sim), sim.noise_state())

    def start(self, sim: Simulation) -> None:
        if self.log_initial:
            self._log(sim, 0, frame=True)  # no step produced the initial state: 0 bits

    def update(self, sim: Simulation, info: StepInfo) -> None:
        self._log(sim, info.spd_retractions, frame=self.frame_due(sim.state.step), info_bits=info.info_bits)

    def _check_representable(self, sim: Simulation) -> None:
        """A state the file's precision cannot hold is a divergence: stop before writing inf into a frame."""
        limit = self.writer.max_value
        for name in ("mu", "sigma", "phi"):
            if np.abs(getattr(sim.state, name)).max() > limit:
                raise DivergenceError(sim.state.step, name, f"values beyond the {self.writer.dtype} range of the "
                                     f"trajectory (|x| > {limit:.3g}); the last logged frame is the last good one")

    def finish(self, sim: Simulation, outcome: RunOutcome) -> None:
        """Log the final state and close the run file with the run's status (its registered tasks, the analysis,
        run first, through the same handle).

        Every buffered frame is written first, whatever the status (a failed or diverged run keeps the frames
        it logged). A Ctrl-C or SIGTERM during these writes is held until they are done (never half a final
        frame); it then ends the run as an interrupt after its last step, unless a task reports it itself (the
        analysis skips and says so)."""
        f = self.file
        f.status, f.message = outcome.status, outcome.message
        if outcome.status == "interrupted":
            f.message += "; continue with --resume"
        with signals_deferred() as held:
            try:
                if outcome.status == "completed" or (outcome.status == "diverged" and self._representable(sim)):
                    # the final (or last good) state
                    self.writer.log_frame(sim.state, self._beta(sim), sim.noise_state())
                elif outcome.status == "interrupted":
                    self.writer.checkpoint(sim.state, sim.noise_state())
                if not self.writer.broken:  # after a failed HDF5 write nothing more can be written
                    self.writer.flush()
                if outcome.status == "completed":
                    self.writer.settle_checkpoint()
            except DiskFullError as exc:
                f.status, f.message = "failed", str(exc)
                f.close()
                raise
            if not f.has_tasks:
                f.close()
        f.interrupt_pending = f.interrupt_pending or held.signal is not None
        if f.has_tasks:
            f.close(sim, outcome)
        elif f.interrupt_pending:
            raise KeyboardInterrupt

    def _representable(self, sim: Simulation) -> bool:
        try:
            self._check_representable(sim)
        except DivergenceError:
            self.writer.checkpoint(sim.state, sim.noise_state())  # float64: kept exactly, just not as a frame
            return False
        return True


class ProgressBar:
    """A tqdm bar on stderr: step, energy by term, steps/s and time left."""

    def __init__(self, total: int | None = None, enabled: bool = True, refresh_seconds: float = 0.25,
                 only_when_watched: bool = False):
        """``total``: the step the bar counts to (None: the last step of the run it is attached to).
        ``only_when_watched``: no bar when stderr is a log file (``vfe run`` and ``run_scenario``; see
        runner/progress.py); a bar a script asks for itself is always drawn."""
        self.total = total
        self.enabled = enabled
        self.only_when_watched = only_when_watched
        self.refresh_seconds = refresh_seconds
        self._bar = None
        self._last = 0.0

    def _postfix(self, sim: Simulation) -> None:
        e = sim.energy()
        parts = [f"E={e['total']:.5g}"] + [f"{TERM[t].short}={e[t]:.3g}" for t in TERMS if e[t] != 0.0]
        self._bar.set_postfix_str(" ".join(parts), refresh=False)

    def start(self, sim: Simulation) -> None:
        from .progress import progress_bar

        total = self.total if self.total is not None else sim.run_until
        self._bar = progress_bar("step", self.enabled, self.only_when_watched, total=total, initial=sim.state.step,
                                 dynamic_ncols=True, mininterval=0.2)
        self._first = True
        self._postfix(sim)

    def update(self, sim: Simulation, info: StepInfo) -> None:
        now = time.monotonic()
        if now - self._last > self.refresh_seconds:
            self._postfix(sim)
            self._last = now
        self._bar.update(1)
        if self._first:
            self._restart_clock()

    def _restart_clock(self) -> None:
        """Time the bar from the end of the first step: a first run compiles the kernels during the build and
        the first step (runner/startup.py), and a rate that includes a minute of compiling shows an ETA of
        hours. Until the first step is done the bar shows no rate and no ETA ("?")."""
        self._first = False
        bar = self._bar
        if bar.disable:
            return
        done = bar.n
        bar.reset(total=bar.total)  # a fresh clock and rate average (tqdm's public reset)
        bar.n = bar.last_print_n = bar.initial = done
        bar.refresh()

    def finish(self, sim: Simulation, outcome: RunOutcome) -> None:
        if self._bar is not None:
            self._postfix(sim)  # the bar's last line shows the final energy, not the last throttled one
            self._bar.close()


class EndOfRunAnalysis:
    """Meta-agents and holonomy over every logged frame once the run has ended (``analysis.enabled``).

    A task of the :class:`RunFile`: when the run file closes it reads the committed frames back through the
    writer's own handle and stores the result there; the file is then closed with the run's status. A failure of
    the analysis never costs the run: the frames are already committed and the status is written all the same
    (``notes`` says what went wrong; ``vfe analyze`` can redo it).
    """

    def __init__(self, run_file: RunFile, settings: AnalysisConfig):
        self.file = run_file
        self.settings = settings
        self.result: AnalysisResult | None = None
        self.notes: list[str] = []
        self._interrupted = False
        run_file.before_close(self)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C or SIGTERM after the last step: the run is complete, the analysis not."""
        return self._interrupted or self.file.interrupt_pending

    def __call__(self, run_file: RunFile, sim: Simulation, outcome: RunOutcome) -> None:
        writer = run_file.writer
        try:
            if run_file.interrupt_pending:  # Ctrl-C while the last frame was written: do not start
                raise KeyboardInterrupt
            if outcome.status != "failed":
                traj = writer.reader()
                self.result = analyze_frames(sim.layout, traj.frame_steps, traj.frame_states(), self.settings,
                                             info_bits=traj.info_bits())
                self.notes += self.result.notes
                with signals_deferred() as held:  # never half an analysis in the file
                    writer.write_analysis(self.result)
                if held.signal is not None:
                    self._interrupted = True
        except KeyboardInterrupt:  # the run itself is complete: say so, and how to analyse it later
            self.result, self._interrupted = None, True
            self.notes.append(f"analysis interrupted: run `vfe analyze {writer.path}` to redo it")
        except DiskFullError as exc:
            self.result = None
            self.notes.append(f"analysis not stored: {exc}")
            raise
