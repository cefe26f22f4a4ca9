"""The CPU runtime: compile a Program's LLVM module for the host, cache it, and call it.

A `CpuProgram` holds one MCJIT engine that links the Program's object code (compiled at -O3
for the host CPU and its features by the compiling thread's target machine, or read from the
disk cache), and the address of the entry function. The engine is freed by `close()` or when
the program is dropped, once no call runs in it. A call is one foreign
call that receives the arrays themselves (parameters, constants, results) and reads their data
pointers in generated code; intermediates live in an arena allocated once per thread and
reused (its layout is the buffer plan's), and the results are new arrays (large ones reused
once released). Non-contiguous inputs are copied to contiguous ones first (the generated
code indexes contiguous row-major buffers); inputs are never written.

Object code is cached on disk (`DiskCache.default()`: `TRACEJIT_CACHE_DIR`, by default the
user's cache folder), keyed by the Program's text and constants, the code generator's source,
the versions of tracejit, llvmlite and LLVM, the CPU name and features, and the BLAS in use
(`cache_key`); a new process with a warm cache skips code generation and LLVM.

Dots call the BLAS bundled with NumPy (OpenBLAS, ILP64 `scipy_cblas_?gemm64_`) through its
function addresses, registered as the symbols `tj_cblas_sgemm` / `tj_cblas_dgemm`
(`TRACEJIT_BLAS=0` turns that off: dots become loop nests). The factorisations of numpy.linalg
call the LAPACK of the same library the same way (`scipy_LAPACKE_?potrf64_`, ..., registered as
`tj_lapacke_?potrf`, ...), whatever TRACEJIT_BLAS says: there is no loop-nest twin of them.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import sys
import platform
import threading
import time
from dataclasses import dataclass, field

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from tracejit.ir import Literal
from tracejit.kernels import Program

from tracejit import errors, settings
from tracejit import primitives as P
from tracejit.codegen.llvm import (BLAS_SYMBOLS, LAPACK_ROUTINES, MAX_THREADS, NP_ARRAY_DATA,
                                   PY_TUPLE_ITEMS, STATUS_WORDS, Lowering)
from tracejit.codegen.lowering import source_hash
from tracejit.codegen.status import sites, status_error
from .cache import DiskCache

_lock = threading.Lock()
_state: dict = {}


def _start() -> dict:
    """Initialise LLVM and find the BLAS, once per process; the facts about the host."""
    with _lock:
        if "target" not in _state:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _state["cpu"] = llvm.get_host_cpu_name()
            _state["features"] = llvm.get_host_cpu_features().flatten()
            _state["llvm"] = ".".join(map(str, llvm.llvm_version_info))
            _state["blas"] = _register_blas()
            _state["lapack"] = _register_lapack()
            _state["target"] = llvm.Target.from_default_triple()
    return _state


def _target_machine() -> llvm.TargetMachine:
    """A new target machine for the host (-O3, its CPU features). An engine owns the one it
    is given, so each engine gets its own; engines only link object code, so theirs never
    build the code generator's tables."""
    state = _start()
    return state["target"].create_target_machine(
        cpu=state["cpu"], features=state["features"], opt=3, codemodel="jitdefault")


_per_thread = threading.local()


def _compiler_machine() -> llvm.TargetMachine:
    """This thread's target machine, for optimising modules and emitting their object code.
    Made once per thread (a target machine may not be used by two threads at once): the code
    generator's tables it builds at its first use take ~0.8 MB, once per thread instead of
    once per program."""
    try:
        return _per_thread.machine
    except AttributeError:
        _per_thread.machine = machine = _target_machine()
        return machine


def _register_blas() -> str:
    """Register NumPy's bundled OpenBLAS gemm functions as `tj_cblas_?gemm`; returns the
    library's file name, or '' when none is found or TRACEJIT_BLAS=0."""
    if not settings.flag("TRACEJIT_BLAS", True):
        return ""
    for path in _openblas():
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


