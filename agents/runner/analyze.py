"""``vfe analyze``: meta-agents and holonomy of every logged frame of a finished (or killed) run, stored in it."""

from __future__ import annotations

from pathlib import Path

from ..analysis.pipeline import AnalysisResult, analyze_frames
from ..analysis.timescales import fluctuation_sources
from ..io import provenance
from ..io.outputs import full_disk_names
from ..io.reader import load
from ..io.session import analysis_session
from ..model.fiber import require_so3
from ..setup.config import AnalysisConfig, ConfigError, make_config
from .resume import latest_config


THRESHOLDS = ("eps_belief", "min_overlap", "eps_prior", "max_scale", "automatic_loops")


def analysis_config(config: dict, **thresholds) -> AnalysisConfig:
    """The ``analysis`` section of a run's resolved ``config`` with some thresholds replaced (None: keep):
    ``eps_belief``, ``min_overlap``, ``eps_prior``, ``max_scale`` (of ``meta_agents``) and ``automatic_loops``
    (``holonomy.automatic``). Validated like a scenario; a bad value raises ``ConfigError``."""
    unknown = sorted(set(thresholds) - set(THRESHOLDS))
    if unknown:
        raise TypeError(f"unknown analysis threshold(s) {unknown}: use {', '.join(THRESHOLDS)}")
    section = dict(config.get("analysis", {}))
    meta = {**section.get("meta_agents", {}),
            **{k: v for k, v in thresholds.items() if k != "automatic_loops" and v is not None}}
    holonomy = dict(section.get("holonomy", {}))
    if thresholds.get("automatic_loops") is not None:
        holonomy["automatic"] = thresholds["automatic_loops"]
    return make_config({**config, "analysis": {**section, "meta_agents": meta, "holonomy": holonomy}}).analysis


def analysis_settings(path: str | Path, **overrides) -> AnalysisConfig:
    """The run's own ``analysis`` settings (the latest: a resume may change them, docs/model.md#resume-settings)
    with some thresholds replaced (:func:`analysis_config`), a bad value's key named as the ``vfe analyze`` option
    that set it (``--eps-belief``) in the :class:`ConfigError`."""
    with load(path) as traj:
        require_so3(traj, "vfe analyze", path)  # refused before the analysis session records anything in the file
        config = latest_config(traj.config, traj.segments())  # as a resume may have changed them
    try:
        return analysis_config(config, **overrides)
    except ConfigError as exc:
        raise ConfigError([(key.replace("analysis.meta_agents.", "--").replace("_", "-"), msg)
                           for key, msg in exc.problems]) from None


def analyze_run(path: str | Path, settings: AnalysisConfig | None = None, progress=None) -> AnalysisResult:
    """Analyse every logged frame of the run at ``path`` and store the result in the file.

    ``settings`` default to the run's own (``analysis_settings(path)``). A run still being written is refused. A
    full disk (for the lock file or the results) raises :class:`~..io.outputs.NoSpaceLeft`; the frames are intact.
    """
    settings = settings if settings is not None else analysis_settings(path)
    record = provenance.invocation("analyze", call="analyze_run", settings=settings.model_dump(mode="json"))
    with full_disk_names(f"the analysis into {path}", "nothing was replaced"), \
            analysis_session(path, record) as session:
        traj = session.trajectory
        result = analyze_frames(traj.layout(), traj.frame_steps, traj.frame_states(), settings, progress,
                                info_bits=traj.info_bits(), fluctuating=bool(fluctuation_sources(traj.config)))
        session.write_analysis(result)
    return result
