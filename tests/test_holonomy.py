"""Plaquette holonomy and composite loops (docs/model.md#holonomy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.analysis.holonomy import automatic_loops, loop_from_waypoints, loop_holonomy, plaquette_angles
from gauge_vfe.agents.model.layout import build_layout
from gauge_vfe.agents.model.state import State


def whole_layout(H=5, W=6, n_agents=1, boundary="open", chis=None):
    if chis is not None:
        H, W = chis[0].shape
    g = Grid(H, W, boundary)
    chis = chis if chis is not None else [supports.whole(g) for _ in range(n_agents)]
    S = sum(int((c >= 1e-6).sum()) for c in chis)
    return build_layout(g, make_fiber([1]), chis, np.zeros((S, 3)), np.tile(np.eye(3), (S, 1, 1)))


def state_with_phi(layout, phi):
    S = layout.n_rows
    return State.from_arrays(np.zeros((S, 3)), np.tile(np.eye(3), (S, 1, 1)), phi)


def linear_phi(layout, a, b):
    y, x = np.divmod(layout.index, layout.grid.width)
    return x[:, None] * np.asarray(a) + y[:, None] * np.asarray(b)


def commutator_angle(a, b):
    """Closed form: the angle of W = Ux Uy Ux^T Uy^T with constant links Ux = exp(-a), Uy = exp(-b)."""
    ux, uy = Rotation.from_rotvec(-np.asarray(a)), Rotation.from_rotvec(-np.asarray(b))
    return np.linalg.norm((ux * uy * ux.inv() * uy.inv()).as_rotvec())


def test_pure_gauge_field_has_no_holonomy():
    layout = whole_layout(6, 7)
    rng = np.random.default_rng(0)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    phi = rng.normal(size=(layout.n_rows, 1)) * 3.0 * axis  # phi varies only along one fixed axis
    angle, _ = plaquette_angles(layout, state_with_phi(layout, phi))
    finite = angle[np.isfinite(angle)]
    assert finite.size == 5 * 6
    assert finite.max() < 1e-12


@pytest.mark.parametrize("a,b", [([0.3, 0.0, 0.0], [0.0, 0.4, 0.0]), ([0.5, -0.2, 0.1], [0.1, 0.3, -0.6]),
                                 ([1.2, 0.4, -0.3], [-0.2, 0.9, 0.5])])
def test_linear_field_gives_constant_links_closed_form(a, b):
    layout = whole_layout(4, 5)
    angle, axis = plaquette_angles(layout, state_with_phi(layout, linear_phi(layout, a, b)))
    finite = angle[np.isfinite(angle)]
    np.testing.assert_allclose(finite, commutator_angle(a, b), atol=1e-12)
    assert np.isnan(angle).sum() == layout.n_rows - 3 * 4  # last row and column have no plaquette


def test_small_fields_approach_the_field_strength():
    a0, b0 = np.array([0.4, 0.1, -0.2]), np.array([-0.1, 0.3, 0.5])
    for eps in (1e-1, 1e-2, 1e-3):
        a, b = eps * a0, eps * b0
        layout = whole_layout(3, 3)
        angle, _ = plaquette_angles(layout, state_with_phi(layout, linear_phi(layout, a, b)))
        F = np.linalg.norm(np.cross(a, b))
        rel = abs(angle[0] - F) / F
        assert rel < 2 * eps * (np.linalg.norm(a0) + np.linalg.norm(b0)), (eps, rel)


def test_periodic_grid_plaquettes_wrap():
    layout = whole_layout(4, 4, boundary="periodic")
    angle, _ = plaquette_angles(layout, state_with_phi(layout, np.zeros((layout.n_rows, 3))))
    assert np.isfinite(angle).all() and angle.max() == 0.0


def test_frame_switches_at_one_site_telescope():
    layout = whole_layout(3, 3, n_agents=4)
    rng = np.random.default_rng(1)
    st = state_with_phi(layout, rng.normal(size=(layout.n_rows, 3)) * 2)
    loop = loop_from_waypoints(layout, "switches", [(0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 1, 1), (0, 1, 1)])
    angle, _, w = loop_holonomy(layout, st, loop)
    assert angle < 1e-12 and np.allclose(w, np.eye(3), atol=1e-12)


def test_composite_loop_equals_single_agent_loop_when_frames_agree():
    """Two agents with the same frame field: switching between them changes nothing, and a loop around one
    plaquette reproduces the plaquette angle."""
    layout = whole_layout(4, 4, n_agents=2)
    a, b = [0.4, -0.1, 0.2], [0.1, 0.5, -0.3]
    phi_one = linear_phi(layout, a, b)[:16]
    st = state_with_phi(layout, np.concatenate([phi_one, phi_one]))
    loop = loop_from_waypoints(layout, "mixed", [(0, 1, 1), (0, 1, 2), (0, 2, 2), (1, 2, 2), (1, 2, 1), (1, 1, 1),
                                                  (0, 1, 1)])
    angle, _, _ = loop_holonomy(layout, st, loop)
    assert angle == pytest.approx(commutator_angle(a, b), abs=1e-12)


def test_loops_reject_paths_outside_the_support():
    g = Grid(6, 6)
    layout = whole_layout(chis=[supports.rectangle(g, (0, 0), (3, 3)), supports.whole(g)])
    with pytest.raises(ValueError, match="outside agent 0"):
        loop_from_waypoints(layout, "bad", [(0, 0, 0), (0, 0, 5)])
    with pytest.raises(ValueError, match="switch at one site"):
        loop_from_waypoints(layout, "bad", [(0, 0, 0), (1, 1, 1)])


def test_automatic_loops_cover_pairs_and_triples():
    g = Grid(12, 12)
    chis = [supports.disk(g, (5, 5), 4), supports.disk(g, (5, 7), 4), supports.disk(g, (7, 6), 4)]
    layout = whole_layout(chis=chis)
    loops = automatic_loops(layout)
    names = {lp.name for lp in loops}
    assert {"overlap_0_1", "overlap_0_2", "overlap_1_2", "overlap_0_1_2"} <= names
    # with all frames equal, every automatic loop is trivial; with a curved field it is not
    flat = state_with_phi(layout, np.zeros((layout.n_rows, 3)))
    curved = state_with_phi(layout, np.concatenate([linear_phi(layout, [0.3, 0, 0], [0, 0.3, 0])[layout.rows_of(i)]
                                                   for i in range(3)]))
    for lp in loops:
        assert loop_holonomy(layout, flat, lp)[0] < 1e-12
        assert loop_holonomy(layout, curved, lp)[0] > 1e-3
        assert lp.kinds.sum() == (2 if len(lp.agents) == 2 else 3)


# --- composite loops: the product rule (docs/model.md#loops) -----------------------------------------------------

def rough_phi(layout, rng, scale=1.5):
    return rng.normal(size=(layout.n_rows, 3)) * scale


def flat_phi(layout, rng, axes):
    """Agent i's field is f_i(x, y) * axes[i] with a rough random f_i: non-trivial frames, F = Dx phi x Dy phi = 0."""
    phi = np.empty((layout.n_rows, 3))
    for i, axis in enumerate(axes):
        rows = np.arange(layout.n_rows)[layout.rows_of(i)]
        phi[rows] = rng.normal(size=(rows.size, 1)) * 2.5 * (np.asarray(axis) / np.linalg.norm(axis))
    return phi


