"""The per-user numba cache has one folder per version of the kernel sources (agents/kernels/cache.py).

numba checks a cached kernel only against its own file's path and time stamp: without the digest folder, a kernel
that inlines a function of another file would load from the cache with that function's old code after an edit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gauge_vfe.agents import kernels
from gauge_vfe.agents.kernels import cache

KERNELS = Path(kernels.__file__).parent
PACKAGE = "vfe_kernels_copy"  # the copied kernels, imported as a package of their own (relative imports only)

# holonomy.frame_switch inlines linalg.matmul_nt (another file); it compiles in a few seconds, no parallel loops
SCRIPT = """
import numba, numpy as np
from {package}.holonomy import frame_switch
phi = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.3]])
ra, rb, out = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
frame_switch(phi, 0, 1, ra, rb, out)
print(repr(float(out.sum())))
print(sum(frame_switch.stats.cache_hits.values()))
print(numba.config.CACHE_DIR)
""".format(package=PACKAGE)

# an edit of linalg.py that changes what matmul_nt computes: twice a @ b.T (its "out[i, j] = s" comes first in
# the file; the other is symmetric_expm's)
EDIT = ("            out[i, j] = s\n", "            out[i, j] = 2.0 * s\n")


def _copy_kernels(dest: Path) -> Path:
    """The kernel sources (``*.py`` only, no caches) as the package ``PACKAGE`` in ``dest``."""
    package = dest / PACKAGE
    package.mkdir(parents=True)
    for source in KERNELS.glob("*.py"):
        shutil.copyfile(source, package / source.name)
    return package


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
    return {**env, **extra}


def _run(cwd: Path, xdg: Path) -> tuple[str, int, str]:
    """(printed result, cache hits, numba's cache folder) of SCRIPT in a fresh process with the default cache."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=cwd, env=_environment(XDG_CACHE_HOME=str(xdg)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result, hits, cache_dir = proc.stdout.split("\n")[:3]
    return result, int(hits), cache_dir


def test_an_edit_of_a_called_kernel_file_is_not_hidden_by_the_cache(tmp_path):
    """Cache, rerun (loaded), edit linalg.py, rerun: the result is the new code's, compiled afresh (~10 s)."""
    package = _copy_kernels(tmp_path / "src")
    xdg = tmp_path / "xdg"
    root = xdg / "gauge-vfe" / "numba"
    first, hits, cache_dir = _run(package.parent, xdg)
    assert hits == 0
    again, hits, same_dir = _run(package.parent, xdg)
    assert (again, hits, same_dir) == (first, 1, cache_dir)  # unchanged sources: loaded from the cache
    digest = cache.source_digest(str(package))
    linalg = package / "linalg.py"  # holonomy.py, the file numba checks, is not touched
    linalg.write_text(linalg.read_text().replace(*EDIT, 1))
    edited, hits, new_dir = _run(package.parent, xdg)
    assert float(edited) == 2 * float(first), "a stale frame_switch was loaded (or it no longer uses matmul_nt)"
    assert hits == 0
    assert Path(cache_dir) == root / digest and Path(new_dir) == root / cache.source_digest(str(package))
    assert sorted(p.name for p in root.iterdir()) == sorted([Path(cache_dir).name, Path(new_dir).name])


def test_two_installs_of_the_same_sources_share_one_compile(tmp_path):
    """An editable checkout and a wheel install (here: two copies at different paths) of one version compile
    once: the second loads every kernel the first compiled (issue 24 item 5; ~10 s)."""
    first_copy = _copy_kernels(tmp_path / "checkout")
    second_copy = _copy_kernels(tmp_path / "site-packages" / "deeper")
    xdg = tmp_path / "xdg"
    first, hits, cache_dir = _run(first_copy.parent, xdg)
    assert hits == 0
    again, hits, same_dir = _run(second_copy.parent, xdg)
    assert (again, hits, same_dir) == (first, 1, cache_dir)
    digest_dir = xdg / "gauge-vfe" / "numba" / cache.source_digest(str(first_copy))
    assert [p.name for p in digest_dir.iterdir()] == ["kernels"]  # no folder named after either path


def test_a_cache_dir_the_user_names_is_keyed_by_the_sources_too(tmp_path):
    """With NUMBA_CACHE_DIR set, the kernels go to ``gauge-vfe-<digest>`` in it, shared by both copies."""
    mine = tmp_path / "mine"
    hits = []
    for where in ("a", "b"):
        package = _copy_kernels(tmp_path / where)
        proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=package.parent, capture_output=True, text=True,
                              env=_environment(NUMBA_CACHE_DIR=str(mine)), timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        hits.append(int(proc.stdout.split("\n")[1]))
    assert hits == [0, 1]
    assert [p.name for p in mine.iterdir()] == [f"gauge-vfe-{cache.source_digest(str(package))}"]


def test_the_digest_follows_the_contents_of_every_kernel_source(tmp_path):
    package = _copy_kernels(tmp_path)
    digest = cache.source_digest(str(package))
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest == cache.source_digest()  # the same sources in another folder
    os.utime(package / "lie.py", (1, 1))  # a time stamp alone changes nothing
    (package / "notes.txt").write_text("not a source")
    (package / "__pycache__").mkdir()
    assert cache.source_digest(str(package)) == digest
    with open(package / "linalg.py", "a") as f:
        f.write("\n")
    edited = cache.source_digest(str(package))
    assert edited != digest
    (package / "extra.py").write_text("")
    assert cache.source_digest(str(package)) not in (digest, edited)


def test_the_default_folder_is_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.default_cache_dir() == str(tmp_path / "gauge-vfe" / "numba" / cache.source_digest())


def test_numba_uses_the_digest_folder_unless_the_user_names_another(tmp_path):
    """Also when numba was imported before the package; a NUMBA_CACHE_DIR the user set is kept as it is."""
    code = "import numba, gauge_vfe.agents.kernels, os; print(numba.config.CACHE_DIR, os.environ['NUMBA_CACHE_DIR'])"
    xdg = tmp_path / "xdg"
    expected = str(xdg / "gauge-vfe" / "numba" / cache.source_digest())
    out = subprocess.run([sys.executable, "-c", code], env=_environment(XDG_CACHE_HOME=str(xdg)),
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == [expected, expected]
    mine = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-c", code], env=_environment(XDG_CACHE_HOME=str(xdg), NUMBA_CACHE_DIR=mine),
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == [mine, mine]


def test_old_digest_folders_and_pre_digest_folders_are_pruned_and_nothing_else(tmp_path):
    root = tmp_path / "numba"
    month_ago = time.time() - 31 * 86400
    names = {"keep": "0123456789abcdef", "old": "fedcba9876543210", "young": "00000000000000aa",
             "other": "kernels_0123456789abcdef", "upper": "FEDCBA9876543210", "long": "0123456789abcdef0",
             "legacy": "kernels_" + "2ca8083b57" * 4, "legacy_young": "kernels_" + "67ba1fd76a" * 4}
    for name in names.values():
        (root / name).mkdir(parents=True)
        (root / name / "index.nbi").write_text("")
    (root / "aaaaaaaaaaaaaaaa").write_text("a file")
    for key, name in names.items():
        if key not in ("young", "legacy_young"):
            os.utime(root / name, (month_ago, month_ago))
    os.utime(root / "aaaaaaaaaaaaaaaa", (month_ago, month_ago))
    cache.prune_old_caches(str(root), names["keep"])
    left = {p.name for p in root.iterdir()}
    assert left == set(names.values()) - {names["old"], names["legacy"]} | {"aaaaaaaaaaaaaaaa"}
    assert (root / names["keep"]).stat().st_mtime > month_ago + 86400  # the folder in use is marked as used
    cache.prune_old_caches(str(tmp_path / "absent"), names["keep"])  # no error
