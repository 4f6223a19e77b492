"""Meta-agents (docs/model.md#meta-agents): consensus, connected components, coarse-graining, hierarchy, tracking.

Readings of the spec made here (and stated in the README):

* The chi-weighted mean divergence of a pair weights each shared site by ``chi_i(c) chi_j(c)``.
* "Epistemically dead": a member whose transported prior also agrees (same criterion, ``eps_prior``) with a
  consensus partner in its meta-agent; a meta-agent is dead when all its members are.
* Coarse-graining: the scale-(s+1) agent's support is the union of its members' (chi = max over members); at
  each site its frame is that of the first member present in a fixed order (largest support first, then
  lowest index: the "reference member"), and its belief is the chi-weighted precision-weighted fusion of the
  members present, each transported into that frame: ``Lambda = sum_m w_m Lambda_m``,
  ``Lambda mu = sum_m w_m Lambda_m mu_m``, ``w_m = chi_m / sum chi`` (a log-linear pool, which keeps the
  meta-agent's uncertainty on its members' scale instead of shrinking it with their number). Priors are fused
  the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import Field
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .measures import frame_matrices
from ..kernels.bundles import Beliefs, fiber_arrays, site_tables
from ..kernels.consensus import site_pair_kl
from ..model.params import Pos, StrictModel
from ..model.layout import Layout, build_layout
from ..model.state import State


class ConsensusParams(StrictModel):
    """When agents count as agreeing, and how far up the hierarchy to look (docs/model.md#consensus)."""

    eps_belief: Pos = Field(0.1, description="two agents agree where (KL_ij + KL_ji)/2 is below this")
    min_overlap: int = Field(3, ge=1, description="consensus needs at least this many shared sites")
    eps_prior: Pos | None = Field(None, description="priors agree below this (default eps_belief): "
                                  "'epistemically dead' members")
    max_scale: int = Field(4, ge=2, le=10, description="highest scale of meta-agents to detect")


@dataclass
class PairDivergence:
    """Per overlapping agent pair: shared sites and the chi-weighted mean symmetrised transported KL."""

    i: np.ndarray
    j: np.ndarray
    n_sites: np.ndarray
    belief: np.ndarray
    prior: np.ndarray


def _site_pair_values(layout: Layout, mu, sigma, phi) -> np.ndarray:
    out = np.zeros(int(layout.pair_ptr[-1]))
    ok = np.ones(layout.n_rows, dtype=np.bool_)
    site_pair_kl(site_tables(layout), Beliefs(mu, sigma, phi), fiber_arrays(layout.fiber), out, ok)
    if not ok.all():
        raise ValueError("a covariance is not positive definite: consensus is undefined")
    return out


def pair_divergences(layout: Layout, state: State) -> PairDivergence:
    """Symmetrised transported KL ``(KL_ij + KL_ji)/2`` of beliefs and of priors, averaged over each overlap."""
    kl_b = _site_pair_values(layout, state.mu, state.sigma, state.phi)
    kl_p = _site_pair_values(layout, layout.prior_mu, layout.prior_sigma, state.phi)
    counts = np.diff(layout.site_ptr)[layout.occupied]
    k_of_slot = np.repeat(np.arange(layout.occupied.size), counts * counts)
    local = np.arange(kl_b.size) - layout.pair_ptr[k_of_slot]
    n = counts[k_of_slot]
    a, b = np.divmod(local, n)
    keep = a < b  # unordered pairs
    start = layout.site_ptr[layout.occupied[k_of_slot]]
    ra = layout.site_rows[start + a]
    rb = layout.site_rows[start + b]
    slot_ab = np.arange(kl_b.size)
    slot_ba = slot_ab - a * n - b + b * n + a
    ra, rb, slot_ab, slot_ba = ra[keep], rb[keep], slot_ab[keep], slot_ba[keep]
    w = layout.chi[ra] * layout.chi[rb]
    sym_b = 0.5 * (kl_b[slot_ab] + kl_b[slot_ba])
    sym_p = 0.5 * (kl_p[slot_ab] + kl_p[slot_ba])
    N = layout.n_agents
    gi, gj = layout.agent[ra], layout.agent[rb]
    key = gi * N + gj
    uniq, inverse = np.unique(key, return_inverse=True)
    wsum = np.bincount(inverse, w)
    return PairDivergence(
        i=uniq // N, j=uniq % N,
        n_sites=np.bincount(inverse).astype(np.int64),
        belief=np.bincount(inverse, w * sym_b) / wsum,
        prior=np.bincount(inverse, w * sym_p) / wsum,
    )


@dataclass
class Level:
    """The meta-agents found among the entities of one scale (scale 1 = the agents)."""

    scale: int  # scale of the entities; their meta-agents have scale + 1
    components: list[np.ndarray]  # member indices (entities of this scale) of each meta-agent
    dead: list[bool]
    pairs: PairDivergence
    layout: Layout | None = field(default=None, repr=False)  # the coarse-grained layout of the meta-agents
    state: State | None = field(default=None, repr=False)


def detect(layout: Layout, state: State, params: ConsensusParams) -> tuple[list[np.ndarray], list[bool], PairDivergence]:
    """Meta-agents among the agents of ``layout``: connected components (size >= 2) of the consensus graph."""
    pairs = pair_divergences(layout, state)
    eps_p = params.eps_prior if params.eps_prior is not None else params.eps_belief
    agree = (pairs.n_sites >= params.min_overlap) & (pairs.belief < params.eps_belief)
    dead_edge = agree & (pairs.prior < eps_p)
    N = layout.n_agents
    graph = coo_matrix((np.ones(agree.sum()), (pairs.i[agree], pairs.j[agree])), shape=(N, N))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels, minlength=N)
    components = []
    dead = []
    dead_agent = np.zeros(N, dtype=bool)
    dead_agent[pairs.i[dead_edge]] = True
    dead_agent[pairs.j[dead_edge]] = True
    for lab in np.unique(labels):
        if sizes[lab] >= 2:
            members = np.nonzero(labels == lab)[0]
            components.append(members)
            dead.append(bool(dead_agent[members].all()))
    # a canonical order: by smallest member
    order = np.argsort([c[0] for c in components]) if components else []
    return [components[k] for k in order], [dead[k] for k in order], pairs


