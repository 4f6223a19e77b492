"""GL(K) frames inside kernels (docs/model.md#glk-frames): a row's frame ``R = exp(phi)`` with ``phi`` a general
K x K matrix, stored row-major as the row's K^2 coordinates.

The site-local kernels work in a common frame (docs/model.md#gradient-common-frame) through one *frame
matrix* ``M`` per row: ``mt = M^T mu``, ``St = M^T Sigma M``, and back ``dE/dmu = M g~``, ``dE/dSigma =
M G~ M^T``. For SO(3) ``M = rho(exp phi)``; for GL(K) ``M = R^-T = exp(-phi^T)``, so that ``mt = R^-1 mu`` and
``St = R^-1 Sigma R^-T``: the transported divergence ``KL(q_i || Omega_ij q_j)``, ``Omega_ij = R_i R_j^-1``,
is ``KL`` of the two beliefs carried to the common frame by ``R^-1``, since a KL is invariant under any
invertible linear map applied to both Gaussians. ``ln det St = ln det Sigma - 2 tr phi`` (no longer
``ln det Sigma``): the site pass gives the prior, read in the row's own frame, ``ln det St + 2 tr phi``
(:func:`trace_of`).

The frame gradient: with ``G_M = dE/dM = mu g~^T + 2 Sigma M G~`` and ``M = exp(Y)``, ``Y = -phi^T``,
``dE/dY = L(Y^T, G_M)`` (the adjoint of exp's Frechet derivative at Y is the derivative at ``Y^T``), so
``dE/dphi = -L(-phi, G_M)^T``.

The frame-field terms on gl(K) (:func:`gauge_field_terms_glk`) use the norm ``|X|^2 = tr(X^T X) / 2``, under
which ``v -> [v]_x`` (spin 1) is an isometry: the connection ``A_mu = D_mu phi`` (forward differences, as for
SO(3)), ``F = [A_x, A_y]`` (the matrix commutator; for so(3) ``[[a]_x, [b]_x] = [a x b]_x``), so glk frames
restricted to so(3) give the SO(3) energies exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .chunking import ROWS_PER_CHUNK
from .expm import taylor_exp
from .lie import rho_exp


def glk_scratch_dim(K: int) -> int:
    """Side of the (3, n, n) scratch a GL(K) row needs: 4K, cut into 16 K x K areas a slice (:func:`_area`)."""
    return 4 * K


@njit(cache=True, inline="always")
def _area(rsc, b, K):
    """The b-th K x K area (0..47) of the (3, 4K, 4K) scratch ``rsc``."""
    r = (b % 16) // 4
    c = b % 4
    return rsc[b // 16, r * K:(r + 1) * K, c * K:(c + 1) * K]


@njit(cache=True)  # a call, not inlined: the SO(3) pass keeps its code as before
def glk_frame_matrix(phi_r, out, rsc):
    """``out = exp(-phi^T)`` (K x K), the GL(K) frame matrix M of a row; ``rsc`` (3, 4K, 4K) scratch."""
    K = out.shape[0]
    a = _area(rsc, 0, K)
    for i in range(K):
        for j in range(K):
            a[i, j] = -phi_r[j * K + i]
    x2 = _area(rsc, 1, K)
    x3 = _area(rsc, 2, K)
    x4 = _area(rsc, 3, K)
    t = _area(rsc, 4, K)
    taylor_exp(a, a, False, x2, x2, x3, x3, x4, x4, out, out, t, t)


@njit(cache=True, inline="always")
def frame_matrix(phi_r, glk, block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out, rsc):
    """The row's frame matrix M into ``out`` (see the module docstring): ``exp(-phi^T)`` for GL(K) frames
    (``glk``), else ``rho(exp phi)``; the fiber's arrays as :func:`~agents.kernels.lie.rho_exp` takes them."""
    if glk:
        glk_frame_matrix(phi_r, out, rsc)
    else:
        rho_exp(phi_r, block_start, block_dim, block_spin, rotate_z, z_partner, z_rate, out, rsc)


