"""asv: compile and load times, each in a fresh interpreter (``timeraw_*``).

* ``timeraw_first_call_cold``: import + the first call of one operation with an
  empty kernel cache (a temporary ``LOGRAD_FAST_CACHE_DIR``): Numba compiles the
  driver of that operation for the family and dtype.
* ``timeraw_first_call_cached``: the same in a second process, kernels loaded from
  the on-disk cache (filled once, in ``setup_cache``).
* ``timeraw_import``: ``import lograd_fast`` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ._common import FAMILIES

OPS = ("sample", "sample_and_score", "log_prob")


def _code(family: str, op: str, cache_line: str = "") -> str:
    # Plain statements only: asv pastes this into a triple-quoted (non-raw) string, so
    # an escape such as "\n" inside a literal here would be turned into a real newline.
    return f"""
import os
import sys
{cache_line}
sys.path.insert(0, {str(os.path.dirname(os.path.abspath(__file__)))!r})
from _common import draws_for, make_dist, op_call
d = make_dist({family!r})
op_call(d, {op!r}, draws_for(d, 2**14))()
"""


COLD_CACHE = ('import tempfile; os.environ["LOGRAD_FAST_CACHE_DIR"] = '
              'tempfile.mkdtemp(prefix="lograd-asv-cold-")')
COLD_CLEANUP = '\nimport shutil; shutil.rmtree(os.environ["LOGRAD_FAST_CACHE_DIR"])\n'


def fill_cache(cache: str, cases: list[tuple[str, str]]) -> str:
    """Compile the ``(family, op)`` kernels of ``cases`` into the kernel cache ``cache``,
    all in one fresh interpreter; returns ``cache``."""
    env = dict(os.environ, LOGRAD_FAST_CACHE_DIR=cache)
    code = "\n".join(_code(family, op) for family, op in cases)
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return cache


class FirstCallCold:
    """Import + first call with an empty kernel cache: the compile time of one driver."""

    params = (list(FAMILIES), list(OPS))
    param_names = ("family", "op")
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 600

    def timeraw_first_call_cold(self, family, op):
        return _code(family, op, COLD_CACHE) + COLD_CLEANUP


class FirstCallCached:
    """Import + first call in a process that loads the kernels from the on-disk cache.

    ``setup_cache`` fills one cache with every (family, op) kernel in a single process
    (asv runs it once per environment, not once per parameter set), so each case then
    costs only its own load."""

    params = (list(FAMILIES), list(OPS))
    param_names = ("family", "op")
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 1200

    def setup_cache(self):
        # asv runs this in a temporary directory that it removes after the benchmarks
        return fill_cache(os.path.abspath("kernels"), [(f, op) for f in FAMILIES for op in OPS])

    def timeraw_first_call_cached(self, cache, family, op):
        return _code(family, op, f'os.environ["LOGRAD_FAST_CACHE_DIR"] = {cache!r}')


def timeraw_import():
    return "import lograd_fast"
