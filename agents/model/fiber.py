"""The fiber R^K: a real orthogonal representation of SO(3) as a direct sum of spins (docs/model.md#fiber).

Built once, in numpy, at set-up time. Kernels never see this module's objects, only the plain arrays of
:class:`Fiber`.

Basis conventions
-----------------
* Spin 1 is Cartesian: ``(G_a)_{bc} = -eps_{abc}``, so ``(phi . G) v = phi x v``.
* Spin l != 1 uses the real spherical-harmonic basis, ordered m = -l..l. Its generators are obtained from the
  complex angular-momentum matrices ``L_a`` (``[L_a, L_b] = i eps_abc L_c``) as ``G_a = -i L_a`` followed by the
  unitary change to real harmonics; the result is checked to be real and antisymmetric.

In both bases ``G_z`` couples index pairs only (``m`` with ``-m``), which is what lets a kernel write
``exp(t G_z)`` in closed form as 2x2 rotations by ``m t``. A general ``rho(exp phi)`` for spin l >= 2 is then
``D Z(theta) D^T`` with ``D = Z(azimuth) Q Z(polar) Q^T`` and the constant ``Q = rho(exp(-pi/2 G_x))``, which
turns the z axis into the y axis (see :mod:`agents.kernels.lie`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

MAX_SPIN = 10
MAX_GLK_DIM = 32  # GL(K) frames: K^2 frame coordinates a row and 2K x 2K exponentials in the frame gradient

_EPS = np.zeros((3, 3, 3))
_EPS[0, 1, 2] = _EPS[1, 2, 0] = _EPS[2, 0, 1] = 1.0
_EPS[0, 2, 1] = _EPS[2, 1, 0] = _EPS[1, 0, 2] = -1.0


def levi_civita() -> np.ndarray:
    """The 3x3x3 Levi-Civita symbol."""
    return _EPS.copy()


def spin_generators(spin: int) -> np.ndarray:
    """Real antisymmetric generators ``G_a`` (shape ``(3, 2l+1, 2l+1)``) of the spin-``l`` irrep.

    They satisfy ``[G_a, G_b] = eps_abc G_c`` and ``sum_a G_a G_a = -l(l+1) I``.
    """
    if not (0 <= spin <= MAX_SPIN) or int(spin) != spin:
        raise ValueError(f"spin must be an integer in 0..{MAX_SPIN}, got {spin!r}")
    spin = int(spin)
    if spin == 0:
        return np.zeros((3, 1, 1))
    if spin == 1:
        return -_EPS.copy()  # (G_a)_{bc} = -eps_{abc}
    dim = 2 * spin + 1
    m = np.arange(-spin, spin + 1)
    # Complex angular momentum in the |l, m> basis (Condon-Shortley phases).
    l_plus = np.zeros((dim, dim), dtype=complex)
    for k in range(dim - 1):
        mk = m[k]
        l_plus[k + 1, k] = np.sqrt(spin * (spin + 1) - mk * (mk + 1))
    l_minus = l_plus.conj().T
    l_x = (l_plus + l_minus) / 2
    l_y = (l_plus - l_minus) / 2j
    l_z = np.diag(m).astype(complex)
    # Columns of `basis` are the real harmonics expressed in the |l, m> basis.
    basis = np.zeros((dim, dim), dtype=complex)
    s2 = 1 / np.sqrt(2)
    for mm in range(-spin, spin + 1):
        col = mm + spin
        if mm == 0:
            basis[spin, col] = 1
        elif mm > 0:
            basis[-mm + spin, col] = s2
            basis[mm + spin, col] = s2 * (-1) ** mm
        else:
            a = -mm
            basis[mm + spin, col] = 1j * s2
            basis[a + spin, col] = -1j * s2 * (-1) ** a
    gens = []
    for op in (l_x, l_y, l_z):
        g = basis.conj().T @ (-1j * op) @ basis
        if np.max(np.abs(g.imag)) > 1e-12:  # pragma: no cover - a wrong basis is a programming error
            raise AssertionError("real-harmonic change of basis did not give real generators")
        gens.append(g.real)
    out = np.array(gens)
    out[np.abs(out) < 1e-15] = 0.0
    return out


@dataclass(frozen=True)
class Fiber:
    """The representation, as plain arrays that kernels take.

    Attributes
    ----------
    spins:          the irreps, in order.
    K:              fiber dimension, ``sum(2l+1)``.
    generators:     ``(3, K, K)`` block-diagonal generators.
    block_start, block_dim, block_spin: ``(B,)`` int64 describing the blocks.
    rotate_z:       ``(B, Kmax, Kmax)`` per-block constant ``Q = rho(exp(-pi/2 G_x))`` (zero padded).
    z_partner:      ``(K,)`` the index that ``G_z`` couples to each index (-1 if none, i.e. m = 0).
    z_rate:         ``(K,)`` ``c = G_z[partner, k]`` for the smaller index of each pair, 0 otherwise.
    gen_a, gen_p, gen_q, gen_val: the nonzero entries ``(G_a)_{pq}`` as flat arrays (sparse generators).
    """

    spins: tuple[int, ...]
    K: int
    generators: np.ndarray
    block_start: np.ndarray
    block_dim: np.ndarray
    block_spin: np.ndarray
    rotate_z: np.ndarray
    z_partner: np.ndarray
    z_rate: np.ndarray
    gen_a: np.ndarray
    gen_p: np.ndarray
    gen_q: np.ndarray
    gen_val: np.ndarray
    group: str = "so3"

    @property
    def glk(self) -> bool:
        """GL(K) frames (docs/model.md#glk-frames): phi is a K x K matrix, the frame exp(phi)."""
        return self.group == "glk"

    @property
    def n_phi(self) -> int:
        """Coordinates of phi per row: 3 (so(3)) or K^2 (gl(K), row-major)."""
        return self.K * self.K if self.glk else 3

    def describe(self) -> str:
        """One phrase for messages: ``spins [1] (K=3)`` or ``GL(3) frames (K=3)``."""
        return f"GL({self.K}) frames (K={self.K})" if self.glk else f"spins {list(self.spins)} (K={self.K})"

    @property
    def kernel_args(self) -> tuple:
        """The arrays the Lie-group kernels take, in their order."""
        return (self.block_start, self.block_dim, self.block_spin, self.rotate_z, self.z_partner, self.z_rate)

    def rho(self, phi) -> np.ndarray:
        """rho(exp phi), the (K, K) rotation of a frame phi in this representation (closed form); for GL(K)
        frames exp(phi) of phi's K^2 coordinates as a K x K matrix."""
        from ..kernels.lie import rho_exp

        if self.glk:
            from ..kernels.expm import expm

            out = np.empty((self.K, self.K))
            expm(np.ascontiguousarray(phi, dtype=float).reshape(self.K, self.K), out, np.empty((6, self.K, self.K)))
            return out

        out = np.zeros((self.K, self.K))
        scratch = np.zeros((3, int(self.block_dim.max()), int(self.block_dim.max())))
        rho_exp(np.asarray(phi, dtype=float), *self.kernel_args, out, scratch)
        return out


def make_fiber(spins) -> Fiber:
    """Build the fiber for a list of spins (default ``[1]``)."""
    spins = tuple(int(s) for s in spins)
    if not spins:
        raise ValueError("the fiber needs at least one spin")
    blocks = [spin_generators(s) for s in spins]
    dims = [b.shape[1] for b in blocks]
    K = int(sum(dims))
    kmax = max(dims)
    gens = np.zeros((3, K, K))
    rotate_z = np.zeros((len(spins), kmax, kmax))
    z_partner = -np.ones(K, dtype=np.int64)
    z_rate = np.zeros(K)
    start = 0
    starts = []
    for b, (spin, g) in enumerate(zip(spins, blocks)):
        d = g.shape[1]
        starts.append(start)
        gens[:, start:start + d, start:start + d] = g
        rotate_z[b, :d, :d] = scipy.linalg.expm(-np.pi / 2 * g[0])
        gz = g[2]
        for p in range(d):
            partners = np.nonzero(np.abs(gz[:, p]) > 1e-12)[0]
            if len(partners) > 1:  # pragma: no cover - guarded by construction
                raise AssertionError("G_z must couple index pairs only")
            if len(partners) == 1:
                q = int(partners[0])
                z_partner[start + p] = start + q
                if p < q:
                    z_rate[start + p] = gz[q, p]
        start += d
    nz = np.nonzero(np.abs(gens) > 0)
    return Fiber(
        spins=spins,
        K=K,
        generators=gens,
        block_start=np.array(starts, dtype=np.int64),
        block_dim=np.array(dims, dtype=np.int64),
        block_spin=np.array(spins, dtype=np.int64),
        rotate_z=rotate_z,
        z_partner=z_partner,
        z_rate=z_rate,
        gen_a=nz[0].astype(np.int64),
        gen_p=nz[1].astype(np.int64),
        gen_q=nz[2].astype(np.int64),
        gen_val=gens[nz].copy(),
    )


class GroupNotSupported(ValueError):
    """A feature asked of GL(K) frames that is defined for SO(3) frames only (docs/model.md#glk-frames)."""


def require_so3(source, what: str, where=None) -> None:
    """Raise :class:`GroupNotSupported` (one line, naming ``where`` if given) when ``source`` (a :class:`Fiber`,
    or anything with ``group`` and ``K``: a trajectory) has GL(K) frames, for which ``what`` is not defined yet,
    rather than compute it as if the frames were rotations."""
    if getattr(source, "group", "so3") == "glk":
        prefix = f"{where}: " if where is not None else ""
        raise GroupNotSupported(f"{prefix}{what} is defined for SO(3) frames only, and this run has GL({source.K}) "
                                "frames (docs/model.md#glk-frames)")


def make_glk_fiber(K: int) -> Fiber:
    """The fiber R^K with GL(K) frames (docs/model.md#glk-frames). It has no irreducible blocks or generators;
    ``rotate_z`` is only sized (zeros of side 4K) so the kernels' per-thread scratch fits the GL(K) frame
    gradient (:func:`agents.kernels.glk.glk_scratch_dim`)."""
    from ..kernels.glk import glk_scratch_dim

    K = int(K)
    if not 1 <= K <= MAX_GLK_DIM:
        raise ValueError(f"a glk fiber needs 1 <= K <= {MAX_GLK_DIM}, got {K}")
    n = glk_scratch_dim(K)
    none_i = np.zeros(0, dtype=np.int64)
    return Fiber(spins=(), K=K, generators=np.zeros((0, K, K)), block_start=none_i, block_dim=none_i.copy(),
                 block_spin=none_i.copy(), rotate_z=np.zeros((1, n, n)), z_partner=-np.ones(K, dtype=np.int64),
                 z_rate=np.zeros(K), gen_a=none_i.copy(), gen_p=none_i.copy(), gen_q=none_i.copy(),
                 gen_val=np.zeros(0), group="glk")


def fiber_of(config_fiber) -> Fiber:
    """The fiber a scenario's ``fiber`` section (``group``, ``spins``, ``dim``) describes."""
    if getattr(config_fiber, "group", "so3") == "glk":
        return make_glk_fiber(config_fiber.dim)
    return make_fiber(config_fiber.spins)
