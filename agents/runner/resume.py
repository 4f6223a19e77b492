"""Which checkpoints the run code can continue (docs/model.md#hierarchy-coupling, #noise).

The writer (:meth:`~gauge_vfe.agents.io.writer.TrajectoryWriter.resume`) checks what the file format needs; whether
the dynamics can go on bit for bit from a checkpoint is run policy, decided here and handed to it as ``refusal``.
"""

from __future__ import annotations

import json

from ..model.dynamics import noise_resume_problem
from ..model.hierarchy import resume_problem
from ..model.state import State


def resume_refusal(config_json: str):
    """``refusal(checkpoint_state, checkpoint_rng) -> str | None`` for a run of this configuration (JSON): why it
    cannot continue from that checkpoint (the hierarchy targets are recomputed only at refresh steps; noise drawn
    by an earlier generator cannot be continued), or None."""
    config = json.loads(config_json)

    def refusal(state: State, rng_state: dict | None) -> str | None:
        return resume_problem(config, state.step) or noise_resume_problem(config, rng_state)

    return refusal
