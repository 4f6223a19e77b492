"""Cost of logging on B1: ``vfe run`` against the bare engine, as ratios from one process run.

    python benchmarks/bench_logging.py [--rounds 6] [--steps 600] [--every 1,10,1000]

B1 is bench_engine.py's scenario (32x32, 8 agents, K = 3, all terms, plain gradient descent), with the end-of-run
analysis off (it is not logging, and its cost does not scale with the steps) and the default output (mu, sigma,
phi in float32, gzip level 1 with shuffle).

Throughput (the figure issue 14 sets a target for: >= 85 % of the engine at ``output.every: 10``):

* engine: a fresh ``Simulation`` (``keep_history=False``, as ``vfe run`` builds it; built untimed) stepped
  ``--steps`` times with a bare ``sim.step()`` loop, so it goes through the same states as the runs; its rate is
  steps / wall time of the loop.
* ``vfe run``: :func:`run_scenario` of a fresh ``--steps``-step run into a new file, for each ``output.every``;
  its rate is the ``steps_per_second`` of the result, i.e. steps over the wall time of ``Simulation.run`` with
  the writer attached: the initial frame, every step with its energies and frames, the final frame and closing
  the file (building the simulation and creating the file, fixed costs of any run, are not in it).

The engine block and the runs alternate, round after round (the order turning each round), in this one process,
so that a busy neighbour on the machine slows all of them alike. Two ratios are printed: the fastest block of
each kind over the fastest engine block (the least disturbed of each), and the median over rounds of a run's
rate over the engine rate of its own round. Absolute rates are for orientation only: compare ratios, never
rates across runs of this script. The kernels use both cores, so a neighbour's load shows: read the two ratios
together, and use more ``--rounds`` on a busy machine.

Breakdown (one more run per ``output.every``, not counted in the ratios; the whole ``run_scenario`` call, so
creating the file is in it): the run is instrumented by wrapping h5py's ``Group.__getitem__`` (dataset lookup
by path), ``Dataset.resize``, ``Dataset.__setitem__`` (the write), ``Dataset.__getitem__`` (reads),
``Dataset.flush`` and ``File.flush``, and the Python of the observer (``TrajectoryObserver.update``) and of
the writer (``log_energy``, ``log_frame``, ``_flush_energies``, ``_checkpoint`` and, where present, the batch
writer ``_write_frames``). HDF5 compresses a chunk when it leaves the chunk cache, during the write or at the
flush, so the write and the flush of the gzip field values are booked as compression (copying the compressed
chunks to the file is a small part of them). Each wrapper's time is *exclusive* of the wrapped calls inside
it, and every h5py call is booked under the innermost writer method it runs in (frames, energy series,
checkpoint; "other" outside them), so the parts add up without double counting; the wrappers themselves add
about a microsecond a call, charged to the parts. ``energy series (per step)`` is the Python of logging one
step's energies: the gradient norms (``Evaluation.grad_norms``), ``log_energy`` and its buffering; the
energy terms' sums (``Evaluation.terms``) are in ``observer``.

Compression is also measured apart on the same data: HDF5's filters on one frame's values are byte shuffle then
zlib deflate at the configured level, so one frame of B1's float32 fields is shuffled with numpy and compressed
with ``zlib.compress`` (best of many); HDF5's own pass over the same bytes costs the same zlib work plus a copy.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import statistics
import tempfile
import time
import warnings
import zlib
from collections import defaultdict
from pathlib import Path

import bench_engine

EVERY = (1, 10, 1000)


# --- the runs ----------------------------------------------------------------------------------------------------

def b1_scenario(every: int, steps: int):
    """B1 as a loaded scenario (what ``vfe run`` gets), analysis off, a frame every ``every`` steps."""
    import yaml

    from gauge_vfe.agents.setup.scenario import load_scenario

    cfg = copy.deepcopy(bench_engine.scenario("B1"))
    cfg["output"] = {"every": every}
    cfg["analysis"] = {"enabled": False}
    cfg["dynamics"]["steps"] = steps
    return load_scenario(text=yaml.safe_dump(cfg))


def engine_rate(steps: int) -> float:
    """A fresh B1 simulation (built untimed) stepped ``steps`` times: the same states a run goes through."""
    from gauge_vfe import agents

    sim = agents.Simulation.from_config(bench_engine.scenario("B1"), keep_history=False)
    t0 = time.perf_counter()
    for _ in range(steps):
        sim.step()
    return steps / (time.perf_counter() - t0)


def run_rate(folder: Path, every: int, steps: int, tag: str) -> float:
    from gauge_vfe.agents.runner.run import run_scenario

    path = folder / f"every{every}-{tag}.h5"
    result = run_scenario(b1_scenario(every, steps), path)
    assert result.status == "completed", result.message
    path.unlink()
    return result.steps_per_second


def throughput(folder: Path, rounds: int, steps: int, everies) -> dict:
    """Rates per round of the engine (key 0) and of ``vfe run`` per ``every``; the order of the blocks turns
    round by round, so that no kind always follows the same neighbour."""
    engine_rate(30)  # load the kernels
    run_rate(folder, 10, 30, "warm")
    kinds = [0, *everies]
    rates = {kind: [] for kind in kinds}
    for k in range(rounds):
        for kind in kinds[k % len(kinds):] + kinds[:k % len(kinds)]:
            rates[kind].append(engine_rate(steps) if kind == 0 else run_rate(folder, kind, steps, str(k)))
    return rates


# --- the breakdown -----------------------------------------------------------------------------------------------

class Parts:
    """Exclusive wall time per (context, part) of wrapped functions; see the module docstring."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self._inner = []  # per open call: time spent in wrapped calls inside it
        self._context = []  # the writer methods we are in, innermost last
        self._undo = []

    def wrap(self, owner, name: str, part, context: str | None = None) -> None:
        """Time ``owner.name``; ``part`` is a label or a function of the call's arguments giving one; a
        ``context`` names what the h5py calls inside belong to."""
        if not hasattr(owner, name):
            return
        original = getattr(owner, name)
        parts = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            label = part(*args) if callable(part) else part
            where = parts._context[-1] if parts._context else "other"
            if context is not None:
                parts._context.append(context)
            parts._inner.append(0.0)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                inner = parts._inner.pop()
                if context is not None:
                    parts._context.pop()
                key = (context or where, label)
                parts.seconds[key] += dt - inner
                parts.calls[key] += 1
                if parts._inner:
                    parts._inner[-1] += dt

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def _write_label(ds, *args) -> str:
    return "compress+write" if ds.compression else "write"


