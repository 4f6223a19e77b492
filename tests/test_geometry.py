"""Grid, supports, compact agent-site storage, neighbour tables and overlap lists."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gauge_vfe.agents.model import supports
from gauge_vfe.agents.model.fiber import make_fiber
from gauge_vfe.agents.model.grid import Grid
from gauge_vfe.agents.model.layout import build_layout
from gauge_vfe.agents.setup.inputs import from_file  # masks are read by set-up, not the model


def layout_for(grid, chis, K_spins=(1,)):
    fiber = make_fiber(K_spins)
    S = sum(int((np.asarray(c) >= 1e-6).sum()) for c in chis)
    return build_layout(grid, fiber, chis, np.zeros((S, fiber.K)), np.tile(np.eye(fiber.K), (S, 1, 1)))


def test_grid_validation():
    Grid(1, 1)
    with pytest.raises(ValueError, match="periodic grid needs"):
        Grid(2, 5, "periodic")
    with pytest.raises(ValueError):
        Grid(4, 4, "twisted")


def test_disk_area_and_periodic_wrap():
    open_grid, periodic = Grid(40, 40), Grid(40, 40, "periodic")
    d = supports.disk(open_grid, (20, 20), 8)
    assert abs(d.sum() - np.pi * 64) / (np.pi * 64) < 0.05
    corner_open = supports.disk(open_grid, (0, 0), 8).sum()
    corner_wrapped = supports.disk(periodic, (0, 0), 8).sum()
    assert corner_wrapped == d.sum()
    assert corner_open < 0.3 * corner_wrapped


def test_shapes():
    g = Grid(20, 30)
    rect = supports.rectangle(g, (2, 3), (4, 5))
    assert rect.sum() == 20 and rect[2, 3] == 1 and rect[6, 3] == 0
    wrapped = supports.rectangle(Grid(10, 10, "periodic"), (8, 8), (4, 4))
    assert wrapped.sum() == 16 and wrapped[0, 0] == 1
    ell = supports.ellipse(g, (10, 15), (3, 8), angle=0)
    assert ell[10, 22] == 1 and ell[14, 15] == 0
    ell90 = supports.ellipse(g, (10, 15), (3, 8), angle=90)
    assert ell90[17, 15] == 1 and ell90[10, 22] == 0
    bump = supports.gaussian(g, (10, 15), 3.0)
    assert bump[10, 15] == 1.0 and 0 < bump.min() < 1
    assert supports.whole(g).sum() == 600


def test_blob_is_seeded_and_contains_its_centre():
    g = Grid(40, 40)
    a = supports.blob(g, (20, 20), 8, 0.5, np.random.default_rng(1))
    b = supports.blob(g, (20, 20), 8, 0.5, np.random.default_rng(1))
    c = supports.blob(g, (20, 20), 8, 0.5, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a[20, 20] == 1 and 0.3 * np.pi * 64 < a.sum() < 2.5 * np.pi * 64


def test_masks_from_npy_and_image(tmp_path):
    g = Grid(8, 12)
    arr = np.zeros((8, 12))
    arr[2:5, 3:9] = 0.75
    np.save(tmp_path / "m.npy", arr)
    assert np.array_equal(from_file(g, tmp_path / "m.npy"), arr)
    assert from_file(g, tmp_path / "m.npy", threshold=0.5).sum() == 18
    img = np.zeros((16, 24), dtype=np.uint8)
    img[:8, :] = 255
    Image.fromarray(img).save(tmp_path / "m.png")
    m = from_file(g, tmp_path / "m.png", threshold=0.5)
    assert m.shape == (8, 12) and m[:3].all() and not m[5:].any()
    with pytest.raises(FileNotFoundError):
        from_file(g, tmp_path / "missing.npy")


@pytest.mark.parametrize("boundary", ["open", "periodic"])
def test_layout_tables_match_brute_force(boundary):
    g = Grid(7, 9, boundary)
    rng = np.random.default_rng(0)
    chis = [supports.disk(g, (rng.uniform(0, 7), rng.uniform(0, 9)), 2.5) for _ in range(4)]
    chis.append(supports.gaussian(g, (3, 4), 1.5))
    lay = layout_for(g, chis)
    assert lay.offset[0] == 0 and lay.offset[-1] == lay.n_rows
    # rows of each agent are its support sites in order
    for i, c in enumerate(chis):
        sites = np.nonzero(c.ravel() >= 1e-6)[0]
        assert np.array_equal(lay.index[lay.rows_of(i)], sites)
        assert np.allclose(lay.chi[lay.rows_of(i)], c.ravel()[sites])
    # per-site row lists
    for s in range(g.n_sites):
        rows = lay.site_rows[lay.site_ptr[s]:lay.site_ptr[s + 1]]
        assert np.all(lay.index[rows] == s)
        assert list(lay.agent[rows]) == sorted(lay.agent[rows])
        assert len(rows) == sum(c.ravel()[s] >= 1e-6 for c in chis)
    # neighbour rows
    lookup = {(int(lay.agent[r]), int(lay.index[r])): r for r in range(lay.n_rows)}
    for r in range(lay.n_rows):
        y, x = divmod(int(lay.index[r]), g.width)
        for table, (dy, dx) in ((lay.fwd_x, (0, 1)), (lay.fwd_y, (1, 0)), (lay.bwd_x, (0, -1)), (lay.bwd_y, (-1, 0))):
            ny, nx = y + dy, x + dx
            if boundary == "periodic":
                ny, nx = ny % g.height, nx % g.width
            inside = 0 <= ny < g.height and 0 <= nx < g.width
            expected = lookup.get((int(lay.agent[r]), ny * g.width + nx), -1) if inside else -1
            assert table[r] == expected
    # overlap list and pair slots
    pairs = lay.overlap_pairs()
    for i, j, n in pairs:
        assert n == np.sum((chis[i] >= 1e-6) & (chis[j] >= 1e-6))
    counts = np.diff(lay.site_ptr)[lay.occupied]
    assert lay.pair_ptr[-1] == np.sum(counts ** 2)


def test_support_validation():
    g = Grid(4, 4)
    with pytest.raises(ValueError, match="empty support"):
        layout_for(g, [np.zeros((4, 4))])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        layout_for(g, [2 * np.ones((4, 4))])


def test_to_grid_has_nan_outside_support():
    g = Grid(5, 5)
    chis = [supports.disk(g, (2, 2), 1.2), supports.whole(g)]
    lay = layout_for(g, chis)
    field = lay.to_grid(lay.chi, 0)
    assert np.isnan(field[0, 0]) and field[2, 2] == 1.0
