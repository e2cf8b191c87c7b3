"""The engine under every family: counter-based RNG, the jit/dispatch machinery, the
kernel cache and the three backends side by side (``cpu``, ``cuda``, ``numpy``).

Nothing here knows a family; families register their scalar maths with
:mod:`.dispatch` and the drivers reach it through the entry points there.
"""
