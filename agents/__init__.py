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
* :func:`make_config` / :class:`Config` -- the validated scenario structure;
* :func:`evaluate` / :func:`step` -- the energy-and-gradient function and the pure step over plain arrays;
* :func:`load` / :class:`Trajectory` -- reading a run file; :func:`run_scenario`, :func:`analyze_run`,
  :func:`summarize_run`, :func:`run_sweep` -- what the ``vfe`` commands call.
"""

from .setup.build import Built, build
from .setup.config import Config, ConfigError, make_config
from .model.dynamics import DivergenceError, StepInfo, step
from .model.energy import TERMS, Evaluation, evaluate
from .model.params import DynamicsParams, EnergyParams, LineSearch
from .io.reader import Trajectory, load
from .setup.scenario import Scenario, ScenarioError, load_scenario
from .runner.simulation import EnergyIncreaseWarning, RunOutcome, Simulation
from .runner.run import RunResult, run_scenario
from .runner.analyze import analyze_run
from .runner.inspect import summarize_run
from .runner.sweep import run_sweep
from .analysis.meta_agents import ConsensusParams
from .analysis.pipeline import AnalysisResult
from .model.state import State

from importlib.metadata import version as _version

__version__ = _version("gauge-vfe")  # one version number: pyproject.toml


__all__ = [
    "Built", "build", "Config", "ConfigError", "make_config", "DivergenceError", "DynamicsParams", "LineSearch",
    "StepInfo", "step", "TERMS", "EnergyParams", "Evaluation", "evaluate", "EnergyIncreaseWarning", "Simulation",
    "State", "Trajectory", "load", "Scenario", "ScenarioError", "load_scenario", "__version__", "RunOutcome",
    "RunResult", "run_scenario", "analyze_run", "summarize_run", "run_sweep", "ConsensusParams", "AnalysisResult",
]
