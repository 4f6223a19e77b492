"""What a run does besides stepping, as observers of :meth:`Simulation.run` (one concern each).

* :class:`TrajectoryObserver` streams energies (every step) and frames (every ``output.every`` steps) into a
  trajectory writer, and closes it with the run's status;
* :class:`ProgressBar` shows the step, the energy by term, steps/s and the time left;
* :class:`AnalysisObserver` analyses every logged frame when the run has ended and stores the result.
"""

from __future__ import annotations

import sys
import time

from ..analysis.pipeline import AnalysisResult, analyze_frames
from ..io.session import analysis_session
from ..io.writer import TrajectoryWriter
from ..model.dynamics import StepInfo
from ..model.energy import TERMS
from ..setup.config import AnalysisConfig
from .simulation import RunOutcome, Simulation


class TrajectoryObserver:
    """Energies every step, a logged frame every ``every`` steps and at the end; the checkpoint with each frame.

    ``log_initial``: write the state the run starts from as frame 0 (a new file; a resumed file has it).
    """

    def __init__(self, writer: TrajectoryWriter, every: int, log_initial: bool = True):
        self.writer = writer
        self.every = every
        self.log_initial = log_initial

    def _beta(self, sim: Simulation):
        return sim.beta() if "beta" in self.writer.fields else None

    def _log(self, sim: Simulation, spd_retractions: int, frame: bool) -> None:
        ev = sim.evaluation
        self.writer.log_energy(sim.state.step, ev.terms, ev.grad_norms(), spd_retractions)
        if frame:
            self.writer.log_frame(sim.state, self._beta(sim))

    def start(self, sim: Simulation) -> None:
        if self.log_initial:
            self._log(sim, 0, frame=True)

    def update(self, sim: Simulation, info: StepInfo) -> None:
        self._log(sim, info.spd_retractions, frame=sim.state.step % self.every == 0)

    def finish(self, sim: Simulation, outcome: RunOutcome) -> None:
        try:
            if outcome.status in ("completed", "diverged"):
                self.writer.log_frame(sim.state, self._beta(sim))  # the final (or last good) state
            elif outcome.status == "interrupted":
                self.writer.checkpoint(sim.state)
        finally:
            message = outcome.message
            if outcome.status == "interrupted":
                message += "; continue with --resume"
            self.writer.close(outcome.status, message)


class ProgressBar:
    """A tqdm bar on stderr: step, energy by term, steps/s and time left."""

    SHORT = {"prior": "prior", "observation": "obs", "alignment": "align", "curvature": "curv",
             "smoothness": "smooth"}

    def __init__(self, total: int, enabled: bool = True, refresh_seconds: float = 0.25):
        self.total = total
        self.enabled = enabled
        self.refresh_seconds = refresh_seconds
        self._bar = None
        self._last = 0.0

    def _postfix(self, sim: Simulation) -> None:
        e = sim.energy()
        parts = [f"E={e['total']:.5g}"] + [f"{self.SHORT[t]}={e[t]:.3g}" for t in TERMS if e[t] != 0.0]
        self._bar.set_postfix_str(" ".join(parts), refresh=False)

    def start(self, sim: Simulation) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=self.total, initial=sim.state.step, unit="step", dynamic_ncols=True,
                         disable=not self.enabled, mininterval=0.2, file=sys.stderr)
        self._postfix(sim)

    def update(self, sim: Simulation, info: StepInfo) -> None:
        now = time.monotonic()
        if now - self._last > self.refresh_seconds:
            self._postfix(sim)
            self._last = now
        self._bar.update(1)

    def finish(self, sim: Simulation, outcome: RunOutcome) -> None:
        if self._bar is not None:
            self._bar.close()


class AnalysisObserver:
    """Meta-agents and holonomy over every logged frame once the run has ended (``analysis.enabled``).

    It runs after the trajectory observer has closed the run with its status (attach it after that one),
    reads the logged frames back and stores the result in the same file; ``result`` holds what was found.
    """

    def __init__(self, trajectory: TrajectoryObserver, settings: AnalysisConfig):
        self.trajectory = trajectory
        self.settings = settings
        self.result: AnalysisResult | None = None

    def start(self, sim: Simulation) -> None:
        pass

    def update(self, sim: Simulation, info: StepInfo) -> None:
        pass

    def finish(self, sim: Simulation, outcome: RunOutcome) -> None:
        if outcome.status == "failed":
            return
        with analysis_session(self.trajectory.writer.path) as session:
            self.result = analyze_frames(sim.layout, session.frame_steps(), session.frame_states(), self.settings)
            session.write_analysis(self.result)
