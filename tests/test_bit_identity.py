"""Every shipped scenario writes the same trajectory bits as the recorded reference (tests/data/trajectory_digests.json).

A restructuring of set-up, the run loop or the file layout must not change one bit of what a run computes and logs.
Each shipped scenario is run for a few steps through :func:`run_scenario` (the path ``vfe run`` takes: build, the
trajectory observer, the hierarchy coupling, the end-of-run analysis) and every dataset of its file is hashed: the
logged fields, energies, gradient norms, information clock, checkpoint, analysis groups and the static groups.
Wall-clock values (``finished_at``, the closing message) and the run's history (``/provenance``) are left out; the
stored configuration is in.

Regenerate the reference only for a change that is meant to alter results:
``python tests/test_bit_identity.py > tests/data/trajectory_digests.json``, and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parent / "data" / "trajectory_digests.json"
STEPS = 20
# wall-clock or process-dependent datasets: the rest of the file is a function of the scenario alone
UNSTABLE = ("parameters/finished_at", "parameters/message")
# the run's history (docs/model.md#file-provenance): times, host, pid and command line of each invocation, left out
# on purpose (it is no result of the run; tests/test_provenance.py checks it)
UNSTABLE_GROUPS = ("provenance/",)
# every 5 steps: a multiple of the shipped hierarchy.every values up to 5, and 5 frames a run; scenarios whose
# coupling refreshes every 10 steps log every 10 (a checkpoint must sit on a refresh step), 3 frames a run
OVERRIDES = (f"dynamics.steps={STEPS}", "output.every=5")
EVERY_10 = {"seed_timescales", "seed_timescales_l7"}


# the run-loop features the shipped scenarios leave off at these settings: the hierarchy coupling with rho > 0,
# streaming observations, Langevin noise, the natural-gradient step and float32 state
VARIANTS = {
    "timescales+coupled": ("timescales", ("hierarchy.rho=0.5",)),
    "quickstart+streaming": ("quickstart", ("observations.resample_every=4",)),
    "quickstart+langevin": ("quickstart", ("dynamics.temperature=0.05",)),
    "emergence+natural": ("emergence", ("dynamics.method=natural",)),
    "quickstart+float32": ("quickstart", ("dynamics.precision=float32",)),
}


def shipped() -> list[str]:
    from gauge_vfe.agents.setup.shipped import shipped_scenarios

    return sorted(shipped_scenarios()) + sorted(VARIANTS)


def trajectory_digest(path: Path) -> dict[str, str]:
    """sha256 of (dtype, shape, bytes) of every dataset, by path; the stored configuration as one more entry."""
    out: dict[str, str] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name not in UNSTABLE and not name.startswith(UNSTABLE_GROUPS):
            data = np.ascontiguousarray(obj[()])
            h = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
            h.update(data.tobytes() if data.dtype.kind != "O" else repr(data.tolist()).encode())
            out[name] = h.hexdigest()[:24]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        out["@config_json"] = hashlib.sha256(str(f["parameters"].attrs["config_json"]).encode()).hexdigest()[:24]
    return dict(sorted(out.items()))


def run_digest(name: str, folder: Path) -> dict[str, str]:
    from gauge_vfe.agents.runner.run import run_scenario
    from gauge_vfe.agents.setup.scenario import load_scenario

    source, extra = VARIANTS.get(name, (name, ()))
    overrides = OVERRIDES + (("output.every=10",) if source in EVERY_10 else ()) + extra
    scenario = load_scenario(source, overrides=overrides)
    out = folder / f"{name}.h5"
    run_scenario(scenario, output=out)
    return trajectory_digest(out)


@pytest.mark.parametrize("name", shipped())
def test_trajectory_bits_unchanged(name, tmp_path):
    reference = json.loads(REFERENCE.read_text())
    assert name in reference, f"no reference for {name}: regenerate {REFERENCE.name} (see the module docstring)"
    got = run_digest(name, tmp_path)
    want = reference[name]
    changed = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    assert not changed, f"{name}: datasets differ from the reference: {changed}"


if __name__ == "__main__":  # regenerate the reference
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        digests = {name: run_digest(name, Path(tmp)) for name in shipped()}
    json.dump(digests, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
