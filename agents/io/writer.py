"""Writing the trajectory file (SPEC section 8). The only module besides the reader that knows HDF5.

Layout: H5MD-style, states per agent-site ("particles"); see SPEC section 8 for the tree. Design choices:

* The file is written in SWMR mode: every dataset is created up front, then frames are appended and flushed
  as they are produced. A run killed at any moment leaves a consistent file holding every flushed frame.
* SWMR forbids changing attributes, so ``/parameters`` gets ``status = running`` (with the writer's pid and
  host) before the first frame, and the final status is written after the SWMR session is closed. A file
  whose status is still ``running`` while its writer is gone was killed.
* Energies are logged every step but buffered in memory and flushed with each frame and at least every
  ``flush_seconds``; the checkpoint (float64 state and step) is rewritten with every frame and at the end,
  into two alternating slots (``/checkpoint/slot0``, ``/checkpoint/slot1``; ``/checkpoint/active`` names
  the committed one) so a kill during a checkpoint write never leaves a half-written state.
* Within a series the value is appended before its step, so a series' ``step`` never runs ahead of its
  values; readers use the shortest length of a group's datasets.
  ``--resume`` continues from the checkpoint and first truncates every series to it, which is why a resumed
  run is bit-identical to an uninterrupted one.
* ``time`` is the step count as a float (gradient descent has no physical time; the step sizes are in
  ``/parameters/config_json``).
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import platform
import socket
import time
from pathlib import Path

import h5py
import numpy as np

from ..model.energy import TERMS
from .recovery import clear_consistency_flags, writer_alive
from ..model.layout import Layout
from ..model.state import State

FORMAT_VERSION = [1, 1]
GRAD_FIELDS = ("mu", "sigma", "phi")
CHECKPOINT_SLOTS = ("slot0", "slot1")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict:
    import numba
    import scipy

    from .. import __version__

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "scipy": scipy.__version__, "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
            "package": __version__}


class TrajectoryWriter:
    """Streams one run into one ``.h5`` file. Use :meth:`create` or :meth:`resume`, then :meth:`close`."""

    def __init__(self, f: h5py.File, path: Path, fields: list[str], flush_seconds: float = 1.0):
        self._f = f
        self.path = path
        self.fields = fields
        self.flush_seconds = flush_seconds
        self._energy_buffer: list[tuple] = []
        self._last_flush = time.monotonic()
        self._closed = False

    # --- construction ----------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path, layout: Layout, config_json: str, scenario_yaml: str, seed: int, dtype: str = "float32",
               fields=("mu", "sigma", "phi"), compression: str = "gzip", compression_level: int = 1,
               flush_seconds: float = 1.0) -> "TrajectoryWriter":
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w", libver="latest")
        try:
            _write_static(f, layout, config_json, scenario_yaml, seed)
            comp = {} if compression == "none" else (
                {"compression": "gzip", "compression_opts": compression_level, "shuffle": True}
                if compression == "gzip" else {"compression": "lzf", "shuffle": True})
            S, K, N = layout.n_rows, layout.K, layout.n_agents
            shapes = {"mu": (S, K), "sigma": (S, K, K), "phi": (S, 3), "beta": (S, N)}
            for name in fields:
                g = f.create_group(f"particles/agents/{name}")
                _series(g, "step", np.int64)
                _series(g, "time", np.float64)
                g.create_dataset("value", shape=(0,) + shapes[name], maxshape=(None,) + shapes[name],
                                 chunks=(1,) + shapes[name], dtype=dtype, **comp)
            for term in ("total",) + TERMS:
                g = f.create_group(f"observables/energy/{term}")
                _series(g, "step", np.int64)
                _series(g, "value", np.float64)
            for name in GRAD_FIELDS:
                g = f.create_group(f"observables/grad_norm/{name}")
                _series(g, "step", np.int64)
                _series(g, "value", np.float64)
            g = f.create_group("observables/spd_retractions")
            _series(g, "step", np.int64)
            _series(g, "value", np.int64)
            ck = f.create_group("checkpoint")
            for slot in CHECKPOINT_SLOTS:
                g = ck.create_group(slot)
                g.create_dataset("mu", shape=(S, K), dtype=np.float64)
                g.create_dataset("sigma", shape=(S, K, K), dtype=np.float64)
                g.create_dataset("phi", shape=(S, 3), dtype=np.float64)
                g.create_dataset("step", shape=(1,), dtype=np.int64, data=[-1])
            ck.create_dataset("active", shape=(1,), dtype=np.int8, data=[-1])
            ck.attrs["rng"] = json.dumps({"bit_generator": "PCG64", "root_seed": seed, "purposes": "SeedSequence "
                                          "spawn keys, see agents.build.PURPOSES; the dynamics draw no numbers"})
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        return cls(f, path, list(fields), flush_seconds)

    @classmethod
    def resume(cls, path, layout: Layout, config_json: str, flush_seconds: float = 1.0):
        """Reopen ``path`` for appending at its checkpoint. Returns ``(writer, checkpoint_state)``."""
        path = Path(path)
        with h5py.File(path, "r", swmr=True) as f:
            status = f["parameters"].attrs["status"]
            pid, host = int(f["parameters"].attrs["writer_pid"]), str(f["parameters"].attrs["writer_host"])
        if status == "running" and writer_alive(pid, host):
            raise RuntimeError(f"{path}: another process (pid {pid}) is still writing this run")
        clear_consistency_flags(path)  # left set by a killed writer
        f = h5py.File(path, "a", libver="latest")
        try:
            stored = json.loads(f["parameters"].attrs["config_json"])
            mine = json.loads(config_json)
            for section in stored:
                if section not in ("dynamics", "output") and stored[section] != mine.get(section):
                    raise ValueError(f"{path}: cannot resume: the scenario's `{section}` differs from the run's")
            state = read_checkpoint(f)
            if state is None:
                raise ValueError(f"{path}: cannot resume: the run has no checkpoint yet")
            step = state.step
            if state.mu.shape != (layout.n_rows, layout.K):
                raise ValueError(f"{path}: cannot resume: stored state does not match the layout")
            _truncate_after(f, step)
            fields = [name for name in ("mu", "sigma", "phi", "beta") if f"particles/agents/{name}" in f]
            p = f["parameters"].attrs
            p["status"] = "running"
            p["message"] = ""
            p["writer_pid"] = os.getpid()
            p["writer_host"] = socket.gethostname()
            p["resumed_at"] = _now()
            p["config_json"] = config_json
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        return cls(f, path, fields, flush_seconds), state

    # --- appending -------------------------------------------------------------------------------------------
    def log_energy(self, step: int, terms: dict, grad_norms: dict, spd_retractions: int) -> None:
        """Buffer one step's energies (flushed with frames and at least every ``flush_seconds``)."""
        self._energy_buffer.append((step, sum(terms.values()), terms, grad_norms, spd_retractions))
        if time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def log_frame(self, state: State, beta: np.ndarray | None = None) -> None:
        """Append the state as a frame and make it the checkpoint."""
        f = self._f
        for name in self.fields:
            g = f[f"particles/agents/{name}"]
            data = beta if name == "beta" else getattr(state, name)
            if data is None:
                raise ValueError("beta is logged but was not given")
            n = g["step"].shape[0]
            if n and g["step"][n - 1] == state.step:
                continue  # already logged (e.g. the final frame coinciding with an `every` frame)
            _append(g["value"], data)  # the step goes last: it marks the frame complete
            _append(g["time"], float(state.step))
            _append(g["step"], state.step)
        self.checkpoint(state)

    def checkpoint(self, state: State) -> None:
        """Make ``state`` the checkpoint: the energies up to it first, then the idle slot, then the switch.

        Two slots, so a kill while the state is being written leaves the previous checkpoint intact.
        """
        self.flush()
        ck = self._f["checkpoint"]
        active = int(ck["active"][0])
        slot = 1 if active == 0 else 0
        g = ck[CHECKPOINT_SLOTS[slot]]
        for name in ("mu", "sigma", "phi"):
            g[name][...] = getattr(state, name)
            g[name].flush()
        g["step"][0] = state.step
        g["step"].flush()
        ck["active"][0] = slot
        ck["active"].flush()
        self._f.flush()

    def flush(self) -> None:
        buf = self._energy_buffer
        if buf:
            f = self._f
            steps = np.array([b[0] for b in buf], dtype=np.int64)
            series = {"total": [b[1] for b in buf]}
            for t in TERMS:
                series[t] = [b[2][t] for b in buf]
            for name, values in series.items():
                _append_many(f[f"observables/energy/{name}"], steps, np.array(values, dtype=np.float64))
            for name in GRAD_FIELDS:
                _append_many(f[f"observables/grad_norm/{name}"], steps,
                             np.array([b[3][name] for b in buf], dtype=np.float64))
            _append_many(f["observables/spd_retractions"], steps, np.array([b[4] for b in buf], dtype=np.int64))
            self._energy_buffer = []
        self._f.flush()
        self._last_flush = time.monotonic()

    # --- closing ---------------------------------------------------------------------------------------------
    def close(self, status: str, message: str = "") -> None:
        """Flush, end the SWMR session and record the final status."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._f.close()
        with h5py.File(self.path, "a", libver="latest") as f:
            p = f["parameters"].attrs
            p["status"] = status
            p["message"] = message
            p["finished_at"] = _now()


def read_checkpoint(f: h5py.File) -> State | None:
    """The committed checkpoint (float64 state and step), or None before the first one."""
    ck = f["checkpoint"]
    active = int(ck["active"][0])
    if active < 0:
        return None
    g = ck[CHECKPOINT_SLOTS[active]]
    return State.from_arrays(g["mu"][...], g["sigma"][...], g["phi"][...], int(g["step"][0]))


def _series(group, name, dtype):
    group.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(1024,), dtype=dtype)


def _append(ds, value) -> None:
    n = ds.shape[0]
    ds.resize(n + 1, axis=0)
    ds[n] = value
    ds.flush()


def _append_many(group, steps: np.ndarray, values: np.ndarray) -> None:
    for ds, v in ((group["value"], values), (group["step"], steps)):
        n = ds.shape[0]
        ds.resize(n + v.shape[0], axis=0)
        ds[n:] = v
        ds.flush()


def _truncate_after(f: h5py.File, step: int) -> None:
    """Drop every logged entry with a step beyond ``step`` (every group holding a `step` series)."""
    def visit(name, obj):
        if isinstance(obj, h5py.Group) and "step" in obj and isinstance(obj["step"], h5py.Dataset):
            steps = obj["step"][...]
            keep = int(np.searchsorted(steps, step, side="right"))
            for key in obj:
                ds = obj[key]
                if isinstance(ds, h5py.Dataset) and ds.maxshape[0] is None and ds.shape[0] > keep:
                    ds.resize(keep, axis=0)

    f.visititems(visit)


def _write_static(f: h5py.File, layout: Layout, config_json: str, scenario_yaml: str, seed: int) -> None:
    from .. import __version__

    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array(FORMAT_VERSION, dtype=np.int64)
    creator = h5md.create_group("creator")
    creator.attrs["name"] = "gauge-vfe"
    creator.attrs["version"] = __version__
    author = h5md.create_group("author")
    try:
        author.attrs["name"] = getpass.getuser()
    except Exception:  # no user name in some containers
        author.attrs["name"] = "unknown"
    p = f.create_group("parameters").attrs
    p["scenario_yaml"] = scenario_yaml
    p["config_json"] = config_json
    p["seed"] = seed
    p["versions"] = json.dumps(versions())
    p["started_at"] = _now()
    p["finished_at"] = ""
    p["status"] = "running"
    p["message"] = ""
    p["writer_pid"] = os.getpid()
    p["writer_host"] = socket.gethostname()
    g = f.create_group("grid").attrs
    g["height"] = layout.grid.height
    g["width"] = layout.grid.width
    g["boundary"] = layout.grid.boundary
    fib = f.create_group("fiber")
    fib.attrs["irreps"] = np.array(layout.fiber.spins, dtype=np.int64)
    fib.attrs["K"] = layout.K
    fib.create_dataset("generators", data=layout.fiber.generators)
    a = f.create_group("agents")
    a.create_dataset("sites/offset", data=layout.offset)
    a.create_dataset("sites/index", data=layout.index)
    a.create_dataset("support", data=layout.chi)
    a.create_dataset("prior/mu", data=layout.prior_mu)
    a.create_dataset("prior/sigma", data=layout.prior_sigma)
    obs = layout.observations
    if obs is not None:
        a.create_dataset("observation/value", data=obs.value)
        a.create_dataset("observation/C", data=obs.C)
        a.create_dataset("observation/Rn", data=obs.Rn)
