"""A real GPU through pycuda: the `Device` of runtime/cuda.py that `backend="cuda"` runs on.

pycuda is optional and imported only when the first GPU program is compiled
(`PycudaDevice.get()`); importing tracejit never imports it. When pycuda is missing, or the
CUDA driver or a GPU is not usable, `get()` raises `CudaUnavailableError` saying what failed
and what to do (install `tracejit[cuda]`, or run the same CUDA C on the host with
`backend="cuda-emulator"`).

The context. There is one device object per process, bound to one CUDA context:

- if a pycuda context is current in the thread that first asks for the device (the user's:
  `pycuda.autoinit`, `Device(i).make_context()`, ...), that one;
- else the primary context of device `TRACEJIT_CUDA_DEVICE` (default 0), the one the CUDA
  runtime uses, so pointers from PyTorch, CuPy, JAX or numba arrays on that device are valid
  in it.

Every operation makes the context current for its duration when it is not (push, work, pop).
In the main thread the retained primary context is pushed once and left current, as
`pycuda.autoinit` does, so that the user's own pycuda calls on the results (`.get()`, GPUArray
arithmetic) work; it is popped at exit. In other threads the context is current only during
tracejit's own calls: the memory tracejit allocates (inputs copied in, scratch) frees itself
with the context made current, but pycuda frees a result GPUArray only in the thread where
`PycudaDevice.get()` was first called or where the context is current (else it warns "could
not be cleaned up" and leaks it). So a worker thread uses and drops its results inside
`with PycudaDevice.get().activate():`, or hands them back to the main thread.

Streams. Kernels run on the default stream; `to_host` waits for them. Arguments exposing
`__cuda_array_interface__` are used in place and nothing is synchronised on their behalf: the
work of the caller's stream that produces them must be complete before the call (synchronise
that stream, or the whole context with `PycudaDevice.get().synchronize()`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import subprocess
import threading

import numpy as np

from tracejit.codegen.cuda import CudaLowering, Launch
from tracejit import settings
from tracejit.errors import CudaUnavailableError
from .cache import DiskCache

INSTALL_DOCS = 'docs/cuda.md ("Installing pycuda")'
DEVICE_ENV = "TRACEJIT_CUDA_DEVICE"
# --fmad=false: elementwise arithmetic rounds operation by operation, as NumPy's does (the dot
# kernels call fma themselves).
NVCC_OPTIONS = ("-std=c++17", "-lineinfo", "--fmad=false")




@functools.cache
def _nvcc_version() -> str:
    """`nvcc --version`, part of a cubin's cache key ("" where it cannot run)."""
    try:
        return subprocess.run(["nvcc", "--version"], capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return ""


def _not_installed(error: BaseException) -> str:
    return ("backend='cuda' needs pycuda, which is not installed "
            f"({type(error).__name__}: {error}). Install it with `pip install 'tracejit[cuda]'` "
            "(pycuda builds from source against the CUDA toolkit: nvcc must be on PATH); "
            f"see {INSTALL_DOCS}, which also describes an offline build.")


def _no_gpu(what: str) -> str:
    return (f"backend='cuda' found no usable GPU: {what}. It needs an NVIDIA GPU and its "
            "driver (libcuda.so.1). Without one, backend='cuda-emulator' compiles and runs the "
            f"same generated CUDA C on the host; see {INSTALL_DOCS}.")


def _import_driver():
    """pycuda.driver, or CudaUnavailableError: pycuda missing, or its driver module failing to
    load (no libcuda.so.1, a driver older than the toolkit pycuda was built with)."""
    try:
        import pycuda  # noqa: F401
    except ImportError as e:
        raise CudaUnavailableError(_not_installed(e)) from e
    try:
        import pycuda.driver as drv
    except ImportError as e:
        what = f"importing pycuda.driver failed ({e})"
        if "undefined symbol" in str(e):
            what += ("; pycuda was built against a CUDA toolkit newer than this driver "
                     "supports: rebuild it against a toolkit no newer than the driver's CUDA "
                     "version (nvidia-smi shows it)")
        raise CudaUnavailableError(_no_gpu(what)) from e
    return drv


def _type_text(shape, dtype) -> str:
    """'float32[3,4]': how error messages write an array type."""
    return f"{np.dtype(dtype).name}[{','.join(str(int(n)) for n in shape)}]"


def _c_contiguous(shape, strides, itemsize: int) -> bool:
    """Whether byte `strides` lay out `shape` in row-major order without gaps (strides of
    axes of length 1, and of empty arrays, do not matter)."""
    if strides is None or 0 in shape:
        return True
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


class PycudaModule:
    """A compiled module: pycuda's Module and each launched kernel, fetched and prepared
    (one pointer parameter per `Param`) once."""

    def __init__(self, module, functions: dict):
        self.module = module
        self.functions = functions


class DeviceMemory:
    """A pycuda DeviceAllocation that frees itself with its device's context made current, so
    that it may be dropped in any thread (the inputs copied in for a call made in a worker
    thread, for one)."""

    __slots__ = ("allocation", "device")

    def __init__(self, device: PycudaDevice, allocation):
        self.device = device
        self.allocation = allocation

    def __int__(self) -> int:
        return int(self.allocation)

    def __del__(self):
        allocation, self.allocation = self.allocation, None
        if allocation is not None:
            self.device._free(allocation)


class PycudaDevice:
    """A GPU through pycuda (see the module's docstring). Use `PycudaDevice.get()`."""

    _instance: PycudaDevice | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> PycudaDevice:
        """The device of this process, made on first use (thread-safe). Raises
        CudaUnavailableError when pycuda, the driver or a GPU is missing; a later call tries
        again."""
        inst = cls._instance
        if inst is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls()
                inst = cls._instance
        return inst

    def __init__(self):
        drv = _import_driver()
        self._drv = drv
        self._pool = None            # the DeviceMemoryPool of per-call memory, made when needed
        try:
            drv.init()
        except drv.Error as e:
            raise CudaUnavailableError(_no_gpu(
                f"pycuda.driver.init() raised {type(e).__name__}: {e}")) from e
        current = drv.Context.get_current()
        self.owns_context = current is None
        if current is None:
            index = self._device_index()
            try:
                count = drv.Device.count()
            except drv.Error as e:
                raise CudaUnavailableError(_no_gpu(f"counting devices failed ({e})")) from e
            if count == 0:
                raise CudaUnavailableError(_no_gpu("the driver reports no CUDA device"))
            if index >= count:
                raise CudaUnavailableError(_no_gpu(
                    f"{DEVICE_ENV}={index}, but there are {count} CUDA devices (0 to "
                    f"{count - 1})"))
            try:
                device = drv.Device(index)
                self.context = device.retain_primary_context()
            except drv.Error as e:
                raise CudaUnavailableError(_no_gpu(
                    f"retaining the primary context of device {index} failed ({e})")) from e
        else:
            self.context = current
        self._exit_registered = False
        self._closing = False           # set at exit: from then on, never leave it pushed
        pop = self._enter()
        try:
            device = drv.Context.get_device()
            attr = drv.device_attribute
            major, minor = device.compute_capability()
            self.device = device
            self.arch = f"sm_{major}{minor}"
            self.name = f"{device.name()} ({self.arch})"
            self.multiprocessors = device.get_attribute(attr.MULTIPROCESSOR_COUNT)
            self.threads_per_multiprocessor = device.get_attribute(
                attr.MAX_THREADS_PER_MULTIPROCESSOR)
        finally:
            if pop:
                drv.Context.pop()
        self._resident: dict[int, int] = {}
        from pycuda import gpuarray
        self._gpuarray = gpuarray

    @staticmethod
    def _device_index() -> int:
        return settings.integer(DEVICE_ENV, 0, minimum=0, allowed="a device number: 0, 1, ...")

    # -- the context ---------------------------------------------------------------------

    def _enter(self) -> bool:
        """Make the context current in this thread; True when the caller must pop it after.
        Invariant: at most one push per `_enter` that returns True, so pushes and pops pair."""
        drv = self._drv
        current = drv.Context.get_current()
        if current is not None and current == self.context:
            return False
        self.context.push()
        if (current is None and self.owns_context and not self._closing
                and threading.current_thread() is threading.main_thread()):
            # The main thread keeps it (as pycuda.autoinit does); popped at exit, because
            # pycuda aborts the process when its context stack is not empty at unload.
            if not self._exit_registered:
                self._exit_registered = True
                atexit.register(self._leave_at_exit)
            return False
        return True

    def _leave_at_exit(self) -> None:
        """Pop the context left current in the main thread (atexit)."""
        drv = self._drv
        self._closing = True
        try:
            while drv.Context.get_current() == self.context:
                drv.Context.pop()
            from pycuda.tools import clear_context_caches
            clear_context_caches()
        except Exception:       # at exit: nothing left to report to
            pass

    @contextlib.contextmanager
    def activate(self):
        """`with device.activate():` the context is current inside (for pycuda calls of the
        user's own, e.g. `result.get()` or freeing results in a worker thread)."""
        pop = self._enter()
        try:
            yield self.context
        finally:
            if pop:
                self._drv.Context.pop()

    @contextlib.contextmanager
    def _driver(self, failing: str):
        """The context current around driver calls; a driver error inside becomes a
        RuntimeError that starts with `failing`."""
        drv = self._drv
        pop = self._enter()
        try:
            yield
        except drv.Error as e:
            raise RuntimeError(f"{failing}: {e}") from None
        finally:
            if pop:
                drv.Context.pop()

    def _free(self, allocation) -> None:
        """Free a DeviceAllocation with the context current: pycuda alone can free it only in
        the thread that made the context object or where the context is current."""
        try:
            pop = self._enter()
        except Exception:           # a dead context, or the interpreter shutting down
            pop = False
        try:
            allocation.free()
        except Exception:           # as pycuda's own clean-up: a dead context frees nothing
            pass
        finally:
            if pop:
                self._drv.Context.pop()

    def synchronize(self) -> None:
        """Wait for all work in the context (every stream)."""
        pop = self._enter()
        try:
            self._drv.Context.synchronize()
        finally:
            if pop:
                self._drv.Context.pop()

    # -- compiling and launching ----------------------------------------------------------

    def compile(self, lowering: CudaLowering) -> PycudaModule:
        """Compile `lowering.source` with nvcc for this GPU (`cubin`) and prepare every launched
        kernel. nvcc's errors become a RuntimeError carrying its message."""
        drv = self._drv
        pop = self._enter()
        try:
            try:
                module = drv.module_from_buffer(self.cubin(lowering.source))
            except drv.CompileError as e:
                raise RuntimeError(f"nvcc could not compile the generated CUDA C for "
                                   f"{self.arch}:\n{e}") from None
            except drv.Error as e:
                raise RuntimeError(f"loading the compiled CUDA module failed: {e}") from None
            functions = {}
            for launch in lowering.launches:
                if launch.kernel in functions:
                    continue
                try:
                    function = module.get_function(launch.kernel)
                except drv.Error as e:
                    raise RuntimeError(f"the compiled module has no kernel "
                                       f"{launch.kernel!r}: {e}") from None
                function.prepare("P" * len(launch.params))
                functions[launch.kernel] = function
        finally:
            if pop:
                drv.Context.pop()
        return PycudaModule(module, functions)

    def cubin(self, source: str) -> bytes:
        """The cubin of `source` for this GPU: an authenticated entry of the compiled code
        cache (docs/cache.md), else compiled by nvcc and stored there. pycuda's own cache, which
        loads whatever file it finds in its folder, is never used."""
        from pycuda.compiler import compile as nvcc_compile
        key = {"ir": source, "artefact": "cuda cubin", "arch": str(self.arch),
               "options": " ".join(NVCC_OPTIONS), "nvcc": _nvcc_version()}
        cache = DiskCache.default()
        cubin = cache.load(key) if cache is not None else None
        if cubin is None:
            cubin = nvcc_compile(source, no_extern_c=True, arch=self.arch,
                                 options=list(NVCC_OPTIONS), cache_dir=False)
            if cache is not None:
                cache.store(key, cubin)
        return cubin

    def blocks(self, launch: Launch) -> int:
        """The number of blocks `launch` runs with: `launch.grid`, or for a grid-stride kernel
        no more than fill the GPU once (every multiprocessor with as many blocks as its
        threads allow)."""
        if not launch.grid_stride:
            return launch.grid
        resident = self._resident.get(launch.block)
        if resident is None:
            per_sm = max(1, self.threads_per_multiprocessor // max(launch.block, 1))
            resident = self._resident[launch.block] = self.multiprocessors * per_sm
        return min(launch.grid, resident)

    def launch(self, module: PycudaModule, launch: Launch, pointers: list[int]) -> None:
        """Launch `launch.kernel` on the default stream (asynchronous)."""
        grid = self.blocks(launch)
        if grid <= 0 or launch.block <= 0:
            return                          # nothing to do: an empty iteration space
        function = module.functions[launch.kernel]
        with self._driver(f"launching {launch.kernel} ({grid} blocks of {launch.block} "
                          f"threads) failed"):
            function.prepared_async_call((grid, 1), (launch.block, 1, 1), None, *pointers)

    # -- memory ---------------------------------------------------------------------------

    def alloc(self, nbytes: int) -> tuple[int, object]:
        """(address, DeviceMemory) of `nbytes` uninitialised bytes (one byte when 0, so that
        every buffer has a distinct valid address)."""
        pop = self._enter()
        try:
            a = self._drv.mem_alloc(max(int(nbytes), 1))
        finally:
            if pop:
                self._drv.Context.pop()
        return int(a), DeviceMemory(self, a)

    def _allocate(self):
        """The allocator of per-call memory (inputs copied in, results): a pool, so that a
        training loop does not pay cudaMalloc and a synchronising cudaFree every step (freed
        blocks return to the pool, which needs no context: safe in any thread)."""
        if self._pool is None:
            from pycuda.tools import DeviceMemoryPool
            self._pool = DeviceMemoryPool()
        return self._pool.allocate

    def upload(self, array: np.ndarray) -> tuple[int, object]:
        """(address, pooled allocation) of a device copy of `array` (made contiguous)."""
        array = np.ascontiguousarray(array)
        if array.nbytes == 0:
            return self.alloc(0)
        pop = self._enter()
        try:
            a = self._allocate()(array.nbytes)
            self._drv.memcpy_htod(a, array)         # from the array's own buffer: no bytes copy
        finally:
            if pop:
                self._drv.Context.pop()
        return int(a), a

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, object]:
        """(address, GPUArray) of a new result, from the memory pool; the address is 0 for an
        empty array."""
        pop = self._enter()
        try:
            a = self._gpuarray.empty(tuple(shape), np.dtype(dtype), allocator=self._allocate())
        finally:
            if pop:
                self._drv.Context.pop()
        return (int(a.gpudata) if a.gpudata is not None else 0), a

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Device-to-device copy of `nbytes` (ordered after the default stream's work)."""
        if nbytes <= 0:
            return
        pop = self._enter()
        try:
            self._drv.memcpy_dtod(dst, src, int(nbytes))
        finally:
            if pop:
                self._drv.Context.pop()

    def zero(self, ptr: int, nbytes: int) -> None:
        """Set `nbytes` at `ptr` to zero bytes."""
        if nbytes <= 0:
            return
        pop = self._enter()
        try:
            self._drv.memset_d8(ptr, 0, int(nbytes))
        finally:
            if pop:
                self._drv.Context.pop()

    def to_host(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A host copy of device memory, after the work launched before on the default stream
        (a kernel's asynchronous failure surfaces here as a RuntimeError)."""
        out = np.empty(shape, dtype)
        if out.nbytes == 0:
            return out
        with self._driver("copying a result to the host failed (an earlier kernel may have "
                          "failed)"):
            self._drv.memcpy_dtoh(out, ptr)
        return out

    # -- arguments ------------------------------------------------------------------------

    def argument(self, x, shape: tuple[int, ...], dtype: np.dtype,
                 where: str) -> tuple[int, object]:
        """(address, handle) of a user's argument of type `dtype[shape]`:

        - a pycuda GPUArray, C-contiguous: used in place;
        - any object with `__cuda_array_interface__` (version 2 or later; CuPy, PyTorch,
          numba, JAX): used in place; its strides must be None or C-contiguous, and the work
          that produces it on its own stream must be complete (see the module's docstring);
        - a NumPy array or number: copied to the device (the handle keeps the copy alive).

        A wrong shape or dtype, a non-contiguous device array, or any other object raises
        TypeError naming `where`."""
        dtype = np.dtype(dtype)
        shape = tuple(shape)
        want = _type_text(shape, dtype)
        if isinstance(x, (np.ndarray, np.generic)):
            if x.shape != shape or x.dtype != dtype:
                raise TypeError(f"{where} is {_type_text(x.shape, x.dtype)}; the compiled "
                                f"program expects {want}")
            return self.upload(np.asarray(x))
        if isinstance(x, (bool, int, float)):
            if shape != ():
                raise TypeError(f"{where} is a Python {type(x).__name__}; the compiled "
                                f"program expects {want}")
            try:
                value = np.asarray(x, dtype)
            except (OverflowError, ValueError):
                value = None
            if value is None or not (value.item() == x or (np.isnan(x) and np.isnan(value))):
                raise TypeError(f"{where}: the number {x!r} is not exactly representable as "
                                f"{dtype.name}")
            return self.upload(value)
        if isinstance(x, self._gpuarray.GPUArray):
            if x.shape != shape or x.dtype != dtype:
                raise TypeError(f"{where} is a GPUArray {_type_text(x.shape, x.dtype)}; the "
                                f"compiled program expects {want}")
            if not x.flags.c_contiguous:
                raise TypeError(f"{where} is a non-contiguous GPUArray; pass a C-contiguous "
                                "copy")
            return (int(x.gpudata) if x.gpudata is not None else 0), x
        iface = getattr(x, "__cuda_array_interface__", None)
        if iface is None:
            raise TypeError(f"{where} is a {type(x).__module__}.{type(x).__qualname__}; "
                            f"expected {want} as a NumPy array, a pycuda GPUArray or an object "
                            "with __cuda_array_interface__")
        return self._interface_argument(x, iface, shape, dtype, where)

    @staticmethod
    def _interface_argument(x, iface: dict, shape, dtype: np.dtype,
                            where: str) -> tuple[int, object]:
        """The pointer of a `__cuda_array_interface__` exporter, after checking it."""
        kind = f"{type(x).__module__}.{type(x).__qualname__}"
        version = iface.get("version", 0)
        if version < 2:
            raise TypeError(f"{where} ({kind}) exports __cuda_array_interface__ version "
                            f"{version}; version 2 or later is needed")
        got_shape = tuple(int(n) for n in iface["shape"])
        typestr = iface["typestr"]
        try:
            got_dtype = np.dtype(typestr)
        except TypeError:
            got_dtype = None
        if got_shape != shape or typestr != dtype.str:
            # The typestr itself where the dtype's name would hide the difference ('>f4').
            got = (_type_text(got_shape, got_dtype)
                   if got_dtype is not None
                   and (typestr == dtype.str or got_dtype.name != dtype.name)
                   else f"{typestr}[{','.join(map(str, got_shape))}]")
            raise TypeError(f"{where} ({kind}) is {got}; the compiled program expects "
                            f"{_type_text(shape, dtype)}")
        if iface.get("mask") is not None:
            raise TypeError(f"{where} ({kind}) is a masked device array; masks are not "
                            "supported")
        if not _c_contiguous(got_shape, iface.get("strides"), dtype.itemsize):
            raise TypeError(f"{where} ({kind}) is not C-contiguous (strides "
                            f"{tuple(iface['strides'])}); make it contiguous first, e.g. "
                            "x.contiguous() (PyTorch) or cupy.ascontiguousarray(x)")
        ptr = iface["data"][0]
        return (int(ptr) if ptr else 0), x
