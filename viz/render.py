"""Offscreen rendering of a run to PNG, GIF or MP4 (VTK through EGL: no display needed), contact sheets, and
the viewer.

    viz.render("runs/emergence.h5", "movie.mp4", frames=slice(None), size=(1280, 720), color_by="|mu|")
    viz.contact_sheet("runs/emergence.h5", "sheet.png")          # 9 frames, one camera, one colour range

Every frame of one call shares a :class:`~.scene.MovieContext`: one camera fitted to the union of the frames'
geometry, one colour range per quantity, one ellipsoid scale. Movies are written with PyVista's own
``open_movie`` / ``open_gif`` and ``write_frame``; each frame is rendered exactly once.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..agents.io.outputs import atomic_output, check_output
from .backend import display_available, import_pyvista, offscreen_plotter, renderer_name
from .scene import FrameDrawer, MovieContext, SceneOptions, font_scale, set_camera, title_lines

FORMATS = (".png", ".gif", ".mp4")


@dataclass
class RenderReport:
    """What a render did: the output, the renderer in use, and its speed (start-up excluded)."""

    path: Path
    renderer: str
    frames: int
    size: tuple[int, int]
    seconds: float  # wall time of the frames themselves (the context and the title card excluded)
    cpu_seconds: float = float("nan")  # CPU time of this process (all its threads) for the same frames

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def line(self) -> str:
        head = f"renderer: {self.renderer}; {self.frames} frame{'s' if self.frames != 1 else ''} at " \
               f"{self.size[0]}x{self.size[1]} in {self.seconds:.2f} s"
        if self.frames == 1:
            return head + " (including the renderer's start)"
        return head + f" ({self.fps:.1f} frames/s)"


def _open(traj):
    from .. import agents

    return (agents.load(traj), True) if isinstance(traj, (str, Path)) else (traj, False)


class FrameOutOfRange(IndexError):
    """A frame index the run does not have; its message names the index and the run's range of frames."""


def _frame(n_frames: int, k: int) -> int:
    """Frame ``k`` (negative: from the end) of ``n_frames``, or :class:`FrameOutOfRange` saying what exists."""
    if not -n_frames <= k < n_frames:
        raise FrameOutOfRange(f"--frames {k}: the run has {n_frames} logged frame{'s' if n_frames != 1 else ''} "
                              f"(0 to {n_frames - 1}, or -1 for the last)")
    return k % n_frames


def frame_indices(n_frames: int, frames) -> list[int]:
    """``frames``: None (all), a slice, an int, a list of ints, or a 'start:stop:step' string (Python's slice
    rules: an end past the last frame stops there). A single index outside the run raises
    :class:`FrameOutOfRange`, a text that is not a slice or a selection of no frame a ValueError."""
    if frames is None:
        return list(range(n_frames))
    if isinstance(frames, (int, np.integer)):
        return [_frame(n_frames, int(frames))]
    if isinstance(frames, (list, tuple)):
        return [_frame(n_frames, int(f)) for f in frames]
    text = frames
    if isinstance(frames, str):
        try:
            parts = [int(p) if p.strip() else None for p in frames.split(":")]
        except ValueError:
            raise ValueError(f"--frames {frames}: expected an index or start:stop:step, e.g. 0:100:10 or -1") \
                from None
        if len(parts) == 1:
            return [_frame(n_frames, parts[0])]
        if len(parts) > 3 or parts[2:3] == [0]:
            raise ValueError(f"--frames {frames}: expected start:stop:step with a step other than 0")
        frames = slice(*parts)
    idx = list(range(n_frames))[frames]
    if not idx:
        raise ValueError(f"--frames {text}: selects none of the run's {n_frames} logged frames (0 to {n_frames - 1})")
    return idx


def _title_card(plotter, ctx: MovieContext) -> None:
    lines = title_lines(ctx.config, len(ctx.frames), ctx.frame_steps[ctx.frames])
    fs = font_scale(plotter)
    plotter.add_text(lines[0], position=(0.06, 0.62), viewport=True, font_size=round(28 * fs), color="black",
                     render=False, name="title")
    plotter.add_text("\n".join(lines[1:]), position=(0.06, 0.25), viewport=True, font_size=round(12 * fs),
                     color="black", render=False, name="title_lines")