def _flush_label(ds, *args) -> str:
    # HDF5 compresses a chunk when it leaves the chunk cache: at the write, or at this flush
    return "compress+flush" if ds.compression else "flush"


@contextlib.contextmanager
def instrumented():
    import h5py

    from gauge_vfe.agents.io.writer import TrajectoryWriter
    from gauge_vfe.agents.model.energy import Evaluation
    from gauge_vfe.agents.runner.observers import TrajectoryObserver

    parts = Parts()
    parts.wrap(h5py.Group, "__getitem__", "lookup")
    parts.wrap(h5py.Dataset, "resize", "resize")
    parts.wrap(h5py.Dataset, "__setitem__", _write_label)
    parts.wrap(h5py.Dataset, "__getitem__", "read")
    parts.wrap(h5py.Dataset, "flush", _flush_label)
    parts.wrap(h5py.File, "flush", "flush")
    parts.wrap(Evaluation, "grad_norms", "python", "energy series (per step)")
    parts.wrap(TrajectoryWriter, "log_energy", "python", "energy series (per step)")
    parts.wrap(TrajectoryWriter, "_flush_energies", "python", "energy series (HDF5)")
    parts.wrap(TrajectoryWriter, "log_frame", "python", "frames")
    parts.wrap(TrajectoryWriter, "_write_frames", "python", "frames")
    parts.wrap(TrajectoryWriter, "_checkpoint", "python", "checkpoint")
    parts.wrap(TrajectoryObserver, "update", "python", "observer")
    try:
        yield parts
    finally:
        parts.restore()


def breakdown(folder: Path, every: int, steps: int) -> tuple[Parts, float]:
    from gauge_vfe.agents.runner.run import run_scenario

    with instrumented() as parts:
        result = run_scenario(b1_scenario(every, steps), folder / f"parts{every}.h5")
    return parts, result.wall_time


