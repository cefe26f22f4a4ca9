"""Measuring: floors, timing, agreement checks, and the result rows.

Timing: the first call (trace + compile + run for tracejit, compile for torch.compile and
JAX) is measured separately; then after warm-up, `reps` samples, each of `batch` calls
(batches make microsecond workloads measurable), and the median, min and max per call.
Before a peer is timed, its results are compared with tracejit's on the same inputs; a peer
that disagrees is reported, not timed.

The GPU. tracejit's "cuda" backend gets its arguments uploaded once, before timing
(`pycuda.gpuarray.to_gpu` on every array leaf; scalars stay on the host), and every timed
batch ends by waiting for the device, since kernels run asynchronously. Its rows are measured
against the GPU's floors (`GpuFloors`: the device's copy bandwidth, cuBLAS through PyTorch)
and ranked against the GPU peers only; the rows of the host backends against the CPU's
floors (`Floors`) and the CPU peers (NumPy included) only.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

import tracejit as tj
from tracejit.pytree import flatten, tree_map
from tracejit.runtime.backends import BACKENDS, NAMES

from .peers import available, make_peer
from .workloads import Variant

F32 = np.float32

TF32_WORKLOADS = ("W4", "W7")
"""The matmul-bound workloads also benchmarked on cuda with `allow_tf32=True`."""

TF32_RTOL = 1e-2
"""Agreement tolerance of a TF32 row: TF32 rounds each product's inputs to a 10-bit mantissa
(relative error up to 2**-11), so its results differ from float32's by far more than float32
summation order does; garbage still differs by far more than this."""


@dataclass
class Row:
    """One measured implementation of one workload variant."""

    workload: str
    variant: str
    impl: str                        # 'tracejit', 'numpy', or a peer's name ('torch', 'jax-gpu')
    backend: str = ""                # tracejit backend
    fuse: str = ""                   # 'on' / 'off' for tracejit
    kernels: int | None = None       # tracejit: kernels in the program
    median: float | None = None      # seconds per call
    min: float | None = None
    max: float | None = None
    first_call: float | None = None  # seconds
    reps: int = 0
    batch: int = 1
    agrees: bool | None = None
    max_rel_err: float | None = None
    note: str = ""
    floor: float | None = None       # seconds: the floor of this row's device
    ratio_floor: float | None = None
    ratio_best_peer: float | None = None
    device: str = "cpu"              # 'cpu' or 'gpu': whose floor and peers this row meets
    allow_tf32: bool = False         # tracejit cuda with TF32 tensor-core dots
    floor_what: str = ""             # what the floor is

    @property
    def label(self) -> str:
        """How the table names the row: 'tracejit cuda tf32 fuse=on', 'torch-cuda', ..."""
        if self.impl == "tracejit":
            return f"tracejit {self.backend}{' tf32' if self.allow_tf32 else ''} fuse={self.fuse}"
        return self.impl


# ---------------------------------------------------------------------------------------------
# backends


def cuda_unavailable_reason() -> str | None:
    """None when backend "cuda" can run here (pycuda, the driver and a GPU all usable), else
    why not, in the words of `CudaUnavailableError`."""
    return BACKENDS["cuda"].why_unavailable()


def default_backends() -> list[str]:
    """The backends benchmarked when none are named: the host ones, then the device ones
    (cuda) that can run here; never an emulator (the GPU's C run slowly on the host)."""
    chosen = sorted((b for b in BACKENDS.values() if b.emulates is None), key=lambda b: b.device)
    return [b.name for b in chosen if b.why_unavailable() is None]


def uses_gpu(backends) -> bool:
    """Whether any of the named backends runs on the GPU (then the GPU's floors and peers
    join the run)."""
    return any(BACKENDS[b].device for b in backends)


def upload_arrays(args, to_gpu: Callable[[np.ndarray], Any]):
    """`args` with every NumPy array leaf replaced by `to_gpu(leaf)` (C-contiguous); scalars,
    Python numbers and other leaves are left as they are."""
    return tree_map(lambda a: to_gpu(np.ascontiguousarray(a)) if isinstance(a, np.ndarray)
                    else a, args)


@dataclass
class Target:
    """A tracejit backend as benchmarked: its options, where its rows belong, how arguments
    reach it and how to wait for its results."""

    backend: str
    allow_tf32: bool = False

    @property
    def device(self) -> str:
        """'gpu' for the real GPU; 'cpu' for every host backend (the emulator included)."""
        return "gpu" if BACKENDS[self.backend].device else "cpu"

    def prepare(self, args):
        """The arguments as this backend is timed with: on cuda, uploaded once."""
        if not BACKENDS[self.backend].device:
            return args
        from pycuda import gpuarray
        _gpu().synchronize()        # makes its context current for the upload
        return upload_arrays(args, gpuarray.to_gpu)

    def sync(self, out) -> None:
        """Wait until `out` is computed (kernels on the GPU run asynchronously)."""
        if BACKENDS[self.backend].device:
            _gpu().synchronize()


def targets(backends: list[str]) -> list[Target]:
    """A Target per backend; on the GPU (cuda), with the TF32 variant after it (for
    TF32_WORKLOADS)."""
    out = []
    for b in backends:
        out.append(Target(b))
        if BACKENDS[b].device:
            out.append(Target(b, allow_tf32=True))
    return out


def _gpu():
    from tracejit.runtime.cuda_pycuda import PycudaDevice
    return PycudaDevice.get()


# ---------------------------------------------------------------------------------------------
# floors


def _median_time(fn: Callable[[], Any], reps: int = 7) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass
class Floors:
    """Machine facts measured in this run."""

    copy_bandwidth: float            # bytes per second, read + written (NumPy copyto)
    sgemm_flops: float               # float32 FLOP/s of a 1024^3 matmul (or smaller in quick)
    call_overhead: float             # seconds for a Python call of a trivial function
    blas: dict = field(default_factory=dict)   # "m,k,n" -> seconds

    @classmethod
    def measure(cls, quick: bool) -> "Floors":
        n = 2 ** 20 if quick else 2 ** 26
        a = np.ones(n, F32)
        b = np.empty_like(a)
        bw = 2 * a.nbytes / _median_time(lambda: np.copyto(b, a), 3 if quick else 7)
        m = 256 if quick else 1024
        x = np.random.default_rng(0).standard_normal((m, m)).astype(F32)
        flops = 2 * m ** 3 / _median_time(lambda: x @ x, 3 if quick else 7)
        def f(*args):
            return args

        t0 = time.perf_counter()
        for _ in range(100000):
            f(1, 2, 3)
        call = (time.perf_counter() - t0) / 100000
        return cls(bw, flops, call)

    def matmul_time(self, m: int, k: int, n: int) -> float:
        key = f"{m},{k},{n}"
        if key not in self.blas:
            rng = np.random.default_rng(0)
            a = rng.standard_normal((m, k)).astype(F32)
            b = rng.standard_normal((k, n)).astype(F32)
            self.blas[key] = _median_time(lambda: a @ b, 9)
        return self.blas[key]

    def floor(self, v: Variant, args: tuple) -> tuple[float, str]:
        """The workload's floor time in this run and what it is."""
        if v.floor == "copy":
            nbytes = v.bytes_moved(args)
            return nbytes / self.copy_bandwidth, f"{nbytes / 1e6:.0f} MB at copy bandwidth"
        if v.floor == "blas":
            shapes = v.matmuls(args)
            return sum(self.matmul_time(*s) for s in shapes), f"{len(shapes)} matmuls in BLAS"
        if v.floor == "w6":
            flops = sum(2 * m * k * n for m, k, n in v.matmuls(args))
            nbytes = v.bytes_moved(args)
            return (nbytes / self.copy_bandwidth + flops / self.sgemm_flops,
                    f"one pass over x ({nbytes / 1e6:.1f} MB) + {flops / 1e6:.0f} MFLOP at "
                    f"sgemm speed")
        return self.call_overhead, "a Python call"


def _cuda_event_time(run: Callable[[], Any], start, end, synchronize: Callable[[], Any],
                     elapsed_ms: Callable[[Any, Any], float], batch: int, reps: int) -> float:
    """Median seconds of one `run()` on the GPU: CUDA events around batches of `batch` runs
    (so that launch latency overlaps the work, as in a stream of kernels), after a warm-up."""
    run()
    synchronize()
    samples = []
    for _ in range(reps):
        start.record()
        for _ in range(batch):
            run()
        end.record()
        end.synchronize()
        samples.append(elapsed_ms(start, end) * 1e-3 / batch)
    return statistics.median(samples)


@dataclass
class GpuFloors:
    """The GPU's facts measured in this run: the floors of the cuda rows.

    copy_bandwidth: bytes per second, read + written, of a device-to-device copy of 2**26
    float32 (pycuda memcpy_dtod). The cuBLAS numbers come from torch.matmul on CUDA tensors,
    in float32 and with TF32 allowed; they are None, with `cublas_note` saying why, where torch
    with CUDA is not importable."""

    name: str
    copy_bandwidth: float
    sgemm_flops: float | None = None        # float32 FLOP/s of a square matmul (cuBLAS)
    tf32_flops: float | None = None         # the same with TF32 allowed
    cublas_note: str = ""
    blas: dict = field(default_factory=dict)        # "m,k,n" -> seconds, float32
    blas_tf32: dict = field(default_factory=dict)   # "m,k,n" -> seconds, TF32 allowed

    @classmethod
    def measure(cls, quick: bool) -> "GpuFloors":
        """Measure on the device of backend "cuda" (which must be usable)."""
        import pycuda.driver as drv

        device = _gpu()
        device.synchronize()          # makes its context current
        n = 2 ** 20 if quick else 2 ** 26
        nbytes = 4 * n
        src, dst = drv.mem_alloc(nbytes), drv.mem_alloc(nbytes)
        try:
            drv.memset_d32(src, 0, n)
            copy = _cuda_event_time(lambda: drv.memcpy_dtod(dst, src, nbytes), drv.Event(),
                                    drv.Event(), drv.Context.synchronize,
                                    lambda a, b: a.time_till(b), 10, 3 if quick else 7)
        finally:
            src.free()
            dst.free()
        floors = cls(device.name, 2 * nbytes / copy)
        torch, why = _torch_cuda()
        if torch is None:
            floors.cublas_note = f"no cuBLAS floor: {why}"
            return floors
        m = 256 if quick else 4096
        floors.sgemm_flops = 2 * m ** 3 / floors.matmul_time(m, m, m, False)
        floors.tf32_flops = 2 * m ** 3 / floors.matmul_time(m, m, m, True)
        return floors

    def matmul_time(self, m: int, k: int, n: int, tf32: bool) -> float | None:
        """Seconds of one (m, k) @ (k, n) float32 torch.matmul on the GPU (None without torch
        with CUDA); `tf32`: with torch.backends.cuda.matmul.allow_tf32 set."""
        table = self.blas_tf32 if tf32 else self.blas
        key = f"{m},{k},{n}"
        if key not in table:
            torch, _ = _torch_cuda()
            if torch is None:
                return None
            g = torch.Generator(device="cuda").manual_seed(0)
            a = torch.randn((m, k), device="cuda", generator=g)
            b = torch.randn((k, n), device="cuda", generator=g)
            flag = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                table[key] = _cuda_event_time(
                    lambda: torch.matmul(a, b), torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True), torch.cuda.synchronize,
                    lambda s, e: s.elapsed_time(e), 20, 9)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = flag
        return table[key]

    def floor(self, v: Variant, args: tuple, tf32: bool = False,
              call_overhead: float | None = None) -> tuple[float | None, str]:
        """The workload's floor on the GPU and what it is; (None, why) where it cannot be
        measured here. A per-call-overhead workload keeps the host's `call_overhead`."""
        if v.floor == "copy":
            nbytes = v.bytes_moved(args)
            return (nbytes / self.copy_bandwidth,
                    f"{nbytes / 1e6:.0f} MB at the GPU's copy bandwidth")
        kind = "TF32" if tf32 else "FP32"
        if v.floor == "blas":
            shapes = v.matmuls(args)
            times = [self.matmul_time(*s, tf32) for s in shapes]
            if None in times:
                return None, self.cublas_note
            return sum(times), f"{len(shapes)} matmuls in cuBLAS {kind}"
        if v.floor == "w6":
            flops = sum(2 * m * k * n for m, k, n in v.matmuls(args))
            nbytes = v.bytes_moved(args)
            speed = self.tf32_flops if tf32 else self.sgemm_flops
            if speed is None:
                return None, self.cublas_note
            return (nbytes / self.copy_bandwidth + flops / speed,
                    f"one pass over x ({nbytes / 1e6:.1f} MB) at the GPU's copy bandwidth + "
                    f"{flops / 1e6:.0f} MFLOP at cuBLAS {kind} speed")
        return call_overhead, "a Python call"


