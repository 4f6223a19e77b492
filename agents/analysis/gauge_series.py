"""Gauge-invariant series, time in bits per scale, meta-agent lifetimes (docs/model.md#invariant-series).

A global gauge transformation ``R_i -> R_i g`` (``phi_i -> log(exp(phi_i) exp(xi))`` on every row) leaves every
belief and prior in its own frame and every transport ``Omega_ij = R_i R_j^T`` unchanged; the common-frame
means ``R_i^T mu_i`` rotate by ``g^T``. With free, noisy frames the common-frame series therefore drifts along an
exact zero mode. The series here are built only from own-frame beliefs and transports, so they are invariant:

- agent ``i``: the ``chi_i``-weighted mean over its support of ``mu_i - m_i`` (belief relative to prior, own frame);
- collective mode of meta-agent ``M``: the same for its coarse-grained belief and fused prior (its frame is its
  reference member's, which rotates with the members);
- relative mode of base member ``a`` of ``M``: the ``chi_a``-weighted mean over ``a``'s support of
  ``Omega_aM mu_M - mu_a``, the collective belief transported into ``a``'s frame minus ``a``'s.

Also here: the bits per step of a meta-agent's coarse-grained belief (the KL between consecutive logged
coarse-grained beliefs, in its own frame as the information clock reads its members), Kaplan-Meier survival of
meta-agent ids, and the ``(replica, frame, feature)`` layout of a series.
"""

from __future__ import annotations

import numpy as np

from ..model.layout import Layout
from ..model.state import State
from .measures import frame_matrices
from .timescales import bits_per_step

LN2 = np.log(2.0)


def support_means(layout: Layout, values: np.ndarray) -> np.ndarray:
    """(N, ...) the ``chi``-weighted mean over each agent's rows of ``values`` (S, ...)."""
    starts = np.asarray(layout.offset[:-1], dtype=np.int64)
    chi = layout.chi.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.add.reduceat(chi * values, starts, axis=0) / np.add.reduceat(chi, starts, axis=0)


def prior_offsets(layout: Layout, state: State) -> np.ndarray:
    """(N, K): every agent's (or coarse-grained agent's) belief relative to its prior in its own frame, averaged
    over its support: gauge-invariant, and equal to the common-frame series minus a constant where frames are
    fixed and shared."""
    return support_means(layout, state.mu - layout.prior_mu)


def covariance_offsets(layout: Layout, state: State) -> np.ndarray:
    """(N, K(K+1)/2): every agent's (or coarse-grained agent's) covariance relative to its prior's in its own
    frame, averaged over its support, in the Frobenius-orthonormal packing of Sym(K) (the linearised spectrum's
    Sigma coordinates): gauge-invariant as :func:`prior_offsets` is, and the observable of the covariances' modes."""
    K = layout.K
    iu = np.triu_indices(K)
    w = np.where(iu[0] == iu[1], 1.0, np.sqrt(2.0))
    return support_means(layout, (state.sigma - layout.prior_sigma)[:, iu[0], iu[1]] * w)


