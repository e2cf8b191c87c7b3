"""CUDA kernels without a GPU: compile every kernel to PTX, run them in the simulator.

The simulator runs the kernels as Python, so it cannot catch code the CUDA
compiler rejects; the PTX compilation (numba-cuda + NVRTC/NVVM wheels, no GPU
needed) does.  On a machine with a real GPU, run tests/gpu_check.py there too
(docs/gpu.md: the kernels against the CPU within 1e-9 / 1e-4, the torch adapter).
"""

import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from cases import ALL_CASES

pytestmark = pytest.mark.cuda
HERE = Path(__file__).resolve().parent

# one case per family: the kernels' types depend only on the family and dtype
FAMILY_CASES = list({c.cls: c for c in reversed(ALL_CASES)}.values())


class _Device:
    compute_capability = (9, 0)


@pytest.fixture(scope="module")
def cuda_module():
    from numba import cuda
    from numba.cuda import dispatcher

    original = dispatcher.get_current_device
    # device functions ask for the current device while compiling: no GPU here
    dispatcher.get_current_device = lambda: _Device()
    from lograd_fast._engine import cuda as _cuda

    yield cuda, _cuda
    dispatcher.get_current_device = original


def _writable(record):
    # device arrays are typed as writable arrays
    return type(record)(*(np.array(a) for a in record))


def _signatures(d):
    n_atoms = 2 * d._B
    rec = _writable(d._record)
    x = np.empty((n_atoms,) + d.sample_event_shape, d._sample_dtype)
    scores = d._flat_scores(d._outputs(2, None, False, False, True)[0], n_atoms)
    lp = np.empty(n_atoms // d._E, d.dtype)
    key = (np.uint64(1), np.uint64(0), np.uint64(0), np.int64(0))
    T = numba.typeof
    i64 = numba.int64
    return {
        "sample": (T(rec), T(key), T(x), i64),
        "log_prob": (T(rec), T(x), T(lp), i64, i64),
        "score": (T(rec), T(x), T(scores), i64),
        "sample_score": (T(rec), T(key), T(x), T(scores), T(lp), i64, i64),
    }


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", FAMILY_CASES, ids=lambda c: c.cls.__name__)
def test_every_kernel_compiles_to_ptx(cuda_module, case, dtype):
    cuda, _cuda = cuda_module
    sigs = _signatures(case.make("cpu", dtype))
    assert set(sigs) == set(_cuda.KERNELS)
    for name, kernel in _cuda.KERNELS.items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sigs[name], cc=(9, 0))
        assert ".entry" in ptx and ".target sm_90" in ptx, name


def _run(args, env_extra):
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_simulator_matches_cpu_bitwise(tmp_path):
    """Every case, float32 and float64: the CUDA kernels (simulated) == the CPU kernels."""
    script = HERE / "scripts" / "backend_outputs.py"
    _run([str(script), str(tmp_path / "sim.npz"), "cuda", "2"], {"NUMBA_ENABLE_CUDASIM": "1"})
    _run([str(script), str(tmp_path / "cpu.npz"), "cpu", "2"], {"NUMBA_ENABLE_CUDASIM": "0"})
    sim = np.load(tmp_path / "sim.npz")
    cpu = np.load(tmp_path / "cpu.npz")
    assert set(sim.files) == set(cpu.files) and len(sim.files) > 0
    for key in sim.files:
        a, b = sim[key], cpu[key]
        # the CPU run draws more (several chunks); the first draws must agree
        np.testing.assert_array_equal(a, b[: a.shape[0]], err_msg=key)


class _TorchLikeDeviceArray:
    """A GPU array as torch exposes one: ``__cuda_array_interface__`` and a ``dtype``
    that is not numpy's (``np.dtype(torch.int64)`` raises)."""

    dtype = object()

    def __init__(self, host):
        self.host = host
        self.shape = host.shape
        self.__cuda_array_interface__ = host.__array_interface__


def test_device_x_is_checked_through_its_numba_view(cuda_module, monkeypatch):
    """The torch adapter's log_prob on CUDA tensors failed on a GPU: the check read
    ``np.dtype(x.dtype)`` of the torch tensor.  Dtype and shape now come from the
    numba view (``as_cuda_array``, stood in for by the host array here)."""
    import lograd_fast as lf

    cuda, _cuda = cuda_module
    monkeypatch.setattr(cuda, "as_cuda_array", lambda x: x.host)
    d = lf.Categorical(np.zeros((4, 3)))
    arr, n = _cuda.check_device_x(d, _TorchLikeDeviceArray(np.zeros((5, 4), np.int64)))
    assert n == 5 and arr.shape == (5, 4)
    with pytest.raises(ValueError, match="must have dtype int64, got float64"):
        _cuda.check_device_x(d, _TorchLikeDeviceArray(np.zeros(4)))
    with pytest.raises(ValueError, match=r"x has shape \(5, 3\)"):
        _cuda.check_device_x(d, _TorchLikeDeviceArray(np.zeros((5, 3), np.int64)))


