"""The io layer's exceptions for files that are not readable trajectories (docs/model.md#file-integrity).

A module of its own, importing nothing: ``vfe`` catches them from its first line, and must not import h5py
before a command runs (Ctrl-C during start-up, see agents/launch.py)."""


class TrajectoryFileError(OSError):
    """A file that is not a readable trajectory of this project (foreign, look-alike, inconsistent, damaged).
    An OSError, as a file that does not open is; its text is one line naming the file and what is wrong."""


class DamagedData(TrajectoryFileError):
    """A read whose chunk failed its checksum: the dataset and the entries (and steps) it affects."""
