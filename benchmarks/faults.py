"""Fault injection for gauge-vfe's trajectory files: does a run survive being killed, interrupted, raced, read,
starved of disk, and does `--resume` then give the bit-identical file an uninterrupted run gives?

Run from the repository root with the project's Python::

    python benchmarks/faults.py                       # every fault class, full trial counts (several minutes)
    python -m benchmarks.faults all                   # the same: one combined table of every class
    python benchmarks/faults.py --quick               # a handful of trials per class (CI smoke)
    python benchmarks/faults.py --only kill sigint --kills 10 --seed 3
    python benchmarks/faults.py --json faults.json    # also every trial's record as JSON
    git archive HEAD | tar -x -C /tmp/head && python benchmarks/faults.py --src /tmp/head   # measure a commit

It is a measurement, not a test: it prints one row per fault class, then the five counts of issue 26's "Must
show" over every class (:func:`must_show`: silent wrong values, live files destroyed, earlier outputs lost,
tracebacks, inputs modified by a failed command), and exits 0 whatever it finds (2 only for a
bad command line, or when the reference runs themselves fail). ``tests/test_faults.py`` asserts the targets on a
few quick trials with the functions below. Everything is black-box: the harness only runs the CLI (``python -m
gauge_vfe.agents.cli``, i.e. ``vfe``) in subprocesses and reads the files it writes (``gauge_vfe.load`` and
plain h5py, layout docs/model.md#file). Reading and comparing files is done in child processes of this script
(hidden ``--child`` flag), so a file corrupt enough to crash HDF5 cannot take the harness down.

Scenario: written to a temporary folder (:data:`SCENARIO`): a 16 x 16 open grid, 4 agents (disks of radius 6),
spin 1, smooth observations, 150 steps (``--steps``), ``output.every: 5``, analysis enabled (meta-agents and
holonomy over every logged frame, a large share of a run's wall time). One reference run is made per
invocation (after a warm-up run that fills numba's cache; the two must be bit-identical, which is checked and
reported). ``T_total``, the wall time of an uninterrupted run from process start to exit (start-up, steps,
end-of-run analysis), sets the kill times; so does ``T_analyze``, the wall time of `vfe analyze` on a copy of
the reference file. Each fault time is ``u * T``, ``u`` uniform in [0, 1) from ``random.Random`` seeded with
``--seed`` and the class name (a given seed gives the same ``u`` whatever ``--only`` selects). The machine may be
shared, so ``T`` follows its load: it starts as the median of 3 reference runs (1 with ``--quick``) and is then
the median of the last 5 uninterrupted runs seen (the fresh runs that replace a run killed before its file
existed, runs that ended before their signal; for T_analyze, every second `vfe analyze`). The report says
where each fault landed (before the file existed, in the steps, in the analysis, after the end).

Fault classes (``--only`` names)::

    kill       SIGKILL to the run's process group at a uniformly random time in [0, T_total] (``--kills``, 40)
    sigint     SIGINT (Ctrl-C: the run's process group) at a uniformly random time in [0, T_total] (``--sigints``, 20)
    concurrent 2 (``--procs``) `vfe run` started at once: (a) same -o, same seed; (b) different seeds, no -o, so
               the same default path runs/NAME.h5 (``--races`` trials of each, 5)
    reader     gauge_vfe.load(path) in another process, started with the run, opened as soon as the file can be
               opened and held until the run has ended, reading frame counts every 0.2 s (``--readers``, 3)
    diskfull   (root only) the run writes into a tmpfs of 25-90 % of the reference file's size; then the tmpfs is
               remounted 16x bigger and the run resumed (``--diskfull``, 3)
    analyze    SIGKILL to `vfe analyze` on a copy of the finished reference file at a uniformly random time in
               [0, T_analyze] (``--analyze-kills``, 10); then `vfe analyze` again
    outputs    commands that only add a file (``--outputs`` rounds, 3): `vfe export` aimed at another run's file
               and at its own input through a symlink (must be refused: exit 2, one line, that file untouched);
               SIGKILL to `vfe render` (mp4, gif, png) and `vfe plot`, and SIGINT to `vfe render` (mp4), at a uniformly
               random time in their run time, over an earlier output at the same path (it must survive
               byte-identical unless the command completed; SIGINT: exit 130 and one line). Counted in the notes:
               earlier outputs lost, refusals not clean, tracebacks.
    sweep      SIGKILL and SIGINT to `vfe sweep` (2 members, 2 workers; the process group: parent, cluster and
               runs) at a uniformly random time in an uninterrupted sweep's wall time, then `vfe sweep --resume`:
               exit 0, both members completed and bit-identical to the uninterrupted sweep's, no file beside
               them (no member renamed aside, no temporary, no lock file); SIGINT: exit 130, one line
               (``--sweeps`` rounds, 1)
    lock       a command aimed at a live run's file by another name (:data:`LOCK_CASES`: `--resume` through a
               symlink, a hard link, `..` and after deleting RUN.h5.lock; `vfe analyze` through a hard link;
               `vfe repair` through a symlink), while the run is stopped (SIGSTOP) in its step loop; then the
               run goes on (SIGCONT) and must end bit-identical to the reference (``--lock-rounds``, 1 of each)
    diskout    (root only) a full disk outside the run (:data:`DISKOUT_CASES`): `vfe export` (twice, and once with
               the room check off, so the write fails inside HDF5), `vfe analyze` on a copy in the tmpfs, `vfe
               plot`, `vfe render` (gif), each into a tmpfs filled to its last KiBs over an earlier output. Must
               be exit 1 and one 'no space left on device ... nothing was replaced' line, no segmentation fault, no
               traceback, no "wrote", the earlier output and the input byte-identical (``--diskout``, 1 round)
    damage     a copy of the reference file damaged (:data:`DAMAGE_CASES`: one flipped bit in an energy value, a
               logged frame's chunk, the checkpoint and the superblock, of a finished file and of a killed
               writer's (and a flipped root address re-signed, as gauge-vfe's readers once did); a foreign HDF5
               file, a look-alike with a malformed JSON attribute, datasets claiming huge shapes) fed to every
               command that reads or repairs a run file (:data:`DAMAGE_COMMANDS`). Each must refuse it (exit 2,
               or 1 from `vfe verify` for damage it located), one stderr line naming the file, no traceback, the
               file byte-identical. A ``silent wrong value``: a command that reads the damaged part
               (:data:`READS_DAMAGE`) exiting 0; another command exiting 0 read around the damage (e.g. `inspect`
               prints no frame) and is counted apart. Also two undamaged killed writers' files (killed in SWMR
               mode, as a run; and outside it, as `vfe analyze`: :func:`kill_writer`): every command must
               succeed, and the read-only ones (:data:`READ_ONLY`) leave every byte as it was.
    provenance `vfe run --resume` of a copy of the reference with a setting changed (:data:`PROVENANCE_CASES`:
               dynamics.lr_mu, output.dtype, output.fields gaining beta: refused, exit 2, one line naming the key,
               the file byte-identical; fewer and more steps: exit 0, recorded in the last segment, config_json
               still the first), of a run whose observation file was edited since (refused naming the file; with
               --allow-changed-inputs recorded), and of a file stripped of its history as an older version wrote
               it (a "before provenance" record first). Counted: unrecorded changes (exit 0 and no record, or
               config_json claiming the new setting), files changed by a refusal, tracebacks, segfaults.

Columns:

* ``readable``: after the fault, the file opens with ``gauge_vfe.load``; its raw ``/particles/agents/{mu,sigma,
  phi}/{value,step,time}`` all hold the same number of entries (no half-written frame); every stored value is
  finite; its stored analysis (if any) reads; and, when the CLI has a ``repair`` command, a copy of the file
  opens with plain ``h5py.File(p, "r")`` after ``vfe repair``. Counted over the trials that left a file.
  (Without ``repair``, files that open only in SWMR-read mode are counted in the details.)
* ``resumed/identical``: kill, sigint, diskfull: ``vfe run ... --resume`` (a fresh ``vfe run`` when the fault
  came before the file existed) exits 0 and the file is bit-identical to the reference. concurrent (a), reader:
  the file at the path is bit-identical to the reference. analyze: `vfe analyze` again exits 0 and the file is
  bit-identical to the reference (whose analysis the run stored).
* ``corrupt``: ``gauge_vfe.load`` fails, reading a dataset or the stored analysis fails, a stored value is not
  finite, or the file says ``completed`` while its frames are ragged. Checked after the fault and after the
  recovery (resume, re-analysis); a trial counts once.

Bit-identical means: the same set of groups and datasets (the whole HDF5 tree, checkpoint included); every
dataset with the same shape, dtype and values (``np.array_equal``, NaN equal to NaN, compound datasets field by
field); every attribute of every object equal, except those that legitimately differ between two runs of the
same scenario, which are skipped:

* ``/parameters`` ``started_at``, ``finished_at``, ``resumed_at`` (timestamps, attributes or, for
  ``finished_at``, a dataset) and any attribute whose name ends
  in ``_at`` (timestamps), ``_pid`` or ``_host``, or is ``pid``/``host``/``hostname`` (``writer_pid``,
  ``writer_host``: who wrote it);
* any attribute whose name contains ``history`` (a status history, which records the interruptions);
* the group ``/provenance`` (the run's history, docs/model.md#file-provenance: one record per invocation, so a
  killed and resumed run holds more records than one never stopped, by design); the ``provenance`` class checks
  it instead.

Chunking, compression and the file's byte layout are not compared (a resumed file's bytes differ anyway).
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("mu", "sigma", "phi")
SKIP_ATTRS = {"started_at", "finished_at", "resumed_at", "writer_pid", "writer_host", "pid", "host", "hostname"}
CLASSES = ("kill", "sigint", "concurrent", "reader", "diskfull", "analyze", "outputs", "sweep", "lock", "diskout",
           "damage", "provenance")
EXIT_INTERRUPTED = 130

SCENARIO = """\
# gauge-vfe fault-injection scenario (benchmarks/faults.py): small, but every part of a run is exercised.
name: {name}
seed: {seed}
grid: {{height: 16, width: 16, boundary: open}}
fiber: {{spins: [1]}}
agents:
  count: 4
  support: {{shape: disk, radius: 6}}
  init:
    mu: {{kind: random, per: agent, scale: 1.0}}
    sigma: {{kind: constant, value: 1.0}}
    phi: {{kind: random, per: agent, scale: 0.6}}
priors:
  mu: {{kind: constant, value: 0.0}}
  sigma: {{kind: constant, value: 2.0}}
observations: {{kind: smooth, shared: true, scale: 1.0, length: 4.0, noise: 4.0}}
energy: {{alpha: 0.2, gamma: 0.5, lambda_align: 2.0, kappa: 4.0, lambda_smooth: 0.05}}
dynamics: {{method: gradient, steps: {steps}, lr_mu: 0.04, lr_sigma: 0.01, lr_phi: 0.04}}
output: {{every: {every}}}
analysis: {{enabled: true}}
"""


# --- processes ------------------------------------------------------------------------------------------------------

SRC: Path | None = None  # --src: run another source tree of the package (a shim folder on PYTHONPATH)
_SHIM: Path | None = None


def use_source(src: str | Path) -> None:
    """Make every child import ``gauge_vfe`` from ``src`` (e.g. ``git archive HEAD`` unpacked).

    Through a symlink ``gauge_vfe -> src`` in a shim folder put first on PYTHONPATH. The shim's path is fixed
    per ``src`` (numba's on-disk cache is keyed by the modules' paths, so a new path would recompile everything);
    it is left in place for the next invocation.
    """
    global SRC, _SHIM
    import hashlib

    SRC = Path(src).resolve()
    if not (SRC / "agents" / "cli.py").exists():
        raise SystemExit(f"error: --src {src}: not a gauge-vfe source tree (no agents/cli.py)")
    _SHIM = Path(tempfile.gettempdir()) / f"vfe-faults-shim-{hashlib.sha1(str(SRC).encode()).hexdigest()[:10]}"
    _SHIM.mkdir(parents=True, exist_ok=True)
    link = _SHIM / "gauge_vfe"
    if not (link.is_symlink() and link.resolve() == SRC):
        tmp_link = _SHIM / f".gauge_vfe.{os.getpid()}"
        tmp_link.symlink_to(SRC, target_is_directory=True)
        os.replace(tmp_link, link)


if os.environ.get("VFE_FAULTS_SRC"):  # the tests' way to measure another source tree
    use_source(os.environ["VFE_FAULTS_SRC"])


def child_env() -> dict:
    env = dict(os.environ)
    if env.get("NUMBA_CACHE_DIR"):  # children run in other folders (unset: the package's per-user cache)
        env["NUMBA_CACHE_DIR"] = os.path.abspath(env["NUMBA_CACHE_DIR"])
    if _SHIM is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(_SHIM)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("VFE_DEBUG", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["VFE_PROGRESS"] = "1"  # the signal cases read the run's progress bar from a pipe, where it is off by default
    return env


def vfe_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "gauge_vfe.agents.launch", *map(str, args)]  # as the `vfe` script starts


@dataclass
class Done:
    """A finished subprocess: exit code (None: timed out and killed), output, wall time."""
    rc: int | None
    out: str
    err: str
    wall: float
    pid: int = 0
    signalled: bool = False  # our signal reached it while it ran

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines, without progress-bar redraws."""
        return [line for line in re.split(r"[\r\n]+", self.err) if line.strip() and not _PROGRESS.search(line)]


