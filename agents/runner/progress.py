"""The one way a progress bar is made (``vfe run``, ``render``, ``export``, ``sweep`` and the notebook API).

A bar is drawn only where someone watches it: a terminal, or a Jupyter kernel's output. Into a log file (stderr
redirected, a batch job) tqdm would write its carriage-return frames, and around an error the leftover
"0frame [00:00, ?frame/s]"; there it is off. ``VFE_PROGRESS=1`` forces it on, ``0`` off.
"""

from __future__ import annotations

import os
import sys


def watched(stream=None) -> bool:
    """Whether ``stream`` (default: stderr) is shown to a person as it is written: a terminal or a notebook."""
    forced = os.environ.get("VFE_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or a bare file-like object
        return False
    return type(stream).__module__.startswith("ipykernel")  # a Jupyter kernel's OutStream is no tty


def progress_bar(unit: str, enabled: bool = True, only_when_watched: bool = True, **kw):
    """A tqdm bar on stderr, disabled unless ``enabled`` and (``only_when_watched``) stderr is :func:`watched`."""
    from tqdm import tqdm

    shown = enabled and (watched(sys.stderr) or not only_when_watched)
    return tqdm(unit=unit, file=sys.stderr, disable=not shown, **kw)
