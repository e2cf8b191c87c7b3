"""The CUDA backend on a real GPU: throughput against the device's bandwidth and torch,
small-call latency, and the torch adapter on CUDA tensors (docs/gpu.md, generated).

    python benchmarks/gpu_bench.py [--out DIR] [--quick] [--no-torch] [--profile]
        [--parts throughput,small,adapter,adapter_draws] [--sizes 128,4096] [--draws 64,1024]

Every time is wall-clock around the call and a device synchronisation (``cuda.synchronize``),
the median of repeats after a warm-up call; all rows are measured in this one process, one
after the other.  Bandwidth: bytes the call *writes* (its outputs; the parameters it reads
are a batch, negligible) per second, against a device-to-device copy measured here (bytes
read + written per second).  Competitors run on the same GPU: torch with the closed-form
scores a torch user writes (``lograd_fast.bench.competitors``), ``torch.compile`` of the
same maths (Normal), and ``torch.distributions`` inside RL calls.

``--out DIR`` writes ``gpu_bench.md`` (the tables) and ``gpu_bench.json`` there.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

ROWS: list[dict] = []
NOTES: list[str] = []
QUICK = False  # --quick: tiny sizes, one repeat (a dry run, e.g. in the CUDA simulator)


def _sync():
    from numba import cuda

    cuda.synchronize()


def timed(fn, repeats: int = 5) -> float:
    """Median wall seconds of ``fn(); synchronize`` after one warm-up call."""
    fn()
    _sync()
    ts = []
    for _ in range(1 if QUICK else repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def first_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t0


def copy_bandwidth(nbytes: int) -> float:
    """Device-to-device copy, bytes read + written per second."""
    from numba import cuda

    a = cuda.device_array(nbytes // 8, np.float64)
    b = cuda.device_array(nbytes // 8, np.float64)
    t = timed(lambda: b.copy_to_device(a), repeats=10)
    return 2 * nbytes / t


def row(section: str, what: str, fn, written: int | None = None, repeats: int = 5) -> None:
    """Time ``fn`` (``repeats=0``: its first call alone) and record the row; a failure
    is recorded as a note and the run goes on."""
    try:
        seconds = first_call(fn) if repeats == 0 else timed(fn, repeats)
    except Exception as exc:
        NOTES.append(f"{section}, {what}: failed: {exc!r}"[:400])
        traceback.print_exc()
        return
    r = {"section": section, "what": what, "seconds": seconds, "written_bytes": written}
    ROWS.append(r)
    gbs = f", {written / seconds / 1e9:.0f} GB/s written" if written else ""
    print(f"[{section}] {what}: {seconds * 1e3:.3f} ms{gbs}", flush=True)


def throughput(quick: bool, torch) -> None:
    n, B = (4, 8) if quick else (2**16, 1024)
    nc, Bc = (4, 8) if quick else (2**9, 2**14)
    for dtype in (np.float32, np.float64):
        _normal(torch, np.dtype(dtype), n, B)
        _categorical(torch, np.dtype(dtype), nc, Bc, 6)


def _normal(torch, dtype: np.dtype, n: int, B: int) -> None:
    from numba import cuda

    import lograd_fast as lf
    from lograd_fast.bench import competitors as C

    rng = np.random.default_rng(0)
    loc = rng.normal(size=B).astype(dtype)
    log_scale = (0.1 * rng.normal(size=B)).astype(dtype)
    d = lf.Normal(loc, log_scale, backend="cuda")
    written = 4 * n * B * dtype.itemsize  # x, log_prob, 2 scores
    sec = f"Normal {dtype.name}, {n} draws of {B}"
    row(sec, "lograd_fast first call (compiles)", lambda: d.sample_and_score(n, seed=1),
        repeats=0)
    row(sec, "lograd_fast sample_and_score, new arrays", lambda: d.sample_and_score(n, seed=1),
        written)
    out = (cuda.device_array((n, B), dtype), cuda.device_array((n, B), dtype),
           {k: cuda.device_array((n, B), dtype) for k in ("loc", "log_scale")})
    row(sec, "lograd_fast sample_and_score, out=",
        lambda: d.sample_and_score(n, seed=1, out=out), written)
    out = None  # free the buffers before the competitors allocate theirs
    if torch is None:
        return
    tl = torch.as_tensor(loc, device="cuda")
    ts = torch.as_tensor(log_scale, device="cuda")
    row(sec, "torch closed form (torch.distributions.Normal)",
        lambda: C.torch_normal(torch, "sample_and_score", tl, ts, n), written)
    if dtype == np.float32:
        f = torch.compile(_torch_normal_fn(torch))
        row(sec, "torch.compile first call (compiles)", lambda: f(tl, ts, n), repeats=0)
        row(sec, "torch.compile of the same maths", lambda: f(tl, ts, n), written)
    torch.cuda.empty_cache()


def _categorical(torch, dtype: np.dtype, n: int, B: int, K: int) -> None:
    import lograd_fast as lf
    from lograd_fast.bench import competitors as C

    logits = np.random.default_rng(0).normal(size=(B, K)).astype(dtype)
    d = lf.Categorical(logits, backend="cuda")
    written = n * B * (8 + dtype.itemsize * (1 + K))  # x int64, log_prob, scores
    sec = f"Categorical {dtype.name}, {n} draws of ({B}, {K})"
    row(sec, "lograd_fast first call (compiles)", lambda: d.sample_and_score(n, seed=1),
        repeats=0)
    row(sec, "lograd_fast sample_and_score, new arrays", lambda: d.sample_and_score(n, seed=1),
        written)
    if torch is None:
        return
    tlog = torch.as_tensor(logits, device="cuda")
    row(sec, "torch closed form (torch.distributions.Categorical)",
        lambda: C.torch_categorical(torch, "sample_and_score", tlog, n), written)
    torch.cuda.empty_cache()


def _torch_normal_fn(torch):
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def f(loc, log_scale, n):
        scale = log_scale.exp()
        eps = torch.randn((n,) + tuple(loc.shape), device=loc.device, dtype=loc.dtype)
        x = loc + scale * eps
        lp = -0.5 * eps * eps - log_scale - half_log_2pi
        return x, lp, eps / scale, eps * eps - 1.0

    return f


def small_calls(torch) -> None:
    """Per-call latency of RL-sized calls (wall, synchronised after each call)."""
    from numba import cuda

    import lograd_fast as lf

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 6))
    dl = cuda.to_device(logits)
    sec = "small calls (one step of a policy)"
    row(sec, "lf.Categorical(logits (64, 6) on the GPU, backend='cuda').sample_and_score()",
        lambda: lf.Categorical(dl, backend="cuda").sample_and_score(None, seed=1), repeats=50)
    row(sec, "the same on the CPU backend (host logits)",
        lambda: lf.Categorical(logits).sample_and_score(None, seed=1), repeats=50)
    if torch is None:
        return
    tl = torch.as_tensor(logits, device="cuda")
    D = torch.distributions

    def torch_step():
        d = D.Categorical(logits=tl)
        a = d.sample()
        return a, d.log_prob(a)

    row(sec, "torch.distributions.Categorical on the GPU: sample + log_prob", torch_step,
        repeats=50)


# lograd_fast.torch.CUDA_MIN_ELEMENTS for every call on the GPU kernels / the CPU kernels
ROUTES = (("GPU", 0), ("CPU", 2**62))


@contextlib.contextmanager
def _threshold(lft, value: int):
    default, lft.CUDA_MIN_ELEMENTS = lft.CUDA_MIN_ELEMENTS, value
    try:
        yield
    finally:
        lft.CUDA_MIN_ELEMENTS = default


def adapter(torch, sizes: tuple = (128, 4096, 32768)) -> None:
    """lograd_fast.torch against torch.distributions, both on CUDA tensors; the adapter
    twice: every call on the GPU kernels, and every call on the CPU kernels (the
    parameters' round trip through the host; ``lft.CUDA_MIN_ELEMENTS`` picks between them)."""
    import lograd_fast.torch as lft

    for B in (4, 128) if QUICK else sizes:
        g = torch.Generator().manual_seed(B)
        params = {"Categorical": [torch.randn(B, 6, generator=g)],
                  "Normal": [torch.randn(B, 6, generator=g),
                             torch.rand(B, 6, generator=g).add(0.5)]}
        adv = torch.randn(B, generator=g).cuda()
        for fam, ps in params.items():
            ps = [p.cuda().requires_grad_() for p in ps]
            _adapter_case(torch, torch.distributions, fam, ps, adv, "torch.distributions")
            for kernels, threshold in ROUTES:
                with _threshold(lft, threshold):
                    _adapter_case(torch, lft, fam, ps, adv,
                                  f"lograd_fast.torch, {kernels} kernels")


def adapter_draws(torch, draws: tuple = (64, 1024, 8192)) -> None:
    """``sample((n,))`` of a Normal of (128, 6) CUDA parameters (an evolution strategy's
    population), on the GPU kernels and on the CPU kernels, against torch.distributions."""
    import lograd_fast.torch as lft

    loc, scale = torch.zeros(128, 6, device="cuda"), torch.ones(128, 6, device="cuda")
    for n in (4, 8) if QUICK else draws:
        sec = f"torch adapter on CUDA tensors, Normal (128, 6): sample(({n},))"
        row(sec, "torch.distributions", lambda n=n: torch.distributions.Normal(loc, scale).sample(
            (n,)), repeats=20)
        for kernels, threshold in ROUTES:
            with _threshold(lft, threshold):
                row(sec, f"lograd_fast.torch, {kernels} kernels",
                    lambda n=n: lft.Normal(loc, scale).sample((n,)), repeats=20)


def _with_threshold(lft, threshold: int, fn):
    def call():
        with _threshold(lft, threshold):
            return fn()
    return call


def _ints(text: str) -> tuple:
    return tuple(int(v) for v in text.split(","))


def _adapter_case(torch, lib, fam: str, ps: list, adv, name: str) -> None:
    def make():
        return lib.Categorical(logits=ps[0]) if fam == "Categorical" else lib.Normal(*ps)

    act = make().sample().detach()

    def rollout():
        with torch.no_grad():
            d = make()
            return d.log_prob(d.sample())

    def update():
        d = make()
        lp = d.log_prob(act)
        lp = lp.sum(-1) if lp.dim() > 1 else lp
        (-(adv * lp).mean() - 0.01 * d.entropy().mean()).backward()

    sec = f"torch adapter on CUDA tensors, {fam} B={adv.shape[0]}"
    row(sec, f"{name} rollout (no_grad sample + log_prob)", rollout, repeats=30)
    row(sec, f"{name} update (log_prob + entropy, backward)", update, repeats=30)


def profile(torch, out: Path | None, B: int = 128) -> None:
    """cProfile 50 calls each: the core's small GPU step, and the adapter's rollout and
    update of Categorical and Normal with ``B`` rows on CUDA tensors, on the GPU kernels
    and on the CPU kernels."""
    import cProfile
    import io
    import pstats

    from numba import cuda

    import lograd_fast as lf

    dl = cuda.to_device(np.random.default_rng(1).normal(size=(64, 6)))
    calls = {"core": lambda: lf.Categorical(dl, backend="cuda").sample_and_score(None, seed=1)}
    if torch is not None:
        import lograd_fast.torch as lft

        ps = {"Categorical": [torch.randn(B, 6, device="cuda", requires_grad=True)],
              "Normal": [torch.randn(B, 6, device="cuda", requires_grad=True),
                         torch.ones(B, 6, device="cuda", requires_grad=True)]}
        for fam, p in ps.items():
            make = (lambda p=p: lft.Categorical(logits=p[0])) if fam == "Categorical" \
                else (lambda p=p: lft.Normal(*p))
            act = make().sample()

            def rollout(make=make):
                with torch.no_grad():
                    d = make()
                    return d.log_prob(d.sample())

            def update(make=make, act=act):
                d = make()
                (d.log_prob(act).mean() + d.entropy().mean()).backward()

            for kernels, threshold in ROUTES:
                calls |= {f"adapter {fam} B={B} {kernels} kernels {what}":
                          _with_threshold(lft, threshold, fn)
                          for what, fn in (("rollout", rollout), ("update", update))}
    text = []
    for name, fn in calls.items():
        fn()
        _sync()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(50):
            fn()
        _sync()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
        text.append(f"==== {name} (50 calls)\n{buf.getvalue()}")
    print("\n".join(text))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "profile.txt").write_text("\n".join(text))


