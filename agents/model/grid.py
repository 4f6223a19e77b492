"""The base grid (docs/model.md#grid): H x W sites with spacing 1, open or periodic boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORT_CUTOFF = 1e-6  # chi below this is outside the support (docs/model.md#supports)


@dataclass(frozen=True)
class Grid:
    height: int
    width: int
    boundary: str = "open"

    def __post_init__(self):
        if self.height < 1 or self.width < 1:
            raise ValueError(f"grid must be at least 1x1, got {self.height}x{self.width}")
        if self.boundary not in ("open", "periodic"):
            raise ValueError(f"boundary must be 'open' or 'periodic', got {self.boundary!r}")
        if self.boundary == "periodic" and (self.height < 3 or self.width < 3):
            raise ValueError("a periodic grid needs height and width >= 3")

    @property
    def periodic(self) -> bool:
        return self.boundary == "periodic"

    @property
    def n_sites(self) -> int:
        return self.height * self.width

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(y, x) coordinate arrays of shape (H, W)."""
        return np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")

    def displacement(self, y0: float, x0: float) -> tuple[np.ndarray, np.ndarray]:
        """(dy, dx) from the point (y0, x0) to every site; the minimum image on a periodic grid."""
        yy, xx = self.coordinates()
        dy = yy - y0
        dx = xx - x0
        if self.periodic:
            dy = dy - self.height * np.round(dy / self.height)
            dx = dx - self.width * np.round(dx / self.width)
        return dy, dx

    def neighbor(self, site: np.ndarray, axis: str, step: int = 1) -> np.ndarray:
        """Flat index of c + step * x^ (axis 'x') or c + step * y^ (axis 'y'), step = +1 or -1; -1 where it
        leaves an open grid."""
        y, x = np.divmod(np.asarray(site, dtype=np.int64), self.width)
        if axis == "x":
            x = x + step
            outside = (x < 0) | (x >= self.width)
            x = x % self.width
        else:
            y = y + step
            outside = (y < 0) | (y >= self.height)
            y = y % self.height
        out = y * self.width + x
        if not self.periodic:
            out = np.where(outside, -1, out)
        return out
