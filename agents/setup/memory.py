"""The memory model: the peak memory of a run, estimated from its configuration alone (no array is made).

:func:`estimate_memory` gives the peak by component; :func:`memory_problem` refuses a run that cannot fit in
``--max-memory`` or in the memory this machine has available.

Memory model
------------
The peak is ``BASELINE_BYTES`` + the layout + the state + the larger of two phases: building (the dense
support of every agent, ``8 N H W``, and the generators' temporaries) and running (an evaluation with its pair
tables, plus the largest of: a step's next state and evaluation, a logged frame's buffers, the analysis).
Per agent-site row (S rows, K the fiber dimension, D the observation dimension), in bytes:

* layout ``64 + 8K + 16K^2 + 8 + 8D`` (index, chi, agent, site and neighbour tables; prior mean, covariance,
  precision, log-det; observations) and ``24 H W`` for the site tables;
* state (mu, Sigma, phi) ``b (K + K^2 + P)``, ``P = 3`` (``K^2`` for GL(K) frames); evaluation (gradients, densities, status) ``b (K + K^2 + P) + 41`` (the term table's density bytes, 8 a term, and a
  status byte),
  with ``b = 8`` bytes a value, or ``b = 4`` and 24 more for phi read as float64 at ``dynamics.precision: float32``;
* generators while building ``8K^2 + 16K + 16``;
* pair tables ``16`` per slot (KL and beta), ``n_c^2`` slots at a site with ``n_c`` agents;
* a logged frame ``2 (K + K^2 + 3)`` times the output precision; with ``beta`` the dense (S, N) matrix in
  float64 and in the output precision, plus ``48`` bytes per pair slot;
* the analysis (``analysis.enabled``): ``8 F S`` plaquette angles for F logged frames, ``N H W`` for the
  automatic loops' masks, ``8`` per pair slot and four frame states.

The pair slots ``sum_c n_c^2`` are estimated without placing any support. For ``count`` agents of one support,
the probability that a site is covered is a product of two 1-D profiles (a box of the support's extent whose
centre is uniform where the builder draws it, or fixed), and ``E sum_c n_c^2 = (N^2 - N) sum_c p_c^2 + S``. For
listed supports each spreads its area evenly over the box its centre can reach, and the density is summed with
coordinate-compressed difference arrays.

Support areas, extents and centre ranges come from each shape's spec class (:mod:`.shapes`, ``footprint`` and
``centre_range``; e.g. ``pi (r + 1/2)^2`` for a disk of radius r, ``H W`` for ``whole`` and masks), each capped at
``H W``.

Calibration: peak RSS (``resource.getrusage``, or ``/usr/bin/time -v`` for whole runs) against the estimate,
Linux x86-64, 2 cores, numba cache warm (a cold cache compiles the kernels first: +0.3 GiB, which
``BASELINE_BYTES`` includes)::

    build + one step                                  agent-sites  pair slots  estimate  measured
    defaults (32x32, 8 disks r=8, K=3)                1.6e3        6.2e3       0.44 GiB  0.20 GiB
    256x256, 64 disks r=24                            1.2e5        3.9e5       0.54 GiB  0.30 GiB
    512x512, 200 disks r=40, spins [1, 2] (K=8)       1.0e6        5.8e6       4.1 GiB   3.9 GiB
    512x512, 2000 disks r=12 (dense supports: build)  9.1e5        4.3e6       4.8 GiB   4.4 GiB
    64x64, 3000 disks r=10 (pair tables)              9.4e5        3.6e8       14.0 GiB  11.9 GiB
    vfe run, 5 steps, every frame logged, analysis on
    256x256, 300 disks r=30, beta logged              7.1e5        1.7e7       4.9 GiB   4.8 GiB
    200x200, 400 listed disks r=15, clustered         2.8e5        2.5e7       1.45 GiB  1.36 GiB

Above 1 GiB the estimate is 2-18 % over the measured peak (the pair slots of randomly placed supports are
overestimated a little, the square approximation of a disk's extent is coarse); below, the fixed allowance for
the interpreter and a numba compile dominates. It is meant to refuse runs that cannot fit, not to budget.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model.energy import TERM_TABLE
from .config import Config

DENSITY_BYTES = sum(t.density_bytes for t in TERM_TABLE)  # a row's energy densities, every term

GIB = 2**30
BASELINE_BYTES = 500 * 2**20  # the interpreter with its libraries and kernels (0.2 GiB) + a cold numba compile


_SAMPLES = 4096  # sites per axis at which coverage profiles are evaluated (larger axes are sampled)


def _profile(n: int, L: float, rng) -> tuple[float, float]:
    """(sum_y f, sum_y f^2) of the probability f(y) that a support of extent L covers row y, its centre uniform
    on ``rng = (lo, hi)`` (None: uniform on a periodic axis)."""
    if rng is None:
        f = min(1.0, L / n)
        return n * f, n * f * f
    lo, hi = rng
    step = max(1.0, n / _SAMPLES)
    y = np.arange(0, n, step)
    a, b = y - L / 2, y + L / 2
    if hi - lo < 1e-9:
        f = ((lo >= a) & (lo <= b)).astype(float)
    else:
        f = np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0, None) / (hi - lo)
    return float(f.sum() * step), float((f * f).sum() * step)


def _pair_slots_template(spec, N: int, H: int, W: int, periodic: bool) -> tuple[float, float]:
    """(S, sum_c n_c^2) for N agents of one support spec, centres drawn as the builder draws them."""
    area, Ly, Lx = spec.footprint(H, W)
    fy, fy2 = _profile(H, Ly, spec.centre_range(0, H, periodic))
    fx, fx2 = _profile(W, Lx, spec.centre_range(1, W, periodic))
    S = N * area
    # E[n_c^2] = (N^2 - N) p_c^2 + N p_c with p_c = f(y) g(x); scaled so that sum_c N p_c = S
    scale = area / max(fy * fx, 1e-300)
    return S, max(S, (N * N - N) * fy2 * fx2 * scale * scale + S)


def _pair_slots_list(specs, H: int, W: int, periodic: bool) -> tuple[float, float]:
    """(S, sum_c n_c^2) for listed supports: each spreads its area evenly over the box its centre can reach
    (coordinate-compressed difference arrays; a uniform spread when the compressed grid would be large)."""
    areas, boxes = [], []
    for spec in specs:
        area, Ly, Lx = spec.footprint(H, W)
        box = []
        for axis, n, L in ((0, H, Ly), (1, W, Lx)):
            r = spec.centre_range(axis, n, periodic)
            lo, hi = (0.0, float(n)) if r is None else (max(0.0, r[0] - L / 2), min(float(n), r[1] + L / 2 + 1))
            box.append((int(math.floor(lo)), max(int(math.floor(lo)) + 1, int(math.ceil(hi)))))
        areas.append(area)
        boxes.append(box)
    areas = np.array(areas)
    S = float(areas.sum())
    ys = np.unique([v for (y, _) in boxes for v in y])
    xs = np.unique([v for (_, x) in boxes for v in x])
    if ys.size * xs.size > 4_000_000:
        return S, float(max(S, (S * S - float((areas ** 2).sum())) / (H * W) + S))
    dens = np.zeros((ys.size, xs.size))
    self_sq = 0.0
    for area, ((y0, y1), (x0, x1)) in zip(areas, boxes):
        h = area / ((y1 - y0) * (x1 - x0))
        self_sq += h * h * (y1 - y0) * (x1 - x0)
        i0, i1 = np.searchsorted(ys, y0), np.searchsorted(ys, y1)
        j0, j1 = np.searchsorted(xs, x0), np.searchsorted(xs, x1)
        dens[i0, j0] += h
        dens[i0, j1] -= h if j1 < xs.size else 0.0
        dens[i1, j0] -= h if i1 < ys.size else 0.0
        if i1 < ys.size and j1 < xs.size:
            dens[i1, j1] += h
    dens = dens.cumsum(axis=0).cumsum(axis=1)
    cell = np.outer(np.diff(ys, append=ys[-1]), np.diff(xs, append=xs[-1]))
    total = float((dens * dens * cell).sum())
    return S, float(max(S, total - self_sq + S))


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a run by component (``parts``), and the sizes they were computed from."""

    parts: dict
    rows: float  # S, agent-sites
    agents: int
    sites: int  # H*W
    K: int
    pair_slots: float

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def largest(self) -> tuple[str, float]:
        name = max(self.parts, key=self.parts.get)
        return name, float(self.parts[name])


