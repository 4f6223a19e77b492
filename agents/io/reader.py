"""Reading trajectory files: what notebooks, ``vfe inspect``, the analysis and the viewer use.

The file layout is docs/model.md#file; only this package (``gauge_vfe.agents.io``) knows it.

    traj = agents.load("runs/quickstart.h5")
    traj.status, traj.config["energy"]["kappa"]
    traj.energy("total")                    # (steps, values) for every step
    traj.field("mu", frame=-1)              # (N, H, W, K), NaN outside each agent's support
    traj.field("sigma", frame=0, agent=2)   # (H, W, K, K)
    traj.state(-1)                          # State (float64) of a logged frame
    traj.steps                              # the logged frames' steps
    traj.field("mu", step=200, agent=3)     # by step: (H, W, K); a step not logged names the nearest ones
    traj.state(step=200)
    traj.energy_params                      # the run's EnergyParams (weights), from the stored configuration
    traj.evaluate(-1)                       # Evaluation of a logged frame: densities, terms, beta, as the run had it
    traj.to_xarray()                        # every logged array as a labelled xarray.Dataset

Logged frames are addressed either by ``frame`` (their index, negative from the end) or by ``step`` (keyword
only); with neither, the last frame.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..analysis.coupling import coupled_layout
from ..analysis.meta_agents import ConsensusParams
from ..analysis.pipeline import AnalysisResult
from ..model.attention import Attention
from ..model.attention import attention as attention_of
from ..model.energy import TERMS, Evaluation
from ..model.energy import evaluate as evaluate_energy
from ..model.fiber import make_fiber, make_glk_fiber
from ..model.grid import Grid
from ..model.hierarchy import HierarchyParams
from ..model.layout import Layout, Observations, build_layout
from ..model.params import EnergyParams
from ..model.state import State
from .analysis_store import read_analysis
from .checked import read
from .integrity import check_file
from .lock import writer_active
from .provenance import last_run_record, read_history
from .recovery import open_trajectory_file, writer_alive
from .schema import (FRAME_SERIES, SERIES_BY_KEY, committed_frames, fiber_group, frame_path, read_checkpoint,
                     run_record)
from .suggest import did_you_mean


class StepNotLogged(IndexError):
    """A step asked for that is not a logged frame's (an IndexError, like a frame index out of range)."""


class NotReproducible(ValueError):
    """The layout in force at a step needs what the file does not hold (see :meth:`Trajectory.layout_at`)."""


