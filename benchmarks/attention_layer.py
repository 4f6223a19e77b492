"""The reverse (key/value) term's share of a plain alignment step on every shipped scenario
(docs/model.md#step-decomposition).

    python benchmarks/attention_layer.py [--steps 20] [--scenarios NAME ...] [-o docs/results/attention/reverse_share.csv]

A plain step moves mu_i by -lr (forward_i + reverse_i): ``forward`` is the derivative of i's own alignment
density (the attention readout, i as the query), ``reverse`` that of its partners' densities (i as a key and a
value). For each shipped scenario, at its initial state and after ``--steps`` steps of its own dynamics, this
prints and writes |forward|, |reverse| (Euclidean norms over all agent-sites), the share
|reverse| / (|forward| + |reverse|) and the cosine between the two (1: they push the same way). A share of 0
would make a step a pure attention layer; 1/2 is two roles of equal size.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

FIELDS = ["scenario", "form", "kappa", "step", "rows", "forward_norm", "reverse_norm", "share", "cosine"]


def measure(sim) -> dict:
    att = sim.attention()
    f, r = att.forward.ravel(), att.reverse.ravel()
    nf, nr = float(np.linalg.norm(f)), float(np.linalg.norm(r))
    cos = float(f @ r / (nf * nr)) if nf > 0 and nr > 0 else float("nan")
    return {"step": sim.state.step, "rows": sim.layout.n_rows, "forward_norm": nf, "reverse_norm": nr,
            "share": att.reverse_share(), "cosine": cos}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("-o", "--output", default="docs/results/attention/reverse_share.csv")
    ap.add_argument("--scenarios", nargs="*", help="these shipped scenarios only (default: all)")
    args = ap.parse_args()
    from gauge_vfe.agents.runner.simulation import Simulation
    from gauge_vfe.agents.setup.shipped import shipped_scenarios

    rows = []
    for name in args.scenarios or sorted(shipped_scenarios()):
        sim = Simulation.from_scenario(name, keep_history=False)
        p = sim.energy_params
        base = {"scenario": name, "form": p.form, "kappa": p.kappa}
        if p.lambda_align == 0:
            print(f"{name:20s} alignment off")
            continue
        rows.append({**base, **measure(sim)})
        sim.run(min(args.steps, sim.config.dynamics.steps), stop=None)
        rows.append({**base, **measure(sim)})
        for row in rows[-2:]:
            print(f"{name:20s} {row['form']:12s} kappa {row['kappa']:4g} step {row['step']:4d}  "
                  f"|fwd| {row['forward_norm']:10.4g}  |rev| {row['reverse_norm']:10.4g}  "
                  f"share {row['share']:.3f}  cos {row['cosine']:+.3f}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
