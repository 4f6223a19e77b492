"""The file layout from one table (agents/io/schema.py: SERIES) and the reader's Trajectory.evaluate.

The table is the single source of the series a run file holds: these tests check that a written file is exactly
what its rows say (datasets, dtypes, shapes, chunks, units, descriptions), that one new row is all a new logged
series needs, that a refused resume changes nothing, and that ``traj.evaluate(frame)`` gives back the logged
energies of the frame (the run's layout, including a coupled prior, and its energy parameters, rebuilt without
the set-up code).
"""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

import gauge_vfe
from gauge_vfe.agents.io import schema
from gauge_vfe.agents.io.lock import RunLock
from gauge_vfe.agents.io.reader import NotReproducible, load
from gauge_vfe.agents.io.writer import TrajectoryWriter
from gauge_vfe.agents.model.energy import TERMS
from gauge_vfe.agents.runner.resume import resume_refusal
from gauge_vfe.agents.runner.run import run_scenario
from gauge_vfe.agents.setup.config import make_config
from gauge_vfe.agents.setup.scenario import load_scenario
from factories import random_system
from test_bit_identity import trajectory_digest

PACKAGE = Path(gauge_vfe.__file__).resolve().parent
# float64 frames: every logged state is the run's state exactly, so its energies can be recomputed to rounding
SHORT = ("dynamics.steps=10", "output.every=5", "output.dtype=float64", "analysis.enabled=false")


def run(tmp_path: Path, name: str, *overrides: str) -> Path:
    scenario = load_scenario(name, overrides=SHORT + overrides)
    return run_scenario(scenario, output=tmp_path / f"{name}.h5").path


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """A shipped scenario with observations."""
    return run(tmp_path_factory.mktemp("quickstart"), "quickstart")


def _assert_reproduces(traj, frame: int, **kw) -> None:
    step = int(traj.frame_steps[frame])
    logged = traj.energies()
    k = int(np.nonzero(logged["step"] == step)[0][0])
    terms = traj.evaluate(frame, **kw).terms
    for t in TERMS:
        assert terms[t] == pytest.approx(logged[t][k], rel=1e-12, abs=1e-300), (step, t)
    assert sum(terms.values()) == pytest.approx(logged["total"][k], rel=1e-12)


# --- the table is the file ------------------------------------------------------------------------------------

def test_every_row_of_the_table_is_in_the_file_as_it_says(quickstart):
    with h5py.File(quickstart, "r") as f:
        S, N = f["agents/sites/index"].shape[0], f["agents/sites/offset"].shape[0] - 1
        sizes = schema.layout_sizes(S, int(f["fiber"].attrs["K"]), N)
        logged = [s for s in schema.SERIES if not s.frame or s.path in f]
        assert {s.key for s in logged} >= {"mu", "sigma", "phi", *TERMS, "total", "info_bits", "spd_retractions"}
        for s in logged:
            g = f[s.path]
            assert set(g) == ({"step", "time", "value"} if s.frame else {"step", "value"}), s.key
            value = g["value"]
            assert value.dtype == np.dtype("float64" if s.dtype == schema.OUTPUT_DTYPE else s.dtype), s.key
            assert value.shape[1:] == s.shape(sizes) and value.maxshape[0] is None, s.key
            rows = s.chunk_rows(sizes) if callable(s.chunk_rows) else s.chunk_rows
            assert value.chunks[0] == rows, s.key
            assert g["step"].dtype == np.int64 and g["step"].shape[0] == value.shape[0], s.key
            assert value.attrs.get("unit") == s.unit and value.attrs.get("description") == s.description, s.key
        # every unit and description in the file comes from the table (nothing annotated elsewhere)
        table = {p: (u, d) for p, u, d in schema.annotations()}
        found = {}
        f.visititems(lambda name, obj: found.update({name: (obj.attrs.get("unit"), obj.attrs.get("description"))})
                     if "unit" in obj.attrs or "description" in obj.attrs else None)
        assert found and all(table[p] == v for p, v in found.items())
        assert {p for p in table if p in f} == set(found)


def test_checkpoint_slots_have_the_shapes_of_the_logged_fields(quickstart):
    with h5py.File(quickstart, "r") as f:
        for name in schema.REQUIRED_FIELDS:
            for slot in schema.CHECKPOINT_SLOTS:
                ck = f[f"checkpoint/{slot}/{name}"]
                assert ck.dtype == np.float64 and ck.shape == f[f"{schema.frame_path(name)}/value"].shape[1:]


