"""Render speed: frames per second of `viz.render` at 1280x720 for a B1-size scene, and per output kind.

    python benchmarks/bench_render.py [--frames 30] [--size 1280x720]

The scene: the quickstart scenario's layout (32x32 grid, 8 agents, disks of radius 8), run and analysed, so
every frame has agents, meta-agents with member lines, ellipsoids, triads, the holonomy plane and a caption.
Reported: seconds per frame and frames/s for PNG frames written to a movie (MP4 and GIF), excluding the
one-off start-up (VTK/EGL context, first frame). Target: >= 5 frames/s at 1280x720.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from gauge_vfe import viz
from gauge_vfe.agents.setup.shipped import shipped_scenarios
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.scenario import load_scenario


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", default="1280x720")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sc = load_scenario(shipped_scenarios()["quickstart"],
                           [f"dynamics.steps={10 * (args.frames - 1)}", "output.every=10"])
        run = run_scenario(sc, d / "q.h5").path
        t0 = time.perf_counter()
        viz.render(run, d / "warm.png", frames=0, size=(w, h))
        startup = time.perf_counter() - t0
        print(f"scene: 32x32 grid, 8 agents, {args.frames} frames at {w}x{h}; start-up and first frame "
              f"{startup:.2f} s")
        print(f"{'output':<8} {'s/frame':>8} {'frames/s':>9}  target >= 5 frames/s")
        for ext in ("mp4", "gif"):
            t0 = time.perf_counter()
            viz.render(run, d / f"m.{ext}", size=(w, h))
            dt = (time.perf_counter() - t0) / args.frames
            print(f"{ext:<8} {dt:>8.3f} {1 / dt:>9.1f}  {'PASS' if 1 / dt >= 5 else 'MISS'}")


if __name__ == "__main__":
    main()
