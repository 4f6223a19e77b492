"""What the dynamics change: beliefs and frames per agent-site, and the step counter."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class State:
    mu: np.ndarray  # (S, K)
    sigma: np.ndarray  # (S, K, K), SPD
    phi: np.ndarray  # (S, 3) so(3) or (S, K^2) gl(K) frame field (docs/model.md#glk-frames), never wrapped
    step: int = 0

    def copy(self) -> "State":
        return State(self.mu.copy(), self.sigma.copy(), self.phi.copy(), self.step)

    def replace(self, **changes) -> "State":
        return replace(self, **changes)

    @property
    def dtype(self) -> np.dtype:
        return self.mu.dtype

    def astype(self, dtype) -> "State":
        """The state stored as ``dtype`` (itself if it already is): float64 to float32 rounds, and float32 to
        float64 is exact, so a float32 state survives a float64 checkpoint bit for bit."""
        if self.mu.dtype == dtype and self.sigma.dtype == dtype and self.phi.dtype == dtype:
            return self
        return State.from_arrays(self.mu, self.sigma, self.phi, self.step, dtype)

    @staticmethod
    def from_arrays(mu, sigma, phi, step: int = 0, dtype=np.float64) -> "State":
        mu = np.ascontiguousarray(mu, dtype=dtype)
        sigma = np.ascontiguousarray(sigma, dtype=dtype)
        phi = np.ascontiguousarray(phi, dtype=dtype)
        S, K = mu.shape
        if sigma.shape != (S, K, K) or phi.shape not in ((S, 3), (S, K * K)):
            raise ValueError(f"state shapes disagree: mu {mu.shape}, sigma {sigma.shape}, phi {phi.shape}")
        return State(mu, sigma, phi, int(step))
