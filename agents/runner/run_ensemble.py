"""A replica ensemble run into files (``vfe run --replicas R``, ``ensemble: {replicas: R}``;
docs/model.md#replica-ensembles).

One engine steps the R replicas (:class:`~.ensemble.Ensemble`); each replica is logged into its own ordinary run
file, ``NAME.replicas/rNNNN.h5`` beside the output path, by the observers a single run uses (the trajectory
writer and the end-of-run analysis), fed a read-only view of that replica. Replica r's file is therefore the file
of the single run with replica r's seed, bit for bit, and every command reads it as any run's. At the output path
a small index (:mod:`~gauge_vfe.agents.io.ensemble_store`) records the seeds, files and statuses; commands that
read one trajectory refuse the index with one line naming a replica's file, and ``gauge_vfe.load`` reads it as an
:class:`~gauge_vfe.agents.io.ensemble_store.EnsembleTrajectory`.

An ensemble stops as a whole: when a replica diverges, its file is closed ``diverged`` and the others'
``interrupted`` at the same step (each such file continues with ``vfe run --resume`` as the single run it is).
An ensemble does not resume as an ensemble.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.ensemble_store import write_index
from ..io.lock import RunLock
from ..io.writer import TrajectoryWriter
from ..model.dynamics import DivergenceError
from ..model.energy import beta_matrix
from ..setup.inputs import input_hashes
from ..setup.preflight import check_output_path
from ..setup.scenario import Scenario, ScenarioError
from .ensemble import Ensemble
from .observers import EndOfRunAnalysis, RunFile, TrajectoryObserver
from .run import create_record, output_path
from .simulation import EnergyIncreaseWarning, RunOutcome


class ReplicaRun:
    """What the single run's observers read of a simulation, for replica r of an ensemble (views, no copies)."""

    def __init__(self, ensemble: Ensemble, r: int):
        self.ensemble = ensemble
        self.r = r
        self.config = ensemble.config.model_copy(update={"seed": ensemble.seeds[r], "ensemble": None})

    @property
    def state(self):
        return self.ensemble.replica(self.r).state

    @property
    def layout(self):
        return self.ensemble.replica_layouts[self.r]

    @property
    def evaluation(self):
        return self.ensemble.replica_evaluation(self.r)

    def beta(self) -> np.ndarray:
        return beta_matrix(self.layout, self.evaluation)

    def energy(self) -> dict[str, float]:
        return self.ensemble.replica(self.r).energy()

    def noise_state(self) -> dict:
        from ..kernels.noise import GENERATOR

        return {"generator": GENERATOR, "key": f"{int(self.ensemble.noise_keys[self.r]):#018x}"}


@dataclass(frozen=True)
class EnsembleRunResult:
    path: Path  # the index
    files: list[Path]
    status: str
    message: str
    last_step: int
    wall_time: float
    member_steps_per_second: float
    energy: dict  # term -> (R,) at the last step
    energy_increases: np.ndarray


def replica_folder(path: Path) -> Path:
    """Where the replicas' files go: ``NAME.replicas`` beside the index ``NAME.h5``."""
    return path.with_suffix(".replicas")


def run_ensemble(scenario: Scenario, replicas: int, output=None) -> EnsembleRunResult:
    """Run ``replicas`` replicas of ``scenario`` into the index at ``output`` (default: the single run's path)
    and one run file per replica. Refuses (``ScenarioError``, nothing touched) an output whose index or replica
    folder exists already."""
    cfg = scenario.config
    path = output_path(scenario, output)
    folder = replica_folder(path)
    if (problem := check_output_path(path, scenario.path, False)) is not None:
        raise ScenarioError([problem])
    for taken in (path, folder):
        if taken.exists():
            raise ScenarioError([f"{taken}: exists; an ensemble does not replace or resume earlier runs: remove "
                                 "it or choose another -o"])
    try:
        # every gradient computed, frozen fields' too: each file logs its gradient norms as its single run does
        ens = Ensemble(scenario, replicas, skip_frozen=False)
    except DivergenceError as exc:
        raise ScenarioError([f"{scenario.name}: the initial state cannot be evaluated: {exc}"]) from None
    except ValueError as exc:
        raise ScenarioError([scenario.locate_error(exc)]) from None
    folder.mkdir(parents=True)
    files = [folder / f"r{r:04d}.h5" for r in range(replicas)]
    config = cfg.to_dict()
    write_index(path, config, ens.seeds, [f"{folder.name}/{p.name}" for p in files], ["running"] * replicas,
                "running")
    views = [ReplicaRun(ens, r) for r in range(replicas)]
    out = cfg.output
    run_files, observers, analyses = [], [], []
    hashes = input_hashes(cfg, scenario.base_dir)  # one set of input files for every replica
    for r, (view, p) in enumerate(zip(views, files)):
        lock = RunLock(p).acquire()
        config_json = json.dumps(view.config.to_dict(), sort_keys=True)  # the single run's, exactly
        writer = TrajectoryWriter.create(p, view.layout, config_json, scenario.text, view.config.seed, lock,
                                         out.dtype, out.fields, out.compression, out.compression_level,
                                         record=create_record(scenario, config_json, hashes, "run_ensemble",
                                                              replica=r))
        rf = RunFile(writer)
        run_files.append(rf)
        analyses.append(EndOfRunAnalysis(rf, cfg.analysis) if cfg.analysis.enabled else None)
        observers.append(TrajectoryObserver(rf, out.every, log_initial=True))
    first = ens.state.step
    for obs, view in zip(observers, views):
        obs.start(view)
    status, message, bad = "completed", "", -1
    steps = max(0, cfg.dynamics.steps - first)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EnergyIncreaseWarning)
        try:
            for _ in range(steps):
                info = ens.step()
                for r, (obs, view) in enumerate(zip(observers, views)):
                    obs.update(view, info.world(r))  # logging only: the step above has no loop over replicas
        except DivergenceError as exc:
            status, message = "diverged", str(exc)
            bad = next((r for r in range(replicas) if f"replica {r}:" in message), -1)
        except KeyboardInterrupt:
            status, message = "interrupted", f"interrupted at step {ens.state.step}"
    wall = time.perf_counter() - t0
    statuses = []
    for r, (obs, view) in enumerate(zip(observers, views)):
        if status == "diverged":
            mine = ("diverged", message) if r == bad else (
                "interrupted", f"stopped at step {ens.state.step}: another replica of the ensemble diverged")
        else:
            mine = (status, message)
        statuses.append(mine[0])
        obs.finish(view, RunOutcome(mine[0], mine[1], first, ens.state.step, int(ens.energy_increases[r])))
    write_index(path, config, ens.seeds, [f"{folder.name}/{p.name}" for p in files], statuses, status, message)
    taken = ens.state.step - first
    return EnsembleRunResult(path, files, status, message, ens.state.step, wall,
                             replicas * taken / wall if wall > 0 else float("nan"), ens.energies(),
                             ens.energy_increases.copy())
