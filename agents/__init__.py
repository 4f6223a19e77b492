"""gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

The public Python API:

* :class:`Simulation` -- build a run from a config dict, step it, read energies, gradients, beta, fields;
* :func:`make_config` / :class:`Config` -- the validated scenario structure;
* :func:`evaluate` / :func:`step` -- the energy-and-gradient function and the pure step over plain arrays.
"""

from .setup.build import Built, build
from .setup.config import Config, ConfigError, make_config
from .model.dynamics import DivergenceError, DynamicsParams, LineSearch, StepInfo, step
from .model.energy import TERMS, EnergyParams, Evaluation, evaluate
from .io.reader import Trajectory, load
from .setup.scenario import Scenario, ScenarioError, load_scenario
from .runner.simulation import EnergyIncreaseWarning, Simulation
from .model.state import State

from importlib.metadata import version as _version

__version__ = _version("gauge-vfe")  # one version number: pyproject.toml


__all__ = [
    "Built", "build", "Config", "ConfigError", "make_config", "DivergenceError", "DynamicsParams", "LineSearch",
    "StepInfo", "step", "TERMS", "EnergyParams", "Evaluation", "evaluate", "EnergyIncreaseWarning", "Simulation",
    "State", "Trajectory", "load", "Scenario", "ScenarioError", "load_scenario", "__version__",
]
