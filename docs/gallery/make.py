"""Make the documentation site's generated pages: a gallery page per shipped scenario and the executed tutorial.

    python docs/gallery/make.py                    # every scenario (runs each one: minutes) and the tutorial
    python docs/gallery/make.py quickstart image   # only these scenarios
    python docs/gallery/make.py --tutorial         # only the executed tutorial (docs/executed/tutorial.ipynb)
    python docs/gallery/make.py --pages            # only rewrite the pages' text (no runs; figures kept)

Each scenario runs with the `vfe` commands its page shows, word for word, in a temporary folder, and its figures
(the last frame in 3D, and the energy by term) are committed as small PNGs beside the page. The site build
(`mkdocs build --strict`, tests/test_docs_site.py) runs nothing: it only reads what this script wrote, so it
stays fast. The tutorial is executed here rather than at build time for the same reason, and written as a copy
with its outputs, because docs/tutorial.ipynb itself is committed without outputs (tests/test_tutorial.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gauge_vfe.agents.setup.shipped import scenario_summary, shipped_scenarios

GALLERY = Path(__file__).resolve().parent
DOCS = GALLERY.parent
ROOT = DOCS.parent
TUTORIAL = DOCS / "tutorial.ipynb"
EXECUTED_TUTORIAL = DOCS / "executed" / "tutorial.ipynb"

# Scenarios too long to run in full for a picture: the gallery runs them shorter, and their page says so (the
# command shown carries the --steps it ran with). timescales is 50 000 steps of noise, and its figure of merit
# is the sweep's separation plot (docs/results/timescales/), not one run.
SHORTER = {"timescales": 5000}
# a pointer beside a page's note, where a scenario's result is more than one run
SEE_ALSO = {"timescales": " Its result is the sweep's: "
                        "[Results: time-scale separation](../results/timescales/index.md).",
            "seed_timescales": " Its result is the sweeps': [Results: the seed's protocol, measured]"
                               "(../results/seed_protocol/index.md).",
            "seed_timescales_l7": " Its result is the sweeps': [Results: the seed's protocol, measured]"
                                  "(../results/seed_protocol/index.md)."}
SIZE = "960x540"  # the 3D figure: small PNGs, legible on a page
# what a page says about its run (from `vfe inspect --json`), in this order
FACTS = ("status", "steps", "total energy", "meta-agents in the last frame", "run time")


def scenario_names() -> list[str]:
    return sorted(shipped_scenarios())


def commands(name: str) -> list[list[str]]:
    """The shell commands that make the page's 3D figure, run from a working folder; the page prints them."""
    run = ["vfe", "run", name, "-o", f"runs/{name}.h5", "-q"]
    if name in SHORTER:
        run[3:3] = ["--steps", str(SHORTER[name])]
    return [run, ["vfe", "render", f"runs/{name}.h5", "-o", f"{name}.png", "--frames", "-1", "--size", SIZE, "-q"]]


def energy_snippet(name: str) -> str:
    """The Python that draws the page's energy figure (run as it stands, and printed on the page)."""
    return (f'import gauge_vfe as gv\n'
            f'gv.viz.plot_energy(gv.load("runs/{name}.h5")).savefig("{name}-energy.png")')


def page(name: str, facts: dict | None) -> str:
    """The gallery page of one scenario (markdown). `facts` are the figures measured when it ran, if known."""
    path = shipped_scenarios()[name]
    shell = "\n".join(" ".join(c) for c in commands(name))
    shorter = (f"\n!!! note \"A shorter run\"\n    The scenario runs {facts_steps(path)} steps; this page ran "
               f"{SHORTER[name]} (`--steps {SHORTER[name]}`) to keep the gallery cheap to remake."
               f"{SEE_ALSO.get(name, '')}\n"
               if name in SHORTER else
               f"\n!!! note \"Its result\"\n   {SEE_ALSO[name]}\n" if name in SEE_ALSO else "")
    measured = ""
    if facts:
        said = ", ".join(f"{k} {facts[k]}" for k in FACTS if k in facts)
        measured = f"\n**When this page was made:** {said}.\n"
    return f"""# {name}

{scenario_summary(path)}

![The last logged frame of {name} in 3D](figures/{name}.png)

*The last logged frame (`vfe render --frames -1`): each agent's support as a layer coloured by |mu|, meta-agents
above their members, the base grid coloured by the plaquette holonomy angle.*

![Energy by term over the run of {name}](figures/{name}-energy.png)

*The energy by term over every step (`gv.viz.plot_energy`; `vfe plot` draws it as `energy.png`).*
{shorter}{measured}
## The commands that make it

```bash
{shell}
```

```python
{energy_snippet(name)}
```

## The scenario file

`scenarios/{name}.yaml`, shipped with the package (`vfe run {name}` finds it from any folder; the
[scenario reference](../scenario-reference.md) lists every key):

```yaml
{path.read_text().rstrip()}
```
"""


def facts_steps(path: Path) -> int:
    """dynamics.steps of a shipped scenario, every default filled in."""
    from gauge_vfe.agents.setup.scenario import load_scenario

    return load_scenario(path).config.dynamics.steps


