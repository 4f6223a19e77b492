"""Trajectory files survive faults: quick cases of benchmarks/faults.py, asserting the targets.

Black-box, like the script: every case runs the CLI in subprocesses on a small scenario (16x16 grid, 4 agents,
30 steps, a frame every 5, analysis on) and reads the files back in child processes. One reference run is
shared by the module. The harness is benchmarks/faults.py itself (one implementation for both).

Set ``VFE_FAULTS_SRC=DIR`` to run these cases against another source tree of the package (e.g. ``git archive
HEAD`` unpacked) instead of the installed one.

Against the writer before the run lock and the atomic frames, the SIGINT, reader-held-open and concurrent-start
cases failed; they are the regression tests of that rewrite (benchmarks/faults.py prints the full table).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import faults  # noqa: E402

STEPS = 30
# The signal cases need a step loop that lasts: this scenario takes about 1 ms a step here, and the progress bar
# they watch refreshes every 0.25 s, so 30 steps end before the first refresh. 3000 steps last about 3 s.
SIGNAL_STEPS, SIGNAL_EVERY = 3000, 100
SIGNAL_AT = 100  # signal a run once its progress bar shows this step (mid step loop, frame 100 logged)


def _explain(t: faults.Trial) -> str:
    return (f"rc {t.rc} ({t.err!r}), phase {t.phase}, after the fault {t.file}, recovery {t.recovery} "
            f"rc {t.recovery_rc} ({t.recovery_err!r}), differences {t.diffs[:8]}, {t.extra}")


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    reference = faults.make_reference(folder, steps=STEPS, warmup=False, analyze=False)
    yield reference
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def long_ref(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults-long")
    reference = faults.make_reference(folder, steps=SIGNAL_STEPS, every=SIGNAL_EVERY, warmup=False, analyze=False)
    yield reference
    shutil.rmtree(folder, ignore_errors=True)


def test_harness_compares_exactly(ref, tmp_path):
    """The comparison sees a changed value and ignores only the attributes that legitimately differ."""
    import h5py
    copy = tmp_path / "copy.h5"
    shutil.copyfile(ref.path, copy)
    with h5py.File(copy, "a") as f:
        f["parameters"].attrs["started_at"] = "1999-01-01T00:00:00+00:00"
        f["parameters"].attrs["writer_pid"] = 1
    assert faults.compare(copy, ref.path) == []
    with h5py.File(copy, "a") as f:
        ds = f["particles/agents/mu/value"]
        v = ds[-1]
        v.flat[0] += 1.0
        ds[-1] = v
    assert faults.compare(copy, ref.path) == ["/particles/agents/mu/value: values differ"]


def test_sigkill_during_steps_then_resume_bit_identical(long_ref):
    ref = long_ref
    t = faults.trial_kill(ref, None, at_step=SIGNAL_AT)
    assert t.sent, "the run ended before it could be killed"
    assert t.rc == -9
    assert t.has_file and t.readable, _explain(t)
    assert t.recovery == "resume" and t.recovery_rc == 0, _explain(t)
    assert t.identical, _explain(t)
    assert not t.corrupt


def test_sigint_interrupted_exit_130_then_resume_bit_identical(long_ref):
    ref = long_ref
    t = faults.trial_sigint(ref, None, at_step=SIGNAL_AT)
    assert t.sent, "the run ended before it could be interrupted"
    assert (t.extra.get("step_seen") or 0) < ref_total_steps(ref), "the signal never landed in the step loop"
    assert t.rc == faults.EXIT_INTERRUPTED, _explain(t)
    assert t.file.get("recorded_status") == "interrupted", _explain(t)
    assert faults.sigint_outcome(t) == "interrupted"
    assert t.readable, _explain(t)
    assert t.recovery == "resume" and t.recovery_rc == 0, _explain(t)
    assert t.identical, _explain(t)


def ref_total_steps(ref) -> int:
    import yaml

    return int(yaml.safe_load(Path(ref.scenario).read_text())["dynamics"]["steps"])


def test_reader_held_open_through_the_end_of_a_run(ref):
    t = faults.trial_reader(ref)
    assert t.extra.get("reader_open") and t.extra.get("run_still_going"), _explain(t)
    assert t.rc == 0, _explain(t)
    assert t.file.get("recorded_status") == "completed" and t.file.get("analysis"), _explain(t)
    assert t.extra["ok"]
    assert t.identical, _explain(t)


@pytest.fixture(scope="module")
def race(long_ref):
    """Two `vfe run` with the same -o started at once (one trial, shared by the two cases below). The 3000-step
    run: a 30-step one can end, and free its file, before the other has even built (seen once in CI)."""
    return faults.trial_concurrent(long_ref, procs=2, same_seed=True)


def test_concurrent_same_path_starts_leave_no_corrupt_file(race):
    t = race
    assert t.extra["corrupt_files"] == 0, _explain(t)
    assert t.extra["lost_runs"] == 0, _explain(t)
    assert 0 in t.extra["rcs"], _explain(t)  # one of them ran
    assert t.file.get("recorded_status") == "completed" and t.identical, _explain(t)


def test_concurrent_same_path_loser_exits_2_naming_the_other(race):
    t = race
    assert sorted(t.extra["rcs"]) == [0, 2], _explain(t)
    assert t.extra["clean_refusal"], _explain(t)
    assert len(t.extra["files"]) == 1, _explain(t)  # no stray NAME.1.h5 or half-made file


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lr_mu changed", "fewer steps", "input file edited", "input file edited, allowed",
                                  "older version's file"])
def test_provenance_cases_refuse_in_one_line_or_record(ref, case):
    """The fault script's provenance class (docs/model.md#resume-settings): 0 unrecorded changes, 0 files changed
    by a refusal, no traceback."""
    t = faults.trial_provenance(ref, case, STEPS)
    assert not t.extra.get("setup_failed"), _explain(t)
    assert t.extra["clean"] and not t.extra["unrecorded"], _explain(t)
    assert not t.extra["modified"] and not t.extra["traceback"] and not t.extra["segfault"], _explain(t)


def test_must_show_counts_the_five_outcomes_by_class(monkeypatch):
    """The report's five counts (issue 26, "Must show") take each failure from the class that can show it."""
    T = faults.Trial
    results = {
        "damage": [T("damage", extra={"silent": True}), T("damage", extra={"modified": True}), T("damage")],
        "kill": [T("kill", recovery_rc=0, identical=False), T("kill", recovery_rc=0, identical=True),
                 T("kill", recovery_rc=2, identical=False)],  # a failed recovery is loud, not silent
        "lock": [T("lock", identical=True, extra={"untouched": False}), T("lock", identical=True,
                                                                           extra={"untouched": True})],
        "outputs": [T("outputs", extra={"lost": True}), T("outputs", extra={"lost": False})],
        "diskout": [T("diskout", extra={"skipped": "needs root"})],
    }
    monkeypatch.setattr(faults, "TRACEBACKS", faults.collections.Counter({"render": 2}))
    lines = {line.split("  ")[1].strip(): line for line in faults.must_show(results)}
    count = {k: int(v.split()[len(k.split())]) for k, v in lines.items()}
    assert count == {"silent wrong values": 2, "live files destroyed": 1, "earlier outputs lost": 1,
                     "tracebacks": 2, "inputs modified by a failed command": 2}
    assert "(damage 1, kill 1)" in lines["silent wrong values"]
    assert "(damage 1, lock 1)" in lines["inputs modified by a failed command"]
