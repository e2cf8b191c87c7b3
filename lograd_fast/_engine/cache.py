"""On-disk cache of compiled kernels, keyed on the package sources and the toolchain.

Numba's own cache validates an entry against the source file of the cached
function only.  Our drivers live in ``_engine/cpu.py`` but inline maths from
``_engine/rng.py`` and ``families/*.py``; an edit there would silently reuse stale
machine code.  The locator below files every kernel of this package under

    <cache root>/<sources>-<toolchain>/

* ``<sources>``: SHA-256 of the package's kernel sources (every ``.py`` file a kernel
  may inline; editing the CLI or the sweep runner keeps the compiled kernels);
* ``<toolchain>``: SHA-256 of the Numba and llvmlite versions, the Python version and
  the CPU (LLVM target triple, CPU name and feature string, read as Numba's code
  generator reads them, so ``NUMBA_CPU_NAME``/``NUMBA_CPU_FEATURES`` count).

Both hashes are also the freshness stamp of every index file, so an index copied in
from another machine or version is treated as empty.  (Numba checks its own version
and the CPU per entry too; keying the directory as well keeps machines that share a
home directory from rewriting each other's index files.)

Cache root: ``$LOGRAD_FAST_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/lograd_fast``, else
``$XDG_CACHE_HOME/lograd_fast`` (``~/.cache/lograd_fast``).  Directories are created
0700 (a kernel cache is code this process will run).  When the directory cannot be
created or written, kernels go to a private temporary directory for this process,
with one warning: never to Numba's per-file ``__pycache__``, which cannot see edits
of the files a kernel inlines.

Several processes may fill one cache at once (``lograd-fast compile --jobs N``,
pytest-xdist workers, Dask workers): Numba rewrites a function's index file without
a lock and numbers data files by what it read, so two processes saving different
signatures of one driver at once can drop an entry or point it at the other's
machine code.  Saves into our directories therefore hold an exclusive ``flock`` on
the index while they read, extend and write it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import llvmlite
import numba
from numba.core import caching as _caching
from numba.core import config as _numba_config
from numba.core.caching import _CacheLocator

try:  # POSIX; elsewhere saves are unlocked, as in Numba itself
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# numba >= 0.61 calls it CacheImpl, older releases _CacheImpl
_CacheImpl = getattr(_caching, "CacheImpl", None) or _caching._CacheImpl

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # lograd_fast/

# Files whose code is never compiled into a kernel of another file: editing them
# should not throw the compiled kernels away (their own jitted functions, if any,
# are still keyed on their own file's hash, see ``get_source_stamp``).
_NOT_KERNEL_SOURCES = ("cli", "sweep", "bench", "torch.py", "jax.py", "precompile.py",
                       "_engine/cache.py")


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


def toolchain() -> dict:
    """What machine code depends on besides our sources: versions and the target CPU."""
    import llvmlite.binding as ll
    from numba.core.codegen import get_host_cpu_features

    return {"numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}"
                      f"{getattr(sys, 'abiflags', '')}",
            "triple": ll.get_process_triple(),
            "cpu": _numba_config.CPU_NAME or ll.get_host_cpu_name(),
            "features": _numba_config.CPU_FEATURES or get_host_cpu_features()}


def toolchain_hash(info: dict | None = None) -> str:
    """SHA-256 (first 16 hex digits) of :func:`toolchain`."""
    text = json.dumps(toolchain() if info is None else info, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
TOOLCHAIN_HASH = toolchain_hash()
#: name of this version's kernel directory under the cache root
CACHE_KEY = f"{SOURCE_HASH}-{TOOLCHAIN_HASH}"


def _make_private_dirs(path: Path) -> None:
    """``mkdir -p`` creating every missing component with mode 0700."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for p in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process was first
            os.mkdir(p, 0o700)


def _check_writable(path: Path) -> None:
    _make_private_dirs(path)
    with tempfile.TemporaryFile(dir=path):
        pass


_DIR: Path | None = None
_DIR_LOCK = threading.Lock()


def cache_dir() -> Path:
    """The directory that holds this version's compiled kernels (created on first use).

    ``<cache root>/<CACHE_KEY>``; if that cannot be created or written, a private
    temporary directory of this process (removed at exit) and a ``RuntimeWarning``
    that says why."""
    global _DIR
    with _DIR_LOCK:
        if _DIR is None:
            wanted = cache_root() / CACHE_KEY
            try:
                _check_writable(wanted)
                _DIR = wanted
            except OSError as exc:
                _DIR = Path(tempfile.mkdtemp(prefix="lograd_fast-kernels-"))  # 0700
                atexit.register(shutil.rmtree, _DIR, True)
                warnings.warn(
                    f"lograd_fast: cannot use the kernel cache directory {wanted} ({exc}); "
                    f"compiled kernels go to the private directory {_DIR} for this process "
                    "only, so every new process compiles them again.  Set "
                    "LOGRAD_FAST_CACHE_DIR to a writable directory.",
                    RuntimeWarning, stacklevel=2)
        return _DIR


def fallback_in_use() -> bool:
    """Is this process using a private temporary directory (the cache was unusable)?"""
    return cache_dir() != cache_root() / CACHE_KEY


class PackageHashLocator(_CacheLocator):
    """Numba cache locator for functions defined inside lograd_fast."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        rel = Path(py_file).resolve().relative_to(PACKAGE_DIR)
        self._tag = str(rel.with_suffix("")).replace(os.sep, ".")
        self._cache_path = str(cache_dir())
        _OUR_DIRS.add(self._cache_path)

    def ensure_cache_path(self):
        with contextlib.suppress(OSError):  # reported by the save itself
            _make_private_dirs(Path(self._cache_path))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        return CACHE_KEY, _file_hash(self._py_file)

    def get_disambiguator(self):
        return f"{self._tag}-{self._lineno}"

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            Path(py_file).resolve().relative_to(PACKAGE_DIR)
        except (ValueError, OSError):
            return None  # not ours: Numba's own locators
        return cls(py_func, py_file)  # never None: no fallback to __pycache__


_OUR_DIRS: set = set()


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive advisory lock on ``path`` (created if missing) across processes."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class LockedIndexDataCacheFile(_caching.IndexDataCacheFile):
    """Numba's index + data files; in our directories a save holds a lock on the
    index while it reads, extends and rewrites it (see the module docstring)."""

    def save(self, key, data):
        if self._cache_path not in _OUR_DIRS:
            return super().save(key, data)
        try:
            with _locked(self._index_path + ".lock"):
                return super().save(key, data)
        except OSError as exc:  # disk full, directory removed: the kernel still runs
            _warn_once(f"lograd_fast: could not save a compiled kernel in {self._cache_path} "
                       f"({exc}); it will be compiled again by the next process")


_WARNED: set = set()


def _warn_once(message: str) -> None:
    key = message.split(" (", 1)[0]
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def install() -> None:
    """Put our locator first in Numba's list and our index files in place (idempotent).

    ``IndexDataCacheFile`` is replaced by a subclass in ``numba.core.caching`` (where
    ``Cache.__init__`` looks it up): it behaves exactly as Numba's for every other
    cache directory."""
    if PackageHashLocator not in _CacheImpl._locator_classes:
        _CacheImpl._locator_classes.insert(0, PackageHashLocator)
    if not issubclass(_caching.IndexDataCacheFile, LockedIndexDataCacheFile):
        _caching.IndexDataCacheFile = LockedIndexDataCacheFile


install()
