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

from .model.energy import TERMS
from .setup.scenario import ScenarioError, load_scenario
from .setup.shipped import resolve_scenario, scenario_summary, shipped_scenarios

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


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
    """Run SCENARIO (a YAML file or a shipped scenario's name) into an HDF5 trajectory.

    An existing output file is never overwritten: it is renamed NAME.1.h5 (NAME.2.h5, ...) first.
    """
    from .runner.run import output_path, run_scenario

    sc = _load(scenario, sets, seed, steps)
    path = output_path(sc, output)
    if path.exists() and not resume:
        kept = _keep_earlier(path)
        click.echo(f"kept the earlier {path} as {kept} (use --resume to continue a run instead)", err=True)
    try:
        result = run_scenario(sc, path, resume=resume,
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


def _keep_earlier(path: Path) -> Path:
    """Rename an existing run file out of the way (the first free NAME.k.h5)."""
    k = 1
    while (kept := path.with_name(f"{path.stem}.{k}{path.suffix}")).exists():
        k += 1
    path.rename(kept)
    return kept


@main.command()
@click.argument("scenario")
@_set_option
def validate(scenario, sets):
    """Check SCENARIO without running it: keys, values, files, and the layout it builds."""
    from .runner.run import build_simulation

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
    from .io.reader import load

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
    if "meta_agents" in info:
        ma = info["meta_agents"]
        click.echo(f"  meta-agents per scale, last frame: {ma['last_frame_counts']} "
                   f"(highest scale reached: {ma['highest_scale']}); events: {ma['events']}")
        for row in ma["timescales"]:
            click.echo(f"    id {row['id']} scale {row['scale']}: tau {row['tau']:.3g} frames vs members "
                       f"{row['tau_members']:.3g}: ratio {row['ratio']:.3g}")
    if "holonomy" in info:
        h = info["holonomy"]
        click.echo(f"  holonomy, last frame: plaquette angle mean {h['mean']:.3g}, max {h['max']:.3g}; "
                   f"{h['loops']} loops")


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
        **_analysis_summary(traj),
    }


def _analysis_summary(traj) -> dict:
    out = {}
    try:
        g = traj.group("observables/meta_agents")
    except KeyError:
        return out
    counts = g["count"][...]
    kinds = {v: k for k, v in json.loads(g["events"].attrs["kinds"]).items()}
    events = {}
    for e in g["events"][...]:
        events[kinds[int(e["kind"])]] = events.get(kinds[int(e["kind"])], 0) + 1
    scales = [s for s in range(2, counts.shape[1]) if counts[:, s].any()]
    out["meta_agents"] = {
        "last_frame_counts": {f"scale {s}": int(counts[-1, s]) for s in scales} if len(counts) else {},
        "highest_scale": max(scales) if scales else 1,
        "events": events,
        "timescales": [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(row.dtype.names, row)}
                       for row in g["timescales"][...]],
    }
    h = traj.group("observables/holonomy")
    last = h["summary"][-1] if h["summary"].shape[0] else [np.nan, np.nan, 0]
    out["holonomy"] = {"mean": float(last[0]), "max": float(last[1]),
                       "loops": len(json.loads(h["loops"].attrs["names"]))}
    return out


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--eps-belief", type=float, help="consensus threshold (default: the run's analysis settings)")
@click.option("--min-overlap", type=int, help="shared sites needed for consensus")
@click.option("--eps-prior", type=float, help="prior-agreement threshold for 'epistemically dead'")
@click.option("--max-scale", type=int, help="highest meta-agent scale")
@click.option("--no-auto-loops", is_flag=True, help="only the scenario's own holonomy loops")
def analyze(run_file, eps_belief, min_overlap, eps_prior, max_scale, no_auto_loops):
    """Detect and track meta-agents and measure holonomy in every frame of RUN_FILE (written into it)."""
    from .analysis.pipeline import analyze_run
    from .setup.config import make_config
    from .analysis.meta_agents import ConsensusParams
    from .io.reader import load
    from .runner.run import consensus_params

    try:
        with load(run_file) as traj:
            cfg = make_config(traj.config)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])
    p = consensus_params(cfg)
    overrides = {"eps_belief": eps_belief, "min_overlap": min_overlap, "eps_prior": eps_prior, "max_scale": max_scale}
    for key, value in overrides.items():
        if value is not None and (value <= 0 or (key == "max_scale" and value < 2)):
            _fail([f"--{key.replace('_', '-')}: must be positive (max-scale >= 2), got {value}"])
    p = ConsensusParams(**{k: (v if v is not None else getattr(p, k)) for k, v in overrides.items()})
    try:
        res = analyze_run(run_file, p, [lp.model_dump() for lp in cfg.analysis.holonomy.loops],
                          cfg.analysis.holonomy.automatic and not no_auto_loops)
    except (RuntimeError, ValueError) as exc:
        _fail([str(exc)])
    click.echo(f"{run_file}: {len(res.steps)} frames analysed (eps_belief={p.eps_belief:g}, "
               f"min_overlap={p.min_overlap})")
    for line in _meta_lines(res.counts, res.timescales, res.events):
        click.echo("  " + line)
    if res.holonomy_summary.size:
        mean, mx, n = res.holonomy_summary[-1]
        click.echo(f"  holonomy, last frame: plaquette angle mean {mean:.3g}, max {mx:.3g} over {int(n)} plaquettes; "
                   f"{len(res.loop_names)} loops")