def plaquette_loop(layout, agent, y, x):
    return loop_from_waypoints(layout, f"plaquette_{y}_{x}",
                               [(agent, y, x), (agent, y, x + 1), (agent, y + 1, x + 1), (agent, y + 1, x)])


def test_one_agent_loop_around_a_plaquette_is_that_plaquette():
    """Links multiply left to right in path order, as in the plaquette's W (not later steps on the left)."""
    layout = whole_layout(5, 6, n_agents=2)
    rng = np.random.default_rng(7)
    st = state_with_phi(layout, rough_phi(layout, rng))
    angle, axis = plaquette_angles(layout, st)
    for agent, y, x in [(0, 0, 0), (0, 2, 3), (0, 3, 4), (1, 1, 1), (1, 3, 0)]:
        row = layout.rows_of(agent).start + y * 6 + x  # a whole support: rows in site order
        got, got_axis, _ = loop_holonomy(layout, st, plaquette_loop(layout, agent, y, x))
        assert angle[row] > 0.1  # a rough field: far from trivial
        assert got == pytest.approx(angle[row], abs=1e-12)
        np.testing.assert_allclose(got_axis, axis[row], atol=1e-12)


FLAT_AXES = [[0.3, -0.5, 0.8], [1.0, 0.2, 0.0], [-0.1, 0.4, 0.6]]


