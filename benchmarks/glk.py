"""B1 steps/s with SO(3) frames before and after the GL(K) change, and with GL(3) frames, in one invocation
(issue 25 item 4; docs/model.md#glk-frames).

    python benchmarks/glk.py --base 539d6ed          # main's commit this branch started from
    python benchmarks/glk.py --base main --rounds 5 --quick

Three children of ``benchmarks/bench_engine.py`` (each a fresh process, its ``--child`` mode): ``B1`` at the base
revision (checked out with ``git worktree`` into a temporary folder), ``B1`` in this working tree and ``B1glk``
(B1 with ``fiber: {group: glk, dim: 3}``) in this working tree. They alternate round after round, so a busy
neighbour affects all three alike; printed are each one's median steps/s, per-round figures, and the ratios
so3 head / so3 base and glk / so3 (the target: glk at most 2x slower, ratio >= 0.5). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_revisions import ROOT, _import_path, base_checkout, run_child  # noqa: E402  (one way to run a revision)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision for the 'so3 before' figure")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of the three children")
    ap.add_argument("--quick", action="store_true", help="shorter timed blocks in each child")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with base_checkout(args.base, "vfe-glk-") as (base_tree, scratch):
        short = subprocess.check_output(["git", "rev-parse", "--short", args.base], cwd=ROOT, text=True).strip()
        head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        runs = {"so3 base": (base_tree, "B1"), "so3 head": (ROOT, "B1"), "glk head": (ROOT, "B1glk")}
        paths = {tree: _import_path(tree, scratch) for tree in (base_tree, ROOT)}
        print(f"B1 (32x32, 8 agents, K = 3); base = {args.base} ({short}), head = working tree at {head}; "
              f"{args.rounds} alternating rounds, {'quick' if args.quick else 'full'} children")
        rates = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, (tree, child) in runs.items():
                rates[key].append(run_child(tree, paths[tree], child, args.quick)["steps_per_s"])
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"{'run':<10} {'steps/s':>10}   per round")
        for k, v in rates.items():
            print(f"{k:<10} {med[k]:10.1f}   " + ", ".join(f"{x:.1f}" for x in v))
        print(f"so3 head / so3 base = {med['so3 head'] / med['so3 base']:.3f}")
        ratio = med["glk head"] / med["so3 head"]
        print(f"glk / so3 (head)    = {ratio:.3f}   target >= 0.5 (glk no slower than 2x so3): "
              f"{'PASS' if ratio >= 0.5 else 'MISS'}")
        print(f"wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
