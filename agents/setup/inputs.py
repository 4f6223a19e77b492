"""The files a scenario names, each read and checked once: mask images, observation arrays, an earlier run.

:func:`read_inputs` opens every file, checks it is what the scenario says it is (readable, the right shape,
finite, a trajectory of the same grid and fiber with the frame asked for) and returns the arrays it read as
:class:`Inputs`, which :func:`~.build.build` turns into the layout and state: nothing below set-up reads a file.
Each problem is one ``(key path, message)`` naming the file and what is wrong; the caller locates the key's
line in the scenario file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.grid import SUPPORT_CUTOFF, Grid
from .config import Config
from .shapes import MaskSupport

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")
MAX_IMAGE_PIXELS = 10**8
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
FROM_KEY = "agents.init.from.path"


def resolve(base: str | Path, f: str | Path) -> Path:
    """A scenario's file path: absolute as given, relative to ``base`` (the scenario's folder) otherwise."""
    p = Path(f)
    return p if p.is_absolute() else Path(base) / p


def is_hdf5(path: Path) -> bool:
    """Whether the file starts with the HDF5 signature (an unreadable file raises OSError)."""
    with open(path, "rb") as fh:
        return fh.read(8) == HDF5_SIGNATURE


def short(exc: BaseException) -> str:
    """An exception as a short one-line reason (its type, and its text if it has one)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


@dataclass(frozen=True)
class EarlierRun:
    """The frame of an earlier run a scenario starts from, with the supports it ran on (checked in build)."""

    state: object  # the frame's State (mu, sigma, phi; its step is the earlier run's)
    offset: np.ndarray
    index: np.ndarray
    name: str  # the file's name, for messages


@dataclass(frozen=True)
class Inputs:
    """The arrays read from a scenario's files. ``masks``: {support key path: values in [0, 1] on the grid}."""

    masks: dict = field(default_factory=dict)
    observations: np.ndarray | None = None  # (H, W, D)
    from_run: EarlierRun | None = None


def referenced_files(config: Config) -> list[tuple[str, str]]:
    """(key path, file) of every file a scenario names (masks, observation files, earlier runs)."""
    return [(key + ".path", spec.path) for key, spec in config.agents.named_supports() if spec.reads_file] + \
        ([("observations.path", config.observations.path)] if config.observations.kind == "file" else []) + \
        ([(FROM_KEY, config.agents.init.from_run.path)] if config.agents.init.from_run is not None else [])


def missing_files(config: Config, base_dir: str | Path) -> list[tuple[str, str]]:
    """``file not found`` (or an unusable path, or not a regular file) for each file the scenario names: the
    first, cheap check."""
    problems = []
    for key, f in referenced_files(config):
        try:
            target = resolve(base_dir, f)
            found = target.exists()
            # by stat alone: a FIFO is never opened (reading one waits for a writer forever), nor a device
            special = found and not target.is_dir() and not target.is_file()
        except OSError as exc:  # a name too long, a loop of links
            problems.append((key, f"cannot use this path ({exc.strerror or exc})"))
            continue
        if not found:
            problems.append((key, f"file not found: {f}"))
        elif special:
            problems.append((key, f"{f} is not a regular file (a FIFO or a device); input files must be regular "
                                  "files"))
    return problems


def input_hashes(config: Config, base_dir: str | Path) -> dict[str, dict]:
    """{key path: {"path": the file as resolved, "sha256": its content's hex digest}} of every file the scenario
    names (:func:`referenced_files`), for the run's history (docs/model.md#file-provenance). A file that cannot
    be read has ``sha256`` None (the set-up, which reads it too, says why)."""
    out = {}
    for key, f in referenced_files(config):
        path = resolve(base_dir, f)
        out[key] = {"path": str(path), "sha256": file_sha256(path)}
    return out


def file_sha256(path: Path, block: int = 1 << 20) -> str | None:
    h = hashlib.sha256()
    try:
        if not path.is_file():  # never open a FIFO or a device (reading one may wait forever)
            return None
        with open(path, "rb") as fh:
            while chunk := fh.read(block):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


# --- one array file on the grid -----------------------------------------------------------------------------------

