"""The thread tuner (agents/runner/threads.py): it keeps the fastest thread count by the mean of its blocks, prefers
fewer threads within its margin, follows a change of load at the next probe, spends little time probing, and never changes a result."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from gauge_vfe.agents.runner.simulation import Simulation
from gauge_vfe.agents.runner.threads import ThreadTuner, candidate_counts


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(tuner: ThreadTuner, clock: FakeClock, seconds_per_step, steps: int, probing: list | None = None):
    """Step ``steps`` times with step times ``seconds_per_step(threads)``; returns each step's thread count (and
    appends the seconds of each probe step to ``probing``)."""
    used = []
    for k in range(steps):
        threads, in_probe = tuner.next_threads, tuner.probing
        dt = seconds_per_step(threads)
        clock.now += dt
        tuner.after_step(dt, k + 1)
        used.append(threads)
        if in_probe and probing is not None:
            probing.append(dt)
    return used


def test_candidates_halve_down_to_one():
    assert candidate_counts(1) == (1,)
    assert candidate_counts(2) == (2, 1)
    assert candidate_counts(6) == (6, 3, 1)
    assert candidate_counts(8) == (8, 4, 2, 1)


@pytest.mark.parametrize("times, chosen", [
    ({2: 1.0e-3, 1: 1.6e-3}, 2),   # idle machine: both threads help
    ({2: 1.2e-3, 1: 1.0e-3}, 1),   # a busy sibling: one thread is faster
    ({2: 0.98e-3, 1: 1.0e-3}, 1),  # within the 3 % margin: fewer threads
    ({2: 0.96e-3, 1: 1.0e-3}, 2),  # more threads only where they clearly help
])
def test_the_probe_keeps_the_fastest_count_preferring_fewer_threads(times, chosen):
    clock = FakeClock()
    tuner = ThreadTuner(max_threads=2, clock=clock)
    drive(tuner, clock, times.__getitem__, 400)
    assert len(tuner.probes) == 1 and tuner.probes[0].chosen == chosen == tuner.threads
    assert tuner.probes[0].seconds_per_step == pytest.approx(times)


def test_a_change_of_load_is_followed_at_the_next_probe_and_probing_stays_cheap():
    clock = FakeClock()
    tuner = ThreadTuner(max_threads=4, every_seconds=30.0, clock=clock)
    idle = {4: 1.0e-3, 2: 1.8e-3, 1: 3.4e-3}.__getitem__
    busy = {4: 2.5e-3, 2: 1.9e-3, 1: 3.4e-3}.__getitem__
    probing = []
    drive(tuner, clock, idle, 40_000, probing)  # 40 s
    assert tuner.threads == 4
    used = drive(tuner, clock, busy, 40_000, probing)  # 100 s
    assert tuner.threads == 2 and [p.chosen for p in tuner.probes][-1] == 2
    assert set(used[-1000:]) == {2}  # between probes, the chosen count
    # the probes: one at the start, then one per 30 s at most, each a few percent of the time between them
    assert len(tuner.probes) <= 2 + clock.now / 30
    assert sum(probing) / clock.now < 0.03


def test_one_thread_available_means_no_tuning():
    clock = FakeClock()
    tuner = ThreadTuner(max_threads=1, clock=clock)
    assert set(drive(tuner, clock, lambda t: 1e-3, 500)) == {1} and not tuner.probes


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 threads")
def test_results_do_not_depend_on_the_thread_schedule():
    """A tuner that probes all the time (its count changes every few steps) gives the bits of 1 thread throughout,
    for a noisy run with every term on."""
    cfg = {"seed": 4, "grid": {"height": 12, "width": 12, "boundary": "periodic"}, "fiber": {"spins": [1, 2]},
           "agents": {"count": 4, "support": {"shape": "disk", "radius": 4},
                      "init": {"phi": {"kind": "random", "per": "agent", "scale": 0.5}}},
           "energy": {"lambda_curv": 0.2, "lambda_smooth": 0.1},
           "dynamics": {"lr_mu": 0.01, "lr_sigma": 0.005, "lr_phi": 0.01, "temperature": 0.02}}
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        fixed = Simulation.from_config(cfg, keep_history=False)
        fixed.thread_tuner = None
        numba.set_num_threads(n)
        tuned = Simulation.from_config(cfg, keep_history=False)
        tuned.thread_tuner = ThreadTuner(max_threads=2, block_seconds=0.0, every_seconds=0.0, max_share=1.0)
        seen = set()
        for _ in range(40):
            seen.add(tuned.thread_tuner.next_threads)
            tuned.step()
            numba.set_num_threads(1)
            fixed.step()
        assert seen == {1, 2}
        for name in ("mu", "sigma", "phi"):
            assert np.array_equal(getattr(tuned.state, name), getattr(fixed.state, name)), name
        assert tuned.energy() == fixed.energy()
    finally:
        numba.set_num_threads(n)


def test_a_count_is_judged_by_its_mean_not_its_luckiest_block():
    """Beside a busy process 2 threads alternate between fast and slow blocks; on average they are slower here, so
    the tuner keeps 1 thread although one 2-thread block was the fastest of all (the best block chose 2)."""
    clock = FakeClock()
    tuner = ThreadTuner(max_threads=2, clock=clock)
    probe_steps_at_2 = 0
    for k in range(400):
        threads, in_probe = tuner.next_threads, tuner.probing
        dt = 1.0e-3  # 1 thread, and 2 threads outside probes
        if threads == 2 and in_probe:  # the first 2-thread block of the probe fast, the second slow: mean 1.2 ms
            dt = 0.8e-3 if probe_steps_at_2 < tuner._block_steps else 1.6e-3
            probe_steps_at_2 += 1
        clock.now += dt
        tuner.after_step(dt, k + 1)
    assert tuner.probes and tuner.probes[0].chosen == 1
    assert tuner.probes[0].seconds_per_step == pytest.approx({2: 1.2e-3, 1: 1.0e-3})
