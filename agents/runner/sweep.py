"""Parameter sweeps on Dask's distributed scheduler: a local cluster by default, any cluster by its address.

    vfe sweep scenarios/quickstart.yaml --param energy.kappa=0.5,1,2 --param seed=0:4 --workers 2 -o sweeps/k/

Each member is an ordinary run (:func:`agents.run.run_scenario`) writing its own trajectory file, with its
overrides recorded in the file (``/parameters/config_json``) and in the sweep's summary. The summary
(``summary.csv`` and its HDF5 twin ``summary.h5``) is rewritten as members finish (at most every
``SUMMARY_SECONDS``, and when the sweep ends or is interrupted), so an interrupted sweep keeps every finished
member; ``--resume`` skips completed members and continues the rest in place from their checkpoints. A member
that fails (a bad override, a divergence) is recorded with its status and message and never stops the others. Dask reschedules a member whose worker dies; the new attempt starts the member again in
its own file (an interrupted attempt is never renamed aside, so no ``m0002.1.h5`` is left beside it).

The parameter grid is validated once, up front (each swept value alone, and the first member built); the other
members are validated by the worker that runs them and handed to the cluster a few at a time, so a sweep of any
size starts within seconds.

Each worker runs one member at a time with ``numba`` limited to ``cores // workers`` threads, so workers do
not oversubscribe the machine.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..analysis.pipeline import SEPARATION_FIELDS, TIME_SCALE_FIELDS
from ..io.outputs import NoSpaceLeft, atomic_output
from ..io.sweep_store import read_summary, write_summary
from ..model.energy import TERMS

SUMMARY_FIELDS = ["member", "status", "message", "wall_time", "last_step", "uphill_steps", "path"] + \
    [f"energy_{t}" for t in ("total",) + TERMS] + ["meta_agents", "meta_max_scale", "holonomy_mean", "holonomy_max"] + \
    ["lambda_align_over_alpha"] + SEPARATION_FIELDS + TIME_SCALE_FIELDS


SUMMARY_SECONDS = 2.0  # the summary is rewritten at most this often while members finish (and once at the end)


class SweepError(ValueError):
    """A sweep that cannot start (bad --param syntax, nothing to sweep)."""


def parse_values(text: str) -> list:
    """``a,b,c`` (each read as YAML) or an integer range ``start:stop[:step]``."""
    text = text.strip()
    if ":" in text and "," not in text:
        parts = text.split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise SweepError(f"{text!r}: a range is start:stop[:step] with integers") from None
        values = list(range(*nums))
        if not values:
            raise SweepError(f"{text!r}: the range is empty")
        return values
    return [_value(v) for v in text.split(",")]


def _value(text: str):
    """A number as a number (YAML 1.1 would read ``1e-3`` as a string), anything else as YAML."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_param(text: str) -> tuple[str, list]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise SweepError(f"--param {text}: expected key.path=v1,v2,... or key.path=start:stop")
    return key.strip(), parse_values(values)


def members(params: list[tuple[str, list]], zip_params: bool = False, seed_root: int | None = None) -> list[dict]:
    """The overrides of every member: the cartesian product of the values, or their zip. With ``seed_root`` (``sweep:
    {seeds: per_member}``) member k also gets ``seed = member_seed(seed_root, k)``: independent noise per member."""
    if not params:
        raise SweepError("nothing to sweep: give --param key.path=values (or a `sweep:` section)")
    keys = [k for k, _ in params]
    if len(set(keys)) != len(keys):
        raise SweepError(f"a parameter is swept twice: {keys}")
    lists = [v for _, v in params]
    if zip_params:
        if len({len(v) for v in lists}) != 1:
            raise SweepError("--zip needs the same number of values for every parameter")
        combos = list(zip(*lists))
    else:
        combos = list(itertools.product(*lists))
    out = [dict(zip(keys, c)) for c in combos]
    if seed_root is not None:
        if "seed" in keys:
            raise SweepError("seeds: per_member gives every member its own seed: do not also sweep `seed`")
        from ..setup.build import member_seed

        out = [{**m, "seed": member_seed(seed_root, k)} for k, m in enumerate(out)]
    return out


def summary_columns(param_keys: list[str]) -> list[str]:
    """The summary's columns: member, one per swept parameter, then the outcome (``SUMMARY_FIELDS``)."""
    return ["member"] + [f"param:{k}" for k in param_keys] + SUMMARY_FIELDS[1:]