def read_grid_file(path: Path, H: int, W: int, what: str) -> tuple[np.ndarray | None, str | None]:
    """(float array or None, problem or None): a .npy (H, W) / (H, W, D) real array, or an image scaled to
    [0, 1] and resized to the grid."""
    if path.is_dir():
        return None, f"{path.name} is a folder, not a file"
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same answer
            return None, f"{path.name} is not a readable .npy array ({short(exc)})"
        if not isinstance(arr, np.ndarray):
            return None, f"{path.name} holds several arrays (an .npz?), not one .npy array"
        if arr.dtype.kind not in "biuf":
            return None, f"{path.name} holds {arr.dtype} values, not real numbers"
        if arr.ndim not in (2, 3) or arr.shape[:2] != (H, W):
            return None, (f"{path.name} has shape {tuple(arr.shape)}; {what} must be ({H}, {W})"
                          + (" or (H, W, D)" if what == "observations" else "") + f" for the {H}x{W} grid")
        if arr.ndim == 3 and what != "observations" and arr.shape[2] == 0:
            return None, f"{path.name} has no channels"
        try:
            arr = np.array(arr, dtype=float)  # read into memory: the file is not held open
        except Exception as exc:  # noqa: BLE001 - a truncated file fails only when read
            return None, f"{path.name} cannot be read ({short(exc)})"
        if not np.isfinite(arr).all():
            return None, f"{path.name} contains NaN or infinite values"
        return arr, None
    if suffix in IMAGE_SUFFIXES:
        try:
            from PIL import Image

            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_IMAGE_PIXELS:
                    return None, f"{path.name} is a {w}x{h} image, too large (at most {MAX_IMAGE_PIXELS:.0e} pixels)"
                img.load()
                img = img.convert("RGB") if img.mode not in ("L", "RGB") else img
                img = img.resize((W, H), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=float) / 255.0, None
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds (OSError, SyntaxError, ...)
            return None, f"{path.name} is not a readable image ({short(exc)})"
    return None, f"{path.name}: unsupported file type {path.suffix or '(none)'!r} (use .npy or an image: " \
                 f"{', '.join(IMAGE_SUFFIXES)})"


# --- masks, observations, an earlier run -----------------------------------------------------------------------

def read_mask(path: Path, H: int, W: int) -> tuple[np.ndarray | None, str | None]:
    """(values in [0, 1] on the grid, or None; problem or None). Colour images are averaged over channels."""
    arr, why = read_grid_file(path, H, W, "a mask")
    if why is not None:
        return None, why
    values = arr.mean(axis=2) if arr.ndim == 3 else arr
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0 or hi > 1:
        return None, f"{path.name}: mask values must lie in [0, 1] (found {lo:g}..{hi:g})"
    return values, None