_STRIDES_SCRIPT = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from cases import ALL_CASES
from lograd_fast._engine import cuda as _cuda

_cuda.THREADS, _cuda.MAX_BLOCKS = 8, 2  # 16 threads: each walks several atoms
ids = {"normal-batch", "normal-event", "categorical-batch", "mvn-2-batch", "gamma-batch"}
cases = [c for c in ALL_CASES if c.id in ids]
assert len(cases) == len(ids), [c.id for c in cases]
host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
for case in cases:
    for dtype in (np.float64, np.float32):
        gpu, cpu = case.make("cuda", dtype), case.make("cpu", dtype)
        n = 7  # 7 * B atoms, B in 2..6: more than 16, not a multiple of it
        xg, lpg, sg = gpu.sample_and_score(n, seed=3)
        xc, lpc, sc = cpu.sample_and_score(n, seed=3)
        np.testing.assert_array_equal(host(xg), xc, err_msg=case.id)
        np.testing.assert_array_equal(host(lpg), lpc, err_msg=case.id)
        for k in sc:
            np.testing.assert_array_equal(host(sg[k]), sc[k], err_msg=case.id + k)
        np.testing.assert_array_equal(host(gpu.sample(n, seed=4)), cpu.sample(n, seed=4))
        np.testing.assert_array_equal(host(gpu.log_prob(xc)), cpu.log_prob(xc))
        sg, sc = gpu.score(xc), cpu.score(xc)
        for k in sc:
            np.testing.assert_array_equal(host(sg[k]), sc[k], err_msg=case.id + k)
print("ok", len(cases))
"""


def test_threads_walking_several_atoms_match_cpu(tmp_path):
    """The kernels carry each atom's parameter index ``a % B`` along a thread's
    grid-stride walk: with 16 threads and 14-42 atoms every thread takes several steps
    (wrapping around the batch), and every output still equals the CPU's."""
    script = tmp_path / "strides.py"
    script.write_text(_STRIDES_SCRIPT)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, str(script), str(HERE)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.startswith("ok 5"), proc.stderr[-4000:]


def test_gpu_scripts_run_in_the_simulator(tmp_path):
    """The scripts a lent GPU runs (tests/gpu_check.py, benchmarks/gpu_bench.py) work
    before the GPU is there: a dry run of each in the simulator (GPU time is scarce;
    a broken script would spend it).  The torch adapter parts need CUDA torch: not here."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    check = subprocess.run([sys.executable, str(HERE / "gpu_check.py"), "--allow-simulator",
                            "--cases", "normal-std,categorical", "--draws", "8"], env=env,
                           capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert check.returncode == 0 and "summary: kernels ok" in check.stdout, (
        check.stdout[-2000:] + check.stderr[-2000:])
    bench = subprocess.run([sys.executable, str(HERE.parent / "benchmarks" / "gpu_bench.py"),
                            "--quick", "--no-torch", "--parts", "small,throughput",
                            "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                           timeout=900, cwd=tmp_path)
    assert bench.returncode == 0, bench.stdout[-2000:] + bench.stderr[-2000:]
    table = (tmp_path / "gpu_bench.md").read_text()
    assert "| lograd_fast sample_and_score, new arrays |" in table
    assert "| lograd_fast sample_and_score, out= |" in table and "failed" not in table
    assert "lf.Categorical(logits (64, 6) on the GPU" in table


_OUT_SCRIPT = """
import sys
import numpy as np
from numba import cuda
import lograd_fast as lf
d = lf.Normal(np.zeros(4), np.zeros(4), backend="cuda")
x, lp, s = d.sample_and_score(8, seed=1)
out = (cuda.device_array((8, 4)), cuda.device_array((8, 4)),
       {k: cuda.device_array(v.shape) for k, v in s.items()})
got = d.sample_and_score(8, seed=1, out=out)
assert got[0] is out[0] and got[1] is out[1] and got[2] is out[2]
for a, b in ((out[0], x), (out[1], lp), *((out[2][k], s[k]) for k in s)):
    np.testing.assert_array_equal(a.copy_to_host(), b.copy_to_host())
try:
    d.sample_and_score(8, seed=1, out=(out[0], out[1], {"loc": out[0], "log_scale": out[1]}))
except ValueError as exc:
    assert "share memory" in str(exc), exc
else:
    raise AssertionError("a shared output buffer was accepted")
try:
    d.sample_and_score(8, seed=1, out=(out[0], out[0], out[2]))
except ValueError as exc:
    assert "share memory" in str(exc), exc
else:
    raise AssertionError("x and log_prob in one buffer were accepted")
print("ok")
"""


def test_out_takes_the_simulators_device_arrays(tmp_path):
    """Under the simulator ``cuda.device_array`` gives stand-ins without
    ``__cuda_array_interface__``: ``out=`` takes them (the kernels fill them, the same
    values as fresh outputs) and still refuses two outputs in one buffer."""
    script = tmp_path / "out.py"
    script.write_text(_OUT_SCRIPT)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=900, cwd=HERE.parent)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-4000:]
