"""One call per capability, for notebooks: ``gv.run``, ``gv.analyze``, ``gv.sweep``, ``gv.load_sweep``.

    import gauge_vfe as gv
    traj = gv.run("quickstart", steps=200, seed=7, **{"energy.kappa": 0.5})   # a Trajectory
    a = gv.analyze(traj, eps_belief=0.05)                                    # objects and DataFrames
    a.meta_agents, a.events, a.timescales, a.holonomy
    df = gv.sweep("quickstart", {"energy.kappa": [0.5, 1, 2], "seed": "0:4"}, workers=2, output="sweeps/k")
    df = gv.load_sweep("sweeps/k")                                           # typed columns

Each is the CLI command's own code path (``vfe run`` is :func:`~.run.run_scenario` after
:func:`~gauge_vfe.agents.setup.scenario.prepare_scenario`; ``vfe sweep`` is :func:`~.sweep.run_sweep`), with
Python values in and pandas or xarray out.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.reader import Trajectory

THRESHOLDS = ("eps_belief", "min_overlap", "eps_prior", "max_scale", "automatic_loops")


# --- scenarios and overrides --------------------------------------------------------------------------------------

def _flatten(overrides: dict, prefix: str = "") -> dict:
    """``{"energy": {"kappa": 0.5}}`` and ``{"energy.kappa": 0.5}`` both as ``{"energy.kappa": 0.5}`` (a nested
    mapping sets its keys one by one; a list or a scalar replaces the value)."""
    out = {}
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _plain(value):
    """numpy scalars and arrays as the Python values JSON (and so YAML) knows."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def override_texts(overrides: dict) -> list[str]:
    """``--set`` texts (``key.path=value``, the value as JSON, which YAML reads back) of Python overrides."""
    return [f"{key}={json.dumps(_plain(value))}" for key, value in _flatten(overrides).items()]


def prepare(scenario, overrides: dict | None = None, *, check_memory: bool = True):
    """A checked :class:`~gauge_vfe.agents.setup.scenario.Scenario` from a shipped name, a path, a dict or a
    Config, with Python ``overrides``; the same checks as ``vfe run`` (schema, memory, the files it names)."""
    from ..setup.scenario import prepare_scenario

    # numpy values in a dict become the plain ones YAML writes; a Config or a path goes as it is
    source = _plain(scenario) if isinstance(scenario, dict) else scenario
    return prepare_scenario(source, override_texts(overrides or {}), check_memory=check_memory)


# --- gv.run ---------------------------------------------------------------------------------------------------------

class TemporaryTrajectory(Trajectory):
    """A :class:`Trajectory` of a run written to a temporary folder, deleted with it: when it is closed, garbage
    collected, or the interpreter exits. Copy ``traj.path`` elsewhere first to keep the file."""

    def __init__(self, path, folder: Path):
        super().__init__(path)
        self.folder = folder
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(folder), True)

    def close(self) -> None:
        super().close()
        self._cleanup()


def run(scenario, *, steps: int | None = None, seed: int | None = None, output=None, progress: bool = True,
        **overrides) -> Trajectory:
    """Run a scenario as ``vfe run`` does and open its trajectory.

    ``scenario``: a shipped scenario's name (``"quickstart"``), a scenario file, a dict of scenario keys, or a
    :class:`~gauge_vfe.agents.setup.config.Config`. ``steps`` and ``seed`` are ``--steps`` and ``--seed``;
    ``overrides`` are ``--set`` keys, dotted (``**{"energy.kappa": 0.5}``) or nested
    (``energy={"kappa": 0.5}``, which sets only the keys given). ``progress`` shows the progress bar.

    ``output``: the trajectory file (an existing one is renamed ``NAME.1.h5`` first, as by ``vfe run``). With
    ``output=None`` the run is written to a file in a new temporary folder that lives as long as the returned
    trajectory: closing it (``traj.close()``, or a ``with`` block), its garbage collection or the end of the
    interpreter deletes the folder. Pass ``output=`` to keep the file.

    Bad input raises ``ScenarioError`` before anything is written. A run that diverges still returns its
    trajectory, with a warning; ``traj.status`` and ``traj.message`` say what happened. Ctrl-C (or SIGTERM)
    ends the run cleanly within a step, as in ``vfe run`` (the file is valid, status ``interrupted``), and then
    raises ``KeyboardInterrupt`` (a temporary file is deleted; a kept one continues with ``vfe run --resume``).
    """
    from .run import run_scenario

    if isinstance(output, dict):  # the keyword is the file; the scenario section goes in by dotted keys
        raise TypeError("output= is the trajectory file; set the scenario's output section with dotted keys, "
                        "e.g. **{'output.every': 5}")
    if steps is not None:
        overrides["dynamics.steps"] = steps
    if seed is not None:
        overrides["seed"] = seed
    sc = prepare(scenario, overrides)
    folder = None
    if output is None:
        folder = Path(tempfile.mkdtemp(prefix="gauge-vfe-"))
        output = folder / f"{sc.config.name}.h5"
    try:
        result = run_scenario(sc, output, progress=progress)
        if result.status == "interrupted" or result.interrupted_after_steps:
            # Ctrl-C (or SIGTERM) stopped the run cleanly and closed its file; it still stops the caller, as a
            # Ctrl-C stops a notebook cell or a script's loop of runs. `vfe run ... --resume` continues the file.
            raise KeyboardInterrupt(f"{result.path}: {result.message}")
        traj = TemporaryTrajectory(result.path, folder) if folder is not None else Trajectory(result.path)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if result.status != "completed":
        warnings.warn(f"run {result.status}: {result.message}", RuntimeWarning, stacklevel=2)
    return traj


