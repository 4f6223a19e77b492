"""Which OpenGL window VTK renders into, chosen before the first window exists.

VTK 9.4+ picks its OpenGL window at run time. Left alone on a machine without a display it first tries X,
prints "bad X server connection. DISPLAY=" in yellow and only then falls back to EGL: a user reads that as a
failure. VTK's documented switch is the environment variable ``VTK_DEFAULT_OPENGL_WINDOW``
(https://docs.vtk.org/en/latest/advanced/runtime_settings.html), read when a render window is created, so
setting it just before PyVista creates a plotter is enough. A user's own setting always wins, and with a
display (X or Wayland) nothing is changed.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os

WINDOW_VARIABLE = "VTK_DEFAULT_OPENGL_WINDOW"
EGL_WINDOW = "vtkEGLRenderWindow"
OSMESA_WINDOW = "vtkOSOpenGLRenderWindow"
WINDOW_NAMES = {EGL_WINDOW: "EGL", OSMESA_WINDOW: "OSMesa", "vtkXOpenGLRenderWindow": "X display",
                "vtkWin32OpenGLRenderWindow": "Windows display", "vtkCocoaRenderWindow": "macOS display",
                "vtkWaylandRenderWindow": "Wayland display"}


def display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def headless_window() -> str | None:
    """The offscreen window class to ask for when there is no display: EGL if libEGL is installed, else
    OSMesa if libOSMesa is, else None (VTK's own choice, with its own message)."""
    if display_available() or os.environ.get(WINDOW_VARIABLE):
        return None
    if ctypes.util.find_library("EGL"):
        return EGL_WINDOW
    if ctypes.util.find_library("OSMesa"):
        return OSMESA_WINDOW
    return None


@contextlib.contextmanager
def offscreen_window_choice():
    """Within the block, new VTK render windows are created as :func:`headless_window` says; the variable is
    restored afterwards so child processes see the user's environment unchanged."""
    choice = headless_window()
    if choice is None:
        yield
        return
    os.environ[WINDOW_VARIABLE] = choice
    try:
        yield
    finally:
        os.environ.pop(WINDOW_VARIABLE, None)


def import_pyvista():
    """``pyvista``, imported without the TqdmWarning "IProgress not found" a notebook would show: importing
    PyVista imports pooch, which imports ``tqdm.auto``, which warns in a Jupyter kernel without ipywidgets. We
    draw no progress bar through it (ours are console bars), so the warning is noise."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import pyvista

    return pyvista


def offscreen_plotter(size, **kw):
    """A PyVista plotter rendering offscreen, in the window :func:`headless_window` picks."""
    pv = import_pyvista()

    with offscreen_window_choice():
        pl = pv.Plotter(off_screen=True, window_size=list(size), **kw)
    return pl


def renderer_name(plotter) -> str:
    """'EGL (llvmpipe ...)', 'OSMesa (...)' or 'X display (...)': the window class and the OpenGL renderer."""
    window = plotter.render_window
    cls = window.GetClassName()
    name = WINDOW_NAMES.get(cls, cls)
    gl = ""
    for line in window.ReportCapabilities().splitlines():
        if line.startswith("OpenGL renderer string:"):
            gl = line.split(":", 1)[1].strip()
            break
    return f"{name} ({gl})" if gl else name


def count_renders(plotter) -> list[int]:
    """A one-element counter that goes up on every render of ``plotter``'s window (for tests and benchmarks)."""
    counter = [0]

    def bump(*_):
        counter[0] += 1

    plotter.render_window.AddObserver("StartEvent", bump)
    return counter