def _openblas() -> list[str]:
    """The OpenBLAS libraries bundled with NumPy (ILP64, `scipy_`-prefixed symbols)."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    return sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so*")))


def _register_lapack() -> str:
    """Register the LAPACKE routines of NumPy's bundled OpenBLAS that the LINALG kernels call
    as `tj_lapacke_<s|d><routine>`; returns the library's file name, or '' when none has
    them (compiling a factorisation then raises UnsupportedError)."""
    for path in _openblas():
        try:
            lib = ctypes.CDLL(path)
            addresses = {f"tj_lapacke_{p}{r}": ctypes.cast(
                getattr(lib, f"scipy_LAPACKE_{p}{r}64_"), ctypes.c_void_p).value
                for p in "sd" for r in LAPACK_ROUTINES}
        except (OSError, AttributeError):
            continue
        for name, address in addresses.items():
            llvm.add_symbol(name, address)
        # LAPACKE scans every input for NaN and refuses it (info < 0), where NumPy, calling
        # LAPACK itself, lets NaN through (det and inv give NaN). This library is NumPy's own,
        # whose LAPACK calls do not go through LAPACKE: the scan is turned off for it.
        set_nancheck = getattr(lib, "scipy_LAPACKE_set_nancheck64_", None)
        if set_nancheck is not None:
            set_nancheck(ctypes.c_int(0))
        return os.path.basename(path)
    return ""


def host() -> dict[str, str]:
    """The host as the compiler sees it: CPU name, features, LLVM and BLAS in use."""
    state = _start()
    return {k: state[k] for k in ("cpu", "features", "llvm", "blas")}


def default_threads() -> int:
    """TRACEJIT_NUM_THREADS, else the CPUs this process may run on (at most MAX_THREADS, the
    most the generated code uses)."""
    threads = settings.integer("TRACEJIT_NUM_THREADS", None)
    if threads is not None:
        return min(threads, MAX_THREADS)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def optimise(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """The -O3 pipeline, loop and SLP vectorisation on.

    Every native object it makes is freed before it returns. llvmlite's `close()` of a module
    pass manager frees nothing (the class inherits a no-op `_dispose` ahead of the one that
    frees), and the -O3 pipeline holds 30 KB, 135 KB once run: it is disposed here directly.
    The pass builder is not reused: each run registers in it callbacks of an instrumentation
    object that dies with the run, so a reused builder grows, slows every later run and holds
    dangling callbacks. (llvmlite never frees a builder's table of callbacks: ~2 KB a run.)"""
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = False     # a third less compile time; the vectoriser interleaves
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    try:
        pm.run(module, pb)
    finally:
        llvm.ffi.lib.LLVMPY_DisposeNewModulePassManger(pm)
        pm.detach()
        pb.close()
        pto.close()


POOL_MIN_BYTES = 1 << 20      # results at least this large are reused once released
POOL_SIZE = 2                 # arrays kept per result slot and thread

ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                         ctypes.c_void_p)
OBJECT_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.py_object, ctypes.c_void_p,
                                ctypes.c_int64, ctypes.c_void_p)


def _object_layout_ok() -> bool:
    """Whether this interpreter lays out tuples and arrays as `entry_objects` reads them."""
    if "layout" not in _state:
        a = np.zeros(3)
        t = (a,)
        item = ctypes.c_void_p.from_address(id(t) + PY_TUPLE_ITEMS).value
        data = ctypes.c_void_p.from_address(id(a) + NP_ARRAY_DATA).value
        _state["layout"] = item == id(a) and data == a.ctypes.data
    return _state["layout"]


@dataclass
class CompileInfo:
    """What compiling one Program took: where the object code came from, why the disk cache
    missed, the time of each step, and the LLVM texts once made."""

    source: str = ""                  # "compiled" or "disk cache"
    cache_miss: str = ""              # why the disk cache missed (empty on a hit)
    seconds: dict[str, float] = field(default_factory=dict)
    llvm: str | None = None           # the module as generated
    optimised: str | None = None      # the module after -O3


@functools.lru_cache(maxsize=None)
def _uses_float16(program: Program) -> bool:
    fn = program.fn
    values = [*fn.params, *fn.results, *(e.out for e in fn.eqns)]
    return any(v.type.dtype == "f16" for v in values)