# --- gv.analyze -----------------------------------------------------------------------------------------------------

def analysis_config(config: dict, **thresholds):
    """The ``analysis`` section of a run's resolved ``config`` with some thresholds replaced (None: keep):
    ``eps_belief``, ``min_overlap``, ``eps_prior``, ``max_scale`` (of ``meta_agents``) and ``automatic_loops``
    (``holonomy.automatic``). Validated like a scenario; a bad value raises ``ConfigError``."""
    from ..setup.config import make_config

    unknown = sorted(set(thresholds) - set(THRESHOLDS))
    if unknown:
        raise TypeError(f"unknown analysis threshold(s) {unknown}: use {', '.join(THRESHOLDS)}")
    section = dict(config.get("analysis", {}))
    meta = {**section.get("meta_agents", {}),
            **{k: v for k, v in thresholds.items() if k != "automatic_loops" and v is not None}}
    holonomy = dict(section.get("holonomy", {}))
    if thresholds.get("automatic_loops") is not None:
        holonomy["automatic"] = thresholds["automatic_loops"]
    return make_config({**config, "analysis": {**section, "meta_agents": meta, "holonomy": holonomy}}).analysis


@dataclass
class Analysis:
    """Meta-agents, events, time scales and holonomy of a run, as objects and as pandas DataFrames.

    ``result`` is the :class:`~gauge_vfe.agents.analysis.pipeline.AnalysisResult` (arrays, one row per analysed
    frame); the properties give its tables as DataFrames with typed columns. ``stored``: read from the file
    rather than computed.
    """

    result: object
    stored: bool = False

    @property
    def steps(self) -> np.ndarray:
        return self.result.steps

    @property
    def n_scales(self) -> int:
        """The highest scale at which a meta-agent appeared (1: none)."""
        return self.result.n_scales

    def meta_agents_at(self, frame: int = -1) -> list[dict]:
        """The meta-agents of one analysed frame: scale, id, parent, base members, dead."""
        return self.result.meta_agents(frame % len(self.result.steps))

    @property
    def meta_agents(self):
        """One row per meta-agent per analysed frame: step, scale, id, parent, size, n_base, dead, members."""
        import pandas as pd

        r = self.result
        df = pd.DataFrame({name: r.records[name] for name in r.records.dtype.names})
        df["members"] = [r.members[r.members_offset[k]:r.members_offset[k + 1]].tolist() for k in range(len(df))]
        return df

    @property
    def events(self):
        """Births, deaths, merges and splits: step, kind (categorical), scale, id, other (-1: none)."""
        import pandas as pd

        from ..analysis.pipeline import EVENT_KINDS

        ev = self.result.events
        names = {v: k for k, v in EVENT_KINDS.items()}
        df = pd.DataFrame({name: ev[name] for name in ev.dtype.names})
        df["kind"] = pd.Categorical([names[int(k)] for k in ev["kind"]], categories=list(EVENT_KINDS))
        return df

    @property
    def lifetimes(self):
        """id, scale, birth and death steps (death -1: alive at the end)."""
        import pandas as pd

        lt = self.result.lifetimes
        return pd.DataFrame({name: lt[name] for name in lt.dtype.names})

    @property
    def timescales(self):
        """id, scale, tau, tau_members (in logged frames) and their ratio, one row per meta-agent."""
        import pandas as pd

        ts = self.result.timescales
        return pd.DataFrame({name: ts[name] for name in ts.dtype.names})

    @property
    def timescale_detail(self):
        """The detailed time scales (docs/model.md#timescale-detail): one row per agent, meta-agent collective
        mode and member relative mode, ``kind`` as a name; times in logged frames, steps and bits."""
        import pandas as pd

        from ..analysis.pipeline import TIMESCALE_KINDS

        d = self.result.timescale_detail
        df = pd.DataFrame({name: d[name] for name in d.dtype.names})
        names = {v: k for k, v in TIMESCALE_KINDS.items()}
        df["kind"] = pd.Categorical([names[int(k)] for k in d["kind"]], categories=list(TIMESCALE_KINDS))
        return df

    @property
    def counts(self):
        """Meta-agents per scale (columns 2.., ``scale_s``) per analysed step (the index)."""
        import pandas as pd

        c = self.result.counts
        return pd.DataFrame({f"scale_{s}": c[:, s] for s in range(2, c.shape[1])},
                            index=pd.Index(self.result.steps, name="step"))

    @property
    def holonomy(self):
        """Per analysed step (the index): plaquette angle mean and max (rad), their count, and each loop's
        angle (rad) as ``loop:NAME``."""
        import pandas as pd

        r = self.result
        df = pd.DataFrame({"mean": r.holonomy_summary[:, 0], "max": r.holonomy_summary[:, 1],
                           "count": r.holonomy_summary[:, 2].astype(np.int64)},
                          index=pd.Index(r.steps, name="step"))
        for li, name in enumerate(r.loop_names):
            df[f"loop:{name}"] = r.loop_angle[:, li]
        return df

    def __repr__(self) -> str:
        events = self.result.event_counts()
        stored = ", stored" if self.stored else ""
        return (f"Analysis({len(self.steps)} frames, highest scale {self.n_scales}, {len(self.result.timescales)} "
                f"meta-agents, events {events}, {len(self.result.loop_names)} loops{stored})")


