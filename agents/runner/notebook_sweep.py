"""``gv.sweep``: a parameter sweep run as ``vfe sweep`` runs it (:func:`~.sweep.run_sweep`), with Python values
in and its summary out as a typed DataFrame (:func:`~.sweep_table.load_sweep`)."""

from __future__ import annotations

from pathlib import Path

from .prepare import param_values, plain_overrides, prepare
from .sweep_table import load_sweep


def sweep(scenario, params: dict | None = None, *, workers: int | None = None, scheduler: str | None = None,
          output=None, zip: bool = False, resume: bool = False, progress: bool = True,  # noqa: A002 - --zip
          seeds: str | None = None, **overrides):
    """Run a parameter sweep as ``vfe sweep`` does and return its summary as a DataFrame (:func:`load_sweep`).

    ``scenario``: a shipped name or a scenario file. ``params``: ``{key.path: values}``, the values a list, a
    single value, or a ``--param`` text (``"0:8"``, ``"0.5,1,2"``); they add to (and replace keys of) the
    scenario's own ``sweep:`` section. ``seeds``: ``"shared"`` or ``"per_member"`` (``vfe sweep --seeds``; default
    the scenario's ``sweep.seeds``). ``zip`` pairs the values instead of taking their product. The members
    run on a local Dask cluster of ``workers`` processes (default: the cores), or on ``scheduler``.
    ``output``: the sweep folder, default ``sweeps/NAME/``; ``resume`` skips members already completed there.
    ``overrides`` (as in :func:`~.notebook_run.run`, ``vfe sweep --set``) apply to every member.
    """
    from .sweep import member_seed_root, run_sweep, swept_parameters

    fixed = plain_overrides(overrides)
    sc = prepare(scenario, fixed, check_memory=False)
    if sc.path is None:
        raise TypeError("a sweep runs a scenario file (or a shipped scenario's name): its workers read it")
    swept, zip_params = swept_parameters(sc.config, (), zip)
    for key, values in (params or {}).items():
        swept = [(k, v) for k, v in swept if k != key] + [(key, param_values(values))]
    directory = Path(output) if output is not None else Path("sweeps") / sc.config.name
    from .progress import progress_bar

    bar = progress_bar("member", progress)

    def advance(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        run_sweep(sc.path, swept, directory, zip_params, workers, scheduler, resume, advance, fixed,
                  member_seed_root(sc.config, seeds))
    finally:
        bar.close()
    return load_sweep(directory)
