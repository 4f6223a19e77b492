"""The layout of a `vfe render` frame (issue 24, item 2, 3D): no text box overlaps another or the scene, nothing
leaves the image, the scene's whole bounding box (the base plane's corners included) is inside the picture with a
margin, and colour bars keep to their gutters. Checked on a full frame, on a frame with --panel-2d, and on a
contact-sheet tile, from the actors' own bounding boxes in display pixels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gauge_vfe import agents
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario
from gauge_vfe.agents.setup.shipped import shipped_scenarios
from gauge_vfe.viz.render import PANEL_LABEL, _Frames, _plotter
from gauge_vfe.viz.scene import MovieContext, SceneOptions, box_corners, round_ticks


@pytest.fixture(scope="module")
def emergence(tmp_path_factory):
    """emergence for 120 steps: meta-agents of scales 2 and 3 (a legend of several lines), holonomy on the plane."""
    d = tmp_path_factory.mktemp("layout")
    return run_scenario(load_scenario(shipped_scenarios()["emergence"], ["dynamics.steps=120"]), d / "e.h5").path


def _display(coordinate, ren):
    return np.array(coordinate.GetComputedDisplayValue(ren), dtype=float)


def boxes(pl, ctx) -> dict[str, tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) in window pixels of every text, every colour bar (its frame, widened to its title's
    estimated width: VTK gives no box for a bar's title) and the 3D scene's projected bounding box."""
    out = {}
    for k, ren in enumerate(pl.renderers):
        props = ren.GetViewProps()
        for i in range(props.GetNumberOfItems()):
            a = props.GetItemAsObject(i)
            if not a.GetVisibility():
                continue
            if a.IsA("vtkTextActor"):
                bb = [0.0] * 4
                a.GetBoundingBox(ren, bb)  # relative to the actor's anchor
                x, y = _display(a.GetPositionCoordinate(), ren)
                out[f"text {k} {a.GetInput().splitlines()[0].strip()!r}"] = (x + bb[0], y + bb[2], x + bb[1], y + bb[3])
            elif a.IsA("vtkScalarBarActor"):
                (x0, y0), (x1, y1) = _display(a.GetPositionCoordinate(), ren), _display(a.GetPosition2Coordinate(), ren)
                size = a.GetTitleTextProperty().GetFontSize()
                half = max(len(line) for line in a.GetTitle().splitlines()) * size * 0.6 / 2  # ~0.6 em a character
                mid = (x0 + x1) / 2
                out[f"bar {k} {a.GetTitle().splitlines()[0]!r}"] = (min(x0, mid - half), y0, max(x1, mid + half), y1)
    ren = pl.renderers[0]
    pts = []
    for c in box_corners(ctx.bounds):
        ren.SetWorldPoint(*c, 1.0)
        ren.WorldToDisplay()
        pts.append(ren.GetDisplayPoint()[:2])
    pts = np.array(pts)
    out["scene"] = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    return out


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("size,panel_2d", [((1280, 720), False), ((1280, 720), True), ((960, 540), False),
                                           ((1920, 1080), True), ((640, 360), True)],
                         ids=["frame", "panel-2d", "sheet-tile", "hd-panel", "small-panel"])
def test_no_text_overlaps_another_or_leaves_the_image(emergence, size, panel_2d):
    with agents.load(emergence) as traj:
        options = SceneOptions(panel_2d=panel_2d)
        n = len(traj.frame_steps)
        ctx = MovieContext(traj, list(range(n)), options)
        pl = _plotter(size, options)
        try:
            _Frames(pl, ctx, size).draw(n - 1)
            pl.render()
            found = boxes(pl, ctx)
        finally:
            pl.close()
    w, h = size
    names = set(found)
    assert any(k.startswith("bar 0 'holonomy") for k in names) and any(k.startswith("bar 0 'norm") for k in names)
    assert any("'emergence" in k for k in names) and any("'id " in k for k in names)
    if panel_2d:
        assert f"text 1 {PANEL_LABEL.splitlines()[0]!r}" in names  # the 2D panel is labelled
    margin = 0.01 * min(w, h)
    for name, (x0, y0, x1, y1) in found.items():
        assert x0 >= -0.5 and y0 >= -0.5 and x1 <= w + 0.5 and y1 <= h + 0.5, f"{name} leaves the image {size}"
    x0, y0, x1, y1 = found["scene"]
    assert x0 >= margin and y0 >= margin and x1 <= w - margin and y1 <= h - margin  # no clipped corner
    for (a, ra), (b, rb) in itertools.combinations(found.items(), 2):
        assert not _overlap(ra, rb), f"{a} {np.round(ra)} overlaps {b} {np.round(rb)} at {size}"


def test_colour_bar_ticks_are_round_numbers():
    assert list(round_ticks(0.0138, 2.11)) == [0.5, 1.0, 1.5, 2.0]
    assert list(round_ticks(0.0, 0.0123)) == [0.0, 0.0025, 0.005, 0.0075, 0.01]
    assert list(round_ticks(-3.0, 3.0)) == [-3.0, -1.5, 0.0, 1.5, 3.0] or len(round_ticks(-3.0, 3.0)) >= 3
    for lo, hi in ((0.0109, 2.57), (1e-5, 3e-4), (100.0, 4157.0)):
        ticks = round_ticks(lo, hi)
        assert len(ticks) >= 2 and lo <= ticks.min() and ticks.max() <= hi
        steps = np.diff(ticks)
        mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
        assert np.allclose(steps, steps[0]) and min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-9
