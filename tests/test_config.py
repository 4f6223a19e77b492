"""Config validation (key paths in every message), defaults, and the seeded builder."""

from __future__ import annotations

import numpy as np
import pytest

from gauge_vfe.agents import ConfigError, Simulation, build, make_config


def test_every_key_has_a_default():
    cfg = make_config({})
    d = cfg.to_dict()
    assert d["grid"] == {"height": 32, "width": 32, "boundary": "open"}
    assert d["energy"]["kappa"] == 1.0 and d["energy"]["form"] == "weighted"
    assert d["fiber"]["spins"] == [1]
    assert make_config(d) == cfg  # the resolved dict round-trips


@pytest.mark.parametrize("data,path,fragment", [
    ({"grid": {"heigth": 4}}, "grid.heigth", "no such key; did you mean 'height'?"),
    ({"grid": {"height": "ten"}}, "grid.height", "integer"),
    ({"grid": {"height": 0}}, "grid.height", "greater than or equal to 1"),
    ({"grid": {"height": 2, "boundary": "periodic"}}, "grid", "periodic grid needs"),
    ({"energy": {"kappa": 0}}, "energy.kappa", "greater than 0"),
    ({"energy": {"form": "softmax"}}, "energy.form", "weighted"),
    ({"dynamics": {"lr_mu": -0.1}}, "dynamics.lr_mu", "greater than or equal to 0"),
    ({"fiber": {"spins": [-1]}}, "fiber.spins.0", "greater than or equal to 0"),
    ({"fiber": {"spins": [11]}}, "fiber.spins.0", "less than or equal to 10"),
    ({"agents": {"support": {"shape": "disk", "radius": 100}}}, "agents.support.radius", "100.0 is larger than the grid"),
    ({"agents": {"support": {"shape": "hexagon"}}}, "agents.support", "shape"),
    ({"agents": {"init": {"sigma": {"value": [[1, 2], [2, 1]]}}}}, "agents.init.sigma.value", "needs a 3x3 matrix"),
    ({"agents": {"init": {"sigma": {"value": [[1, 2, 0], [2, 1, 0], [0, 0, 1]]}}}}, "agents.init.sigma.value", "not positive definite"),
    ({"priors": {"mu": {"value": [1, 2]}}}, "priors.mu.value", "needs 3 components"),
    ({"agents": {"count": 2, "supports": [{"shape": "whole"}]}}, "agents", "count is 2 but 1 supports"),
    ({"observations": {"kind": "file"}}, "observations", "need a path"),
    ({"seed": -1}, "seed", "greater than or equal to 0"),
])
def test_bad_values_name_their_key(data, path, fragment):
    with pytest.raises(ConfigError) as err:
        make_config(data)
    problems = err.value.problems
    assert any(p == path and fragment in m for p, m in problems), problems


SMALL = {"grid": {"height": 12, "width": 12}, "agents": {"count": 3, "support": {"shape": "disk", "radius": 4},
         "init": {"mu": {"kind": "smooth"}, "sigma": {"kind": "random"}, "phi": {"kind": "random", "scale": 0.3}}},
         "observations": {"kind": "random"}}


def test_same_seed_same_arrays_and_independent_streams():
    a, b = build(make_config({**SMALL, "seed": 5})), build(make_config({**SMALL, "seed": 5}))
    for name in ("mu", "sigma", "phi"):
        assert np.array_equal(getattr(a.state, name), getattr(b.state, name))
    assert np.array_equal(a.layout.observations.value, b.layout.observations.value)
    c = build(make_config({**SMALL, "seed": 6}))
    assert not np.array_equal(a.state.mu, c.state.mu)
    # turning observations off does not change the initial beliefs (their stream is separate)
    d = build(make_config({**SMALL, "seed": 5, "observations": {"kind": "none"}}))
    assert np.array_equal(a.state.mu, d.state.mu) and d.layout.observations is None


def test_generators_produce_what_they_say():
    sim = Simulation.from_config({
        "grid": {"height": 10, "width": 10}, "fiber": {"spins": [2]},
        "agents": {"supports": [{"shape": "whole"}, {"shape": "rectangle", "origin": [0, 0], "size": [5, 5]}],
                   "init": {"mu": {"value": 2.0}, "sigma": {"value": [1, 2, 3, 4, 5]},
                            "phi": {"kind": "random", "per": "agent", "scale": 0.5}}},
        "priors": {"sigma": {"kind": "random", "scale": 2.0, "spread": 0.0}},
        "observations": {"kind": "constant", "value": [1.0, -1.0], "C": [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]],
                         "noise": [0.5, 2.0]},
    })
    lay, st = sim.layout, sim.state
    assert lay.n_agents == 2 and lay.n_rows == 125 and lay.K == 5
    assert np.all(st.mu == 2.0)
    assert np.all(st.sigma == np.diag([1.0, 2, 3, 4, 5]))
    assert np.allclose(lay.prior_sigma, 2.0 * np.eye(5))
    phi0 = st.phi[lay.rows_of(0)]
    assert np.all(phi0 == phi0[0]) and not np.all(st.phi[lay.rows_of(1)][0] == phi0[0])
    assert lay.observations.C.shape == (2, 5) and np.allclose(lay.observations.Rn, np.diag([0.5, 2.0]))


def test_observation_image_file(tmp_path):
    from PIL import Image
    img = np.zeros((6, 6, 3), dtype=np.uint8)
    img[:, :3] = (255, 0, 0)
    Image.fromarray(img).save(tmp_path / "pic.png")
    sim = Simulation.from_config({"grid": {"height": 6, "width": 6},
                                  "agents": {"count": 1, "support": {"shape": "whole"}},
                                  "observations": {"kind": "file", "path": "pic.png"}}, base_dir=tmp_path)
    obs = sim.layout.observations
    assert obs.D == 3
    assert np.allclose(obs.value[0], [1.0, 0.0, 0.0]) and np.allclose(obs.value[5], [0.0, 0.0, 0.0])
