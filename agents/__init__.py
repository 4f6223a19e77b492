"""gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

The public Python API:

* :class:`Simulation` -- build a run from a config dict, step it, read energies, gradients, beta, fields;
* :func:`make_config` / :class:`Config` -- the validated scenario structure;
* :func:`evaluate` / :func:`step` -- the energy-and-gradient function and the pure step over plain arrays.
"""

from .build import Built, build
from .config import Config, ConfigError, make_config
from .dynamics import DivergenceError, DynamicsParams, LineSearch, StepInfo, step
from .energy import TERMS, EnergyParams, Evaluation, evaluate
from .reader import Trajectory, load
from .scenario import Scenario, ScenarioError, load_scenario
from .simulation import EnergyIncreaseWarning, Simulation
from .state import State

__version__ = "0.1.0"

__all__ = [
    "Built", "build", "Config", "ConfigError", "make_config", "DivergenceError", "DynamicsParams", "LineSearch",
    "StepInfo", "step", "TERMS", "EnergyParams", "Evaluation", "evaluate", "EnergyIncreaseWarning", "Simulation",
    "State", "Trajectory", "load", "Scenario", "ScenarioError", "load_scenario", "__version__",
]