@pytest.mark.parametrize("n_agents", [2, 3])
def test_flat_frame_fields_have_trivial_loops_across_agents(n_agents):
    """Each agent's field varies along its own fixed axis (F = 0): every loop, switching frames where it
    changes agent (Omega_ab = R_a R_b^T), telescopes to the identity."""
    layout = whole_layout(6, 6, n_agents=n_agents)
    rng = np.random.default_rng(11)
    st = state_with_phi(layout, flat_phi(layout, rng, FLAT_AXES[:n_agents]))
    angle, _ = plaquette_angles(layout, st)
    assert np.nanmax(angle) < 1e-12
    if n_agents == 2:
        loops = [[(0, 1, 1), (0, 1, 4), (1, 1, 4), (1, 4, 4), (1, 4, 1), (0, 4, 1)],
                 [(1, 0, 0), (1, 0, 5), (0, 0, 5), (0, 5, 5), (1, 5, 5), (1, 5, 0)],
                 [(0, 2, 2), (1, 2, 2), (1, 2, 3), (0, 2, 3), (0, 3, 3), (1, 3, 3), (1, 3, 2), (0, 3, 2)]]
    else:
        loops = [[(0, 1, 1), (0, 1, 4), (1, 1, 4), (1, 4, 4), (2, 4, 4), (2, 4, 1), (0, 4, 1)],
                 [(2, 0, 0), (2, 0, 3), (0, 0, 3), (0, 5, 3), (1, 5, 3), (1, 5, 0), (2, 5, 0)],
                 [(0, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 4), (1, 2, 4), (1, 4, 4), (0, 4, 4), (0, 4, 2)]]
    loops = [loop_from_waypoints(layout, f"loop{k}", w) for k, w in enumerate(loops)]
    loops += automatic_loops(layout)
    for lp in loops:
        assert lp.kinds.sum() >= 2  # switches frames
        got, _, w = loop_holonomy(layout, st, lp)
        assert got < 1e-12, lp.name
        np.testing.assert_allclose(w, np.eye(3), atol=1e-12)


def test_loop_angle_is_invariant_under_a_global_gauge_rotation():
    """phi -> g phi on every frame (docs/model.md#gauge-invariance) conjugates every link and switch by g: the
    loop's angle is unchanged and its axis turns with g."""
    layout = whole_layout(5, 5, n_agents=3)
    rng = np.random.default_rng(5)
    phi = rough_phi(layout, rng, 0.8)
    g = Rotation.from_rotvec([0.7, -1.9, 0.4]).as_matrix()
    st, st_g = state_with_phi(layout, phi), state_with_phi(layout, phi @ g.T)
    loops = [loop_from_waypoints(layout, "pair", [(0, 0, 0), (0, 0, 3), (1, 0, 3), (1, 3, 3), (1, 3, 0), (0, 3, 0)]),
             loop_from_waypoints(layout, "triple", [(0, 1, 1), (0, 1, 4), (1, 1, 4), (1, 4, 4), (2, 4, 4),
                                                    (2, 4, 1), (0, 4, 1)]),
             plaquette_loop(layout, 2, 1, 2)]
    for lp in loops:
        angle, axis, _ = loop_holonomy(layout, st, lp)
        angle_g, axis_g, _ = loop_holonomy(layout, st_g, lp)
        assert angle > 0.05
        assert angle_g == pytest.approx(angle, abs=1e-12)
        np.testing.assert_allclose(axis_g, g @ axis, atol=1e-10)