@njit(cache=True, inline="always")
def trace_of(phi_r, K):
    """tr phi of a GL(K) row."""
    t = 0.0
    for i in range(K):
        t += phi_r[i * K + i]
    return t


@njit(cache=True)  # a call, not inlined: the SO(3) pass keeps its code as before
def glk_phi_gradient(phi_r, mu_r, sigma_r, M, gt, Gt, rsc, g_phi_r):
    """``g_phi_r = dE/dphi = -L(-phi, G_M)^T`` with ``G_M = mu g~^T + 2 Sigma M G~`` (module docstring), from the
    alignment's common-frame gradients ``g~``, ``G~``. ``rsc`` (3, 4K, 4K) scratch (the first slice used)."""
    K = M.shape[0]
    a = _area(rsc, 0, K)
    e = _area(rsc, 1, K)
    ex = _area(rsc, 2, K)
    lf = _area(rsc, 3, K)
    sm = _area(rsc, 4, K)
    for i in range(K):
        for j in range(K):
            t = 0.0
            for l in range(K):
                t += np.float64(sigma_r[i, l]) * M[l, j]
            sm[i, j] = t
    for i in range(K):
        for j in range(K):
            t = 0.0
            for l in range(K):
                t += sm[i, l] * Gt[l, j]
            e[i, j] = np.float64(mu_r[i]) * gt[j] + 2.0 * t
            a[i, j] = -phi_r[i * K + j]
    taylor_exp(a, e, True, _area(rsc, 5, K), _area(rsc, 6, K), _area(rsc, 7, K), _area(rsc, 8, K), _area(rsc, 9, K),
               _area(rsc, 10, K), ex, lf, _area(rsc, 11, K), _area(rsc, 12, K))
    for i in range(K):
        for j in range(K):
            g_phi_r[i * K + j] = -lf[j, i]


# --- the frame-field terms on gl(K) ----------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _diff(phi, a, b, K, out):
    """out = phi(b) - phi(a) as a K x K matrix."""
    for i in range(K):
        for j in range(K):
            out[i, j] = phi[b, i * K + j] - phi[a, i * K + j]


@njit(cache=True, inline="always")
def _commutator(x, y, out):
    """out = x y - y x."""
    K = x.shape[0]
    for i in range(K):
        for j in range(K):
            t = 0.0
            for l in range(K):
                t += x[i, l] * y[l, j] - y[i, l] * x[l, j]
            out[i, j] = t


@njit(cache=True, inline="always")
def _commutator_t(x, y, out, sign):
    """out = sign * (x y^T - y^T x)."""
    K = x.shape[0]
    for i in range(K):
        for j in range(K):
            t = 0.0
            for l in range(K):
                t += x[i, l] * y[j, l] - y[l, i] * x[l, j]
            out[i, j] = sign * t


@njit(cache=True, inline="always")
def _plaquette_glk(phi, chi, fwd_x, fwd_y, base, K, dx, dy, f, gdx, gdy, want_x, want_y):
    """``w |F|^2 / 2`` of the plaquette at ``base`` (|.|^2 = tr(X^T X)/2) and, into ``gdx``, ``gdy`` (if
    ``want_x``, ``want_y``), its derivatives ``w [F, D_y^T] / 2`` and ``w [D_x^T, F] / 2`` in D_x, D_y; False if
    it is incomplete."""
    rx = fwd_x[base]
    ry = fwd_y[base]
    if rx < 0 or ry < 0:
        return False, 0.0
    w = chi[base] * chi[rx] * chi[ry]
    _diff(phi, base, rx, K, dx)
    _diff(phi, base, ry, K, dy)
    _commutator(dx, dy, f)
    s = 0.0
    for i in range(K):
        for j in range(K):
            s += f[i, j] * f[i, j]
    if want_x:
        _commutator_t(f, dy, gdx, 0.5 * w)  # [F, Dy^T]
    if want_y:
        _commutator_t(f, dx, gdy, -0.5 * w)  # [Dx^T, F] = -(F Dx^T - Dx^T F)
    return True, 0.25 * w * s


