"""The model's parameters, validated once (pydantic) and used as they are by the engine.

These are the ``energy`` and ``dynamics`` sections of a scenario (docs/model.md#action, #dynamics): the
scenario schema (:mod:`gauge_vfe.agents.setup.config`) composes them, and :func:`evaluate` and :func:`step`
read them directly, so each parameter, its default, its range and its description exist in one place.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag

NonNeg = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Unknown keys are errors, values are frozen, and numbers must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnergyParams(StrictModel):
    """Weights of the action's terms (docs/model.md#action); every logged term includes its weight."""

    alpha: NonNeg = Field(1.0, description="prior weight")
    gamma: NonNeg = Field(1.0, description="observation weight")
    lambda_align: NonNeg = Field(1.0, description="alignment (attention) weight")
    kappa: Pos = Field(1.0, description="attention temperature, in nats")
    lambda_curv: NonNeg = Field(0.0, description="curvature weight")
    lambda_smooth: NonNeg = Field(0.0, description="frame smoothness weight")
    form: Literal["weighted", "free_energy"] = Field("weighted", description="sum_j beta_ij KL_ij, or "
                                                     "-kappa ln sum_j chi_j exp(-KL_ij/kappa)")
    include_self: bool = Field(False, description="let the attention sums run over j = i too")


class LineSearch(StrictModel):
    """Armijo backtracking on the total energy (docs/model.md#line-search)."""

    enabled: bool = Field(False, description="Armijo backtracking on the total energy")
    c1: float = Field(1e-4, gt=0, lt=1, description="sufficient-decrease constant")
    shrink: float = Field(0.5, gt=0, lt=1, description="step multiplier per backtrack")
    max_backtracks: int = Field(30, ge=1, description="then the smallest step is taken and the increase reported")


class Temperatures(StrictModel):
    """Per-field Langevin temperatures, in nats (docs/model.md#temperature); a field left out is at 0."""

    mu: NonNeg = Field(0.0, description="temperature of the beliefs' means")
    phi: NonNeg = Field(0.0, description="temperature of the gauge frames")
    sigma: NonNeg = Field(0.0, description="temperature of the covariances")


def _temperature(value):
    """A negative, infinite or non-numeric scalar gets one clear message (not one per union member)."""
    if isinstance(value, bool) or (not isinstance(value, (int, float, dict)) and not isinstance(value, Temperatures)):
        raise ValueError(f"{value!r} is not a temperature: expected a number >= 0 or a mapping {{mu, phi, sigma}}")
    if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"must be a finite number >= 0 (a temperature, in nats), got {value!r}")
    return value


def _temperature_kind(value) -> str:
    return "Temperatures" if isinstance(value, (dict, Temperatures)) else "float"


# a mapping is validated as the mapping only (its errors name dynamics.temperature.mu), a number as a number
Temperature = Annotated[Annotated[float, Tag("float")] | Annotated[Temperatures, Tag("Temperatures")],
                        Discriminator(_temperature_kind), BeforeValidator(_temperature)]


class DynamicsParams(StrictModel):
    """Gradient descent on the action (docs/model.md#dynamics)."""

    method: Literal["gradient", "natural"] = Field("gradient", description="plain Euclidean gradient, or the "
                                                   "Fisher-Rao natural gradient for (mu, Sigma); phi always plain")
    steps: int = Field(100, ge=0, le=10**12, description="total number of steps of the run")
    lr_mu: NonNeg = Field(0.05, description="step size of mu")
    lr_sigma: NonNeg = Field(0.02, description="step size of Sigma")
    lr_phi: NonNeg = Field(0.05, description="step size of the frames phi")
    line_search: LineSearch = Field(default_factory=LineSearch)
    tol: NonNeg = Field(0.0, description="stop early once the gradient norm (all fields) is at most tol")
    temperature: Temperature = Field(0.0, description="Langevin temperature T >= 0 in nats (0: plain descent, no "
                                     "random numbers drawn); a number for every field or {mu, phi, sigma}")
    precision: Literal["float64", "float32"] = Field(
        "float64", description="storage type of the state and its gradients: float32 halves their memory; the "
        "kernels compute in float64 and energies are summed in float64 either way (docs/model.md#precision)")

    @property
    def dtype(self) -> np.dtype:
        """The numpy type the state is kept in (``precision``)."""
        return np.dtype(self.precision)

    @property
    def temperatures(self) -> tuple[float, float, float]:
        """(T_mu, T_sigma, T_phi)."""
        t = self.temperature
        if isinstance(t, Temperatures):
            return float(t.mu), float(t.sigma), float(t.phi)
        return float(t), float(t), float(t)

    @property
    def noisy(self) -> bool:
        """Some field has a temperature above 0: the step draws random numbers."""
        return any(t > 0 for t in self.temperatures)


# The Armijo test compares energies along the drift, but a noisy step raises E by about T/2 per degree of freedom
# by design, and a step length chosen from the state would change the stationary law: the two are refused together.
NOISE_WITH_LINE_SEARCH = ("temperature > 0 cannot be combined with dynamics.line_search.enabled: the Armijo test "
                          "compares energies, which the noise raises by design, and a step length chosen from the "
                          "state would change the stationary law (docs/model.md#temperature); disable the line "
                          "search or set the temperature to 0")
