"""The attention layer (docs/model.md#attention-layer): the aggregated messages, the two roles of the alignment's
mu-gradient, and the entropy of the attention weights.

``m_i(c) = sum_j beta_ij(c) Omega_ij(c) mu_j(c)`` is what agent ``i`` receives at site ``c``; in the transformer
limit it is ``softmax(Q K^T / (sigma^2 kappa) + key bias) V`` (docs/model.md#attention-layer). A plain gradient
step of the alignment term moves ``mu_i`` by ``-lr (forward_i + reverse_i)``: ``forward`` is the derivative of
``i``'s own alignment density (``i`` as the query), ``reverse`` that of its partners' densities (``i`` as a key
and value); docs/model.md#step-decomposition gives both in closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels.attention import site_attention
from ..kernels.bundles import Beliefs, Weights, fiber_arrays, site_tables
from .energy import Evaluation, beta_matrix
from .fiber import require_so3
from .layout import Layout
from .params import EnergyParams
from .state import State


@dataclass(frozen=True)
class Attention:
    """Per agent-site (S, K), each in the row's own frame: ``messages`` m_i (units of mu), ``forward`` and
    ``reverse`` the query-role and key-role parts of ``dE_align/dmu`` (their sum is the alignment's gradient)."""

    messages: np.ndarray
    forward: np.ndarray
    reverse: np.ndarray

    def reverse_share(self) -> float:
        """``|reverse| / (|forward| + |reverse|)`` over all agent-sites (Euclidean norms): how much of a plain
        alignment step the key role contributes (0 when the step is a pure attention readout, 1/2 when the two
        roles are alike in size; docs/model.md#step-decomposition)."""
        f = float(np.linalg.norm(self.forward))
        r = float(np.linalg.norm(self.reverse))
        return r / (f + r) if f + r > 0 else float("nan")


def attention(layout: Layout, params: EnergyParams, state: State) -> Attention:
    """Messages and the two roles of the alignment gradient at ``state`` (one kernel pass; the weights are the
    energy's, computed whatever ``lambda_align`` is)."""
    # the kernel forms a message as R_a mt_b with R_a the frame matrix, which is exp(phi_a) only for rotations
    require_so3(layout.fiber, "the attention layer's messages (gv.attention)")
    S, K = layout.n_rows, layout.K
    out = Attention(np.empty((S, K)), np.empty((S, K)), np.empty((S, K)))
    beliefs = Beliefs(np.asarray(state.mu, dtype=np.float64), np.asarray(state.sigma, dtype=np.float64),
                      np.asarray(state.phi, dtype=np.float64))
    weights = Weights(float(params.alpha), float(params.gamma), float(params.lambda_align), float(params.kappa),
                      params.form == "free_energy", bool(params.include_self))
    site_attention(site_tables(layout), beliefs, fiber_arrays(layout.fiber), weights, out.messages, out.forward,
                   out.reverse)
    return out


def messages(layout: Layout, params: EnergyParams, state: State) -> np.ndarray:
    """(S, K): ``m_i(c) = sum_j beta_ij(c) Omega_ij(c) mu_j(c)`` in agent ``i``'s frame (0 where ``i`` is alone
    at ``c``, unless ``include_self``)."""
    return attention(layout, params, state).messages


def row_entropy(beta: np.ndarray) -> np.ndarray:
    """The entropy ``-sum_j beta_ij ln beta_ij`` of each row of a weight matrix, in nats; NaN for a row of zeros
    (a row with no partner: nothing to attend to)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(beta > 0, -beta * np.log(np.where(beta > 0, beta, 1.0)), 0.0)
    out = terms.sum(axis=-1)
    out[beta.sum(axis=-1) == 0] = np.nan
    return out


def beta_entropy(layout: Layout, evaluation: Evaluation) -> np.ndarray:
    """(S,): the entropy of each agent-site's attention weights (:func:`row_entropy`); ``ln(n - 1)`` is uniform
    attention over ``n - 1`` partners, 0 a hard choice of one (docs/model.md#delta-limit)."""
    return row_entropy(beta_matrix(layout, evaluation))


def isotropic_beta(mu: np.ndarray, s2: float, kappa: float) -> np.ndarray:
    """The closed form of the weights of N agents at one site with equal frames and ``Sigma = s2 I``
    (docs/model.md#delta-limit): ``beta_ij = softmax_{j != i}(-|mu_i - mu_j|^2 / (2 s2 kappa))``, (N, N) numpy, the
    reference the engine is checked against."""
    d2 = np.sum((mu[:, None, :] - mu[None, :, :]) ** 2, axis=2)
    logits = -d2 / (2 * s2 * kappa)
    np.fill_diagonal(logits, -np.inf)
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)
