"""A sweep's summary: ``summary.csv`` (for any tool) and its typed twin ``summary.h5`` (one dataset per column).

Both are rewritten atomically (:func:`~.outputs.atomic_output`: a temporary file, fsynced, renamed over the old
one) as members finish, so an interrupted sweep keeps every finished member; a full disk raises
:class:`~.outputs.NoSpaceLeft` and leaves the earlier summaries as they were. :func:`read_summary` gives the rows
back with numbers as numbers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np

from .outputs import atomic_output, h5_output

TEXT_COLUMNS = ("member", "status", "message", "path")


def write_summary(directory: Path, columns: list[str], rows: list[dict]) -> None:
    directory = Path(directory)
    ordered = sorted(rows, key=lambda r: r["member"])
    with atomic_output(directory / "summary.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in ordered:
            w.writerow({k: r.get(k, "") for k in columns})
    with h5_output(directory / "summary.h5") as f:  # a full disk: NoSpaceLeft, never a second write through f
        for k in columns:
            col = [r.get(k, "") for r in ordered]
            if col and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                           for v in col):
                f.create_dataset(k, data=np.array(col, dtype=float))
            else:
                f.create_dataset(k, data=np.array([str(v) for v in col], dtype=h5py.string_dtype()))
        f.attrs["columns"] = json.dumps(columns)


def read_summary(directory: Path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of a sweep folder's summary; empty when there is none yet."""
    path = Path(directory) / "summary.csv"
    if not path.exists():
        return [], []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [{k: (v if k in TEXT_COLUMNS else _number(v)) for k, v in row.items()} for row in reader]
        return list(reader.fieldnames or []), rows


def _number(text: str):
    """A CSV cell as a number where it is one (parameters may also be strings: a form name, a list)."""
    try:
        return float(text) if text.strip() else float("nan")
    except ValueError:
        return text
