"""Cost of the fletcher32 checksums on B1's ``vfe run``: the same run with and without them, in one process.

    python benchmarks/bench_checksum.py [--rounds 3] [--steps 300] [--every 10,1]

Each round runs :func:`bench_logging.run_rate` (a fresh B1 run into a new file, analysis off, default output)
once with the checksums (the shipped writer) and once without (``schema.CHECKSUM`` emptied for that run only),
in turning order so a busy neighbour slows both alike. Printed per ``output.every``: the best steps/s of each and
their ratio, and the median over rounds of the per-round ratio. Compare ratios, not rates across runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import bench_logging


def rate(folder: Path, every: int, steps: int, checksum: bool, tag: str) -> float:
    from gauge_vfe.agents.io import schema

    saved = schema.CHECKSUM
    schema.CHECKSUM = saved if checksum else {}
    try:
        return bench_logging.run_rate(folder, every, steps, tag)
    finally:
        schema.CHECKSUM = saved


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
        on, off = rates[e, True], rates[e, False]
        per_round = statistics.median(a / b for a, b in zip(on, off))
        print(f"  output.every {e:>4}: without {max(off):8.1f}  with {max(on):8.1f}  best ratio "
              f"{max(on) / max(off):.3f}  median per-round ratio {per_round:.3f}")


if __name__ == "__main__":
    main()