def markdown(meta: dict) -> str:
    lines = [f"Measured {meta['date']} on {meta['gpu']} ({meta['versions']}); "
             f"`{meta['command']}`.  Device-to-device copy: "
             f"{meta['copy_gbs']:.0f} GB/s (read + written).", ""]
    sections: dict[str, list[dict]] = {}
    for r in ROWS:
        sections.setdefault(r["section"], []).append(r)
    for sec, rows in sections.items():
        lines += [f"**{sec}**", "", "| call | time | written | % of copy bandwidth |",
                  "|---|---:|---:|---:|"]
        for r in rows:
            t = r["seconds"]
            tt = f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} µs"
            if r["written_bytes"]:
                gbs = r["written_bytes"] / t / 1e9
                lines.append(f"| {r['what']} | {tt} | {gbs:.0f} GB/s | "
                             f"{100 * gbs / meta['copy_gbs']:.0f} % |")
            else:
                lines.append(f"| {r['what']} | {tt} | | |")
        lines.append("")
    lines += [f"Note: {n}" for n in NOTES]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes (a dry run)")
    ap.add_argument("--parts", default="throughput,small,adapter,adapter_draws")
    ap.add_argument("--no-torch", action="store_true", help="lograd_fast's rows only")
    ap.add_argument("--sizes", type=_ints, default=(128, 4096, 32768),
                    help="batch sizes of the adapter part (comma-separated)")
    ap.add_argument("--draws", type=_ints, default=(64, 1024, 8192),
                    help="sample counts of the adapter_draws part (comma-separated)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the small calls (where the per-call time goes)")
    args = ap.parse_args()
    # run as a script from a checkout (as on a lent GPU machine, no install): its package;
    # not at import, where asv's discovery would shadow the installed one
    sys.path.insert(0, str(ROOT))
    global QUICK
    QUICK = args.quick
    import numba
    from numba import cuda

    from lograd_fast._engine.cuda_status import status

    target, detail = status()
    if target != "cuda" and not args.quick:
        print(f"no GPU ({detail})")
        return 1
    try:
        import torch

        if args.no_torch or not torch.cuda.is_available():
            torch = None
    except ImportError:
        torch = None
    import numba_cuda  # noqa: F401  (its version is reported)

    versions = (f"numba {numba.__version__}, numba-cuda "
                f"{getattr(sys.modules['numba_cuda'], '__version__', '?')}, numpy "
                f"{np.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "gpu": detail, "versions": versions,
            "command": " ".join(["python benchmarks/gpu_bench.py", *sys.argv[1:]]),
            "copy_gbs": copy_bandwidth(2**24 if args.quick else 2**31) / 1e9}
    print(meta, flush=True)
    del cuda
    failed = False
    parts = {"throughput": lambda: throughput(args.quick, torch),
             "small": lambda: small_calls(torch),
             "adapter": lambda: adapter(torch, args.sizes) if torch is not None else None,
             "adapter_draws": lambda: adapter_draws(torch, args.draws) if torch else None,
             "profile": lambda: profile(torch, args.out, args.sizes[0])}
    chosen = args.parts.split(",") + (["profile"] if args.profile else [])
    for part in (parts[p] for p in chosen):
        try:
            part()
        except Exception as exc:
            failed = True
            NOTES.append(f"a part failed: {exc!r}"[:300])
            traceback.print_exc()
    md = markdown(meta)
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_bench.md").write_text(md)
        (args.out / "gpu_bench.json").write_text(json.dumps({"meta": meta, "rows": ROWS,
                                                             "notes": NOTES}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