def transported_offsets(layout: Layout, state: State, meta_layout: Layout, meta_state: State, k: int,
                        members, frames: np.ndarray | None = None,
                        meta_frames: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """For each base agent ``a`` in ``members``: the ``chi_a``-weighted mean over its support of
    ``Omega_aM mu_M - mu_a`` (``Omega_aM = R_a R_M^T``), ``M`` the coarse-grained agent ``k`` of ``meta_layout``,
    whose support is its members' union (less sites where every member's chi is below coarse-graining's
    1e-6 cut: those rows are left out, their weight is negligible). ``frames``, ``meta_frames``: the two layouts'
    frame matrices when the caller has them (one computation per frame, not per meta-agent)."""
    R = frame_matrices(layout, state) if frames is None else frames
    mrows = np.arange(meta_layout.offset[k], meta_layout.offset[k + 1])
    RM = (frame_matrices(meta_layout, meta_state) if meta_frames is None else meta_frames)[mrows]
    at_site = -np.ones(layout.grid.n_sites, dtype=np.int64)
    at_site[meta_layout.index[mrows]] = np.arange(mrows.size)
    out = {}
    for a in members:
        rows = np.arange(layout.offset[a], layout.offset[a + 1])
        p = at_site[layout.index[rows]]
        rows, p = rows[p >= 0], p[p >= 0]
        muM = np.einsum("sji,sj->si", RM[p], meta_state.mu[mrows][p])  # R_M^T mu_M
        d = np.einsum("sij,sj->si", R[rows], muM) - state.mu[rows]  # R_a R_M^T mu_M - mu_a
        w = layout.chi[rows]
        out[int(a)] = (w[:, None] * d).sum(axis=0) / w.sum()
    return out


def gaussian_kl(mu1, s1, mu0, s0) -> np.ndarray:
    """Per row ``KL(N(mu1, s1) || N(mu0, s0))`` in nats, (S,)."""
    K = mu1.shape[-1]
    L0 = np.linalg.cholesky(s0)
    d = (mu0 - mu1)[..., None]
    a = np.linalg.solve(L0, d)[..., 0]
    B = np.linalg.solve(L0, s1)
    tr = np.einsum("sij,sij->s", np.linalg.solve(L0.transpose(0, 2, 1), B), np.eye(K)[None])
    logdet0 = 2.0 * np.log(np.diagonal(L0, axis1=1, axis2=2)).sum(axis=1)
    logdet1 = np.linalg.slogdet(s1)[1]
    return 0.5 * (tr + (a * a).sum(axis=1) - K + logdet0 - logdet1)


def coarse_snapshot(meta_layout: Layout, meta_state: State, k: int) -> dict:
    """What the bits of a coarse-grained belief need from one frame: sites, chi, mu, Sigma of agent ``k``."""
    rows = meta_layout.rows_of(k)
    return {"sites": meta_layout.index[rows], "chi": meta_layout.chi[rows], "mu": meta_state.mu[rows],
            "sigma": meta_state.sigma[rows]}


def coarse_bits(cur: dict, prev: dict) -> float:
    """Bits of belief update of a coarse-grained belief between two logged frames: ``sum_c chi(c)
    KL(q_cur(c) || q_prev(c)) / ln 2`` over the sites present in both, ``chi`` of the later frame, both beliefs in
    the meta-agent's own frame (as the information clock reads an agent's)."""
    common, ic, ip = np.intersect1d(cur["sites"], prev["sites"], return_indices=True)
    if common.size == 0:
        return float("nan")
    kl = gaussian_kl(cur["mu"][ic], cur["sigma"][ic], prev["mu"][ip], prev["sigma"][ip])
    return float((cur["chi"][ic] * kl).sum() / LN2)


BITS_SCALE_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("n_intervals", "i8"), ("steps", "i8"),
                             ("meta_bits_per_step", "f8"), ("member_bits_per_step", "f8"), ("ratio", "f8")])


def bits_per_scale(intervals: dict, info_bits) -> np.ndarray:
    """Per meta-agent (``intervals``: id -> {"scale", "rows": [(t0, t1, bits, members)]}, one row per pair of
    consecutive analysed frames in which the id exists): its coarse-grained belief's bits per step
    ``sum bits / sum (t1 - t0)``, its members' bits per step over the same intervals from the information clock
    (per interval the mean over its base members at ``t1``), and their ratio ``member / meta``: how many bits
    a member updates while the meta-agent updates one (NaN without ``info_bits``)."""
    out = []
    for mid in sorted(intervals):
        entry = intervals[mid]
        rows = entry["rows"]
        n_steps = sum(t1 - t0 for t0, t1, _, _ in rows)
        meta = sum(b for _, _, b, _ in rows) / n_steps if n_steps else float("nan")
        members = (sum(bits_per_step(info_bits, m, t0, t1) * (t1 - t0) for t0, t1, _, m in rows) / n_steps
                   if n_steps else float("nan"))
        ratio = members / meta if (np.isfinite(members) and np.isfinite(meta) and meta > 0) else float("nan")
        out.append((mid, entry["scale"], len(rows), n_steps, meta, members, ratio))
    return np.array(out, dtype=BITS_SCALE_DTYPE)


ROUNDING_BITS = 1e-9  # a coarse-grained belief whose bits over all its intervals stay below this did not move


def bits_reason(row) -> str | None:
    """Why a ``bits_per_scale`` row has no ratio (None: it has one): never in two consecutive analysed frames; a
    coarse-grained belief that did not change beyond rounding (its bits sum to under :data:`ROUNDING_BITS`); no
    information clock over its intervals (``/observables/info_bits`` absent or not logged every step)."""
    if int(row["n_intervals"]) == 0 or int(row["steps"]) <= 0:
        return "never in two consecutive analysed frames"
    meta = float(row["meta_bits_per_step"])
    if not np.isfinite(meta) or meta * int(row["steps"]) < ROUNDING_BITS:
        return "its coarse-grained belief did not change beyond rounding between logged frames"
    if not np.isfinite(float(row["member_bits_per_step"])):
        return "no information clock over its intervals (info_bits not logged every step)"
    return None


