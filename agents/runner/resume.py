"""What a run may continue, and with which settings (docs/model.md#hierarchy-coupling, #noise, #resume-settings).

The writer (:meth:`~gauge_vfe.agents.io.writer.TrajectoryWriter.resume`) checks what the file format needs; whether
the dynamics can go on bit for bit from a checkpoint is run policy, decided here and handed to it as ``refusal``.
So is which settings a resume may change (:data:`ACCEPTED`, every other key is refused) and whether the input
files may have changed (:func:`input_changes`): both are checked, from a read-only look at the file, before the
writer opens it.
"""

from __future__ import annotations

import json

from ..model.dynamics import noise_resume_problem
from ..model.hierarchy import resume_problem
from ..model.state import State
from ..setup.config import make_config
from ..setup.inputs import FROM_KEY

# Keys a resume may change, and why the file stays true (docs/model.md#resume-settings). The change is said in
# one line and recorded in the resume's history record; `config_json` keeps the first configuration. Any other
# key (step sizes, method, line search, temperature, precision, output.dtype, output.fields, compression, the
# energy weights, grid, agents, observations, seed, name, ...) would make the file hold steps the stored
# configuration does not describe, and is refused naming the key and both values.
ACCEPTED = {
    "dynamics.steps": "the run's length: the file's steps say how far it went",
    "dynamics.tol": "when to stop early: each step is the same step",
    "output.every": "how often frames are logged: every frame carries its step",
    "output.path": "where the file is: the file resumed is the one given",
    "analysis": "the end-of-run analysis of every frame, stored with the parameters it used",
}


def resume_refusal(config_json: str):
    """``refusal(checkpoint_state, checkpoint_rng) -> str | None`` for a run of this configuration (JSON): why it
    cannot continue from that checkpoint (the hierarchy targets are recomputed only at refresh steps; noise drawn
    by an earlier generator cannot be continued), or None."""
    config = json.loads(config_json)

    def refusal(state: State, rng_state: dict | None) -> str | None:
        return resume_problem(config, state.step) or noise_resume_problem(config, rng_state)

    return refusal


def accepted(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in ACCEPTED)


def flatten(config: dict, prefix: str = "") -> dict:
    """``{"a.b.c": value}`` of a nested configuration (lists are values)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_changes(stored: dict, mine: dict) -> dict[str, list]:
    """``{key: [stored value, this value]}`` of every setting that differs. A key a newer version added, which the
    stored configuration lacks, at its default (or unset) is no change: the older run used what it means."""
    a, b = flatten(stored), flatten(mine)
    defaults = flatten(make_config(None).to_dict())
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not (k not in a and b.get(k) in (None, defaults.get(k)))}


def latest_config(config: dict, segments: list[dict]) -> dict:
    """The stored (first) configuration with the changes of the last resume applied: the settings the run's
    latest steps and end-of-run analysis used (each resume records its whole difference from the first)."""
    last = next((r for r in reversed(segments) if r.get("command") == "resume"), None)
    out = json.loads(json.dumps(config))
    for key, (_, new) in ((last or {}).get("changes") or {}).items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = new
    return out


def _show(value) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def settings_refusal(changes: dict[str, list]) -> str | None:
    """Why a resume with these changes is refused (the first key that would make the file lie), or None."""
    for key, (old, new) in changes.items():
        if not accepted(key):
            return (f"cannot resume with {key} = {_show(new)}: the run's steps so far used {_show(old)} "
                    "(only dynamics.steps, dynamics.tol, output.every, output.path and analysis may change; "
                    "run it as a new run instead)")
    return None


def change_lines(changes: dict[str, list]) -> list[str]:
    """The accepted changes, one line each, as ``vfe run --resume`` says them."""
    return [f"resumed with {key} = {_show(new)} (was {_show(old)}): recorded in the run's history"
            for key, (old, new) in changes.items()]


def input_changes(recorded: dict | None, now: dict) -> dict[str, dict]:
    """The input files whose content differs from what the run's last segment recorded: ``{key: {"path",
    "was", "now"}}``. The earlier run a scenario starts from (``agents.init.from``) only sets step 0, which a
    resume takes from the checkpoint: it is recorded, never compared."""
    if not recorded:
        return {}
    out = {}
    for key, entry in now.items():
        before = recorded.get(key)
        if key == FROM_KEY or before is None or before.get("sha256") == entry["sha256"]:
            continue
        out[key] = {"path": entry["path"], "was": before.get("sha256"), "now": entry["sha256"]}
    return out


def _hashes(c: dict) -> str:
    """Both hashes of a changed file, short (12 hex digits), as every message shows them."""
    return f"sha256 {(c['was'] or '-')[:12]} then, {(c['now'] or 'unreadable')[:12]} now"


def inputs_refusal(changed: dict[str, dict]) -> str | None:
    for key, c in changed.items():
        return (f"cannot resume: {c['path']} ({key}) changed since the run's last segment ({_hashes(c)}); pass "
                "--allow-changed-inputs to continue with the new file (it is recorded)")
    return None


def input_lines(changed: dict[str, dict]) -> list[str]:
    """The changed input files a resume was allowed to use, one line each."""
    return [f"resumed with a changed {c['path']} ({key}; {_hashes(c)}): recorded in the run's history"
            for key, c in changed.items()]