def _runtime_hash() -> str:
    """A hash of this module's source: how it loads and calls object code."""
    with open(__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def cache_key(program: Program) -> dict[str, str]:
    """The disk cache key of `program`: its text (with a hash of its constants' bytes, which
    the text abbreviates), the code generators' and this module's source hashes, and every
    version and host fact that changes the object code."""
    digest = hashlib.sha256()
    for c in program.constants:
        value = np.ascontiguousarray(c.params["value"])
        digest.update(str(value.dtype).encode() + str(value.shape).encode() + value.tobytes())
    h = host()
    return {"ir": str(program), "constants": digest.hexdigest(), "codegen": source_hash(),
            "runtime": _runtime_hash(), "tracejit": _version(), "llvmlite": llvmlite.__version__, "llvm": h["llvm"],
            "cpu": h["cpu"], "features": h["features"], "blas": h["blas"]}


class _Engine:
    """An MCJIT engine with one program's object code linked in, the entry points into that
    code, and each thread's scratch memory for it (`local`). A call holds its program's
    engine to its end, so the engine is freed (closed when collected) once its program has
    dropped it and no call runs in it."""

    def __init__(self, obj: bytes):
        self.engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine())
        self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        self.entry = ENTRY(self.engine.get_function_address("entry"))
        self.entry_objects = (OBJECT_ENTRY(self.engine.get_function_address("entry_objects"))
                              if _object_layout_ok() else None)
        self.local = threading.local()

    def __del__(self):
        engine = getattr(self, "engine", None)      # absent when __init__ failed
        if engine is not None and not sys.is_finalizing():
            engine.close()          # the machine code, its memory manager and target machine


