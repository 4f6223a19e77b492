"""Holonomy kernels (docs/model.md#holonomy): plaquette Wilson loops, composite loops across agents, and the
angle and axis of a rotation. Everything is measured on the l = 1 block, the rotation ``exp([phi]_x)`` itself.

Both kinds of loop multiply their steps' transports left to right in path order (docs/model.md#plaquette,
docs/model.md#loops): a grid step of one agent from row a to row b is the link
``U(a -> b) = exp(-[phi_b - phi_a]_x)``, a switch from agent a to agent b at one site is
``Omega_ab = R_a R_b^T``. With this rule switches telescope (``Omega_ab Omega_bc = Omega_ac``), a one-agent loop
around a plaquette is that plaquette's ``W``, and loops over frame fields without curvature are the identity.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .lie import rodrigues
from .linalg import matmul, matmul_nt


@njit(cache=True, inline="always")
def _rotation_angle_axis(w, axis):
    """Angle in [0, pi] of a rotation matrix (atan2 form: accurate near 0 and near pi) and its unit axis."""
    vx = 0.5 * (w[2, 1] - w[1, 2])
    vy = 0.5 * (w[0, 2] - w[2, 0])
    vz = 0.5 * (w[1, 0] - w[0, 1])
    s = np.sqrt(vx * vx + vy * vy + vz * vz)
    c = 0.5 * (w[0, 0] + w[1, 1] + w[2, 2] - 1.0)
    angle = np.arctan2(s, c)
    if s > 0.0:
        axis[0] = vx / s
        axis[1] = vy / s
        axis[2] = vz / s
    else:
        axis[0] = 0.0
        axis[1] = 0.0
        axis[2] = 0.0
    return angle


@njit(cache=True)
def rotation_angle_axis(w, axis):
    """Angle in [0, pi] of the 3x3 rotation ``w``, and its unit axis into ``axis`` (zeros at angle 0);
    docs/model.md#plaquette."""
    return _rotation_angle_axis(w, axis)


@njit(cache=True)
def link(phi, a, b, out, scratch):
    """``U(a -> b) = exp(-[phi(b) - phi(a)]_x)``, one agent's l = 1 link from row a to row b (``scratch``: (3,))."""
    for i in range(3):
        scratch[i] = -(phi[b, i] - phi[a, i])
    rodrigues(scratch, out)


@njit(cache=True)
def frame_switch(phi, a, b, ra, rb, out):
    """``Omega_ab = R_a R_b^T``: from agent a's frame (row a) to agent b's (row b) at one site, l = 1 block
    (docs/model.md#transport). ``ra``, ``rb`` (3, 3) are scratch."""
    rodrigues(phi[a], ra)
    rodrigues(phi[b], rb)
    matmul_nt(ra, rb, out)


@njit(cache=True, parallel=True)
def plaquette_holonomy(phi, fwd_x, fwd_y, angle, axis):
    """Wilson-loop angle and axis of the plaquette based at every row (NaN where a corner is missing):
    ``W = U(c->c+x) U(c+x->c+x+y) U(c+y->c+x+y)^T U(c->c+y)^T`` (docs/model.md#plaquette)."""
    n = phi.shape[0]
    for r in prange(n):
        ux = np.empty((3, 3))
        uy2 = np.empty((3, 3))
        ux2 = np.empty((3, 3))
        uy = np.empty((3, 3))
        t1 = np.empty((3, 3))
        t2 = np.empty((3, 3))
        v = np.empty(3)
        ax = np.empty(3)
        rx = fwd_x[r]
        ry = fwd_y[r]
        rxy = fwd_y[rx] if rx >= 0 else -1
        if rx < 0 or ry < 0 or rxy < 0 or fwd_x[ry] != rxy:
            angle[r] = np.nan
            for i in range(3):
                axis[r, i] = np.nan
            continue
        link(phi, r, rx, ux, v)
        link(phi, rx, rxy, uy2, v)
        link(phi, ry, rxy, ux2, v)
        link(phi, r, ry, uy, v)
        matmul(ux, uy2, t1)
        matmul_nt(t1, ux2, t2)  # walked backwards: transposed
        matmul_nt(t2, uy, t1)
        angle[r] = _rotation_angle_axis(t1, ax)
        for i in range(3):
            axis[r, i] = ax[i]


@njit(cache=True)
def path_holonomy(phi, rows, kinds, out):
    """Product of the transports along a path of rows, left to right in path order (docs/model.md#loops), l = 1.

    ``kinds[k]`` says how step k goes from ``rows[k]`` to ``rows[k+1]``: 0 = a grid link of one agent,
    ``U = exp(-[phi(b) - phi(a)]_x)``; 1 = a switch of agent at one site, ``Omega_ab = R_a R_b^T``.
    """
    total = np.eye(3)
    step = np.empty((3, 3))
    ra = np.empty((3, 3))
    rb = np.empty((3, 3))
    v = np.empty(3)
    tmp = np.empty((3, 3))
    for k in range(kinds.shape[0]):
        a = rows[k]
        b = rows[k + 1]
        if kinds[k] == 0:
            link(phi, a, b, step, v)
        else:
            frame_switch(phi, a, b, ra, rb, step)
        matmul(total, step, tmp)  # a later step multiplies on the right
        for i in range(3):
            for j in range(3):
                total[i, j] = tmp[i, j]
    for i in range(3):
        for j in range(3):
            out[i, j] = total[i, j]
