"""Reading a dataset through its checksum: damage is raised as "damaged at <dataset>" with the entries and steps
it affects, never returned as a value (docs/model.md#file-integrity). The lowest piece of the io layer's reading:
:mod:`.schema` and :mod:`.integrity` both use it."""

from __future__ import annotations

import h5py

from .errors import DamagedData


def _is_checksum_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "filter" in text or "checksum" in text or "can't read data" in text


def _chunk_ranges(ds: h5py.Dataset):
    """(start, stop) of every chunk along the first axis (one range for a contiguous dataset)."""
    if ds.chunks is None or ds.ndim == 0:
        yield 0, (ds.shape[0] if ds.ndim else 1)
        return
    rows = ds.chunks[0]
    for lo in range(0, ds.shape[0], rows):
        yield lo, min(ds.shape[0], lo + rows)


def bad_entries(ds: h5py.Dataset) -> list[tuple[int, int]]:
    """The entry ranges of ``ds`` whose chunks fail to read (merged where adjacent)."""
    bad: list[tuple[int, int]] = []
    if ds.size == 0:
        return bad
    if ds.ndim == 0 or ds.chunks is None:
        try:
            ds[()]
        except OSError:
            bad.append((0, ds.shape[0] if ds.ndim else 1))
        return bad
    for sel in ds.iter_chunks():
        try:
            ds[sel]
        except OSError:
            lo, hi = sel[0].start, sel[0].stop
            if bad and bad[-1][1] >= lo:
                bad[-1] = (bad[-1][0], max(bad[-1][1], hi))
            elif (lo, hi) not in bad:
                bad.append((lo, hi))
    return sorted(set(bad))


def _steps_of(ds: h5py.Dataset, lo: int, hi: int) -> str:
    """The steps of entries lo..hi-1 of a step-indexed series' ``value`` or ``time`` (its sibling ``step``, when
    readable), or a checkpoint slot's one step; "" for anything else (e.g. the analysis' records)."""
    parent, name = ds.parent, ds.name.rsplit("/", 1)[-1]
    if name == "step" or not isinstance(parent.get("step"), h5py.Dataset):
        return ""
    steps = parent["step"]
    try:
        if name in ("value", "time"):
            s = steps[lo:min(hi, steps.shape[0])]
            return f", steps {int(s[0])}..{int(s[-1])}" if s.size else ", past the committed steps"
        if steps.shape == (1,) and parent.name.startswith("/checkpoint/"):
            return f", the checkpoint of step {int(steps[0])}"
    except OSError:
        pass
    return ""


def damage_text(ds: h5py.Dataset, ranges: list[tuple[int, int]]) -> str:
    """"damaged at <dataset> (entries a..b, steps x..y; ...)": what a failed checksum affects."""
    parts = []
    for lo, hi in ranges:
        what = f"entries {lo}..{hi - 1}" if ds.ndim and ds.shape[0] > 1 else "its value"
        parts.append(what + _steps_of(ds, lo, hi))
    return f"damaged at {ds.name} ({'; '.join(parts)}): its checksum fails"


def read(ds: h5py.Dataset, sel=Ellipsis):
    """``ds[sel]``, or :class:`DamagedData` naming the file, dataset and damaged entries when a chunk fails its
    checksum (the one read helper every reader uses, so that damage is never returned as a value)."""
    try:
        return ds[sel]
    except OSError as exc:
        if not _is_checksum_failure(exc):
            raise
        ranges = bad_entries(ds) or [(0, ds.shape[0] if ds.ndim else 1)]
        raise DamagedData(f"{ds.file.filename}: {damage_text(ds, ranges)}") from None