def analyze(sim_or_traj, **thresholds) -> Analysis:
    """Meta-agents, events, time scales and holonomy of a run, in one call.

    ``sim_or_traj``: a :class:`~gauge_vfe.agents.io.reader.Trajectory` (or a path to a run file): every logged
    frame is analysed; a :class:`~gauge_vfe.agents.runner.simulation.Simulation`: its current state, as one frame.
    ``thresholds``: ``eps_belief``, ``min_overlap``, ``eps_prior``, ``max_scale``, ``automatic_loops`` (the
    options of ``vfe analyze``); the rest are the run's own ``analysis`` settings. Without thresholds, a
    trajectory's stored analysis is returned as it is (``stored=True``). The result is never written into
    the file (``vfe analyze`` / ``gv.analyze_run`` store one).
    """
    from ..analysis.pipeline import analyze_frames
    from ..io.reader import load
    from .simulation import Simulation

    if isinstance(sim_or_traj, Simulation):
        sim = sim_or_traj
        settings = analysis_config(sim.config.to_dict(), **thresholds)
        return Analysis(analyze_frames(sim.layout, [sim.state.step], [sim.state], settings))
    if isinstance(sim_or_traj, (str, Path)):
        with load(sim_or_traj) as traj:
            return analyze(traj, **thresholds)
    if not isinstance(sim_or_traj, Trajectory):
        raise TypeError(f"analyze takes a Simulation, a Trajectory or a path, not {type(sim_or_traj).__name__}")
    traj = sim_or_traj
    given = {k: v for k, v in thresholds.items() if v is not None}
    if not given and (stored := traj.analysis()) is not None and np.array_equal(stored.steps, traj.frame_steps):
        return Analysis(stored, stored=True)
    settings = analysis_config(traj.config, **thresholds)
    return Analysis(analyze_frames(traj.layout(), traj.frame_steps, traj.frame_states(), settings,
                                   info_bits=traj.info_bits()))


# --- gv.sweep and gv.load_sweep -------------------------------------------------------------------------------------

def _param_values(values) -> list:
    from .sweep import parse_values

    if isinstance(values, str):
        return parse_values(values)  # "0:8" or "0.5,1,2", as --param takes them
    if isinstance(values, (list, tuple, np.ndarray, range)):
        return [_plain(v) for v in values]
    return [_plain(values)]


