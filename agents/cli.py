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


def _existing_folder(path, option: str = "-o/--output") -> None:
    """Refuse (exit 2, one line) an explicit output whose folder does not exist, rather than create it."""
    from .io.outputs import missing_folder

    if path is not None and (why := missing_folder(path)):
        _fail([f"{option} {why}"])


def _examples(*lines: str) -> str:
    """A command's epilog: its examples, kept as written (click rewraps text unless told not to with \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _trajectory(path: str):
    from .io.reader import load

    try:
        return load(path)
    except (OSError, KeyError) as exc:
        _fail([str(exc)])


def _progress_bar(unit: str, quiet: bool):
    """A bar (off in a log file: runner/progress.py) and a ``progress(done, total)`` callback that drives it."""
    from .runner.progress import progress_bar

    bar = progress_bar(unit, not quiet)

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


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
             epilog=_examples("vfe scenarios", "vfe run quickstart", "vfe inspect runs/quickstart.h5",
                              "vfe plot runs/quickstart.h5 --format pdf --width single", "vfe COMMAND --help"))
@click.version_option(package_name="gauge-vfe")
def main():
    """gauge-vfe: agents with Gaussian beliefs in SO(3) gauge frames minimising a variational free energy.

    Exit codes: 0 success; 2 bad input (one line naming the file and what is wrong); 1 a run that diverged or
    failed; 130 interrupted (the file is valid: --resume continues it)."""


_set_option = click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
                           help="override a scenario key (repeatable), e.g. --set energy.kappa=0.5")


@main.command(epilog=_examples("vfe run quickstart", "vfe run emergence -o runs/e.h5 --steps 2000 --seed 7",
                               "vfe run my_scenario.yaml --set energy.kappa=0.5",
                               "vfe run emergence -o runs/e.h5 --resume --steps 4000   # continue or extend"))
@click.argument("scenario")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="trajectory file  [default: the scenario's output.path, else runs/NAME.h5; a folder given "
                   "here must exist]")
@click.option("--steps", type=int, help="total number of steps  [default: the scenario's dynamics.steps]")
@click.option("--seed", type=int, help="root seed  [default: the scenario's seed]")
@_set_option
@click.option("--resume", is_flag=True, help="continue the run in the output file from its checkpoint")
@click.option("--allow-changed-inputs", is_flag=True,
              help="with --resume: continue although an input file (observations, masks) changed since the run's "
                   "last segment; the change is recorded in the run's history")
@click.option("-q", "--quiet", is_flag=True,
              help="no progress bar (there is none anyway when stderr is a log file, not a terminal)")
@click.option("--max-memory", "max_memory", metavar="GIB",
              help="refuse the run if its estimated peak memory exceeds GIB gibibytes  [default: the memory this "
                   "machine has available]")
@click.option("--replicas", type=int,
              help="R independent replicas in one engine: an index at the output path and one run file per "
                   "replica in NAME.replicas/  [default: the scenario's ensemble.replicas, else 1]")
def run(scenario, output, steps, seed, sets, resume, allow_changed_inputs, quiet, max_memory, replicas):
    """Run SCENARIO (a YAML file or a shipped scenario's name) into an HDF5 trajectory.

    An existing output file is never overwritten: it is renamed NAME.1.h5 (NAME.2.h5, ...) first.
    """
    from .io.lock import RunFileBusy
    from .io.writer import DiskFullError
    from .runner.run import run_scenario

    if replicas is not None and replicas < 1:
        _fail([f"--replicas {replicas}: must be at least 1"])
    sc = _scenario(scenario, sets, seed, steps, max_memory=max_memory, check_memory=True)
    _existing_folder(output)
    replicas = replicas if replicas is not None else sc.config.replicas
    if replicas > 1:
        _run_ensemble(sc, replicas, output, resume)
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


def _run_ensemble(sc, replicas: int, output, resume: bool) -> None:
    """``vfe run --replicas R`` (R > 1): run the ensemble, print its outcome and exit."""
    from .runner.run_ensemble import run_ensemble

    if resume:
        _fail([f"--resume with {replicas} replicas: an ensemble does not resume as one (each replica's file "
               "resumes as a single run: vfe run --resume -o NAME.replicas/rNNNN.h5 with its seed)"])
    try:
        result = run_ensemble(sc, replicas, output)
    except ScenarioError as exc:
        _fail([_one_line(exc.messages)])
    except Exception as exc:  # noqa: BLE001 - say why and stop
        if os.environ.get("VFE_DEBUG"):
            raise
        _fail([f"run failed: {type(exc).__name__}: {exc} (set VFE_DEBUG=1 for a traceback)"], EXIT_RUN_FAILED)
    if result.message:
        click.echo(result.message)
    mean = {k: float(sum(v) / len(v)) for k, v in result.energy.items()}
    click.echo("energy, mean over replicas: " + "  ".join(f"{k}={v:.6g}" for k, v in mean.items()))
    click.echo(f"{result.status}: {result.path} ({replicas} replicas in {result.files[0].parent}, step "
               f"{result.last_step}, {result.wall_time:.1f} s, {result.member_steps_per_second:.3g} replica-steps/s)")
    sys.exit(EXIT_BY_STATUS[result.status])


_max_memory_option = click.option("--max-memory", "max_memory", metavar="GIB",
                                  help="refuse the run if its estimated peak memory exceeds GIB gibibytes  "
                                       "[default: the memory this machine has available]")


@main.command(epilog=_examples("vfe validate emergence", "vfe validate my_scenario.yaml --set grid.height=64"))
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
               f"{lay.fiber.describe()}, {lay.n_rows} agent-sites, "
               f"{lay.overlapping_pair_count()} overlapping pairs, up to {lay.max_per_site} agents per site")
    click.echo(f"  {cfg.dynamics.steps} steps of {cfg.dynamics.method} descent; initial energy "
               f"{sim.energy()['total']:.6g}")


@main.command(epilog=_examples("vfe inspect runs/quickstart.h5", "vfe inspect runs/quickstart.h5 --json"))
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


_RUN_SETTING = "  [default: the run's own analysis settings]"


@main.command(epilog=_examples("vfe analyze runs/emergence.h5", "vfe analyze runs/emergence.h5 --eps-belief 0.05 "
                               "--max-scale 3"))
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--eps-belief", type=float, help="consensus threshold in nats" + _RUN_SETTING)
@click.option("--min-overlap", type=int, help="shared sites needed for consensus" + _RUN_SETTING)
@click.option("--eps-prior", type=float, help="prior-agreement threshold for 'epistemically dead', in nats"
              + _RUN_SETTING)
@click.option("--max-scale", type=int, help="highest meta-agent scale" + _RUN_SETTING)
@click.option("--no-auto-loops", is_flag=True,
              help="only the scenario's own holonomy loops  [default: also the automatic loops]")
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


@main.command(epilog=_examples("vfe render runs/emergence.h5 -o emergence.mp4",
                               "vfe render runs/emergence.h5 -o last.png --frames -1 --size 1920x1080",
                               "vfe render runs/emergence.h5 -o sheet.png --contact-sheet",
                               "vfe render runs/emergence.h5 -o top.mp4 --camera top --panel-2d --clim 0,3"))
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="movie.mp4, movie.gif or frame.png (its folder must exist)")
@click.option("--frames", default=None,
              help="an index (-1: the last) or start:stop:step over the logged frames; a PNG takes the first  "
                   "[default: every frame]")
@click.option("--size", default="1280x720", help="WxH in pixels")
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
@click.option("--fps", default=10, type=int, help="frames per second of a movie")
@click.option("--camera", default="iso", type=click.Choice(["iso", "top", "side"]),
              help="viewpoint, fixed for the whole movie")
@click.option("--clim", default=None, metavar="LO,HI",
              help="colour range of --color-by  [default: its extremes over every rendered frame]")
@click.option("--holonomy-clim", default=None, metavar="LO,HI",
              help="colour range of the base plane's holonomy angle in rad  [default: 0 to its largest]")
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
    _existing_folder(output)
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


@main.command(epilog=_examples("vfe view runs/emergence.h5", "vfe view runs/emergence.h5 --color-by free_energy"))
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--color-by", default="|mu|", help="agent, mu:K, |mu|, trace_sigma, kl_prior, free_energy")
def view(run_file, color_by):
    """Open RUN_FILE in an interactive 3D window with a time slider (needs a display)."""
    from .. import viz

    try:
        viz.view(run_file, color_by=color_by)
    except (RuntimeError, ValueError) as exc:  # no display; a frame the file cannot re-evaluate (streaming)
        _fail([str(exc)])


def default_plot_folder(run_file) -> Path:
    """Where `vfe plot RUN_FILE` writes without -o: RUN_plots/ beside the run file (runs/e.h5 -> runs/e_plots/)."""
    p = Path(run_file)
    return p.with_name(f"{p.stem}_plots")


@main.command(epilog=_examples("vfe plot runs/emergence.h5                       # PNGs into runs/emergence_plots/",
                               "vfe plot runs/emergence.h5 -o fig/ --format pdf --width single",
                               "vfe plot runs/emergence.h5 --format png --dpi 600 --width double",
                               "vfe plot sweeps/kappa/ --quantity meta_agents --x energy.kappa"))
@click.argument("run_file", metavar="RUN_FILE|SWEEP_DIR", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="folder for the plots (created; its parent must exist)  [default: RUN_plots/ beside a run "
                   "file (runs/e.h5 -> runs/e_plots/), a sweep's own folder]")
@click.option("--format", "fmt", type=click.Choice(["png", "pdf", "svg"]), default="png",
              help="file format: pdf and svg are vector files for a manuscript")
@click.option("--dpi", type=click.IntRange(10, 2400), default=200, help="resolution of a PNG, dots per inch")
@click.option("--width", type=click.Choice(["single", "double", "natural"]), default="natural",
              help="figure width: a journal column (single 3.35 in, double 7.0 in) or each plot's own size")
@click.option("--quantity", help="for a sweep: one summary column to plot  [default: the main ones]")
@click.option("--x", "x_param",
              help="for a sweep: the parameter on the x axis  [default: the first swept parameter but the seed]")
def plot(run_file, output, fmt, dpi, width, quantity, x_param):
    """Plots of RUN_FILE (energy, holonomy, meta-agents, hierarchy, attention, beliefs), or phase diagrams of a
    SWEEP_DIR, in one style, as PNG, PDF or SVG."""
    from .. import viz
    from .io.outputs import NoSpaceLeft, OutputRefused

    save = {"fmt": fmt, "dpi": dpi, "width": None if width == "natural" else width}
    if Path(run_file).is_dir():
        if not (Path(run_file) / "summary.csv").exists():
            _fail([f"{run_file}: not a sweep folder (no summary.csv)"])
        _existing_folder(output)
        try:
            from ..viz.sweep_plots import plot_sweep

            paths = plot_sweep(run_file, output, quantities=[quantity] if quantity else None, x=x_param, **save)
        except OutputRefused as exc:
            _fail([str(exc)])
        except NoSpaceLeft as exc:
            _no_space(exc)
        except ValueError as exc:
            _fail([str(exc)], code=EXIT_RUN_FAILED)
    else:
        output = output or str(default_plot_folder(run_file))
        _existing_folder(output)
        try:
            with _trajectory(run_file) as traj:
                paths = viz.plot_all(traj, output, **save)
        except OutputRefused as exc:
            _fail([str(exc)])
        except NoSpaceLeft as exc:
            _no_space(exc)
    for path in paths:
        click.echo(f"wrote {path}")


@main.command(epilog=_examples("vfe sweep emergence --param energy.kappa=0.25,0.5,1,2 --param seed=0:4 -o sweeps/kappa",
                               "vfe sweep emergence --param energy.kappa=0.25,0.5,1,2 --param seed=0:4 -o sweeps/kappa "
                               "--resume",
                               "vfe plot sweeps/kappa"))
@click.argument("scenario")
@click.option("--param", "params", multiple=True, metavar="KEY.PATH=V1,V2,...|START:STOP",
              help="a swept parameter (repeatable); adds to the scenario's `sweep:` section")
@click.option("--zip", "zip_params", is_flag=True, help="pair the values instead of taking their product")
@click.option("--seeds", type=click.Choice(["shared", "per-member"]),
              help="shared: every member runs with the scenario's seed; per-member: each its own, derived from it "
                   "(docs/model.md#sweeps)  [default: the scenario's sweep.seeds, else shared]")
@click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
              help="override a scenario key in every member (repeatable)")
@click.option("--workers", type=click.IntRange(min=1),
              help="local cluster size, at most the number of cores  [default: the number of cores]")
@click.option("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786  [default: a local "
                                  "cluster]")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="sweep folder (created; its parent must exist)")
@click.option("--resume", is_flag=True,
              help="skip completed members, rerun the others (the same --param and --set values)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def sweep(scenario, params, zip_params, seeds, sets, workers, scheduler, output, resume, quiet):
    """Run SCENARIO over a grid of parameters on a Dask cluster; writes OUTPUT/summary.csv and summary.h5."""
    from .io.outputs import NoSpaceLeft
    from .runner.sweep import SweepError, member_seed_root, run_sweep, swept_parameters
    from .setup.scenario import parse_override

    if workers is not None and scheduler:
        _fail(["--workers and --scheduler exclude each other"])
    _existing_folder(output)
    sc = _scenario(scenario, sets)
    fixed = dict(parse_override(text) for text in sets)
    bar, progress = _progress_bar("member", quiet)
    try:
        swept, zip_params = swept_parameters(sc.config, params, zip_params)
        result = run_sweep(sc.path, swept, output, zip_params, workers, scheduler, resume, progress, fixed,
                           member_seed_root(sc.config, seeds))
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


@main.command(epilog=_examples("vfe export runs/emergence.h5                # runs/emergence.vtkhdf",
                               "vfe export runs/emergence.h5 -o paraview/emergence.vtkhdf"))
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default=None,
              help="output format (vtkhdf)  [default: the one the output's suffix names (.vtkhdf, .hdf), which must "
                   "agree with it]")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="output file, .vtkhdf or .hdf (its folder must exist)  [default: RUN_FILE with the suffix .vtkhdf]")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def export(run_file, fmt, output, quiet):
    """Write RUN_FILE as a time series on the grid that ParaView and VisIt open (VTKHDF ImageData): per agent
    mu, |mu|, tr Sigma, phi, chi, energy densities, meta-agent ids per scale and the plaquette angle. Read a step
    back in Python with gv.viz.read_export(FILE, step=S)."""
    from .io.export import export as export_run
    from .io.outputs import NoSpaceLeft

    _existing_folder(output)
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


@main.command(epilog=_examples("vfe repair runs/emergence.h5", "vfe run emergence -o runs/emergence.h5 --resume"))
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


@main.command(epilog=_examples("vfe verify runs/emergence.h5", "vfe verify runs/emergence.h5 || echo damaged"))
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


@main.command(epilog=_examples("vfe spectrum runs/emergence.h5", "vfe spectrum runs/emergence.h5 --step 200 -k 4 --json"))
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--step", type=int, help="the logged frame's step  [default: the last frame]")
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


@main.command(epilog=_examples("vfe relax runs/timescales.h5 --replicas 32",
                               "vfe relax timescales --modes 2 --json"))
@click.argument("source")
@click.option("--step", type=int, help="a run file's logged frame (default: the last frame)")
@click.option("--replicas", type=click.IntRange(min=2), default=32, show_default=True,
              help="displaced copies (an even number: antithetic pairs)")
@click.option("--steps", type=click.IntRange(min=1), help="steps per copy (default: a quarter of the slowest "
              "predicted time)")
@click.option("--amplitude", type=float, default=1e-3, show_default=True, help="RMS displacement per free coordinate")
@click.option("--modes", type=click.IntRange(min=1), help="displace along the k slowest modes (default: at random)")
@click.option("--temperature", type=click.FloatRange(min=0), help="Langevin temperature of the copies (default: "
              "the run's)")
@click.option("--observables", default="collective,relative", show_default=True,
              help="comma-separated: agent, collective, relative, agent_sigma, collective_sigma (covariances)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="displacements and noise")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (strict JSON)")
def relax(source, step, replicas, steps, amplitude, modes, temperature, observables, seed, as_json):
    """Relaxation times of gauge-invariant observables from displaced copies of a state: SOURCE is a run file
    (RUN.h5, its frame at --step) or a scenario (its initial state)."""
    import warnings

    from .analysis.relax import KINDS
    from .analysis.spectrum import SpectrumWarning
    from .runner.relax import relax as relax_of, relax_lines, relax_record

    kinds = tuple(k.strip() for k in observables.split(",") if k.strip())
    if not kinds or set(kinds) - set(KINDS):
        _fail([f"--observables {observables!r}: expected a comma-separated list of {', '.join(KINDS)}"])
    options = dict(replicas=replicas, steps=steps, amplitude=amplitude, displace="modes" if modes else "random",
                   modes=modes or 4, temperature=temperature, observables=kinds, seed=seed)
    is_run = source.lower().endswith((".h5", ".hdf5"))
    if is_run and not os.path.isfile(source):
        _fail([f"{source}: no such run file"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SpectrumWarning)
        try:
            if is_run:
                with _trajectory(source) as traj:
                    df = relax_of(traj, step=step, **options)
            else:
                if step is not None:
                    _fail([f"{source}: --step is for run files; a scenario relaxes from its initial state"])
                df = relax_of(_scenario(source), **options)
        except (OSError, KeyError, IndexError, ValueError) as exc:  # StepNotLogged, SpectrumError among them
            _fail([f"{source}: " + " ".join(str(exc).strip("'\"").split())])
    if as_json:
        click.echo(json.dumps({"source": source, **relax_record(df)}, indent=2, allow_nan=False))
    else:
        for line in relax_lines(df):
            click.echo(line)
    for w in caught:
        if issubclass(w.category, SpectrumWarning):
            click.echo(f"warning: {w.message}", err=True)


@main.command(epilog=_examples("vfe scenarios", "vfe run quickstart"))
def scenarios():
    """List the shipped scenarios (run one with `vfe run NAME`)."""
    for name, path in shipped_scenarios().items():
        click.echo(f"{name:<20} {scenario_summary(path)}")


if __name__ == "__main__":  # pragma: no cover
    main()