def test_a_new_logged_series_is_one_row_of_the_table(tmp_path, monkeypatch):
    """A row added to SERIES is created, annotated, appended (its value handed to log_energy by key) and read."""
    row = schema.Series("largest_step", "observables/largest_step", "float64", ("N",), "u",
                        "a made-up series: the largest step of each agent")
    monkeypatch.setattr(schema, "SERIES", schema.SERIES + (row,))
    monkeypatch.setattr(schema, "STEP_SERIES", schema.STEP_SERIES + (row,))
    monkeypatch.setitem(schema.SERIES_BY_KEY, row.key, row)
    layout, state = random_system()
    path = tmp_path / "new.h5"
    writer = TrajectoryWriter.create(path, layout, json.dumps({"name": "new"}), "", 0, RunLock(path).acquire())
    terms = {t: 1.0 for t in TERMS}
    grads = {"mu": 0.1, "sigma": 0.2, "phi": 0.3}
    for step in range(3):
        writer.log_energy(step, terms, grads, 0, largest_step=np.arange(layout.n_agents) + step,
                          frame_follows=step == 0)
        if step == 0:
            writer.log_frame(replace(state, step=0))
    writer.close("completed")
    with load(path) as traj:
        steps, values = traj.series("largest_step")
        np.testing.assert_array_equal(steps, [0, 1, 2])
        np.testing.assert_array_equal(values, np.arange(layout.n_agents)[None] + np.arange(3)[:, None])
        np.testing.assert_array_equal(traj.energy("total")[1], [len(TERMS)] * 3)
    with h5py.File(path, "r") as f:
        assert f["observables/largest_step/value"].attrs["unit"] == "u"


def test_unknown_or_frame_series_are_refused_by_name(quickstart):
    with load(quickstart) as traj:
        for key in ("nope", "mu"):
            with pytest.raises(KeyError, match=key):
                traj.series(key)


# --- resume: the run code's policy, the file untouched when it refuses ----------------------------------------

def test_a_refused_resume_leaves_the_file_as_it_was(quickstart, tmp_path):
    path = tmp_path / "copy.h5"
    path.write_bytes(quickstart.read_bytes())
    before = trajectory_digest(path)
    with load(path) as traj:
        layout, config_json = traj.layout(), json.dumps(traj.config, sort_keys=True)
    seen = []

    def refuse(state, rng_state):
        seen.append((state.step, rng_state))
        return "cannot resume: refused by the run's policy"

    lock = RunLock(path).acquire()
    try:
        with pytest.raises(ValueError, match=r"copy\.h5: cannot resume: refused by the run's policy"):
            TrajectoryWriter.resume(path, layout, config_json, lock, refusal=refuse)
    finally:
        lock.release()
    assert seen and seen[0][0] == 10  # the committed checkpoint, with its noise generator description
    assert trajectory_digest(path) == before


def test_the_run_policy_refuses_off_refresh_checkpoints_and_old_noise():
    state = random_system()[1]
    coupled = resume_refusal(json.dumps({"hierarchy": {"enabled": True, "every": 5}}))
    assert "step 7" in coupled(replace(state, step=7), None)
    assert coupled(replace(state, step=10), None) is None
    noisy = resume_refusal(json.dumps({"dynamics": {"temperature": 0.1}}))
    assert "numpy's PCG64" in noisy(state, {"bit_generator": "PCG64", "state": {}})


def test_io_and_viz_import_no_setup_and_the_writer_no_run_policy():
    """The layers: io and viz build nothing through set-up; the writer knows no dynamics or hierarchy."""
    for path in [*(PACKAGE / "agents" / "io").glob("*.py"), *(PACKAGE / "viz").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "setup" not in (node.module or "").split("."), f"{path.name} imports {node.module}"
    writer = ast.parse((PACKAGE / "agents" / "io" / "writer.py").read_text())
    modules = {n.module for n in ast.walk(writer) if isinstance(n, ast.ImportFrom)}
    assert not modules & {"..model.dynamics", "..model.hierarchy"}


# --- energy_params and evaluate ---------------------------------------------------------------------------------

def test_energy_params_are_the_runs(quickstart):
    with load(quickstart) as traj:
        assert traj.energy_params == make_config(traj.config).energy


def test_evaluate_reproduces_the_logged_energies_with_observations(quickstart):
    with load(quickstart) as traj:
        assert traj.layout().observations is not None
        for frame in range(len(traj.frame_steps)):
            _assert_reproduces(traj, frame)
        ev = traj.evaluate(step=5)
        assert set(ev.densities) == set(TERMS) and ev.grad_mu is None


def test_evaluate_reproduces_the_logged_energies_with_the_hierarchy_coupling(tmp_path):
    """rho > 0: the coupled prior is recomputed from the logged state at the last refresh step (step 10 for the
    final frame at 12), as the run computed it."""
    path = run(tmp_path, "timescales", "hierarchy.rho=0.5", "dynamics.steps=12")
    with load(path) as traj:
        assert list(traj.frame_steps) == [0, 5, 10, 12]
        for frame in range(4):
            _assert_reproduces(traj, frame)
        # the configured prior alone does not give the logged energy: the coupling is really in it
        plain = traj.layout()
        assert traj.evaluate(-1, layout=plain).terms["prior"] != pytest.approx(traj.energy("prior")[1][-1],
                                                                                 rel=1e-9)


def test_a_streaming_draw_is_refused_without_the_set_up_layout(tmp_path):
    """Observation draws after the first are the set-up code's (setup/streaming.py): the reader says so, and the
    layout built there (passed in) reproduces the logged energies."""
    from gauge_vfe.agents.setup.streaming import with_draw

    path = run(tmp_path, "quickstart", "observations.resample_every=4")
    with load(path) as traj:
        _assert_reproduces(traj, 0)
        with pytest.raises(NotReproducible, match=r"streaming observation draw 1 .*resample_every = 4"):
            traj.evaluate(step=5)
        base = traj.layout()
        _assert_reproduces(traj, 1, layout=with_draw(base, base.observations.value, traj.seed, 1))
