"""Run every case of the table on one backend and save the outputs (used by tests
that compare processes: thread counts, the CUDA simulator).

usage: python backend_outputs.py OUT.npz BACKEND N_DRAWS [ID_PREFIXES]
(ID_PREFIXES: comma-separated prefixes of case ids, e.g. "normal,gamma"; default all)
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cases import ALL_CASES  # noqa: E402

from lograd_fast._engine.threads import CHUNK, MIN_CHUNKS  # noqa: E402

SPLIT_ATOMS = (2 * MIN_CHUNKS + 1) * CHUNK + 123


def to_host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def _open_support(d, x):
    """``x`` with draws that underflowed onto 0 or 1 (Gamma/Beta/Dirichlet at small
    concentrations) moved inside: their score is -inf and ``score`` refuses them."""
    if type(d).__name__ not in ("Gamma", "Beta", "Dirichlet"):
        return x
    info = np.finfo(x.dtype)
    return np.where(x == 0.0, info.tiny, np.where(x == 1.0, 1.0 - info.epsneg, x)).astype(
        x.dtype)


def main() -> None:
    out, backend, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prefixes = tuple(sys.argv[4].split(",")) if len(sys.argv) > 4 else ("",)
    results = {}
    for case in (c for c in ALL_CASES if c.id.startswith(prefixes)):
        for dtype in (np.float64, np.float32):
            d = case.make(backend, dtype)
            tag = f"{case.id}|{np.dtype(dtype).name}"
            # enough atoms that the CPU driver splits the work between two threads
            # (each part >= MIN_CHUNKS chunks) and into several block-0 chunks per part
            draws = max(n, -(-SPLIT_ATOMS // d._B)) if backend == "cpu" else n
            x, lp, s = d.sample_and_score(draws, seed=11, stream=3)
            results[f"{tag}|x"] = to_host(x)
            results[f"{tag}|lp"] = to_host(lp)
            for k, v in s.items():
                results[f"{tag}|s_{k}"] = to_host(v)
            results[f"{tag}|sample"] = to_host(d.sample(draws, seed=12))
            xh = results[f"{tag}|x"]
            results[f"{tag}|log_prob"] = to_host(d.log_prob(xh))
            for k, v in d.score(_open_support(d, xh)).items():
                results[f"{tag}|score_{k}"] = to_host(v)
    np.savez(out, **results)


if __name__ == "__main__":
    main()
