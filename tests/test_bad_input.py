"""Bad input gets a clear error, and nothing is lost.

Every malformed input below goes through the command line (``vfe run`` and ``vfe validate`` where the input
applies to both) in-process, and must give: exit code 2 from ``sys.exit`` (never another exception), exactly
one line on stderr naming the file and line (or the ``--set``/option) and the key, no traceback, and an
untouched folder: the existing ``out.h5`` keeps its bytes and mtime and no file appears.

Errors caught before the build need no numba kernel; the few build-time ones use a tiny grid. Only the
session fixture that writes an earlier run (for ``agents.init.from``) and the initial-energy case evaluate
the energy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from gauge_vfe.agents.cli import main

S = "grid: {height: 8, width: 8}\nagents: {count: 2, support: {shape: disk, radius: 2}}\n"  # a valid base
OBS = "grid: {height: 8, width: 8}\nobservations:\n  kind: file\n  path: obs.npy\n"
MASK = "grid: {height: 8, width: 8}\nagents:\n  count: 1\n  support: {shape: mask, path: mask.npy}\n"
FROM = ("grid: {height: 6, width: 6}\nagents:\n  supports: [{radius: 2, center: [2, 2]}, {radius: 2, center: [3, 3]}]"
        "\n  init:\n    from: {path: prev.h5, frame: 0}\n")
BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(8))


def _npy(arr):
    def make(path: Path):
        np.save(path, arr)
    return make


def _text(content: str | bytes):
    def make(path: Path):
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return make


def _plain_h5(path: Path):
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)


def _folder(path: Path):
    path.mkdir()


def _truncated_npy(path: Path):
    np.save(path, np.ones((8, 8)))
    path.write_bytes(path.read_bytes()[:100])


def _object_npy(path: Path):
    np.save(path, np.array([{"a": 1}] * 64, dtype=object).reshape(8, 8), allow_pickle=True)


# (id, scenario text or bytes, extra arguments, commands, expected start of the line, fragment, files)
# In the expected start, {s} is the scenario's path and {d} the folder.
C = []


def case(id, text, prefix, fragment="", args=(), commands=("run", "validate"), files=None):
    C.append(pytest.param(text, list(args), commands, prefix, fragment, files or {}, id=id))


# --- the file itself: encoding, YAML, structure ------------------------------------------------------------------
case("non-utf8", b"name: x\n# caf\xe9\n", "{s}: not UTF-8 text", "(byte 0xe9 at offset 13)")
case("utf16", "name: x\n".encode("utf-16"), "{s}: not UTF-8 text", "byte 0xff at offset 0")
case("empty", "", "{s}:1: the scenario is empty")
case("comments-only", "# nothing\n# here\n", "{s}:1: the scenario is empty")
case("top-level-list", "- a\n- b\n", "{s}:1: a scenario must be a mapping")
case("top-level-scalar", "hello\n", "{s}:1: a scenario must be a mapping")
case("alias-bomb", BOMB, "{s}:", "aliases expand the document by more than 10000 nodes")
case("recursive-alias", "agents: &a\n  supports: [*a]\n", "{s}:1: agents.supports.0:", "recursive")
case("tab-indent", "grid:\n\theight: 8\n", "{s}:2: not valid YAML", "found character '\\t'")
case("duplicate-key", "grid: {height: 8}\ngrid: {width: 8}\n", "{s}:2: grid: duplicate key")
case("duplicate-nested-key", "grid:\n  height: 8\n  height: 9\n", "{s}:3: grid.height: duplicate key")
case("unclosed-bracket", "grid: [8, 8\n", "{s}:2: not valid YAML")
case("nul-character", "name: a\x00b\n", "{s}:1: not valid YAML", "character U+0000 is not allowed")
case("two-documents", "name: a\n---\nname: b\n", "{s}:2: not valid YAML", "another document")
case("python-tag", "name: !!python/object:os.system x\n", "{s}:1: not valid YAML", "constructor")
case("deep-nesting", "name: " + "[" * 80 + "]" * 80 + "\n", "{s}:1: name.0.0.0.0.0.0.0.(...):",
     "nested more than 64 levels")

# --- keys and types ------------------------------------------------------------------------------------------------
case("unknown-top-key", "grdi: {height: 8}\n", "{s}:1: grdi: no such key; did you mean 'grid'?")
case("unknown-grid-key", "grid:\n  height: 8\n  widht: 8\n", "{s}:3: grid.widht: no such key; did you mean 'width'?")
case("unknown-support-key", "agents:\n  support: {shape: disk, radus: 3}\n", "{s}:2: agents.support.radus: no such key; did you mean 'radius'?")
case("unknown-init-key", "agents:\n  init:\n    mu: {kindd: random}\n", "{s}:3: agents.init.mu.kindd: no such key; did you mean 'kind'?")
case("unknown-meta-key", "analysis:\n  meta_agents:\n    eps: 0.1\n", "{s}:3: analysis.meta_agents.eps: no such key")
case("unknown-line-search-key", "dynamics:\n  line_search: {on: true}\n", "{s}:2: dynamics.line_search.on")
case("height-not-int", "grid:\n  height: eight\n", "{s}:2: grid.height: Input should be a valid integer")
case("spins-not-list", "fiber:\n  spins: 1\n", "{s}:2: fiber.spins: Input should be a valid list")
case("supports-not-list", "agents:\n  supports: {radius: 2}\n", "{s}:2: agents.supports: Input should be a valid list")
case("weight-not-number", "energy:\n  lambda_curv: lots\n", "{s}:2: energy.lambda_curv: Input should be a valid number")
case("mu-value-string", "agents:\n  init:\n    mu: {value: abc}\n", "{s}:3: agents.init.mu.value:",
     "'abc' is not a number")

# --- non-finite numbers ----------------------------------------------------------------------------------------
case("inf", "energy:\n  kappa: .inf\n", "{s}:2: energy.kappa: Input should be a finite number")
case("nan", "dynamics:\n  lr_phi: .nan\n", "{s}:2: dynamics.lr_phi: Input should be a finite number")
case("overflow-1e400", "dynamics:\n  lr_mu: 1e400\n", "{s}:2: dynamics.lr_mu: Input should be a finite number")
case("inf-in-vector", "agents:\n  init:\n    mu: {value: [.inf, 0, 0]}\n", "{s}:3: agents.init.mu.value:",
     "inf (entry 0) is not a finite number")
case("nan-in-centre", "agents:\n  support: {center: [.nan, 3]}\n", "{s}:2: agents.support.center.0:", "finite")
case("inf-in-matrix", "priors:\n  sigma:\n    value: [[1, 0, 0], [0, .inf, 0], [0, 0, 1]]\n",
     "{s}:3: priors.sigma.value:", "entry [1][1]")
case("inf-in-C", "observations:\n  kind: random\n  C: [[1, 0, -.inf]]\n", "{s}:3: observations.C.0.2:", "finite")
case("inf-eps-prior", "analysis:\n  meta_agents: {eps_prior: .inf}\n", "{s}:2: analysis.meta_agents.eps_prior:",
     "finite")

# --- out-of-range values ---------------------------------------------------------------------------------------
case("kappa-zero", "energy:\n  kappa: 0\n", "{s}:2: energy.kappa: Input should be greater than 0")
case("seed-negative", "seed: -4\n", "{s}:1: seed: Input should be greater than or equal to 0")
case("seed-too-large", f"seed: {2**64}\n", "{s}:1: seed: Input should be less than or equal to")
case("every-zero", "output:\n  every: 0\n", "{s}:2: output.every:")
case("height-zero", "grid: {height: 0}\n", "{s}:1: grid.height: Input should be greater than or equal to 1")
case("spin-too-high", "fiber:\n  spins: [1, 11]\n", "{s}:2: fiber.spins.1: Input should be less than or equal to 10")
case("compression-level", "output:\n  compression_level: 10\n", "{s}:2: output.compression_level:")
case("c1-above-1", "dynamics:\n  line_search: {c1: 1.5}\n", "{s}:2: dynamics.line_search.c1:")
case("max-scale-1", "analysis:\n  meta_agents: {max_scale: 1}\n", "{s}:2: analysis.meta_agents.max_scale:")
case("huge-grid", "grid: {height: 100000, width: 100000}\n", "{s}:1: grid:", "more sites than a run can hold")
case("count-zero", "agents:\n  count: 0\n", "{s}:2: agents.count:")
case("steps-too-many", "dynamics: {steps: 10000000000000}\n", "{s}:1: dynamics.steps:")
case("negative-temperature", "dynamics:\n  temperature: -0.5\n", "{s}:2: dynamics.temperature:",
     "must be a finite number >= 0")
case("negative-field-temperature", "dynamics:\n  temperature: {mu: 0.1, phi: -1}\n",
     "{s}:2: dynamics.temperature.phi:", "greater than or equal to 0")
case("temperature-with-line-search", "dynamics:\n  temperature: 0.1\n  line_search: {enabled: true}\n",
     "{s}:2: dynamics.temperature:", "cannot be combined with dynamics.line_search.enabled")

# --- supports ----------------------------------------------------------------------------------------------------
case("shape-unknown", "agents:\n  support:\n    shape: hexagon\n", "{s}:2: agents.support:", "hexagon")
case("radius-too-large", "agents:\n  support: {radius: 40}\n", "{s}:2: agents.support.radius:", "larger than the grid")
case("centre-outside", "agents:\n  support: {center: [50, 3]}\n", "{s}:2: agents.support.center:", "outside the grid")
case("rectangle-too-large", "agents:\n  support: {shape: rectangle, size: [40, 4]}\n", "{s}:2: agents.support.size:")
case("rectangle-off-grid", "agents:\n  support: {shape: rectangle, origin: [100, 0]}\n",
     "{s}:2: agents.support.origin:",
     "does not touch the grid")
case("ellipse-one-radius", "agents:\n  support: {shape: ellipse, radii: [3]}\n", "{s}:2: agents.support.radii")
case("blob-roughness-1", "agents:\n  support: {shape: blob, roughness: 1.0}\n", "{s}:2: agents.support.roughness:")
case("count-vs-list", "agents:\n  count: 3\n  supports:\n    - {shape: whole}\n", "{s}:1: agents:",
     "count is 3 but 1 supports")
case("empty-support-build", "grid: {height: 8, width: 8}\nagents:\n  supports:\n    - {radius: 2}\n"
     "    - {radius: 0.2, center: [3.5, 3.5]}\n", "{s}:5: agents.supports.1:", "empty")

# --- matrices --------------------------------------------------------------------------------------------------
case("sigma-not-spd", "agents:\n  init:\n    sigma: {value: [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}\n",
     "{s}:3: agents.init.sigma.value: matrix is not positive definite")
case("sigma-not-symmetric", "agents:\n  init:\n    sigma: {value: [[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]}\n",
     "{s}:3: agents.init.sigma.value: matrix is not symmetric")
case("sigma-wrong-size", "priors:\n  sigma: {value: [[1, 0], [0, 1]]}\n",
     "{s}:2: priors.sigma.value: needs a 3x3 matrix")
case("sigma-ragged", "priors:\n  sigma: {value: [[1, 0, 0], [0, 1], [0, 0, 1]]}\n", "{s}:2: priors.sigma.value:",
     "square matrix")
case("diagonal-negative", "priors:\n  sigma: {value: [1, -1, 1]}\n", "{s}:2: priors.sigma.value:", "> 0")
case("noise-wrong-size", "observations:\n  kind: random\n  noise: [[1, 0], [0, 1]]\n", "{s}:3: observations.noise:",
     "3x3")
case("C-row-length", "observations:\n  kind: random\n  C: [[1, 0]]\n", "{s}:3: observations.C:", "K = 3")
case("C-vs-dim", "observations:\n  kind: random\n  dim: 2\n  C: [[1, 0, 0]]\n", "{s}:4: observations.C:", "dim is 2")

# --- observation files and masks -----------------------------------------------------------------------------
case("obs-missing", OBS, "{s}:4: observations.path: file not found: obs.npy")
case("obs-wrong-shape", OBS, "{s}:4: observations.path:", "has shape (5, 5)", files={"obs.npy": _npy(np.ones((5, 5)))})
case("obs-nan", OBS, "{s}:4: observations.path:", "NaN",
     files={"obs.npy": _npy(np.full((8, 8), np.nan))})
case("obs-not-an-image", OBS.replace("obs.npy", "obs.png"), "{s}:4: observations.path:", "not a readable image",
     files={"obs.png": _text("this is not a picture")})
case("obs-unsupported-type", OBS.replace("obs.npy", "obs.txt"), "{s}:4: observations.path:", "unsupported file type",
     files={"obs.txt": _text("1 2 3")})
case("obs-dim-vs-C", OBS + "  C: [[1, 0, 0]]\n", "{s}:5: observations.C:", "2-dimensional",
     files={"obs.npy": _npy(np.ones((8, 8, 2)))})
case("obs-noise-vs-file", OBS + "  noise: [1, 1, 1]\n", "{s}:5: observations.noise:", "2-dimensional",
     files={"obs.npy": _npy(np.ones((8, 8, 2)))})
case("obs-path-too-long", "grid: {height: 8, width: 8}\nobservations: {kind: file, path: " + "o" * 5000 + ".npy}\n",
     "{s}:2: observations.path: cannot use this path", "too long")
case("mask-missing", MASK, "{s}:4: agents.support.path: file not found: mask.npy")
case("mask-wrong-shape", MASK, "{s}:4: agents.support.path:", "(3, 8)", files={"mask.npy": _npy(np.ones((3, 8)))})
case("mask-out-of-range", MASK, "{s}:4: agents.support.path:", "[0, 1]", files={"mask.npy": _npy(np.full((8, 8), 2.0))})
case("mask-empty", MASK, "{s}:4: agents.support.path:", "the mask is empty",
     files={"mask.npy": _npy(np.zeros((8, 8)))})
case("mask-not-an-image", MASK.replace("mask.npy", "mask.png"), "{s}:4: agents.support.path:", "not a readable image",
     files={"mask.png": _text(b"\x89PNG\r\n\x1a\n garbage")})
case("mask-is-a-folder", MASK, "{s}:4: agents.support.path:", "is a folder", files={"mask.npy": _folder})
case("mask-object-array", MASK, "{s}:4: agents.support.path:", "not a readable .npy", files={"mask.npy": _object_npy})
case("mask-truncated", MASK, "{s}:4: agents.support.path:", "", files={"mask.npy": _truncated_npy})
case("mask-listed-bad", "grid: {height: 8, width: 8}\nagents:\n  supports:\n    - {radius: 2}\n"
     "    - {shape: mask, path: m.npy}\n", "{s}:5: agents.supports.1.path:", "has shape (8,)",
     files={"m.npy": _npy(np.ones(8))})

# --- an earlier run to start from ------------------------------------------------------------------------------
case("from-frame-past-end", FROM.replace("frame: 0", "frame: 10"), "{s}:5: agents.init.from.frame:",
     "frame 10 is out of range: prev.h5 holds 3 logged frames", files={"prev.h5": "PREV"})
case("from-frame-before-start", FROM.replace("frame: 0", "frame: -5"), "{s}:5: agents.init.from.frame:",
     "out of range", files={"prev.h5": "PREV"})
case("from-not-hdf5", FROM, "{s}:5: agents.init.from.path:", "not an HDF5", files={"prev.h5": _text("just text")})
case("from-hdf5-not-a-run", FROM, "{s}:5: agents.init.from.path:", "not a readable trajectory",
     files={"prev.h5": _plain_h5})
case("from-other-grid", FROM.replace("height: 6, width: 6", "height: 7, width: 7"), "{s}:5: agents.init.from.path:",
     "6x6", files={"prev.h5": "PREV"})
case("from-other-fiber", FROM + "fiber: {spins: [2]}\n", "{s}:5: agents.init.from.path:", "K = 3",
     files={"prev.h5": "PREV"})
case("from-missing", FROM, "{s}:5: agents.init.from.path: file not found: prev.h5")

def _loop(wp):
    return LOOP.replace("WP", wp)


# --- holonomy loops ------------------------------------------------------------------------------------------------
LOOP = S + "analysis:\n  holonomy:\n    loops:\n      - name: a\n        waypoints: WP\n"
case("loop-off-grid", _loop("[[0, 1, 1], [0, 20, 1]]"), "{s}:7: analysis.holonomy.loops.0.waypoints.1:",
     "not an agent")
case("loop-agent-missing", _loop("[[0, 1, 1], [5, 1, 1]]"), "{s}:7: analysis.holonomy.loops.0.waypoints.1:")
case("loop-too-short", _loop("[[0, 1, 1]]"), "{s}:7: analysis.holonomy.loops.0.waypoints:", "at least 2")
case("loop-outside-support", S.replace("support: {shape: disk, radius: 2}", "supports: [{radius: 2, center: [2, 2]}, "
                                       "{radius: 2, center: [5, 5]}]")
     + "analysis:\n  holonomy:\n    loops:\n      - name: a\n        waypoints: [[0, 2, 2], [0, 7, 7]]\n",
     "{s}:7: analysis.holonomy.loops.0.waypoints:", "outside agent 0's support")
case("loop-switch-elsewhere", S.replace("support: {shape: disk, radius: 2}", "supports: [{radius: 2, center: [2, 2]}, "
                                        "{radius: 2, center: [3, 3]}]")
     + "analysis:\n  holonomy:\n    loops:\n      - name: a\n        waypoints: [[0, 2, 2], [1, 3, 3]]\n",
     "{s}:7: analysis.holonomy.loops.0.waypoints:", "may only switch at one site")
case("loop-name-twice", S + "analysis:\n  holonomy:\n    loops:\n      - {name: a, waypoints: [[0, 1, 1], [0, 1, 2]]}\n"
     "      - {name: a, waypoints: [[0, 1, 1], [0, 2, 1]]}\n", "{s}:7: analysis.holonomy.loops.1.name:", "used twice")

# --- sweep sections ----------------------------------------------------------------------------------------------
case("sweep-bad-range", "sweep:\n  params:\n    energy.kappa: 'a:b'\n", "{s}:3: sweep.params.energy.kappa:", "range")
case("sweep-empty-list", "sweep:\n  params:\n    energy.kappa: []\n", "{s}:3: sweep.params.energy.kappa:", "no values")
case("sweep-unknown-key", "sweep:\n  params:\n    energy.kapa: [1, 2]\n", "{s}:3: sweep.params.energy.kapa: ",
     "no such key")
case("sweep-value-out-of-range", "sweep:\n  params:\n    energy.kappa:\n      - 1\n      - -1\n",
     "{s}:5: sweep.params.energy.kappa.1:", "greater than 0")
case("sweep-value-inf", "sweep:\n  params:\n    dynamics.lr_mu: [.inf]\n", "{s}:3: sweep.params.dynamics.lr_mu",
     "finite")
case("sweep-zip-lengths", "sweep:\n  params:\n    energy.kappa: [1, 2]\n    seed: [1, 2, 3]\n  zip: true\n",
     "{s}:5: sweep.zip:", "same number of values")
case("sweep-not-a-mapping", "sweep: [1, 2]\n", "{s}:1: sweep:")
case("sweep-key-under-set-scalar",
     "dynamics: {temperature: {mu: 0.01}}\nsweep:\n  params:\n    dynamics.temperature.mu: [0.01, 0.02]\n",
     "{s}:4: sweep.params.dynamics.temperature.mu.0:", "dynamics.temperature is the value 0.0, not a mapping",
     args=["--set", "dynamics.temperature=0"])

# --- output section -----------------------------------------------------------------------------------------------
case("fields-without-mu-sigma-phi", "output:\n  fields: [beta]\n", "{s}:2: output.fields:",
     "must contain mu, sigma and phi")
case("fields-twice", "output:\n  fields: [mu, sigma, phi, phi]\n", "{s}:2: output.fields:", "twice")
case("dtype-float16", "output:\n  dtype: float16\n", "{s}:2: output.dtype:")
case("name-with-slash", "name: ../../elsewhere\n", "{s}:1: name:", "cannot contain")
case("output-path-nul", "output: {path: \"a\\0b.h5\"}\n", "{s}:1: output.path:", "NUL")

# --- --set -------------------------------------------------------------------------------------------------------
TWO = S.replace("count: 2, support: {shape: disk, radius: 2}", "supports: [{radius: 2}, {radius: 3}]")
case("set-index-past-list", TWO, "--set agents.supports.9.radius=3: agents.supports has 2 items",
     args=["--set", "agents.supports.9.radius=3"])
case("set-into-scalar", S, "--set grid.height.x=3: grid.height is the value 8, not a mapping",
     args=["--set", "grid.height.x=3"])
case("set-no-equals", S, "--set kappa: expected key.path=value", args=["--set", "kappa"])
case("set-bad-yaml", S, "--set energy.kappa=[1,: not valid YAML", args=["--set", "energy.kappa=[1,"])
case("set-bad-value", S, "--set energy.kappa=-1: energy.kappa: Input should be greater than 0",
     args=["--set", "energy.kappa=-1"])
case("set-unknown-key", S, "--set energy.temperature=2: energy.temperature: no such key",
     args=["--set", "energy.temperature=2"])
case("set-empty-key-part", S, "--set grid..height=3: empty key", args=["--set", "grid..height=3"])
case("set-list-needs-index", TWO, "--set agents.supports.x.radius=3: agents.supports is a list",
     args=["--set", "agents.supports.x.radius=3"])
case("set-inf", S, "--set energy.kappa=.inf: energy.kappa: Input should be a finite number",
     args=["--set", "energy.kappa=.inf"])

# --- --seed, --steps (run only) ----------------------------------------------------------------------------------
case("seed-option-negative", S, "--seed -1: seed: Input should be greater than or equal to 0", args=["--seed", "-1"],
     commands=("run",))
case("seed-option-huge", S, f"--seed {2**64}: seed:", args=["--seed", str(2**64)], commands=("run",))
case("steps-option-negative", S, "--steps -5: dynamics.steps:", args=["--steps", "-5"], commands=("run",))
case("steps-option-huge", S, "--steps 10000000000000: dynamics.steps:", args=["--steps", "10000000000000"],
     commands=("run",))

# --- memory --------------------------------------------------------------------------------------------------------
case("memory-100k-agents", "grid: {height: 32, width: 32}\nagents:\n  count: 100000\n", "{s}:2: agents:",
     "this machine has")
case("memory-limit-option", "grid: {height: 64, width: 64}\nagents:\n  count: 3000\n  support: {radius: 10}\n",
     "{s}:2: agents:", "--max-memory allows 1.0 GiB; mostly", args=["--max-memory", "1"])
case("memory-limit-below-interpreter", S, "{s}:1: (top level):",
     "--max-memory allows 0.001 GiB; mostly the interpreter",
     args=["--max-memory", "0.001"])
case("memory-limit-not-a-number", S, "--max-memory abc: expected a number of GiB", args=["--max-memory", "abc"])
case("memory-limit-negative", S, "--max-memory -3: expected a positive number", args=["--max-memory", "-3"])

# --- the output file (run only) ------------------------------------------------------------------------------------
RUN = ("run",)
case("output-under-a-file", S, "{d}/notes.txt/run.h5: {d}/notes.txt is a file, not a folder",
     args=["-o", "{d}/notes.txt/run.h5"], commands=RUN, files={"notes.txt": _text("notes")})
case("output-is-the-scenario", S, "{s}: is the scenario file itself", args=["-o", "{s}"], commands=RUN)
case("output-exists-not-h5", S, "{d}/notes.txt: exists and is not an .h5 run file", args=["-o", "{d}/notes.txt"],
     commands=RUN, files={"notes.txt": _text("notes")})
case("output-h5-not-hdf5", S, "{d}/fake.h5: exists but is not an HDF5 file", args=["-o", "{d}/fake.h5"],
     commands=RUN, files={"fake.h5": _text("not hdf5")})
case("output-new-not-h5", S, "{d}/run.txt: a trajectory file must end in .h5", args=["-o", "{d}/run.txt"],
     commands=RUN)
case("resume-not-hdf5", S, "{d}/notes.txt: not an HDF5 file", args=["-o", "{d}/notes.txt", "--resume"],
     commands=RUN, files={"notes.txt": _text("notes")})
case("resume-missing", S, "{d}/none.h5: nothing to resume", args=["-o", "{d}/none.h5", "--resume"], commands=RUN)
case("output-name-too-long", S, "{d}/" + "r" * 5000 + ".h5: cannot be used as the output", "too long",
     args=["-o", "{d}/" + "r" * 5000 + ".h5"], commands=RUN)
case("output-folder-not-writable", S, "{d}/ro/run.h5: the folder {d}/ro is not writable", args=["-o", "{d}/ro/run.h5"],
     commands=RUN, files={"ro": _folder, "READONLY": "ro"})

# --- only `validate` evaluates the initial state ---------------------------------------------------------------
case("initial-energy-overflow", S + "priors:\n  mu: {value: 1e200}\n", "{s}:3: priors:", "non-finite energy",
     commands=("validate",))


# --- the harness -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A real 3-frame trajectory on a 6x6 grid with two fixed disks (the FROM scenario's supports)."""
    d = tmp_path_factory.mktemp("earlier")
    (d / "p.yaml").write_text(FROM.split("  init:")[0] + "dynamics: {steps: 2}\noutput: {every: 1}\n"
                              "analysis: {enabled: false}\n")
    r = CliRunner().invoke(main, ["run", str(d / "p.yaml"), "-o", str(d / "prev.h5"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return d / "prev.h5"


def _listing(d: Path) -> dict:
    return {str(p.relative_to(d)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(d.rglob("*"))}


CASES = [pytest.param(command, *p.values, id=f"{command}-{p.id}") for p in C for command in p.values[2]]


@pytest.mark.parametrize("command,text,args,commands,prefix,fragment,files", CASES)
def test_bad_input(tmp_path, request, monkeypatch, command, text, args, commands, prefix, fragment, files):
    d = tmp_path
    s = d / "s.yaml"
    if isinstance(text, bytes):
        s.write_bytes(text)
    else:
        s.write_text(text)
    with h5py.File(d / "out.h5", "w") as f:  # an earlier run's file at the output path: must survive
        f["x"] = np.arange(4.0)
    for name, make in files.items():
        if make == "PREV":
            shutil.copy(request.getfixturevalue("earlier_run"), d / name)
        elif name == "READONLY":
            ro = str(d / make)
            real_access = os.access
            monkeypatch.setattr("gauge_vfe.agents.setup.preflight.os.access",
                                lambda p, mode, *a, **k: False if str(p) == ro else real_access(p, mode, *a, **k))
        else:
            make(d / name)
    before = _listing(d)
    argv = [command, str(s)] + [a.format(s=s, d=d) for a in args]
    if command == "run" and "-o" not in args:
        argv += ["-o", str(d / "out.h5")]
    if command == "run":
        argv += ["-q"]
    try:
        r = CliRunner().invoke(main, argv, catch_exceptions=False)
    except Exception as exc:  # a traceback: the input was not handled
        pytest.fail(f"{argv}: raised {type(exc).__name__}: {exc}")
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    expected = "error: " + prefix.format(s=s, d=d)
    assert line.startswith(expected), f"\n{line}\n  does not start with\n{expected}"
    assert fragment in line, f"\n{line}\n  does not contain {fragment!r}"
    assert _listing(d) == before, "a file was created, renamed or changed"


def test_the_table_is_large_enough():
    assert len(C) >= 60


def test_preflight_output_path_unit(tmp_path):
    """check_output_path returns None for a writable new .h5 and for an existing run file."""
    from gauge_vfe.agents.setup.preflight import check_output_path

    s = tmp_path / "s.yaml"
    s.write_text("name: x\n")
    assert check_output_path(tmp_path / "new" / "run.h5", s, resume=False) is None
    with h5py.File(tmp_path / "old.h5", "w"):
        pass
    assert check_output_path(tmp_path / "old.h5", s, resume=False) is None
    assert check_output_path(tmp_path / "old.h5", s, resume=True) is None
    assert "scenario file itself" in check_output_path(s, s, resume=False)


def test_memory_estimate_is_arithmetic_only():
    """The estimate of an absurd run is instant and allocates nothing (100k agents: TiB of pair tables)."""
    import time

    from gauge_vfe.agents.setup.config import make_config
    from gauge_vfe.agents.setup.memory import estimate_memory, memory_problem

    t = time.perf_counter()
    est = estimate_memory(make_config({"agents": {"count": 100000}}))
    assert est.total > 2**40 and time.perf_counter() - t < 1.0
    assert memory_problem(make_config({}), None) is None
    key, msg = memory_problem(make_config({"agents": {"count": 3000}}), 0.6)
    assert key == "agents" and "needs" in msg and "--max-memory allows 0.6 GiB" in msg
    key, msg = memory_problem(make_config({"agents": {"count": 3000}}), None, available=2**30)
    assert "this machine has 1.0 GiB (use --max-memory GIB to override)" in msg


def test_shipped_scenarios_still_load():
    from gauge_vfe.agents.setup.scenario import load_scenario
    from gauge_vfe.agents.setup.shipped import shipped_scenarios

    for path in shipped_scenarios().values():
        load_scenario(path)




def _float_leaves(node, path=()):
    """Key paths of every float in the resolved configuration (scalars, and the items of lists)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _float_leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _float_leaves(v, path + (str(i),))
    elif isinstance(node, float):
        yield path


def test_every_float_of_the_schema_must_be_finite():
    """.inf and .nan are refused wherever the schema holds a float, inside lists and unions too."""
    import copy

    from gauge_vfe.agents.setup.config import ConfigError, make_config

    base = {"observations": {"kind": "random", "C": [[1.0, 0.0, 0.0]], "noise": [[1.0]]},
            "agents": {"supports": [{"shape": "ellipse", "center": [3.0, 3.0]}, {"shape": "gaussian"},
                                    {"shape": "blob"}],
                       "init": {"sigma": {"value": [1.0, 1.0, 1.0]}, "mu": {"value": [0.0, 0.0, 0.0]}}},
            "analysis": {"meta_agents": {"eps_prior": 0.1}}}
    resolved = make_config(base).to_dict()
    leaves = list(_float_leaves(resolved))
    assert len(leaves) > 30
    for path in leaves:
        for bad in (float("inf"), float("nan")):
            data = copy.deepcopy(resolved)
            node = data
            for part in path[:-1]:
                node = node[int(part)] if isinstance(node, list) else node[part]
            node[int(path[-1]) if isinstance(node, list) else path[-1]] = bad
            with pytest.raises(ConfigError) as err:
                make_config(data)
            key = ".".join(path)
            assert any(key.startswith(p) and ("finite" in m) for p, m in err.value.problems), (key, err.value.problems)
