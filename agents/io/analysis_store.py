"""Analysis results in the trajectory file: ``/observables/meta_agents`` and ``/observables/holonomy``.

The layout is docs/model.md#file-analysis. The datasets are created empty and resizable with the file
(:func:`create_analysis_datasets`), so that :func:`write_analysis` only resizes and writes, which the run's
own SWMR session allows. ``/observables/analysis_frames`` is the commit marker: -1 while results are being
written (or were never written), the number of analysed logged frames once they are complete.
:func:`read_analysis` returns None unless the marker says the results are complete.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..analysis.gauge_series import BITS_SCALE_DTYPE, LIFETIME_STATS_DTYPE
from ..analysis.pipeline import (EVENT_DTYPE, EVENT_KINDS, HOLONOMY_SUMMARY_COLUMNS, LIFETIME_DTYPE, RECORD_DTYPE,
                                 SERIES_DETAIL_DTYPE, TIMESCALE_DETAIL_DTYPE, TIMESCALE_DTYPE, TIMESCALE_KINDS,
                                 AnalysisResult)
from ..analysis.timescales import UNRESOLVED
from .checked import read
from .schema import ANALYSIS_FRAMES, fixed_dataset, read_text, series_dataset, text_dataset, write_text

META = "observables/meta_agents"
HOLONOMY = "observables/holonomy"
# series_detail as stored: its ``series`` names as fixed-length UTF-8 bytes (HDF5 has no numpy unicode type)
SERIES_DETAIL_STORED = np.dtype([(n, "S24" if n == "series" else SERIES_DETAIL_DTYPE[n])
                                 for n in SERIES_DETAIL_DTYPE.names])
# the gauge-invariant time-scale tables (docs/model.md#analysis-results): name -> stored dtype. Absent from files
# analysed before they were stored; read back as None there.
INVARIANT_TABLES = {"series_detail": SERIES_DETAIL_STORED, "bits_by_meta": BITS_SCALE_DTYPE,
                    "lifetime_stats": LIFETIME_STATS_DTYPE}


def create_analysis_datasets(f: h5py.File, n_agents: int, n_rows: int) -> None:
    g = f.create_group(META)
    text_dataset(g, "params")
    series_dataset(g, "step", np.int64)
    series_dataset(g, "labels", np.int64, (n_agents,), chunk_rows=64, compression="gzip")
    series_dataset(g, "count", np.int64, (None,), chunk_rows=256)
    series_dataset(g, "records", RECORD_DTYPE)
    series_dataset(g, "members", np.int64)
    series_dataset(g, "members_offset", np.int64)
    series_dataset(g, "events", EVENT_DTYPE).attrs["kinds"] = json.dumps(EVENT_KINDS)
    series_dataset(g, "lifetimes", LIFETIME_DTYPE)
    series_dataset(g, "timescales", TIMESCALE_DTYPE)
    _create_detail(g)
    h = f.create_group(HOLONOMY)
    series_dataset(h, "step", np.int64)
    series_dataset(h, "plaquette_angle", np.float64, (n_rows,), chunk_rows=1, compression="gzip")
    series_dataset(h, "summary", np.float64, (len(HOLONOMY_SUMMARY_COLUMNS),), chunk_rows=256).attrs["columns"] = \
        json.dumps(list(HOLONOMY_SUMMARY_COLUMNS))
    lg = h.create_group("loops")
    text_dataset(lg, "names", "[]")
    text_dataset(lg, "definitions", "[]")
    series_dataset(lg, "angle", np.float64, (None,), chunk_rows=256)
    series_dataset(lg, "axis", np.float64, (None, 3), chunk_rows=256)
    fixed_dataset(f, ANALYSIS_FRAMES, [-1], dtype=np.int64)


def _create_detail(g: h5py.Group) -> None:
    """The time-scale tables a file may lack (created with the file; added by `vfe analyze` to older files)."""
    if "timescale_detail" not in g:
        series_dataset(g, "timescale_detail", TIMESCALE_DETAIL_DTYPE).attrs["kinds"] = json.dumps(TIMESCALE_KINDS)
    for name, dtype in INVARIANT_TABLES.items():
        if name not in g:
            ds = series_dataset(g, name, dtype)
            if name == "series_detail":
                ds.attrs["kinds"] = json.dumps(TIMESCALE_KINDS)
                ds.attrs["reasons"] = json.dumps({code: entry[0] for code, entry in UNRESOLVED.items()})


def _put(ds: h5py.Dataset, data) -> None:
    data = np.asarray(data)
    ds.resize(data.shape)
    if data.size:
        ds[...] = data
    ds.flush()


def write_analysis(f: h5py.File, result: AnalysisResult) -> None:
    """Replace the stored analysis with ``result``: marker to -1, every dataset, marker to the frame count."""
    marker = f[ANALYSIS_FRAMES]
    marker[0] = -1
    marker.flush()
    g, h = f[META], f[HOLONOMY]
    write_text(g["params"], json.dumps(result.params))
    for name, data in (("step", result.steps), ("labels", result.labels), ("count", result.counts),
                       ("records", result.records), ("members", result.members),
                       ("members_offset", result.members_offset), ("events", result.events),
                       ("lifetimes", result.lifetimes), ("timescales", result.timescales)):
        _put(g[name], data)
    # files created before the detailed time scales existed lack the datasets: they are added when the file is not
    # open for SWMR writing (vfe analyze), else left out (read_analysis then returns an empty table, or None)
    if not f.swmr_mode:
        _create_detail(g)
    if "timescale_detail" in g:
        _put(g["timescale_detail"], result.timescale_detail)
    for name, dtype in INVARIANT_TABLES.items():
        table = getattr(result, name)
        if name in g and table is not None:
            _put(g[name], np.asarray(table).astype(dtype))
    _put(h["step"], result.steps)
    _put(h["plaquette_angle"], result.plaquette_angle)
    _put(h["summary"], result.holonomy_summary)
    write_text(h["loops/names"], json.dumps(result.loop_names))
    write_text(h["loops/definitions"], json.dumps(result.loop_definitions))
    _put(h["loops/angle"], result.loop_angle.reshape(len(result.steps), len(result.loop_names)))
    _put(h["loops/axis"], result.loop_axis.reshape(len(result.steps), len(result.loop_names), 3))
    f.flush()
    marker[0] = len(result.steps)
    marker.flush()


def read_analysis(f: h5py.File) -> AnalysisResult | None:
    """The stored analysis, or None if it was never written completely."""
    if ANALYSIS_FRAMES not in f or int(read(f[ANALYSIS_FRAMES])[0]) < 0:
        return None
    g, h = f[META], f[HOLONOMY]
    lg = h["loops"]
    return AnalysisResult(
        params=json.loads(read_text(g["params"])), steps=read(g["step"]), labels=read(g["labels"]),
        counts=read(g["count"]), records=read(g["records"]), members=read(g["members"]),
        members_offset=read(g["members_offset"]), events=read(g["events"]), lifetimes=read(g["lifetimes"]),
        timescales=read(g["timescales"]), plaquette_angle=read(h["plaquette_angle"]),
        holonomy_summary=read(h["summary"]), loop_names=json.loads(read_text(lg["names"])),
        loop_definitions=json.loads(read_text(lg["definitions"])), loop_angle=read(lg["angle"]),
        loop_axis=read(lg["axis"]),
        timescale_detail=(read(g["timescale_detail"]) if "timescale_detail" in g
                          else np.zeros(0, dtype=TIMESCALE_DETAIL_DTYPE)),
        **_invariant_tables(g),
    )


def _invariant_tables(g: h5py.Group) -> dict:
    """The stored gauge-invariant tables; None for each one the file lacks (analysed before they were stored)."""
    out = {}
    for name in INVARIANT_TABLES:
        table = read(g[name]) if name in g else None
        if name == "series_detail" and table is not None:
            table = table.astype(SERIES_DETAIL_DTYPE)
        out[name] = table
    return out