PANEL_WEIGHTS = (2, 1)  # the 3D view and the top-down panel share the width 2:1
PANEL_LABEL = "top view:\nbase-plane holonomy\nand meta-agent layers"  # colours as in the 3D view


def _plotter(size, options: SceneOptions):
    kw = {"shape": (1, 2), "col_weights": list(PANEL_WEIGHTS)} if options.panel_2d else {}
    pl = offscreen_plotter(size, **kw)
    pl.set_background("white")
    return pl


class _Frames:
    """Draws a context's frames into one plotter (see :class:`~.scene.FrameDrawer`) under one camera per view:
    the 3D view, and with ``panel_2d`` a top-down panel of the base plane and meta-agent layers beside it."""

    def __init__(self, plotter, ctx: MovieContext, size):
        self.plotter, self.ctx = plotter, ctx
        w, h = size
        if ctx.options.panel_2d:
            share = np.array(PANEL_WEIGHTS) / sum(PANEL_WEIGHTS)
            # the legend moves to the panel, where there is room above the grid
            top = replace(ctx.options, view="top", agents=False, caption=False, height_axis=False, panel_2d=False,
                          legend_x=0.03)
            main = replace(ctx.options, legend=False)
            self.views = [((0, 0), FrameDrawer(plotter, ctx, options=main), ctx.options.view, share[0] * w / h),
                          ((0, 1), FrameDrawer(plotter, ctx, colour_bars=False, options=top), "top",
                           share[1] * w / h)]
        else:
            self.views = [(None, FrameDrawer(plotter, ctx), ctx.options.view, w / h)]

    def draw(self, frame: int) -> None:
        for where, drawer, view, aspect in self.views:
            if where is not None:
                self.plotter.subplot(*where)
            drawer.draw(frame)
            set_camera(self.plotter, self.ctx.bounds, view, aspect)
            if where == (0, 1):  # the panel says what it shows (its colours are the 3D view's bars)
                self.plotter.add_text(PANEL_LABEL, position=(0.03, 0.02), viewport=True, color="black",
                                      font_size=round(10 * font_scale(self.plotter)), render=False,
                                      name="panel_label")


def render(traj, output, frames=None, size=(1280, 720), color_by: str = "|mu|", progress=None,
           fps: int = 10, title_card: bool | None = None, report=None, **scene_options) -> Path:
    """Render frames of a run to ``output`` (.png: the first selected frame; .gif / .mp4: all of them).

    ``title_card``: a movie opens with one second naming the scenario and its key parameters (default: on
    for movies). ``report``: called with a :class:`RenderReport` when done (the CLI prints its line).
    ``scene_options``: any :class:`~.scene.SceneOptions` field (view, clim, holonomy_clim, ellipsoid_scale, ...).
    An earlier file at ``output`` is replaced only once the new one is complete; an ``output`` that is the run
    file, a live run's file or any run trajectory raises :class:`~gauge_vfe.agents.io.outputs.OutputRefused`.
    """
    output = Path(output)
    kind = output.suffix.lower()
    if kind not in FORMATS:
        raise ValueError(f"{output}: output must end in {', '.join(FORMATS)}")
    options = SceneOptions(color_by=color_by, **scene_options)
    traj, owned = _open(traj)
    try:
        idx = frame_indices(len(traj.frame_steps), frames)
        if kind == ".png":
            idx = idx[:1]
        check_output(output, [traj.path], "render")
        ctx = MovieContext(traj, idx, options)
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(output) as tmp:  # an earlier file at output survives until this one is complete
            info = _write(ctx, tmp, kind, size, fps, title_card if title_card is not None else True, progress)
        info.path = output
    finally:
        if owned:
            traj.close()
    if report is not None:
        report(info)
    return output


def _finish_movie(pl) -> None:
    """Close the movie's encoder here, where its failure is seen: pyvista's ``close`` suppresses every error of
    the encoder, so a movie whose encoder died (a full disk) would be reported as written. A full disk's error is
    raised as it is (:func:`~gauge_vfe.agents.io.outputs.atomic_output` names the target); any other encoder
    failure becomes an ``OSError`` saying so. Either way the temporary file is removed and nothing replaced."""
    from ..agents.io.outputs import is_disk_full

    writer, pl.mwriter = getattr(pl, "mwriter", None), None
    if writer is None:
        return
    try:
        writer.close()
    except Exception as exc:  # noqa: BLE001 - imageio raises IOError, RuntimeError or ValueError by backend
        if is_disk_full(exc):
            raise
        raise OSError(f"the movie encoder failed ({' '.join(str(exc).split())[:300]}); nothing was replaced") \
            from None


