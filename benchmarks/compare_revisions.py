"""Engine speed of two revisions in one run, as ratios: the before/after figures of a change.

    python benchmarks/compare_revisions.py --base d08e63d            # working tree against that commit
    python benchmarks/compare_revisions.py --base HEAD~3 --only B1,B2 --rounds 5

Each revision's own ``benchmarks/bench_engine.py`` measures one benchmark in a fresh child process (its hidden
``--child NAME`` mode, which prints one JSON line of steps/s). The two revisions alternate, round after round,
so that a busy neighbour or a thermal drift affects both alike; the report gives each revision's median and
the ratio of medians (working tree / base). The base revision is checked out with ``git worktree`` into a
temporary folder and imported from there; the working tree is imported from this checkout. Revisions from
before the package was renamed import as ``agents``, later ones as ``gauge_vfe``: both are handled by putting
the right folder first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT_TAG = "@@BENCH_RESULT@@ "  # what bench_engine.py children print before their JSON line


def _import_path(tree: Path, scratch: Path) -> str:
    """A PYTHONPATH entry under which ``tree`` imports as its revision expects (``gauge_vfe`` or ``agents``)."""
    if (tree / "__init__.py").exists():  # the repository root is the package gauge_vfe
        link = scratch / f"import-{abs(hash(str(tree)))}"
        link.mkdir(exist_ok=True)
        target = link / "gauge_vfe"
        if not target.exists():
            target.symlink_to(tree, target_is_directory=True)
        return str(link)
    return str(tree)


@contextlib.contextmanager
def base_checkout(rev: str, prefix: str):
    """``(base_tree, scratch)``: revision ``rev`` checked out with ``git worktree`` in a temporary folder, both
    removed when the block ends (also on an error or Ctrl-C)."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    base_tree = scratch / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), rev], cwd=ROOT, check=True)
    try:
        yield base_tree, scratch
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False)
        shutil.rmtree(scratch, ignore_errors=True)


def run_child(tree: Path, import_path: str, name: str, quick: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": import_path}
    cmd = [sys.executable, str(tree / "benchmarks" / "bench_engine.py"), "--child", name] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(f"{tree} {name}: child exited with {proc.returncode}:\n{proc.stderr[-2000:]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision to compare the working tree with")
    ap.add_argument("--only", default="B1,B2,B3", help="benchmarks, comma-separated (bench_engine children)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations per benchmark")
    ap.add_argument("--quick", action="store_true", help="shorter timed blocks in each child")
    args = ap.parse_args(argv)
    with base_checkout(args.base, "vfe-compare-") as (base_tree, scratch):
        trees = {"base": base_tree, "head": ROOT}
        paths = {k: _import_path(v, scratch) for k, v in trees.items()}
        print(f"base = {args.base} ({subprocess.check_output(['git', 'rev-parse', '--short', args.base], cwd=ROOT, text=True).strip()}), "
              f"head = working tree of {ROOT}; {args.rounds} alternating rounds, {'quick' if args.quick else 'full'} "
              "children")
        print(f"{'bench':<6} {'base steps/s':>14} {'head steps/s':>14} {'head/base':>10}   per round (base, head)")
        for name in args.only.split(","):
            rates = {"base": [], "head": []}
            for _ in range(args.rounds):
                for which in ("base", "head"):
                    rates[which].append(run_child(trees[which], paths[which], name, args.quick)["steps_per_s"])
            b, h = statistics.median(rates["base"]), statistics.median(rates["head"])
            rounds = ", ".join(f"({x:.1f}, {y:.1f})" for x, y in zip(rates["base"], rates["head"]))
            print(f"{name:<6} {b:14.1f} {h:14.1f} {h / b:10.3f}   {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
