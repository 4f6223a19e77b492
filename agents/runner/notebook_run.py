"""``gv.run``: a scenario run as ``vfe run`` runs it (:func:`~.run.run_scenario`), its trajectory opened, in a
temporary folder unless the caller names the file."""

from __future__ import annotations

import shutil
import tempfile
import warnings
import weakref
from pathlib import Path

from ..io.reader import Trajectory
from .prepare import prepare


class TemporaryTrajectory(Trajectory):
    """A :class:`Trajectory` of a run written to a temporary folder, deleted with it: when it is closed, garbage
    collected, or the interpreter exits. Copy ``traj.path`` elsewhere first to keep the file."""

    def __init__(self, path, folder: Path):
        super().__init__(path)
        self.folder = folder
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(folder), True)

    def close(self) -> None:
        super().close()
        self._cleanup()


def run(scenario, *, steps: int | None = None, seed: int | None = None, output=None, progress: bool = True,
        **overrides) -> Trajectory:
    """Run a scenario as ``vfe run`` does and open its trajectory.

    ``scenario``: a shipped scenario's name (``"quickstart"``), a scenario file, a dict of scenario keys, or a
    :class:`~gauge_vfe.agents.setup.config.Config`. ``steps`` and ``seed`` are ``--steps`` and ``--seed``;
    ``overrides`` are ``--set`` keys, dotted (``**{"energy.kappa": 0.5}``) or nested
    (``energy={"kappa": 0.5}``, which sets only the keys given). ``progress`` shows the progress bar.

    ``output``: the trajectory file (an existing one is renamed ``NAME.1.h5`` first, as by ``vfe run``). With
    ``output=None`` the run is written to a file in a new temporary folder that lives as long as the returned
    trajectory: closing it (``traj.close()``, or a ``with`` block), its garbage collection or the end of the
    interpreter deletes the folder. Pass ``output=`` to keep the file.

    Bad input raises ``ScenarioError`` before anything is written. A run that diverges still returns its
    trajectory, with a warning; ``traj.status`` and ``traj.message`` say what happened. Ctrl-C (or SIGTERM)
    ends the run cleanly within a step, as in ``vfe run`` (the file is valid, status ``interrupted``), and then
    raises ``KeyboardInterrupt`` (a temporary file is deleted; a kept one continues with ``vfe run --resume``).
    """
    from .run import run_scenario

    if isinstance(output, dict):  # the keyword is the file; the scenario section goes in by dotted keys
        raise TypeError("output= is the trajectory file; set the scenario's output section with dotted keys, "
                        "e.g. **{'output.every': 5}")
    if steps is not None:
        overrides["dynamics.steps"] = steps
    if seed is not None:
        overrides["seed"] = seed
    sc = prepare(scenario, overrides)
    folder = None
    if output is None:
        folder = Path(tempfile.mkdtemp(prefix="gauge-vfe-"))
        output = folder / f"{sc.config.name}.h5"
    try:
        result = run_scenario(sc, output, progress=progress)
        if result.status == "interrupted" or result.interrupted_after_steps:
            # Ctrl-C (or SIGTERM) stopped the run cleanly and closed its file; it still stops the caller, as a
            # Ctrl-C stops a notebook cell or a script's loop of runs. `vfe run ... --resume` continues the file.
            raise KeyboardInterrupt(f"{result.path}: {result.message}")
        traj = TemporaryTrajectory(result.path, folder) if folder is not None else Trajectory(result.path)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if result.status != "completed":
        warnings.warn(f"run {result.status}: {result.message}", RuntimeWarning, stacklevel=2)
    return traj
