"""Support shapes: one spec class per shape, each carrying all that set-up needs to know about it.

A shape is the scenario's schema for it (its pydantic fields), its checks against the grid
(:meth:`~SupportSpec.grid_problems`), the margin its random centres keep from an open grid's edges, its
footprint and centre range for the memory model (no array made), and ``chi``, the support function on the
grid. ``@shape`` registers the class; the config's discriminated union :data:`Support` is built from the
registry, so a new shape is one class in this file and nothing else.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal, Union

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field

from ..model import supports as sup
from ..model.grid import SUPPORT_CUTOFF, Grid
from ..model.params import Pos, StrictModel

Point = tuple[float, float]
_GAUSS_REACH = math.sqrt(-2.0 * math.log(SUPPORT_CUTOFF))  # exp(-d^2/2w^2) >= cutoff  <=>  d <= 5.26 w


def _clean_path(value: str) -> str:
    if not value.strip():
        raise ValueError("the path is empty")
    if "\x00" in value:
        raise ValueError("the path contains a NUL character")
    return value


PathText = Annotated[str, AfterValidator(_clean_path)]  # every file path of a scenario (masks, observations, runs)

SHAPES: dict[str, type["SupportSpec"]] = {}  # {shape name: spec class}, in the order the schema lists them


def shape(cls):
    """Register a spec class under its ``shape`` literal (the discriminator of :data:`Support`)."""
    SHAPES[cls.model_fields["shape"].default] = cls
    return cls


class SupportSpec(StrictModel):
    """What every shape answers. ``data`` is the array :mod:`.inputs` read for a shape that names a file."""

    reads_file: ClassVar[bool] = False  # a ``path`` key naming an array that inputs.read_inputs reads once

    def margin(self) -> float | None:
        """How far random centres stay from the edges of an open grid (None: the shape has no centre)."""
        return None

    def extent(self, H: int, W: int) -> tuple[float, float, float]:
        """(area, Ly, Lx): estimated site count and the sides of an axis-aligned box of that area."""
        return float(H * W), float(H), float(W)

    def footprint(self, H: int, W: int) -> tuple[float, float, float]:
        """:meth:`extent` capped to the grid (at least one site)."""
        area, Ly, Lx = self.extent(H, W)
        Ly, Lx = min(max(Ly, 1.0), float(H)), min(max(Lx, 1.0), float(W))
        return max(1.0, min(area, float(H * W))), Ly, Lx

    def centre_range(self, axis: int, n: int, periodic: bool) -> tuple[float, float] | None:
        """(lo, hi) of the centre along one axis of n sites, or None when it is uniform on a periodic axis."""
        return (n - 1) / 2, (n - 1) / 2

    def grid_problems(self, H: int, W: int) -> list[tuple[str, str]]:
        """(key under the support, message) of every way the spec does not fit an H x W grid."""
        return []

    def chi(self, grid: Grid, rng: np.random.Generator, data: np.ndarray | None = None) -> np.ndarray:
        """Dense (H, W) support function; missing centres and origins are drawn from ``rng``."""
        raise NotImplementedError


class _Centered(SupportSpec):
    center: Point | None = Field(None, description="(y, x); drawn uniformly at random (seeded) when omitted")

    def centre_range(self, axis, n, periodic):
        if self.center is not None:
            return float(self.center[axis]), float(self.center[axis])
        if periodic:
            return None
        m = min(self.margin(), (n - 1) / 2)
        return m, n - 1 - m

    def grid_problems(self, H, W):
        out = []
        radius = getattr(self, "radius", None)
        if radius is not None and radius > max(H, W):
            out.append(("radius", f"{radius} is larger than the grid ({H}x{W})"))
        if self.center is not None and not (0 <= self.center[0] <= H - 1 and 0 <= self.center[1] <= W - 1):
            out.append(("center", f"{list(self.center)} lies outside the grid ({H}x{W})"))
        return out

    def chi(self, grid, rng, data=None):
        if self.center is not None:
            return self.chi_at(grid, self.center, rng)
        if grid.periodic:
            center = float(rng.uniform(0, grid.height)), float(rng.uniform(0, grid.width))
        else:
            my = min(self.margin(), (grid.height - 1) / 2)
            mx = min(self.margin(), (grid.width - 1) / 2)
            center = float(rng.uniform(my, grid.height - 1 - my)), float(rng.uniform(mx, grid.width - 1 - mx))
        return self.chi_at(grid, center, rng)

    def chi_at(self, grid: Grid, center, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _round(r: float) -> tuple[float, float, float]:
        """(area, side, side) of a disk of radius r on the lattice: pi (r + 1/2)^2 and the square of that area."""
        area = math.pi * (r + 0.5) ** 2
        return area, math.sqrt(area), math.sqrt(area)


@shape
class DiskSupport(_Centered):
    shape: Literal["disk"] = "disk"
    radius: Pos = Field(8.0, description="hard disk of this radius")

    def margin(self):
        return self.radius

    def extent(self, H, W):
        return self._round(self.radius)

    def chi_at(self, grid, center, rng):
        return sup.disk(grid, center, self.radius)


@shape
class EllipseSupport(_Centered):
    shape: Literal["ellipse"] = "ellipse"
    radii: tuple[Pos, Pos] = Field((8.0, 5.0), description="semi-axes (ry, rx)")
    angle: float = Field(0.0, description="rotation in degrees, counter-clockwise")

    def margin(self):
        return max(self.radii)

    def extent(self, H, W):
        ry, rx = self.radii[0] + 0.5, self.radii[1] + 0.5
        return math.pi * ry * rx, math.sqrt(math.pi) * ry, math.sqrt(math.pi) * rx

    def grid_problems(self, H, W):
        out = super().grid_problems(H, W)
        if max(self.radii) > max(H, W):
            out.append(("radii", f"{list(self.radii)} is larger than the grid ({H}x{W})"))
        return out

    def chi_at(self, grid, center, rng):
        return sup.ellipse(grid, center, self.radii, self.angle)


@shape
class RectangleSupport(SupportSpec):
    shape: Literal["rectangle"] = "rectangle"
    origin: tuple[int, int] | None = Field(None, description="(y0, x0) of the top-left corner; random if omitted")
    size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = Field((8, 8), description="(h, w)")

    def extent(self, H, W):
        return float(self.size[0] * self.size[1]), float(self.size[0]), float(self.size[1])

    def centre_range(self, axis, n, periodic):
        h = self.size[axis]
        if self.origin is not None:
            c = self.origin[axis] + (h - 1) / 2
            return c, c
        return (h - 1) / 2, max((h - 1) / 2, n - 1 - (h - 1) / 2)

    def grid_problems(self, H, W):
        out = []
        if self.size[0] > H or self.size[1] > W:
            out.append(("size", f"{list(self.size)} is larger than the grid ({H}x{W})"))
        if self.origin is not None:
            (y0, x0), (h, w) = self.origin, self.size
            if not (-h < y0 < H and -w < x0 < W):
                out.append(("origin", f"{list(self.origin)}: a {h}x{w} rectangle there does not touch the grid "
                            f"({H}x{W})"))
        return out

    def chi(self, grid, rng, data=None):
        origin = self.origin
        if origin is None:
            origin = (int(rng.integers(0, grid.height - self.size[0] + 1)),
                      int(rng.integers(0, grid.width - self.size[1] + 1)))
        return sup.rectangle(grid, origin, self.size)


@shape
class WholeSupport(SupportSpec):
    shape: Literal["whole"] = "whole"

    def chi(self, grid, rng, data=None):
        return sup.whole(grid)


@shape
class GaussianSupport(_Centered):
    shape: Literal["gaussian"] = "gaussian"
    width: Pos = Field(4.0, description="soft bump exp(-d^2 / 2 width^2), 1 at the centre")

    def margin(self):
        return self.width

    def extent(self, H, W):  # the disk where the bump exceeds the support cut-off
        return self._round(_GAUSS_REACH * self.width)

    def chi_at(self, grid, center, rng):
        return sup.gaussian(grid, center, self.width)


@shape
class BlobSupport(_Centered):
    shape: Literal["blob"] = "blob"
    radius: Pos = Field(8.0, description="mean radius of the seeded random blob")
    roughness: float = Field(0.4, ge=0, lt=1, description="relative radius variation, in [0, 1)")

    def margin(self):
        return self.radius

    def extent(self, H, W):
        return self._round(self.radius * (1 + self.roughness))

    def chi_at(self, grid, center, rng):
        return sup.blob(grid, center, self.radius, self.roughness, rng)


@shape
class MaskSupport(SupportSpec):
    shape: Literal["mask"] = "mask"
    path: PathText = Field(..., description=".npy array in [0, 1] or an image (grey level / 255), resized to the grid")
    threshold: float | None = Field(None, gt=0, le=1, description="make the mask hard at this level")

    reads_file: ClassVar[bool] = True

    def chi(self, grid, rng, data=None):
        """``data``: the mask's values in [0, 1] on the grid, as :func:`.inputs.read_mask` read them."""
        if self.threshold is not None:
            return (data >= self.threshold).astype(float)
        return data


def _default_shape(value):
    """A support without `shape` is a disk."""
    if isinstance(value, dict) and "shape" not in value:
        return {"shape": "disk", **value}
    return value


Support = Annotated[Union[tuple(SHAPES.values())], Field(discriminator="shape"), BeforeValidator(_default_shape)]
