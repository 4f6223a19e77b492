"""Sweep throughput: the same members one after another in one process against `run_sweep` on a local
Dask cluster, as a ratio measured in one run.

    python benchmarks/bench_sweep.py [--members 8] [--workers 2] [--steps 1500]

Members: the quickstart scenario at reduced steps, one per seed. Sequential: each member run in this process
with numba on all cores (what a user would do without the sweep). Sweep: `run_sweep` with N local workers,
numba limited to cores // N threads per worker. Both include writing each trajectory and its analysis; the
sweep's figure includes starting the cluster.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from gauge_vfe.agents.setup.shipped import shipped_scenarios
from gauge_vfe.agents.runner.sweep import run_member, run_sweep


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    scenario = shipped_scenarios()["quickstart"]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        # warm the numba cache so neither side pays compilation
        run_member(str(scenario), {"dynamics.steps": 5}, str(d / "warm.h5"), os.cpu_count() or 1)
        t0 = time.perf_counter()
        for k in range(args.members):
            row = run_member(str(scenario), {"seed": k, "dynamics.steps": args.steps}, str(d / f"s{k}.h5"),
                             os.cpu_count() or 1)
            assert row["status"] == "completed", row
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = run_sweep(scenario, [("seed", list(range(args.members))), ("dynamics.steps", [args.steps])],
                        d / "sweep", workers=args.workers)
        swept = time.perf_counter() - t0
        assert res.by_status() == {"completed": args.members}, res.by_status()
    print(f"{args.members} members of quickstart at {args.steps} steps on {os.cpu_count()} cores")
    print(f"sequential (numba on all cores): {sequential:7.2f} s  {args.members / sequential:.2f} members/s")
    print(f"sweep, {args.workers} local workers:       {swept:7.2f} s  {args.members / swept:.2f} members/s")
    print(f"throughput ratio sweep / sequential: {sequential / swept:.2f}x")


if __name__ == "__main__":
    main()