def _default_signals() -> None:
    # A harness started in the background (`cmd &`, nohup) inherits SIGINT ignored, and so would the runs: a
    # run that ignores Ctrl-C until it installs its own handler is not what a user at a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(cmd: list[str], cwd=None, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    """Its own session and process group, so a signal reaches it (and only it) like a terminal's would."""
    return subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_signals)


def _killpg(p: subprocess.Popen, sig) -> bool:
    try:
        os.killpg(p.pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def finish(p: subprocess.Popen, t0: float, timeout: float, signalled: bool = False) -> Done:
    try:
        out, err = p.communicate(timeout=max(0.1, t0 + timeout - time.monotonic()))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _killpg(p, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    if "gauge_vfe.agents.launch" in p.args and "Traceback" in (err or ""):  # a `vfe` command, whatever the class
        TRACEBACKS[CURRENT[0]] += 1
    return Done(rc, out or "", err or "", time.monotonic() - t0, p.pid, signalled)


# Tracebacks printed by any `vfe` command the harness ran, by the fault class being measured (the report's count).
TRACEBACKS: collections.Counter = collections.Counter()
CURRENT = ["reference"]  # the class being measured


def run_cli(args, timeout: float, cwd=None) -> Done:
    t0 = time.monotonic()
    return finish(spawn(vfe_cmd(*args), cwd), t0, timeout)


def signal_at(p: subprocess.Popen, t0: float, delay: float, sig) -> bool:
    """Send ``sig`` to p's process group at ``t0 + delay``; False if it had already exited."""
    while True:
        if p.poll() is not None:
            return False
        rem = t0 + delay - time.monotonic()
        if rem <= 0:
            break
        time.sleep(min(rem, 0.005))
    return p.poll() is None and _killpg(p, sig)


def wait_for_path(p: subprocess.Popen, path: Path, timeout: float) -> float | None:
    """Seconds until ``path`` exists (polled every 5 ms), or None if the process ended or time ran out."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists():
            return time.monotonic() - t0
        if p.poll() is not None:
            return None
        time.sleep(0.005)
    return None


@functools.lru_cache(maxsize=None)
def cli_has(command: str) -> bool:
    """Whether ``vfe`` has a subcommand (``repair`` is new)."""
    d = run_cli(["--help"], 60)
    return re.search(rf"^\s+{re.escape(command)}\b", d.out, re.M) is not None


def run_args(scenario: Path, out: Path | None, *extra, quiet: bool = True) -> list:
    return ["run", scenario, *(["-o", out] if out is not None else []), *(["-q"] if quiet else []), *extra]


# --- reading and comparing files (in child processes) ---------------------------------------------------------------

def _child(mode: str, *args, timeout: float = 120) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, *map(str, args)]
    t0 = time.monotonic()
    d = finish(spawn(cmd), t0, timeout)
    for line in reversed(d.out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"child_failed": True, "rc": d.rc, "error": (d.err_lines or ["no output"])[-1][:300]}


def probe(path: Path) -> dict:
    """Readability of one file (see the module docstring), computed in a child process."""
    r = _child("probe", path)
    if r.get("child_failed"):  # the reader crashed (e.g. HDF5 segfault on a corrupt file)
        r.update(exists=Path(path).exists(), load_ok=False, corrupt=True, readable=False,
                 load_error=f"reader crashed (rc {r['rc']}): {r['error']}")
    if r.get("exists") and r.get("readable") and cli_has("repair"):
        copy = Path(path).with_name(Path(path).stem + ".repaired.h5")
        shutil.copyfile(path, copy)
        d = run_cli(["repair", copy], 120)
        plain = _child("plain", copy)
        copy.unlink(missing_ok=True)
        r["repair_rc"] = d.rc
        r["plain_after_repair"] = bool(plain.get("plain_open"))
        if d.rc != 0 or not r["plain_after_repair"]:
            r["readable"] = False
    return r


def compare(a: Path, b: Path, prefix: str = "/") -> list[str]:
    """Differences between two files under ``prefix`` (empty: bit-identical); computed in a child process."""
    r = _child("compare", a, b, prefix)
    if r.get("child_failed"):
        return [f"comparison crashed (rc {r['rc']}): {r['error']}"]
    return r["diffs"]


def check(path: Path, ref: Path) -> tuple[dict, list[str]]:
    """:func:`probe` and :func:`compare` with ``ref`` in one child process: (probe, differences)."""
    if cli_has("repair"):
        return probe(path), compare(path, ref)
    r = _child("check", path, ref)
    if r.get("child_failed"):
        crashed = f"reader crashed (rc {r['rc']}): {r['error']}"
        return ({"exists": Path(path).exists(), "load_ok": False, "corrupt": True, "readable": False,
                 "load_error": crashed}, [crashed])
    return r["probe"], r["diffs"]


def _open_h5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError:
        pass
    try:
        return h5py.File(path, "r", swmr=True)  # consistency flags left by a killed writer
    except OSError:  # a writer killed outside SWMR mode (`vfe analyze`): the package's read-only view of it (no
        from gauge_vfe.agents.io.recovery import open_trajectory_file  # reader clears the flags any more)

        return open_trajectory_file(path)


def _child_probe(path: str) -> dict:
    import h5py
    import numpy as np

    p = Path(path)
    r = {"exists": p.exists(), "size": p.stat().st_size if p.exists() else 0}
    if not r["exists"]:
        return r
    try:
        with h5py.File(p, "r"):
            r["plain_open"] = True
    except Exception as exc:  # noqa: BLE001 - we report whatever it is
        r["plain_open"], r["plain_error"] = False, str(exc)[:200]
    read_error = None
    try:
        import gauge_vfe

        with gauge_vfe.load(p) as t:
            r["load_ok"] = True
            r["status"], r["recorded_status"], r["seed"] = t.status, t.recorded_status, t.seed
            r["message"] = t.message
            r["frames"] = int(len(t.frame_steps))
            try:
                for name in t.fields:
                    for k in range(r["frames"]):
                        t.rows(name, k)
                t.energies()
                a = t.analysis()
                r["analysis"] = a is not None
            except Exception as exc:  # noqa: BLE001
                read_error = f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # noqa: BLE001
        r["load_ok"], r["load_error"] = False, f"{type(exc).__name__}: {exc}"[:200]
    # A frame is committed when its `step` entries are written (last, in every field); rows past that are a
    # frame cut off by the fault, which no reader shows. Ragged: a committed frame lacks a value or a time.
    lengths, finite, committed = {}, True, 0
    if r.get("load_ok"):
        try:
            with _open_h5(p) as f:
                steps = [f[f"particles/agents/{n}/step"].shape[0] for n in FIELDS if f"particles/agents/{n}" in f]
                committed = min(steps, default=0)
                for name in FIELDS:
                    g = f.get(f"particles/agents/{name}")
                    if g is None:
                        lengths[name] = None
                        continue
                    lengths[name] = [int(g[k].shape[0]) for k in ("value", "step", "time")]
                    finite &= bool(np.isfinite(g["value"][:committed]).all())
        except Exception as exc:  # noqa: BLE001
            read_error = read_error or f"{type(exc).__name__}: {exc}"[:200]
    r["lengths"], r["committed"] = lengths, committed
    r["ragged"] = any(v is None or min(v) < committed for v in lengths.values())
    r["finite"] = finite
    r["read_error"] = read_error
    r["corrupt"] = (not r.get("load_ok") or read_error is not None or not finite
                    or (r.get("recorded_status") == "completed" and r["ragged"]))
    r["readable"] = bool(r.get("load_ok")) and not r["corrupt"] and not r["ragged"]
    return r


def _child_plain(path: str) -> dict:
    import h5py

    try:
        with h5py.File(path, "r"):
            return {"plain_open": True}
    except Exception as exc:  # noqa: BLE001
        return {"plain_open": False, "error": str(exc)[:200]}


def _skip_attr(name: str) -> bool:
    return name in SKIP_ATTRS or name.endswith(("_at", "_pid", "_host")) or "history" in name


def _equal(x, y) -> bool:
    import numpy as np

    if isinstance(x, (str, bytes)) or isinstance(y, (str, bytes)):
        return type(x) is type(y) and x == y
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if x.dtype.names:
        return all(_equal(x[n], y[n]) for n in x.dtype.names)
    if x.dtype.kind in "fc":
        return bool(np.array_equal(x, y, equal_nan=True))
    if x.dtype.kind == "O":
        return [v for v in x.ravel()] == [v for v in y.ravel()]
    return bool(np.array_equal(x, y))


def _tree(f) -> dict:
    import h5py

    items = {"/": f}

    def visit(name, obj):
        items["/" + name] = obj

    f.visititems(visit)
    return {k: v for k, v in items.items() if isinstance(v, (h5py.Group, h5py.Dataset))}


def _child_check(path: str, ref: str) -> dict:
    return {"probe": _child_probe(path), "diffs": _child_compare(path, ref)["diffs"]}


def _child_compare(a: str, b: str, prefix: str = "/") -> dict:
    import h5py

    diffs = []
    try:
        fa = _open_h5(a)
    except Exception as exc:  # noqa: BLE001
        return {"diffs": [f"{Path(a).name}: cannot open: {exc}"[:200]]}
    try:
        fb = _open_h5(b)
    except Exception as exc:  # noqa: BLE001
        fa.close()
        return {"diffs": [f"{Path(b).name}: cannot open: {exc}"[:200]]}
    with fa, fb:
        ta, tb = _tree(fa), _tree(fb)
        for path in sorted(set(ta) | set(tb)):
            if not path.startswith(prefix) or path.startswith("/provenance"):  # the history differs by design
                continue
            if path not in tb:
                diffs.append(f"{path}: only in {Path(a).name}")
                continue
            if path not in ta:
                diffs.append(f"{path}: only in {Path(b).name}")
                continue
            oa, ob = ta[path], tb[path]
            if isinstance(oa, h5py.Dataset) != isinstance(ob, h5py.Dataset):
                diffs.append(f"{path}: group vs dataset")
                continue
            if isinstance(oa, h5py.Dataset) and _skip_attr(path.rsplit("/", 1)[-1]) and path.startswith("/parameters"):
                continue  # a timestamp stored as a dataset (rewritable under SWMR): /parameters/finished_at
            if isinstance(oa, h5py.Dataset):
                if oa.shape != ob.shape or oa.dtype != ob.dtype:
                    diffs.append(f"{path}: shape/dtype {oa.shape} {oa.dtype} vs {ob.shape} {ob.dtype}")
                elif not _equal(oa[()], ob[()]):
                    diffs.append(f"{path}: values differ")
            for key in sorted(set(oa.attrs) | set(ob.attrs)):
                if _skip_attr(key):
                    continue
                if key not in oa.attrs or key not in ob.attrs:
                    diffs.append(f"{path}@{key}: missing in one file")
                elif not _equal(oa.attrs[key], ob.attrs[key]):
                    diffs.append(f"{path}@{key}: {str(oa.attrs[key])[:40]!r} vs {str(ob.attrs[key])[:40]!r}")
    return {"diffs": diffs}


def _child_hold(path: str, timeout: float) -> dict:
    """Open the file with gauge_vfe.load as soon as it can be opened; hold it until a line arrives on stdin."""
    import gauge_vfe

    t0, last = time.monotonic(), None
    while True:
        try:
            traj = gauge_vfe.load(path)
            break
        except Exception as exc:  # noqa: BLE001
            last = f"{type(exc).__name__}: {exc}"[:200]
            if time.monotonic() - t0 > timeout:
                return {"opened": False, "error": last}
            time.sleep(0.02)
    print("OPEN", flush=True)
    reads, errors = 0, collections.Counter()
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        if ready:
            sys.stdin.readline()
            break
        try:
            len(traj.frame_steps)
            reads += 1
        except Exception as exc:  # noqa: BLE001
            errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
    traj.close()
    return {"opened": True, "open_after": round(time.monotonic() - t0, 3), "retries_error": last, "reads": reads,
            "read_errors": dict(errors)}


# --- the scenario and the reference ---------------------------------------------------------------------------------

def write_scenario(folder: Path, steps: int = 150, every: int = 5, seed: int = 7, name: str = "faults") -> Path:
    path = Path(folder) / f"{name}.yaml"
    path.write_text(SCENARIO.format(name=name, seed=seed, steps=steps, every=every))
    return path


@dataclass
class Reference:
    folder: Path
    scenario: Path
    path: Path  # the reference trajectory file (completed, analysed)
    wall: float  # T_total: process start to exit
    t_file: float  # when the output file appeared
    analyze_wall: float  # `vfe analyze` on a copy of it, process start to exit
    size: int
    timeout: float
    deterministic: list[str] = field(default_factory=list)  # differences between two uninterrupted runs
    reanalysis: list[str] = field(default_factory=list)  # differences after `vfe analyze` of a copy
    walls: list[float] = field(default_factory=list)  # uninterrupted runs seen so far (reference, fresh runs)
    analyze_walls: list[float] = field(default_factory=list)  # complete `vfe analyze` runs seen so far

    def new_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.folder))

    def t_total(self) -> float:
        """T_total now: the median of the last 5 uninterrupted runs (it follows the load of a shared machine)."""
        return statistics.median(self.walls[-5:]) if self.walls else self.wall

    def t_analyze(self) -> float:
        return statistics.median(self.analyze_walls[-5:]) if self.analyze_walls else self.analyze_wall


def make_reference(folder: Path, steps: int = 150, every: int = 5, timeout: float | None = None,
                   warmup: bool = True, analyze: bool = True, timing_runs: int = 1) -> Reference:
    """A warm-up run (fills numba's cache; must be bit-identical to the next), the reference run, and `vfe
    analyze` of a copy (its wall time, and whether re-analysis is bit-identical).

    ``T_total`` (and the time the file appears) is the median over the reference run and ``timing_runs - 1``
    more uninterrupted runs: the machine may be shared, and one slow run would put many kills after the end.
    """
    folder = Path(folder)
    scenario = write_scenario(folder, steps, every)
    warm = folder / "warmup.h5"
    if warmup:
        d = run_cli(run_args(scenario, warm), timeout or 900)
        if d.rc != 0:
            raise RuntimeError(f"warm-up run failed (exit {d.rc}): {d.err[-1000:]}")
    ref = folder / "reference.h5"
    t0 = time.monotonic()
    p = spawn(vfe_cmd(*run_args(scenario, ref)))
    t_file = wait_for_path(p, ref, timeout or 900)
    d = finish(p, t0, timeout or 900)
    if d.rc != 0:
        raise RuntimeError(f"reference run failed (exit {d.rc}): {d.err[-1000:]}")
    walls, t_files = [d.wall], [t_file if t_file is not None else 0.0]
    for k in range(1, timing_runs):
        extra = folder / f"timing{k}.h5"
        t0 = time.monotonic()
        p = spawn(vfe_cmd(*run_args(scenario, extra)))
        tf = wait_for_path(p, extra, timeout or 900)
        e = finish(p, t0, timeout or 900)
        extra.unlink(missing_ok=True)
        if e.rc == 0:
            walls.append(e.wall)
            t_files.append(tf if tf is not None else 0.0)
    wall, t_file = statistics.median(walls), statistics.median(t_files)
    timeout = timeout or max(60.0, 10 * max(walls))
    copy = folder / "reanalysed.h5"
    analyze_wall, reanalysis = float("nan"), []
    if analyze:
        shutil.copyfile(ref, copy)
        a = run_cli(["analyze", copy], timeout)
        if a.rc != 0:
            raise RuntimeError(f"`vfe analyze` of the reference failed (exit {a.rc}): {a.err[-1000:]}")
        analyze_wall, reanalysis = a.wall, compare(copy, ref)
    r = Reference(folder, scenario, ref, wall, t_file, analyze_wall,
                  ref.stat().st_size, timeout, compare(warm, ref) if warmup else [], reanalysis, sorted(walls),
                  [analyze_wall] if analyze else [])
    warm.unlink(missing_ok=True)
    copy.unlink(missing_ok=True)
    return r


# --- trials ---------------------------------------------------------------------------------------------------------

@dataclass
class Trial:
    cls: str
    delay: float | None = None
    rc: int | None = None  # the faulted process' exit code
    err: str = ""  # its last stderr line
    sent: bool = False  # the signal reached the process while it ran
    phase: str = ""  # where the fault landed
    file: dict = field(default_factory=dict)  # probe after the fault
    recovery: str = ""  # "resume", "fresh", "analyze", ""
    recovery_rc: int | None = None
    recovery_err: str = ""
    after: dict = field(default_factory=dict)  # probe after the recovery
    diffs: list[str] = field(default_factory=list)
    identical: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def has_file(self) -> bool:
        return bool(self.file.get("exists"))

    @property
    def readable(self) -> bool:
        return bool(self.file.get("readable"))

    @property
    def corrupt(self) -> bool:
        return bool(self.file.get("corrupt")) or bool(self.after.get("corrupt"))


def _phase(t: Trial, exited: bool) -> str:
    f = t.file
    if not exited:
        return "after exit"
    if not f.get("exists"):
        return "before file"
    if not f.get("load_ok"):
        return "unknown (unloadable)"
    rs = f.get("recorded_status")
    if rs in ("running", "interrupted"):
        return "steps"
    if rs == "completed":
        return "analysis" if not f.get("analysis") else "end (analysed)"
    return f"status {rs}"


def recover_by_resume(ref: Reference, t: Trial, out: Path) -> None:
    """--resume (a fresh run if there is no file), then probe and compare with the reference."""
    if out.exists():
        t.recovery, d = "resume", run_cli(run_args(ref.scenario, out, "--resume"), ref.timeout)
    else:
        t.recovery, d = "fresh", run_cli(run_args(ref.scenario, out), ref.timeout)
    t.recovery_rc, t.recovery_err = d.rc, (d.err_lines or [""])[-1][:160]
    if t.recovery == "fresh" and d.rc == 0:
        ref.walls.append(d.wall)  # an uninterrupted run: T_total follows the machine's load
    if out.exists():
        t.after, t.diffs = check(out, ref.path)
    else:
        t.diffs = ["no file after recovery"]
    t.identical = d.rc == 0 and t.after.get("recorded_status") == "completed" and not t.diffs


_PROGRESS = re.compile(r"(\d+)/(\d+) \[")


def wait_for_step(p: subprocess.Popen, step: int, timeout: float) -> tuple[int | None, str]:
    """Read the run's progress bar (stderr) until it shows ``step``: (step seen, stderr consumed so far).

    The step is None if the run ended, or ``timeout`` passed, before the bar got there.
    """
    t0, buf, fd = time.monotonic(), b"", p.stderr.fileno()
    while time.monotonic() - t0 < timeout:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            seen = [int(m.group(1)) for m in _PROGRESS.finditer(buf[-400:].decode(errors="replace"))]
            if seen and max(seen) >= step:
                return max(seen), buf.decode(errors="replace")
        elif p.poll() is not None:
            break
    return None, buf.decode(errors="replace")


def trial_kill(ref: Reference, delay: float | None, sig=signal.SIGKILL, cls: str = "kill",
               at_step: int | None = None) -> Trial:
    """Signal a run ``delay`` s after it starts, then recover (resume, or a fresh run if no file was left).

    ``at_step``: instead, signal it as soon as its progress bar shows this step (then the step loop is under way
    and several frames are logged); ``delay`` (default: the timeout) bounds the wait.
    """
    folder = ref.new_dir(cls)
    out = folder / "run.h5"
    t = Trial(cls, delay)
    t0 = time.monotonic()
    early_err = ""
    if at_step is None:
        p = spawn(vfe_cmd(*run_args(ref.scenario, out)))
    else:
        p = spawn(vfe_cmd(*run_args(ref.scenario, out, quiet=False)))
        seen, early_err = wait_for_step(p, at_step, delay if delay is not None else ref.timeout)
        t.extra["step_seen"] = seen
        delay = t.delay = time.monotonic() - t0
    sent = signal_at(p, t0, delay, sig)
    t.sent = sent
    d = finish(p, t0, ref.timeout, sent)
    d.err = early_err + d.err
    if not sent and d.rc == 0 and at_step is None:
        ref.walls.append(d.wall)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
    t.file = probe(out) if out.exists() else {"exists": False}
    t.phase = _phase(t, sent)
    recover_by_resume(ref, t, out)
    shutil.rmtree(folder, ignore_errors=True)
    return t


def trial_sigint(ref: Reference, delay: float | None, at_step: int | None = None) -> Trial:
    return trial_kill(ref, delay, signal.SIGINT, "sigint", at_step)


def sigint_outcome(t: Trial) -> str:
    if not t.sent:
        return "ended first"
    # 130 and a valid file: stopped mid-run (status interrupted, --resume continues), or after the last step
    # (status completed; the end-of-run analysis may be missing, `vfe analyze` redoes it)
    if t.rc == EXIT_INTERRUPTED and t.file.get("recorded_status") in ("interrupted", "completed"):
        return "interrupted"
    if t.rc == EXIT_INTERRUPTED and not t.file.get("exists"):  # before the file was made: nothing to keep
        return "interrupted"
    if t.rc == 0:
        return "swallowed"
    return "other"


def trial_concurrent(ref: Reference, procs: int = 2, same_seed: bool = True) -> Trial:
    """``procs`` runs started at once: same -o and seed, or different seeds and the same default path."""
    folder = ref.new_dir("race")
    out = folder / "run.h5"
    t = Trial("concurrent-o" if same_seed else "concurrent-default")
    cmds = [vfe_cmd(*run_args(ref.scenario, out)) if same_seed else
            vfe_cmd(*run_args(ref.scenario, None, "--seed", 100 + k)) for k in range(procs)]
    t0 = time.monotonic()
    ps = [spawn(c, cwd=folder) for c in cmds]
    ds = [finish(p, t0, ref.timeout) for p in ps]
    t.extra["rcs"] = [d.rc for d in ds]
    t.extra["errs"] = [(d.err_lines or [""])[-1][:160] for d in ds]
    files = sorted(folder.rglob("*.h5"))
    probes = {str(f.relative_to(folder)): probe(f) for f in files}
    t.extra["files"] = {k: {x: v.get(x) for x in ("recorded_status", "seed", "readable", "corrupt", "ragged",
                                                  "load_error")} for k, v in probes.items()}
    t.extra["corrupt_files"] = sum(bool(v.get("corrupt")) for v in probes.values())
    valid = {k: v for k, v in probes.items() if v.get("recorded_status") == "completed" and not v.get("corrupt")}
    winners = [k for k, d in enumerate(ds) if d.rc == 0]
    if same_seed:
        lost = max(0, len(winners) - len(valid))
    else:
        seeds = [v.get("seed") for v in valid.values()]
        lost = sum(1 for k in winners if (100 + k) not in seeds)
    t.extra["lost_runs"] = lost
    others = [d for d in ds if d.rc != 0]
    t.extra["clean_refusal"] = (len(winners) == 1 and len(others) == procs - 1 and all(
        d.rc == 2 and any(str(o.pid) in d.err for o in ds if o is not d) for d in others))
    target = out if same_seed else folder / "runs" / "faults.h5"
    t.file = probes.get(str(target.relative_to(folder)), {"exists": False})
    if same_seed and target.exists():
        t.diffs = compare(target, ref.path)
        t.identical = not t.diffs and t.file.get("recorded_status") == "completed"
    shutil.rmtree(folder, ignore_errors=True)
    return t


def trial_reader(ref: Reference) -> Trial:
    """A gauge_vfe.load reader (another process) opened as soon as the file can be opened, held until the run
    has ended; the run must still complete with its analysis stored, and its file equal the reference."""
    folder = ref.new_dir("reader")
    out = folder / "run.h5"
    t = Trial("reader")
    t0 = time.monotonic()
    p = spawn(vfe_cmd(*run_args(ref.scenario, out)))
    # the reader starts with the run and opens the file as soon as it can (it retries until then)
    holder = spawn([sys.executable, str(Path(__file__).resolve()), "--child", "hold", str(out),
                    str(ref.timeout)], stdin=subprocess.PIPE)
    ready, _, _ = select.select([holder.stdout], [], [], ref.timeout)
    t.extra["reader_open"] = bool(ready) and holder.stdout.readline().strip() == "OPEN"
    t.extra["reader_opened_at"] = round(time.monotonic() - t0, 2)
    t.extra["run_still_going"] = p.poll() is None
    d = finish(p, t0, ref.timeout)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
    try:
        out_h, _ = holder.communicate("\n", timeout=60)
    except subprocess.TimeoutExpired:
        _killpg(holder, signal.SIGKILL)
        out_h, _ = holder.communicate()
    lines = [line for line in (out_h or "").splitlines() if line.startswith("{")]
    t.extra["reader"] = json.loads(lines[-1]) if lines else {"error": "no report"}
    if out.exists():
        t.file, t.diffs = check(out, ref.path)
    else:
        t.file, t.diffs = {"exists": False}, ["no file"]
    t.identical = not t.diffs
    t.extra["ok"] = (d.rc == 0 and t.file.get("recorded_status") == "completed" and bool(t.file.get("analysis")))
    shutil.rmtree(folder, ignore_errors=True)
    return t


# --- the lock by another name ---------------------------------------------------------------------------------------

def _symlink(out: Path) -> Path:
    link = out.parent / "elsewhere" / "link.h5"
    link.parent.mkdir()
    link.symlink_to(out)
    return link


def _hard_link(out: Path) -> Path:
    link = out.parent / "hard.h5"
    os.link(out, link)
    return link


def _dot_dot(out: Path) -> Path:
    (out.parent / "sub").mkdir()
    return out.parent / "sub" / ".." / out.name


def _lock_removed(out: Path) -> Path:
    out.with_name(out.name + ".lock").unlink(missing_ok=True)
    return out


LOCK_STEPS, LOCK_EVERY = 600, 50  # the lock cases' run: stopped at step 20, it has frames and a checkpoint

# case: (how the live file is reached, the command aimed at it)
LOCK_CASES = {
    "resume-symlink": (_symlink, lambda sc, name: run_args(sc, name, "--resume")),
    "resume-hard-link": (_hard_link, lambda sc, name: run_args(sc, name, "--resume")),
    "resume-dot-dot": (_dot_dot, lambda sc, name: run_args(sc, name, "--resume")),
    "resume-lock-file-removed": (_lock_removed, lambda sc, name: run_args(sc, name, "--resume")),
    "analyze-hard-link": (_hard_link, lambda sc, name: ["analyze", name]),
    "repair-symlink": (_symlink, lambda sc, name: ["repair", name]),
}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def trial_lock(ref: Reference, case: str, stop_at: int = 20) -> Trial:
    """A run stopped by SIGSTOP once its progress bar shows ``stop_at`` (a live writer, its locks held, and no
    race with its end on a loaded machine); the command of ``case`` aimed at its file by another name must exit
    2 with one line naming the run's pid and leave the file's bytes alone; after SIGCONT the run must end
    bit-identical to the reference (the scenario's steps must exceed ``stop_at``)."""
    make_name, command = LOCK_CASES[case]
    folder = ref.new_dir("lock")
    out = folder / "run.h5"
    t = Trial("lock")
    t.extra["case"] = case
    t0 = time.monotonic()
    p = spawn(vfe_cmd(*run_args(ref.scenario, out, quiet=False)))
    seen, early_err = wait_for_step(p, stop_at, ref.timeout)
    t.extra["step_seen"] = seen
    if seen is None:
        d = finish(p, t0, ref.timeout)
        t.extra["skipped"] = f"the run ended before step {stop_at} (exit {d.rc})"
        shutil.rmtree(folder, ignore_errors=True)
        return t
    os.kill(p.pid, signal.SIGSTOP)
    t.sent = True
    try:
        name = make_name(out)
        before = file_sha256(out)
        d = run_cli(command(ref.scenario, name), ref.timeout)
        t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:300]
        t.extra["err_lines"] = len(d.err_lines)
        t.extra["clean_refusal"] = d.rc == 2 and len(d.err_lines) == 1 and f"pid {p.pid}" in d.err_lines[0]
        t.extra["untouched"] = file_sha256(out) == before
    finally:
        os.kill(p.pid, signal.SIGCONT)
    d = finish(p, t0, ref.timeout)
    t.extra["run_rc"] = d.rc
    t.extra["run_err"] = (d.err_lines or [""])[-1][:160]
    t.file, t.diffs = check(out, ref.path) if out.exists() else ({"exists": False}, ["no file"])
    t.identical = d.rc == 0 and t.file.get("recorded_status") == "completed" and not t.diffs
    shutil.rmtree(folder, ignore_errors=True)
    return t


def _mount(folder: Path, kib: int, remount: bool = False) -> tuple[bool, str]:
    opts = f"remount,size={kib}k" if remount else f"size={kib}k"
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True,
                       timeout=30)
    return r.returncode == 0, r.stderr.strip()


def _umount(folder: Path) -> None:
    r = subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def can_mount() -> tuple[bool, str]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "needs root"
    d = Path(tempfile.mkdtemp(prefix="vfe-mnt-"))
    try:
        ok, err = _mount(d, 64)
        if ok:
            _umount(d)
        return ok, err or "mount failed"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def trial_diskfull(ref: Reference, fraction: float) -> Trial:
    """Run into a tmpfs of ``fraction`` of the reference file's size; then make room and --resume."""
    folder = ref.new_dir("disk")
    mnt = folder / "mnt"
    mnt.mkdir()
    kib = max(16, int(ref.size * fraction / 4096 + 1) * 4)
    t = Trial("diskfull", fraction)
    t.extra["tmpfs_kib"] = kib
    mounted = False
    try:
        ok, err = _mount(mnt, kib)
        if not ok:
            t.extra["skipped"] = f"mount failed: {err}"
            return t
        mounted = True
        out = mnt / "run.h5"
        d = run_cli(run_args(ref.scenario, out), ref.timeout)
        t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:200]
        t.extra["err_lines"] = len(d.err_lines)
        t.extra["segfault"] = d.rc in (-11, 139)
        t.extra["nospace_msg"] = any("no space left on device" in line.lower() for line in d.err_lines)
        t.extra["clean"] = d.rc == 1 and len(d.err_lines) == 1 and t.extra["nospace_msg"]
        t.file = probe(out) if out.exists() else {"exists": False}
        t.phase = "filled" if d.rc != 0 else "did not fill"
        ok, err = _mount(mnt, max(kib * 16, ref.size * 4 // 1024), remount=True)
        if not ok:
            t.extra["skipped"] = f"remount failed: {err}"
            return t
        recover_by_resume(ref, t, out)
        return t
    finally:
        if mounted:
            _umount(mnt)
        shutil.rmtree(folder, ignore_errors=True)


DISKOUT_CASES = ("export", "export again", "export failing inside HDF5", "analyze", "plot", "render gif")


def _fill(folder: Path, left_kib: int) -> None:
    """Filler files until only about ``left_kib`` KiB are free in ``folder``'s file system."""
    k = 0
    while (free := shutil.disk_usage(folder).free) > left_kib * 1024:
        try:
            with open(folder / f"filler{k}", "wb") as fh:
                fh.write(b"\0" * min(free - left_kib * 1024, 1 << 20))
        except OSError:
            return
        k += 1


def trial_diskout(ref: Reference, case: str) -> Trial:
    """One case of :data:`DISKOUT_CASES`; ``extra``: segfault, clean (exit 1, one no-space line), traceback,
    earlier_intact (the earlier output and the input byte-identical; analyze: the frames still load)."""
    folder = ref.new_dir("diskout")
    mnt = folder / "mnt"
    mnt.mkdir()
    t = Trial("diskout", None)
    t.phase = case
    kib = int(ref.size * 2 / 1024) + 4096
    ok, err = _mount(mnt, kib)
    if not ok:
        t.extra["skipped"] = f"mount failed: {err}"
        shutil.rmtree(folder, ignore_errors=True)
        return t
    try:
        source = ref.path
        if case.startswith("export"):
            target = mnt / "x.vtkhdf"
            run_cli(["export", source, "-o", target, "-q"], ref.timeout)
            args = ["export", source, "-o", target, "-q"]
        elif case == "analyze":
            target = source = mnt / "run.h5"
            shutil.copyfile(ref.path, source)
            args = ["analyze", source]
        elif case == "plot":
            target = mnt / "plots"
            run_cli(["plot", source, "-o", target], ref.timeout)
            args = ["plot", source, "-o", target]
        else:
            target = mnt / "m.gif"
            args = ["render", source, "-o", target, "--size", "320x240", "--fps", "4", "--no-title-card", "-q"]
            run_cli(args, ref.timeout)
        before, input_before = _snapshot(target), _snapshot(source) if case != "analyze" else []
        _fill(mnt, 64 if case.startswith("export") else 0)  # export: room to start, and fail mid-write
        rounds = 2 if case == "export again" else 1
        for _ in range(rounds):
            if case == "export failing inside HDF5":
                code = ("import sys; import gauge_vfe.agents.io.outputs as o; o.SPACE_RESERVE_BYTES = -10**9; "
                        "from gauge_vfe.agents.cli import main; "
                        f"sys.argv = ['vfe', *{[str(a) for a in args]!r}]; main()")
                d = finish(spawn([sys.executable, "-c", code]), time.monotonic(), ref.timeout)
            else:
                d = run_cli(args, ref.timeout)
        t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:200]
        t.extra["segfault"] = d.rc in (-11, 139)
        t.extra["traceback"] = "Traceback" in d.err
        no_space = len(d.err_lines) == 1 and "no space left on device while writing" in d.err_lines[0] and \
            "nothing was replaced" in d.err_lines[0]
        # analyze may fit (its datasets exist up front): exit 0 is then right too
        t.extra["clean"] = (d.rc == 1 and no_space and "wrote" not in d.out) or (case == "analyze" and d.rc == 0)
        t.extra["temporaries"] = [p.name for p in mnt.rglob("*") if ".part" in p.name]
        for filler in mnt.glob("filler*"):  # room for the probe's own copy
            filler.unlink()
        if case == "analyze":
            t.file = probe(source)
            t.extra["earlier_intact"] = bool(t.file.get("readable"))
        else:
            t.extra["earlier_intact"] = _snapshot(target) == before and _snapshot(source) == input_before
        return t
    finally:
        _umount(mnt)
        shutil.rmtree(folder, ignore_errors=True)


def trial_analyze_kill(ref: Reference, delay: float) -> Trial:
    """SIGKILL `vfe analyze` of a finished file; then the frames must be intact and `vfe analyze` must work."""
    folder = ref.new_dir("analyze")
    out = folder / "run.h5"
    shutil.copyfile(ref.path, out)
    t = Trial("analyze", delay)
    t0 = time.monotonic()
    p = spawn(vfe_cmd("analyze", out))
    sent = signal_at(p, t0, delay, signal.SIGKILL)
    t.sent = sent
    d = finish(p, t0, ref.timeout, sent)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
    t.phase = "during analyze" if sent else "after exit"
    t.file = probe(out)
    frame_diffs = compare(out, ref.path, "/particles") if t.file.get("load_ok") else ["unloadable"]
    t.extra["frames_intact"] = not frame_diffs
    if frame_diffs:
        t.file["readable"] = False
    t.recovery = "analyze"
    a = run_cli(["analyze", out], ref.timeout)
    t.recovery_rc, t.recovery_err = a.rc, (a.err_lines or [""])[-1][:160]
    if a.rc == 0:
        ref.analyze_walls.append(a.wall)
    t.after, t.diffs = check(out, ref.path)
    t.identical = a.rc == 0 and not t.diffs
    shutil.rmtree(folder, ignore_errors=True)
    return t


OUTPUT_CASES = ("export onto a run", "export onto its input", "render mp4 SIGKILL", "render gif SIGKILL",
                "render png SIGKILL", "render mp4 SIGINT", "plot SIGKILL")


def _output_command(case: str, target: Path, source: Path) -> list:
    if case.startswith("render"):
        return ["render", source, "-o", target, "--size", "320x240", "--fps", "4", "--no-title-card", "-q"]
    return ["plot", source, "-o", target]


def _snapshot(target: Path) -> list[bytes]:
    """The bytes of an output (a file, or a plot folder's visible PNGs by name)."""
    if target.is_dir():
        return [p.read_bytes() for p in sorted(target.glob("*.png")) if not p.name.startswith(".")]
    return [target.read_bytes()] if target.exists() else []


def trial_output(ref: Reference, case: str, r: random.Random) -> Trial:
    """One case of :data:`OUTPUT_CASES`; ``extra``: lost (an earlier output or another file changed, and is not
    the complete new output), clean (the expected exit code and one stderr line), traceback."""
    folder = ref.new_dir("outputs")
    t = Trial("outputs", None, phase=case)
    if case.startswith("export"):
        if case == "export onto a run":  # another run's trajectory as the output
            source, victim = ref.path, folder / "other.h5"
            target = victim
        else:  # the input itself, through a symlink
            source = victim = folder / "run.h5"
            target = folder / "run-link.vtkhdf"
            target.symlink_to(victim)
        shutil.copyfile(ref.path, victim)
        before = victim.read_bytes()
        d = run_cli(["export", source, "-o", target, "-q"], ref.timeout)
        t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
        t.extra.update(lost=victim.read_bytes() != before, clean=d.rc == 2 and len(d.err_lines) == 1,
                       traceback="Traceback" in d.err)
        shutil.rmtree(folder, ignore_errors=True)
        return t
    suffix = next((f".{k}" for k in ("mp4", "gif", "png") if k in case), "")
    target = folder / (f"movie{suffix}" if suffix else "plots")
    timing = folder / (f"complete{suffix}" if suffix else "complete")
    full = run_cli(_output_command(case, timing, ref.path), ref.timeout)  # the complete output and its time
    complete = _snapshot(timing)
    if suffix:  # an earlier output of the command's own kind at the path: sentinel bytes
        target.write_bytes(b"earlier output")
    else:
        target.mkdir()
        for p in sorted(timing.glob("*.png")):
            (target / p.name).write_bytes(b"earlier output " + p.name.encode())
    earlier = _snapshot(target)
    sig = signal.SIGINT if "SIGINT" in case else signal.SIGKILL
    t.delay = r.random() * full.wall
    t0 = time.monotonic()
    p = spawn(vfe_cmd(*_output_command(case, target, ref.path)))
    t.sent = signal_at(p, t0, t.delay, sig)
    d = finish(p, t0, ref.timeout, t.sent)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
    now = _snapshot(target)
    # each file on its own: a plot killed between two PNGs leaves some earlier and some new ones, none lost
    lost = len(now) != len(earlier) or any(x not in (e, c) for x, e, c in zip(now, earlier, complete))
    t.extra.update(lost=lost, completed=now == complete, traceback="Traceback" in d.err)
    if sig == signal.SIGINT and t.sent and d.rc != 0:
        t.extra["clean"] = d.rc == EXIT_INTERRUPTED and len(d.err_lines) == 1
    shutil.rmtree(folder, ignore_errors=True)
    return t


# --- sweeps -----------------------------------------------------------------------------------------------------
SWEEP_CASES = ("sweep SIGKILL", "sweep SIGINT")
SWEEP_PARAMS = ("--param", "seed=0:2", "--workers", "2")  # two members at once: a kill meets both running
SWEEP_FILES = {"summary.csv", "summary.h5", "sweep.json", "m0000.h5", "m0001.h5"}  # all a finished sweep leaves


def sweep_args(ref: Reference, folder: Path, *extra) -> list:
    return ["sweep", ref.scenario, *SWEEP_PARAMS, "-q", "-o", folder, *extra]


def sweep_reference(ref: Reference) -> tuple[Path, float]:
    """One uninterrupted sweep (its folder and wall time): the members every resumed sweep must reproduce."""
    folder = ref.folder / "sweep-reference"
    d = run_cli(sweep_args(ref, folder), max(ref.timeout, 600))
    if d.rc != 0:
        raise RuntimeError(f"the reference sweep failed (exit {d.rc}): {d.err[-1000:]}")
    return folder, d.wall


def trial_sweep(ref: Reference, case: str, sweep_ref: tuple[Path, float], r: random.Random) -> Trial:
    """SIGKILL or SIGINT to a sweep's process group (the parent, its Dask cluster and the members' runs) at a
    uniformly random time in its run time, then `vfe sweep --resume`: it must exit 0 with every member
    completed and bit-identical to the uninterrupted sweep's, and leave no file beyond :data:`SWEEP_FILES` (no
    member renamed aside, no temporary, no lock). SIGINT: exit 130 and one line."""
    reference, wall = sweep_ref
    folder = ref.new_dir("sweep") / "s"
    t = Trial("sweep", r.random() * wall, phase=case)
    sig = signal.SIGINT if "SIGINT" in case else signal.SIGKILL
    t0 = time.monotonic()
    p = spawn(vfe_cmd(*sweep_args(ref, folder)))
    t.sent = signal_at(p, t0, t.delay, sig)
    d = finish(p, t0, max(ref.timeout, 600), t.sent)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:160]
    if sig == signal.SIGINT and t.sent:
        t.extra["clean"] = d.rc == EXIT_INTERRUPTED and len(d.err_lines) == 1
    t.recovery = "sweep --resume"
    a = run_cli(sweep_args(ref, folder, "--resume"), max(ref.timeout, 600))
    t.recovery_rc, t.recovery_err = a.rc, (a.err_lines or [""])[-1][:160]
    t.extra["traceback"] = "Traceback" in d.err or "Traceback" in a.err
    left = sorted(x.name for x in folder.iterdir()) if folder.exists() else []
    t.extra["litter"] = [name for name in left if name not in SWEEP_FILES]
    for member in ("m0000.h5", "m0001.h5"):
        if (folder / member).exists():
            t.diffs += [f"{member}: {x}" for x in compare(folder / member, reference / member)]
        else:
            t.diffs.append(f"{member}: missing")
    t.identical = a.rc == 0 and not t.diffs
    shutil.rmtree(folder.parent, ignore_errors=True)
    return t


# --- damaged and foreign files ---------------------------------------------------------------------------------
def flip_bit(path: Path, dataset: str, chunk: int = 0, byte: int = 3) -> None:
    """Flip one bit of a stored chunk of ``dataset`` in the file's bytes, as a failing disk would."""
    import h5py

    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(chunk)
        offset = info.byte_offset + min(byte, info.size - 5)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([b ^ 0x10]))


def _active_slot(path: Path) -> str:
    import h5py

    with h5py.File(path, "r") as f:
        return f"checkpoint/slot{max(0, int(f['checkpoint/active'][0]))}"


def _damage_superblock(path: Path, run: Path) -> None:
    shutil.copyfile(run, path)
    with open(path, "r+b") as fh:  # the root group's address (superblock v2/v3, 8-byte offsets): bit 20
        fh.seek(12 + 3 * 8 + 2)
        b = fh.read(1)[0]
        fh.seek(12 + 3 * 8 + 2)
        fh.write(bytes([b ^ 0x10]))


_KILL_WRITER = """\
import os, signal, sys
import h5py
path, swmr = sys.argv[1], sys.argv[2] == "swmr"
f = h5py.File(path, "a", libver=("v110", "v110"))
if "parameters" in f:
    f["parameters"].attrs["writer_pid"] = os.getpid()  # the writer is this process, about to die
if swmr:
    f.swmr_mode = True
if "parameters/status" in f:
    f["parameters/status"][0] = b"running"
f.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def kill_writer(path: Path, swmr: bool = True) -> None:
    """Leave ``path`` as a writer killed with it open leaves it: a child process opens it for writing (in SWMR
    mode as a run does, or not, as `vfe analyze` and a resume being set up do), marks it running, flushes and
    dies by SIGKILL, so HDF5's consistency flags stay set in the superblock."""
    p = subprocess.run([sys.executable, "-c", _KILL_WRITER, str(path), "swmr" if swmr else "plain"],
                       capture_output=True, env=child_env())
    if p.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the writer to kill ended with {p.returncode}: {p.stderr.decode()[-500:]}")


_RESIGN = """\
import struct, sys
from gauge_vfe.agents.io.recovery import lookup3
with open(sys.argv[1], "r+b") as fh:
    head = fh.read(12 + 4 * 8)
    fh.write(struct.pack("<I", lookup3(head)))
"""


def flip_root_address(path: Path, bit: int = 20, resign: bool = False) -> None:
    """Flip one bit of the superblock's root group address (v2/v3, 8-byte offsets); ``resign``: recompute the
    superblock's lookup3 checksum over the flipped address (with the package's own lookup3, in a child), as
    gauge-vfe's readers once did: HDF5's own check then passes, and only the address gives the damage away."""
    at = 12 + 3 * 8 + bit // 8
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([b ^ (1 << (bit % 8))]))
    if resign:
        p = subprocess.run([sys.executable, "-c", _RESIGN, str(path)], capture_output=True, env=child_env())
        if p.returncode != 0:
            raise RuntimeError(f"re-signing the superblock failed: {p.stderr.decode()[-500:]}")


def _killed_then(fn=None, swmr: bool = True):
    def make(path: Path, run: Path) -> None:
        shutil.copyfile(run, path)
        kill_writer(path, swmr)
        if fn is not None:
            fn(path)
    return make


def _copy_then(fn):
    def make(path: Path, run: Path) -> None:
        shutil.copyfile(run, path)
        fn(path)
    return make


def damage_foreign(path: Path, run: Path) -> None:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
        f.create_group("data").attrs["owner"] = "another program"


def damage_lookalike(path: Path, run: Path) -> None:
    import h5py

    shutil.copyfile(run, path)
    with h5py.File(path, "r+") as f:
        f["parameters"].attrs["config_json"] = '{"grid": {"height": 6,'


def damage_huge_series(path: Path, run: Path) -> None:
    import h5py

    shutil.copyfile(run, path)
    with h5py.File(path, "r+") as f:  # 2^35 entries claimed (256 GiB of float64), no chunk allocated
        f["observables/energy/total/value"].resize((2 ** 35,))
        f["observables/energy/total/step"].resize((2 ** 35,))


def damage_huge_rows(path: Path, run: Path) -> None:
    import h5py
    import numpy as np

    shutil.copyfile(run, path)
    with h5py.File(path, "r+") as f:  # frames of 2^30 rows claimed (the static part says far fewer)
        n = f["particles/agents/mu/value"].shape[0]
        del f["particles/agents/mu/value"]
        f.create_dataset("particles/agents/mu/value", shape=(n, 2 ** 30, 3), chunks=(1, 2 ** 16, 3),
                         dtype=np.float32, maxshape=(None, 2 ** 30, 3))


# case: (make(path, run), what its one line must contain); shared with tests/test_integrity.py
DAMAGE_CASES = {
    "energy bit": (_copy_then(lambda p: flip_bit(p, "observables/energy/total/value")),
                   "damaged at /observables/energy/total/value"),
    "frame bit": (_copy_then(lambda p: flip_bit(p, "particles/agents/mu/value", chunk=1)),
                  "damaged at /particles/agents/mu/value"),
    "checkpoint bit": (_copy_then(lambda p: flip_bit(p, _active_slot(p) + "/mu", byte=0)), "/checkpoint/slot"),
    "superblock bit": (_damage_superblock, "not a readable HDF5"),
    "superblock bit, killed writer": (_killed_then(flip_root_address), "not a readable HDF5"),
    "superblock re-signed, killed writer": (_killed_then(lambda p: flip_root_address(p, bit=40, resign=True)),
                                            "not a readable HDF5"),
    # no damage: a killed writer's file, which every command must handle (readers leaving it as it is)
    "killed writer": (_killed_then(), None),
    "killed outside SWMR": (_killed_then(swmr=False), None),
    "foreign": (damage_foreign, "not a gauge-vfe trajectory"),
    "look-alike": (damage_lookalike, "malformed JSON"),
    "huge series": (damage_huge_series, "claims shape"),
    "huge rows": (damage_huge_rows, "claims shape"),
}
DAMAGE_COMMANDS = {
    "inspect": lambda p, d, sc: ["inspect", p],
    "analyze": lambda p, d, sc: ["analyze", p],
    "plot": lambda p, d, sc: ["plot", p, "-o", d / "plots"],
    "render": lambda p, d, sc: ["render", p, "-o", d / "frame.png", "--size", "320x240", "-q"],
    "export": lambda p, d, sc: ["export", p, "-o", d / "out.vtkhdf", "-q"],
    "verify": lambda p, d, sc: ["verify", p],
    "resume": lambda p, d, sc: ["run", sc, "-o", p, "--resume", "--steps", "400", "-q"],
    "repair": lambda p, d, sc: ["repair", p],
}
# the commands that only read a run file: they must leave every byte of it as it was, whatever they meet
READ_ONLY = ("inspect", "plot", "render", "export", "verify")
# the commands that read what each bit flip damages: exit 0 from one of them is a silent wrong value (analyze and
# resume check the whole file before they write; inspect prints the energies; plot draws them; export and render
# read the frames and the checkpoint)
READS_DAMAGE = {"energy bit": ("inspect", "plot", "render", "analyze", "verify", "resume"),
                "frame bit": ("analyze", "export", "verify", "resume"),
                "checkpoint bit": ("plot", "render", "export", "analyze", "verify", "resume")}


def trial_damage(ref: Reference, case: str, command: str) -> Trial:
    """One case of :data:`DAMAGE_CASES` fed to one command of :data:`DAMAGE_COMMANDS`."""
    folder = ref.new_dir("damage")
    t = Trial("damage", None, phase=f"{case} -> {command}")
    make, fragment = DAMAGE_CASES[case]
    path = folder / "run.h5"
    make(path, ref.path)
    before = path.read_bytes()
    listing = sorted(p.name for p in folder.iterdir())
    d = run_cli(DAMAGE_COMMANDS[command](path, folder, ref.scenario), ref.timeout)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:200]
    modified = path.read_bytes() != before
    if fragment is None:  # a killed writer's file: every command works; the read-only ones leave it as it is
        silent = read_around = False
        clean = d.rc == 0 and not (modified and command in READ_ONLY)
    else:
        located = command == "verify" and d.rc == 1 and "bit" in case and fragment in d.out
        one_line = len(d.err_lines) == 1 and str(path) in d.err_lines[0] and fragment in d.err_lines[0]
        silent = d.rc == 0 and command in READS_DAMAGE.get(case, DAMAGE_COMMANDS)
        read_around = d.rc == 0 and not silent  # it did not need the damaged part, and made its output
        clean = located or (d.rc == 2 and one_line) or read_around
    t.extra.update(case=case, command=command, clean=clean,
                   traceback="Traceback" in d.err or "MemoryError" in d.err,
                   # changed by a command that failed, or by one that only reads (even when it succeeded)
                   modified=modified and (d.rc != 0 or command in READ_ONLY),
                   litter=d.rc != 0 and sorted(p.name for p in folder.iterdir()) != listing,
                   silent=silent, read_around=read_around)
    shutil.rmtree(folder, ignore_errors=True)
    return t


# --- provenance: what a resume changed, recorded or refused (docs/model.md#file-provenance, #resume-settings) -----

# case -> (extra `vfe run --resume` arguments, given the reference's steps; what must happen: "refuse" (exit 2, one
# line naming the key or file, the file byte-identical) or the history's last segment to record the change).
PROVENANCE_CASES = {
    "lr_mu changed": (lambda steps: ["--set", "dynamics.lr_mu=0.05"], "refuse", "dynamics.lr_mu"),
    "output.dtype changed": (lambda steps: ["--set", "output.dtype=float64"], "refuse", "output.dtype"),
    "output.fields gains beta": (lambda steps: ["--set", "output.fields=[mu,sigma,phi,beta]"], "refuse",
                                 "output.fields"),
    "fewer steps": (lambda steps: ["--steps", steps // 2], "record", "dynamics.steps"),
    "more steps": (lambda steps: ["--steps", steps + 10], "record", "dynamics.steps"),
    "input file edited": (lambda steps: ["--steps", steps + 10], "refuse", "obs.npy"),
    "input file edited, allowed": (lambda steps: ["--steps", steps + 10, "--allow-changed-inputs"], "record",
                                   "observations.path"),
    "older version's file": (lambda steps: ["--steps", steps + 10], "record", "before provenance"),
}
FILE_INPUT_STEPS = 20  # the run made for the input-file cases (its observations read from obs.npy)


def _child_history(path: str) -> dict:
    """The run's history and stored configuration, as gauge_vfe reads them."""
    import gauge_vfe

    try:
        with gauge_vfe.load(path) as traj:
            return {"segments": traj.segments(), "config": traj.config, "last_step": traj.last_step}
    except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}


def _child_strip(path: str) -> dict:
    """Make a file look as a version without the history wrote it."""
    import h5py

    with h5py.File(path, "a") as f:
        if "provenance" in f:
            del f["provenance"]
    return {"ok": True}


def _file_input_run(folder: Path, timeout: float) -> tuple[Path, Path, Done]:
    """A run whose observations come from a file (obs.npy, beside its scenario), into folder/run.h5."""
    import numpy as np

    np.save(folder / "obs.npy", np.random.default_rng(5).normal(size=(16, 16, 3)))
    scenario = folder / "file.yaml"
    text = SCENARIO.format(name="faults-file", seed=7, steps=FILE_INPUT_STEPS, every=5)
    scenario.write_text(re.sub(r"observations: .*\n", "observations: {kind: file, path: obs.npy, noise: 4.0}\n",
                               text))
    out = folder / "run.h5"
    return scenario, out, run_cli(run_args(scenario, out), timeout)


def trial_provenance(ref: Reference, case: str, steps: int) -> Trial:
    """One case of :data:`PROVENANCE_CASES`: a resume with a changed setting or input file, or of a file begun by a
    version without a history. Counted: refusals that are not one clean line, files a refusal changed, changes
    that end with exit 0 and no record of them (or with `config_json` claiming the new setting)."""
    folder = ref.new_dir("provenance")
    t = Trial("provenance", None)  # no fault time: the case is in extra
    extra_args, expect, key = PROVENANCE_CASES[case]
    path = folder / "run.h5"
    scenario = ref.scenario
    base_steps = steps
    if "input" in case:
        scenario, path, d = _file_input_run(folder, ref.timeout)
        base_steps = FILE_INPUT_STEPS
        if d.rc != 0:
            t.extra.update(case=case, setup_failed=f"exit {d.rc}: {(d.err_lines or [''])[-1][:120]}")
            return t
        import numpy as np

        np.save(folder / "obs.npy", np.random.default_rng(6).normal(size=(16, 16, 3)))  # edited between runs
    else:
        shutil.copyfile(ref.path, path)
        if case == "older version's file":
            _child("strip", path)
    before = file_sha256(path)
    d = run_cli(run_args(scenario, path, "--resume", *extra_args(base_steps)), ref.timeout)
    t.rc, t.err = d.rc, (d.err_lines or [""])[-1][:200]
    t.extra.update(case=case, traceback="Traceback" in d.err, segfault=d.rc is not None and d.rc < 0)
    if expect == "refuse":
        t.extra.update(clean=d.rc == 2 and len(d.err_lines) == 1 and key in d.err_lines[0],
                       modified=file_sha256(path) != before)
        t.extra["unrecorded"] = d.rc == 0  # it went on with the change
    else:
        h = _child("history", path)
        segments = h.get("segments") or []
        last = segments[-1] if segments else {}
        if case == "older version's file":
            recorded = [s.get("command") for s in segments] == ["before provenance", "resume"]
        elif "input" in case:
            recorded = key in (last.get("changed_inputs") or {})
        else:
            recorded = key in (last.get("changes") or {}) and \
                (h.get("config") or {}).get("dynamics", {}).get("steps") == base_steps  # never rewritten
        t.extra.update(clean=d.rc == 0, recorded=recorded, unrecorded=d.rc == 0 and not recorded,
                       modified=False, history_error=h.get("error") or h.get("child_failed"))
    shutil.rmtree(folder, ignore_errors=True)
    return t


# --- the report -----------------------------------------------------------------------------------------------------

def _frac(n: int, d: int) -> str:
    return f"{n}/{d}" if d else "-"


def _top(counter: collections.Counter, k: int = 3) -> str:
    return "; ".join(f"{v}x {key}" for key, v in counter.most_common(k))


def _diff_key(diff: str) -> str:
    """The object a difference is about, cut to two levels (/checkpoint/slot0, /particles/agents, ...)."""
    path = diff.split(":")[0].split("@")[0]
    if not path.startswith("/"):
        return diff[:80]
    return "/" + "/".join(path.strip("/").split("/")[:2]) + ("@" + diff.split("@")[1].split(":")[0]
                                                             if "@" in diff.split(":")[0] else "")


def summarize(cls: str, trials: list[Trial]) -> tuple[list[str], list[str]]:
    """One table row (cells) and detail lines for a fault class."""
    n = len(trials)
    with_file = [t for t in trials if t.has_file]
    details = []
    phases = collections.Counter(t.phase for t in trials if t.phase)
    if phases:
        details.append("fault landed (trials: readable, recovered identical, corrupt): " + ", ".join(
            f"{k} {v}: {sum(t.readable for t in trials if t.phase == k)}, "
            f"{sum(t.identical for t in trials if t.phase == k)}, {sum(t.corrupt for t in trials if t.phase == k)}"
            for k, v in phases.most_common()))
    ragged = sum(bool(t.file.get("ragged")) for t in with_file)
    swmr_only = sum(t.file.get("plain_open") is False for t in with_file if t.file.get("load_ok"))
    if ragged:
        details.append(f"ragged frames (a committed frame lacks a value or a time) after the fault: {ragged}")
    if swmr_only and not cli_has("repair"):
        details.append(f"open only in SWMR-read mode (consistency flags set; no `vfe repair` yet): {swmr_only}")
    if cli_has("repair"):
        bad = sum(1 for t in with_file if t.file.get("load_ok") and t.file.get("plain_after_repair") is False)
        details.append(f"`vfe repair` then plain h5py open failed: {bad}")
    load_errs = collections.Counter(t.file.get("load_error") for t in with_file if t.file.get("load_error"))
    if load_errs:
        details.append("load failed: " + _top(load_errs))
    read_errs = collections.Counter(t.file.get("read_error") or t.after.get("read_error") for t in trials
                                    if t.file.get("read_error") or t.after.get("read_error"))
    if read_errs:
        details.append("read errors: " + _top(read_errs))
    rec_fail = collections.Counter(f"exit {t.recovery_rc}: {t.recovery_err}" for t in trials
                                   if t.recovery and t.recovery_rc != 0)
    if rec_fail:
        details.append(f"{trials[0].recovery if cls != 'analyze' else 'analyze again'} failed: " + _top(rec_fail))
    diff_keys = collections.Counter(k for t in trials for k in {_diff_key(x) for x in t.diffs})
    if diff_keys:
        details.append("not identical, trials x where: " + _top(diff_keys, 8))
    corrupt = sum(t.corrupt for t in trials)
    fresh = sum(t.recovery == "fresh" for t in trials)
    resumed_ok = sum(t.identical for t in trials)
    readable = sum(t.readable for t in with_file)
    notes = []

    if cls == "kill":
        notes.append(f"{n - len(with_file)} before the file existed (fresh run)")
        rc_after = collections.Counter(t.phase for t in trials if not t.identical)
        if rc_after:
            notes.append("not identical: " + ", ".join(f"{k} {v}" for k, v in rc_after.most_common()))
        row = ["1 SIGKILL run", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n), _frac(corrupt, n)]
    elif cls == "sigint":
        outcomes = collections.Counter(sigint_outcome(t) for t in trials)
        notes.append(f"interrupted {outcomes['interrupted']} / swallowed {outcomes['swallowed']} / "
                     f"other {outcomes['other']}" + (f" / run ended before the signal {outcomes['ended first']}"
                                                      if outcomes["ended first"] else ""))
        others = collections.Counter(f"exit {t.rc}, {t.file.get('recorded_status', 'no file')}"
                                     for t in trials if sigint_outcome(t) == "other")
        if others:
            details.append("other outcomes: " + _top(others, 5))
            errs = collections.Counter(t.err for t in trials if sigint_outcome(t) == "other" and t.err)
            if errs:
                details.append("their last stderr line: " + _top(errs))
        if fresh:
            notes.append(f"{fresh} before file")
        row = ["2 SIGINT run", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n), _frac(corrupt, n)]
    elif cls.startswith("concurrent"):
        corrupt_files = sum(t.extra.get("corrupt_files", 0) for t in trials)
        lost = sum(t.extra.get("lost_runs", 0) for t in trials)
        clean = sum(bool(t.extra.get("clean_refusal")) for t in trials)
        notes.append(f"corrupt files {corrupt_files}, lost runs {lost}, loser exit 2 naming the other {clean}/{n}")
        rcs = collections.Counter(str(sorted(map(str, t.extra.get("rcs", [])))) for t in trials)
        details.append("exit codes: " + _top(rcs, 5))
        errs = collections.Counter(e for t in trials for e in t.extra.get("errs", []) if e)
        if errs:
            details.append("stderr: " + _top(errs))
        nfiles = collections.Counter(len(t.extra.get("files", {})) for t in trials)
        details.append("files left: " + ", ".join(f"{k} files x{v}" for k, v in sorted(nfiles.items())))
        statuses = collections.Counter(f"{v.get('recorded_status')}{' corrupt' if v.get('corrupt') else ''}"
                                       for t in trials for v in t.extra.get("files", {}).values())
        details.append("their status: " + _top(statuses, 5))
        label = "3a same -o" if cls == "concurrent-o" else "3b same default path"
        row = [label, str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n) if cls == "concurrent-o" else "-",
               _frac(sum(t.extra.get("corrupt_files", 0) > 0 for t in trials), n)]
    elif cls == "reader":
        ok = sum(bool(t.extra.get("ok")) for t in trials)
        opened = sum(bool(t.extra.get("reader_open")) and bool(t.extra.get("run_still_going")) for t in trials)
        notes.append(f"run exit 0 + completed + analysis stored {ok}/{n}; reader opened mid-run {opened}/{n}")
        fails = collections.Counter(f"exit {t.rc}: {t.err}" for t in trials if not t.extra.get("ok"))
        if fails:
            details.append("failed runs: " + _top(fails))
        rerr = collections.Counter(k for t in trials for k in t.extra.get("reader", {}).get("read_errors", {}))
        if rerr:
            details.append("reader errors: " + _top(rerr))
        row = ["4 reader held open", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n), _frac(corrupt, n)]
    elif cls == "diskfull":
        skipped = [t for t in trials if t.extra.get("skipped")]
        if skipped and len(skipped) == n:
            return ["5 full disk", str(n), "-", "-", "-", "skipped: " + skipped[0].extra["skipped"]], details
        segv = sum(bool(t.extra.get("segfault")) for t in trials)
        clean = sum(bool(t.extra.get("clean")) for t in trials)
        filled = sum(t.phase == "filled" for t in trials)
        notes.append(f"segfaults {segv}; exit 1 + one 'no space left on device' line {clean}/{n}; filled {filled}/{n}")
        outs = collections.Counter(f"exit {t.rc} ({t.extra.get('err_lines')} stderr lines): {t.err[:90]}"
                                   for t in trials)
        details.append("outcomes: " + _top(outs, 4))
        row = ["5 full disk", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n), _frac(corrupt, n)]
    elif cls == "analyze":
        intact = sum(bool(t.extra.get("frames_intact")) for t in trials)
        again = sum(t.recovery_rc == 0 for t in trials)
        notes.append(f"frames intact {intact}/{n}; analyze again exit 0 {again}/{n}")
        row = ["6 SIGKILL analyze", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n), _frac(corrupt, n)]
    elif cls == "outputs":
        lost = sum(bool(t.extra.get("lost")) for t in trials)
        judged = [t for t in trials if "clean" in t.extra]
        clean = sum(bool(t.extra.get("clean")) for t in judged)
        tracebacks = sum(bool(t.extra.get("traceback")) for t in trials)
        notes.append(f"earlier outputs or other files lost {lost}; refusals and Ctrl-C exits clean "
                     f"{_frac(clean, len(judged))}; tracebacks {tracebacks}")
        by_case = collections.Counter(f"{t.phase}: exit {t.rc}" for t in trials)
        details.append("outcomes: " + _top(by_case, 12))
        if lost:
            details.append("lost: " + "; ".join(f"{t.phase} (signal at {t.delay or 0:.2f} s, exit {t.rc})"
                                                for t in trials if t.extra.get("lost")))
        row = ["7 outputs (export, render, plot)", str(n), "-", "-", "-"]
    elif cls == "diskout":
        skipped = [t for t in trials if t.extra.get("skipped")]
        if skipped and len(skipped) == n:
            return ["8 full disk outside the run", str(n), "-", "-", "-",
                    "skipped: " + skipped[0].extra["skipped"]], details
        segv = sum(bool(t.extra.get("segfault")) for t in trials)
        clean = sum(bool(t.extra.get("clean")) for t in trials)
        tracebacks = sum(bool(t.extra.get("traceback")) for t in trials)
        lost = sum(not t.extra.get("earlier_intact") for t in trials)
        left = sum(bool(t.extra.get("temporaries")) for t in trials)
        notes.append(f"segfaults {segv}; tracebacks {tracebacks}; exit 1 + one 'no space' line {clean}/{n}; earlier "
                     f"outputs or inputs changed {lost}; temporaries left {left}")
        details.append("outcomes: " + _top(collections.Counter(f"{t.phase}: exit {t.rc}: {t.err[:80]}"
                                                               for t in trials), 8))
        row = ["8 full disk outside the run", str(n), "-", "-", "-"]
    elif cls == "sweep":
        clean = sum(bool(t.extra.get("clean")) for t in trials if "clean" in t.extra)
        judged = sum("clean" in t.extra for t in trials)
        litter = sum(bool(t.extra.get("litter")) for t in trials)
        notes.append(f"--resume exit 0, every member completed and identical {resumed_ok}/{n}; files left beside "
                     f"the members {litter}; SIGINT exit 130 + one line {_frac(clean, judged)}")
        for t in trials:
            if t.extra.get("litter") or not t.identical:
                details.append(f"{t.phase} at {t.delay or 0:.1f} s: exit {t.rc}, resume exit {t.recovery_rc} "
                               f"({t.recovery_err!r}), left {t.extra.get('litter')}, {t.diffs[:3]}")
        row = ["9 sweep interrupted", str(n), "-", _frac(resumed_ok, n), "-"]
    elif cls == "lock":
        refused = sum(bool(t.extra.get("clean_refusal")) for t in trials)
        untouched = sum(bool(t.extra.get("untouched")) for t in trials)
        notes.append(f"refused (exit 2, one line naming the live run) {refused}/{n}; live file untouched "
                     f"{untouched}/{n}; live run then completed identical {resumed_ok}/{n}")
        for t in trials:
            if not (t.extra.get("clean_refusal") and t.extra.get("untouched") and t.identical):
                details.append(f"{t.extra.get('case')}: exit {t.rc} ({t.err!r}), untouched {t.extra.get('untouched')}"
                               f", run exit {t.extra.get('run_rc')} ({t.extra.get('run_err')!r}), {t.diffs[:3]}"
                               + (f", {t.extra['skipped']}" if t.extra.get("skipped") else ""))
        row = ["10 lock by another name", str(n), _frac(readable, len(with_file)), _frac(resumed_ok, n),
               _frac(corrupt, n)]
    elif cls == "damage":
        count = lambda key: sum(bool(t.extra.get(key)) for t in trials)  # noqa: E731
        notes.append(f"refused cleanly or read around {count('clean')}/{n}; silent wrong values {count('silent')}; "
                     f"tracebacks {count('traceback')}; inputs modified {count('modified')}; outputs left by a "
                     f"refusal {count('litter')}; exit 0 reading around the damage {count('read_around')}")
        for t in trials:
            if not t.extra.get("clean") or t.extra.get("modified") or t.extra.get("traceback"):
                details.append(f"{t.phase}: exit {t.rc} ({t.err!r}), modified {t.extra.get('modified')}")
        around = [t.phase for t in trials if t.extra.get("read_around")]
        if around:
            details.append("exit 0 without reading the damaged part: " + ", ".join(around))
        row = ["11 damaged, foreign and killed files", str(n), "-", "-", _frac(count("silent"), n)]
    elif cls == "provenance":
        count = lambda key: sum(bool(t.extra.get(key)) for t in trials)  # noqa: E731
        notes.append(f"as expected (refused in one line, or recorded) {count('clean')}/{n}; unrecorded changes "
                     f"{count('unrecorded')}; files changed by a refusal {count('modified')}; tracebacks "
                     f"{count('traceback')}; segmentation faults {count('segfault')}")
        for t in trials:
            if not t.extra.get("clean") or t.extra.get("unrecorded") or t.extra.get("modified") or \
                    t.extra.get("traceback") or t.extra.get("setup_failed"):
                details.append(f"{t.extra.get('case')}: exit {t.rc} ({t.err!r}), {t.extra}")
        row = ["12 provenance across resumes", str(n), "-", "-", "-"]
    else:
        raise ValueError(cls)
    return row + ["; ".join(notes)], details


MUST_SHOW = ("silent wrong values", "live files destroyed", "earlier outputs lost", "tracebacks",
             "inputs modified by a failed command")


def must_show(results: dict[str, list[Trial]]) -> list[str]:
    """The five counts of issue 26's "Must show" over every class measured, each with the classes it came from:

    * silent wrong values: a command that read damage exited 0 (damage); a recovery (``--resume``, `vfe
      analyze` again, `vfe sweep --resume`) exited 0 with a file that is not the uninterrupted run's;
    * live files destroyed: a live run's file changed by a command aimed at it by another name, or the run then
      not ending bit-identical (lock); a run's file corrupt or lost when two runs started at once (concurrent);
      a run that failed while a reader held its file (reader);
    * earlier outputs lost: an earlier output (or another file) changed by a killed, interrupted or refused
      command (outputs), or by a full disk (diskout);
    * tracebacks: printed by any `vfe` command the harness ran (:data:`TRACEBACKS`);
    * inputs modified by a failed command: the damage class's inputs changed by a command that failed or only
      reads; the live file changed by a refused command (lock).
    """
    found = {k: collections.Counter() for k in MUST_SHOW}
    for cls, trials in results.items():
        for t in trials:
            if t.extra.get("skipped"):
                continue
            if (cls == "damage" and t.extra.get("silent")) or (
                    cls in ("kill", "sigint", "diskfull", "analyze", "sweep") and t.recovery_rc == 0
                    and not t.identical):
                found["silent wrong values"][cls] += 1
            if (cls == "lock" and not (t.extra.get("untouched") and t.identical)) or \
                    (cls.startswith("concurrent") and (t.extra.get("corrupt_files") or t.extra.get("lost_runs"))) or \
                    (cls == "reader" and not t.extra.get("ok")):
                found["live files destroyed"][cls] += 1
            if (cls == "outputs" and t.extra.get("lost")) or (cls == "diskout" and not t.extra.get("earlier_intact")):
                found["earlier outputs lost"][cls] += 1
            if (cls == "damage" and t.extra.get("modified")) or (cls == "lock" and not t.extra.get("untouched")):
                found["inputs modified by a failed command"][cls] += 1
    found["tracebacks"] = TRACEBACKS
    width = max(map(len, MUST_SHOW))
    lines = []
    for k in MUST_SHOW:
        by = ", ".join(f"{c} {v}" for c, v in sorted(found[k].items()) if v)
        lines.append(f"  {k:<{width}}  {sum(found[k].values()):>3}" + (f"   ({by})" if by else ""))
    return lines


def table(rows: list[list[str]]) -> list[str]:
    head = ["fault", "trials", "readable", "resumed/identical", "corrupt", "notes"]
    widths = [max(len(r[k]) for r in [head] + rows) for k in range(5)]
    fmt = lambda r: " | ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))) \
        + " | " + r[5]  # noqa: E731
    return [fmt(head), "-+-".join("-" * w for w in widths) + "-+-" + "-" * 20] + [fmt(r) for r in rows]


# --- entry point ----------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="gauge-vfe fault injection (see the module docstring)")
    ap.add_argument("classes", nargs="*", metavar="CLASS",
                    help="fault classes to run, or `all` (the default): the same as --only")
    ap.add_argument("--quick", action="store_true", help="a handful of trials per class and 60 steps (CI smoke)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="fault classes: " + ", ".join(CLASSES))
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill times and disk sizes (default 1)")
    ap.add_argument("--kills", type=int, default=None, help="SIGKILL trials (40; quick 4)")
    ap.add_argument("--sigints", type=int, default=None, help="SIGINT trials (20; quick 3)")
    ap.add_argument("--races", type=int, default=None, help="concurrent-start trials per variant (5; quick 1)")
    ap.add_argument("--procs", type=int, default=2, help="processes per concurrent start (2)")
    ap.add_argument("--readers", type=int, default=None, help="reader-held-open trials (3; quick 1)")
    ap.add_argument("--diskfull", type=int, default=None, help="full-disk trials (3; quick 1)")
    ap.add_argument("--analyze-kills", type=int, default=None, help="`vfe analyze` SIGKILL trials (10; quick 2)")
    ap.add_argument("--outputs", type=int, default=None, help="rounds of the output cases (3; quick 1)")
    ap.add_argument("--sweeps", type=int, default=None, help="rounds of the sweep cases (1)")
    ap.add_argument("--diskout", type=int, default=None, help="rounds of the full-disk-outside-the-run cases (1)")
    ap.add_argument("--lock-rounds", type=int, default=None,
                    help=f"rounds of the {len(LOCK_CASES)} lock-by-another-name cases (1; quick 1)")
    ap.add_argument("--steps", type=int, default=None, help="steps of the scenario (150; quick 60)")
    ap.add_argument("--timeout", type=float, default=None, help="per process, s (default max(60, 10 T_total))")
    ap.add_argument("--src", default=None, metavar="DIR",
                    help="measure the package in DIR (a source tree, e.g. `git archive HEAD` unpacked) instead of "
                         "the installed one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write every trial as JSON")
    ap.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        mode, rest = args.child[0], args.child[1:]
        out = {"probe": _child_probe, "plain": _child_plain, "compare": _child_compare, "check": _child_check,
               "hold": lambda p, t: _child_hold(p, float(t)), "history": _child_history,
               "strip": _child_strip}[mode](*rest)
        print(json.dumps(out), flush=True)
        return 0

    chosen = (args.only or []) + [c for c in args.classes if c != "all"]
    only = [c.strip() for item in (chosen or list(CLASSES)) for c in item.split(",") if c.strip()]
    unknown = [c for c in only if c not in CLASSES]
    if unknown:
        ap.error(f"unknown fault class(es) {unknown}; choose from {list(CLASSES)}")
    q = args.quick
    counts = {"kill": args.kills if args.kills is not None else (4 if q else 40),
              "sigint": args.sigints if args.sigints is not None else (3 if q else 20),
              "concurrent": args.races if args.races is not None else (1 if q else 5),
              "reader": args.readers if args.readers is not None else (1 if q else 3),
              "diskfull": args.diskfull if args.diskfull is not None else (1 if q else 3),
              "analyze": args.analyze_kills if args.analyze_kills is not None else (2 if q else 10),
              "outputs": args.outputs if args.outputs is not None else (1 if q else 3),
              "lock": args.lock_rounds if args.lock_rounds is not None else 1,
              "sweep": args.sweeps if args.sweeps is not None else 1,
              "diskout": args.diskout if args.diskout is not None else 1}
    steps = args.steps if args.steps is not None else (60 if q else 150)

    t_all = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="vfe-faults-"))
    log = lambda msg: print(f"[{time.monotonic() - t_all:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa
    results: dict[str, list[Trial]] = {}
    try:
        if args.src:
            use_source(args.src)
        log(f"reference run ({steps} steps) in {tmp}")
        try:
            ref = make_reference(tmp, steps, timeout=args.timeout, timing_runs=1 if q else 3)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        log(f"T_total {ref.wall:.1f} s (file after {ref.t_file:.1f} s), `vfe analyze` {ref.analyze_wall:.1f} s, "
            f"file {ref.size / 1024:.0f} KiB, repair command: {cli_has('repair')}")

        def rng(name):
            return random.Random(f"{args.seed}:{name}")

        def loop(name, n, fn):
            CURRENT[0] = name.split("-")[0]
            results[name] = []
            for k in range(n):
                results[name].append(fn(k))
                t = results[name][-1]
                log(f"{name} {k + 1}/{n}: delay {t.delay if t.delay is None else round(t.delay, 2)} "
                    f"(T_total {ref.t_total():.1f}) rc {t.rc} "
                    f"phase {t.phase or '-'} readable {t.readable} identical {t.identical}"
                    + (f" ({t.diffs[0]}{' ...' if len(t.diffs) > 1 else ''})" if t.diffs else ""))

        if "kill" in only:
            r = rng("kill")
            loop("kill", counts["kill"], lambda k: trial_kill(ref, r.random() * ref.t_total()))
        if "sigint" in only:
            r = rng("sigint")
            loop("sigint", counts["sigint"], lambda k: trial_sigint(ref, r.random() * ref.t_total()))
        if "concurrent" in only:
            loop("concurrent-o", counts["concurrent"], lambda k: trial_concurrent(ref, args.procs, True))
            loop("concurrent-default", counts["concurrent"], lambda k: trial_concurrent(ref, args.procs, False))
        if "reader" in only:
            loop("reader", counts["reader"], lambda k: trial_reader(ref))
        diskfull_skip = None
        if "diskfull" in only:
            ok, why = can_mount()
            if ok:
                r = rng("diskfull")
                loop("diskfull", counts["diskfull"], lambda k: trial_diskfull(ref, r.uniform(0.25, 0.9)))
            else:
                diskfull_skip = "needs root" if why == "needs root" else f"needs root ({why[:60]})"
        if "analyze" in only:
            r = rng("analyze")
            loop("analyze", counts["analyze"], lambda k: trial_analyze_kill(ref, r.random() * ref.t_analyze()))
        if "outputs" in only:
            r = rng("outputs")
            cases = [c for _ in range(counts["outputs"]) for c in OUTPUT_CASES]
            loop("outputs", len(cases), lambda k: trial_output(ref, cases[k], r))

        if "sweep" in only:
            CURRENT[0] = "sweep"
            r = rng("sweep")
            sweep_ref = sweep_reference(ref)
            cases = [c for _ in range(counts["sweep"]) for c in SWEEP_CASES]
            loop("sweep", len(cases), lambda k: trial_sweep(ref, cases[k], sweep_ref, r))

        if "diskout" in only:
            ok, why = can_mount()
            if ok:
                cases = [c for _ in range(counts["diskout"]) for c in DISKOUT_CASES]
                loop("diskout", len(cases), lambda k: trial_diskout(ref, cases[k]))
            else:
                results["diskout"] = [Trial("diskout", extra={"skipped": f"needs root ({why[:60]})"})]

        if "lock" in only:  # a run long enough to be stopped in its step loop, whatever --steps says
            CURRENT[0] = "lock"
            lock_dir = tmp / "lock-reference"
            lock_dir.mkdir()
            lock_ref = make_reference(lock_dir, LOCK_STEPS, LOCK_EVERY, timeout=args.timeout, warmup=False,
                                      analyze=False)
            cases = list(LOCK_CASES)
            loop("lock", counts["lock"] * len(cases), lambda k: trial_lock(lock_ref, cases[k % len(cases)]))

        if "damage" in only:
            cases = [(c, m) for c in DAMAGE_CASES for m in DAMAGE_COMMANDS]
            loop("damage", len(cases), lambda k: trial_damage(ref, *cases[k]))

        if "provenance" in only:
            cases = list(PROVENANCE_CASES)
            loop("provenance", len(cases), lambda k: trial_provenance(ref, cases[k], steps))

        rows, details = [], []
        for name, trials in results.items():
            if not trials:
                continue
            row, det = summarize(name, trials)
            rows.append(row)
            details += [f"  {row[0]}: {d}" for d in det]
        if diskfull_skip:
            rows.append(["5 full disk", "0", "-", "-", "-", f"skipped ({diskfull_skip})"])
        wall = time.monotonic() - t_all
        print(f"gauge-vfe fault injection: seed {args.seed}, {'quick' if q else 'full'}, scenario 16x16, 4 agents, "
              f"{steps} steps, output.every 5, analysis on; package from {SRC or 'the installed gauge_vfe'}")
        print(f"reference: T_total {ref.wall:.1f} s at the start, {ref.t_total():.1f} s at the end (file appears "
              f"at {ref.t_file:.1f} s), T_analyze {ref.analyze_wall:.1f} s, {ref.size / 1024:.0f} KiB; two "
              f"uninterrupted runs bit-identical: "
              f"{'yes' if not ref.deterministic else 'NO ' + str(ref.deterministic[:3])}; re-analysis identical: "
              f"{'yes' if not ref.reanalysis else 'NO ' + str(ref.reanalysis[:3])}; `vfe repair`: "
              f"{'present' if cli_has('repair') else 'absent'}")
        print()
        print("\n".join(table(rows)))
        print("\nmust show (issue 26), over every class measured:")
        print("\n".join(must_show(results)))
        if details:
            print("\ndetails:")
            print("\n".join(details))
        print(f"\ntotal wall time {wall:.1f} s; seed {args.seed}")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "seed": args.seed, "quick": q, "steps": steps, "wall": wall,
                "reference": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(ref).items()},
                "trials": {k: [asdict(t) for t in v] for k, v in results.items()}}, indent=1, default=str))
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