def _write(ctx: MovieContext, output: Path, kind: str, size, fps: int, title_card: bool, progress) -> RenderReport:
    pl = _plotter(size, ctx.options)
    try:
        if kind == ".mp4":
            # macro_block_size 1: imageio would otherwise resize any size not a multiple of 16 (with a warning)
            pl.open_movie(output, framerate=fps, quality=7, macro_block_size=1)
        elif kind == ".gif":
            pl.open_gif(output, fps=fps, loop=0)
        if kind != ".png" and title_card:
            _title_card(pl, ctx)
            for _ in range(max(1, fps)):  # one second
                pl.write_frame()
            for name in ("title", "title_lines"):
                pl.remove_actor(name, reset_camera=False, render=False)
        frames = _Frames(pl, ctx, size)
        t0, c0 = time.perf_counter(), time.process_time()
        for k, f in enumerate(ctx.frames):
            frames.draw(f)
            if kind == ".png":
                pl.render()  # a screenshot reads the window as it is (only the first one renders)
                pl.screenshot(output)
            else:
                pl.write_frame()  # renders, then appends the image
            if progress is not None:
                progress(k + 1, len(ctx.frames))
        _finish_movie(pl)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return RenderReport(output, renderer_name(pl), len(ctx.frames), tuple(size), seconds, cpu)
    finally:
        pl.close()  # also closes the movie writer


def contact_sheet(traj, output, n: int = 9, tile=(640, 360), color_by: str = "|mu|", report=None,
                  **scene_options) -> Path:
    """``n`` frames spread evenly over the run in one PNG (a grid of tiles, read left to right, top to bottom):
    one camera and one colour range for all of them, so the tiles compare."""
    from PIL import Image

    output = Path(output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"{output}: a contact sheet is a .png")
    options = SceneOptions(color_by=color_by, **scene_options)
    traj, owned = _open(traj)
    try:
        check_output(output, [traj.path], "render")
        n_frames = len(traj.frame_steps)
        idx = sorted({int(round(v)) for v in np.linspace(0, n_frames - 1, min(n, n_frames))})
        ctx = MovieContext(traj, idx, options)
        tiles, info = _tiles(ctx, tile, output)
    finally:
        if owned:
            traj.close()
    cols = int(np.ceil(np.sqrt(len(idx))))
    rows = int(np.ceil(len(idx) / cols))
    w, h = tile
    sheet = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for k, img in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    # thin grey rules between tiles
    for c in range(1, cols):
        sheet[:, c * w - 1:c * w + 1] = 160
    for r in range(1, rows):
        sheet[r * h - 1:r * h + 1, :] = 160
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(output) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG", optimize=True)
    if report is not None:
        report(info)
    return output


def _tiles(ctx: MovieContext, tile, output) -> tuple[list[np.ndarray], RenderReport]:
    pl = _plotter(tile, ctx.options)
    try:
        frames = _Frames(pl, ctx, tile)
        t0, c0 = time.perf_counter(), time.process_time()
        tiles = []
        for f in ctx.frames:
            frames.draw(f)
            pl.render()  # a screenshot reads the window as it is (only the first one renders)
            tiles.append(pl.screenshot(return_img=True)[..., :3])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        return tiles, RenderReport(Path(output), renderer_name(pl), len(tiles), tuple(tile), seconds, cpu)
    finally:
        pl.close()


def view(traj, color_by: str = "|mu|", size=(1280, 720)) -> None:
    """An interactive window with a time slider (needs a display)."""
    if not display_available():
        raise RuntimeError("no display: `vfe view` needs a screen (DISPLAY is not set); render to a file "
                           "instead: vfe render RUN.h5 -o movie.mp4")
    pv = import_pyvista()

    traj, owned = _open(traj)
    options = SceneOptions(color_by=color_by)
    n = len(traj.frame_steps)
    ctx = MovieContext(traj, list(range(n)), options)
    pl = pv.Plotter(window_size=list(size))
    pl.set_background("white")

    frames = _Frames(pl, ctx, size)

    def show(value):
        frames.draw(int(round(value)))
        pl.render()

    show(n - 1)
    pl.add_slider_widget(show, [0, n - 1], value=n - 1, title="frame", fmt="%.0f")
    try:
        pl.show()
    finally:
        if owned:
            traj.close()