def estimate_memory(config: Config) -> MemoryEstimate:
    """Peak memory of building and running ``config`` (see the module docstring for the model)."""
    H, W = config.grid.height, config.grid.width
    HW = float(H * W)
    N = config.agents.n_agents
    periodic = config.grid.boundary == "periodic"
    if config.agents.supports is not None:
        S, slots = _pair_slots_list(config.agents.supports, H, W, periodic)
    else:
        S, slots = _pair_slots_template(config.agents.support, N, H, W, periodic)
    K = config.fiber.K
    obs = config.observations
    D = 0 if obs.kind == "none" else (obs.dim or (len(obs.C) if obs.C is not None else K))
    out = config.output
    itemsize = 4 if out.dtype == "float32" else 8
    frames = config.dynamics.steps // out.every + 2

    layout = S * (64 + 8 * K + 16 * K * K + 8 + 8 * D) + 24 * HW
    b = np.dtype(config.dynamics.precision).itemsize  # the state's and the gradients' (docs/model.md#precision)
    P = config.fiber.n_phi  # phi's coordinates a row: 3, or K^2 for GL(K) frames
    state = S * b * (K + K * K + P)
    evaluation = S * (b * (K + K * K + P) + DENSITY_BYTES + 1 + (8 * P if b < 8 else 0))
    pairs = 16 * slots
    build = 8 * N * HW + 48 * HW + S * (8 * K * K + 16 * K + 16)
    step = state + evaluation + pairs + 9 * S  # the next state and its evaluation, before the old ones go
    frame_size = S * (K + K * K + P) * itemsize
    logged = 2 * frame_size + (S * N * (8 + itemsize) + 48 * slots if "beta" in out.fields else 0.0)
    analysis = (8 * frames * S + N * HW + 8 * slots + 8 * frames * N + S * (K + K * K + P) * 8 * 4) \
        if config.analysis.enabled else 0.0
    parts = {"the interpreter and libraries": float(BASELINE_BYTES), "layout": layout, "state": state}
    # building, and then running (an evaluation with its pair tables, and the largest of a step's, a logged
    # frame's and the analysis' temporaries): the peak is the larger of the two
    running = {"a step (next state, evaluation and pair tables)": step,
               "logging a frame" + (" (beta: an agent-sites x agents matrix)" if "beta" in out.fields else ""):
                   logged,
               "the analysis (every logged frame)": analysis}
    phase = max(running, key=running.get)
    if build > evaluation + pairs + running[phase]:
        parts["building (dense supports, generators)"] = build
    else:
        parts["gradients"] = evaluation
        parts["pair tables"] = pairs
        parts[phase] = running[phase]
    parts = {k: v for k, v in parts.items() if v > 0}
    return MemoryEstimate(parts, S, N, int(HW), K, slots)


