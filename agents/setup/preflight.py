"""The output file's check before a run writes anything: :func:`check_output_path`.

The other checks before a build live where their subject does: the scenario file and the whole pipeline in
:mod:`.scenario` (:func:`prepare_scenario`), the files a scenario names in :mod:`.inputs`, memory in
:mod:`.memory`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .inputs import is_hdf5, short


# --- the output file ------------------------------------------------------------------------------------------

def _is_hdf5(path: Path) -> bool:
    try:
        return is_hdf5(path)
    except OSError:
        return False


def check_output_path(path, scenario_path=None, resume: bool = False) -> str | None:
    """Why the run cannot write its trajectory to ``path`` (a message naming it), or None.

    Refused: an output under a regular file, in a folder that is not writable (or cannot be created), the
    scenario file itself, a folder, and an existing file that is not an ``.h5`` HDF5 file (a fresh run would
    rename it out of the way, ``--resume`` would append to it: neither may touch a file that is not a run).
    ``--resume`` also needs the file to exist. Nothing is created or changed.
    """
    try:
        p = Path(path)
        if str(path) == "" or p.name in ("", ".", ".."):
            return f"{path}: not a file name"
        if p.is_dir():
            return f"{path}: is a folder; give a file name such as {Path(path) / 'run.h5'}"
        if scenario_path is not None and p.exists() and Path(scenario_path).exists() \
                and os.path.samefile(p, scenario_path):
            return f"{path}: is the scenario file itself; choose another output (e.g. {p.with_suffix('.h5').name})"
        # the nearest existing ancestor must be a writable folder (the writer creates the rest)
        parent = p.parent if str(p.parent) else Path(".")
        anc = parent
        while not anc.exists() and not anc.is_symlink() and anc != anc.parent:
            anc = anc.parent
        if not anc.is_dir():
            return f"{path}: {anc} is a file, not a folder"
        if not os.access(anc, os.W_OK | os.X_OK):
            what = "the folder" if anc == parent else f"the folder {parent} cannot be created: its parent"
            return f"{path}: {what} {anc} is not writable"
        if p.exists() and not p.is_file():
            return f"{path}: exists and is not a regular file"
        if resume:
            if not p.exists():
                return f"{path}: nothing to resume (no such file)"
            if not _is_hdf5(p):
                return f"{path}: not an HDF5 file: there is no run to resume in it"
            return None
        if p.suffix != ".h5":
            if p.exists():
                return f"{path}: exists and is not an .h5 run file: refusing to rename or overwrite it"
            return f"{path}: a trajectory file must end in .h5"
        if p.exists() and not _is_hdf5(p):
            return f"{path}: exists but is not an HDF5 file: refusing to rename or overwrite it"
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop of links
        return f"{path}: cannot be used as the output ({short(exc)})"
    return None
