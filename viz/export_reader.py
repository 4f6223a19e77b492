"""Reading a ``vfe export`` file back in Python, one logged step at a time (docs/model.md#export-reading).

``pyvista.read`` gives the first step of a VTKHDF time series only, and pyvista's ``HDFReader`` (0.49) has no
``time_values`` or ``set_active_time_value``; VTK's own reader, which pyvista wraps, steps through time. These two
functions are that recipe, so that a notebook never has to know it:

    steps = gv.viz.export_steps("runs/q.vtkhdf")        # the logged steps, as ints
    grid = gv.viz.read_export("runs/q.vtkhdf", step=steps[-1])
    grid.cell_data["agent0_mu"].reshape(H, W, K)       # row-major over (y, x), as the run's grid
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _reader(path):
    import pyvista as pv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    reader = pv.get_reader(str(path)).reader  # vtkHDFReader (pyvista picks it by the .vtkhdf/.hdf suffix)
    reader.UpdateInformation()
    return reader


def _steps(reader) -> np.ndarray:
    from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline as Pipeline

    info = reader.GetOutputInformation(0)
    return np.asarray(info.Get(Pipeline.TIME_STEPS()) if info.Has(Pipeline.TIME_STEPS()) else [0.0], dtype=float)


def export_steps(path) -> np.ndarray:
    """The logged steps of an export (its time values), as int64, in file order."""
    return _steps(_reader(path)).astype(np.int64)


def read_export(path, step: int | None = None):
    """The export at ``path`` at logged ``step`` (default: the first) as a ``pyvista.ImageData`` of its own (a copy:
    reading another step does not change it). A step the file does not hold raises ValueError naming the steps it
    does (the first, the last and how many)."""
    import pyvista as pv

    reader = _reader(path)
    steps = _steps(reader)
    index = 0 if step is None else np.nonzero(steps == step)[0]
    if step is not None:
        if index.size == 0:
            raise ValueError(f"{path}: step {step} is not in the export (it holds {steps.size} logged steps, "
                             f"{int(steps[0])}..{int(steps[-1])}; gv.viz.export_steps lists them)")
        index = int(index[0])
    reader.SetStep(index)
    reader.Update()
    return pv.wrap(reader.GetOutput()).copy()


__all__ = ["export_steps", "read_export"]
