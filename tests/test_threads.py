"""Sweep members never oversubscribe the cores: the plan of members x numba threads, and a real sweep's members.

A sweep runs members at once on a local Dask cluster, each member with a numba thread count chosen by
``agents/runner/sweep.py`` (:func:`thread_plan` for a local cluster, :func:`member_threads` for any cluster). Here:
the plan for 1, 2 and more workers than cores, on this machine's cores and on imagined ones; then a 2-member sweep
on the local cluster whose members report, from inside the run, the numba thread count they ran with.
"""

from __future__ import annotations

import json
import os
import textwrap

import dask
import pytest

from gauge_vfe.agents.runner.sweep import member_threads, run_sweep, thread_plan, usable_cores

from factories import tiny_sweep_yaml

RECORD_ENV = "GAUGE_VFE_TEST_THREAD_RECORDS"

# Loaded by every Dask worker before it takes work (``distributed.worker.preload``). It wraps the run that a member
# makes (run_member imports ``run.run_scenario`` when it runs), so the record is written from inside the member, in
# the thread that runs the kernels: numba's thread count is per thread, so no other thread would see it.
PRELOAD = textwrap.dedent(f"""\
    import json
    import os
    from pathlib import Path

    import numba

    from gauge_vfe.agents.runner import run as _run

    # the worker may load this file more than once, into the same module: wrap the original only
    _original = getattr(_run.run_scenario, "_recorded", _run.run_scenario)


    def _recording_run_scenario(sc, output, *args, **kwargs):
        before = numba.get_num_threads()
        result = _original(sc, output, *args, **kwargs)
        record = {{"threads": before, "threads_after": numba.get_num_threads(), "pid": os.getpid(),
                   "pool": numba.config.NUMBA_NUM_THREADS, "layer": numba.threading_layer(),
                   "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}}
        name = Path(output).stem + ".json"
        (Path(os.environ[{RECORD_ENV!r}]) / name).write_text(json.dumps(record))
        return result


    _recording_run_scenario._recorded = _original
    _run.run_scenario = _recording_run_scenario
    """)

CORES = usable_cores()

# Imported here so that distributed's config defaults are loaded before dask.config.set adds a key to that section:
# set on a section that does not exist yet, its exit would remove the whole section again.
distributed = pytest.importorskip("distributed")


# --- the plan -------------------------------------------------------------------------------------------------------

def test_usable_cores_is_the_affinity_mask():
    assert 1 <= CORES <= (os.cpu_count() or CORES)
    if hasattr(os, "sched_getaffinity"):
        assert CORES == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("cores", sorted({1, 2, 3, 4, 7, 8, 64, CORES}))
@pytest.mark.parametrize("workers", ["default", 1, 2, "cores+1", "3*cores"])
def test_local_plan_never_oversubscribes(cores, workers):
    asked = {"default": None, "cores+1": cores + 1, "3*cores": 3 * cores}.get(workers, workers)
    members_at_once, threads = thread_plan(asked, cores)
    assert members_at_once >= 1 and threads >= 1
    assert members_at_once * threads <= cores
    assert members_at_once == min(asked or cores, cores)  # what was asked, up to one member per core
    assert threads == cores // members_at_once  # and every core used
    if asked == 1:
        assert threads == cores  # a lone member gets the machine


@pytest.mark.parametrize("workers", [None, 1, 2, CORES + 1, 3 * CORES])
def test_plan_on_this_machine(workers):
    members_at_once, threads = thread_plan(workers)  # cores from the affinity mask
    assert members_at_once >= 1 and threads >= 1 and members_at_once * threads <= CORES


@pytest.mark.parametrize("cores", [1, 2, 3, 8])
@pytest.mark.parametrize("concurrent", [0, 1, 2, 3, 8, 20])
def test_member_threads_for_any_cluster(cores, concurrent):
    threads = member_threads(concurrent, cores)
    assert threads >= 1
    if 1 <= concurrent <= cores:
        assert concurrent * threads <= cores
    else:  # no members counted yet (all cores for one), or more members than cores (the least: 1 thread)
        assert threads == (cores if concurrent == 0 else 1)


# --- a real sweep -----------------------------------------------------------------------------------------------------

def _sweep_and_read_back(tmp_path, monkeypatch, workers: int) -> list[dict]:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(tiny_sweep_yaml())
    preload = tmp_path / "record_threads.py"
    preload.write_text(PRELOAD)
    records = tmp_path / f"records-{workers}"
    records.mkdir()
    monkeypatch.setenv(RECORD_ENV, str(records))  # the worker processes inherit the environment
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        res = run_sweep(scenario, [("seed", [0, 1])], tmp_path / f"sweep-{workers}", workers=workers)
    assert res.by_status() == {"completed": 2}, res.rows
    found = sorted(p.name for p in records.iterdir())
    assert found == ["m0000.json", "m0001.json"], found  # each member recorded from inside its run
    return [json.loads((records / name).read_text()) for name in found]


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_members_run_with_their_share_of_the_cores(tmp_path, monkeypatch, workers):
    members_at_once, expected = thread_plan(workers)
    got = _sweep_and_read_back(tmp_path, monkeypatch, workers)
    for record in got:
        assert record["threads"] == record["threads_after"] == min(expected, record["pool"]), record
        assert 1 <= record["threads"] and members_at_once * record["threads"] <= CORES