def compression_per_frame(level: int = 1, repeats: int = 50) -> float:
    """Seconds to shuffle and deflate one B1 frame (mu, sigma, phi as float32), as HDF5's filters do."""
    import numpy as np

    from gauge_vfe import agents

    sim = agents.Simulation.from_config(bench_engine.scenario("B1"), keep_history=False)
    for _ in range(10):
        sim.step()
    arrays = [np.ascontiguousarray(getattr(sim.state, n), dtype=np.float32) for n in ("mu", "sigma", "phi")]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for a in arrays:
            shuffled = a.view(np.uint8).reshape(-1, 4).T.copy()  # byte k of every value together
            zlib.compress(shuffled, level)
        best = min(best, time.perf_counter() - t0)
    return best


PART_NAMES = {"compress+write": "compression: write of the gzip field values",
              "compress+flush": "compression: flush of the gzip field values", "resize": "dataset resize",
              "flush": "flush (Dataset.flush, File.flush)", "write": "writes, uncompressed",
              "lookup": "dataset lookup by path", "read": "reads", "python": "Python of writer and observer"}


def print_breakdown(parts: Parts, every: int, steps: int, wall: float, engine: float) -> None:
    frames = steps // every + 1
    print(f"\n  output.every = {every}: {frames} frames in {steps} steps, run wall time {wall:.2f} s (the engine's "
          f"fastest block would take {steps / engine:.2f} s)")
    by_part, energy, total = defaultdict(float), 0.0, 0.0
    for (context, label), sec in parts.seconds.items():
        by_part[label] += sec
        energy += sec if context.startswith("energy") else 0.0
        total += sec
    print(f"    {'by part':52s} {'ms/frame':>9s} {'ms/step':>8s} {'% step':>7s}")
    rows = sorted(by_part.items(), key=lambda kv: -kv[1]) + [("energy series, all its parts", energy),
                                                              ("all parts", total)]
    for label, sec in rows:
        print(f"    {PART_NAMES.get(label, label):52s} {sec / frames * 1e3:9.3f} {sec / steps * 1e3:8.4f} "
              f"{sec / steps * engine:7.1%}")
    print(f"    {'by writer method and part':36s} {'calls':>7s} {'ms/frame':>9s} {'ms/step':>8s}")
    for (context, label), sec in sorted(parts.seconds.items(), key=lambda kv: -kv[1]):
        if sec / steps >= 1e-6:
            print(f"    {context + ': ' + label:36s} {parts.calls[(context, label)]:7d} {sec / frames * 1e3:9.3f} "
                  f"{sec / steps * 1e3:8.4f}")


# --- main ----------------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="alternating blocks of each kind")
    ap.add_argument("--steps", type=int, default=600, help="steps per block and per run")
    ap.add_argument("--every", default=",".join(map(str, EVERY)), help="output.every values, comma-separated")
    args = ap.parse_args()
    everies = [int(e) for e in args.every.split(",")]

    warnings.simplefilter("ignore")  # uphill steps are not the question here
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as d:
        folder = Path(d)
        rates = throughput(folder, args.rounds, args.steps, everies)
        engine = max(rates[0])
        print(f"B1, {args.rounds} alternating rounds of {args.steps} steps per block; ratio: fastest block against "
              "the fastest engine block; per round: median over rounds of the ratio to that round's engine block")
        print(f"  {'':32s} {'steps/s':>8s} {'ratio':>6s} {'per round':>9s}")
        print(f"  {'engine (bare sim.step() loop)':32s} {engine:8.0f} {1:6.3f}")
        for every in everies:
            best = max(rates[every])
            per_round = statistics.median(r / e for r, e in zip(rates[every], rates[0]))
            mark = "  (target >= 0.85)" if every == 10 else ""
            print(f"  {f'vfe run, output.every = {every}':32s} {best:8.0f} {best / engine:6.3f} {per_round:9.3f}{mark}")
        comp = compression_per_frame()
        print(f"\nCompression alone (shuffle + zlib level 1 of one float32 frame of mu, sigma, phi, best of 50): "
              f"{comp * 1e3:.3f} ms/frame, {comp / 10 * 1e3:.4f} ms/step at output.every = 10 "
              f"({comp / 10 * engine:.1%} of an engine step)")
        print("\nBreakdown of an instrumented run (exclusive times; h5py calls booked under the writer method "
              "they run in):")
        for every in everies:
            parts, wall = breakdown(folder, every, args.steps)
            print_breakdown(parts, every, args.steps, wall, engine)


if __name__ == "__main__":
    main()
