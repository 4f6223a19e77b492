"""The ``vfe`` command: a thin click shell over the Python API (SPEC section 10).

Exit codes: 0 success; 2 bad input (one message, no traceback); 1 a run that diverged or failed;
130 a run interrupted by Ctrl-C or SIGTERM (its file is valid and ``--resume`` continues it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
import numpy as np

from .energy import TERMS
from .scenario import ScenarioError, load_scenario

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def shipped_scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


def resolve_scenario(name: str) -> Path:
    """A path, or the name of a shipped scenario (``vfe run quickstart``)."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    shipped = shipped_scenarios()
    if name in shipped:
        return shipped[name]
    return p


def _fail(messages, code=EXIT_BAD_INPUT):
    for m in messages:
        click.echo(f"error: {m}", err=True)
    sys.exit(code)


def _load(scenario: str, sets=(), seed=None, steps=None):
    overrides = list(sets)
    if seed is not None:
        overrides.append(f"seed={seed}")
    if steps is not None:
        overrides.append(f"dynamics.steps={steps}")
    try:
        return load_scenario(resolve_scenario(scenario), overrides)
    except ScenarioError as exc:
        _fail(exc.messages)


class ProgressBar:
    """tqdm bar: step, energy by term, steps/s and time left."""

    def __init__(self, sim, total: int, quiet: bool):
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=sim.state.step, unit="step", dynamic_ncols=True, disable=quiet,
                         mininterval=0.2, file=sys.stderr)
        self._last = 0.0
        self._postfix(sim)

    def _postfix(self, sim):
        e = sim.energy()
        short = {"prior": "prior", "observation": "obs", "alignment": "align", "curvature": "curv",
                 "smoothness": "smooth"}
        parts = [f"E={e['total']:.5g}"] + [f"{short[t]}={e[t]:.3g}" for t in TERMS if e[t] != 0.0]
        self._bar.set_postfix_str(" ".join(parts), refresh=False)

    def update(self, sim):
        now = time.monotonic()
        if now - self._last > 0.25:
            self._postfix(sim)
            self._last = now
        self._bar.update(1)

    def close(self):
        self._bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gauge-vfe")
def main():
    """gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy."""


_set_option = click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
                           help="override a scenario key (repeatable), e.g. --set energy.kappa=0.5")


@main.command()
@click.argument("scenario")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="trajectory file (default runs/NAME.h5)")
@click.option("--steps", type=int, help="total number of steps (dynamics.steps)")
@click.option("--seed", type=int, help="root seed")
@_set_option
@click.option("--resume", is_flag=True, help="continue the run in the output file from its checkpoint")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def run(scenario, output, steps, seed, sets, resume, quiet):
    """Run SCENARIO (a YAML file or a shipped scenario's name) into an HDF5 trajectory."""
    from .run import run_scenario

    sc = _load(scenario, sets, seed, steps)
    try:
        result = run_scenario(sc, output, resume=resume,
                              progress=lambda sim, total: ProgressBar(sim, total, quiet))
    except ScenarioError as exc:
        _fail(exc.messages)
    except Exception as exc:  # noqa: BLE001 - the file is closed with status `failed`; say why and stop
        if os.environ.get("VFE_DEBUG"):
            raise
        _fail([f"run failed: {type(exc).__name__}: {exc} (set VFE_DEBUG=1 for a traceback)"], EXIT_RUN_FAILED)
    e = result.energy
    click.echo(f"{result.status}: {result.path} (step {result.last_step}, {result.wall_time:.1f} s, "
               f"{result.steps_per_second:.0f} steps/s)")
    click.echo("energy: " + "  ".join(f"{k}={v:.6g}" for k, v in e.items()))
    if result.message:
        click.echo(result.message)
    if result.status in ("diverged", "failed"):
        sys.exit(EXIT_RUN_FAILED)
    if result.status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)


@main.command()
@click.argument("scenario")
@_set_option
def validate(scenario, sets):
    """Check SCENARIO without running it: keys, values, files, and the layout it builds."""
    from .run import build_simulation

    sc = _load(scenario, sets)
    try:
        sim = build_simulation(sc)
    except ScenarioError as exc:
        _fail(exc.messages)
    lay = sim.layout
    cfg = sc.config
    pairs = lay.overlap_pairs()
    click.echo(f"{sc.path}: ok")
    click.echo(f"  {cfg.name}: {lay.grid.height}x{lay.grid.width} {lay.grid.boundary} grid, {lay.n_agents} agents, "
               f"spins {list(cfg.fiber.spins)} (K={lay.K}), {lay.n_rows} agent-sites, "
               f"{len(pairs)} overlapping pairs, up to {lay.max_per_site} agents per site")
    click.echo(f"  {cfg.dynamics.steps} steps of {cfg.dynamics.method} descent; initial energy "
               f"{sim.energy()['total']:.6g}")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def inspect(run_file, as_json):
    """Summarise a trajectory file: scenario, status, steps, energies by term."""
    from .reader import load

    try:
        traj = load(run_file)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])
    with traj:
        info = summary(traj)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{traj.path}: {info['name']} ({info['status']})")
    if info["message"]:
        click.echo(f"  message: {info['message']}")
    click.echo(f"  grid {info['grid']}, {info['agents']} agents, spins {info['spins']} (K={info['K']}), "
               f"{info['agent_sites']} agent-sites, seed {info['seed']}")
    click.echo(f"  steps 0..{info['last_step']}, {info['frames']} frames ({', '.join(info['fields'])}, "
               f"{info['dtype']}), started {info['started_at']}, finished {info['finished_at'] or '-'}")
    click.echo(f"  {'energy':<12} {'first':>14} {'last':>14}")
    for term, (first, last) in info["energy"].items():
        click.echo(f"  {term:<12} {first:>14.6g} {last:>14.6g}")
    if info["spd_retractions"]:
        click.echo(f"  Sigma steps retracted to stay SPD: {info['spd_retractions']} agent-site steps")


def summary(traj) -> dict:
    energies = traj.energies()
    first_last = {t: ((float(energies[t][0]), float(energies[t][-1])) if energies[t].size else (np.nan, np.nan))
                  for t in ("total",) + TERMS}
    dtype = str(traj.group("particles/agents/mu/value").dtype) if "mu" in traj.fields else "-"
    return {
        "path": str(traj.path), "name": traj.config.get("name"), "status": traj.status, "message": traj.message,
        "grid": f"{traj.grid.height}x{traj.grid.width} {traj.grid.boundary}", "agents": traj.n_agents,
        "spins": traj.spins, "K": traj.K, "agent_sites": int(traj.index.size), "seed": traj.seed,
        "last_step": traj.last_step, "frames": int(len(traj.frame_steps)), "fields": traj.fields, "dtype": dtype,
        "started_at": traj.started_at, "finished_at": traj.finished_at, "energy": first_last,
        "spd_retractions": int(traj.spd_retractions()[1].sum()), "versions": traj.versions,
    }


@main.command()
def scenarios():
    """List the shipped scenarios (run one with `vfe run NAME`)."""
    for name, path in shipped_scenarios().items():
        first = next((ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")), "")
        click.echo(f"{name:<20} {first}")


if __name__ == "__main__":  # pragma: no cover
    main()