def _meta_lines(counts, timescales, events) -> list[str]:
    last = counts[-1] if len(counts) else []
    scales = [s for s in range(2, len(last)) if counts[:, s].any()]
    if not scales:
        return ["meta-agents: none detected"]
    lines = ["meta-agents in the last frame: " + ", ".join(f"scale {s}: {int(last[s])}" for s in scales)
             + f" (highest scale reached: {max(scales)})"]
    kinds = {}
    for e in events:
        kinds[e[1] if isinstance(e[1], str) else e[1]] = kinds.get(e[1], 0) + 1
    if kinds:
        lines.append("events: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))
    for row in timescales:
        lines.append(f"meta-agent {int(row['id'])} (scale {int(row['scale'])}): tau {row['tau']:.3g} frames, members "
                     f"{row['tau_members']:.3g}, ratio {row['ratio']:.3g}")
    return lines


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="movie.mp4, movie.gif or frame.png")
@click.option("--frames", default=None, help="start:stop:step over logged frames (a PNG takes the first)")
@click.option("--size", default="1280x720", help="WxH in pixels")
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
@click.option("--fps", default=10, type=int, help="frames per second of a movie")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def render(run_file, output, frames, size, color_by, fps, quiet):
    """Render RUN_FILE offscreen to a movie (MP4, GIF) or one frame (PNG)."""
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail([f"--size: expected WxH, got {size!r}"])
    try:
        from .. import viz
        from tqdm import tqdm
    except ImportError as exc:  # pragma: no cover - a broken install
        _fail([f"rendering needs pyvista and vtk: {exc}"], EXIT_RUN_FAILED)
    from .io.reader import load

    try:
        traj = load(run_file)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])
    bar = tqdm(unit="frame", disable=quiet, file=sys.stderr)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        with traj:
            path = viz.render(traj, output, frames=frames, size=(width, height), color_by=color_by,
                              progress=progress, fps=fps)
    except (ValueError, IndexError) as exc:
        _fail([str(exc)])
    finally:
        bar.close()
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
def view(run_file, color_by):
    """Open RUN_FILE in an interactive 3D window with a time slider (needs a display)."""
    from .. import viz

    try:
        viz.view(run_file, color_by=color_by)
    except RuntimeError as exc:
        _fail([str(exc)])


@main.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="folder for the PNGs (default: a sweep's own folder; required for a run file)")
@click.option("--quantity", help="for a sweep: one summary column to plot (default: the main ones)")
@click.option("--x", "x_param", help="for a sweep: the parameter on the x axis")
def plot(run, output, quantity, x_param):
    """Plots of RUN.h5 (energy, attention, meta-agents, holonomy, beliefs), or phase diagrams of a SWEEP_DIR."""
    from .. import viz

    from .io.reader import load

    if Path(run).is_dir():
        if not (Path(run) / "summary.csv").exists():
            _fail([f"{run}: not a sweep folder (no summary.csv)"])
        if quantity:
            import matplotlib.pyplot as plt

            out = Path(output or run)
            out.mkdir(parents=True, exist_ok=True)
            fig = viz.plots.plot_phase(run, quantity, x_param)
            path = out / f"phase_{quantity}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            paths = [path]
        else:
            paths = viz.plots.plot_sweep(run, output)
        for path in paths:
            click.echo(f"wrote {path}")
        return
    if output is None:
        _fail(["-o/--output: a folder for the plots is needed"])
    try:
        traj = load(run)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])
    with traj:
        for path in viz.plot_all(traj, output):
            click.echo(f"wrote {path}")


@main.command()
@click.argument("scenario")
@click.option("--param", "params", multiple=True, metavar="KEY.PATH=V1,V2,...|START:STOP",
              help="a swept parameter (repeatable); adds to the scenario's `sweep:` section")
@click.option("--zip", "zip_params", is_flag=True, help="pair the values instead of taking their product")
@click.option("--workers", type=int, help="local cluster size (default: the number of cores)")
@click.option("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="sweep folder")
@click.option("--resume", is_flag=True, help="skip completed members, rerun the others")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def sweep(scenario, params, zip_params, workers, scheduler, output, resume, quiet):
    """Run SCENARIO over a grid of parameters on a Dask cluster; writes OUTPUT/summary.csv and summary.h5."""
    from tqdm import tqdm

    from .runner.sweep import SweepError, parse_param, parse_values, run_sweep

    if workers is not None and scheduler:
        _fail(["--workers and --scheduler exclude each other"])
    sc = _load(scenario)
    swept = []
    if sc.config.sweep is not None:
        for key, values in sc.config.sweep.params.items():
            swept.append((key, parse_values(values) if isinstance(values, str) else list(values)))
        zip_params = zip_params or sc.config.sweep.zip
    try:
        for text in params:
            key, values = parse_param(text)
            swept = [(k, v) for k, v in swept if k != key] + [(key, values)]
        bar = tqdm(unit="member", disable=quiet, file=sys.stderr)

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            result = run_sweep(sc.path, swept, output, zip_params, workers, scheduler, resume, progress)
        finally:
            bar.close()
    except SweepError as exc:
        _fail([str(exc)])
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished members are in {output}/summary.csv; continue with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    counts = ", ".join(f"{k} {v}" for k, v in result.by_status().items())
    click.echo(f"{output}: {len(result.rows)} members ({counts}); ran {result.ran} in {result.wall_time:.1f} s")
    if any(r["status"] != "completed" for r in result.rows):
        for r in result.rows:
            if r["status"] != "completed":
                click.echo(f"  {r['member']}: {r['status']}: {r.get('message', '')}")
        sys.exit(EXIT_RUN_FAILED)


@main.command()
def scenarios():
    """List the shipped scenarios (run one with `vfe run NAME`)."""
    for name, path in shipped_scenarios().items():
        click.echo(f"{name:<20} {scenario_summary(path)}")


if __name__ == "__main__":  # pragma: no cover
    main()
