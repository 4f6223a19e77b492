"""Triggers, updaters attached from Python, and the term table every consumer reads (docs/model.md#code-layout)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import gauge_vfe as gv
from gauge_vfe.agents.model.energy import TERM, TERM_TABLE, TERMS, evaluate
from gauge_vfe.agents.model.params import EnergyParams
from gauge_vfe.agents.runner.observers import ProgressBar
from gauge_vfe.agents.runner.updaters import HierarchyCoupling, ObservationResampling, Periodic

SMALL = {"grid": {"height": 8, "width": 8}, "agents": {"count": 3, "support": {"shape": "disk", "radius": 3}},
         "observations": {"kind": "smooth", "shared": True, "scale": 1.0, "length": 3.0, "noise": 2.0},
         "dynamics": {"steps": 12, "lr_mu": 0.03, "lr_sigma": 0.01, "lr_phi": 0.02}, "seed": 4}


# --- triggers ----------------------------------------------------------------------------------------------------
def test_periodic_fires_at_its_phase_and_every_period_after():
    assert [s for s in range(13) if Periodic(4)(s)] == [0, 4, 8, 12]
    assert [s for s in range(13) if Periodic(5, 2)(s)] == [2, 7, 12]
    for bad in ((0,), (3, 3), (3, -1)):
        with pytest.raises(ValueError, match="Periodic"):
            Periodic(*bad)


# --- an updater from Python: one class, no edits --------------------------------------------------------------------
class PriorDrift:
    """A test updater: every 3 steps the prior mean moves by `shift` (a protocol, not a base class)."""

    reads_state = False

    def __init__(self, shift: float):
        self.trigger = Periodic(3)
        self.shift = shift
        self.applied_at: list[int] = []

    def apply(self, layout, state):
        self.applied_at.append(state.step)
        return replace(layout, prior_mu=layout.prior_mu + self.shift)

    def resumable(self, step: int) -> bool:
        return step % 2 == 0


def test_an_updater_attached_from_python_applies_at_its_trigger_steps():
    sim = gv.Simulation.from_config(SMALL)
    base_prior = sim.layout.prior_mu.copy()
    drift = PriorDrift(0.25)
    sim.attach(drift)
    assert drift.applied_at == [0]  # applied where the run stands
    assert np.array_equal(sim.layout.prior_mu, base_prior + 0.25)
    sim.run(7)
    assert drift.applied_at == [0, 3, 6]
    assert np.array_equal(sim.layout.prior_mu, base_prior + 0.75)
    # the state is evaluated against the constants in force at its step: the energy is the action with them
    fresh = evaluate(sim.layout, sim.energy_params, sim.state, want_grad=False)
    assert sim.energy()["prior"] == fresh.terms["prior"]
    assert sim.updater(PriorDrift) is drift and sim.updater(HierarchyCoupling) is None


def test_an_interrupt_waits_for_a_step_every_updater_can_resume_at():
    sim = gv.Simulation.from_config(SMALL)
    sim.attach(PriorDrift(0.0))
    assert sim._resumable_here()  # step 0
    sim.step()
    assert not sim._resumable_here()  # step 1: PriorDrift says no
    sim.step()
    assert sim._resumable_here()


def test_the_configured_updaters_are_attached_in_order():
    cfg = {**SMALL, "observations": {**SMALL["observations"], "resample_every": 4},
           "hierarchy": {"enabled": True, "every": 4, "rho": 0.5}, "output": {"every": 4}}
    sim = gv.Simulation.from_config(cfg)
    assert [type(u) for u in sim.updaters] == [ObservationResampling, HierarchyCoupling]
    assert gv.Simulation.from_config(SMALL).updaters == []


# --- the term table ---------------------------------------------------------------------------------------------
def test_every_term_has_one_row_that_its_consumers_read():
    assert TERMS == tuple(t.name for t in TERM_TABLE) == tuple(TERM)
    weights = set(EnergyParams.model_fields)
    assert all(t.weight in weights for t in TERM_TABLE)
    assert len({t.short for t in TERM_TABLE}) == len(TERM_TABLE) and len({t.color for t in TERM_TABLE}) == len(TERM_TABLE)
    from gauge_vfe.viz.plots import TERM_COLORS

    assert set(TERM_COLORS) == {"total", *TERMS}


def test_the_progress_bar_labels_every_nonzero_term(capsys):
    cfg = {**SMALL, "energy": {"lambda_curv": 0.2, "lambda_smooth": 0.1}}
    sim = gv.Simulation.from_config(cfg)
    sim.run(2, observers=[ProgressBar()])
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    e = sim.energy()
    for t in TERM_TABLE:
        assert e[t.name] != 0.0 and f"{t.short}={e[t.name]:.3g}" in last
    assert "2/2" in last  # the bar counts to the run's last step