class Trajectory:
    """A run file opened for reading (``gv.load``): the resolved scenario, the energies of every step, the logged
    frames addressed by index or by step, the stored analysis, and the whole run as one labelled xarray Dataset.
    The only reader notebooks, ``vfe inspect``, the analysis and the figures use (docs/model.md#file); it
    opens a file a run is still writing, or a killed run's file, read-only.
    """

    def __init__(self, path: str | Path, handle: h5py.File | None = None):
        """Open ``path`` for reading, or wrap an already open ``handle`` of it (which stays the caller's)."""
        self.path = Path(path)
        self._owns_handle = handle is None
        self._f = open_trajectory_file(self.path) if handle is None else handle
        f = self._f
        if handle is None:  # a foreign or inconsistent file: one line naming it, before anything is allocated
            try:
                check_file(f, self.path)
            except BaseException:
                f.close()
                raise
        p = f["parameters"].attrs
        self.config: dict = json.loads(p["config_json"])
        self.scenario_yaml: str = str(p["scenario_yaml"])
        self.seed = int(p["seed"])
        self.versions: dict = json.loads(p["versions"])
        self.started_at = str(p["started_at"])
        record = run_record(f)
        self.finished_at = record["finished_at"]
        self.recorded_status = record["status"]
        self.message = record["message"]
        self._writer = (int(p["writer_pid"]), str(p["writer_host"]))
        g = f["grid"].attrs
        self.grid = Grid(int(g["height"]), int(g["width"]), str(g["boundary"]))
        self.spins = [int(s) for s in f["fiber"].attrs["irreps"]]
        self.K = int(f["fiber"].attrs["K"])
        self.group = fiber_group(f["fiber"].attrs)  # so3, or glk: GL(K) frames (docs/model.md#glk-frames)
        self.offset = read(f["agents/sites/offset"])
        self.index = read(f["agents/sites/index"])
        self.chi = read(f["agents/support"])
        self.n_agents = self.offset.size - 1
        self.fields = [s.key for s in FRAME_SERIES if s.path in f]
        self._analysis = _NOT_READ
        self._layout: Layout | None = None  # the stored layout, built once for evaluate

    # --- context manager -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_handle:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"Trajectory({str(self.path)!r}, status={self.status!r}, frames={len(self.frame_steps)}, "
                f"steps={self.last_step}, agents={self.n_agents}, grid={self.grid.height}x{self.grid.width})")

    # --- run metadata ----------------------------------------------------------------------------------------
    @property
    def writer(self) -> tuple[int, str]:
        """(pid, host) of the process that wrote the file."""
        return self._writer

    @property
    def status(self) -> str:
        """The recorded status; ``killed`` when it says ``running`` but no writer holds the file any more."""
        if self.recorded_status == "running" and not self._owns_handle:
            return "running"  # read through the writer's own handle
        if self.recorded_status == "running" and writer_active(self.path) is None and \
                writer_alive(*self._writer) is not True:
            return "killed"
        return self.recorded_status

    def _complete(self, groups: list[str]) -> int:
        """Entries present in every dataset of these groups (a killed writer may leave one entry short)."""
        return min(ds.shape[0] for g in groups for ds in self._f[g].values())

    @property
    def frame_steps(self) -> np.ndarray:
        """Steps of the committed logged frames (every field written; docs/model.md#file-writing)."""
        if not self.fields:
            return np.zeros(0, dtype=np.int64)
        n = committed_frames(self._f, self.fields)
        return read(self._f[f"{frame_path(self.fields[0])}/step"], np.s_[:n])

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of a series logged every step, by its key in :data:`.schema.SERIES` (``total``, a
        term, ``grad_norm/mu``, ``spd_retractions``, ``info_bits``)."""
        series = SERIES_BY_KEY.get(key)
        if series is None or series.frame:
            raise KeyError(f"unknown series {key!r}")
        return self._series(series.path)

    def _series(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        n = self._complete([group])
        g = self._f[group]
        return read(g["step"], np.s_[:n]), read(g["value"], np.s_[:n])

    @property
    def last_step(self) -> int:
        steps = self.energies()["step"]
        return int(steps[-1]) if steps.size else -1

    def energy(self, term: str = "total") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of an energy term (weights included) at every step."""
        if term not in ("total",) + TERMS:
            hint = did_you_mean(term, ("total",) + TERMS, always_list=True, noun="terms")
            raise KeyError(f"unknown energy term {term!r}{hint}")
        return self.series(term)

    def energies(self) -> dict[str, np.ndarray]:
        """Every term's values (and ``step``) as arrays of equal length."""
        groups = [SERIES_BY_KEY[t].path for t in ("total",) + TERMS]
        n = self._complete(groups)
        out = {"step": read(self._f[groups[0]]["step"], np.s_[:n])}
        for term, group in zip(("total",) + TERMS, groups):
            out[term] = read(self._f[f"{group}/value"], np.s_[:n])
        return out

    def grad_norm(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        return self.series(f"grad_norm/{field}")

    def spd_retractions(self) -> tuple[np.ndarray, np.ndarray]:
        return self.series("spd_retractions")

    def info_bits(self, cumulative: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(steps (E,), values (E, N)): the bits of belief update of every agent in the step that produced each
        state (0 at step 0; docs/model.md#information-time). ``cumulative``: the information clock, their running
        sum over the logged steps. Empty for files written before information time was logged."""
        if SERIES_BY_KEY["info_bits"].path not in self._f:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.n_agents))
        steps, values = self.series("info_bits")
        return steps, (np.cumsum(values, axis=0) if cumulative else values)

    # --- fields ----------------------------------------------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        """Steps of the logged frames (the same as :attr:`frame_steps`): what ``step=`` accepts."""
        return self.frame_steps

    def frame_of_step(self, step: int) -> int:
        """The index of the logged frame at ``step``; :class:`StepNotLogged` names the nearest logged steps."""
        steps = self.frame_steps
        k = int(np.searchsorted(steps, step))
        if k < steps.size and steps[k] == step:
            return k
        if not steps.size:
            raise StepNotLogged(f"step {step} was not logged: the file holds no logged frame")
        near = sorted({int(steps[i]) for i in (k - 1, k) if 0 <= i < steps.size})
        span = f"{steps.size} frames, steps {int(steps[0])}..{int(steps[-1])}"
        every = self.config.get("output", {}).get("every")
        nearest = f"step{'s are' if len(near) > 1 else ' is'} {' and '.join(map(str, near))}"
        raise StepNotLogged(f"step {step} was not logged; the nearest logged {nearest} ({span}"
                            + (f", every {every} steps)" if every else ")"))

    def _frame_index(self, frame: int | None = None, step: int | None = None) -> int:
        """The index of a logged frame given by ``frame`` (index) or ``step``; neither: the last frame."""
        if step is not None:
            if frame is not None:
                raise TypeError("give a frame or a step, not both")
            if int(step) != step:
                raise TypeError(f"step must be an integer, got {step!r}")
            return self.frame_of_step(int(step))
        frame = -1 if frame is None else frame
        n = len(self.frame_steps)
        if not -n <= frame < n:
            raise IndexError(f"frame {frame} out of range: the file holds {n} frames")
        return frame % n

    def rows(self, name: str, frame: int | None = None, *, step: int | None = None) -> np.ndarray:
        """A logged field per agent-site, (S, ...), as stored (float32 or float64)."""
        if name not in self.fields:
            raise KeyError(f"field {name!r} was not logged (logged: {self.fields})")
        return read(self._f[f"{frame_path(name)}/value"], np.s_[self._frame_index(frame, step)])

    def field(self, name: str, frame: int | None = None, agent: int | None = None, *,
              step: int | None = None) -> np.ndarray:
        """A field on the grid: (N, H, W, ...) or (H, W, ...) for one agent, NaN outside the support.

        ``name`` is a logged field (mu, sigma, phi, beta) or ``chi``; the frame is ``frame`` (index) or
        ``step`` (the last frame with neither).
        """
        if agent is not None and not -self.n_agents <= agent < self.n_agents:
            raise IndexError(f"agent {agent} out of range: the run has {self.n_agents} agents")
        agent = None if agent is None else agent % self.n_agents
        values = self.chi if name == "chi" else self.rows(name, frame, step=step)
        agents = range(self.n_agents) if agent is None else [agent]
        H, W = self.grid.height, self.grid.width
        out = np.full((len(agents), H * W) + values.shape[1:], np.nan)
        for k, i in enumerate(agents):  # one vectorised scatter per agent
            lo, hi = self.offset[i], self.offset[i + 1]
            out[k, self.index[lo:hi]] = values[lo:hi]
        out = out.reshape((len(agents), H, W) + values.shape[1:])
        return out[0] if agent is not None else out

    def state(self, frame: int | None = None, *, step: int | None = None) -> State:
        """The state of a logged frame (``frame`` index or ``step``) in float64 (exact when it is the checkpoint)."""
        idx = self._frame_index(frame, step)
        step = int(self.frame_steps[idx])
        ck = self.checkpoint()
        if ck is not None and ck.step == step:
            return ck
        return State.from_arrays(*(read(self._f[f"{frame_path(n)}/value"], np.s_[idx])
                                   for n in ("mu", "sigma", "phi")), step)

    def checkpoint(self) -> State | None:
        """The last checkpoint (float64), or None if the run wrote none."""
        return read_checkpoint(self._f)

    def layout(self) -> Layout:
        """The run's layout, rebuilt from the stored supports, priors and observations."""
        f = self._f
        H, W = self.grid.height, self.grid.width
        chis = []
        for i in range(self.n_agents):
            c = np.zeros(H * W)
            lo, hi = self.offset[i], self.offset[i + 1]
            c[self.index[lo:hi]] = self.chi[lo:hi]
            chis.append(c.reshape(H, W))
        obs = None
        if "agents/observation" in f:
            obs = Observations(read(f["agents/observation/value"]), read(f["agents/observation/C"]),
                               read(f["agents/observation/Rn"]))
        fiber = make_glk_fiber(self.K) if self.group == "glk" else make_fiber(self.spins)
        return build_layout(self.grid, fiber, chis, read(f["agents/prior/mu"]),
                            read(f["agents/prior/sigma"]), obs)

    # --- the energy as the run evaluated it ------------------------------------------------------------------
    @cached_property
    def energy_params(self) -> EnergyParams:
        """The energy weights the run used: the stored configuration's ``energy`` section, validated by the
        model's own schema as the run's set-up validated it (the stored section is complete: every default)."""
        return EnergyParams.model_validate(self.config.get("energy") or {})

    def layout_at(self, step: int) -> Layout:
        """The layout in force at ``step``: the stored one (:meth:`layout`) and, when the run had the hierarchy
        coupling on (rho > 0), its coupled prior, recomputed (as the run does) from the logged state at the last
        refresh step. :class:`NotReproducible` when the file does not hold what that needs: a refresh step that
        was not logged, or a streaming observation draw after the first (``observations.resample_every``), which
        only the set-up code draws (build that layout there and pass it to :meth:`evaluate`)."""
        if self._layout is None:
            self._layout = self.layout()
        layout = self._layout
        every = (self.config.get("observations") or {}).get("resample_every")
        if every and step >= every and layout.observations is not None:
            raise NotReproducible(f"{self.path}: step {step} was evaluated against streaming observation draw "
                                  f"{step // every} (observations.resample_every = {every}), which the file does "
                                  "not hold: pass evaluate(layout=) built with the set-up code's with_draw")
        hierarchy = HierarchyParams.model_validate(self.config.get("hierarchy") or {})
        if hierarchy.enabled and hierarchy.rho > 0:
            refresh = step - step % hierarchy.every
            try:
                at_refresh = self.state(step=refresh)
            except StepNotLogged:
                raise NotReproducible(f"{self.path}: the hierarchy targets in force at step {step} were computed "
                                      f"at step {refresh}, which was not logged") from None
            consensus = ConsensusParams.model_validate((self.config.get("analysis") or {}).get("meta_agents") or {})
            layout = coupled_layout(layout, at_refresh, hierarchy, consensus)[0]  # as the run's updater does
        return layout

    def evaluate(self, frame: int | None = None, *, step: int | None = None, layout: Layout | None = None,
                 want_grad: bool = False) -> Evaluation:
        """The energy evaluation of a logged frame (``frame`` index or ``step``; the last with neither) as the run
        had it: :meth:`layout_at` (or ``layout``), :attr:`energy_params` and the frame's :meth:`state`. Its
        ``terms`` are the logged energies of that step when the state is exact (a float64 log, or the
        checkpoint); ``densities`` and ``beta`` are what the file does not store."""
        state = self.state(frame, step=step)
        layout = self.layout_at(state.step) if layout is None else layout
        return evaluate_energy(layout, self.energy_params, state, want_grad=want_grad)

    # --- the run's history (docs/model.md#file-provenance) -----------------------------------------------------
    def segments(self) -> list[dict]:
        """One dict per invocation that wrote the file, oldest first (:mod:`.provenance`): ``command``, ``time``,
        ``status`` (``killed`` for one left ``running`` by a process that is gone), ``first_step``, ``last_step``
        (of the run segments; a segment still running or killed last reaches the file's last step), versions,
        host, command line, ``config`` (the first) or ``changes`` (``{key: [first, this]}``), ``inputs``
        (sha256 by key) and ``changed_inputs``. [] for a file written before the history existed."""
        records = read_history(self._f)
        for k, r in enumerate(records):
            if r["status"] == "running":
                r["status"] = "killed" if k < len(records) - 1 or not self._record_live(r) else "running"
        k = last_run_record(records)
        if k is not None and records[k]["last_step"] is None:
            records[k]["last_step"] = self.last_step  # the steps it wrote so far (or before it was killed)
        return records

    def _record_live(self, record: dict) -> bool:
        """Whether the invocation of the file's last record, said to be running, still is."""
        if record["command"] in ("create", "resume"):
            return self.status == "running"
        return not self._owns_handle or writer_active(self.path) is not None

    @property
    def history(self):
        """The run's history as a pandas DataFrame, one row per invocation (:meth:`segments`)."""
        import pandas as pd

        columns = ["command", "status", "time", "ended_at", "first_step", "last_step", "package", "host", "pid",
                   "argv", "numba_threads", "changes", "changed_inputs", "inputs", "config"]
        rows = [{**r, "package": (r.get("versions") or {}).get("package"),
                 "argv": " ".join(r["argv"]) if isinstance(r.get("argv"), list) else r.get("argv")}
                for r in self.segments()]
        frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
        # steps stay integers where an invocation wrote none (analyze, repair): pandas' nullable integers
        return frame.astype({"first_step": "Int64", "last_step": "Int64", "pid": "Int64", "numba_threads": "Int64"})

    def attention(self, frame: int | None = None, *, step: int | None = None, layout: Layout | None = None
                  ) -> Attention:
        """The attention layer of a logged frame as the run had it (the layout and parameters of :meth:`evaluate`):
        messages and the two roles of the alignment's mu-gradient (docs/model.md#attention-layer)."""
        state = self.state(frame, step=step)
        layout = self.layout_at(state.step) if layout is None else layout
        return attention_of(layout, self.energy_params, state)

    def messages(self, frame: int | None = None, *, step: int | None = None, layout: Layout | None = None
                 ) -> np.ndarray:
        """(S, K) the messages m_i(c) = sum_j beta_ij(c) Omega_ij(c) mu_j(c) of a logged frame (see :meth:`attention`)."""
        return self.attention(frame, step=step, layout=layout).messages

    @property
    def dtype(self) -> str:
        """The logged fields' precision (``float32`` or ``float64``); ``-`` when no field is logged."""
        return str(self._f[f"{frame_path(self.fields[0])}/value"].dtype) if self.fields else "-"

    def analysis(self) -> AnalysisResult | None:
        """The stored meta-agent and holonomy analysis (``vfe analyze``, or the end of ``vfe run``), or None."""
        if self._analysis is _NOT_READ:
            self._analysis = read_analysis(self._f)
        return self._analysis

    def meta_agents(self, frame: int | None = None, *, step: int | None = None) -> list[dict]:
        """Meta-agents of a logged frame (after the analysis): scale, id, parent id, base members, dead."""
        result = self.analysis()
        if result is None:
            return []
        step = int(self.frame_steps[self._frame_index(frame, step)])
        k = np.nonzero(result.steps == step)[0]
        return result.meta_agents(int(k[0])) if k.size else []

    def plaquette_angles(self, frame: int | None = None, *, step: int | None = None) -> np.ndarray | None:
        """Plaquette holonomy angle per agent-site of a frame (after the analysis), NaN where undefined."""
        result = self.analysis()
        if result is None:
            return None
        step = int(self.frame_steps[self._frame_index(frame, step)])
        k = np.nonzero(result.steps == step)[0]
        return result.plaquette_angle[int(k[0])] if k.size else None

    def frame_states(self, block_bytes: int = 64 << 20):
        """The float64 state of every logged frame, one at a time (a run can hold thousands), as :meth:`state`
        gives it. The frames are read in blocks of about ``block_bytes`` and the frame steps and checkpoint once:
        read frame by frame, a 20 000-frame run spent most of its analysis in HDF5 calls."""
        steps = self.frame_steps
        ck = self.checkpoint()
        data = [self._f[f"{frame_path(n)}/value"] for n in ("mu", "sigma", "phi")]
        per_frame = sum(d.dtype.itemsize * int(np.prod(d.shape[1:])) for d in data)
        block = max(1, block_bytes // max(per_frame, 1))
        for lo in range(0, steps.size, block):
            hi = min(steps.size, lo + block)
            mu, sigma, phi = (read(d, np.s_[lo:hi]) for d in data)
            for k in range(hi - lo):
                step = int(steps[lo + k])
                yield ck if ck is not None and ck.step == step else State.from_arrays(mu[k], sigma[k], phi[k], step)

    def to_xarray(self, steps=None, fields=None):
        """Every logged array as a labelled ``xarray.Dataset`` (dims step, agent, y, x, k, l; energies over
        ``energy_step``; the stored analysis), with units and descriptions; see :mod:`.xarray_view`."""
        from .xarray_view import trajectory_dataset

        return trajectory_dataset(self, steps=steps, fields=fields)


_NOT_READ = object()


def load(path: str | Path) -> Trajectory:
    """Open a trajectory file (also one still being written, or left by a killed run). A replica ensemble's
    index is refused with one line here (the commands read one trajectory); ``gauge_vfe.load``
    (:func:`~.ensemble_store.load`) reads it."""
    return Trajectory(path)
