"""Analysis results in the trajectory file: ``/observables/meta_agents`` and ``/observables/holonomy``.

The layout is docs/model.md#file-analysis. :func:`write_analysis` replaces earlier results; :func:`read_analysis`
gives them back as the :class:`~gauge_vfe.agents.analysis.pipeline.AnalysisResult` they were made from.
"""

from __future__ import annotations

import json

import h5py

from ..analysis.pipeline import EVENT_KINDS, HOLONOMY_SUMMARY_COLUMNS, AnalysisResult

META = "observables/meta_agents"
HOLONOMY = "observables/holonomy"


def write_analysis(f: h5py.File, result: AnalysisResult) -> None:
    for name in (META, HOLONOMY):
        if name in f:
            del f[name]
    g = f.create_group(META)
    g.attrs["params"] = json.dumps(result.params)
    g.create_dataset("step", data=result.steps)
    g.create_dataset("labels", data=result.labels, compression="gzip")
    g.create_dataset("count", data=result.counts)
    g.create_dataset("records", data=result.records)
    g.create_dataset("members", data=result.members)
    g.create_dataset("members_offset", data=result.members_offset)
    g.create_dataset("events", data=result.events).attrs["kinds"] = json.dumps(EVENT_KINDS)
    g.create_dataset("lifetimes", data=result.lifetimes)
    g.create_dataset("timescales", data=result.timescales)
    h = f.create_group(HOLONOMY)
    h.create_dataset("step", data=result.steps)
    h.create_dataset("plaquette_angle", data=result.plaquette_angle, compression="gzip",
                     chunks=(1, max(1, result.plaquette_angle.shape[1])))
    h.create_dataset("summary", data=result.holonomy_summary).attrs["columns"] = json.dumps(
        list(HOLONOMY_SUMMARY_COLUMNS))
    lg = h.create_group("loops")
    lg.attrs["names"] = json.dumps(result.loop_names)
    lg.attrs["definitions"] = json.dumps(result.loop_definitions)
    lg.create_dataset("angle", data=result.loop_angle)
    lg.create_dataset("axis", data=result.loop_axis)


def read_analysis(f: h5py.File) -> AnalysisResult | None:
    """The stored analysis, or None if the run was never analysed."""
    if META not in f or HOLONOMY not in f:
        return None
    g, h = f[META], f[HOLONOMY]
    lg = h["loops"]
    return AnalysisResult(
        params=json.loads(g.attrs["params"]), steps=g["step"][...], labels=g["labels"][...], counts=g["count"][...],
        records=g["records"][...], members=g["members"][...], members_offset=g["members_offset"][...],
        events=g["events"][...], lifetimes=g["lifetimes"][...], timescales=g["timescales"][...],
        plaquette_angle=h["plaquette_angle"][...], holonomy_summary=h["summary"][...],
        loop_names=json.loads(lg.attrs["names"]), loop_definitions=json.loads(lg.attrs["definitions"]),
        loop_angle=lg["angle"][...], loop_axis=lg["axis"][...],
    )
