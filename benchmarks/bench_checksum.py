"""Cost of the fletcher32 checksums on B1's ``vfe run``: the same run with and without them, in one process.

    python benchmarks/bench_checksum.py [--rounds 3] [--steps 300] [--every 10,1]

Each round runs :func:`bench_logging.run_rate` (a fresh B1 run into a new file, analysis off, default output)
once with the checksums (the shipped writer) and once without (``schema.CHECKSUM`` emptied for that run only),
in turning order so a busy neighbour slows both alike. Printed per ``output.every``: the best steps/s of each and
their ratio, and the median over rounds of the per-round ratio. Compare ratios, not rates across runs.

On a loaded machine (the kernels use both cores) those wall-time ratios swing by tens of percent either way, far
more than the checksums cost; so the writer's own work is also timed as the main thread's CPU time
(``time.thread_time``, which a neighbour's load barely changes) inside every HDF5 write of the run
(``TrajectoryWriter._write``: the batches, checkpoints and the final one) and ``close``. The checksums' cost is
the difference of that writer time, with and without, as a fraction of the run's wall time without them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import bench_logging


def rate(folder: Path, every: int, steps: int, checksum: bool, tag: str) -> tuple[float, float]:
    """(steps/s, writer CPU seconds) of one B1 run, with or without the checksums."""
    from gauge_vfe.agents.io import schema
    from gauge_vfe.agents.io.writer import TrajectoryWriter

    saved, write, close = schema.CHECKSUM, TrajectoryWriter._write, TrajectoryWriter.close
    spent = [0.0]

    def timed(fn):
        def wrapper(*args, **kw):
            t0 = time.thread_time()
            try:
                return fn(*args, **kw)
            finally:
                spent[0] += time.thread_time() - t0
        return wrapper

    schema.CHECKSUM = saved if checksum else {}
    TrajectoryWriter._write, TrajectoryWriter.close = timed(write), timed(close)
    try:
        return bench_logging.run_rate(folder, every, steps, tag), spent[0]
    finally:
        schema.CHECKSUM, TrajectoryWriter._write, TrajectoryWriter.close = saved, write, close


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", default="10,1")
    args = ap.parse_args()
    everies = [int(e) for e in args.every.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate(folder, everies[0], 20, True, "warmup")  # compile and cache before timing
        rates = {(e, c): [] for e in everies for c in (True, False)}
        for r in range(args.rounds):
            for e in everies:
                for c in ((True, False) if r % 2 == 0 else (False, True)):
                    rates[e, c].append(rate(folder, e, args.steps, c, f"{r}{c}"))
    print(f"B1 vfe run, {args.steps} steps, {args.rounds} rounds (steps/s; ratio = with / without checksums)")
    for e in everies:
        on, off = [r[0] for r in rates[e, True]], [r[0] for r in rates[e, False]]
        per_round = statistics.median(a / b for a, b in zip(on, off))
        w_on = statistics.median(r[1] for r in rates[e, True])
        w_off = statistics.median(r[1] for r in rates[e, False])
        run_wall = args.steps / max(off)
        print(f"  output.every {e:>4}: without {max(off):8.1f}  with {max(on):8.1f}  best ratio "
              f"{max(on) / max(off):.3f}  median per-round ratio {per_round:.3f}")
        print(f"                     writer CPU (median): without {w_off * 1e3:7.1f} ms  with {w_on * 1e3:7.1f} ms"
              f"  -> checksum cost {(w_on - w_off) / run_wall * 100:+.2f} % of the run ({run_wall:.2f} s)")


if __name__ == "__main__":
    main()
