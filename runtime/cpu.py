"""The CPU runtime: compile a Program's LLVM module for the host, cache it, and call it.

A `CpuProgram` holds one MCJIT engine with the Program's module, compiled at -O3 for the host
CPU and its features, and the address of the module's `entry` function. A call is one foreign
call: the argument table (parameters, constants, results) is filled with array addresses,
intermediates live in an arena allocated once per thread and reused (its layout is the buffer
plan's), and the results are fresh arrays. Non-contiguous inputs are copied to contiguous ones
first (the generated code indexes contiguous row-major buffers); inputs are never written.

Object code is cached on disk (`DiskCache.default()`: `TRACEJIT_CACHE_DIR`, by default the
user's cache folder), keyed by the module's text, the versions of tracejit, llvmlite and LLVM,
the CPU name and features, and the BLAS in use; a new process with a warm cache skips LLVM.

Dots call the BLAS bundled with NumPy (OpenBLAS, ILP64 `scipy_cblas_?gemm64_`) through its
function addresses, registered as the symbols `tj_cblas_sgemm` / `tj_cblas_dgemm`
(`TRACEJIT_BLAS=0` turns that off: dots become loop nests).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
import time
from dataclasses import dataclass, field

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from tracejit.interpreter import bind_arguments
from tracejit.ir import Literal, Var
from tracejit.kernels import Program

from tracejit.codegen.llvm import BLAS_SYMBOLS, lower_program
from .cache import DiskCache

_lock = threading.Lock()
_state: dict = {}


def _initialise() -> llvm.TargetMachine:
    """Initialise LLVM once; a new target machine for the host (-O3, its CPU features)."""
    with _lock:
        if "target" not in _state:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            target = llvm.Target.from_default_triple()
            _state["cpu"] = llvm.get_host_cpu_name()
            _state["features"] = llvm.get_host_cpu_features().flatten()
            _state["target"] = target
            _state["blas"] = _register_blas()
        # Each engine owns its target machine, so every program gets a new one.
        return _state["target"].create_target_machine(
            cpu=_state["cpu"], features=_state["features"], opt=3, codemodel="jitdefault")


def _register_blas() -> str:
    """Register NumPy's bundled OpenBLAS gemm functions as `tj_cblas_?gemm`; returns the
    library's file name, or '' when none is found or TRACEJIT_BLAS=0."""
    if os.environ.get("TRACEJIT_BLAS", "1").lower() in ("0", "off", "false", "no"):
        return ""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*"))):
        try:
            lib = ctypes.CDLL(path)
            addresses = {dt: ctypes.cast(getattr(lib, f"scipy_cblas_{dt[0]}gemm64_"),
                                         ctypes.c_void_p).value
                         for dt in ("s", "d")}
        except (OSError, AttributeError):
            continue
        llvm.add_symbol(BLAS_SYMBOLS["f32"], addresses["s"])
        llvm.add_symbol(BLAS_SYMBOLS["f64"], addresses["d"])
        return os.path.basename(path)
    return ""


def host() -> dict[str, str]:
    """The host as the compiler sees it: CPU name, features, LLVM and BLAS in use."""
    _initialise()
    return {"cpu": _state["cpu"], "features": _state["features"],
            "llvm": ".".join(map(str, llvm.llvm_version_info)), "blas": _state["blas"]}


def default_threads() -> int:
    """TRACEJIT_NUM_THREADS, else the CPUs this process may run on."""
    env = os.environ.get("TRACEJIT_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def optimise(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The -O3 pipeline, loop and SLP vectorisation on."""
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(module, pb)


ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                         ctypes.c_void_p)


@dataclass
class CompileInfo:
    """What compiling one Program took: the LLVM text, where the object came from, timings."""

    llvm: str
    source: str = ""                  # "compiled" or "disk cache"
    cache_miss: str = ""              # why the disk cache missed (empty on a hit)
    seconds: dict[str, float] = field(default_factory=dict)
    optimised: str | None = None      # the optimised module's text (compiled, not cached)


class CpuProgram:
    """A Program compiled for the host CPU: call it with the function's arguments."""

    def __init__(self, program: Program, cache: DiskCache | None = None, name: str = ""):
        tm = _initialise()
        t0 = time.perf_counter()
        self.program = program
        module, self.plan = lower_program(program, blas=bool(_state["blas"]),
                                          name=name or program.fn.name)
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        text = str(module)
        t1 = time.perf_counter()
        self.info = CompileInfo(text, seconds={"codegen": t1 - t0})
        key = {"ir": text, "tracejit": _version(), "llvmlite": llvmlite.__version__,
               "llvm": host()["llvm"], "cpu": _state["cpu"], "features": _state["features"],
               "blas": _state["blas"]}
        obj = cache.load(key) if cache is not None else None
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        if obj is not None:
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.info.source = "disk cache"
        else:
            self.info.cache_miss = cache.explain(key) if cache is not None else "no disk cache"
            mod = llvm.parse_assembly(text)
            mod.verify()
            optimise(mod, tm)
            self.info.optimised = str(mod)
            t2 = time.perf_counter()
            self.info.seconds["optimise"] = t2 - t1
            stored: list[bytes] = []
            self._engine.set_object_cache(lambda m, data: stored.append(bytes(data)), None)
            self._engine.add_module(mod)
            self.info.source = "compiled"
            self._engine.finalize_object()
            if cache is not None and stored:
                cache.store(key, stored[-1])
            self.info.seconds["machine code"] = time.perf_counter() - t2
        self._engine.finalize_object()
        self._entry = ENTRY(self._engine.get_function_address("entry"))
        self._threads = default_threads()
        self._local = threading.local()
        fn = program.fn
        self._constants = [np.ascontiguousarray(c.params["value"]) for c in program.constants]
        self._result_types = [(v.type.shape, v.type.np_dtype) for v in self.plan.results]
        self._slot = {v: i for i, v in enumerate(self.plan.args)}
        self._n_params = len(fn.params)
        self.info.seconds["total"] = time.perf_counter() - t0

    def _arena(self) -> np.ndarray:
        arena = getattr(self._local, "arena", None)
        if arena is None:
            arena = self._local.arena = np.empty(max(self.plan.peak, 64), np.uint8)
        return arena

    def __call__(self, flat: list) -> list:
        fn = self.program.fn
        params = [p for p in bind_arguments(fn, flat).values()]
        params = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in params]
        results = [np.empty(shape, dtype) for shape, dtype in self._result_types]
        table = (ctypes.c_void_p * max(len(self.plan.args), 1))()
        for i, a in enumerate(params + self._constants + results):
            table[i] = a.ctypes.data
        status = np.zeros(4, np.int64)
        rc = self._entry(ctypes.addressof(table), self._arena().ctypes.data, self._threads,
                         status.ctypes.data)
        if rc:
            raise IndexError(f"index {status[1]} is out of bounds for axis {status[2]} with "
                             f"size {status[3]}")
        out, seen = [], set()
        for r in fn.results:
            if isinstance(r, Literal):
                out.append(np.array(r.value))
                continue
            value = (params + self._constants + results)[self._slot[r]]
            if r in seen or self._slot[r] < len(params) + len(self._constants):
                value = np.array(value, copy=True)
            seen.add(r)
            out.append(value)
        return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tracejit")
    except PackageNotFoundError:
        return "unknown"