class CpuProgram:
    """A Program compiled for the host CPU: call it with the function's arguments. `close()`
    frees its machine code; dropping the last reference to it does the same."""

    def __init__(self, program: Program, cache: DiskCache | None = None, name: str = ""):
        tm = _compiler_machine()
        t0 = time.perf_counter()
        self.program = program
        if not _start()["lapack"]:
            needs = [k.own_primitive.name for k in program.kernels
                     if k.own_primitive is not None and k.own_primitive.category is P.LINALG]
            if needs:
                raise errors.UnsupportedError(
                    f"{needs[0]} on the cpu backend calls the LAPACK of the OpenBLAS that "
                    "NumPy bundles (numpy.libs/libscipy_openblas64_*), which this NumPy "
                    "does not have")
        features = host()["features"]
        if platform.machine() in ("x86_64", "AMD64") and "+f16c" not in features and \
                _uses_float16(program):      # no F16C: LLVM would call a missing library
            raise errors.UnsupportedError(
                "float16 on the cpu backend needs the processor's F16C conversions, which "
                "this x86 processor lacks; cast to float32 before the jitted function")
        self._lowering = Lowering(program, blas=bool(host()["blas"]),
                                  name=name or program.fn.name)
        self.plan = self._lowering.plan
        self.info = CompileInfo()
        key = cache_key(program)
        obj = cache.load(key) if cache is not None else None
        if obj is not None:
            self.info.source = "disk cache"
        else:
            self.info.cache_miss = cache.explain(key) if cache is not None else "no disk cache"
            text = self.llvm_text()
            t1 = time.perf_counter()
            self.info.seconds["codegen"] = t1 - t0
            mod = llvm.parse_assembly(text)
            mod.verify()
            optimise(mod, tm)
            self.info.optimised = str(mod)
            t2 = time.perf_counter()
            self.info.seconds["optimise"] = t2 - t1
            # Machine code by this thread's target machine, not by the engine's: the engine
            # then links object code only, a disk cache hit or not, and its target machine
            # never builds the code generator's tables (~0.8 MB a program otherwise).
            obj = tm.emit_object(mod)
            del mod
            if cache is not None:
                cache.store(key, obj)
            self.info.source = "compiled"
        self._native: _Engine | None = _Engine(obj)
        if self.info.source == "compiled":
            self.info.seconds["machine code"] = time.perf_counter() - t2
        self._threads = default_threads()
        fn = program.fn
        self._constants = [np.ascontiguousarray(c.params["value"]) for c in program.constants]
        self._result_types = [(v.type.shape, v.type.np_dtype, v.type.nbytes >= POOL_MIN_BYTES)
                              for v in self.plan.results]
        self._slot = {v: i for i, v in enumerate(self.plan.args)}
        self._n_params = len(fn.params)
        # The results are exactly the result buffers, in order: return them as they are.
        self._simple_results = list(fn.results) == list(self.plan.results)
        # Otherwise each result is (slot, copied, value): a buffer of the argument table,
        # copied when it is a parameter, a constant or a repeat; or (-1, _, value) a literal.
        self._assembly, seen = [], set()
        for r in fn.results:
            if isinstance(r, Literal):
                self._assembly.append((-1, True, r.value))
                continue
            slot = self._slot[r]
            fixed = slot < self._n_params + len(self._constants)
            self._assembly.append((slot, r in seen or fixed, None))
            seen.add(r)
        self.info.seconds["total"] = time.perf_counter() - t0

    def stages(self) -> dict:
        """The backend's stages for dumps, each made when first asked."""
        return {"llvm": self.llvm_text, "llvm optimized": self.optimised_llvm}

    def llvm_text(self) -> str:
        """The LLVM module as generated (made when first asked, on a disk cache hit)."""
        if self.info.llvm is None:
            tm = _compiler_machine()
            module = self._lowering.module()
            module.triple = tm.triple
            module.data_layout = str(tm.target_data)
            self.info.llvm = str(module)
        return self.info.llvm

    def optimised_llvm(self) -> str:
        """The module after the -O3 pipeline (recomputed when the object came from the disk
        cache)."""
        if self.info.optimised is None:
            mod = llvm.parse_assembly(self.llvm_text())
            optimise(mod, _compiler_machine())
            self.info.optimised = str(mod)
        return self.info.optimised

    def close(self) -> None:
        """Free the machine code and the scratch memory: at once, or when the calls running
        in other threads have returned. A later call raises RuntimeError; results returned
        before stay valid (they are NumPy's arrays). Closing again does nothing."""
        self._native = None

    def _open(self) -> _Engine:
        native = self._native
        if native is None:
            raise RuntimeError(f"the compiled program of {self.program.fn.name} was closed")
        return native

    def kernel_cycles(self) -> dict[str, int]:
        """{kernel name: CPU cycles} spent in each kernel by this thread's calls so far (the
        time-stamp counter, read around every kernel); `reset_cycles` starts again."""
        local = self._open().local
        self._scratch(local)
        counts = local.status[STATUS_WORDS:]
        return {k.name: int(c) for k, c in zip(self.program.kernels, counts)}

    def reset_cycles(self) -> None:
        """Zero this thread's kernel cycle counts."""
        local = self._open().local
        self._scratch(local)
        local.status[STATUS_WORDS:] = 0

    def _pooled(self, local: threading.local, i: int) -> np.ndarray:
        """A result array for slot `i`: one of this thread's earlier results of that slot that
        nobody references any more, else a new one (kept for reuse, up to POOL_SIZE). Large
        fresh arrays cost page faults and the kernel zeroing their pages on first touch, as
        much as a memory-bound kernel's own work; reusing them costs nothing."""
        pools = local.__dict__.setdefault("pool", {})
        pool = pools.setdefault(i, [])
        for a in pool:
            # References: the pool's list, this loop's variable and getrefcount's argument.
            if sys.getrefcount(a) == 3:
                return a
        shape, dtype, _ = self._result_types[i]
        a = np.empty(shape, dtype)
        if len(pool) < POOL_SIZE:
            pool.append(a)
        return a

    def _scratch(self, local: threading.local) -> tuple[int, int]:
        """This thread's arena and status addresses (allocated once, reused by every call)."""
        try:
            return local.pointers
        except AttributeError:
            local.arena = np.empty(max(self.plan.peak, 64), np.uint8)
            local.status = np.zeros(STATUS_WORDS + len(self.program.kernels), np.int64)
            local.pointers = (local.arena.ctypes.data, local.status.ctypes.data)
            return local.pointers

    def __call__(self, flat: list) -> list:
        """Run on arrays typed like the function's parameters; returns the results."""
        native = self._open()       # held to the end of the call: `close` cannot free it meanwhile
        local = native.local
        params = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in flat]
        empty = np.empty
        results = [empty(shape, dtype) if not pooled else self._pooled(local, i)
                   for i, (shape, dtype, pooled) in enumerate(self._result_types)]
        arrays = (*params, *self._constants, *results)
        arena, status = self._scratch(local)
        if native.entry_objects is not None:
            rc = native.entry_objects(arrays, arena, self._threads, status)
        else:
            table = (ctypes.c_void_p * max(len(arrays), 1))(*(a.ctypes.data for a in arrays))
            rc = native.entry(ctypes.addressof(table), arena, self._threads, status)
        if rc:
            code = local.status[:STATUS_WORDS].copy()
            local.status[:STATUS_WORDS] = 0
            raise status_error(code, sites(self.program))
        if self._simple_results:
            return results
        copy = np.array
        return [copy(value) if slot < 0 else copy(arrays[slot]) if copied else arrays[slot]
                for slot, copied, value in self._assembly]


@functools.lru_cache(maxsize=None)
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("tracejit")
    except PackageNotFoundError:
        return "unknown"