def coarse_grain(layout: Layout, state: State, components: list[np.ndarray]) -> tuple[Layout, State]:
    """One agent per meta-agent: union support, per-site reference frame, fused belief and prior."""
    H, W = layout.grid.height, layout.grid.width
    K = layout.K
    R = frame_matrices(layout, state)
    sizes = np.diff(layout.offset)
    chis, mus, sigmas, phis, pmus, psigmas = [], [], [], [], [], []
    for members in components:
        order = sorted(members, key=lambda m: (-sizes[m], m))
        n_sites = H * W
        chi = np.zeros(n_sites)
        ref_row = -np.ones(n_sites, dtype=np.int64)
        for m in order:  # set-up per member: vectorised over its sites
            rows = np.arange(layout.offset[m], layout.offset[m + 1])
            sites = layout.index[rows]
            chi[sites] = np.maximum(chi[sites], layout.chi[rows])
            free = ref_row[sites] < 0
            ref_row[sites[free]] = rows[free]
        sites = np.nonzero(chi >= 1e-6)[0]
        ref = ref_row[sites]
        lam = np.zeros((sites.size, K, K))
        eta = np.zeros((sites.size, K))
        plam = np.zeros((sites.size, K, K))
        peta = np.zeros((sites.size, K))
        wsum = np.zeros(sites.size)
        pos = -np.ones(n_sites, dtype=np.int64)
        pos[sites] = np.arange(sites.size)
        for m in order:
            rows = np.arange(layout.offset[m], layout.offset[m + 1])
            p = pos[layout.index[rows]]
            omega = np.einsum("sij,skj->sik", R[ref[p]], R[rows])  # R_ref R_m^T
            w = layout.chi[rows]
            for mu_, sig_, lam_acc, eta_acc in ((state.mu[rows], state.sigma[rows], lam, eta),
                                                (layout.prior_mu[rows], layout.prior_sigma[rows], plam, peta)):
                mu_t = np.einsum("sij,sj->si", omega, mu_)
                prec = np.linalg.inv(np.einsum("sij,sjk,slk->sil", omega, sig_, omega))
                lam_acc[p] += w[:, None, None] * prec
                eta_acc[p] += w[:, None] * np.einsum("sij,sj->si", prec, mu_t)
            wsum[p] += w
        lam /= wsum[:, None, None]
        eta /= wsum[:, None]
        plam /= wsum[:, None, None]
        peta /= wsum[:, None]
        sig = np.linalg.inv(lam)
        psig = np.linalg.inv(plam)
        chis.append(chi.reshape(H, W))
        sigmas.append(0.5 * (sig + sig.transpose(0, 2, 1)))
        mus.append(np.einsum("sij,sj->si", sig, eta))
        psigmas.append(0.5 * (psig + psig.transpose(0, 2, 1)))
        pmus.append(np.einsum("sij,sj->si", psig, peta))
        phis.append(state.phi[ref])
    new_layout = build_layout(layout.grid, layout.fiber, chis, np.concatenate(pmus), np.concatenate(psigmas))
    new_state = State.from_arrays(np.concatenate(mus), np.concatenate(sigmas), np.concatenate(phis), state.step)
    return new_layout, new_state