class SceneImage:
    """One rendered scene as an RGB array; Jupyter shows it inline (``_repr_png_``), ``.save(path)`` writes it."""

    def __init__(self, pixels: np.ndarray, step: int):
        self.pixels, self.step = pixels, step

    def _repr_png_(self) -> bytes:
        import imageio.v3 as iio

        return iio.imwrite("<bytes>", self.pixels, extension=".png")

    def save(self, path) -> Path:
        import imageio.v3 as iio

        check_output(path, (), "save")
        with atomic_output(path) as tmp:
            iio.imwrite(tmp, self.pixels)
        return Path(path)


class InteractiveScene:
    """One scene as a self-contained vtk.js page (trame's HTML export): a notebook shows it inline and it turns,
    zooms and pans in the browser, with no display, no server and no running kernel (so it also survives in a
    saved or converted notebook). ``.save(path)`` writes the page."""

    def __init__(self, html: str, step: int):
        self.html, self.step = html, step

    def _repr_html_(self) -> str:
        import html as html_lib

        # in an iframe: the page brings its own scripts and styles, which must not leak into the notebook's
        return (f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" style="width: 100%; height: 540px; '
                f'border: none"></iframe>')

    def save(self, path) -> Path:
        check_output(path, (), "save")
        with atomic_output(path) as tmp:
            tmp.write_text(self.html, encoding="utf-8")
        return Path(path)


INTERACTIVE_EXTRA = "pip install 'gauge-vfe[interactive]' (trame-pyvista)"


def interactive_available() -> bool:
    """Whether trame-pyvista (the optional extra ``interactive``) is installed."""
    import importlib.util

    return importlib.util.find_spec("trame_pyvista") is not None


def show(traj, step: int | None = None, color_by: str = "|mu|", size=(960, 540), camera: str = "iso",
         panel_2d: bool = False, interactive: bool | None = None) -> SceneImage | InteractiveScene:
    """The 3D scene at a logged ``step`` (default: the last) for a notebook, built like ``vfe render`` (same
    scene, camera and colour ranges over the whole run) and needing no display.

    ``interactive``: ``True`` gives an :class:`InteractiveScene` (turn and zoom in the browser; needs the
    optional extra, :data:`INTERACTIVE_EXTRA`), ``False`` a :class:`SceneImage` (a static PNG); ``None`` (the
    default) the interactive scene when the extra is installed, else the image. For a window with a time slider
    on a machine with a display use :func:`view`.
    """
    if interactive is None:
        interactive = interactive_available() and not panel_2d
    if interactive and not interactive_available():
        raise ImportError(f"an interactive scene needs trame-pyvista: {INTERACTIVE_EXTRA}")
    if interactive and panel_2d:
        raise ValueError("panel_2d is drawn into a static image only: use interactive=False")
    traj, owned = _open(traj)
    try:
        n = len(traj.frame_steps)
        frame = n - 1 if step is None else traj.frame_of_step(step)
        options = SceneOptions(color_by=color_by, view=camera, panel_2d=panel_2d)
        ctx = MovieContext(traj, list(range(n)), options)
        pl = _plotter(size, options)
        try:
            _Frames(pl, ctx, size).draw(frame)
            at = int(traj.frame_steps[frame])
            if interactive:
                with tempfile.TemporaryDirectory() as tmp:
                    page = Path(tmp) / "scene.html"
                    # the trame component's own export (Plotter.export_html is deprecated in PyVista 0.47+)
                    trame = getattr(pl, "trame", None)
                    (trame.export_html if trame is not None else pl.export_html)(page)
                    return InteractiveScene(page.read_text(encoding="utf-8"), at)
            return SceneImage(np.asarray(pl.screenshot(return_img=True)), at)
        finally:
            pl.close()
    finally:
        if owned:
            traj.close()
