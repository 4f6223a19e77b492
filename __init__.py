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
    import importlib

    from .agents import __all__  # noqa: F401 - the simulator's public API is the package's (names only)

    def __getattr__(name):
        # Imported on first use: `vfe` starts without loading numba, and gv.viz (pyvista, VTK) only when asked.
        if name == "viz":
            value = importlib.import_module(".viz", __name__)
        elif name in __all__:
            value = getattr(importlib.import_module(".agents", __name__), name)
        else:
            raise AttributeError(f"module 'gauge_vfe' has no attribute {name!r}")
        globals()[name] = value
        return value

    def __dir__():
        return sorted(set(globals()) | set(__all__) | {"viz"})
else:  # pragma: no cover
    __all__ = []
