"""Where a first run's compile time goes: each kernel's cold compile, and inside the big ones, numba's passes and
LLVM's share (issue 14, item 2).

    python benchmarks/compile_profile.py                 # the quick-start scenario, build and 2 steps
    python benchmarks/compile_profile.py path/to/scenario.yaml --steps 5

The run uses a fresh, empty numba cache (a temporary ``NUMBA_CACHE_DIR``), so everything it needs compiles.
numba's ``numba:compile`` events give each kernel's compile time; a kernel's time includes the kernels it calls
that compile for it, and the table lists only the outermost ones. For the kernels that took over a second it
prints, from numba's compile metadata, the time spent in LLVM (optimisation and machine code, ``llvm_lock``) and
numba's own longest passes. Typing a call to another kernel compiles that kernel, so ``type_inference`` includes
the callees that had not been compiled yet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="gauge-vfe-cold-")  # before numba reads its settings

from numba.core import event  # noqa: E402


class _CompileTimes(event.Listener):
    """Wall time of each outermost compilation, by kernel (module.function)."""

    def __init__(self):
        self.started: list[float] = []
        self.times: dict[str, list[float]] = {}
        self.dispatchers: dict[str, object] = {}

    def on_start(self, ev):
        self.started.append(time.perf_counter())

    def on_end(self, ev):
        took = time.perf_counter() - self.started.pop()
        if self.started:  # compiled for an outer kernel: counted in its time
            return
        d = ev.data["dispatcher"]
        name = f"{d.py_func.__module__.rsplit('.', 1)[-1]}.{d.py_func.__name__}"
        self.times.setdefault(name, []).append(took)
        self.dispatchers[name] = d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default="quickstart", help="shipped scenario name or YAML path")
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()

    times = _CompileTimes()
    event.register("numba:compile", times)
    import gauge_vfe as gv

    t0 = time.perf_counter()
    sim = gv.Simulation.from_scenario(args.scenario)
    built = time.perf_counter() - t0
    for _ in range(args.steps):
        sim.step()
    total = time.perf_counter() - t0
    compiled = sum(len(v) for v in times.times.values())
    print(f"{args.scenario}: build {built:.1f} s, build + {args.steps} steps {total:.1f} s; "
          f"{compiled} outermost compilations, {sum(map(sum, times.times.values())):.1f} s")
    print(f"{'seconds':>8}  {'n':>2}  kernel")
    for name, ts in sorted(times.times.items(), key=lambda kv: -sum(kv[1])):
        print(f"{sum(ts):8.2f}  {len(ts):2d}  {name}")
    for name, ts in sorted(times.times.items(), key=lambda kv: -sum(kv[1])):
        if sum(ts) < 1.0:
            break
        d = times.dispatchers[name]
        for sig in d.signatures:
            md = d.get_metadata(sig)
            llvm = md.get("timers", {}).get("llvm_lock", float("nan"))
            passes = []
            for pipeline in md.get("pipeline_times", {}).values():
                passes += [(v.init + v.run + v.finalize, k.split("_", 1)[-1]) for k, v in pipeline.items()]
            top = ", ".join(f"{k} {t:.1f}" for t, k in sorted(passes, reverse=True)[:4])
            print(f"{name}: LLVM {llvm:.1f} s of {sum(ts):.1f} s; longest passes (s, LLVM included where it runs): "
                  f"{top}")


if __name__ == "__main__":
    main()
