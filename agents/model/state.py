"""What the dynamics change: beliefs and frames per agent-site, and the step counter."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class State:
    mu: np.ndarray  # (S, K)
    sigma: np.ndarray  # (S, K, K), SPD
    phi: np.ndarray  # (S, 3), so(3) frame field, never wrapped
    step: int = 0

    def copy(self) -> "State":
        return State(self.mu.copy(), self.sigma.copy(), self.phi.copy(), self.step)

    def replace(self, **changes) -> "State":
        return replace(self, **changes)

    @staticmethod
    def from_arrays(mu, sigma, phi, step: int = 0) -> "State":
        mu = np.ascontiguousarray(mu, dtype=np.float64)
        sigma = np.ascontiguousarray(sigma, dtype=np.float64)
        phi = np.ascontiguousarray(phi, dtype=np.float64)
        S, K = mu.shape
        if sigma.shape != (S, K, K) or phi.shape != (S, 3):
            raise ValueError(f"state shapes disagree: mu {mu.shape}, sigma {sigma.shape}, phi {phi.shape}")
        return State(mu, sigma, phi, int(step))
