"""The spin-7 vacuum (issue 13, item 7): when do the agents reach one shared belief and frame, and why do they not
with the spin-1 vacuum's rates?

Prints three figures (as tables):

1. The pair landscape. Two agents at one site, both at the prior mean m = 0.3 (1, ..., 1), Sigma = I: their
   alignment divergence as a function of the relative frame phi is KL(phi) = |rho(exp phi)^T m - m|^2 / 2. From
   random relative rotations of a given angle the frame's gradient flow either reaches a frame equivalent to the
   other agent's (KL < 1e-3) or stops in a spurious minimum. Spin 1: always reached; spin 7: not from 0.5 rad on.
2. The runs: ``scenarios/vacuum_l7.yaml`` as shipped (small frame spread, lr_phi 0.005) against the same scenario
   with the spin-1 vacuum's frame spread (0.5) and/or rate (lr_phi 0.05): energies by term at the end, the
   smoothness energy after the first step, the meta-agent sizes, the plaquette holonomy (mean, max, fraction of
   plaquettes above 0.1 rad) and |phi|_max.
3. Optionally (``--anneal T``) a Langevin phase on phi at temperature T for half the steps from the spread-0.5
   start, then descent (a second stage through ``vfe run --resume`` with a changed ``dynamics`` section).

    python benchmarks/vacuum_l7.py                 # small: 16x16 grid, 4 agents of radius 5, 300 steps
    python benchmarks/vacuum_l7.py --size full     # the scenario's size (32x32, 8 agents), --steps 600
    python benchmarks/vacuum_l7.py --only landscape
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "vacuum_l7.yaml"
SMALL = {"grid.height": 16, "grid.width": 16, "agents.count": 4, "agents.support.radius": 5}

VARIANTS = {
    "shipped (spread 0.05, lr_phi 0.005)": {},
    "lr_phi 0.05 (vacuum's rate)": {"dynamics.lr_phi": 0.05},
    "spread 0.5 (vacuum's frames)": {"agents.init.phi.scale": 0.5},
    "spread 0.5, lr_phi 0.05 (= vacuum)": {"agents.init.phi.scale": 0.5, "dynamics.lr_phi": 0.05},
}


def pair_landscape(spin: int, angle: float, n: int = 20, seed: int = 0, lr: float = 0.02,
                   iters: int = 1500) -> tuple[float, float]:
    """Fraction of random relative rotations of this angle from which the gradient flow of KL(phi) (the frames'
    own dynamics: steps of lr, central-difference gradient) reaches KL < 1e-3 (the spurious minima lie at
    0.14 and 0.20 nats), and the median KL where it stops instead (NaN if it never does)."""
    from gauge_vfe.agents.model.fiber import make_fiber

    fib = make_fiber([spin])
    m = 0.3 * np.ones(fib.K)
    rng = np.random.default_rng(seed)
    eye = np.eye(3) * 1e-6

    def kl(p):
        d = fib.rho(p).T @ m - m
        return 0.5 * float(d @ d)

    ends = []
    for _ in range(n):
        ax = rng.normal(size=3)
        p = angle * ax / np.linalg.norm(ax)
        for _ in range(iters):
            p = p - lr * np.array([(kl(p + e) - kl(p - e)) / 2e-6 for e in eye])
        ends.append(kl(p))
    ends = np.asarray(ends)
    trapped = ends[ends >= 1e-3]
    return float(np.mean(ends < 1e-3)), float(np.median(trapped)) if trapped.size else float("nan")


def summary(traj) -> dict:
    """Energies by term (last step), smoothness after step 1, meta-agent sizes per logged frame, holonomy."""
    e = traj.energies()
    last = len(traj.frame_steps) - 1
    pa = traj.plaquette_angles(last)
    pa = pa[np.isfinite(pa)]
    phi = np.asarray(traj.state(last).phi)
    metas = [(int(s), sorted(len(x["members"]) for x in traj.meta_agents(k) if x["scale"] == 2))
             for k, s in enumerate(traj.frame_steps)]
    first_all = next((s for s, sizes in metas if sizes == [traj.n_agents]), None)
    return {
        "E": {k: float(np.asarray(v)[-1]) for k, v in e.items() if k != "step"},
        "smooth1": float(np.asarray(e["smoothness"])[1]),
        "meta": metas[-1][1],
        "dead": [bool(x["dead"]) for x in traj.meta_agents(last) if x["scale"] == 2],
        "first_all": first_all,
        "pa_mean": float(pa.mean()), "pa_max": float(pa.max()), "pa_frac": float((pa > 0.1).mean()),
        "phi_max": float(np.abs(phi).max()),
    }


def show(name: str, s: dict, wall: float) -> None:
    E = s["E"]
    print(f"{name:38s} total {E['total']:8.2f} prior {E['prior']:7.2f} align {E['alignment']:7.2f} "
          f"smooth {E['smoothness']:7.2f} (step 1: {s['smooth1']:7.2f})  meta {s['meta']} dead {s['dead']} "
          f"all-in-one from step {s['first_all']}  holonomy mean {s['pa_mean']:.4f} max {s['pa_max']:.3f} "
          f">0.1rad {s['pa_frac']:.3f}  |phi|max {s['phi_max']:.2f}  ({wall:.0f} s)", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "full"], default="small")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (default 300 small, 600 full)")
    ap.add_argument("--only", choices=["landscape", "runs", "anneal"], default=None)
    ap.add_argument("--variants", default=None, help="comma-separated indices of the runs to do (default all)")
    ap.add_argument("--anneal", type=float, default=0.05, help="phi temperature of the Langevin phase")
    args = ap.parse_args(argv)

    import gauge_vfe as gv

    steps = args.steps or (300 if args.size == "small" else 600)
    size = SMALL if args.size == "small" else {}

    if args.only in (None, "landscape"):
        print("1. pair landscape: fraction of relative rotations from which the frames reach agreement (gradient flow)")
        for spin in (1, 7):
            for angle in ((0.5, 2.0) if spin == 1 else (0.1, 0.25, 0.5, 1.0, 2.0)):
                ok, kl = pair_landscape(spin, angle)
                print(f"   spin {spin}  angle {angle:4.2f} rad: reached {ok:5.3f}   spurious minimum KL (median) {kl:.4f}")

    if args.only in (None, "runs"):
        print(f"2. runs ({args.size}, {steps} steps, seed 3)")
        keep = None if args.variants is None else {int(i) for i in args.variants.split(",")}
        for i, (name, over) in enumerate(VARIANTS.items()):
            if keep is not None and i not in keep:
                continue
            t = time.time()
            with gv.run(str(SCENARIO), steps=steps, progress=False, **size, **over) as traj:
                show(name, summary(traj), time.time() - t)

    if args.only in (None, "anneal"):
        import yaml

        print(f"3. anneal: spread 0.5, lr_phi 0.005, T_phi = {args.anneal} for {steps // 2} steps, then T = 0 to {steps}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "anneal.h5"
            t = time.time()
            over = {**size, "agents.init.phi.scale": 0.5, "dynamics.temperature": {"phi": args.anneal}}
            gv.run(str(SCENARIO), steps=steps // 2, progress=False, output=out, **over).close()
            sc = yaml.safe_load(SCENARIO.read_text())
            for k, v in {**size, "agents.init.phi.scale": 0.5}.items():
                d = sc
                *head, last = k.split(".")
                for p in head:
                    d = d[p]
                d[last] = v
            sc["dynamics"]["steps"] = steps
            (Path(tmp) / "stage2.yaml").write_text(yaml.safe_dump(sc))
            subprocess.run([sys.executable, "-m", "gauge_vfe.agents.launch", "run", "-q", "--resume", "-o", str(out),
                            str(Path(tmp) / "stage2.yaml")], check=True, cwd=tmp)
            with gv.load(out) as traj:
                show(f"anneal T_phi {args.anneal}", summary(traj), time.time() - t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
