"""Measuring: floors, timing, agreement checks, and the result rows.

Timing: the first call (trace + compile + run for tracejit, compile for torch.compile and
JAX) is measured separately; then after warm-up, `reps` samples, each of `batch` calls
(batches make microsecond workloads measurable), and the median, min and max per call.
Before a peer is timed, its results are compared with tracejit's on the same inputs; a peer
that disagrees is reported, not timed.
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
from tracejit.compiler import BACKENDS
from tracejit.pytree import flatten

from .peers import available, make_peer
from .workloads import Variant

F32 = np.float32


@dataclass
class Row:
    """One measured implementation of one workload variant."""

    workload: str
    variant: str
    impl: str                        # 'tracejit', 'numpy', 'torch', 'torch.compile', 'jax'
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
    floor: float | None = None
    ratio_floor: float | None = None
    ratio_best_peer: float | None = None

    @property
    def label(self) -> str:
        if self.impl == "tracejit":
            return f"tracejit {self.backend} fuse={self.fuse}"
        return self.impl


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


# ---------------------------------------------------------------------------------------------
# timing


def time_calls(fn: Callable, args: tuple, sync: Callable, reps: int, batch: int,
               min_time: float) -> dict:
    """Median/min/max seconds per call after warm-up; `reps` samples of `batch` calls."""
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
    return [np.asarray(a) for a in flatten(out)[0]]


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


def run(plan: Plan, progress: bool = True) -> tuple[list[Row], Floors, dict]:
    """Measure everything in `plan`; returns the rows, the floors, and the environment."""
    floors = Floors.measure(plan.quick)
    peers = {}
    for name in plan.peers:
        if name != "numpy" and available(name):
            peers[name] = make_peer(name)
    n_impl = len(plan.backends) * len(plan.fuse) + len(peers) + ("numpy" in plan.peers)
    bar = Progress(len(plan.variants) * n_impl, progress)
    rows: list[Row] = []
    for v in plan.variants:
        args = v.make_args(plan.quick)
        floor, what = floors.floor(v, args)
        batch = 0 if v.tiny else 1
        reference = None
        for backend in plan.backends:
            for fuse in plan.fuse:
                bar.step(f"{v.title}: tracejit {backend} fuse={'on' if fuse else 'off'}")
                row = Row(v.workload, v.name, "tracejit", backend, "on" if fuse else "off")
                t0 = time.perf_counter()
                fn = tj.jit(v.fn, backend=backend, fuse=fuse)
                out = _flat(fn(*args))
                row.first_call = time.perf_counter() - t0
                row.kernels = len(fn.program(*args).kernels)
                if reference is None:
                    reference = out
                row.agrees, row.max_rel_err = agreement(out, reference, v.rtol)
                if not plan.quick and row.agrees:
                    row.__dict__.update(time_calls(fn, args, lambda o: None, plan.reps, batch,
                                                   plan.min_time))
                rows.append(row)
        if "numpy" in plan.peers and v.numpy is not None:
            bar.step(f"{v.title}: numpy")
            row = Row(v.workload, v.name, "numpy", note="forward + hand-written backward")
            row.agrees, row.max_rel_err = agreement(_flat(v.numpy(*args)), reference, v.rtol)
            if not plan.quick and row.agrees:
                row.__dict__.update(time_calls(v.numpy, args, lambda o: None, plan.reps, batch,
                                               plan.min_time))
            rows.append(row)
        for name, peer in peers.items():
            bar.step(f"{v.title}: {name}")
            row = Row(v.workload, v.name, name)
            try:
                pargs = peer.convert(args)
                fn = peer.build(v.workload, v.name)
                t0 = time.perf_counter()
                out = fn(*pargs)
                peer.sync(out)
                row.first_call = time.perf_counter() - t0
                row.agrees, row.max_rel_err = agreement(peer.to_numpy(out), reference, v.rtol)
                if not row.agrees:
                    row.note = "results disagree with tracejit: not timed"
                elif not plan.quick:
                    row.__dict__.update(time_calls(fn, pargs, peer.sync, plan.reps, batch,
                                                   plan.min_time))
            except Exception as exc:   # a peer that cannot run this workload is reported
                row.agrees = False
                row.note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            rows.append(row)
        group = [r for r in rows if r.workload == v.workload and r.variant == v.name]
        best_peer = min((r.median for r in group if r.impl != "tracejit" and r.median),
                        default=None)
        for r in group:
            r.floor = floor
            r.note = r.note or (what if r.impl == "tracejit" else "")
            if r.median:
                r.ratio_floor = r.median / floor
                r.ratio_best_peer = r.median / best_peer if best_peer else None
    bar.close()
    return rows, floors, environment(peers)


def environment(peers: dict) -> dict:
    """Versions and thread counts, for the JSON."""
    import platform

    import llvmlite

    env = {"python": platform.python_version(), "machine": platform.machine(),
           "processor": platform.processor(), "cpus": os.cpu_count(),
           "numpy": np.__version__, "tracejit": tj.__version__,
           "llvmlite": llvmlite.__version__, "backends": list(BACKENDS),
           "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS",
                                                          "OPENBLAS_NUM_THREADS")}}
    if "torch" in peers or "torch.compile" in peers:
        import torch
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    if "jax" in peers:
        import jax
        env["jax"] = jax.__version__
    return env


def rows_as_dicts(rows: list[Row]) -> list[dict]:
    return [asdict(r) | {"label": r.label} for r in rows]