def index(names: list[str]) -> str:
    rows = "\n".join(f"| [![{n}](figures/{n}.png){{ width=\"240\" }}]({n}.md) | [{n}]({n}.md): "
                     f"{scenario_summary(shipped_scenarios()[n])} |" for n in names)
    return f"""# Gallery

One page per shipped scenario (`vfe scenarios` lists them): its last frame in 3D, its energy over the run, the
commands that make both, and the scenario file. The pages and figures are made by
`python docs/gallery/make.py`, which runs each scenario with exactly the commands its page shows.

| last frame | scenario |
| --- | --- |
{rows}
"""


def vfe() -> str:
    """The `vfe` of the Python running this script (its virtual environment), else the one on PATH."""
    beside = Path(sys.executable).with_name("vfe")
    return str(beside) if beside.exists() else (shutil.which("vfe") or sys.exit("make.py: no `vfe` command found"))


def make_figures(name: str) -> dict:
    """Run the scenario's commands in a temporary folder and keep its two figures; the facts for its page."""
    figures = GALLERY / "figures"
    figures.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        run, *rest = commands(name)
        t0 = time.perf_counter()
        print(f"[{name}] {' '.join(run)}", flush=True)
        subprocess.run([vfe(), *run[1:]], cwd=work, check=True)
        took = time.perf_counter() - t0
        for cmd in rest:
            print(f"[{name}] {' '.join(cmd)}", flush=True)
            subprocess.run([vfe(), *cmd[1:]], cwd=work, check=True)
        subprocess.run([sys.executable, "-c", energy_snippet(name)], cwd=work, check=True)
        for figure in (f"{name}.png", f"{name}-energy.png"):
            shrink_png(Path(work) / figure, figures / figure)
        out = subprocess.run([vfe(), "inspect", f"runs/{name}.h5", "--json"], cwd=work, check=True,
                             capture_output=True, text=True).stdout
    return facts_of(json.loads(out), took)


def shrink_png(source: Path, out: Path) -> None:
    """A smaller copy of a figure (they are committed): a plot of lines in 256 colours (a third of the bytes, the
    same picture); a 3D scene losslessly, since 256 colours would band its colour maps."""
    from PIL import Image

    with Image.open(source) as im:
        rgb = im.convert("RGB")
    small = rgb.quantize(colors=256, dither=Image.Dither.NONE) if out.stem.endswith("-energy") else rgb
    small.save(out, "PNG", optimize=True)


def facts_of(summary: dict, took: float) -> dict:
    """A few figures worth printing from `vfe inspect --json`: status, steps, total energy, meta-agents, time."""
    facts = {"status": summary["status"], "steps": summary["last_step"]}
    first, last = summary["energy"]["total"]
    if first is not None:
        facts["total energy"] = f"{first:.4g} at step 0, {last:.4g} at the end"
    meta = summary.get("meta_agents")
    if meta is not None:
        counts = ", ".join(f"{v} at {k}" for k, v in meta["last_frame_counts"].items())
        facts["meta-agents in the last frame"] = counts or "none"
    facts["run time"] = f"{took:.0f} s on 2 shared cores"
    return facts


def execute_tutorial() -> None:
    """Execute docs/tutorial.ipynb in a temporary folder and write the copy with its outputs the site shows."""
    import nbclient
    import nbformat

    nb = nbformat.read(TUTORIAL, as_version=4)
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": work}}).execute()
        print(f"docs/tutorial.ipynb executed in {time.perf_counter() - t0:.0f} s", flush=True)
    EXECUTED_TUTORIAL.parent.mkdir(exist_ok=True)
    nbformat.write(for_the_site(nb), EXECUTED_TUTORIAL)


def for_the_site(nb):
    """The executed notebook without its stderr streams: the progress bars `gv.run` and `gv.sweep` draw (and the
    warnings of a session) are live feedback, not results, and on a page they bury the outputs. Errors stay:
    test_docs_site.py refuses an executed copy that holds one."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    nb.metadata.pop("widgets", None)
    return nb


def facts_file() -> Path:
    return GALLERY / "facts.json"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to remake (default: all)")
    ap.add_argument("--tutorial", action="store_true", help="only execute the tutorial")
    ap.add_argument("--pages", action="store_true", help="only rewrite the pages (no runs)")
    args = ap.parse_args(argv)
    names = scenario_names()
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        sys.exit(f"make.py: no shipped scenario {', '.join(unknown)} (shipped: {', '.join(names)})")
    facts = json.loads(facts_file().read_text()) if facts_file().exists() else {}
    if not args.pages:
        if not args.names or args.tutorial:
            execute_tutorial()
        if not args.tutorial:
            for name in args.names or names:
                facts[name] = make_figures(name)
                facts_file().write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    for name in names:
        (GALLERY / f"{name}.md").write_text(page(name, facts.get(name)))
    (GALLERY / "index.md").write_text(index(names))


if __name__ == "__main__":
    main()
