"""Cross-scale coupling (docs/model.md#hierarchy-coupling): members' priors pulled towards their meta-agent.

Every ``hierarchy.every`` steps the run's updater
(:class:`gauge_vfe.agents.runner.updaters.HierarchyCoupling`) detects and coarse-grains the meta-agents with the
detector of ``vfe analyze`` (the thresholds of ``analysis.meta_agents``), transports each meta-agent's belief into
every member's frame (frames as they are at the refresh) and makes the member's prior row the moment interpolation

    m_eff = (1 - rho) m + rho m_T,        S_eff = (1 - rho) S + rho S_T

The result is a layout whose ``coupled_prior`` (mu, precision, ln det) replaces the configured prior in the prior
term of the one kernel (:func:`gauge_vfe.agents.model.energy.evaluate`): between refreshes the targets are
constants, the action is the ordinary one with other prior constants, and its exact gradient is the prior term's.
This module holds the model's part (the parameters, the interpolation, the coupled layout); the detection and
the targets are analysis (analysis/coupling.py), and the updater that calls them lives above both, in the runner.
The configured priors (``layout.prior_mu``, ``prior_sigma``) stay as they are: the file stores them and the
detection's "epistemically dead" test reads them.

With ``max_scale`` s > 2 the belief a meta-agent of scale k passes down to its members is itself pulled, with the
same rho, towards the belief its own meta-agent (scale k + 1 <= s) passes down, transported into its frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from .layout import Layout
from .params import StrictModel


class HierarchyParams(StrictModel):
    """Top-down coupling of meta-agents to their members (docs/model.md#hierarchy-coupling)."""

    enabled: bool = Field(False, description="pull each meta-agent member's prior towards the meta-agent's "
                          "coarse-grained belief (off: the configured priors, bit for bit)")
    every: int = Field(10, ge=1, description="detect and coarse-grain the meta-agents every this many steps "
                       "(at the steps that are multiples of it, and where a run starts); the targets are "
                       "constants in between")
    rho: float = Field(0.5, ge=0, le=1, allow_inf_nan=False, description="coupling weight: 0 none, 1 the "
                       "meta-agent's transported belief is the member's prior")
    max_scale: int = Field(2, ge=2, le=10, description="highest scale coupled: 2 members to their meta-agent; "
                           "3 also meta-agents to theirs, and so on down")


def prior_constants(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, ln det) of prior covariances, computed exactly as :func:`build_layout` does (same bits)."""
    chol = np.linalg.cholesky(sigma)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    precision = np.linalg.inv(sigma)
    return 0.5 * (precision + precision.transpose(0, 2, 1)), logdet


def effective_prior(layout: Layout, mask: np.ndarray, mu_t: np.ndarray, sigma_t: np.ndarray, rho: float):
    """``(mu, sigma)`` of the coupled prior: the moment interpolation on member rows, the configured prior elsewhere."""
    mu = layout.prior_mu.copy()
    sigma = layout.prior_sigma.copy()
    mu[mask] = (1.0 - rho) * layout.prior_mu[mask] + rho * mu_t[mask]
    sigma[mask] = (1.0 - rho) * layout.prior_sigma[mask] + rho * sigma_t[mask]
    return mu, sigma


def with_coupled_prior(layout: Layout, mu: np.ndarray, sigma: np.ndarray) -> Layout:
    """``layout`` whose prior term uses ``(mu, sigma)`` instead of the configured prior (which it keeps)."""
    precision, logdet = prior_constants(sigma)
    return replace(layout, coupled_prior=(np.ascontiguousarray(mu), np.ascontiguousarray(sigma),
                                          np.ascontiguousarray(precision), np.ascontiguousarray(logdet)))


def resume_problem(config: dict, step: int) -> str | None:
    """Why a run with this (JSON) config cannot resume at checkpoint ``step``, or None.

    The targets in force at a step were computed at the last refresh step; they are not stored in the checkpoint,
    so only a checkpoint at a refresh step (a multiple of ``every``, where the resumed run recomputes them from the
    checkpoint state) continues bit for bit. Any other is refused instead of silently differing."""
    h = config.get("hierarchy") or {}
    if not h.get("enabled"):
        return None
    every = int(h.get("every", HierarchyParams().every))
    if step % every == 0:
        return None
    return (f"cannot resume: hierarchy coupling is enabled and the checkpoint (step {step}) is not a refresh step "
            f"(a multiple of hierarchy.every = {every}); the meta-agent targets in force there are not stored, so a "
            "resumed run would differ from an uninterrupted one. Choose output.every as a multiple of "
            "hierarchy.every (or vice versa) to make every checkpoint resumable")
