"""On-disk cache of compiled kernels, keyed on a hash of the package sources.

Numba's own cache validates an entry against the source file of the cached
function only.  Our drivers live in ``_engine/cpu.py`` but inline maths from
``_engine/rng.py`` and ``families/*.py``; an edit there would silently reuse stale
machine code.  The locator below files every kernel of this package under
``<cache root>/<sha256 of the package's kernel sources>/`` and uses that hash (plus
the hash of the function's own file) as the freshness stamp, so any edit to code that
a kernel may inline starts a fresh cache, while editing the CLI or the sweep runner
does not throw the compiled kernels away.

Cache root: ``$LOGRAD_FAST_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/lograd_fast``,
else ``$XDG_CACHE_HOME/lograd_fast`` (``~/.cache/lograd_fast``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba.core import caching as _caching
from numba.core.caching import _CacheLocator

# numba >= 0.61 calls it CacheImpl, older releases _CacheImpl
_CacheImpl = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # lograd_fast/


# Files whose code is never compiled into a kernel of another file: editing them
# should not throw the compiled kernels away (their own jitted functions, if any,
# are still keyed on their own file's hash, see ``get_source_stamp``).
_NOT_KERNEL_SOURCES = ("cli", "sweep", "bench", "torch.py", "jax.py", "_engine/cache.py")


def source_hash() -> str:
    """SHA-256 (first 16 hex digits) of the package's kernel sources."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        if rel.parts[0] in _NOT_KERNEL_SOURCES or rel.as_posix() in _NOT_KERNEL_SOURCES:
            continue
        digest.update(str(rel).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cache_root() -> Path:
    if os.environ.get("LOGRAD_FAST_CACHE_DIR"):
        return Path(os.environ["LOGRAD_FAST_CACHE_DIR"])
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]) / "lograd_fast"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "lograd_fast"


SOURCE_HASH = source_hash()


def cache_dir() -> Path:
    """The directory that holds this version's compiled kernels."""
    return cache_root() / SOURCE_HASH


class PackageHashLocator(_CacheLocator):
    """Numba cache locator for functions defined inside lograd_fast."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        rel = Path(py_file).resolve().relative_to(PACKAGE_DIR)
        self._tag = str(rel.with_suffix("")).replace(os.sep, ".")
        self._cache_path = str(cache_dir())

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return SOURCE_HASH, _file_hash(self._py_file)

    def get_disambiguator(self):
        return f"{self._tag}-{self._lineno}"

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except (ValueError, OSError):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None  # unwritable: Numba falls back to its own locators
        return self


def install() -> None:
    """Put our locator first in Numba's list (idempotent)."""
    if PackageHashLocator not in _CacheImpl._locator_classes:
        _CacheImpl._locator_classes.insert(0, PackageHashLocator)


install()
