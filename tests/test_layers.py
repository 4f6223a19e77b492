"""The layers hold: `lint-imports` keeps the contracts in pyproject.toml, and no two modules import each other.

kernels < model < analysis < io < setup < runner < viz < cli (docs/model.md#code-layout). A back-arrow or an import
circle fails here with the chain that makes it, so the picture the folders show stays true.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
# the one deliberate exception, named in the contract too: the entry point imports the CLI late (launch.py)
ALLOWED_CYCLES = {frozenset({"gauge_vfe.agents.launch", "gauge_vfe.agents.cli"})}


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def test_no_two_modules_import_each_other():
    graph = grimp.build_graph("gauge_vfe", cache_dir=None)
    cycles = set()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if frozenset({importer, imported}) in ALLOWED_CYCLES:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:  # importer -> imported -> ... -> importer
                cycles.add(" -> ".join((importer,) + tuple(back)))
    assert not cycles, "import circles:\n" + "\n".join(sorted(cycles))
