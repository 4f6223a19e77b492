"""Offscreen rendering of a run to PNG, GIF or MP4 (VTK through EGL: no display needed), and the viewer.

    viz.render("runs/emergence.h5", "movie.mp4", frames=slice(None), size=(1280, 720), color_by="|mu|")
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .scene import FrameData, SceneOptions, add_frame, set_camera

FORMATS = (".png", ".gif", ".mp4")


def _open(traj):
    from .. import agents

    return (agents.load(traj), True) if isinstance(traj, (str, Path)) else (traj, False)


def frame_indices(n_frames: int, frames) -> list[int]:
    """``frames``: None (all), a slice, an int, or a 'start:stop:step' string."""
    if frames is None:
        return list(range(n_frames))
    if isinstance(frames, int):
        return [range(n_frames)[frames]]
    if isinstance(frames, str):
        parts = [int(p) if p.strip() else None for p in frames.split(":")]
        if len(parts) == 1:
            return [range(n_frames)[parts[0]]]
        frames = slice(*parts)
    return list(range(n_frames))[frames]


def _plotter(size):
    import pyvista as pv

    pl = pv.Plotter(off_screen=True, window_size=list(size))
    pl.set_background("white")
    return pl


def _clim(traj, idx: list[int], options: SceneOptions, layout, params) -> tuple[float, float]:
    """One colour range for the whole animation, so colours mean the same in every frame."""
    lo, hi = np.inf, -np.inf
    for f in (idx[0], idx[len(idx) // 2], idx[-1]):
        v = FrameData(traj, f, options, layout, params).values
        lo, hi = min(lo, float(np.nanmin(v))), max(hi, float(np.nanmax(v)))
    return lo, hi + 1e-12


def render(traj, output, frames=None, size=(1280, 720), color_by: str = "|mu|", progress=None,
           fps: int = 10, **scene_options) -> Path:
    """Render frames of a run to ``output`` (.png: the first selected frame; .gif / .mp4: all of them)."""
    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise ValueError(f"{output}: output must end in {', '.join(FORMATS)}")
    traj, owned = _open(traj)
    try:
        idx = frame_indices(len(traj.frame_steps), frames)
        if not idx:
            raise ValueError("no frames selected")
        if output.suffix.lower() == ".png":
            idx = idx[:1]
        options = SceneOptions(color_by=color_by, **scene_options)
        layout = traj.layout() if options.color_by in ("kl_prior", "free_energy") else None
        params = None
        if options.color_by == "free_energy":
            from ..agents.setup.config import make_config

            params = make_config(traj.config).energy
        if options.color_by != "agent" and options.clim is None:
            options.clim = _clim(traj, idx, options, layout, params)
        n_scales = 1 + max([m["scale"] for f in (idx[0], idx[-1]) for m in traj.meta_agents(f)] + [1])
        output.parent.mkdir(parents=True, exist_ok=True)
        pl = _plotter(size)
        writer = None
        try:
            if output.suffix.lower() != ".png":
                import imageio.v2 as imageio

                kw = {"fps": fps, "macro_block_size": 1} if output.suffix.lower() == ".mp4" else \
                    {"duration": 1000 / fps, "loop": 0}
                writer = imageio.get_writer(output, **kw)
            for k, f in enumerate(idx):
                pl._suppress_rendering = True  # one render per frame: the screenshot (see add_frame)
                pl.clear()
                add_frame(pl, FrameData(traj, f, options, layout, params), options)
                set_camera(pl, traj.grid.height, traj.grid.width, options.view, n_scales)
                pl._suppress_rendering = False
                pl.render()
                img = pl.screenshot(return_img=True)
                if writer is None:
                    import imageio.v2 as imageio

                    imageio.imwrite(output, img)
                else:
                    writer.append_data(img)
                if progress is not None:
                    progress(k + 1, len(idx))
        finally:
            if writer is not None:
                writer.close()
            pl.close()
    finally:
        if owned:
            traj.close()
    return output


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def view(traj, color_by: str = "|mu|", size=(1280, 720)) -> None:
    """An interactive window with a time slider (needs a display)."""
    if not display_available():
        raise RuntimeError("no display: `vfe view` needs a screen (DISPLAY is not set); render to a file "
                           "instead: vfe render RUN.h5 -o movie.mp4")
    import pyvista as pv

    traj, owned = _open(traj)
    options = SceneOptions(color_by=color_by)
    n = len(traj.frame_steps)
    pl = pv.Plotter(window_size=list(size))
    pl.set_background("white")

    def show(value):
        f = int(round(value))
        pl.clear_actors()
        add_frame(pl, FrameData(traj, f, options), options)

    show(n - 1)
    set_camera(pl, traj.grid.height, traj.grid.width, options.view)
    pl.add_slider_widget(show, [0, n - 1], value=n - 1, title="frame", fmt="%.0f")
    pl.show()
    if owned:
        traj.close()
