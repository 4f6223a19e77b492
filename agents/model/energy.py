"""The action E = E_prior + E_obs + E_align + E_curv + E_smooth and its exact gradient (docs/model.md#action).

:func:`evaluate` is the one energy and the one gradient of the project: it calls the two kernels
(:mod:`gauge_vfe.agents.kernels.site_terms` for the site-local terms, :mod:`gauge_vfe.agents.kernels.gauge_field` for the frame-field
terms) and returns plain arrays. The dynamics, the line search, the tests and the analysis all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..kernels.bundles import (Beliefs, ObservationArrays, Outputs, Priors, Weights, fiber_arrays, no_observations,
                               site_tables)
from ..kernels.gauge_field import gauge_field_terms
from ..kernels.glk import gauge_field_terms_glk
from ..kernels.reductions import segment_sums_of_squares, sum_of_squares
from ..kernels.site_terms import frame_cache as _frame_cache, site_terms
from .arrays import ArrayPool, empty
from .layout import Layout, world_sums
from .params import EnergyParams
from .state import State


@dataclass(frozen=True)
class Term:
    """Everything the rest of the project knows about one term of the action, in one row (a new term is a row
    here, its weight in :class:`~.params.EnergyParams`, its wiring in :func:`evaluate` and its kernel).

    ``weight``: the :class:`~.params.EnergyParams` field that multiplies it; ``short``: its label on the progress
    bar; ``color``: its colour in every plot; ``init_key``: the scenario key blamed when the initial state gives it
    a non-finite value; ``density_bytes``: the bytes a row of its density costs (the memory model).
    """

    name: str
    weight: str
    short: str
    color: str
    init_key: str
    density_bytes: int = 8


TERM_TABLE = (
    Term("prior", "alpha", "prior", "tab:blue", "priors"),
    Term("observation", "gamma", "obs", "tab:orange", "observations"),
    Term("alignment", "lambda_align", "align", "tab:green", "agents.init"),
    Term("curvature", "lambda_curv", "curv", "tab:red", "agents.init.phi"),
    Term("smoothness", "lambda_smooth", "smooth", "tab:purple", "agents.init.phi"),
)
TERMS = tuple(t.name for t in TERM_TABLE)
TERM = {t.name: t for t in TERM_TABLE}
TOTAL_COLOR = "black"  # the total energy's colour beside the terms'


@dataclass
class Evaluation:
    """Energy by term, per-row energy densities, gradients by field and the pairwise KL and beta values.

    ``densities[term]`` is (S,): the term's contribution owned by each agent-site (for the curvature and
    smoothness terms, the plaquette and the edges based at that site). ``grad_sigma`` is the symmetric G with
    dE = tr(G dSigma). ``kl``/``beta`` hold, per occupied site, the n_c x n_c matrix of KL_ij and beta_ij
    (row = i, in agent order), at ``layout.pair_ptr``.
    """

    densities: dict[str, np.ndarray]
    grad_mu: np.ndarray | None
    grad_sigma: np.ndarray | None
    grad_phi: np.ndarray | None
    kl: np.ndarray
    beta: np.ndarray
    status: np.ndarray
    _grad_norms: dict[str, float] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def terms(self) -> dict[str, float]:
        return {t: float(np.sum(self.densities[t])) for t in TERMS}

    @property
    def total(self) -> float:
        return float(sum(self.terms.values()))

    def grad_norms(self) -> dict[str, float]:
        """Euclidean norm over all agent-sites (Frobenius for Sigma), as logged (docs/model.md#file-series); inf
        or NaN where a gradient is not finite. Computed once: the log, the history, the stop test and the
        finiteness check all read it."""
        if self._grad_norms is None:
            # one compiled pass per field, not np.linalg.norm: a BLAS call here would wake OpenBLAS threads that
            # then compete with the kernels' threads on the hot path
            self._grad_norms = {name: float(np.sqrt(sum_of_squares(g))) for name, g in
                                (("mu", self.grad_mu), ("sigma", self.grad_sigma), ("phi", self.grad_phi))}
        return self._grad_norms


def frame_cache(layout: Layout, state: State) -> tuple:
    """What :func:`evaluate` may keep of ``state`` while its Sigma and phi do not change (both frozen,
    docs/model.md#replica-ensembles): every row's frame, rotated covariance, its inverse and log-determinant."""
    return _frame_cache(state.phi.astype(np.float64, copy=False), state.sigma, fiber_arrays(layout.fiber))


def world_terms(layout: Layout, evaluation: Evaluation) -> dict[str, np.ndarray]:
    """Energy by term per world (R,) of a replica ensemble (docs/model.md#replica-ensembles), each summed as
    :attr:`Evaluation.terms` sums a single run's."""
    return {t: world_sums(layout, evaluation.densities[t]) for t in TERMS}


def world_totals(layout: Layout, evaluation: Evaluation) -> np.ndarray:
    """(R,) total energy per world, the terms added in the order :attr:`Evaluation.total` adds them."""
    total = 0
    for v in world_terms(layout, evaluation).values():
        total = total + v
    return total


def world_grad_norms(layout: Layout, evaluation: Evaluation) -> dict[str, np.ndarray]:
    """Per world (R,), :meth:`Evaluation.grad_norms` bit for bit: each world's block summed in the chunks a
    single run sums it in (:func:`~agents.kernels.reductions.segment_sums_of_squares`)."""
    out = {}
    for name, g in (("mu", evaluation.grad_mu), ("sigma", evaluation.grad_sigma), ("phi", evaluation.grad_phi)):
        per_row = int(np.prod(g.shape[1:]))
        sums = np.empty(layout.replicas)
        segment_sums_of_squares(np.ascontiguousarray(g).reshape(-1), layout.world_ptr * per_row, sums)
        out[name] = np.sqrt(sums)
    return out


def _observation_args(layout: Layout) -> ObservationArrays:
    obs = layout.observations
    if obs is None:
        return no_observations(layout.n_rows, layout.K)
    return ObservationArrays(obs.value, obs.C, layout.obs_precision, layout.obs_info, True)


def _prior_args(layout: Layout) -> Priors:
    """The prior the prior term uses: a hierarchy coupling's (docs/model.md#hierarchy-coupling), else the
    configured one."""
    if layout.coupled_prior is not None:
        mu, _, precision, logdet = layout.coupled_prior
        return Priors(mu, precision, logdet)
    return Priors(layout.prior_mu, layout.prior_precision, layout.prior_logdet)


def evaluate(layout: Layout, params: EnergyParams, state: State, want_grad: bool = True,
             pool: ArrayPool | None = None, frozen: tuple[str, ...] = (), frames: tuple | None = None) -> Evaluation:
    """The action at ``state``; with ``want_grad`` its exact gradient in (mu, Sigma, phi) too. The large
    gradient arrays come from ``pool`` if given (a run's :class:`~agents.model.arrays.ArrayPool`).

    ``frozen`` names fields (``"sigma"``, ``"phi"``) whose gradient is not wanted: it is not computed (nor the
    work only it needs) and its array holds zeros; the other gradients and the energy are the same bits
    (docs/model.md#replica-ensembles, frozen fields). ``frames``: the rows' frames and rotated covariances
    (:func:`frame_cache` of this state's Sigma and phi), read instead of recomputed; the same bits."""
    S, K = layout.n_rows, layout.K
    dens = {t: np.empty(S) for t in TERMS}
    # gradients in the state's type (docs/model.md#precision); densities, KL and beta always in float64
    g_mu = empty((S, K), state.dtype, pool)
    g_sigma = empty((S, K, K), state.dtype, pool)
    g_phi = np.zeros((S, layout.fiber.n_phi), state.dtype)
    n_slots = int(layout.pair_ptr[-1])
    kl = np.zeros(n_slots)
    beta = np.zeros(n_slots)
    status = np.zeros(S, dtype=np.int8)
    # phi is read as float64 (3 values a row, K^2 for GL(K) frames): the frames' rotations and the field terms are then computed in
    # float64 from a float32 state too; mu and Sigma are converted inside the kernels (docs/model.md#precision)
    phi = state.phi.astype(np.float64, copy=False)
    site_terms(
        site_tables(layout),
        Beliefs(state.mu, state.sigma, phi),
        _prior_args(layout),
        _observation_args(layout),
        Weights(float(params.alpha), float(params.gamma), float(params.lambda_align), float(params.kappa),
                params.form == "free_energy", bool(params.include_self)),
        fiber_arrays(layout.fiber),
        bool(want_grad),
        Outputs(dens["prior"], dens["observation"], dens["alignment"], g_mu, g_sigma, g_phi, kl, beta, status),
        grad_sigma="sigma" not in frozen, grad_phi="phi" not in frozen, frames=frames,
    )
    # the frame-field terms of so(3) coordinates, or of gl(K) matrices (docs/model.md#glk-frames)
    (gauge_field_terms_glk if layout.fiber.glk else gauge_field_terms)(
        phi, layout.chi, layout.fwd_x, layout.fwd_y, layout.bwd_x, layout.bwd_y,
        float(params.lambda_curv), float(params.lambda_smooth), bool(want_grad) and "phi" not in frozen,
        dens["curvature"], dens["smoothness"], g_phi,
    )
    if want_grad and "sigma" in frozen:
        g_sigma.fill(0.0)  # the prior and observation terms wrote their (cheap) parts: not a gradient
    if not want_grad:
        g_mu = g_sigma = g_phi = None
    return Evaluation(dens, g_mu, g_sigma, g_phi, kl, beta, status)


def beta_matrix(layout: Layout, evaluation: Evaluation) -> np.ndarray:
    """(S, N): row (i, c) holds beta_ij(c) for every agent j (0 where j is absent), as in the trajectory file (docs/model.md#file-series)."""
    return _pairs_to_rows(layout, evaluation.beta)


def kl_matrix(layout: Layout, evaluation: Evaluation) -> np.ndarray:
    """(S, N): row (i, c) holds KL_ij(c) for every agent j present at c (NaN where j is absent)."""
    out = _pairs_to_rows(layout, evaluation.kl, fill=np.nan)
    return out


def _pairs_to_rows(layout: Layout, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
    out = np.full((layout.n_rows, layout.n_agents), fill)
    counts = np.diff(layout.site_ptr)[layout.occupied]
    # slot (a, b) of site k -> (row of a, agent of b); vectorised over all sites
    site_of_slot = np.repeat(np.arange(layout.occupied.size), counts * counts)
    local = np.arange(values.size) - layout.pair_ptr[site_of_slot]
    n = counts[site_of_slot]
    a, b = np.divmod(local, n)
    start = layout.site_ptr[layout.occupied[site_of_slot]]
    row_a = layout.site_rows[start + a]
    row_b = layout.site_rows[start + b]
    out[row_a, layout.agent[row_b]] = values
    return out
