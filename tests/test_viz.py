"""Rendering offscreen (VTK through EGL) and plots: real pixels, real frame counts, not blank."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gauge_vfe import agents
from gauge_vfe import viz
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.setup.shipped import shipped_scenarios
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario
from gauge_vfe.viz.scene import agent_color

TWO_CORNERS = textwrap.dedent("""\
    name: corners
    seed: 0
    grid: {height: 20, width: 30}
    agents:
      supports:
        - {shape: rectangle, origin: [1, 1], size: [8, 10]}      # top left
        - {shape: rectangle, origin: [11, 18], size: [8, 11]}    # bottom right
    dynamics: {steps: 6, lr_mu: 0.01, lr_sigma: 0.005, lr_phi: 0.01}
    output: {every: 2}
    """)


@pytest.fixture(scope="module")
def corners(tmp_path_factory):
    d = tmp_path_factory.mktemp("viz")
    (d / "c.yaml").write_text(TWO_CORNERS)
    return run_scenario(load_scenario(d / "c.yaml"), d / "corners.h5").path


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    d = tmp_path_factory.mktemp("quick")
    sc = load_scenario(shipped_scenarios()["emergence"], ["dynamics.steps=200"])
    return run_scenario(sc, d / "emergence.h5").path


def pixel_color_near(img, x_frac, y_frac, box=3):
    h, w = img.shape[:2]
    y, x = int(y_frac * h), int(x_frac * w)
    return img[y - box:y + box + 1, x - box:x + box + 1, :3].reshape(-1, 3).mean(axis=0) / 255.0


def test_png_shows_each_agent_in_its_colour_at_its_place(corners, tmp_path):
    out = viz.render(corners, tmp_path / "top.png", frames=-1, size=(600, 400), color_by="agent", view="top",
                     opacity=1.0, ellipsoids=False, triads=False, caption=False)
    img = np.asarray(Image.open(out))
    assert img.shape == (400, 600, 4) or img.shape == (400, 600, 3)
    # top view, orthographic, grid fills the height: site (y, x) -> pixel ((x+0.5)/W-ish, (y+0.5)/H)
    H, W = 20, 30
    half_w = 0.5 * (H + 1) * 600 / 400  # world units visible across the width
    to_px = lambda y, x: (0.5 + (x - (W - 1) / 2) / (2 * half_w), (y + 0.5 + 0.5) / (H + 1))  # noqa: E731
    c0 = pixel_color_near(img, *to_px(4.5, 5.5))
    c1 = pixel_color_near(img, *to_px(15, 23))
    np.testing.assert_allclose(c0, agent_color(0), atol=0.08)
    np.testing.assert_allclose(c1, agent_color(1), atol=0.08)
    # between them only the base plane: grey, since the frames are flat (no holonomy to colour it by)
    plane = pixel_color_near(img, *to_px(15, 5))
    assert np.allclose(plane, plane[0], atol=0.03) and plane[0] > 0.6


def test_mp4_has_the_expected_frames(corners, tmp_path):
    import imageio.v3 as iio

    out = viz.render(corners, tmp_path / "m.mp4", size=(320, 240))
    frames = np.stack(list(iio.imiter(out)))
    assert frames.shape[0] == 4 and frames.shape[1:3] == (240, 320)
    assert frames.std() > 5


def test_gif_and_frame_selection(corners, tmp_path):
    out = viz.render(corners, tmp_path / "m.gif", frames="1:4:2", size=(200, 150))
    with Image.open(out) as im:
        assert im.n_frames == 2


def test_emergence_scene_has_meta_agent_colours(quick, tmp_path):
    from gauge_vfe.viz.scene import meta_color

    with agents.load(quick) as traj:
        metas = traj.meta_agents(-1)
    assert any(m["scale"] == 2 for m in metas)
    out = viz.render(quick, tmp_path / "e.png", frames=-1, size=(800, 600), color_by="free_energy")
    img = np.asarray(Image.open(out))[..., :3].astype(float) / 255
    assert img.std() > 0.05  # not blank
    # a meta-agent's (translucent) colour dominates somewhere in the picture
    col = np.array(meta_color(metas[0]["id"]))
    blended = 0.35 * col + 0.65 * img  # what a translucent layer over anything looks like, roughly
    assert (np.abs(img - col).sum(axis=2) < 0.5).any() or (np.abs(img - blended).sum(axis=2) < 0.05).any()


def test_plots_are_not_blank(quick, tmp_path):
    r = CliRunner().invoke(main, ["plot", str(quick), "-o", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    for name in ("energy", "attention", "meta_agents", "holonomy", "beliefs"):
        img = np.asarray(Image.open(tmp_path / "plots" / f"{name}.png").convert("L"), dtype=float)
        assert img.std() > 10, name
        assert (img < 128).mean() > 0.01, name  # there is ink


def test_cli_render_and_view_without_display(corners, tmp_path, monkeypatch):
    r = CliRunner().invoke(main, ["render", str(corners), "-o", str(tmp_path / "f.png"), "--size", "320x240",
                                  "--color-by", "trace_sigma", "-q"])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "f.png").size == (320, 240)
    r = CliRunner().invoke(main, ["render", str(corners), "-o", str(tmp_path / "f.png"), "--color-by", "spin"])
    assert r.exit_code == 2 and "color_by must be one of" in r.output
    r = CliRunner().invoke(main, ["render", str(corners), "-o", str(tmp_path / "f.avi")])
    assert r.exit_code == 2
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    r = CliRunner().invoke(main, ["view", str(corners)])
    assert r.exit_code == 2 and "no display" in r.output