def sweep(scenario, params: dict | None = None, *, workers: int | None = None, scheduler: str | None = None,
          output=None, zip: bool = False, resume: bool = False, progress: bool = True,  # noqa: A002 - --zip
          **overrides):
    """Run a parameter sweep as ``vfe sweep`` does and return its summary as a DataFrame (:func:`load_sweep`).

    ``scenario``: a shipped name or a scenario file. ``params``: ``{key.path: values}``, the values a list, a
    single value, or a ``--param`` text (``"0:8"``, ``"0.5,1,2"``); they add to (and replace keys of) the
    scenario's own ``sweep:`` section. ``zip`` pairs the values instead of taking their product. The members
    run on a local Dask cluster of ``workers`` processes (default: the cores), or on ``scheduler``.
    ``output``: the sweep folder, default ``sweeps/NAME/``; ``resume`` skips members already completed there.
    ``overrides`` (as in :func:`run`, ``vfe sweep --set``) apply to every member.
    """
    from .sweep import run_sweep, swept_parameters

    fixed = {key: _plain(value) for key, value in _flatten(overrides).items()}
    sc = prepare(scenario, fixed, check_memory=False)
    if sc.path is None:
        raise TypeError("a sweep runs a scenario file (or a shipped scenario's name): its workers read it")
    swept, zip_params = swept_parameters(sc.config, (), zip)
    for key, values in (params or {}).items():
        swept = [(k, v) for k, v in swept if k != key] + [(key, _param_values(values))]
    directory = Path(output) if output is not None else Path("sweeps") / sc.config.name
    from tqdm import tqdm

    bar = tqdm(unit="member", file=sys.stderr, disable=not progress)

    def advance(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        run_sweep(sc.path, swept, directory, zip_params, workers, scheduler, resume, advance, fixed)
    finally:
        bar.close()
    return load_sweep(directory)


# Column types of a sweep summary (agents/runner/sweep.py SUMMARY_FIELDS); parameters are typed by their values.
_INT_COLUMNS = ("last_step", "uphill_steps", "meta_agents", "meta_max_scale")
_TEXT_COLUMNS = ("member", "status", "message", "path")


def _typed(column):
    """A CSV column (strings, "" for missing) as the pandas type of its values: Int64 for integers (nullable,
    so a failed member's gap stays a gap), float64, boolean, or string."""
    import pandas as pd

    present = column[column != ""]
    for convert in (_as_int, _as_float, _as_bool):
        values = convert(present)
        if values is not None:
            out = pd.Series(pd.NA, index=column.index, dtype=values.dtype)
            out[present.index] = values
            return out.astype("float64") if values.dtype == "Float64" else out
    return column.astype("string")


def _as_int(s):
    import pandas as pd

    try:
        v = [int(x) for x in s]
    except ValueError:
        return None
    return pd.Series(v, index=s.index, dtype="Int64")


def _as_float(s):
    import pandas as pd

    try:
        v = [float(x) for x in s]
    except ValueError:
        return None
    return pd.Series(v, index=s.index, dtype="Float64")


def _as_bool(s):
    import pandas as pd

    table = {"true": True, "false": False}
    if not all(x.lower() in table for x in s):
        return None
    return pd.Series([table[x.lower()] for x in s], index=s.index, dtype="boolean")


def load_sweep(directory):
    """A sweep folder's summary as a pandas DataFrame with real types, one row per member (sorted).

    ``member``, ``status``, ``message``, ``path``: strings; ``param:KEY``: the swept values, typed by their
    values (Int64, float64, boolean, or string for lists and names); ``wall_time``, ``energy_*``,
    ``holonomy_*``: float64 (NaN where a failed member has none); ``last_step``, ``uphill_steps``,
    ``meta_agents``, ``meta_max_scale``: Int64 (nullable integers: <NA> where a failed member has none).
    """
    import pandas as pd

    path = Path(directory) / "summary.csv"
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no sweep summary (summary.csv) there")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = pd.DataFrame(index=raw.index)
    for name in raw.columns:
        col = raw[name]
        if name in _TEXT_COLUMNS:
            df[name] = col.astype("string")
        elif name in _INT_COLUMNS:
            df[name] = _typed(col).astype("Int64") if (col != "").any() else pd.Series(pd.NA, index=col.index,
                                                                                         dtype="Int64")
        elif name.startswith("param:"):
            df[name] = _typed(col)
        else:  # wall time, energies, holonomy
            df[name] = pd.to_numeric(col.replace("", "nan"), errors="coerce").astype("float64")
    return df
