"""lograd_fast benchmarks.

* ``asv_*.py``: the airspeed velocity suite (``asv.conf.json`` at the repository root);
  parametrised classes with ``time_*``, ``peakmem_*``, ``timeraw_*`` and ``track_*``
  (speed-up against the numpy baseline, measured side by side) benchmarks.
* ``bench_*.py``: the pytest-benchmark suite, collected only when asked for
  (``python -m pytest benchmarks``; add ``--benchmark-enable`` to time it).
* ``update_readme.py``: regenerates the README's speed table from ``lograd-fast bench``.

Both suites take their families from the shared case table ``tests/cases``.
"""
