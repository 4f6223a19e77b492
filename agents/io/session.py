"""Adding analysis results to a run's file once its writer has ended (``vfe analyze``, the end of ``vfe run``).

:func:`analysis_session` opens the file once for reading the logged frames and writing the results through
the same handle. A file left by a killed writer has its consistency flags cleared first (docs/model.md#file);
a file whose writer is still alive is refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py

from ..analysis.pipeline import AnalysisResult
from .analysis_store import write_analysis
from .reader import Trajectory
from .recovery import clear_consistency_flags, writer_alive


class AnalysisSession:
    """The frames of a run and a place to store what the analysis found."""

    def __init__(self, trajectory: Trajectory, handle: h5py.File):
        self.trajectory = trajectory
        self._f = handle

    def frame_steps(self):
        return self.trajectory.frame_steps

    def frame_states(self):
        return self.trajectory.frame_states()

    def layout(self):
        return self.trajectory.layout()

    def write_analysis(self, result: AnalysisResult) -> None:
        write_analysis(self._f, result)


@contextmanager
def analysis_session(path: str | Path):
    path = Path(path)
    with Trajectory(path) as probe:
        recorded, writer = probe.recorded_status, probe.writer
    if recorded == "running":
        if writer_alive(*writer):
            raise RuntimeError(f"{path}: the run is still being written; analyse it when it has ended")
        clear_consistency_flags(path)
    with h5py.File(path, "a") as f:
        traj = Trajectory(path, handle=f)
        yield AnalysisSession(traj, f)