def member_seed_root(config, seeds: str | None = None) -> int | None:
    """The root of the members' own seeds, or None when they share the scenario's: ``seeds`` (``vfe sweep
    --seeds``) wins over the scenario's ``sweep.seeds``."""
    chosen = seeds or (config.sweep.seeds if config.sweep is not None else "shared")
    return int(config.seed) if chosen.replace("-", "_") == "per_member" else None


def swept_parameters(config, cli_params=(), zip_params: bool = False) -> tuple[list[tuple[str, list]], bool]:
    """The scenario's own ``sweep:`` section with ``--param KEY=VALUES`` texts added (a CLI value wins).

    Returns ``(params, zip)``: the swept keys with their values, and whether to pair them.
    """
    swept = []
    if config.sweep is not None:
        for key, values in config.sweep.params.items():
            swept.append((key, parse_values(values) if isinstance(values, str) else list(values)))
        zip_params = zip_params or config.sweep.zip
    for text in cli_params:
        key, values = parse_param(text)
        swept = [(k, v) for k, v in swept if k != key] + [(key, values)]
    return swept, zip_params


def _override_text(key: str, value) -> str:
    return f"{key}={json.dumps(value)}"


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity mask where the OS has one (a container or ``taskset``
    may allow fewer than the machine has), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_plan(workers: int | None, cores: int | None = None) -> tuple[int, int]:
    """``(members at once, numba threads per member)`` for a local cluster asked for ``workers`` workers.

    One member per worker, at most one worker per core (members are CPU-bound: more of them than cores only
    share the cores, and each holds at least one numba thread), ``workers=None`` meaning one per core; each member
    gets ``cores // members`` threads, at least 1. So members x threads <= cores, and no member oversubscribes.
    ``cores`` defaults to :func:`usable_cores`.
    """
    cores = usable_cores() if cores is None else max(1, int(cores))
    n = min(max(1, int(workers)), cores) if workers else cores
    return n, member_threads(n, cores)


