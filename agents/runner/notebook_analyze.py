"""``gv.analyze``: meta-agents, events, time scales and holonomy of a run or a simulation's current state, as
objects and pandas DataFrames (:class:`Analysis`). The thresholds are those of ``vfe analyze``
(:func:`~.analyze.analysis_config`); nothing is written into the run file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.reader import Trajectory


@dataclass
class Analysis:
    """Meta-agents, events, time scales and holonomy of a run, as objects and as pandas DataFrames.

    ``result`` is the :class:`~gauge_vfe.agents.analysis.pipeline.AnalysisResult` (arrays, one row per analysed
    frame); the properties give its tables as DataFrames with typed columns. ``stored``: read from the file
    rather than computed.
    """

    result: object
    stored: bool = False

    @property
    def steps(self) -> np.ndarray:
        return self.result.steps

    @property
    def n_scales(self) -> int:
        """The highest scale at which a meta-agent appeared (1: none)."""
        return self.result.n_scales

    def meta_agents_at(self, frame: int = -1) -> list[dict]:
        """The meta-agents of one analysed frame: scale, id, parent, base members, dead."""
        return self.result.meta_agents(frame % len(self.result.steps))

    @property
    def meta_agents(self):
        """One row per meta-agent per analysed frame: step, scale, id, parent, size, n_base, dead, members."""
        import pandas as pd

        r = self.result
        df = pd.DataFrame({name: r.records[name] for name in r.records.dtype.names})
        df["members"] = [r.members[r.members_offset[k]:r.members_offset[k + 1]].tolist() for k in range(len(df))]
        return df

    @property
    def events(self):
        """Births, deaths, merges and splits: step, kind (categorical), scale, id, other (-1: none)."""
        import pandas as pd

        from ..analysis.pipeline import EVENT_KINDS

        ev = self.result.events
        names = {v: k for k, v in EVENT_KINDS.items()}
        df = pd.DataFrame({name: ev[name] for name in ev.dtype.names})
        df["kind"] = pd.Categorical([names[int(k)] for k in ev["kind"]], categories=list(EVENT_KINDS))
        return df

    @property
    def lifetimes(self):
        """id, scale, birth and death steps (death -1: alive at the end)."""
        import pandas as pd

        lt = self.result.lifetimes
        return pd.DataFrame({name: lt[name] for name in lt.dtype.names})

    @property
    def timescales(self):
        """id, scale, tau, tau_members (in logged frames) and their ratio, one row per meta-agent."""
        import pandas as pd

        ts = self.result.timescales
        return pd.DataFrame({name: ts[name] for name in ts.dtype.names})

    @property
    def timescale_detail(self):
        """The detailed time scales (docs/model.md#timescale-detail): one row per agent, meta-agent collective
        mode and member relative mode, ``kind`` as a name; times in logged frames, steps and bits."""
        return _detail_frame(self.result.timescale_detail)

    @property
    def series_detail(self):
        """The time scales to trust (docs/model.md#gauge-invariant-series): as :attr:`timescale_detail` over the
        gauge-invariant series (and common-frame ones where frames were fixed), with ``series``,
        ``gauge_invariant`` and ``reason`` as a name (docs/model.md#unresolved-times); None for a stored analysis
        written before the table was stored (``gv.analyze_run`` recomputes it)."""
        import pandas as pd

        from ..analysis.timescales import UNRESOLVED

        d = self.result.series_detail
        if d is None:
            return None
        df = _detail_frame(d)
        df["reason"] = pd.Categorical([UNRESOLVED[int(c)][0] for c in d["reason"]],
                                      categories=[entry[0] for entry in UNRESOLVED.values()])
        return df

    @property
    def counts(self):
        """Meta-agents per scale (columns 2.., ``scale_s``) per analysed step (the index)."""
        import pandas as pd

        c = self.result.counts
        return pd.DataFrame({f"scale_{s}": c[:, s] for s in range(2, c.shape[1])},
                            index=pd.Index(self.result.steps, name="step"))

    @property
    def holonomy(self):
        """Per analysed step (the index): plaquette angle mean and max (rad), their count, and each loop's
        angle (rad) as ``loop:NAME``."""
        import pandas as pd

        r = self.result
        df = pd.DataFrame({"mean": r.holonomy_summary[:, 0], "max": r.holonomy_summary[:, 1],
                           "count": r.holonomy_summary[:, 2].astype(np.int64)},
                          index=pd.Index(r.steps, name="step"))
        for li, name in enumerate(r.loop_names):
            df[f"loop:{name}"] = r.loop_angle[:, li]
        return df

    def __repr__(self) -> str:
        events = self.result.event_counts()
        stored = ", stored" if self.stored else ""
        return (f"Analysis({len(self.steps)} frames, highest scale {self.n_scales}, {len(self.result.timescales)} "
                f"meta-agents, events {events}, {len(self.result.loop_names)} loops{stored})")


def _detail_frame(d):
    """A time-scale table (``timescale_detail`` or ``series_detail``) as a DataFrame, ``kind`` as a name."""
    import pandas as pd

    from ..analysis.pipeline import TIMESCALE_KINDS

    df = pd.DataFrame({name: d[name] for name in d.dtype.names})
    names = {v: k for k, v in TIMESCALE_KINDS.items()}
    df["kind"] = pd.Categorical([names[int(k)] for k in d["kind"]], categories=list(TIMESCALE_KINDS))
    return df


def analyze(sim_or_traj, **thresholds) -> Analysis:
    """Meta-agents, events, time scales and holonomy of a run, in one call.

    ``sim_or_traj``: a :class:`~gauge_vfe.agents.io.reader.Trajectory` (or a path to a run file): every logged
    frame is analysed; a :class:`~gauge_vfe.agents.runner.simulation.Simulation`: its current state, as one frame.
    ``thresholds``: ``eps_belief``, ``min_overlap``, ``eps_prior``, ``max_scale``, ``automatic_loops`` (the
    options of ``vfe analyze``); the rest are the run's own ``analysis`` settings. Without thresholds, a
    trajectory's stored analysis is returned as it is (``stored=True``). The result is never written into
    the file (``vfe analyze`` / ``gv.analyze_run`` store one).
    """
    from ..analysis.pipeline import analyze_frames
    from ..analysis.timescales import fluctuation_sources
    from ..io.reader import load
    from .analyze import analysis_config
    from .simulation import Simulation

    if isinstance(sim_or_traj, Simulation):
        sim = sim_or_traj
        settings = analysis_config(sim.config.to_dict(), **thresholds)
        return Analysis(analyze_frames(sim.layout, [sim.state.step], [sim.state], settings,
                                       fluctuating=bool(fluctuation_sources(sim.config.to_dict()))))
    if isinstance(sim_or_traj, (str, Path)):
        with load(sim_or_traj) as traj:
            return analyze(traj, **thresholds)
    if not isinstance(sim_or_traj, Trajectory):
        raise TypeError(f"analyze takes a Simulation, a Trajectory or a path, not {type(sim_or_traj).__name__}")
    traj = sim_or_traj
    given = {k: v for k, v in thresholds.items() if v is not None}
    if not given and (stored := traj.analysis()) is not None and np.array_equal(stored.steps, traj.frame_steps):
        return Analysis(stored, stored=True)
    settings = analysis_config(traj.config, **thresholds)
    return Analysis(analyze_frames(traj.layout(), traj.frame_steps, traj.frame_states(), settings,
                                   info_bits=traj.info_bits(), fluctuating=bool(fluctuation_sources(traj.config))))
