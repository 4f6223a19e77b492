"""Adding analysis results to a run's file after its writer has ended (``vfe analyze``).

:func:`analysis_session` takes the run file's lock (a file whose writer is alive is refused), clears the
consistency flags a killed writer may have left, and opens the file once, for reading the logged frames and
writing the results through the same handle. The results go into the analysis datasets with their commit
marker (:mod:`.analysis_store`), so a kill here leaves the frames intact and the analysis marked missing; so does
a full disk (:class:`~.outputs.NoSpaceLeft`, the handle abandoned without another write; the CLI leaves at once).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import h5py

from ..analysis.pipeline import AnalysisResult
from . import provenance
from .analysis_store import create_analysis_datasets, write_analysis
from .lock import RunLock, in_use_error
from .outputs import NoSpaceLeft, abandon_h5, is_disk_full
from .reader import Trajectory
from .recovery import clear_consistency_flags, require_hdf5, require_intact
from .schema import ANALYSIS_FRAMES, LIBVER


class AnalysisSession:
    """The frames of a run and a place to store what the analysis found."""

    def __init__(self, trajectory: Trajectory, handle: h5py.File):
        self.trajectory = trajectory
        self._f = handle

    def write_analysis(self, result: AnalysisResult) -> None:
        if ANALYSIS_FRAMES not in self._f:  # a file from before the analysis datasets were created up front
            create_analysis_datasets(self._f, self.trajectory.n_agents, int(self.trajectory.index.size))
        write_analysis(self._f, result)


@contextmanager
def analysis_session(path: str | Path, record: dict | None = None):
    """``record``: this invocation's history record (docs/model.md#file-provenance), appended as ``running`` when
    the file is opened and ended ``completed`` (``interrupted``, ``failed``) when the session ends."""
    path = require_hdf5(path)
    with RunLock(path):
        require_intact(path)  # a foreign or damaged file is refused before anything in it changes
        clear_consistency_flags(path)
        try:
            f = h5py.File(path, "a", libver=LIBVER)
        except OSError as exc:  # a reader (e.g. `vfe inspect`) holds HDF5's own lock on it
            raise (in_use_error(path, exc) or exc) from None
        k = None
        try:
            if record is not None:
                k = provenance.append(f, record, before=provenance.before_record(f, None)
                                      if provenance.GROUP not in f else None)
            yield AnalysisSession(Trajectory(path, handle=f), f)
            if k is not None:
                provenance.finish(f, k, "completed", None)
            f.close()
        except BaseException as exc:
            if is_disk_full(exc):
                abandon_h5(f)  # after a failed write HDF5 crashes on close: the handle is never touched again
            elif f.id.valid:
                if k is not None:  # the history says how it ended (the analysis is marked missing already)
                    try:
                        provenance.finish(f, k, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                                          None)
                    except Exception:  # noqa: BLE001 - the original error is the one to report
                        pass
                f.close()
            if is_disk_full(exc):
                raise NoSpaceLeft(f"the analysis into {path}", "nothing was replaced: the logged frames are intact "
                                  "and the analysis is marked missing (run vfe analyze again)") from None
            raise