def from_file(grid: Grid, path: str | Path, threshold: float | None = None) -> np.ndarray:
    """chi of a mask file (``.npy`` in [0, 1] or an image), hard at ``threshold``; outside a scenario."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    values, why = read_mask(path, grid.height, grid.width)
    if why is not None:
        raise ValueError(why)
    return MaskSupport(path=str(path), threshold=threshold).chi(grid, None, values)


def _mask_problem(spec: MaskSupport, values: np.ndarray, name: str) -> str | None:
    level = spec.threshold if spec.threshold is not None else SUPPORT_CUTOFF
    if float(np.max(values)) < level:
        return f"{name}: the mask is empty (no value >= {level:g})"
    return None


def _observations(config: Config, path: Path) -> tuple[np.ndarray | None, list[tuple[str, str]]]:
    H, W = config.grid.height, config.grid.width
    arr, why = read_grid_file(path, H, W, "observations")
    if why is not None:
        return None, [("observations.path", why)]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    obs = config.observations
    D = int(arr.shape[2])
    if D == 0:
        return None, [("observations.path", f"{path.name} has shape {tuple(arr.shape)}: no observation components")]
    problems = []
    if obs.dim is not None and obs.dim != D:
        problems.append(("observations.dim", f"is {obs.dim} but {path.name} holds {D}-dimensional observations"))
    if obs.C is not None and len(obs.C) != D:
        problems.append(("observations.C", f"has {len(obs.C)} rows but {path.name} holds {D}-dimensional "
                         "observations"))
    if obs.C is None and D > config.fiber.K:
        problems.append(("observations.C", f"{path.name} holds {D}-dimensional observations, more than K = "
                         f"{config.fiber.K}: give the {D} x {config.fiber.K} matrix C"))
    if isinstance(obs.noise, list) and len(obs.noise) != D:
        n = len(obs.noise)
        problems.append(("observations.noise", f"is {n}x{n} (or {n} diagonal entries) but {path.name} holds "
                         f"{D}-dimensional observations"))
    return (None if problems else arr), problems


def _earlier_run(config: Config, path: Path) -> tuple[EarlierRun | None, list[tuple[str, str]]]:
    frame = config.agents.init.from_run.frame
    name = path.name

    def fail(message, key=FROM_KEY):
        return None, [(key, message)]

    if path.is_dir():
        return fail(f"{name} is a folder, not a trajectory file")
    try:
        hdf5 = is_hdf5(path)
    except OSError as exc:
        return fail(f"{name} cannot be read ({exc.strerror or exc})")
    if not hdf5:
        return fail(f"{name} is not an HDF5 trajectory file (no HDF5 signature)")
    from ..io.reader import load

    try:
        with load(path) as traj:
            fields, n = list(traj.fields), len(traj.frame_steps)
            grid, K, n_agents = traj.grid, int(traj.K), int(traj.n_agents)
            missing = [f for f in ("mu", "sigma", "phi") if f not in fields]
            if missing:
                return fail(f"{name} did not log {', '.join(missing)}: a run cannot start from it")
            if n == 0:
                return fail(f"{name} holds no logged frame")
            if not -n <= frame < n:
                return fail(f"frame {frame} is out of range: {name} holds {n} logged frames (use 0..{n - 1}, or "
                            f"-{n}..-1 from the end)", "agents.init.from.frame")
            cfg_grid = (config.grid.height, config.grid.width, config.grid.boundary)
            if (grid.height, grid.width, grid.boundary) != cfg_grid:
                return fail(f"{name} ran on a {grid.height}x{grid.width} {grid.boundary} grid, this scenario has "
                            f"{cfg_grid[0]}x{cfg_grid[1]} {cfg_grid[2]}")
            if K != config.fiber.K:
                return fail(f"{name} has fiber dimension K = {K}, this scenario {config.fiber.K}")
            if n_agents != config.agents.n_agents:
                return fail(f"{name} has {n_agents} agents, this scenario {config.agents.n_agents}")
            offset, index = np.asarray(traj.offset), np.asarray(traj.index)
            try:
                state = traj.state(frame)
            except Exception as exc:  # noqa: BLE001 - a damaged frame
                return fail(f"frame {frame} of {name} cannot be read ({short(exc)})")
    except Exception as exc:  # noqa: BLE001 - an HDF5 file that is not a run, or a damaged one
        return fail(f"{name} is not a readable trajectory ({short(exc)})")
    for f in ("mu", "sigma", "phi"):
        if not np.isfinite(getattr(state, f)).all():
            return fail(f"frame {frame} of {name} holds non-finite {f}", "agents.init.from.frame")
    return EarlierRun(state, offset, index, name), []


def read_inputs(config: Config, base_dir: str | Path) -> tuple[Inputs, list[tuple[str, str]]]:
    """Read and check every file the scenario names, each once: (the arrays, the problems as (key, message)).
    The files must exist (:func:`missing_files` says which do not)."""
    try:
        return _read_inputs(config, Path(base_dir))
    except OSError as exc:  # a name too long, a loop of links, an unreadable folder
        key = next((key for key, _ in referenced_files(config)), "agents")
        return Inputs(), [(key, f"cannot read a file the scenario names ({short(exc)})")]


def _read_inputs(config: Config, base: Path) -> tuple[Inputs, list[tuple[str, str]]]:
    H, W = config.grid.height, config.grid.width
    problems = []
    masks, read = {}, {}
    for key, spec in config.agents.named_supports():
        if not spec.reads_file:
            continue
        path = resolve(base, spec.path)
        if str(path) not in read:  # a mask listed for many agents is read once
            read[str(path)] = read_mask(path, H, W)
        values, why = read[str(path)]
        why = why if why is not None else _mask_problem(spec, values, path.name)
        if why is not None:
            problems.append((f"{key}.path", why))
        else:
            masks[key] = values
    observations = from_run = None
    if config.observations.kind == "file":
        observations, found = _observations(config, resolve(base, config.observations.path))
        problems += found
    if config.agents.init.from_run is not None:
        from_run, found = _earlier_run(config, resolve(base, config.agents.init.from_run.path))
        problems += found
    return Inputs(masks, observations, from_run), problems


def load_inputs(config: Config, base_dir: str | Path) -> Inputs:
    """:func:`read_inputs`, raising ``ValueError("key.path: message")`` for the first problem (for
    :func:`~.build.build` called without a checked scenario)."""
    problems = missing_files(config, base_dir)
    inputs, problems = (Inputs(), problems) if problems else read_inputs(config, base_dir)
    if problems:
        key, message = problems[0]
        raise ValueError(f"{key}: {message}")
    return inputs