def hierarchy(layout: Layout, state: State, params: ConsensusParams) -> list[Level]:
    """Detection at scale 1, coarse-graining, detection again on the meta-agents, ... up to ``max_scale``."""
    levels = []
    lay, st = layout, state
    for scale in range(1, params.max_scale):
        if lay.n_agents < 2:
            break
        components, dead, pairs = detect(lay, st, params)
        level = Level(scale, components, dead, pairs)
        levels.append(level)
        if not components:
            break
        level.layout, level.state = coarse_grain(lay, st, components)
        lay, st = level.layout, level.state
    return levels


def base_members(levels: list[Level]) -> list[list[np.ndarray]]:
    """For each level, each meta-agent's members expressed as scale-1 agents."""
    out = []
    below = None
    for level in levels:
        if below is None:
            out.append([np.asarray(c) for c in level.components])
        else:
            out.append([np.unique(np.concatenate([below[m] for m in c])) for c in level.components])
        below = out[-1]
    return out


# --- tracking ---------------------------------------------------------------------------------------------------

@dataclass
class Tracker:
    """Stable ids for meta-agents across frames, by overlap of their scale-1 memberships.

    A meta-agent keeps the id of the previous frame's meta-agent (same scale) it shares most members with
    (Jaccard >= ``min_jaccard``); ties of several current ones with one previous one are splits (the largest
    overlap keeps the id), one current one covering several previous ones is a merge (it keeps the id of the
    largest overlap, the others end with a `merge` event).
    """

    min_jaccard: float = 0.5
    next_id: int = 0
    previous: dict = field(default_factory=dict)  # scale -> list of (id, frozenset members)
    events: list = field(default_factory=list)  # (step, kind, scale, id, other id or -1)
    born: dict = field(default_factory=dict)  # id -> step
    died: dict = field(default_factory=dict)  # id -> step

    def update(self, step: int, scale: int, memberships: list[np.ndarray]) -> list[int]:
        prev = self.previous.get(scale, [])
        cur = [frozenset(int(x) for x in m) for m in memberships]
        jac = np.zeros((len(cur), len(prev)))
        for a, c in enumerate(cur):
            for b, (_, p) in enumerate(prev):
                jac[a, b] = len(c & p) / len(c | p)
        ids = [-1] * len(cur)
        taken = set()
        # best matches first
        for a, b in sorted(((a, b) for a in range(len(cur)) for b in range(len(prev)) if jac[a, b] >= self.min_jaccard),
                           key=lambda ab: -jac[ab]):
            if ids[a] == -1 and b not in taken:
                ids[a] = prev[b][0]
                taken.add(b)
        for a in range(len(cur)):
            overl = [b for b in range(len(prev)) if cur[a] & prev[b][1]]
            if ids[a] == -1:
                ids[a] = self.next_id
                self.next_id += 1
                self.born[ids[a]] = step
                split_from = [prev[b][0] for b in overl if b in taken]
                if split_from:
                    self.events.append((step, "split", scale, ids[a], split_from[0]))
                else:
                    self.events.append((step, "birth", scale, ids[a], -1))
        for b, (pid, members) in enumerate(prev):
            if b in taken:
                continue
            into = [ids[a] for a in range(len(cur)) if cur[a] & members]
            self.died[pid] = step
            if into:
                self.events.append((step, "merge", scale, pid, into[0]))
            else:
                self.events.append((step, "death", scale, pid, -1))
        self.previous[scale] = list(zip(ids, cur))
        return ids
