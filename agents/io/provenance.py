"""The run file's history: one record per invocation that wrote it (docs/model.md#file-provenance).

``/provenance`` holds, per invocation (create, each resume, ``vfe analyze``, ``vfe repair``), as
:data:`.schema.PROVENANCE_DATASETS` lays it out:

* ``records``: UTF-8 JSON Lines as a ``uint8`` array, one line per invocation, written when it starts and never
  changed afterwards (append-only): what it was (command, time, versions, host, command line, configuration or
  its difference from the first, the step it started from, the input files' sha256, numba threads);
* ``status`` ``S16``, ``last_step`` int64 and ``ended_at`` ``S40``, one entry per record: ``running``, -1 and
  empty when it starts, overwritten when it ends. Their length is the number of records (written after the
  line: the commit), so a kill while appending leaves at most an unreferenced line, which readers ignore.

Only datasets are written once the run's SWMR session has begun (docs/model.md#file: attributes and new objects
cannot be), so the group is created, and a record appended, before it: with the file (:func:`create`), or by a
session that opens the file without SWMR (resume, analyze, repair: :func:`append`). A record left ``running`` by
an invocation that is no longer alive was killed; the reader reports it so (``Trajectory.segments``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import sys

import h5py
import numpy as np

from .checked import read
from .schema import PROVENANCE as GROUP
from .schema import PROVENANCE_DATASETS, STATUS_LENGTH, annotate, read_text, series_dataset

BEFORE = "before provenance"  # the record standing for what an older version wrote (no history of its own)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def invocation(command: str, **fields) -> dict:
    """The part of a record every invocation has: ``command`` (create, resume, analyze, repair), UTC time,
    package and library versions, host, pid, the command line (``sys.argv``: ``vfe ...``, or the Python process
    that made the call) and numba's thread count; ``fields`` add to it."""
    record = {"command": command, "time": now(), "versions": versions(), "host": socket.gethostname(),
              "pid": os.getpid(), "argv": list(sys.argv), "numba_threads": _numba_threads()}
    record.update(fields)
    return record


def versions() -> dict:
    """The versions of Python, the libraries that compute and store a run, and this package."""
    import numba
    import scipy

    from .. import __version__

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "scipy": scipy.__version__, "h5py": h5py.__version__, "hdf5": h5py.version.hdf5_version,
            "package": __version__}


def _numba_threads() -> int | None:
    try:
        import numba

        return int(numba.get_num_threads())
    except Exception:  # noqa: BLE001 - the thread count is informative; never fail a write over it
        return None


def create(f: h5py.File) -> None:
    """The empty history datasets (before the SWMR session)."""
    g = f.create_group(GROUP)
    for name, dtype, rows in PROVENANCE_DATASETS:
        series_dataset(g, name, dtype, chunk_rows=rows)
    annotate(f, under=GROUP)  # its description, from the file's table


def append(f: h5py.File, record: dict, before: dict | None = None) -> int:
    """Append ``record`` (status ``running``) and return its index. A file begun by an older version has no
    history: it is created, with ``before`` (what the file says of its earlier writers) as its first record."""
    if GROUP not in f:
        create(f)
        if before is not None:
            _append(f, before, before.pop("status", "unknown"), before.pop("last_step", -1), "")
    return _append(f, record, "running", -1, "")


def _append(f: h5py.File, record: dict, status: str, last_step: int, ended_at: str) -> int:
    g = f[GROUP]
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    k = g["status"].shape[0]
    text = g["records"]
    start = _records_end(text, k)  # after the k committed lines: a line a kill left uncommitted is overwritten
    text.resize((start + len(line),))
    text[start:] = np.frombuffer(line, dtype=np.uint8)
    for name, value in (("last_step", last_step), ("ended_at", ended_at.encode()), ("status", status.encode())):
        g[name].resize((k + 1,))  # status last: the commit
        g[name][k] = value
    return k


def _records_end(text: h5py.Dataset, k: int) -> int:
    """The byte offset just after the first ``k`` lines."""
    data = bytes(read(text))
    end = 0
    for _ in range(k):
        end = data.index(b"\n", end) + 1
    return end


def finish(f: h5py.File, k: int, status: str, last_step: int | None) -> None:
    """Record ``k`` ended with ``status`` at ``last_step`` (None: unchanged); dataset writes only (SWMR-safe)."""
    g = f[GROUP]
    if last_step is not None:
        g["last_step"][k] = last_step
        g["last_step"].flush()
    g["ended_at"][k] = now().encode()
    g["ended_at"].flush()
    g["status"][k] = status.encode()[:STATUS_LENGTH]
    g["status"].flush()


def set_last_step(f: h5py.File, k: int, step: int) -> None:
    f[GROUP]["last_step"][k] = step


def read_history(f: h5py.File) -> list[dict]:
    """Every committed record, oldest first: its JSON fields and ``status``, ``last_step`` (None until it ended,
    or when it wrote no step) and ``ended_at``. A file without a history gives []. ``status`` is as recorded
    (``running`` also for a killed invocation: the reader decides, :meth:`.reader.Trajectory.history`)."""
    if GROUP not in f:
        return []
    g = f[GROUP]
    status = read(g["status"])
    n = status.shape[0]
    last = read(g["last_step"])[:n]
    ended = read(g["ended_at"])[:n]
    lines = read_text(g["records"]).split("\n")
    out = []
    for k in range(min(n, len(lines))):
        record = json.loads(lines[k])
        record["status"] = status[k].decode(errors="replace").rstrip("\x00")
        record["last_step"] = int(last[k]) if last[k] >= 0 else None
        record["ended_at"] = ended[k].decode(errors="replace").rstrip("\x00") or None
        out.append(record)
    return out


RUN_COMMANDS = ("create", "resume", BEFORE)  # the invocations that run steps


def last_run_record(history: list[dict]) -> int | None:
    """The index of the last record that ran steps (None: none): the file's last steps are its."""
    return next((k for k in range(len(history) - 1, -1, -1) if history[k]["command"] in RUN_COMMANDS), None)


def first_config(history: list[dict]) -> dict | None:
    """The configuration the first recorded invocation ran with (None: no record holds one)."""
    return next((r["config"] for r in history if "config" in r), None)


def last_inputs(history: list[dict]) -> dict | None:
    """The input files' hashes the last invocation that ran steps recorded (None: none recorded them)."""
    return next((r["inputs"] for r in reversed(history) if r.get("inputs") is not None), None)


def before_record(f: h5py.File, last_step: int | None) -> dict:
    """The record standing for everything a version without a history wrote into ``f`` (one record: it kept no
    account of its invocations), from what ``/parameters`` says: its start, versions, host and configuration
    (as the file stores it: an older resume replaced it), the status it left, and the steps it wrote."""
    from .schema import run_record

    p = f["parameters"].attrs
    try:
        versions = json.loads(p.get("versions", "{}"))
    except ValueError:
        versions = {}
    record = {"command": BEFORE, "time": str(p.get("started_at", "")), "versions": versions,
              "host": str(p.get("writer_host", "")), "first_step": 0,
              "config": json.loads(p["config_json"]),
              "note": "written by a version without a history; its configuration as the file stored it"
                      + (f" (last resumed at {p['resumed_at']})" if "resumed_at" in p else "")}
    record["status"] = run_record(f)["status"] or "unknown"
    if last_step is None and "observables/energy/total/step" in f:  # the last step it logged
        steps = f["observables/energy/total/step"]
        last_step = int(read(steps, np.s_[-1:])[0]) if steps.shape[0] else None
    record["last_step"] = -1 if last_step is None else int(last_step)
    return record

