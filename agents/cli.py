"""The ``vfe`` command: it parses, calls one public function, and prints.

Every command is a call a notebook can make too (``gauge_vfe.run_scenario``, ``summarize_run``,
``analyze_run``, ``gauge_vfe.viz.render``, ...). Exit codes: 0 success; 2 bad input (one message, no
traceback); 1 a run that diverged or failed; 130 a run interrupted by Ctrl-C or SIGTERM (its file is valid
and ``--resume`` continues it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .io.errors import TrajectoryFileError
from .setup.config import ConfigError
from .setup.scenario import ScenarioError
from .launch import EXIT_INTERRUPTED, exit_interrupted
from .setup.shipped import scenario_summary, shipped_scenarios

EXIT_BAD_INPUT = 2
EXIT_RUN_FAILED = 1
EXIT_BY_STATUS = {"completed": 0, "interrupted": EXIT_INTERRUPTED, "diverged": EXIT_RUN_FAILED,
                  "failed": EXIT_RUN_FAILED}


def _fail(messages, code=EXIT_BAD_INPUT):
    for m in messages:
        click.echo(f"error: {m}", err=True)
    sys.exit(code)


def _no_space(exc) -> None:
    """A full disk outside the run (:class:`~.io.outputs.NoSpaceLeft`): its one line, and exit 1 at once. The
    writer has released its HDF5 handle and removed its temporary file; but after a write that failed inside HDF5,
    freeing HDF5's remaining objects (as an ordinary exit does) can crash, so leave as `vfe run` does after a
    DiskFullError: nothing is left to save."""
    click.echo(f"error: {exc.strerror}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_RUN_FAILED)


def _scenario(name: str, sets=(), seed=None, steps=None, max_memory=None, check_memory: bool = False):
    """Load and check a scenario (:func:`prepare_scenario`), or print one error line and exit 2."""
    from .setup.scenario import prepare_scenario

    labels = {}
    if seed is not None:
        labels[f"--set seed={seed}:"] = f"--seed {seed}:"
    if steps is not None:
        labels[f"--set dynamics.steps={steps}:"] = f"--steps {steps}:"
    overrides = list(sets) + ([f"seed={seed}"] if seed is not None else []) + \
        ([f"dynamics.steps={steps}"] if steps is not None else [])
    try:
        return prepare_scenario(name, overrides, max_memory=max_memory, check_memory=check_memory)
    except ScenarioError as exc:
        _fail([_one_line(exc.messages, labels)])


def _one_line(messages, labels=None) -> str:
    """The first problem, and how many more there are: bad input is reported on one line."""
    first = " ".join(str(messages[0]).split()) if messages else "bad input"
    for plain, label in (labels or {}).items():
        if first.startswith(plain):
            first = label + first[len(plain):]
    more = len(messages) - 1
    return first + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")


def _trajectory(path: str):
    from .io.reader import load

    try:
        return load(path)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])


def _progress_bar(unit: str, quiet: bool):
    """A tqdm bar and a ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(unit=unit, disable=quiet, file=sys.stderr)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    return bar, progress


