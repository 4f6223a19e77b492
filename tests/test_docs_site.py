"""The documentation site (mkdocs.yml) builds in strict mode, and its generated parts are current.

The strict build fails on a broken link, a missing anchor, a page left out of the navigation or an API name
mkdocstrings cannot resolve. The gallery pages and the executed tutorial are made by docs/gallery/make.py and
committed (the build runs no simulation); the cheap tests below say when they have gone stale and how to remake
them.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import gauge_vfe as gv

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))


def _make():
    """docs/gallery/make.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gallery_make", DOCS / "gallery" / "make.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    """mkdocs.yml's own tags (!relative) read as plain values: the tests only need the nav."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _nav_pages(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out += _nav_pages(value) if isinstance(value, list) else [value]
    return out


def _text(page: Path) -> str:
    """A built page's text, tags dropped and white space folded: what a reader sees."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built with --strict into a temporary folder (run from there: caches land there too)."""
    work = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(work / "site")], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    problems = [ln for ln in done.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        problems or done.stderr.splitlines()[-20:])
    return work / "site"


@pytest.mark.slow  # about 10 s of CPU (mkdocstrings reads every public module); longer on a busy machine
def test_the_site_builds_in_strict_mode_with_every_part(site):
    home = (site / "index.html").read_text()
    assert "A five-minute tour" in home  # the README is the home page ...
    assert 'href="model/#linearised-spectrum"' in home  # ... with its docs/ links made relative to the site
    assert 'href="executed/tutorial/"' in home
    assert 'href="results/timescales/"' in home  # a folder link is its index page (docs/hooks.py)

    model = (site / "model" / "index.html").read_text()
    assert 'id="linearised-spectrum"' in model and "Reading:" in model
    assert 'href="../results/attention/"' in model

    cli = _text(site / "cli" / "index.html")
    from gauge_vfe.agents.cli import main

    for command in main.commands:  # every subcommand, with its options, from the click group
        assert f"vfe {command}" in cli, command
    assert "--contact-sheet" in cli and "--eps-belief" in cli
    assert "Sentinel" not in cli  # click 8.3's marker for "no default" (docs/cli.md says why the plain style)

    api = _text(site / "api" / "index.html")
    for name in ("gv.run", "gv.load", "gv.Trajectory", "gv.Simulation", "gv.spectrum", "gv.sweep", "gv.viz.render"):
        assert name in api, name
    # docstrings, not only names: the first words of Simulation's and of gv.run's docstrings are on the page
    for documented in (gv.Simulation, gv.run):
        assert " ".join(documented.__doc__.split()[:6]).replace("``", "") in api, documented
    assert not re.search(r":(class|func|meth|mod):", api), "a Sphinx role left as text (docs/griffe_roles.py)"

    tutorial = (site / "executed" / "tutorial" / "index.html").read_text()
    assert tutorial.count("data:image/png;base64") >= 5  # its figures, executed
    assert "Traceback" not in tutorial

    for name in SCENARIOS:
        page = (site / "gallery" / name / "index.html").read_text()
        assert f"vfe run {name}" in page, name
        for figure in (f"{name}.png", f"{name}-energy.png"):
            assert f'src="../figures/{figure}"' in page, figure
            assert (site / "gallery" / "figures" / figure).stat().st_size > 5000, figure


def test_every_shipped_scenario_has_a_current_gallery_page():
    make = _make()
    nav = _nav_pages(yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)["nav"])
    facts = json.loads((DOCS / "gallery" / "facts.json").read_text())
    stale = []
    for name in SCENARIOS:
        assert f"gallery/{name}.md" in nav, f"mkdocs.yml's nav lists no gallery page for scenarios/{name}.yaml"
        assert name in facts, f"scenarios/{name}.yaml has no gallery figures: run python docs/gallery/make.py {name}"
        for figure in (f"{name}.png", f"{name}-energy.png"):
            assert (DOCS / "gallery" / "figures" / figure).is_file(), figure
        if (DOCS / "gallery" / f"{name}.md").read_text() != make.page(name, facts[name]):
            stale.append(name)
    assert (DOCS / "gallery" / "index.md").read_text() == make.index(SCENARIOS), "docs/gallery/index.md is stale"
    assert not stale, (f"gallery pages {stale} differ from their scenario files: python docs/gallery/make.py --pages "
                       "(or NAME to rerun it)")


def test_the_gallery_commands_are_the_ones_a_user_types():
    make = _make()
    for name in SCENARIOS:
        run, render = make.commands(name)
        assert run[:3] == ["vfe", "run", name] and render[:2] == ["vfe", "render"]
        steps = run[run.index("--steps") + 1] if "--steps" in run else None
        assert steps == (str(make.SHORTER[name]) if name in make.SHORTER else None), name
    # a shortened run says so on its page
    for name in make.SHORTER:
        assert f"--steps {make.SHORTER[name]}" in (DOCS / "gallery" / f"{name}.md").read_text()


def test_the_executed_tutorial_is_the_current_notebook_with_its_outputs():
    source = nbformat.read(DOCS / "tutorial.ipynb", as_version=4)
    executed = nbformat.read(DOCS / "executed" / "tutorial.ipynb", as_version=4)
    assert [(c.cell_type, c.source) for c in executed.cells] == [(c.cell_type, c.source) for c in source.cells], \
        "docs/executed/tutorial.ipynb is stale: python docs/gallery/make.py --tutorial"
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 5  # what test_tutorial.py counts


def test_the_api_page_covers_the_public_api():
    api = (DOCS / "api.md").read_text()
    documented = set(re.findall(r'heading: "(gv\.[\w.]+)"', api))
    public = {f"gv.{n}" for n in gv.__all__ if n != "__version__"} | {f"gv.viz.{n}" for n in gv.viz.__all__}
    assert public <= documented, f"docs/api.md lacks {sorted(public - documented)}"


# HTML tags the pages use on purpose; any other <word> outside code is text a browser swallows ("runs/<name>.h5"
# showed as "runs/.h5")
_HTML_TAGS = {"a", "br", "sub", "sup", "details", "summary", "img", "span", "div", "p", "b", "i", "em", "strong",
              "code", "kbd", "table", "tr", "td", "th"}


@pytest.mark.parametrize("page", ["README.md", "docs/model.md", "docs/scenario-reference.md", "docs/cli.md",
                                  "docs/results/timescales/index.md"])
def test_no_text_in_angle_brackets_outside_code(page):
    text = re.sub(r"```.*?```", "", (ROOT / page).read_text(), flags=re.S)  # fenced blocks
    text = re.sub(r"^(    |\t).*$", "", text, flags=re.M)  # indented blocks (and continuation lines: not checked)
    text = re.sub(r"(`+).+?\1", "", text, flags=re.S)  # code spans
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    swallowed = [m.group(0) for m in re.finditer(r"</?([A-Za-z][\w-]*)[^>\n]*>", text)
                 if m.group(1).lower() not in _HTML_TAGS]
    assert not swallowed, f"{page}: {swallowed} would vanish in HTML: put them in backticks"