def _torch_cuda():
    """(torch, "") where torch with a usable CUDA GPU is importable, else (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA GPU"
    return torch, ""


# ---------------------------------------------------------------------------------------------
# timing


def time_calls(fn: Callable, args: tuple, sync: Callable, reps: int, batch: int,
               min_time: float) -> dict:
    """Median/min/max seconds per call after warm-up; `reps` samples of `batch` calls, each
    sample ended by `sync(last result)` (waiting for a device)."""
    for _ in range(2):
        sync(fn(*args))
    if batch == 0:   # calibrate: a sample should last at least ~2 ms
        t0 = time.perf_counter()
        sync(fn(*args))
        one = max(time.perf_counter() - t0, 1e-7)
        batch = max(1, min(10000, int(2e-3 / one)))
    samples = []
    deadline = time.perf_counter() + min_time
    while len(samples) < reps or (time.perf_counter() < deadline and len(samples) < 10 * reps):
        t0 = time.perf_counter()
        for _ in range(batch):
            out = fn(*args)
        sync(out)
        samples.append((time.perf_counter() - t0) / batch)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "reps": len(samples), "batch": batch}


def _flat(out) -> list[np.ndarray]:
    return [np.asarray(a) for a in flatten(tj.to_host(out))[0]]


def agreement(got: list, want: list, rtol: float) -> tuple[bool, float]:
    """Do two flat result lists agree? Each output's error is normwise, |got - want| / |want|
    (2-norms): one float32 rounding that flips a ReLU mask changes a single element a lot but
    the gradient hardly at all, and implementations with different BLAS libraries differ so."""
    if len(got) != len(want):
        return False, float("inf")
    worst = 0.0
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            return False, float("inf")
        if not np.all(np.isfinite(g) == np.isfinite(w)):
            return False, float("inf")
        ok = np.isfinite(w)
        scale = max(float(np.linalg.norm(w[ok])), 1e-30)
        worst = max(worst, float(np.linalg.norm(g[ok] - w[ok])) / scale)
    return worst <= rtol, worst


def assign_ratios(group: list[Row]) -> None:
    """Fill `ratio_floor` and `ratio_best_peer` of the rows of one workload variant, whose
    `floor` is set: a row's best peer is the fastest timed non-tracejit row of the same device
    (GPU rows meet GPU peers only, CPU rows CPU peers and NumPy only)."""
    best = {}
    for r in group:
        if r.impl != "tracejit" and r.median:
            best[r.device] = min(best.get(r.device, r.median), r.median)
    for r in group:
        if r.median:
            r.ratio_floor = r.median / r.floor if r.floor else None
            r.ratio_best_peer = r.median / best[r.device] if r.device in best else None


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0

    def step(self, text: str):
        self.done += 1
        if self.enabled:
            width = 24
            filled = int(width * self.done / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/"
                             f"{self.total} {text[:60]:<60}")
            sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


# ---------------------------------------------------------------------------------------------
# running


@dataclass
class Plan:
    """What to run."""

    variants: list[Variant]
    backends: list[str]
    fuse: list[bool]
    peers: list[str]                 # may include 'numpy'
    reps: int = 15
    min_time: float = 1.0
    quick: bool = False


def _wanted(target: Target, v: Variant) -> bool:
    return not target.allow_tf32 or v.workload in TF32_WORKLOADS


def run(plan: Plan, progress: bool = True) -> tuple[list[Row], Floors, dict]:
    """Measure everything in `plan`; returns the rows, the floors, and the environment (whose
    "gpu_floors" holds the GPU's floors when cuda is benchmarked)."""
    floors = Floors.measure(plan.quick)
    gpu_floors = GpuFloors.measure(plan.quick) if uses_gpu(plan.backends) else None
    peers = {}
    for name in plan.peers:
        if name != "numpy" and available(name):
            peers[name] = make_peer(name)
    tgts = targets(plan.backends)
    n_impl = sum(_wanted(t, v) for t in tgts for v in plan.variants) * len(plan.fuse) + \
        sum(len(peers) * v.peers + ("numpy" in plan.peers) + len(v.baselines)
            for v in plan.variants)
    bar = Progress(n_impl, progress)
    rows: list[Row] = []
    for v in plan.variants:
        args = v.make_args(plan.quick)
        floor, what = floors.floor(v, args)
        batch = 0 if v.tiny else 1
        reference = None
        group: list[Row] = []
        prepared = {}                  # backend -> its arguments (uploaded once on cuda)
        for target in tgts:
            if not _wanted(target, v):
                continue
            for fuse in plan.fuse:
                row = Row(v.workload, v.name, "tracejit", target.backend, "on" if fuse else "off",
                          device=target.device, allow_tf32=target.allow_tf32)
                bar.step(f"{v.title}: {row.label}")
                try:
                    if target.backend not in prepared:
                        prepared[target.backend] = target.prepare(args)
                    targs = prepared[target.backend]
                    t0 = time.perf_counter()
                    fn = tj.jit(v.fn, backend=target.backend, fuse=fuse,
                                allow_tf32=target.allow_tf32)
                    out = _flat(fn(*targs))
                    row.first_call = time.perf_counter() - t0
                    row.kernels = len(fn.program(*targs).kernels)
                    if reference is None:
                        reference = out
                    rtol = max(v.rtol, TF32_RTOL) if target.allow_tf32 else v.rtol
                    row.agrees, row.max_rel_err = agreement(out, reference, rtol)
                    if not row.agrees:
                        row.note = "results disagree with the first backend's: not timed"
                    elif not plan.quick:
                        row.__dict__.update(time_calls(fn, targs, target.sync, plan.reps, batch,
                                                       plan.min_time))
                except Exception as exc:   # reported, and the run goes on to the others
                    row.agrees = False
                    row.note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                group.append(row)
        if "numpy" in plan.peers and v.numpy is not None:
            bar.step(f"{v.title}: numpy")
            row = Row(v.workload, v.name, "numpy", note="forward + hand-written backward")
            out = _flat(v.numpy(*args))
            if reference is None:      # no tracejit result: the others meet NumPy's
                reference = out
            row.agrees, row.max_rel_err = agreement(out, reference, v.rtol)
            if not plan.quick and row.agrees:
                row.__dict__.update(time_calls(v.numpy, args, lambda o: None, plan.reps, batch,
                                               plan.min_time))
            group.append(row)
        for label, baseline in v.baselines.items():
            bar.step(f"{v.title}: {label}")
            row = Row(v.workload, v.name, label)
            out = _flat(baseline(*args))
            row.agrees, row.max_rel_err = agreement(out, reference, v.rtol)
            if not plan.quick and row.agrees:
                row.__dict__.update(time_calls(baseline, args, lambda o: None, plan.reps, batch,
                                               plan.min_time))
            group.append(row)
        for name, peer in peers.items() if v.peers else ():
            bar.step(f"{v.title}: {name}")
            row = Row(v.workload, v.name, name, device=peer.device)
            try:
                pargs = peer.convert(args)
                fn = peer.build(v.workload, v.name)
                t0 = time.perf_counter()
                out = fn(*pargs)
                peer.sync(out)
                row.first_call = time.perf_counter() - t0
                out = peer.to_numpy(out)
                if reference is None:
                    reference = out
                row.agrees, row.max_rel_err = agreement(out, reference, v.rtol)
                if not row.agrees:
                    row.note = "results disagree with tracejit: not timed"
                elif not plan.quick:
                    row.__dict__.update(time_calls(fn, pargs, peer.sync, plan.reps, batch,
                                                   plan.min_time))
            except Exception as exc:   # a peer that cannot run this workload is reported
                row.agrees = False
                row.note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            group.append(row)
        for r in group:
            if r.device == "gpu":
                r.floor, r.floor_what = gpu_floors.floor(v, args, r.allow_tf32,
                                                         floors.call_overhead) \
                    if gpu_floors is not None else (None, "GPU floors not measured")
            else:
                r.floor, r.floor_what = floor, what
        assign_ratios(group)
        rows.extend(group)
    bar.close()
    env = environment(peers, plan.backends)
    if gpu_floors is not None:
        env["gpu"] = gpu_floors.name
        env["gpu_floors"] = asdict(gpu_floors)
    return rows, floors, env


def environment(peers: dict, backends: list[str] = ()) -> dict:
    """Versions and thread counts, for the JSON (`backends`: the ones benchmarked)."""
    import platform

    import llvmlite

    env = {"python": platform.python_version(), "machine": platform.machine(),
           "processor": platform.processor(), "cpus": os.cpu_count(),
           "numpy": np.__version__, "tracejit": tj.__version__,
           "llvmlite": llvmlite.__version__, "backends": list(NAMES),
           "benchmarked": list(backends),
           "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                          "OPENBLAS_NUM_THREADS")}}
    if any(p.startswith("torch") for p in peers):
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        if any(p.endswith("-cuda") for p in peers):
            env["torch_cuda"] = torch.version.cuda
    if any(p.startswith("jax") for p in peers):
        import jax
        env["jax"] = jax.__version__
    if uses_gpu(backends):
        try:
            import pycuda
            env["pycuda"] = pycuda.VERSION_TEXT
        except ImportError:
            pass
    return env


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    """The rows as JSON-ready dicts, each with its table label."""
    return [asdict(r) | {"label": r.label} for r in rows]
