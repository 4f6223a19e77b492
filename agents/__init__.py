"""The simulator: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

Layers, each a subpackage (docs/model.md is the model they implement):

* ``kernels``  -- numba kernels over plain arrays: one function per energy term, Lie algebra, linear algebra;
* ``model``    -- grid, supports, fiber, layout, state, parameters, the energy and the step function;
* ``setup``    -- the scenario schema, scenario files, initial fields, building a run, shipped scenarios;
* ``io``       -- the only code that knows HDF5: trajectory writer and reader, analysis and sweep stores;
* ``analysis`` -- meta-agents, holonomy, time scales, over logged frames;
* ``runner``   -- the one run loop (``Simulation.run``) and its observers, ``run_scenario``, sweeps;
* ``cli``      -- the ``vfe`` command: parse, call one of the above, print.

The public Python API, re-exported by ``gauge_vfe``:

* :class:`Simulation` -- build from a config, step, run with observers, read energies, gradients, beta, fields;
  :class:`ProgressBar` is the observer ``vfe run`` shows; updaters (:class:`Periodic` triggers,
  :class:`ObservationResampling`, :class:`HierarchyCoupling`) change the action's constants during a run;
* :class:`Ensemble` -- R independent replicas of a scenario stepped in one engine, each bit for bit its single
  run (docs/model.md#replica-ensembles);
* :func:`make_config` / :class:`Config` -- the validated scenario structure;
* :func:`evaluate` / :func:`step` -- the energy-and-gradient function and the pure step over plain arrays;
* :func:`load` / :class:`Trajectory` -- reading a run file; :func:`run_scenario`, :func:`analyze_run`,
  :func:`summarize_run`, :func:`run_sweep` -- what the ``vfe`` commands call;
* :func:`run`, :func:`analyze`, :func:`sweep`, :func:`load_sweep` -- one call per command for notebooks, with
  Python values in and a :class:`Trajectory`, an :class:`Analysis` or a pandas DataFrame out; :func:`export`
  writes a run as a file ParaView and VisIt open (``vfe export``).
"""

import importlib

# Where each public name lives. They are imported on first use (PEP 562), so that `vfe --help`, and a Ctrl-C
# while the command starts, need not wait for numpy, numba and h5py to load.
_PUBLIC = {
    ".setup.build": ("Built", "build"),
    ".setup.config": ("Config", "ConfigError", "make_config"),
    ".model.dynamics": ("DivergenceError", "StepInfo", "step"),
    ".model.energy": ("TERMS", "Evaluation", "evaluate"),
    ".model.params": ("DynamicsParams", "EnergyParams", "LineSearch"),
    ".io.reader": ("StepNotLogged", "Trajectory"),
    ".io.ensemble_store": ("EnsembleTrajectory", "load"),
    ".io.export": ("export",),
    ".setup.scenario": ("Scenario", "ScenarioError", "load_scenario"),
    ".setup.shipped": ("shipped_scenarios",),
    ".runner.simulation": ("EnergyIncreaseWarning", "RunOutcome", "Simulation"),
    ".runner.ensemble": ("Ensemble", "EnsembleOutcome", "ReplicaView"),
    ".runner.observers": ("ProgressBar",),
    ".runner.updaters": ("Periodic", "ObservationResampling", "HierarchyCoupling"),
    ".runner.run": ("RunResult", "run_scenario"),
    ".runner.analyze": ("analyze_run",),
    ".runner.inspect": ("summarize_run",),
    ".runner.sweep": ("run_sweep",),
    ".runner.notebook_run": ("run",),
    ".runner.notebook_analyze": ("Analysis", "analyze"),
    ".runner.notebook_sweep": ("sweep",),
    ".runner.sweep_table": ("load_sweep",),
    ".runner.spectrum": ("spectrum",),
    ".analysis.meta_agents": ("ConsensusParams",),
    ".analysis.pipeline": ("AnalysisResult",),
    ".model.state": ("State",),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = [*_MODULE_OF, "__version__"]


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import version

        value = version("gauge-vfe")  # one version number: pyproject.toml
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
