"""gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

This folder (the repository root) is installed as the package ``gauge_vfe``: the simulator ``agents/`` as
``gauge_vfe.agents``, the rendering and plots ``viz/`` as ``gauge_vfe.viz``, the shipped ``scenarios/`` and
``data/`` as package data. The model the code implements is ``docs/model.md``.

    import gauge_vfe as gv
    sim = gv.Simulation.from_config({"grid": {"height": 16, "width": 16}, "agents": {"count": 4}})
    traj = gv.load("runs/quickstart.h5")
"""

from .agents import *  # noqa: F403 - the simulator's public API is the package's
from .agents import __all__ as _agents_all
from .agents import __version__

__all__ = list(_agents_all)
