"""The array pool (agents/model/arrays.py, docs/model.md#memory): a step's large arrays are reused once nothing
refers to them, never while anything does, and reuse changes no result."""

import copy

import numpy as np
import pytest

from gauge_vfe import Simulation
from gauge_vfe.agents.model.arrays import ArrayPool

from tests.test_dynamics import ALL_TERMS


def test_an_array_comes_back_only_when_nothing_else_holds_it():
    pool = ArrayPool(from_bytes=0, size=4)
    a = pool.empty((5, 3, 3))
    addr = a.__array_interface__["data"][0]
    b = pool.empty((5, 3, 3))
    assert b is not a  # a is held
    view = a[1:]
    del a
    c = pool.empty((5, 3, 3))
    assert c is not view.base  # a view keeps its array held
    del view
    d = pool.empty((5, 3, 3))
    assert d.__array_interface__["data"][0] == addr and pool.reused == 1
    assert pool.empty((5, 3, 4)).shape == (5, 3, 4)  # another shape: a new array
    assert pool.empty((5, 3, 3), np.float32).dtype == np.float32  # another type: a new array


def test_small_arrays_are_left_to_numpy_and_the_pool_keeps_at_most_its_size():
    pool = ArrayPool(from_bytes=1000, size=2)
    small = pool.empty((10,))
    del small
    assert pool.empty((10,)) is not None and pool.reused == 0 and not pool._kept
    held = [pool.empty((200,)) for _ in range(5)]  # 1600 bytes each, all held
    assert len(pool._kept) == 2 and pool.reused == 0
    del held
    pool.empty((200,))
    assert pool.reused == 1


@pytest.mark.parametrize("extra", [{}, {"method": "natural"}, {"line_search": {"enabled": True}},
                                   {"temperature": 0.01}])
def test_a_run_reusing_its_arrays_is_bit_identical_and_a_held_state_is_never_overwritten(extra):
    cfg = copy.deepcopy(ALL_TERMS)
    cfg["dynamics"].update(extra)
    plain, pooled = Simulation.from_config(cfg), Simulation.from_config(cfg)
    plain._pool = ArrayPool(from_bytes=1 << 62)  # never pools
    pooled._pool = ArrayPool(from_bytes=0)  # pools every array it can
    held = pooled.state  # a user keeps the state of step 0 and one of step 3
    held_copy = held.copy()
    for i in range(8):
        plain.step()
        pooled.step()
        if i == 2:
            held3, held3_copy = pooled.state, pooled.state.copy()
    assert pooled._pool.reused > 0
    for name in ("mu", "sigma", "phi"):
        assert getattr(plain.state, name).tobytes() == getattr(pooled.state, name).tobytes()
        assert getattr(held, name).tobytes() == getattr(held_copy, name).tobytes()
        assert getattr(held3, name).tobytes() == getattr(held3_copy, name).tobytes()
    for name, g in plain.gradients().items():
        assert g.tobytes() == pooled.gradients()[name].tobytes()
    assert plain.energy() == pooled.energy()
