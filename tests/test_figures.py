"""Plots for a manuscript (issue 24, item 2): `vfe plot --format png|pdf|svg --dpi N --width single|double`, one
style shared by every plot, whole-number step ticks, log axes where values span decades, boolean sweep axes in
words."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gauge_vfe import agents
from gauge_vfe.agents.cli import main
from gauge_vfe.agents.io.sweep_store import write_summary
from gauge_vfe.viz import plots, sweep_plots
from gauge_vfe.viz.figure import STYLE, WIDTHS

from factories import tiny_yaml

PLOT_NAMES = ("energy", "holonomy", "meta_agents", "hierarchy", "attention", "beliefs")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    (d / "s.yaml").write_text(tiny_yaml())
    r = CliRunner().invoke(main, ["run", str(d / "s.yaml"), "-o", str(d / "run.h5"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "run.h5"


def plot(*args) -> list[Path]:
    r = CliRunner().invoke(main, ["plot", *map(str, args)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return [Path(line[len("wrote "):]) for line in r.output.splitlines() if line.startswith("wrote ")]


def test_pdf_plots_are_vector_files_a_journal_column_wide(tiny, tmp_path):
    paths = plot(tiny, "-o", tmp_path / "pdf", "--format", "pdf", "--width", "single")
    assert sorted(p.name for p in paths) == sorted(f"{n}.pdf" for n in PLOT_NAMES)
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), p
        box = re.search(rb"/MediaBox \[ *0 0 ([\d.]+) ([\d.]+) *\]", data)
        assert box and float(box.group(1)) == pytest.approx(WIDTHS["single"] * 72, abs=0.5), p  # 3.35 in
    energy = (tmp_path / "pdf" / "energy.pdf").read_bytes()
    assert b"/Subtype /Image" not in energy  # curves and text as vector paths, no embedded bitmap
    assert b"/FontFile2" in energy  # TrueType (pdf.fonttype 42): text a journal can edit


def test_svg_plots_are_vector_files_with_text_as_text(tiny, tmp_path):
    paths = plot(tiny, "-o", tmp_path / "svg", "--format", "svg", "--width", "double")
    assert sorted(p.name for p in paths) == sorted(f"{n}.svg" for n in PLOT_NAMES)
    for p in paths:
        root = ET.parse(p).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg", p
        assert float(root.get("width").removesuffix("pt")) == pytest.approx(WIDTHS["double"] * 72, abs=0.5)
    energy = (tmp_path / "svg" / "energy.svg").read_text()
    assert "<path" in energy and "<image" not in energy
    assert ">step</text>" in energy  # svg.fonttype none: the axis label is searchable text, not glyph outlines


@pytest.mark.parametrize("dpi,width", [(100, "single"), (300, "double")])
def test_png_honours_the_dpi_and_the_width(tiny, tmp_path, dpi, width):
    paths = plot(tiny, "-o", tmp_path / "png", "--format", "png", "--dpi", dpi, "--width", width)
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG"
            assert im.size[0] == round(WIDTHS[width] * dpi), (p, im.size)
            assert im.info["dpi"][0] == pytest.approx(dpi, abs=0.5)


def test_every_plot_shares_the_style_and_steps_are_whole_numbers(tiny):
    with agents.load(tiny) as traj:
        figs = [fn(traj) for _, fn in plots.PLOTS]
        energy = plots.plot_energy(traj)
    for fig in figs:
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>" or not ax.get_xlabel():
                continue
            assert ax.xaxis.label.get_fontsize() == STYLE["axes.labelsize"], (fig, ax.get_xlabel())
    ax = energy.axes[0]
    assert not ax.spines["top"].get_visible() and ax.get_xlabel() == "step"
    ticks = ax.get_xticks()
    assert np.allclose(ticks, np.round(ticks))  # no step 2.5


def _sweep(tmp_path, kappas=(0.1, 1.0, 10.0), switch=(True, False)):
    columns = ["member", "status", "param:energy.kappa", "param:dynamics.line_search.enabled", "meta_agents",
               "uphill_steps"]
    rows = [{"member": f"m{k:04d}", "status": "completed", "param:energy.kappa": kappa,
             "param:dynamics.line_search.enabled": on, "meta_agents": 1 + int(on), "uphill_steps": 0}
            for k, (kappa, on) in enumerate((a, b) for a in kappas for b in switch)]
    write_summary(tmp_path, columns, rows)
    return tmp_path


def test_kappa_is_on_a_log_axis_and_a_switch_is_labelled_in_words(tmp_path):
    d = _sweep(tmp_path)
    ax = sweep_plots.plot_phase(d, "meta_agents", x="energy.kappa").axes[0]
    assert ax.get_xscale() == "log"
    legend = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert legend == ["line search off", "line search on"]  # not "enabled = True"
    ax = sweep_plots.plot_phase(d, "meta_agents", x="dynamics.line_search.enabled").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["line search off", "line search on"]
    assert ax.get_xlabel() == "line search (dynamics.line_search.enabled)"  # not "enabled (...)"
    assert ax.get_xscale() == "linear"
    means = sorted(zip(*ax.lines[0].get_data()))
    assert means == [(0.0, 1.0), (1.0, 2.0)]  # off: 1 meta-agent, on: 2 (the booleans were read, not NaN)


def test_a_linear_parameter_stays_linear(tmp_path):
    assert not sweep_plots.spans_decades([1.0, 2.0, 4.0], "energy.alpha")
    assert sweep_plots.spans_decades([0.01, 0.1, 1.0], "energy.alpha")
    assert sweep_plots.spans_decades([0.5, 1.0], "energy.kappa")
    assert not sweep_plots.spans_decades([0.0, 1.0], "energy.kappa")  # zero has no logarithm
