"""The representation: Lie algebra relations, rho(exp phi) in closed form and its exact differential."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.transform import Rotation

from gauge_vfe.agents.model.fiber import levi_civita, make_fiber, spin_generators
from gauge_vfe.agents.kernels.lie import left_jacobian, rodrigues

SPINS = list(range(0, 11))


def rho(fiber, phi):
    return fiber.rho(phi)


@pytest.mark.parametrize("spin", SPINS)
def test_commutators_and_casimir(spin):
    g = spin_generators(spin)
    eps = levi_civita()
    for a in range(3):
        for b in range(3):
            comm = g[a] @ g[b] - g[b] @ g[a]
            np.testing.assert_allclose(comm, np.einsum("c,cij->ij", eps[a, b], g), atol=1e-12)
    casimir = np.einsum("aij,ajk->ik", g, g)
    np.testing.assert_allclose(casimir, -spin * (spin + 1) * np.eye(2 * spin + 1), atol=1e-12)
    np.testing.assert_array_equal(g, -g.transpose(0, 2, 1))


def test_spin_one_is_cartesian_cross_product():
    g = spin_generators(1)
    rng = np.random.default_rng(0)
    phi, v = rng.normal(size=3), rng.normal(size=3)
    np.testing.assert_allclose(np.einsum("a,aij->ij", phi, g) @ v, np.cross(phi, v), atol=1e-15)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                assert g[a, b, c] == -levi_civita()[a, b, c]


@pytest.mark.parametrize("spin", [1, 2, 3, 5, 10])
def test_full_turn_is_identity(spin):
    g = spin_generators(spin)
    for a in range(3):
        np.testing.assert_allclose(scipy.linalg.expm(2 * np.pi * g[a]), np.eye(2 * spin + 1), atol=1e-10)
        fiber = make_fiber([spin])
        e = np.zeros(3)
        e[a] = 2 * np.pi
        np.testing.assert_allclose(rho(fiber, e), np.eye(fiber.K), atol=1e-12)


EDGE_CASE_PHIS = [np.zeros(3), [0, 0, 1e-9], [1e-12, 0, 2.0], [0, 0, -3.0], [1e-7, 2e-7, -1e-7], [0, 0, np.pi],
                [4.0, -5.0, 2.0], [0.0, 1.0, 0.0]]


@pytest.mark.parametrize("spins", [[0], [1], [2], [3], [1, 2], [0, 1, 4, 7], [10]])
def test_closed_form_matches_matrix_exponential(spins):
    fiber = make_fiber(spins)
    rng = np.random.default_rng(1)
    for phi in list(rng.normal(size=(10, 3)) * 2) + [np.asarray(p, float) for p in EDGE_CASE_PHIS]:
        ref = scipy.linalg.expm(np.einsum("a,aij->ij", phi, fiber.generators))
        np.testing.assert_allclose(rho(fiber, phi), ref, atol=5e-12)


@pytest.mark.parametrize("spins", [[1], [2], [1, 2], [3, 0], [7]])
def test_orthogonal_and_homomorphism(spins):
    fiber = make_fiber(spins)
    rng = np.random.default_rng(2)
    for _ in range(10):
        a, b = rng.normal(size=(2, 3)) * 1.5
        ra, rb = rho(fiber, a), rho(fiber, b)
        np.testing.assert_allclose(ra @ ra.T, np.eye(fiber.K), atol=1e-12)
        assert np.linalg.det(ra) == pytest.approx(1.0, abs=1e-12)
        # the SO(3) product, read off the l = 1 matrices, maps to the product of representation matrices
        c = (Rotation.from_rotvec(a) * Rotation.from_rotvec(b)).as_rotvec()
        np.testing.assert_allclose(rho(fiber, c), ra @ rb, atol=1e-11)


def test_rodrigues_matches_scipy():
    rng = np.random.default_rng(3)
    out = np.zeros((3, 3))
    for phi in rng.normal(size=(20, 3)) * 3:
        rodrigues(phi, out)
        np.testing.assert_allclose(out, Rotation.from_rotvec(phi).as_matrix(), atol=1e-14)


@pytest.mark.parametrize("spins", [[1], [2], [1, 3]])
def test_differential_is_left_jacobian(spins):
    """d rho(exp phi)/dphi_a = ((J_l e_a) . G) rho(exp phi), against central differences."""
    fiber = make_fiber(spins)
    rng = np.random.default_rng(4)
    jac = np.zeros((3, 3))
    for phi in list(rng.normal(size=(5, 3)) * 2) + [np.array([1e-6, -2e-6, 5e-7]), np.array([0.0, 0.0, 3.0])]:
        left_jacobian(phi, jac)
        r = rho(fiber, phi)
        h = 1e-6
        for a in range(3):
            e = np.zeros(3)
            e[a] = h
            fd = (rho(fiber, phi + e) - rho(fiber, phi - e)) / (2 * h)
            exact = np.einsum("b,bij->ij", jac[:, a], fiber.generators) @ r
            np.testing.assert_allclose(exact, fd, atol=1e-8)


def test_bad_spin_rejected():
    with pytest.raises(ValueError):
        spin_generators(11)
    with pytest.raises(ValueError):
        spin_generators(-1)
