"""One call per capability, for notebooks: ``gv.run``, ``gv.analyze``, ``gv.sweep``, ``gv.load_sweep``.

    import gauge_vfe as gv
    traj = gv.run("quickstart", steps=200, seed=7, **{"energy.kappa": 0.5})   # a Trajectory
    a = gv.analyze(traj, eps_belief=0.05)                                    # objects and DataFrames
    a.meta_agents, a.events, a.timescales, a.holonomy
    df = gv.sweep("quickstart", {"energy.kappa": [0.5, 1, 2], "seed": "0:4"}, workers=2, output="sweeps/k")
    df = gv.load_sweep("sweeps/k")                                           # typed columns

Each is the CLI command's own code path (``vfe run`` is :func:`~.run.run_scenario` after
:func:`~gauge_vfe.agents.setup.scenario.prepare_scenario`; ``vfe sweep`` is :func:`~.sweep.run_sweep`), with
Python values in and pandas or xarray out.

One module per call, each with one job; this module gathers them under one name:

* :mod:`.prepare` -- a checked scenario from Python values (a name, a path, a dict or a Config; overrides);
* :mod:`.notebook_run` -- ``gv.run``: run, and open the trajectory (a temporary file unless one is named);
* :mod:`.notebook_analyze` -- ``gv.analyze`` and :class:`Analysis`: a run's analysis as DataFrames;
* :mod:`.notebook_sweep` -- ``gv.sweep``: a sweep from Python values;
* :mod:`.sweep_table` -- ``gv.load_sweep``: a sweep's summary as a typed DataFrame.
"""

from .notebook_analyze import Analysis, analyze
from .notebook_run import TemporaryTrajectory, run
from .notebook_sweep import sweep
from .prepare import prepare
from .sweep_table import load_sweep

__all__ = ["Analysis", "TemporaryTrajectory", "analyze", "load_sweep", "prepare", "run", "sweep"]