@njit(cache=True, parallel=True)
def gauge_field_terms_glk(phi, chi, fwd_x, fwd_y, bwd_x, bwd_y, lam_curv, lam_smooth, want_grad, e_curv, e_smooth,
                          g_phi):
    """:func:`~agents.kernels.gauge_field.gauge_field_terms` for GL(K) frames ``phi`` (S, K^2) (module
    docstring): ``E_curv = lambda_curv sum w |[D_x phi, D_y phi]|^2 / 2``, ``E_smooth = lambda_smooth sum_mu
    chi chi |D_mu phi|^2 / 2`` with ``|X|^2 = tr(X^T X) / 2``.

    Two passes over chunks of rows: the first computes each plaquette once (its density and its derivatives in
    D_x, D_y, kept per base row: a commutator costs K^3, not the 3 flops of so(3)'s cross product, so it is not
    recomputed for the plaquette's three corners); the second gathers every row's gradient from the plaquettes and
    edges it takes part in, writing only its own row."""
    n = phi.shape[0]
    K = int(np.sqrt(phi.shape[1]) + 0.5)
    n_chunks = (n + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    curv = lam_curv != 0.0
    dxs = np.zeros((n if want_grad and curv else 0, K, K))  # lambda_curv dE/dD_x, dE/dD_y of the plaquette at r
    dys = np.zeros((n if want_grad and curv else 0, K, K))
    for ch in prange(n_chunks):
        dx = np.empty((K, K))  # scratch, once per chunk of rows (see chunking.ROWS_PER_CHUNK)
        dy = np.empty((K, K))
        f = np.empty((K, K))
        gdx = np.empty((K, K))
        gdy = np.empty((K, K))
        for r in range(ch * ROWS_PER_CHUNK, min(n, (ch + 1) * ROWS_PER_CHUNK)):
            ec = 0.0
            if curv:
                done, e = _plaquette_glk(phi, chi, fwd_x, fwd_y, r, K, dx, dy, f, gdx, gdy, want_grad, want_grad)
                if done:
                    ec = lam_curv * e
                    if want_grad:
                        for i in range(K):
                            for j in range(K):
                                dxs[r, i, j] = lam_curv * gdx[i, j]
                                dys[r, i, j] = lam_curv * gdy[i, j]
            e_curv[r] = ec
            es = 0.0
            if lam_smooth != 0.0:
                for axis in range(2):
                    fw = fwd_x[r] if axis == 0 else fwd_y[r]
                    if fw >= 0:
                        w = chi[r] * chi[fw]
                        for q in range(K * K):
                            d = phi[fw, q] - phi[r, q]
                            es += 0.25 * lam_smooth * w * d * d
            e_smooth[r] = es
    if not want_grad:
        return
    for ch in prange(n_chunks):
        for r in range(ch * ROWS_PER_CHUNK, min(n, (ch + 1) * ROWS_PER_CHUNK)):
            for i in range(K):
                for j in range(K):
                    q = i * K + j
                    t = 0.0
                    if curv:
                        t -= dxs[r, i, j] + dys[r, i, j]  # r is the base c: D_x, D_y both start at r
                        b = bwd_x[r]  # r is c + x^ of the plaquette at b
                        if b >= 0:
                            t += dxs[b, i, j]
                        b = bwd_y[r]  # r is c + y^ of the plaquette at b
                        if b >= 0:
                            t += dys[b, i, j]
                    if lam_smooth != 0.0:
                        for axis in range(2):
                            fw = fwd_x[r] if axis == 0 else fwd_y[r]
                            if fw >= 0:
                                t -= 0.5 * lam_smooth * chi[r] * chi[fw] * (phi[fw, q] - phi[r, q])
                            bw = bwd_x[r] if axis == 0 else bwd_y[r]
                            if bw >= 0:
                                t += 0.5 * lam_smooth * chi[r] * chi[bw] * (phi[r, q] - phi[bw, q])
                    g_phi[r, q] += t
