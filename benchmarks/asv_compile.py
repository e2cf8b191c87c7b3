"""asv: compile and load times, each in a fresh interpreter (``timeraw_*``).

* ``timeraw_first_call_cold``: import + the first call of one operation with an
  empty kernel cache (a temporary ``LOGRAD_FAST_CACHE_DIR``): Numba compiles the
  driver of that operation for the family and dtype.
* ``timeraw_first_call_cached``: the same in a second process, kernels loaded from
  the on-disk cache (the cache is filled in ``setup``).
* ``timeraw_import``: ``import lograd_fast`` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

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


class FirstCall:
    params = (list(FAMILIES), list(OPS))
    param_names = ("family", "op")
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 600

    def setup(self, family, op):
        self.cache = tempfile.mkdtemp(prefix="lograd-asv-cache-")
        env = dict(os.environ, LOGRAD_FAST_CACHE_DIR=self.cache)
        # fill the cache once, for the "cached" variant
        subprocess.run([sys.executable, "-c", _code(family, op)], env=env, check=True)

    def teardown(self, family, op):
        import shutil

        shutil.rmtree(self.cache, ignore_errors=True)

    def timeraw_first_call_cold(self, family, op):
        return _code(family, op, COLD_CACHE) + COLD_CLEANUP

    def timeraw_first_call_cached(self, family, op):
        return _code(family, op, f'os.environ["LOGRAD_FAST_CACHE_DIR"] = {self.cache!r}')


def timeraw_import():
    return "import lograd_fast"