def member_threads(concurrent: int, cores: int | None = None) -> int:
    """numba threads for each member when ``concurrent`` members run at once: ``cores // concurrent``, at least 1
    (with more members than cores the machine is oversubscribed whatever the count; 1 thread is the least)."""
    cores = usable_cores() if cores is None else max(1, int(cores))
    return max(1, cores // max(1, int(concurrent)))


def _attempt(sc, output: str, resume: bool):
    """Run a member into ``output``, where a file can only be an earlier attempt of this same member (the parent
    moved anything else aside before submitting): a worker that died, or an interrupted sweep. With ``resume``
    it is continued in place; otherwise, or when it cannot be continued, the partial file is removed and the
    member starts again. Never renamed aside (``m0002.1.h5``): an interrupt leaves no second copy of a member."""
    from ..io.lock import RunFileBusy, writer_active
    from ..setup.scenario import ScenarioError
    from .run import run_scenario

    path = Path(output)
    if path.exists():
        holder = writer_active(path)
        if holder is not None:  # an earlier attempt lives on (a worker Dask gave up on): never touch its file
            raise RunFileBusy(path, holder)
        if resume:
            try:
                return run_scenario(sc, output, resume=True)
            except ScenarioError:  # e.g. damaged, or the scenario changed in a way resume refuses
                pass
        path.unlink(missing_ok=True)
    return run_scenario(sc, output)


def run_member(scenario_path: str, overrides: dict, output: str, numba_threads: int, resume: bool = False) -> dict:
    """Run one member (on a worker). Never raises for a bad member: the failure is the returned row.
    ``resume``: continue an interrupted earlier attempt at ``output`` in place (see :func:`_attempt`)."""
    import numba

    from ..setup.scenario import ScenarioError, load_scenario

    numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    t0 = time.perf_counter()
    row = {"status": "failed", "message": "", "wall_time": 0.0, "last_step": -1, "path": output}
    try:
        sc = load_scenario(scenario_path, [_override_text(k, v) for k, v in overrides.items()])
        res = _attempt(sc, output, resume)
        row.update(status=res.status, message=res.message, last_step=res.last_step,
                   uphill_steps=res.energy_increases)
        for k, v in res.energy.items():
            row[f"energy_{k}"] = v
        energy = sc.config.energy
        row["lambda_align_over_alpha"] = energy.lambda_align / energy.alpha if energy.alpha > 0 else float("inf")
        if res.analysis is not None:
            counts = res.analysis.counts
            row["meta_agents"] = int(counts[-1, 2:].sum()) if counts.size else 0
            row["meta_max_scale"] = res.analysis.n_scales
            mean, mx, _ = res.analysis.holonomy_summary[-1]
            row["holonomy_mean"], row["holonomy_max"] = float(mean), float(mx)
            # gauge-invariant series (docs/model.md#gauge-invariant-series); common frame only where frames fixed
            row.update(res.analysis.time_scale_summary(scale=2))
    except ScenarioError as exc:
        row["message"] = "; ".join(exc.messages)
    except Exception as exc:  # noqa: BLE001 - one member's failure is data, not the sweep's end
        row["message"] = f"{type(exc).__name__}: {exc}"
    row["wall_time"] = time.perf_counter() - t0
    return row


@dataclass
class SweepResult:
    directory: Path
    rows: list[dict]
    wall_time: float
    ran: int  # members run in this call (the others were already complete)

    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def uphill_members(self) -> list[str]:
        """Members in which the energy went up in some step (their step sizes are too large)."""
        return [r["member"] for r in self.rows if _number(r.get("uphill_steps", 0)) > 0]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


GRID_VALUES_CHECKED = 200  # distinct values of one swept key checked up front; the rest by their member's worker


def validate_grid(scenario_path: Path, params: list[tuple[str, list]], fixed: dict | None = None,
                  zip_params: bool = False) -> None:
    """Validate the parameter grid once, before any cluster starts, in time independent of the number of
    members: every swept key exists, its values (the first :data:`GRID_VALUES_CHECKED` distinct ones, and the
    least and greatest number) are each valid alone (as a scenario's ``sweep:`` section is checked), and the first
    member loads and builds. A :class:`SweepError` names the key or the member. The other members are validated
    lazily, by the worker that runs them: a combination that is bad only together becomes that member's failed
    row, never the sweep's end (a 100,000-member sweep starts its first member within seconds)."""
    from ..setup.config import check_value
    from ..setup.scenario import ScenarioError, load_scenario

    fixed_texts = [_override_text(key, v) for key, v in (fixed or {}).items()]
    try:
        base = load_scenario(scenario_path, fixed_texts).config.model_dump(mode="python", by_alias=True,
                                                                             exclude={"sweep"})
    except ScenarioError as exc:
        raise SweepError(exc.messages[0]) from None
    for key, values in params:
        if key.split(".")[0] == "sweep":
            raise SweepError(f"--param {key}: the sweep section cannot sweep itself")
        for value in _representatives(values):
            why = check_value(base, key, value)
            if why == "no such key":
                raise SweepError(f"--param {key}: no such key in a scenario")
            if why is not None:
                k, member = _first_member_with(params, key, value, zip_params)
                raise SweepError(f"{_member_label(k, {**(fixed or {}), **member})}: {key}: {why}")
    first = {key: values[0] for key, values in params if values}  # member m0000, of a product or a zip alike
    validate_members(scenario_path, [{**(fixed or {}), **first}])


def _first_member_with(params: list[tuple[str, list]], key: str, value, zip_params: bool) -> tuple[int, dict]:
    """(index, overrides) of the first member whose ``key`` is ``value`` (the others at their first values in a
    product), computed without listing the members."""
    keys = [k for k, _ in params]
    lists = dict(params)
    j = next(i for i, v in enumerate(lists[key]) if v == value and type(v) is type(value))
    if zip_params:
        return j, {k: lists[k][j] for k in keys}
    later = keys[keys.index(key) + 1:]
    stride = 1
    for k in later:
        stride *= len(lists[k])
    return j * stride, {k: (value if k == key else lists[k][0]) for k in keys}


def _member_label(k: int, overrides: dict) -> str:
    return f"member m{k:04d} ({', '.join(_override_text(key, v) for key, v in overrides.items())})"


def _representatives(values: list) -> list:
    """The values of one key that stand for all of them: the first distinct ones, and the extreme numbers."""
    seen, out = set(), []
    for v in values:
        tag = json.dumps(v, sort_keys=True, default=str)
        if tag not in seen:
            seen.add(tag)
            out.append(v)
            if len(out) == GRID_VALUES_CHECKED:
                break
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return out + ([min(numbers), max(numbers)] if numbers else [])


def validate_members(scenario_path: Path, some_members: list[dict]) -> None:
    """Load and build each of ``some_members``' scenarios (:class:`SweepError` naming the member): a misspelled
    key or a bad value fails the sweep up front, not in a worker an hour later."""
    from ..setup.build import build
    from ..setup.scenario import ScenarioError, load_scenario

    for k, overrides in enumerate(some_members):
        where = _member_label(k, overrides)
        try:
            sc = load_scenario(scenario_path, [_override_text(key, v) for key, v in overrides.items()])
            build(sc.config, sc.base_dir, sc.inputs)
        except ScenarioError as exc:
            raise SweepError(f"{where}: {exc.messages[0]}") from None
        except (ValueError, OSError) as exc:
            raise SweepError(f"{where}: {exc}") from None


def changed_parameters(old: dict, new: dict) -> str:
    """What differs between two sweep specs (``sweep.json``), in words: the first swept parameter whose values
    changed (or that was added or dropped), else the first fixed (``--set``) value that changed."""
    def show(values):
        return ",".join(str(v) for v in values) if isinstance(values, list) else str(values)

    before, after = dict(map(tuple, old.get("params", []))), dict(map(tuple, json.loads(json.dumps(new["params"]))))
    for key in list(before) + [k for k in after if k not in before]:
        if key not in after:
            return f"--param {key} was {show(before[key])} there and is not swept now"
        if key not in before:
            return f"--param {key} is new (values {show(after[key])}); the sweep there does not vary it"
        if before[key] != after[key]:
            return f"--param {key} was {show(before[key])} there and is {show(after[key])} now"
    if bool(old.get("zip")) != bool(new["zip"]):
        return f"--zip was {'on' if old.get('zip') else 'off'} there and is {'on' if new['zip'] else 'off'} now"
    first_old, first_new = (old.get("members") or [{}])[0], json.loads(json.dumps(new["members"] or [{}]))[0]
    for key in sorted(set(first_old) | set(first_new)):
        if key not in after and first_old.get(key) != first_new.get(key):
            return f"--set {key} was {first_old.get(key, 'unset')} there and is {first_new.get(key, 'unset')} now"
    return "the members differ"


def _quiet_resource_tracker() -> None:
    """After a Ctrl-C, multiprocessing's resource tracker (a process of its own, started with the cluster's
    workers, reading its warning filters from the environment) cleans up the workers' semaphores and warns that
    they leaked: a second stderr line after the sweep's one-line outcome, about nothing the user can act on."""
    quiet = "ignore:resource_tracker:UserWarning"
    current = os.environ.get("PYTHONWARNINGS", "")
    if quiet not in current:
        os.environ["PYTHONWARNINGS"] = f"{current},{quiet}" if current else quiet


def run_sweep(scenario_path, params: list[tuple[str, list]], out_dir, zip_params: bool = False,
              workers: int | None = None, scheduler: str | None = None, resume: bool = False,
              progress=None, fixed: dict | None = None, seed_root: int | None = None) -> SweepResult:
    """Run every member on a Dask cluster; see the module docstring. ``progress(done, total)`` is optional.
    ``fixed``: overrides ``{key.path: value}`` applied to every member (``vfe sweep --set``), recorded in
    ``sweep.json`` with the members but not summary columns (they do not vary). ``seed_root``: give each member
    its own seed (:func:`members`), shown as the summary's ``param:seed`` column."""
    from dask.distributed import Client, LocalCluster, as_completed

    scenario_path = Path(scenario_path).resolve()
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    keys = [k for k, _ in params] + (["seed"] if seed_root is not None else [])
    all_members = [{**(fixed or {}), **m} for m in members(params, zip_params, seed_root)]
    spec = {"scenario": str(scenario_path), "scenario_yaml": scenario_path.read_text(),
            "params": [[k, v] for k, v in params], "zip": zip_params, "members": all_members}
    spec_path = directory / "sweep.json"
    if resume and spec_path.exists():
        old = json.loads(spec_path.read_text())
        if old["members"] != json.loads(json.dumps(all_members)):
            raise SweepError(f"{directory}: --resume with other parameters than the sweep there: "
                             f"{changed_parameters(old, spec)}; resume with the sweep's own --param and --set "
                             "values (its sweep.json lists them), or write the changed sweep to a new folder "
                             "(-o NEW_DIR): finished members are never rerun under other parameters")
    validate_grid(scenario_path, params, fixed, zip_params)
    with atomic_output(spec_path) as tmp:
        tmp.write_text(json.dumps(spec, indent=1 if len(all_members) <= 1000 else None))  # 100k members: 0.1 s
    previous = {r["member"]: r for r in read_summary(directory)[1]} if resume else {}
    rows: dict[str, dict] = {}
    todo = []
    existing = set(os.listdir(directory))  # one listing, not a stat per member (100,000 stats took 2 s)
    for k, ov in enumerate(all_members):
        name = f"m{k:04d}"
        base = {"member": name, **{f"param:{key}": ov[key] for key in keys}}
        old = previous.get(name)
        if old is not None and old.get("status") == "completed" and Path(old["path"]).exists():
            rows[name] = {**old, **base}
            continue
        todo.append((name, ov, base))
        if not resume and f"{name}.h5" in existing:
            member_file = directory / f"{name}.h5"
            # a file of an earlier sweep in this folder: kept as NAME.k.h5 (as `vfe run` keeps an earlier run),
            # here, once, so that a file a worker finds at its member's path is always its own earlier attempt
            from .run import keep_earlier

            keep_earlier(member_file)
    t0 = time.perf_counter()
    if todo:
        cluster = None
        if scheduler:
            client = Client(scheduler)
        else:
            n, _ = thread_plan(workers)
            # Workers start with SIGINT ignored (an ignored signal stays ignored across exec): Ctrl-C reaches
            # only this process, which cancels the members and closes the cluster, instead of every worker
            # printing its own traceback.
            previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
            _quiet_resource_tracker()
            try:
                # ":0": any free port (None does not disable it and collides at 8787 with a second sweep, dask#8136)
                # silence_logs: the workers' own warnings (a cancelled member after Ctrl-C) are not the user's news
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
            finally:
                if previous_handler is not None:
                    signal.signal(signal.SIGINT, previous_handler)
            client = Client(cluster)
        no_room = False
        try:
            # members at once: one per worker thread (an external worker may run several)
            slots = sum(max(1, int(w.get("nthreads", 1))) for w in client.scheduler_info()["workers"].values())
            threads = member_threads(slots)
            futures = {}
            pending = iter(todo)

            def submit_next() -> None:
                """Members go to the cluster a few at a time (2 per slot in flight): submitting 100,000 tasks
                up front would take minutes before the first one ran, and hold them all in memory."""
                item = next(pending, None)
                if item is None:
                    return
                name, ov, base = item
                out = str((directory / f"{name}.h5").resolve())
                fut = client.submit(run_member, str(scenario_path), ov, out, threads, resume,
                                    key=f"{directory.name}-{name}", pure=False, retries=2)
                futures[fut] = (name, base)
                flow.add(fut)

            flow = as_completed()
            for _ in range(2 * slots):
                submit_next()
            done, last_summary = 0, -SUMMARY_SECONDS
            try:
                for fut in flow:
                    submit_next()
                    name, base = futures[fut]
                    try:
                        row = fut.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. the member's workers kept dying
                        row = {"status": "failed", "message": f"{type(exc).__name__}: {exc}",
                               "path": str(directory / f"{name}.h5")}
                    rows[name] = {**base, **row}
                    done += 1
                    if time.monotonic() - last_summary >= SUMMARY_SECONDS:  # rewritten whole: not per member
                        write_summary(directory, summary_columns(keys), list(rows.values()))
                        last_summary = time.monotonic()
                    if progress is not None:
                        progress(done, len(todo))
            except KeyboardInterrupt:
                logging.getLogger("distributed").setLevel(logging.CRITICAL)  # no pages of shutdown noise
                for fut in futures:
                    fut.cancel()
                raise
            except NoSpaceLeft:
                no_room = True  # the summary did not fit: not tried again on the way out (HDF5 may be broken)
                raise
        finally:
            if not no_room:
                write_summary(directory, summary_columns(keys), list(rows.values()))
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        write_summary(directory, summary_columns(keys), list(rows.values()))
    return SweepResult(directory, sorted(rows.values(), key=lambda r: r["member"]), time.perf_counter() - t0,
                       len(todo))
