"""Seeing a run: 3D scenes with PyVista (offscreen through VTK's EGL) and matplotlib plots.

    from gauge_vfe import viz
    viz.render("runs/emergence.h5", "movie.mp4")
    viz.plot_energy(agents.load("runs/emergence.h5"))
"""

from .plots import plot_all, plot_beta, plot_beliefs, plot_energy, plot_holonomy, plot_meta_agents
from .render import render, view
from .scene import COLOR_BY, SceneOptions

__all__ = ["render", "view", "SceneOptions", "COLOR_BY", "plot_all", "plot_energy", "plot_beta",
           "plot_meta_agents", "plot_holonomy", "plot_beliefs"]
