"""Cost of the Langevin noise and of the information clock on B1, as ratios from one run.

    python benchmarks/bench_noise.py [--rounds 20] [--block 50]

Three simulations of B1 (bench_engine.py's scenario: 32x32, 8 agents, K = 3, all terms; line search off), one at
T = 0, one with every field at T = 0.01 and one with only mu at 0.01 (as the timescales experiment runs), step in
alternating blocks in this one process, so that a busy
neighbour slows both alike; each reports its fastest block (the least disturbed). The information clock (bits
of belief update per agent, docs/model.md#information-time) is computed in every step at any temperature, inside
the update kernels; its cost is bounded from above by the same KL as a kernel of its own (its own pass over
memory and its own launch, which the fused version saves), timed here and given as a share of a T = 0 step.
Target (issue 13): noise plus information clock under 15 % extra per step; the figure printed against it adds
that upper bound to the measured noise cost.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings

import bench_engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="alternating blocks per simulation")
    ap.add_argument("--block", type=int, default=50, help="steps per block")
    args = ap.parse_args()

    from gauge_vfe import agents
    from gauge_vfe.agents.kernels.information import information_bits

    warnings.simplefilter("ignore")  # uphill steps are not the question here
    base = bench_engine.scenario("B1")
    sims = {}
    for temperature in (0.0, 0.01, "mu"):
        cfg = copy.deepcopy(base)
        cfg["dynamics"]["temperature"] = {"mu": 0.01} if temperature == "mu" else temperature
        cfg["dynamics"]["line_search"] = {"enabled": False}  # the line search refuses a temperature
        sims[temperature] = agents.Simulation.from_config(cfg)
    for sim in sims.values():  # compile and settle
        for _ in range(30):
            sim.step()
    best = {t: float("inf") for t in sims}
    for _ in range(args.rounds):
        for t, sim in sims.items():
            t0 = time.perf_counter()
            for _ in range(args.block):
                sim.step()
            best[t] = min(best[t], (time.perf_counter() - t0) / args.block)
    cold = sims[0.0]
    bits = float("inf")
    for _ in range(args.rounds * 10):
        t0 = time.perf_counter()
        information_bits(cold.layout, cold.state, cold.state)
        bits = min(bits, time.perf_counter() - t0)
    step0, step1, step_mu = best[0.0], best[0.01], best["mu"]
    print(f"B1 {cold.layout.n_rows} agent-site rows; fastest of {args.rounds} blocks of {args.block} steps")
    print(f"  T = 0     {step0 * 1e3:7.3f} ms/step ({1 / step0:6.0f} steps/s), of which the information clock "
          f"at most {bits * 1e3:.3f} ms ({bits / step0:.1%}, the KL as a kernel of its own)")
    print(f"  T = 0.01  {step1 * 1e3:7.3f} ms/step ({1 / step1:6.0f} steps/s): noise {step1 / step0 - 1:+.1%}")
    print(f"  T_mu = 0.01 only (Sigma and phi deterministic) {step_mu * 1e3:7.3f} ms/step: noise "
          f"{step_mu / step0 - 1:+.1%}")
    print(f"  noise + information clock against a step without either: at most {(step1) / (step0 - bits) - 1:+.1%} "
          f"(target < 15 %); mu noise only: at most {step_mu / (step0 - bits) - 1:+.1%}")


if __name__ == "__main__":
    main()