def _cgroup_limit() -> float | None:
    """Bytes this process's cgroup may still use (containers), or None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:
                return None
            return float(int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> float:
    """Bytes of memory available to a new run: psutil, else /proc/meminfo MemAvailable, else sysconf."""
    avail = None
    try:
        import psutil

        avail = float(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed or not supported here: try the next source
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            pass
        if avail is None:
            try:
                avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
            except (ValueError, OSError, AttributeError):
                avail = float("inf")
    cg = _cgroup_limit()
    return min(avail, cg) if cg is not None else avail


def _gib(nbytes: float) -> str:
    g = nbytes / GIB
    if g >= 1024:
        return f"{g / 1024:,.1f} TiB"
    return f"{g:.1f} GiB" if g >= 0.1 else f"{g:.3f} GiB"


def _key_of_part(name: str, config: Config) -> str:
    if name.startswith("logging") and "beta" in config.output.fields:
        return "output.fields"
    if name.startswith("the analysis"):
        return "analysis.enabled"
    if name == "the interpreter and libraries":
        return ""
    return "agents"


def memory_problem(config: Config, max_memory_gib: float | None = None,
                   available: float | None = None) -> tuple[str, str] | None:
    """``(key, message)`` if the run's estimated peak memory exceeds ``max_memory_gib`` (default: the memory
    this machine has available), else None."""
    est = estimate_memory(config)
    need = est.total
    if max_memory_gib is not None:
        limit, which = max_memory_gib * GIB, f"--max-memory allows {_gib(max_memory_gib * GIB)}"
    else:
        limit = available if available is not None else available_memory()
        which = f"this machine has {_gib(limit)} (use --max-memory GIB to override)"
    if need <= limit:
        return None
    name, size = est.largest()
    if name == "the interpreter and libraries" and need - size > 0.1 * size:  # name what the scenario controls
        name, size = max(((k, v) for k, v in est.parts.items() if k != name), key=lambda kv: kv[1])
    detail = f"{est.agents} agents on {est.sites} sites, ~{est.rows:.3g} agent-sites, K={est.K}"
    if name in ("pair tables", "a step (next state, evaluation and pair tables)") or "beta" in name:
        detail += f", ~{est.pair_slots:.3g} agent pairs at sites"
    key = _key_of_part(name, config)
    if key == "agents" and est.K >= 10:  # K^2 per agent-site dominates: the fiber is what is large
        key = "fiber.spins"
    return key, (f"the run needs {_gib(need)}; {which}; mostly {name}: {_gib(size)} ({detail})")


def parse_memory_limit(text) -> float | None:
    """``--max-memory GIB``: a positive number of GiB (None: no option given)."""
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"--max-memory {text}: expected a number of GiB, e.g. 8 or 0.5") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--max-memory {text}: expected a positive number of GiB")
    return value
