"""gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

This folder (the repository root) is installed as the package ``gauge_vfe``: the simulator ``agents/`` as
``gauge_vfe.agents``, the rendering and plots ``viz/`` as ``gauge_vfe.viz``, the shipped ``scenarios/`` and
``data/`` as package data. The model the code implements is ``docs/model.md``.

    import gauge_vfe as gv
    sim = gv.Simulation.from_config({"grid": {"height": 16, "width": 16}, "agents": {"count": 4}})
    traj = gv.load("runs/quickstart.h5")
"""

# Only as the installed package: pytest, run in a checkout, imports this file as the package of the checkout's
# folder (under whatever that folder is called), and must find nothing here to import a second time.
if __name__ == "gauge_vfe":
    from .agents import *  # noqa: F403 - the simulator's public API is the package's
    from .agents import __all__ as _agents_all
    from .agents import __version__

    __all__ = list(_agents_all)

    def __getattr__(name):
        # gv.viz on first use: rendering pulls in pyvista and VTK, which a run does not need
        if name == "viz":
            import importlib

            return importlib.import_module(".viz", __name__)
        raise AttributeError(f"module 'gauge_vfe' has no attribute {name!r}")
else:  # pragma: no cover
    __all__ = []
