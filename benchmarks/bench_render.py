"""Render speed: frames per second of `viz.render` at 1280x720 for a B1-size scene, and per output kind.

    python benchmarks/bench_render.py [--frames 30] [--size 1280x720]

The scene: the quickstart scenario's layout (32x32 grid, 8 agents, disks of radius 8), run and analysed, so
every frame has agents, meta-agents with member lines, ellipsoids, triads, the holonomy plane and a caption.
Reported: the renderer in use, and seconds per frame and frames/s for frames written to a movie (MP4 and GIF),
as `viz.render` reports them: the frames alone, excluding the one-off start-up (reading the run and fixing the
colour ranges, the VTK/EGL context, the title card). Target: >= 5 frames/s at 1280x720.
"""

from __future__ import annotations

import argparse
import os
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
        reports = []
        for ext in ("mp4", "gif"):
            t0 = time.perf_counter()
            viz.render(run, d / f"m.{ext}", size=(w, h), title_card=False, report=reports.append)
            reports[-1].wall = time.perf_counter() - t0
        print(f"renderer: {reports[0].renderer}")
        print(os.getloadavg() and f"load average (1 min) while measuring: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores (wall-clock figures suffer from other processes; CPU figures less)")
        print(f"{'output':<8} {'s/frame':>8} {'frames/s':>9} {'CPU s/frame':>12} {'with start-up':>14}  "
              f"target >= 5 frames/s")
        for ext, r in zip(("mp4", "gif"), reports):
            print(f"{ext:<8} {1 / r.fps:>8.3f} {r.fps:>9.1f} {r.cpu_seconds / r.frames:>12.3f} "
                  f"{r.frames / r.wall:>14.1f}  {'PASS' if r.fps >= 5 else 'MISS'}")


if __name__ == "__main__":
    main()
