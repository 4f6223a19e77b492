"""Seeing a run: 3D scenes with PyVista (offscreen through VTK's EGL) and matplotlib plots.

    from gauge_vfe import viz
    viz.render("runs/emergence.h5", "movie.mp4")
    viz.contact_sheet("runs/emergence.h5", "sheet.png")
    viz.show(traj, step=200)                  # in a notebook: the scene inline, rendered offscreen
    viz.plot_energy(gauge_vfe.load("runs/emergence.h5"))
"""

from .export_reader import export_steps, read_export
from .plots import (plot_all, plot_attention, plot_beta, plot_beliefs, plot_energy, plot_hierarchy, plot_holonomy,
                    plot_holonomy_over_time, plot_meta_agents)
from .render import InteractiveScene, RenderReport, SceneImage, contact_sheet, render, show, view
from .scene import COLOR_BY, VIEWS, SceneOptions

__all__ = ["render", "contact_sheet", "view", "show", "SceneImage", "InteractiveScene", "RenderReport", "SceneOptions", "COLOR_BY",
           "VIEWS", "plot_all", "plot_energy", "plot_attention", "plot_beta", "plot_meta_agents", "plot_hierarchy", "plot_holonomy",
           "plot_holonomy_over_time", "plot_beliefs", "read_export", "export_steps"]
