"""Check the CUDA backend on a real GPU against the CPU backend (run it where a GPU is).

CI has no GPU: there, ``tests/test_cuda.py`` compiles every kernel to PTX and runs them
in Numba's simulator, bitwise equal to the CPU.  On a GPU the same kernels are compiled
by NVVM (fused multiply-adds, libdevice's ``exp``/``log``), so floats may differ from the
CPU's in the last bits; this script runs every case of ``tests/cases`` (float64 and
float32) on both backends, from the same seeds, and compares every output:

* integer outputs (discrete samples) must be equal;
* a float output element is *off* when ``|gpu - cpu| > tol * (|cpu| + 1)`` with
  ``tol`` = 1e-9 (float64) or 1e-4 (float32); float64 outputs may have no off element,
  float32 ones at most 0.1 % (a draw within float32 rounding of an inversion or
  accept/reject boundary may take the other branch, and its outputs differ).

Then the torch adapter on CUDA tensors (Categorical, Normal): samples of the same seed
equal the CPU adapter's, log-probabilities and their gradients agree, outputs stay on
the GPU.

usage: python tests/gpu_check.py [--draws N] [--cases normal,gamma] [--verbose] [--skip-kernels]
                                 [--allow-simulator]
Exit status 1 if any comparison fails; failures (every comparison with ``--verbose``) and
the largest difference per dtype are printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TOL = {"float64": 1e-9, "float32": 1e-4}
OFF_ALLOWED = {"float64": 0.0, "float32": 1e-3}


def compare(key: str, gpu: np.ndarray, cpu: np.ndarray) -> tuple[bool, float, str]:
    """``(ok, largest relative error, line)`` for one output array of one case and dtype
    (integers: the error is 0 when equal, inf otherwise)."""
    dtype = key.split("|")[1]
    if gpu.shape != cpu.shape or gpu.dtype != cpu.dtype:
        return False, np.inf, (f"{key}: gpu {gpu.shape} {gpu.dtype} vs cpu {cpu.shape} "
                               f"{cpu.dtype}")
    if gpu.dtype.kind != "f":
        off = int(np.count_nonzero(gpu != cpu))
        return off == 0, (0.0 if off == 0 else np.inf), f"{key}: {off}/{gpu.size} integers differ"
    both_nan = np.isnan(gpu) & np.isnan(cpu)
    same = (gpu == cpu) | both_nan
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(same, 0.0, np.abs(gpu.astype(np.float64) - cpu) / (np.abs(cpu) + 1.0))
    err = np.where(np.isnan(err), np.inf, err)
    off = int(np.count_nonzero(err > TOL[dtype]))
    ok = off <= OFF_ALLOWED[dtype] * gpu.size
    worst = float(err.max())
    return ok, worst, (f"{key}: {int(np.count_nonzero(same))}/{gpu.size} equal, max rel err "
                       f"{worst:.2e}, {off} off (tol {TOL[dtype]:g})")


def kernels_against_cpu(draws: int, env_gpu: dict, verbose: bool, cases: str) -> bool:
    script = HERE / "scripts" / "backend_outputs.py"
    # the checkout's package, as in main() (the script runs from a checkout, maybe
    # without an install, e.g. on a lent GPU machine)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        procs = {backend: subprocess.Popen(  # both at once: each compiles its kernels
            [sys.executable, str(script), str(Path(tmp) / f"{backend}.npz"), backend,
             str(draws), cases], env={**os.environ, **env, "PYTHONPATH": path},
            stderr=subprocess.PIPE, text=True)
            for backend, env in (("cuda", env_gpu), ("cpu", {}))}
        runs = {}
        for backend, proc in procs.items():
            _, err = proc.communicate()
            print(f"[{backend}] every case, both dtypes: {time.perf_counter() - t0:.1f} s "
                  "(compilation included)", flush=True)
            if proc.returncode:
                print(err[-6000:])
                return False
            runs[backend] = np.load(Path(tmp) / f"{backend}.npz")
        gpu, cpu = runs["cuda"], runs["cpu"]
        ok = set(gpu.files) == set(cpu.files) and len(gpu.files) > 0
        print(f"{len(gpu.files)} outputs compared (cpu has {len(cpu.files)})")
        worst: dict[str, tuple[float, str]] = {}
        for key in sorted(gpu.files):
            a = gpu[key]
            good, err, line = compare(key, a, cpu[key][: a.shape[0]])
            ok &= good
            if verbose or not good:
                print(("   ok " if good else "FAIL ") + line)
            dtype = key.split("|")[1]
            if err >= worst.get(dtype, (-1.0, ""))[0]:
                worst[dtype] = (err, line)
        for dtype, (_, line) in sorted(worst.items()):
            print(f"largest difference in {dtype}: {line}")
        return ok


def torch_adapter_on_cuda() -> bool:
    """The adapter on CUDA tensors against the adapter on CPU tensors (float64), with
    every call on the GPU kernels and every call on the CPU kernels (``CUDA_MIN_ELEMENTS``
    0 and its default: small batches, whose draws then cross the default threshold)."""
    import torch

    import lograd_fast.torch as lft

    if not torch.cuda.is_available():
        print("torch sees no GPU: adapter check skipped")
        return False
    ok = True
    default, build = lft.CUDA_MIN_ELEMENTS, lft._build
    for threshold, want in ((0, {"cuda"}), (default, {"cpu", "cuda"})):
        backends = []  # of every lograd_fast distribution the CUDA calls build

        def recording(spec, params, *args, _seen=backends, **kw):
            d = build(spec, params, *args, **kw)
            if params[0].device.type == "cuda":
                _seen.append(d.backend)
            return d

        lft.CUDA_MIN_ELEMENTS, lft._build = threshold, recording
        try:
            ok &= _adapter_against_cpu(torch, lft, f"CUDA_MIN_ELEMENTS={threshold}")
        finally:
            lft.CUDA_MIN_ELEMENTS, lft._build = default, build
        print(f"CUDA_MIN_ELEMENTS={threshold}: kernels used {sorted(set(backends))} "
              f"(expected {sorted(want)})")
        ok &= set(backends) == want
    return ok


def _adapter_against_cpu(torch, lft, label: str) -> bool:
    ok = True
    g = torch.Generator().manual_seed(0)
    for name, make in (
        ("Categorical", lambda p: lft.Categorical(logits=p[0])),
        ("Normal", lambda p: lft.Normal(p[0], p[1].exp())),
    ):
        shapes = [(128, 6)] if name == "Categorical" else [(128, 3), (128, 3)]
        host = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        res = {}
        for dev in ("cpu", "cuda"):
            params = [p.detach().to(dev).requires_grad_() for p in host]
            d = make(params)
            x = d.sample(seed=5)
            lp = d.log_prob(x)
            ent = d.entropy()
            (lp.sum() + 0.1 * ent.sum()).backward()
            strided = d.log_prob(x[:1].expand_as(x))  # a stride-0 value
            many = d.sample((lft.CUDA_MIN_ELEMENTS // x.numel() + 1,), seed=6)
            lp_many = d.log_prob(many)  # a value with sample dims: GPU-sized too
            with torch.no_grad():  # a rollout: log_prob of the draw comes with it
                r = make(params)
                lp_roll = r.log_prob(r.sample(seed=7))
            res[dev] = (x, lp, ent, strided, many, [p.grad for p in params], lp_roll,
                        lp_many)
            if dev == "cuda":
                devs = {t.device.type for t in (x, lp, ent, strided, many, *res[dev][5],
                                                lp_roll, lp_many)}
                ok &= devs == {"cuda"}
                print(f"{label} {name}: outputs on {sorted(devs)}")
        xc, lpc, entc, stc, manyc, gc, rollc, lpmc = res["cpu"]
        xg, lpg, entg, stg, manyg, gg, rollg, lpmg = (
            t.cpu() if torch.is_tensor(t) else [u.cpu() for u in t] for t in res["cuda"])
        if name == "Categorical":
            same_x = bool(torch.equal(xg, xc)) and bool(torch.equal(manyg, manyc))
        else:
            same_x = all(torch.allclose(a, b, rtol=1e-12, atol=1e-12)
                         for a, b in ((xg, xc), (manyg, manyc)))
        close = all(torch.allclose(a, b, rtol=1e-10, atol=1e-12)
                    for a, b in [(lpg, lpc), (entg, entc), (stg, stc), (rollg, rollc),
                                 (lpmg, lpmc), *zip(gg, gc)])
        print(f"{label} {name}: samples {'equal' if same_x else 'DIFFER'}, log_prob/"
              f"entropy/gradients/strided value/rollout {'agree' if close else 'DIFFER'} "
              "(cuda vs cpu, float64)")
        ok &= same_x and close
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=4096)
    ap.add_argument("--verbose", action="store_true", help="print every comparison")
    ap.add_argument("--cases", default="",
                    help="comma-separated prefixes of the case ids to run (default: all)")
    ap.add_argument("--skip-kernels", action="store_true",
                    help="only the torch adapter (the kernel comparison takes minutes)")
    ap.add_argument("--allow-simulator", action="store_true",
                    help="run in Numba's CUDA simulator (a dry run of this script)")
    args = ap.parse_args()
    env_gpu = {"NUMBA_ENABLE_CUDASIM": "1"} if args.allow_simulator else {}
    sys.path.insert(0, str(ROOT))
    if not args.allow_simulator:
        from lograd_fast._engine.cuda_status import status

        target, detail = status()
        print(f"CUDA target: {target or 'none'} ({detail})", flush=True)
        if target != "cuda":
            return 1
    results = {}
    def kernels():
        return kernels_against_cpu(args.draws, env_gpu, args.verbose, args.cases)

    for name, check in (("kernels", kernels), ("torch adapter", torch_adapter_on_cuda)):
        if (name == "torch adapter" and args.allow_simulator) or (
                name == "kernels" and args.skip_kernels):
            continue
        try:
            results[name] = check()
        except Exception:
            traceback.print_exc()
            results[name] = False
    print("summary:", ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
