"""The linearised spectrum: the slowest modes of the run's own update map near a fixed point
(docs/model.md#linearised-spectrum).

Near a fixed point x* the deterministic step is ``x_{t+1} - x* ~ (I - J)(x_t - x*)`` with ``J = P H``: ``P`` the
step's preconditioner (plain: ``lr`` per field; natural: the Fisher-Rao preconditioner of mu and Sigma at the
state, ``lr_phi`` for phi) and ``H`` the Hessian of the action in the coordinates the step moves. ``J`` is similar
to the symmetric ``A = P^1/2 H P^1/2``, which is what is diagonalised here, in the coordinates
``z = P^-1/2 (x - x*)``: a mode's squared norm in ``z`` is its norm in the P-metric, so the field shares and agent
participations below are fractions of that norm.

* Coordinates: mu per row; Sigma as a symmetric matrix, packed with the Frobenius-orthonormal basis of Sym(K)
  (diagonal entries, off-diagonal entries times sqrt 2), the metric in which ``G`` (``dE = tr(G dSigma)``) is the
  gradient; phi per row. A field whose step size is 0 is frozen and left out.
* ``A z`` is a central difference of the exact gradient (:func:`~gauge_vfe.agents.model.energy.evaluate`) along
  ``P^1/2 z``, in float64: no Hessian is formed except on the dense path (tiny systems, and the tests).
* Gauge: the frame rotation ``R_i(c) -> R_i(c) g`` moves phi only, along ``J_r(phi)^-1 xi``. Prior and observation
  read beliefs in each agent's own frame and the alignment only ``Omega_ij = R_i R_j^T`` at one site, so it is an
  exact symmetry for every site separately while curvature and smoothness are off; they read phi itself, and then
  only a rotation shared by the sites their edges link is one, and only where the frames do not vary along those
  edges. The exact directions are projected out of ``A``; the global rotation's rates are reported as gauge rows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from ..model.energy import evaluate
from ..model.layout import Layout
from ..model.params import DynamicsParams, EnergyParams
from ..model.state import State
from .measures import frame_matrices

FIELDS = ("mu", "sigma", "phi")
DENSE_MAX = 200  # below this many free coordinates the dense path is exact and cheap (n HVPs)
FD_STEP = 1e-5  # the central difference's step, relative to the state's scale (see _Map.hvp)
ENERGY_SCALE = 1e-6  # nats: the excursion along the slowest mode the fixed-point check compares with
DPHI_FLAT = 1e-9  # rad: frame differences below this count as constant for the gauge test
ZERO_RATE = 1e-7  # rates within this fraction of the largest one found are zero modes (flat directions)


class SpectrumWarning(RuntimeWarning):
    """The state is not close enough to a fixed point for its linear spectrum to describe relaxation."""


class SpectrumError(ValueError):
    """The spectrum cannot be computed for this state or these parameters (nothing free, too few coordinates)."""


@dataclass(frozen=True, eq=False)
class Modes:
    """The eigenvectors behind a spectrum table (``df.attrs["modes"]``), in the z coordinates.

    ``vectors`` is (n, rows of the table), unit columns in the table's order; ``gauge`` (n, m, scipy sparse) an
    orthonormal basis of the projected gauge directions (m may be 0); ``fields`` the free fields and ``slices``
    their blocks of z; ``row`` the agent-site of every coordinate."""

    vectors: np.ndarray
    gauge: np.ndarray
    fields: tuple
    slices: dict
    row: np.ndarray


def sym_pack(m: np.ndarray) -> np.ndarray:
    """(..., K, K) symmetric -> (..., K(K+1)/2) Frobenius-orthonormal coordinates: <A, B>_F = pack(A) . pack(B)."""
    K = m.shape[-1]
    iu = np.triu_indices(K)
    w = np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0))
    return m[..., iu[0], iu[1]] * w


def sym_unpack(v: np.ndarray, K: int) -> np.ndarray:
    """The inverse of :func:`sym_pack`."""
    iu = np.triu_indices(K)
    w = np.where(iu[0] == iu[1], 1.0, math.sqrt(2.0))
    out = np.zeros(v.shape[:-1] + (K, K))
    out[..., iu[0], iu[1]] = v / w
    out[..., iu[1], iu[0]] = v / w
    return out


def _sqrtm_spd(s: np.ndarray) -> np.ndarray:
    lam, U = np.linalg.eigh(s)
    return np.einsum("sij,sj,skj->sik", U, np.sqrt(lam), U)


def right_jacobian_inverse(phi: np.ndarray) -> np.ndarray:
    """(S, 3, 3) ``J_r(phi)^-1``: ``d/dt log(exp(phi) exp(t xi))`` at t = 0 is ``J_r(phi)^-1 xi`` for every phi
    (not wrapped), with ``J_r(phi) = J_l(-phi)`` (docs/model.md#transport)."""
    t = np.linalg.norm(phi, axis=1)
    small = t < 1e-4
    ts = np.where(small, 1.0, t)
    c1 = np.where(small, 0.5 - t**2 / 24.0, (1.0 - np.cos(ts)) / ts**2)
    c2 = np.where(small, 1.0 / 6.0 - t**2 / 120.0, (ts - np.sin(ts)) / ts**3)
    P = np.zeros((phi.shape[0], 3, 3))
    P[:, 0, 1], P[:, 0, 2], P[:, 1, 2] = -phi[:, 2], phi[:, 1], -phi[:, 0]
    P[:, 1, 0], P[:, 2, 0], P[:, 2, 1] = phi[:, 2], -phi[:, 1], phi[:, 0]
    jr = np.eye(3) - c1[:, None, None] * P + c2[:, None, None] * (P @ P)
    return np.linalg.inv(jr)


class _Map:
    """The symmetric operator A = P^1/2 H P^1/2 of one state, in z coordinates, and the maps between z and the
    fields."""

    def __init__(self, layout: Layout, params: EnergyParams, dyn: DynamicsParams, state: State,
                 fd_step: float = FD_STEP):
        self.layout, self.params, self.dyn = layout, params, dyn
        self.state = state.astype(np.float64)
        S, K = layout.n_rows, layout.K
        self.S, self.K = S, K
        natural = dyn.method == "natural"
        lr = {"mu": float(dyn.lr_mu), "sigma": float(dyn.lr_sigma), "phi": float(dyn.lr_phi)}
        self.fields = tuple(f for f in FIELDS if lr[f] > 0)
        if not self.fields:
            raise SpectrumError("every step size (lr_mu, lr_sigma, lr_phi) is 0: nothing moves, there is no spectrum")
        width = {"mu": K, "sigma": K * (K + 1) // 2, "phi": 3}
        self.slices, start, rows = {}, 0, []
        for f in self.fields:
            self.slices[f] = slice(start, start + S * width[f])
            start += S * width[f]
            rows.append(np.repeat(np.arange(S), width[f]))
        self.n = start
        self.row = np.concatenate(rows)
        self.lr, self.natural = lr, natural
        root = _sqrtm_spd(self.state.sigma) if natural and ("mu" in self.fields or "sigma" in self.fields) else None
        self.root = root  # Sigma^1/2 per row: the natural preconditioner's square root
        lam_min = float(np.linalg.eigvalsh(self.state.sigma).min()) if S else 1.0
        # the difference step: small against every field's scale (Sigma's smallest eigenvalue, a radian), so the
        # perturbed Sigma stays SPD and the truncation error O(h^2) stays ~1e-10 relative
        self.h = fd_step * min(1.0, lam_min)
        self.evaluations = 0

    # --- z <-> fields ---------------------------------------------------------------------------------------
    def fields_of(self, z: np.ndarray):
        """P^1/2 z as field arrays (dmu (S, K), dSigma (S, K, K), dphi (S, 3)); frozen fields are 0."""
        S, K = self.S, self.K
        dmu, dsig, dphi = np.zeros((S, K)), np.zeros((S, K, K)), np.zeros((S, 3))
        if "mu" in self.fields:
            v = z[self.slices["mu"]].reshape(S, K) * math.sqrt(self.lr["mu"])
            dmu = np.einsum("sij,sj->si", self.root, v) if self.natural else v
        if "sigma" in self.fields:
            m = sym_unpack(z[self.slices["sigma"]].reshape(S, -1), K)
            if self.natural:
                dsig = math.sqrt(2.0 * self.lr["sigma"]) * (self.root @ m @ self.root)
            else:
                dsig = math.sqrt(self.lr["sigma"]) * m
        if "phi" in self.fields:
            dphi = z[self.slices["phi"]].reshape(S, 3) * math.sqrt(self.lr["phi"])
        return dmu, dsig, dphi

    def z_of_gradient(self, g_mu, g_sigma, g_phi) -> np.ndarray:
        """P^1/2 applied to a gradient (dE/dmu, G, dE/dphi), packed in z (P^1/2 is self-adjoint)."""
        out = np.empty(self.n)
        if "mu" in self.fields:
            v = np.einsum("sij,sj->si", self.root, g_mu) if self.natural else g_mu
            out[self.slices["mu"]] = (math.sqrt(self.lr["mu"]) * v).ravel()
        if "sigma" in self.fields:
            if self.natural:
                m = math.sqrt(2.0 * self.lr["sigma"]) * (self.root @ g_sigma @ self.root)
            else:
                m = math.sqrt(self.lr["sigma"]) * g_sigma
            out[self.slices["sigma"]] = sym_pack(0.5 * (m + np.swapaxes(m, 1, 2))).ravel()
        if "phi" in self.fields:
            out[self.slices["phi"]] = (math.sqrt(self.lr["phi"]) * g_phi).ravel()
        return out

    def _gradient(self, mu, sigma, phi):
        ev = evaluate(self.layout, self.params, State(mu, sigma, phi, self.state.step), want_grad=True)
        self.evaluations += 1
        if ev.status.any():
            raise SpectrumError("Sigma left the SPD cone in a finite-difference step: the state is too close to "
                                "its edge for a Hessian (lower the difference step)")
        return ev.grad_mu.astype(np.float64), ev.grad_sigma.astype(np.float64), ev.grad_phi.astype(np.float64)

    def gradient_z(self) -> np.ndarray:
        """P^1/2 g at the state: minus the step the map takes from it, in z."""
        s = self.state
        return self.z_of_gradient(*self._gradient(s.mu, s.sigma, s.phi))

    def apply(self, z: np.ndarray) -> np.ndarray:
        """A z by a central difference of the exact gradient along P^1/2 z (two evaluations)."""
        z = np.asarray(z, dtype=np.float64).ravel()
        norm = float(np.abs(z).max())
        if norm == 0.0:
            return np.zeros(self.n)
        dmu, dsig, dphi = self.fields_of(z / norm)
        scale = max(float(np.abs(dmu).max()), float(np.abs(dsig).max()), float(np.abs(dphi).max()))
        h = self.h / scale  # the largest entry of the perturbation is self.h
        s = self.state
        gp = self._gradient(s.mu + h * dmu, s.sigma + h * dsig, s.phi + h * dphi)
        gm = self._gradient(s.mu - h * dmu, s.sigma - h * dsig, s.phi - h * dphi)
        dg = [(a - b) / (2.0 * h) for a, b in zip(gp, gm)]
        return self.z_of_gradient(*dg) * norm

    def dense(self) -> np.ndarray:
        """A as a dense symmetric matrix (n HVPs): only for small systems and the tests."""
        cols = np.stack([self.apply(e) for e in np.eye(self.n)], axis=1)
        return 0.5 * (cols + cols.T)


def mode_displacement(layout: Layout, params: EnergyParams, dyn: DynamicsParams, state: State, z: np.ndarray):
    """``P^1/2 z`` as field arrays ``(dmu, dSigma, dphi)``: the state displacement of a combination ``z`` of the
    modes of a spectrum table (``df.attrs["modes"].vectors @ coefficients``), frozen fields 0 (used by
    ``gv.relax`` to displace copies along chosen modes)."""
    return _Map(layout, params, dyn, state).fields_of(np.asarray(z, dtype=np.float64))


# --- gauge directions ------------------------------------------------------------------------------------------
@dataclass
class GaugeInfo:
    """What was found of the frame-rotation symmetry (``df.attrs["gauge"]``)."""

    exact: bool
    reason: str
    dim: int = 0  # directions projected out of the operator
    rates: list = field(default_factory=list)  # the global rotation's rates (eigenvalues of A on its 3 directions)
    residual: float = float("nan")  # max |A q| over the global rotation's unit directions
    gradient: float = float("nan")  # |Q^T P^1/2 g|: the gradient along the gauge directions (0 by symmetry)

    def as_dict(self) -> dict:
        return {"exact": self.exact, "reason": self.reason, "dim": self.dim, "rates": list(self.rates),
                "residual": self.residual, "gradient": self.gradient}


def _site_groups(layout: Layout, coupled: bool) -> np.ndarray:
    """A group label per row: the rows a common frame rotation must move together. Alone, each site (the
    alignment reads only frames at one site); with curvature or smoothness, the sites the agents' edges link."""
    site = layout.index
    if not coupled:
        return np.unique(site, return_inverse=True)[1]
    n = layout.grid.n_sites
    src, dst = [], []
    for nb in (layout.fwd_x, layout.fwd_y):
        ok = nb >= 0
        src.append(site[ok])
        dst.append(site[nb[ok]])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = sp.coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    return np.unique(label[site], return_inverse=True)[1]


def gauge_directions(mp: _Map) -> tuple[sp.csr_matrix, np.ndarray, GaugeInfo]:
    """``(Q, Qg, info)``: an orthonormal basis (n, m) of the exact gauge directions in z (sparse; m = 0 when there
    is none), the global rotation's three unit directions (n, 3) (or (n, 0) when phi is frozen) and what was
    found."""
    layout, p = mp.layout, mp.params
    empty = sp.csr_matrix((mp.n, 0))
    if "phi" not in mp.fields:
        return empty, np.zeros((mp.n, 0)), GaugeInfo(False, "phi is frozen (lr_phi = 0): a frame rotation is no "
                                                     "motion of the map")
    S = mp.S
    coupled = p.lambda_curv > 0 or p.lambda_smooth > 0
    tangent = right_jacobian_inverse(mp.state.phi)  # (S, 3, 3): column a is the row's phi motion for xi = e_a
    exact, reason = True, "each site's frames rotate freely together (curvature and smoothness off)"
    if coupled:
        phi = mp.state.phi
        diffs = [phi[nb[nb >= 0]] - phi[nb >= 0] for nb in (layout.fwd_x, layout.fwd_y)]
        dmax = max((float(np.abs(d).max()) if d.size else 0.0) for d in diffs)
        exact = dmax <= DPHI_FLAT
        reason = ("the frames are constant along every edge, so a rotation shared by linked sites keeps curvature "
                  "and smoothness" if exact else
                  f"curvature/smoothness read phi itself and the frames vary along edges (|D phi| up to {dmax:.3g} "
                  "rad): a global frame rotation is no exact symmetry here")
    off = mp.slices["phi"].start
    col_rows = np.arange(S)
    # global rotation: every row moves (columns e_1, e_2, e_3), orthonormalised in z (P^1/2 on phi is a scalar)
    glob = np.zeros((mp.n, 3))
    for a in range(3):
        glob[off + 3 * col_rows[:, None] + np.arange(3), a] = tangent[:, :, a]
    Qg = np.linalg.qr(glob)[0]
    if not exact:
        return empty, Qg, GaugeInfo(False, reason)
    group = _site_groups(layout, coupled)
    n_groups = int(group.max()) + 1 if S else 0
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    data, ri, ci = [], [], []
    # a group's three directions touch only its rows: one small QR per group, batched over groups of one size
    for size in np.unique(sizes):
        gids = np.nonzero(sizes == size)[0]
        rows = order[starts[gids][:, None] + np.arange(size)]  # (G, size)
        block = tangent[rows].reshape(gids.size, 3 * size, 3)  # entry (g, (r, b), a) = tangent[r, b, a]
        q = np.linalg.qr(block)[0]  # (G, 3 size, 3)
        idx = (off + 3 * rows[:, :, None] + np.arange(3)).reshape(gids.size, 3 * size)
        data.append(q.ravel())
        ri.append(np.repeat(idx, 3, axis=1).ravel())  # q's entries run (g, (r, b), a)
        ci.append(np.broadcast_to((3 * gids[:, None, None] + np.arange(3)), (gids.size, 3 * size, 3)).ravel())
    Q = sp.csr_matrix((np.concatenate(data), (np.concatenate(ri), np.concatenate(ci))), shape=(mp.n, 3 * n_groups))
    return Q, Qg, GaugeInfo(True, reason, dim=3 * n_groups)


# --- the spectrum ---------------------------------------------------------------------------------------------
def _eigen(mp: _Map, Q: sp.csr_matrix, k: int, method: str, tol: float, seed: int, ncv: int | None = None):
    """The k smallest eigenpairs of A on the complement of Q's columns: ``(rates, vectors (n, k), method)``."""
    n, m = mp.n, Q.shape[1]
    free = n - m
    if free <= 0:
        raise SpectrumError(f"all {n} free coordinates are gauge directions: no physical mode")
    if method == "auto":
        method = "dense" if n <= DENSE_MAX or k >= free - 1 else "lanczos"
    if method == "dense":
        A = mp.dense()
        if m:
            Qd = Q.toarray()
            N = scipy.linalg.null_space(Qd.T)  # an orthonormal basis of the physical complement
            lam, w = np.linalg.eigh(N.T @ A @ N)
            vec = N @ w
        else:
            lam, vec = np.linalg.eigh(A)
        k = min(k, lam.size)
        return lam[:k], vec[:, :k], "dense"
    if method != "lanczos":
        raise ValueError(f"method must be 'auto', 'lanczos' or 'dense', got {method!r}")
    if k >= free - 1:
        raise SpectrumError(f"k = {k} needs fewer than {free - 1} physical coordinates for Lanczos; use the dense "
                            "method")
    QT = Q.T.tocsr()

    def project(z):
        return z - Q @ (QT @ z) if m else z

    def phys(z):
        return project(mp.apply(project(z)))

    rng = np.random.default_rng(seed)
    v0 = project(rng.standard_normal(n))
    op = LinearOperator((n, n), matvec=phys, dtype=np.float64)
    shift = 0.0
    if m:
        # the gauge directions are pushed above the top of the physical spectrum, so 'SA' skips them
        top = float(eigsh(op, k=1, which="LA", tol=1e-2, v0=v0, return_eigenvectors=False)[0])
        shift = 2.0 * abs(top) + 1.0

        def shifted(z):
            return phys(z) + shift * (Q @ (QT @ z))

        op = LinearOperator((n, n), matvec=shifted, dtype=np.float64)
    try:
        lam, vec = eigsh(op, k=k, which="SA", tol=tol, v0=v0,
                         ncv=None if ncv is None else int(min(free - 1, max(ncv, 2 * k + 1))))
    except ArpackNoConvergence as exc:
        raise SpectrumError(f"Lanczos found {len(exc.eigenvalues)} of {k} modes to tol = {tol:g} within ARPACK's "
                            "iterations: raise tol, lower k, or use method='dense' on a small system") from None
    order = np.argsort(lam)
    return lam[order], vec[:, order], "lanczos"


def _group_shares(mp: _Map, vectors: np.ndarray, groups) -> dict[str, np.ndarray]:
    """Per group g, the fraction of each mode's mu-motion over g's rows that is collective: the members at a site
    moving together, i.e. the mean of their displacements in the common frame (R^T dmu), against the rest (the
    relative subspace). NaN where the mode does not move g's mu (or mu is frozen)."""
    out = {}
    if not groups:
        return out
    layout = mp.layout
    cols = vectors.shape[1]
    if "mu" not in mp.fields:
        return {f"collective_{g}": np.full(cols, np.nan) for g in range(len(groups))}
    R = frame_matrices(layout, mp.state)
    disp = np.stack([np.einsum("sji,sj->si", R, mp.fields_of(vectors[:, c])[0]) for c in range(cols)])  # (c, S, K)
    for g, members in enumerate(groups):
        rows = np.nonzero(np.isin(layout.agent, np.asarray(list(members), dtype=np.int64)))[0]
        share = np.full(cols, np.nan)
        if rows.size:
            site = np.unique(layout.index[rows], return_inverse=True)[1]
            counts = np.bincount(site)
            d = disp[:, rows, :]  # (c, r, K)
            sums = np.zeros((cols, counts.size, mp.K))
            np.add.at(sums, (slice(None), site), d)
            collective = np.sum(sums**2 / counts[None, :, None], axis=(1, 2))  # n_c |mean|^2 summed over sites
            total = np.sum(d**2, axis=(1, 2))
            ok = total > 1e-300
            share[ok] = collective[ok] / total[ok]
        out[f"collective_{g}"] = share
    return out


def tau_steps(rate) -> np.ndarray:
    """``-1 / ln|1 - rate|``: the e-folding time in steps of a mode of the map (inf at rate 0; negative when the
    mode grows, |1 - rate| > 1)."""
    rate = np.asarray(rate, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -1.0 / np.log(np.abs(1.0 - rate))


def spectrum(layout: Layout, params: EnergyParams, dyn_params: DynamicsParams, state: State, *, k: int = 8,
             groups=None, bits_per_step: float | None = None, method: str = "auto", tol: float = 1e-10,
             fd_step: float = FD_STEP, energy_scale: float = ENERGY_SCALE, seed: int = 0,
             ncv: int | None = None) -> pd.DataFrame:
    """The ``k`` slowest physical modes of the linearised update map at ``state``, and its gauge modes.

    One row per mode: the gauge rows first (``gauge`` True: the global frame rotation's three directions, when it
    is an exact symmetry), then the physical modes by increasing ``rate`` (the eigenvalue of ``J = P H``).
    Columns: ``rate``, ``tau_steps`` (``-1/ln|1 - rate|``), ``tau_bits`` (``tau_steps * bits_per_step``, NaN
    without it), ``gauge``, ``share_mu``/``share_sigma``/``share_phi`` (the mode's squared P-metric norm per field),
    ``participation`` (per agent, the same, a list summing to 1), ``offset`` (the linear estimate of the state's
    displacement from the fixed point along the mode, ``u . P^1/2 g / rate``, in z units), and per group of
    ``groups`` (lists of agent indices, e.g. meta-agents' base members) ``collective_<g>``.

    ``df.attrs``: ``modes`` (:class:`Modes`), ``gauge`` (the symmetry's report), ``fixed_point`` (how far the state
    is from one; a :class:`SpectrumWarning` when it still moves on the slowest modes' scale), ``method``,
    ``evaluations`` (energy-and-gradient calls), ``fd_step``. ``method``: ``dense`` (n HVPs and a dense
    eigensolver), ``lanczos`` (``eigsh`` on a LinearOperator) or ``auto`` (dense up to 200 coordinates).
    ``ncv``: the Lanczos basis size (ARPACK's default ``max(2k + 1, 20)``). Lanczos for the smallest rates
    converges slowly when they are many and close together, as on a large grid (one collective mode per shared
    site): on the 32x32 ``seed_timescales`` state (24,480 coordinates) k = 4 had not converged after 9 minutes,
    neither with the default basis at ``tol=1e-5`` nor with ``ncv=80`` at ``tol=1e-4`` (a shared, loaded machine);
    the dense method on a smaller grid is the measured alternative (docs/results/seed_protocol/).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    mp = _Map(layout, params, dyn_params, state, fd_step)
    Q, Qg, info = gauge_directions(mp)
    rates, vectors, used = _eigen(mp, Q, k, method, tol, seed, ncv)

    gauge_rates = np.zeros(0)
    gauge_vectors = np.zeros((mp.n, 0))
    if Qg.shape[1]:
        AQ = np.stack([mp.apply(Qg[:, a]) for a in range(Qg.shape[1])], axis=1)
        B = Qg.T @ AQ
        gl, gw = np.linalg.eigh(0.5 * (B + B.T))
        info.rates = [float(r) for r in gl]
        info.residual = float(np.linalg.norm(AQ, axis=0).max())
        if info.exact:
            gauge_rates, gauge_vectors = gl, Qg @ gw

    gz = mp.gradient_z()
    if Q.shape[1]:
        info.gradient = float(np.linalg.norm(Q.T @ gz))
    all_rates = np.concatenate([gauge_rates, rates])
    all_vec = np.concatenate([gauge_vectors, vectors], axis=1)
    all_vec = all_vec / np.linalg.norm(all_vec, axis=0)
    is_gauge = np.r_[np.ones(gauge_rates.size, bool), np.zeros(rates.size, bool)]

    sq = all_vec**2
    shares = {f"share_{f}": (sq[mp.slices[f]].sum(axis=0) if f in mp.fields else np.zeros(sq.shape[1]))
              for f in FIELDS}
    agent_of = mp.layout.agent[mp.row]
    part = np.stack([np.bincount(agent_of, sq[:, c], mp.layout.n_agents) for c in range(sq.shape[1])])
    proj = all_vec.T @ gz
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(is_gauge | (np.abs(all_rates) <= _zero_rate(rates)), np.nan, proj / all_rates)
    taus = tau_steps(all_rates)
    bps = float("nan") if bits_per_step is None else float(bits_per_step)
    df = pd.DataFrame({
        "rate": all_rates, "tau_steps": taus, "tau_bits": taus * bps, "gauge": is_gauge, **shares,
        "participation": [list(map(float, p)) for p in part], "offset": offset,
        **_group_shares(mp, all_vec, groups),
    })
    df.index.name = "mode"

    physical = ~is_gauge
    fixed = _fixed_point(gz, proj[physical], all_rates[physical], Q, energy_scale)
    df.attrs.update({"modes": Modes(all_vec, Q, mp.fields, dict(mp.slices), mp.row),
                     "gauge": info.as_dict(), "fixed_point": fixed, "method": used,
                     "evaluations": mp.evaluations, "fd_step": mp.h, "n_coordinates": mp.n})
    if fixed["moving"]:
        warnings.warn(fixed["message"], SpectrumWarning, stacklevel=2)
    return df


def _zero_rate(rates: np.ndarray) -> float:
    """Rates within this of 0 are zero modes (flat directions) to the difference error: 1e-7 of the largest rate
    found (the error is ~1e-10 of the largest rate of A, which the returned ones do not exceed by much)."""
    return ZERO_RATE * float(np.abs(rates).max()) if rates.size else 0.0


def _fixed_point(gz, proj, rates, Q, energy_scale) -> dict:
    """How far the state is from a fixed point. ``grad_norm`` = |P^1/2 g|, the step the map takes (z units);
    ``amplitude`` = the excursion along the slowest mode of positive rate that holds ``energy_scale`` nats,
    sqrt(2 eps / rate); the state is ``moving`` when its step along the returned modes (zero modes aside) exceeds
    what that excursion would give, ``rate * amplitude = sqrt(2 eps rate)``: then it is displaced along a slow
    mode by more than the amplitude; or when a mode has a negative rate (a saddle, or far from a minimum)."""
    phys = gz - Q @ (Q.T @ gz) if Q.shape[1] else gz
    grad = float(np.linalg.norm(phys))
    zero = _zero_rate(rates)
    flat = np.abs(rates) <= zero
    positive = rates[rates > zero]
    slow = float(positive[0]) if positive.size else float("nan")
    slow_step = float(np.linalg.norm(proj[~flat]))
    out = {"grad_norm": grad, "slow_grad_norm": slow_step, "slowest_rate": slow, "zero_modes": int(flat.sum()),
           "energy_scale": energy_scale, "amplitude": float("nan"), "ratio": float("nan"), "moving": False,
           "message": ""}
    if (rates < -zero).any() or not positive.size:
        lowest = float(rates[0]) if rates.size else float("nan")
        out["message"] = (f"not at a fixed point, or at a saddle: the slowest physical rate is {lowest:.3g} (a mode "
                          f"that grows) and the state moves {grad:.3g} per step: its spectrum is the local curvature, "
                          "not a relaxation")
        out["moving"] = True
        return out
    amp = math.sqrt(2.0 * energy_scale / slow)
    ref = slow * amp
    ratio = slow_step / ref
    out.update(amplitude=amp, ratio=ratio, moving=bool(ratio > 1.0))
    if out["moving"]:
        out["message"] = (f"not at a fixed point: the state still moves {slow_step:.3g} per step along the slowest "
                          f"modes, more than {ref:.3g} (slowest rate {slow:.3g} x the amplitude of a "
                          f"{energy_scale:g}-nat excursion): its spectrum is the local curvature, not a relaxation")
    return out


# --- reporting (``vfe spectrum``) -----------------------------------------------------------------------------
def _finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def spectrum_record(df: pd.DataFrame) -> dict:
    """The table and its report as strict-JSON values (NaN and inf as null)."""
    rows = []
    for _, r in df.iterrows():
        rec = {c: (bool(v) if c == "gauge" else [_finite_or_none(p) for p in v] if c == "participation"
                   else _finite_or_none(v)) for c, v in r.items()}
        rows.append(rec)
    fixed = {k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in df.attrs["fixed_point"].items()}
    gauge = {k: ([_finite_or_none(x) for x in v] if isinstance(v, list) else
                 _finite_or_none(v) if isinstance(v, float) else v) for k, v in df.attrs["gauge"].items()}
    return {"step": df.attrs.get("step"), "method": df.attrs["method"], "evaluations": df.attrs["evaluations"],
            "n_coordinates": df.attrs["n_coordinates"], "modes": rows, "gauge": gauge, "fixed_point": fixed,
            "groups": df.attrs.get("groups", []), "notes": df.attrs.get("notes", [])}


def spectrum_lines(df: pd.DataFrame) -> list[str]:
    """The table as text: one line per mode, then the gauge and fixed-point reports."""
    groups = [c for c in df.columns if c.startswith("collective_")]
    head = (f"{'mode':>4} {'rate':>11} {'tau_steps':>11} {'tau_bits':>10} {'gauge':>5} {'mu':>5} {'sigma':>5} "
            f"{'phi':>5} {'top agent':>12}" + "".join(f" {c:>13}" for c in groups))
    lines = [head]
    for i, r in df.iterrows():
        part = np.asarray(r["participation"])
        top = int(np.argmax(part)) if part.size else -1
        line = (f"{i:>4} {r['rate']:>11.4g} {r['tau_steps']:>11.4g} {r['tau_bits']:>10.4g} "
                f"{'yes' if r['gauge'] else '':>5} {r['share_mu']:>5.2f} {r['share_sigma']:>5.2f} "
                f"{r['share_phi']:>5.2f} {f'{top} ({part[top]:.2f})' if top >= 0 else '-':>12}"
                + "".join(f" {r[c]:>13.3f}" for c in groups))
        lines.append(line)
    g, fp = df.attrs["gauge"], df.attrs["fixed_point"]
    if g["exact"]:
        rates = ", ".join(f"{x:.2g}" for x in g["rates"])
        lines.append(f"gauge: {g['dim']} frame-rotation directions projected out ({g['reason']}); the global "
                     f"rotation's rates {rates}")
    else:
        lines.append(f"gauge: none projected: {g['reason']}")
    lines.append(f"fixed point: |P^1/2 grad| = {fp['grad_norm']:.3g} per step ({fp['slow_grad_norm']:.3g} along these "
                 f"modes) against slowest rate x amplitude = {fp['slowest_rate'] * fp['amplitude']:.3g} "
                 f"(ratio {fp['ratio']:.3g})")
    for note in df.attrs.get("notes", []):
        lines.append(f"note: {note}")
    return lines