class _LazyBar:
    """A ``progress(done, total)`` callback whose bar starts with the first frame, so that bad input (a
    foreign or damaged file met before any frame) prints one line only; ``close()`` ends it."""

    def __init__(self, unit: str, quiet: bool):
        self.unit, self.quiet, self.bar = unit, quiet, None

    def __call__(self, done, total):
        if self.bar is None:
            self.bar, self._progress = _progress_bar(self.unit, self.quiet)
        self._progress(done, total)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _OneLineErrors(click.Group):
    """Usage errors (a bad option value, a missing argument) as one ``error:`` line and exit 2, like every
    other bad input, instead of click's usage block."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            _fail([where + " ".join(exc.format_message().split())])
        except click.Abort:
            exit_interrupted()
        except TrajectoryFileError as exc:  # a foreign, inconsistent or damaged file, met wherever it is read
            _fail([" ".join(str(exc).split())])
        except click.ClickException as exc:
            _fail([" ".join(exc.format_message().split())], exc.exit_code)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--allow-changed-inputs", is_flag=True,
              help="with --resume: continue although an input file (observations, masks) changed since the run's "
                   "last segment; the change is recorded in the run's history")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.option("--max-memory", "max_memory", metavar="GIB",
              help="refuse the run if its estimated peak memory exceeds GIB gibibytes (default: the memory this "
                   "machine has available)")
def run(scenario, output, steps, seed, sets, resume, allow_changed_inputs, quiet, max_memory):
    """Run SCENARIO (a YAML file or a shipped scenario's name) into an HDF5 trajectory.

    An existing output file is never overwritten: it is renamed NAME.1.h5 (NAME.2.h5, ...) first.
    """
    from .io.lock import RunFileBusy
    from .io.writer import DiskFullError
    from .runner.run import run_scenario

    sc = _scenario(scenario, sets, seed, steps, max_memory=max_memory, check_memory=True)
    try:
        result = run_scenario(sc, output, resume=resume, progress=not quiet,
                              allow_changed_inputs=allow_changed_inputs, say=lambda line: click.echo(line, err=True))
    except ScenarioError as exc:
        _fail([_one_line(exc.messages)])
    except RunFileBusy as exc:
        _fail([str(exc)])
    except DiskFullError as exc:
        # HDF5 cannot close a file it failed to write, and would crash at interpreter exit: say what happened
        # and leave at once. Every committed frame is on disk; --resume continues once there is space.
        click.echo(f"error: {exc.strerror}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_RUN_FAILED)
    except Exception as exc:  # noqa: BLE001 - the file is closed with status `failed`; say why and stop
        if os.environ.get("VFE_DEBUG"):
            raise
        _fail([f"run failed: {type(exc).__name__}: {exc} (set VFE_DEBUG=1 for a traceback)"], EXIT_RUN_FAILED)
    if result.kept_earlier is not None:
        click.echo(f"kept the earlier {result.path} as {result.kept_earlier} (use --resume to continue a run "
                   "instead)", err=True)
    if result.message:
        click.echo(result.message)
    for note in result.notes:
        click.echo(note)
    click.echo("energy: " + "  ".join(f"{k}={v:.6g}" for k, v in result.energy.items()))
    uphill = f", {result.energy_increases} uphill steps" if result.energy_increases else ""
    click.echo(f"{result.status}: {result.path} (step {result.last_step}, {result.wall_time:.1f} s, "
               f"{result.steps_per_second:.3g} steps/s{uphill})")  # 3 figures: a short run is under 1
    if result.interrupted_after_steps:  # every step is in the file; a script's loop of runs must still stop
        click.echo("interrupted after the last step", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_BY_STATUS[result.status])


_max_memory_option = click.option("--max-memory", "max_memory", metavar="GIB",
                                  help="refuse the run if its estimated peak memory exceeds GIB gibibytes "
                                       "(default: the memory this machine has available)")


@main.command()
@click.argument("scenario")
@_set_option
@_max_memory_option
def validate(scenario, sets, max_memory):
    """Check SCENARIO without running it: keys, values, files, memory, and the layout it builds."""
    from .runner.run import build_simulation

    sc = _scenario(scenario, sets, max_memory=max_memory, check_memory=True)
    try:
        sim = build_simulation(sc)
    except ScenarioError as exc:
        _fail([_one_line(exc.messages)])
    lay, cfg = sim.layout, sc.config
    click.echo(f"{sc.path}: ok")
    click.echo(f"  {cfg.name}: {lay.grid.height}x{lay.grid.width} {lay.grid.boundary} grid, {lay.n_agents} agents, "
               f"spins {list(cfg.fiber.spins)} (K={lay.K}), {lay.n_rows} agent-sites, "
               f"{lay.overlapping_pair_count()} overlapping pairs, up to {lay.max_per_site} agents per site")
    click.echo(f"  {cfg.dynamics.steps} steps of {cfg.dynamics.method} descent; initial energy "
               f"{sim.energy()['total']:.6g}")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (strict JSON)")
def inspect(run_file, as_json):
    """Summarise a trajectory file: scenario, status, steps, energies by term, meta-agents, holonomy."""
    from .runner.inspect import summarize_run, summary_lines

    with _trajectory(run_file) as traj:
        info = summarize_run(traj)
    if as_json:
        click.echo(json.dumps(info, indent=2, allow_nan=False))
        return
    for line in summary_lines(info):
        click.echo(line)


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--eps-belief", type=float, help="consensus threshold (default: the run's analysis settings)")
@click.option("--min-overlap", type=int, help="shared sites needed for consensus")
@click.option("--eps-prior", type=float, help="prior-agreement threshold for 'epistemically dead'")
@click.option("--max-scale", type=int, help="highest meta-agent scale")
@click.option("--no-auto-loops", is_flag=True, help="only the scenario's own holonomy loops")
def analyze(run_file, eps_belief, min_overlap, eps_prior, max_scale, no_auto_loops):
    """Detect and track meta-agents and measure holonomy in every frame of RUN_FILE (written into it)."""
    from .io.outputs import NoSpaceLeft
    from .runner.analyze import analysis_settings, analyze_run
    from .runner.inspect import meta_agent_lines, summarize_run

    try:
        settings = analysis_settings(run_file, eps_belief=eps_belief, min_overlap=min_overlap, eps_prior=eps_prior,
                                     max_scale=max_scale, automatic_loops=False if no_auto_loops else None)
        result = analyze_run(run_file, settings)
    except NoSpaceLeft as exc:
        _no_space(exc)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # ConfigError is a ValueError
        _fail([f"{k}: {m}" for k, m in exc.problems] if isinstance(exc, ConfigError) else [str(exc)])
    p = settings.meta_agents
    click.echo(f"{run_file}: {len(result.steps)} logged frames analysed (eps_belief={p.eps_belief:g}, "
               f"min_overlap={p.min_overlap})")
    info = summarize_run(run_file)
    for line in meta_agent_lines(info["meta_agents"]):
        click.echo("  " + line)
    if len(result.holonomy_summary):
        mean, mx, n = result.holonomy_summary[-1]
        click.echo(f"  holonomy, last frame: plaquette angle mean {mean:.3g}, max {mx:.3g} over {int(n)} plaquettes; "
                   f"{len(result.loop_names)} loops")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="movie.mp4, movie.gif or frame.png")
@click.option("--frames", default=None, help="start:stop:step over logged frames (a PNG takes the first)")
@click.option("--size", default="1280x720", help="WxH in pixels")
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
@click.option("--fps", default=10, type=int, help="frames per second of a movie")
@click.option("--camera", default="iso", type=click.Choice(["iso", "top", "side"]),
              help="viewpoint, fixed for the whole movie")
@click.option("--clim", default=None, metavar="LO,HI",
              help="colour range of --color-by (default: its extremes over every rendered frame)")
@click.option("--holonomy-clim", default=None, metavar="LO,HI",
              help="colour range of the base plane's holonomy angle in rad (default: 0 to its largest)")
@click.option("--contact-sheet", is_flag=True, help="9 frames spread over the run in one PNG (-o sheet.png)")
@click.option("--no-title-card", is_flag=True, help="start a movie at its first frame")
@click.option("--panel-2d", is_flag=True, help="a top-down panel (holonomy, meta-agents) beside the 3D view")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def render(run_file, output, frames, size, color_by, fps, camera, clim, holonomy_clim, contact_sheet, no_title_card,
           panel_2d, quiet):
    """Render RUN_FILE offscreen to a movie (MP4, GIF), one frame (PNG) or a contact sheet (PNG)."""
    from .. import viz
    from .io.outputs import NoSpaceLeft

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        _fail([f"--size: expected WxH, got {size!r}"])
    bar = progress = _LazyBar("frame", quiet)
    reports = []
    try:
        options = {"view": camera, "clim": clim, "holonomy_clim": holonomy_clim, "panel_2d": panel_2d,
                   "report": reports.append}
        with _trajectory(run_file) as traj:
            if contact_sheet:
                path = viz.contact_sheet(traj, output, color_by=color_by, tile=(width // 2, height // 2), **options)
            else:
                path = viz.render(traj, output, frames=frames, size=(width, height), color_by=color_by,
                                  progress=progress, fps=fps, title_card=not no_title_card, **options)
    except (ValueError, IndexError) as exc:
        _fail([str(exc)])
    except NoSpaceLeft as exc:
        _no_space(exc)
    except TrajectoryFileError as exc:  # bad input (an OSError too): exit 2, not the encoder's exit 1
        _fail([" ".join(str(exc).split())])
    except (OSError, RuntimeError) as exc:  # the encoder failed: the target is untouched, and no "wrote" line
        _fail([f"render failed: {' '.join(str(exc).split())}"], EXIT_RUN_FAILED)
    except KeyboardInterrupt:  # the movie was written to a temporary file, now removed: the target is untouched
        bar.close()
        exit_interrupted(f"interrupted; {output} left as it was")
    finally:
        bar.close()
    for r in reports:
        click.echo(r.line())
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
def view(run_file, color_by):
    """Open RUN_FILE in an interactive 3D window with a time slider (needs a display)."""
    from .. import viz

    try:
        viz.view(run_file, color_by=color_by)
    except (RuntimeError, ValueError) as exc:  # no display; a frame the file cannot re-evaluate (streaming)
        _fail([str(exc)])


@main.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="folder for the PNGs (default: a sweep's own folder; required for a run file)")
@click.option("--quantity", help="for a sweep: one summary column to plot (default: the main ones)")
@click.option("--x", "x_param", help="for a sweep: the parameter on the x axis")
def plot(run, output, quantity, x_param):
    """Plots of RUN.h5 (energy, holonomy, meta-agents, hierarchy, attention, beliefs), or phase diagrams of a
    SWEEP_DIR."""
    from .. import viz
    from .io.outputs import NoSpaceLeft, OutputRefused

    if Path(run).is_dir():
        if not (Path(run) / "summary.csv").exists():
            _fail([f"{run}: not a sweep folder (no summary.csv)"])
        try:
            from ..viz.sweep_plots import plot_sweep

            paths = plot_sweep(run, output, quantities=[quantity] if quantity else None, x=x_param)
        except OutputRefused as exc:
            _fail([str(exc)])
        except NoSpaceLeft as exc:
            _no_space(exc)
        except ValueError as exc:
            _fail([str(exc)], code=EXIT_RUN_FAILED)
    else:
        if output is None:
            _fail(["-o/--output: a folder for the plots is needed"])
        try:
            with _trajectory(run) as traj:
                paths = viz.plot_all(traj, output)
        except OutputRefused as exc:
            _fail([str(exc)])
        except NoSpaceLeft as exc:
            _no_space(exc)
    for path in paths:
        click.echo(f"wrote {path}")


@main.command()
@click.argument("scenario")
@click.option("--param", "params", multiple=True, metavar="KEY.PATH=V1,V2,...|START:STOP",
              help="a swept parameter (repeatable); adds to the scenario's `sweep:` section")
@click.option("--zip", "zip_params", is_flag=True, help="pair the values instead of taking their product")
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="override a scenario key in every member (repeatable)")
@click.option("--workers", type=int, help="local cluster size (default and at most: the number of cores)")
@click.option("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="sweep folder")
@click.option("--resume", is_flag=True, help="skip completed members, rerun the others")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def sweep(scenario, params, zip_params, sets, workers, scheduler, output, resume, quiet):
    """Run SCENARIO over a grid of parameters on a Dask cluster; writes OUTPUT/summary.csv and summary.h5."""
    from .io.outputs import NoSpaceLeft
    from .runner.sweep import SweepError, run_sweep, swept_parameters
    from .setup.scenario import parse_override

    if workers is not None and scheduler:
        _fail(["--workers and --scheduler exclude each other"])
    sc = _scenario(scenario, sets)
    fixed = dict(parse_override(text) for text in sets)
    bar, progress = _progress_bar("member", quiet)
    try:
        swept, zip_params = swept_parameters(sc.config, params, zip_params)
        result = run_sweep(sc.path, swept, output, zip_params, workers, scheduler, resume, progress, fixed)
    except SweepError as exc:
        _fail([str(exc)])
    except NoSpaceLeft as exc:
        _no_space(exc)
    except KeyboardInterrupt:
        click.echo(f"interrupted: finished members are in {output}/summary.csv; continue with --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in result.by_status().items())
    uphill = result.uphill_members()
    went_up = (f"; {len(uphill)} went uphill ({', '.join(uphill[:8])}{', ...' if len(uphill) > 8 else ''}: reduce the "
               "step sizes or enable dynamics.line_search)") if uphill else "; every step downhill"
    click.echo(f"{output}: {len(result.rows)} members ({counts}){went_up}; ran {result.ran} in "
               f"{result.wall_time:.1f} s")
    failed = [r for r in result.rows if r["status"] != "completed"]
    for r in failed:
        click.echo(f"  {r['member']}: {r['status']}: {r.get('message', '')}")
    sys.exit(EXIT_RUN_FAILED if failed else 0)


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="vtkhdf", show_default=True, help="output format (vtkhdf)")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="output file (default RUN_FILE as .vtkhdf)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def export(run_file, fmt, output, quiet):
    """Write RUN_FILE as a time series on the grid that ParaView and VisIt open (VTKHDF ImageData): per agent
    mu, |mu|, tr Sigma, phi, chi, energy densities, meta-agent ids per scale and the plaquette angle."""
    from .io.export import export as export_run
    from .io.outputs import NoSpaceLeft

    output = output or str(Path(run_file).with_suffix(".vtkhdf"))
    progress = _LazyBar("frame", quiet)

    try:
        with _trajectory(run_file) as traj:
            result = export_run(traj, output, fmt, progress=progress)
    except NoSpaceLeft as exc:
        _no_space(exc)
    except (OSError, ValueError) as exc:
        _fail([" ".join(str(exc).split())])
    finally:
        progress.close()
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo(result.line())


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
def repair(run_file):
    """Clear the HDF5 consistency flags a killed run left in RUN_FILE, so every HDF5 tool opens it."""
    from .io.lock import RunFileBusy
    from .io.outputs import NoSpaceLeft
    from .io.recovery import repair as repair_file

    try:
        cleared = repair_file(run_file)
    except NoSpaceLeft as exc:
        _no_space(exc)
    except (OSError, RunFileBusy) as exc:
        _fail([str(exc)])
    click.echo(f"{run_file}: {'repaired: it opens in every HDF5 tool' if cleared else 'nothing to repair'}"
               " (continue the run with vfe run SCENARIO -o RUN_FILE --resume)")


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
def verify(run_file):
    """Read every chunk of RUN_FILE and check its checksums: exit 0 all intact, 1 damage found (each damaged
    dataset named with the entries and steps affected), 2 not a gauge-vfe trajectory."""
    from .io.integrity import check_file
    from .io.integrity import verify as verify_file
    from .io.recovery import open_read_only

    try:
        with open_read_only(run_file) as f:
            check_file(f, run_file)
            result = verify_file(f, run_file)
    except OSError as exc:
        _fail([" ".join(str(exc).split())])
    for line in result.lines():
        click.echo(line)
    sys.exit(0 if result.intact else EXIT_RUN_FAILED)


@main.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--step", type=int, help="the logged frame's step (default: the last frame)")
@click.option("-k", "k", type=click.IntRange(min=1), default=8, show_default=True, help="physical modes to find")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (strict JSON)")
def spectrum(run_file, step, k, as_json):
    """The slowest modes of the run's linearised update map at a logged frame of RUN_FILE: rates, times in steps
    (and bits), field shares, gauge modes, and how far the state is from a fixed point."""
    import warnings

    from .analysis.spectrum import SpectrumWarning, spectrum_lines, spectrum_record
    from .runner.spectrum import spectrum as spectrum_of_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpectrumWarning)
        try:
            with _trajectory(run_file) as traj:
                df = spectrum_of_run(traj, step=step, k=k)
        except (OSError, KeyError, IndexError, ValueError) as exc:  # StepNotLogged, SpectrumError among them
            _fail([f"{run_file}: " + " ".join(str(exc).strip("'\"").split())])
    if as_json:
        click.echo(json.dumps({"file": run_file, **spectrum_record(df)}, indent=2, allow_nan=False))
    else:
        click.echo(f"{run_file}: step {df.attrs['step']}")
        for line in spectrum_lines(df):
            click.echo(line)
    for w in caught:
        if issubclass(w.category, SpectrumWarning):
            click.echo(f"warning: {w.message}", err=True)


@main.command()
def scenarios():
    """List the shipped scenarios (run one with `vfe run NAME`)."""
    for name, path in shipped_scenarios().items():
        click.echo(f"{name:<20} {scenario_summary(path)}")


if __name__ == "__main__":  # pragma: no cover
    main()
