"""The folder numba caches compiled kernels in, keyed by the kernel sources.

Compiled kernels go to one per-user cache, ``$XDG_CACHE_HOME/gauge-vfe/numba/<digest>`` (``~/.cache/...``),
unless ``NUMBA_CACHE_DIR`` is set, which is then used as it is: the CLI, notebooks, the tests and sweep workers
share it, and it works for an install whose package folder is not writable. (numba's own default is a
``__pycache__`` beside each source file, so a checkout and its tests compiled twice.)

``<digest>`` is 16 hex digits of a sha256 over the names and contents of all ``*.py`` files in this folder (this
one too). numba checks a cached kernel against the path and time stamp of its own source file only, not of the
files whose functions it calls or inlines: after an edit of ``linalg.py`` (or an upgrade), ``site_terms_kernel`` or
``information.row_update_kl`` would load from the cache with the old ``linalg.cholesky`` compiled into it. With
the digest, any change to any kernel source means a new, empty folder, so the kernels compile afresh. Each import
touches its digest folder, and digest folders nobody imported for 30 days are removed, as are the folders numba made
there before the digests (``kernels_`` and 40 hex digits) once unmodified for 30 days. The kernel modules read the
setting when they are imported, after the package's ``__init__`` called :func:`use_default_cache`.

numba's own locator also files each source folder's kernels under a hash of that folder's *path*, so an editable
checkout and a wheel install of the same sources (or two checkouts) compiled everything twice (37 s instead of 4 s
when switching between README's two commands). :class:`SourceKeyedLocator` files this folder's kernels by the
digest alone (``<digest folder>/kernels``, or ``gauge-vfe-<digest>`` inside a ``NUMBA_CACHE_DIR`` the user set),
so every install of one version of the sources shares one compile. numba already checks each kernel against a
hash of its file's contents (not its path or time stamp), so nothing else ties a cached kernel to where it lives.
"""

import hashlib
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_KEEP_DAYS = 30
_digest = None  # of _HERE, computed once: the sources this process loaded
_locator_installed = False


def source_digest(folder: str = _HERE) -> str:
    """16 hex digits of a sha256 over the name and bytes of every ``*.py`` file in ``folder``, in name order.

    Runs at import: 0.3 ms for this folder (14 files, 78 kB), about 1 ms more for the whole import with the
    pruning (2-core machine; hashlib, 3-5 ms to import on its own, is loaded by numba anyway).
    """
    h = hashlib.sha256()
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        h.update(b"%s\0%d\0" % (name.encode(), len(data)))
        h.update(data)
    return h.hexdigest()[:16]


def cache_root() -> str:
    """``$XDG_CACHE_HOME/gauge-vfe/numba`` (``~/.cache/gauge-vfe/numba``): the folder of the digest folders."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gauge-vfe", "numba")


def default_cache_dir() -> str:
    """The numba cache for these kernel sources: ``cache_root()/<source_digest()>``."""
    global _digest
    if _digest is None:
        _digest = source_digest()
    return os.path.join(cache_root(), _digest)


def _is_hex(text: str, digits: int) -> bool:
    return len(text) == digits and all(c in "0123456789abcdef" for c in text)


def _is_ours(name: str) -> bool:
    """A digest folder, or one that numba made here before the digests: ``kernels_`` and 40 hex digits (numba's
    own per-source-folder name, which older versions of gauge-vfe left in this root)."""
    return _is_hex(name, 16) or (name.startswith("kernels_") and _is_hex(name[len("kernels_"):], 40))


def prune_old_caches(root: str, keep: str, days: float = _KEEP_DAYS) -> None:
    """Remove the folders of ``root`` named by 16 hex digits (or numba's older ``kernels_<40 hex digits>``), other
    than ``keep``, unmodified for ``days`` days.

    Touches ``keep`` first (a folder in use stays). Nothing else in ``root`` is touched; errors are ignored.
    """
    try:
        os.utime(os.path.join(root, keep))  # absent on the first run: numba creates it when a kernel module loads
    except OSError:
        pass
    try:
        cutoff = time.time() - days * 86400
        with os.scandir(root) as entries:
            old = [e.path for e in entries if _is_ours(e.name) and e.name != keep
                   and e.is_dir(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < cutoff]
    except OSError:
        return
    if old:
        import shutil

        for path in old:
            shutil.rmtree(path, ignore_errors=True)


def kernel_cache_path(cache_dir: str) -> str:
    """Where this folder's kernels are cached inside numba's ``cache_dir``: ``kernels`` in our digest folder, else
    ``gauge-vfe-<digest>`` (a ``NUMBA_CACHE_DIR`` the user set: the digest keeps stale kernels out there too).
    Never the sources' path, so every install of the same sources finds the same files."""
    default_cache_dir()  # sets _digest
    if os.path.abspath(cache_dir) == os.path.abspath(os.path.join(cache_root(), _digest)):
        return os.path.join(cache_dir, "kernels")
    return os.path.join(cache_dir, f"gauge-vfe-{_digest}")


def use_source_keyed_locator() -> None:
    """Put a ``SourceKeyedLocator`` first in numba's list of cache locators (once per process): numba's locator for
    ``NUMBA_CACHE_DIR`` with :func:`kernel_cache_path` in place of its path-keyed sub-folder, for the files of this
    folder only (numba's own locators still handle every other function). Defined here, not at the top, so that
    numba is imported only after :func:`use_default_cache` set ``NUMBA_CACHE_DIR``."""
    global _locator_installed
    if _locator_installed:
        return
    from numba.core import caching, config

    def public(name):  # recent numba names these without the leading underscore that older versions had
        return getattr(caching, name, None) or getattr(caching, "_" + name)

    class SourceKeyedLocator(public("UserProvidedCacheLocator")):
        def __init__(self, py_func, py_file):
            super().__init__(py_func, py_file)
            self._cache_path = kernel_cache_path(config.CACHE_DIR)

        @classmethod
        def from_function(cls, py_func, py_file):
            if not config.CACHE_DIR or os.path.dirname(os.path.abspath(py_file)) != _HERE:
                return None
            return super().from_function(py_func, py_file)

    public("CacheImpl")._locator_classes.insert(0, SourceKeyedLocator)
    _locator_installed = True


def use_default_cache() -> None:
    """Point numba at :func:`default_cache_dir` and prune old digest folders, unless ``NUMBA_CACHE_DIR`` is set;
    in either case cache this folder's kernels by their sources' digest, not their path
    (:func:`use_source_keyed_locator`).

    Called when the package is imported, before any kernel module loads (they read the setting then)."""
    _set_cache_dir()
    use_source_keyed_locator()


def _set_cache_dir() -> None:
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = default_cache_dir()  # also for child processes (sweep workers, tests)
        if "numba" in sys.modules:  # imported before us: numba read its settings already; the kernels read this
            sys.modules["numba"].config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
        # once per process tree: a child inherits NUMBA_CACHE_DIR, and a reload of the package finds it set
        prune_old_caches(cache_root(), _digest)