# --- lifetimes ----------------------------------------------------------------------------------------------------

KM_DTYPE = np.dtype([("time", "f8"), ("at_risk", "i8"), ("events", "i8"), ("survival", "f8")])


def kaplan_meier(durations, observed) -> np.ndarray:
    """The Kaplan-Meier survival curve of ``durations`` with ``observed`` False for censored ones (alive at the
    end): at each distinct event time ``t``, ``S(t) = prod_{t' <= t} (1 - d(t') / n(t'))``, ``n`` the number
    still at risk (duration >= t', censored ones included up to their time), ``d`` the events at ``t'``."""
    t = np.asarray(durations, dtype=float)
    e = np.asarray(observed, dtype=bool)
    rows, s = [], 1.0
    for u in np.unique(t[e]):
        n = int((t >= u).sum())
        d = int(((t == u) & e).sum())
        s *= 1.0 - d / n
        rows.append((u, n, d, s))
    return np.array(rows, dtype=KM_DTYPE)


def km_median(curve: np.ndarray) -> float:
    """The first time the survival reaches 0.5 or below (NaN: it never does, too much censoring)."""
    hit = curve["time"][curve["survival"] <= 0.5]
    return float(hit[0]) if hit.size else float("nan")


LIFETIME_STATS_DTYPE = np.dtype([("id", "i8"), ("scale", "i8"), ("birth", "i8"), ("end", "i8"),
                                 ("observed", "?"), ("steps", "i8"), ("member_bits", "f8")])


def lifetime_table(lifetimes: np.ndarray, last_step: int, members: dict, info_bits) -> np.ndarray:
    """Per meta-agent id: lifetime in steps from birth to its end (death, merge or split: the first logged frame
    without it), or to ``last_step`` when alive at the end (``observed`` False: censored); and in member bits,
    the mean over every base member it had (``members``: id -> agents) of their clock's increase over it."""
    out = []
    for r in lifetimes:
        observed = int(r["death"]) >= 0
        end = int(r["death"]) if observed else int(last_step)
        n = end - int(r["birth"])
        bits = bits_per_step(info_bits, members.get(int(r["id"]), []), int(r["birth"]), end) * n if n > 0 else 0.0
        out.append((r["id"], r["scale"], r["birth"], end, observed, n, bits))
    return np.array(out, dtype=LIFETIME_STATS_DTYPE)


def lifetime_survival(table: np.ndarray, scale: int | None = None, unit: str = "steps") -> np.ndarray:
    """Kaplan-Meier survival of the ids in ``table`` (``lifetime_table``) at ``scale`` (None: all), in
    ``steps`` or member ``bits``."""
    t = table if scale is None else table[table["scale"] == scale]
    col = {"steps": "steps", "bits": "member_bits"}[unit]
    ok = np.isfinite(t[col].astype(float))
    return kaplan_meier(t[col][ok], t["observed"][ok])


def lifetime_summary(table: np.ndarray) -> list[dict]:
    """Per scale of ``table`` (``lifetime_table``): how many ids, how many ended (the rest censored: alive at the
    end), and the Kaplan-Meier median lifetime in steps and in member bits (NaN when the survival never fell to
    one half: too many ids were still alive at the end for the run to show a median)."""
    out = []
    for scale in sorted({int(s) for s in table["scale"]}):
        t = table[table["scale"] == scale]
        out.append({"scale": scale, "ids": int(t.size), "ended": int(t["observed"].sum()),
                    "median_steps": km_median(lifetime_survival(t, unit="steps")),
                    "median_bits": km_median(lifetime_survival(t, unit="bits"))})
    return out


# --- layout for other libraries ------------------------------------------------------------------------------------

def as_replicas(*series) -> np.ndarray:
    """``(replica, frame, feature)``: each argument one replica's series, (F,) or (F, d), all of one length
    (the layout deeptime's estimators and emcee's autocorrelation routines take)."""
    arrs = [np.asarray(x, dtype=float) for x in series]
    arrs = [a[:, None] if a.ndim == 1 else a.reshape(a.shape[0], -1) for a in arrs]
    if len({a.shape for a in arrs}) != 1:
        raise ValueError(f"replicas of different shapes: {[a.shape for a in arrs]}")
    return np.stack(arrs)
