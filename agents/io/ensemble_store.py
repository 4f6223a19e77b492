"""A replica ensemble's index file (docs/model.md#replica-ensembles): the replicas' seeds, files and statuses.

The replicas' trajectories are ordinary run files (each the file of the single run with that replica's seed), so
every reader, ``vfe analyze``, ``inspect``, ``export`` and ``render`` take a replica's file as they take any run's.
The index at the run's output path only names them; the layout is :data:`~.schema.ENSEMBLE_INDEX`.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from .errors import TrajectoryFileError
from .schema import ENSEMBLE_MARK

_STR = h5py.string_dtype()


def write_index(path: Path, config: dict, seeds: list[int], files: list[str], statuses: list[str], status: str,
                message: str = "") -> None:
    """(Re)write the index at ``path`` in one piece: a temporary file renamed over it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs[ENSEMBLE_MARK] = 1
        f.attrs["replicas"] = len(seeds)
        f.create_dataset("replica/seed", data=np.array(seeds, dtype=np.int64))
        f.create_dataset("replica/file", data=np.array(files, dtype=object), dtype=_STR)
        f.create_dataset("replica/status", data=np.array(statuses, dtype=object), dtype=_STR)
        f.create_dataset("config_json", data=json.dumps(config, sort_keys=True), dtype=_STR)
        f.create_dataset("status", data=status, dtype=_STR)
        f.create_dataset("message", data=message, dtype=_STR)
    tmp.replace(path)


def is_index(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble index (False for anything else, including files that do not open)."""
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get(ENSEMBLE_MARK, 0))
    except (OSError, ValueError):
        return False


def read_index(path: str | Path) -> dict:
    """The index's contents: ``config`` (dict), ``seeds``, ``files`` (absolute paths), ``statuses``, ``status``,
    ``message``. A file that is not an index is refused with one line."""
    path = Path(path)
    if not is_index(path):
        raise TrajectoryFileError(f"{path}: not a gauge-vfe replica ensemble index")
    with h5py.File(path, "r") as f:
        text = lambda name: f[name].asstr()[()]  # noqa: E731
        return {"config": json.loads(text("config_json")), "seeds": [int(s) for s in f["replica/seed"][()]],
                "files": [path.parent / p for p in f["replica/file"].asstr()[()]],
                "statuses": list(f["replica/status"].asstr()[()]), "status": text("status"),
                "message": text("message")}


class EnsembleTrajectory:
    """A replica ensemble read back (``gauge_vfe.load`` of its index): ``replica(r)`` is replica r's
    :class:`~.reader.Trajectory`, an ordinary run's; the per-replica series stack with a leading replica axis.
    The replicas are independent copies, never agents of one system: analyse each on its own."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index = read_index(self.path)
        self.config: dict = index["config"]
        self.seeds: list[int] = index["seeds"]
        self.paths: list[Path] = index["files"]
        self.replica_status: list[str] = index["statuses"]
        self.status: str = index["status"]
        self.message: str = index["message"]
        self._open: dict = {}

    @property
    def replicas(self) -> int:
        return len(self.seeds)

    def replica(self, r: int):
        """Replica r's trajectory (opened once, kept open until :meth:`close`)."""
        from .reader import Trajectory

        if not 0 <= r < self.replicas:
            raise IndexError(f"replica {r} out of range: {self.path} holds {self.replicas}")
        if r not in self._open:
            self._open[r] = Trajectory(self.paths[r])
        return self._open[r]

    def __iter__(self):
        return (self.replica(r) for r in range(self.replicas))

    def _stacked(self, get) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values (R, ...)) of a per-replica series; the replicas must have logged the same steps (an
        ensemble stops all its replicas together)."""
        pairs = [get(t) for t in self]
        steps = pairs[0][0]
        for r, (s, _) in enumerate(pairs):
            if not np.array_equal(s, steps):
                raise ValueError(f"{self.paths[r]}: logged other steps than replica 0")
        return steps, np.stack([v for _, v in pairs])

    def energy(self, term: str = "total") -> tuple[np.ndarray, np.ndarray]:
        """(steps, (R, E)): the energy term of every replica at every step."""
        return self._stacked(lambda t: t.energy(term))

    def info_bits(self, cumulative: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(steps, (R, E, N)): every replica's information clock (docs/model.md#information-time)."""
        return self._stacked(lambda t: t.info_bits(cumulative))

    def states(self, frame: int | None = None, *, step: int | None = None) -> list:
        """Every replica's State at a logged frame (or step)."""
        return [t.state(frame, step=step) for t in self]

    def close(self) -> None:
        for t in self._open.values():
            t.close()
        self._open.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"EnsembleTrajectory({self.path}, {self.replicas} replicas, {self.status})"


def load(path: str | Path):
    """``gauge_vfe.load``: a run file as a :class:`~.reader.Trajectory`, a replica ensemble's index as an
    :class:`EnsembleTrajectory` (docs/model.md#replica-ensembles)."""
    from .reader import Trajectory

    if isinstance(path, (str, Path)) and is_index(path):
        return EnsembleTrajectory(path)
    return Trajectory(path)
