"""Benchmarks of lograd_fast against what users would write instead.

* :mod:`.cases`: the headline cases of ``lograd-fast bench`` (each a function of a
  :class:`~.timing.Context` returning a :class:`~.timing.Row`);
* :mod:`.competitors`: idiomatic numpy, torch.distributions and JAX versions of the
  same jobs (also used by the asv and pytest-benchmark suites in ``benchmarks/``);
* :mod:`.timing`: round-robin timing in one process; :mod:`.machine`: CPU, versions,
  memory bandwidth; :mod:`.report`: the console and Markdown tables.

Only the public API of lograd_fast is used here; torch and JAX are imported on demand.
"""
