"""A CUDA device emulated on the host: the generated CUDA C compiled by g++, memory in NumPy.

`EmulatedDevice` implements runtime/cuda.py's `Device` protocol without a GPU. A module's CUDA C
(`CudaLowering.source`) is compiled as C++ with the emulation header `cuda_emulation.h`
force-included (and `cuda_emulation/` on the include path, for `#include <mma.h>`): blocks run
one after another, the threads of a block are real threads with barriers (see the header).
Device memory is host memory: an address is the address of a NumPy array's data, and the
handle that keeps it alive is the array.

Compiled modules are cached in the process (by the SHA-256 of the headers, the module text, the
flags and the compiler's version) and on disk, as entries of the compiled code cache
(`DiskCache.default()`, authenticated as the CPU's object code are: docs/cache.md), and so is a
precompiled header (it halves the compile time of a small module). A library or header is only
ever loaded from this process's private temporary folder, written there from a verified entry
or by the compiler itself: nothing found in a shared folder is loaded or included unchecked.

With `sanitize="address"` (or TRACEJIT_EMULATOR_SANITIZE=address) the kernels are built with
AddressSanitizer, so that a kernel reading or writing outside a buffer stops the process with a
report instead of corrupting memory. The ASan runtime must then be loaded before Python starts:
`LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 python ...`.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np

from tracejit.codegen.cuda import CudaLowering, Launch, Param
from tracejit import settings
from tracejit.files import atomic_write, temp_beside
from tracejit.runtime.cache import DiskCache

HEADER = Path(__file__).with_name("cuda_emulation.h")
MMA_DIR = Path(__file__).with_name("cuda_emulation")

# The default flags. -O0: the test suite compiles thousands of small modules, and at -O0 a small
# module (the header precompiled) compiles in about 0.1 s against 0.15 s at -O1, while its run
# time is dominated by the threads and barriers, not the code (EmulatedDevice(opt_level=1) for
# arithmetic-heavy kernels: they run 2-3 times faster). -fno-strict-aliasing: CUDA code
# reinterprets pointers (float4 loads, bit casts).
FLAGS = ("-std=c++17", "-O0", "-pipe", "-fPIC", "-pthread", "-fno-strict-aliasing",
         "-fvisibility=hidden", "-fno-exceptions", "-fno-rtti")

ALIGNMENT = 256   # of every allocation, as cudaMalloc's

SANITIZE_ENV = "TRACEJIT_EMULATOR_SANITIZE"
# The sanitizers a module can be built with: name -> extra compiler flags.
SANITIZERS = {"address": ("-fsanitize=address", "-fno-omit-frame-pointer")}

# tj_emu::launch's return codes (cuda_emulation.h).
_LAUNCH_ERRORS = {
    1: "the block size must be between 1 and 1024 threads",
    2: "the emulator could not create the block's threads (nothing ran)",
    3: "the kernel deadlocked: the threads of a block wait at barriers that cannot complete "
       "(a __syncthreads or warp operation that some thread skips without returning)",
}

# Kernels keep their __shared__ arrays as function-local statics, and a module may be shared by
# several devices (the in-process cache): launches run one at a time in the process.
# Reentrant: a module collected while its thread launches another one unloads under it.
_LAUNCH_LOCK = threading.RLock()
_COMPILE_LOCK = threading.Lock()
# The modules in use, by key: one is unloaded once no program holds it any more.
_MODULES: "weakref.WeakValueDictionary[str, EmulatedModule]" = weakref.WeakValueDictionary()
_PROCESS_DIR: list[Path] = []   # this process's private folder (mode 0700), once made
_HEADERS: dict[str, Path] = {}  # precompiled header key -> the header to force-include


_RUNNING: list[subprocess.Popen] = []        # compilers started and not yet reaped


def _reap(process: subprocess.Popen) -> str:
    """Wait for a compiler process (once) and return its error output."""
    if not hasattr(process, "tj_stderr"):
        _, process.tj_stderr = process.communicate()
        try:
            _RUNNING.remove(process)
        except ValueError:          # reaped by another thread meanwhile
            pass
    return process.tj_stderr


class EmulatedModule:
    """A compiled module: the shared library and one launcher per kernel name. A module whose
    compiler is still running (`finish` given) loads when first launched, so the compiler
    runs while the caller does other work. The library is unloaded by `close()`, and when the
    module is collected."""

    def __init__(self, path: Path, kernels: list[str], finish=None):
        self.path = path
        self.kernels = kernels
        self.closed = False
        self._finish = finish
        self._launchers: dict | None = None
        self._lock = threading.Lock()
        if finish is None:
            self.launchers        # load now: a broken library is found at once

    def close(self) -> None:
        """Unload the library, once no launch runs (none of its code runs after); launching
        it later raises RuntimeError. Closing again does nothing."""
        self.closed = True
        with self._lock:
            library, self._launchers = self.__dict__.pop("library", None), None
        if library is not None:
            with _LAUNCH_LOCK:
                _ctypes.dlclose(library._handle)

    def __del__(self):
        if not sys.is_finalizing():
            self.close()

    @property
    def launchers(self) -> dict:
        if self._launchers is None:
            with self._lock:
                if self.closed:
                    raise RuntimeError(f"{self!r} was closed")
                if self._launchers is None:
                    if self._finish is not None:
                        self._finish()
                    self.library = ctypes.CDLL(str(self.path))
                    launchers = {}
                    for kernel in self.kernels:
                        function = getattr(self.library, f"tj_launch_{kernel}")
                        function.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p]
                        function.restype = ctypes.c_int
                        launchers[kernel] = function
                    self._launchers = launchers
        return self._launchers

    def __repr__(self) -> str:
        return f"EmulatedModule({sorted(self.kernels)}, {str(self.path)!r})"


def cast_type(ctype: str) -> str:
    """A parameter's C type as written in a cast: `__restrict__` removed."""
    return " ".join(re.sub(r"\b__restrict(__)?\b", " ", ctype).split())


def wrapper_source(lowering) -> str:
    """The C++ text compiled for `lowering`: its CUDA C source, then one launcher per distinct
    kernel of its launches, `extern "C" int tj_launch_<kernel>(unsigned grid, unsigned block,
    void* const* p)`, which passes p[i] to the kernel's i-th parameter."""
    params: dict[str, tuple[Param, ...]] = {}
    for launch in lowering.launches:
        seen = params.setdefault(launch.kernel, launch.params)
        if [p.ctype for p in seen] != [p.ctype for p in launch.params]:
            raise ValueError(f"kernel {launch.kernel} is launched with different parameter "
                             f"types: {[p.ctype for p in seen]} and "
                             f"{[p.ctype for p in launch.params]}")
    parts = [lowering.source.rstrip(), "", "// host launchers of the emulated kernels"]
    for kernel, kernel_params in params.items():
        if not re.fullmatch(r"[A-Za-z_]\w*", kernel):
            raise ValueError(f"kernel name {kernel!r} is not a C identifier")
        args = ", ".join(f"({cast_type(p.ctype)}) p[{i}]" for i, p in enumerate(kernel_params))
        parts.append(
            f'extern "C" __attribute__((visibility("default"))) int tj_launch_{kernel}('
            f"unsigned grid, unsigned block, void* const* p) {{\n"
            f"    (void)p;\n"
            f"    return tj_emu::launch(grid, block, [p] {{ {kernel}({args}); }});\n"
            f"}}")
    return "\n".join(parts) + "\n"


@functools.cache
def _compiler_version(compiler: str) -> str:
    """The first line of `compiler --version`."""
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[0] if done.stdout else ""


def _digest(*texts: str) -> str:
    """SHA-256 of the texts, each length-prefixed (so that the encoding is injective)."""
    h = hashlib.sha256()
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        h.update(b"%d:" % len(raw))
        h.update(raw)
    return h.hexdigest()


def _disk_key(kind: str, key: str) -> dict[str, str]:
    """The key of an artefact in the compiled code cache: `kind` and its digest."""
    return {"ir": key, "artefact": f"cuda-emulator {kind}"}


def _process_folder() -> Path:
    """This process's private temporary folder (mkdtemp: mode 0700; removed at exit), where
    every library is loaded from and every precompiled header is read from."""
    if not _PROCESS_DIR:
        folder = Path(tempfile.mkdtemp(prefix="tracejit-cuda-emulator-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _PROCESS_DIR.append(folder)
    return _PROCESS_DIR[0]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all."""
    with atomic_write(path) as file:
        file.write(data)


class EmulatedDevice:
    """A CUDA device emulated on the host (runtime/cuda.py's `Device`).

    `compiler`: the host C++ compiler (g++). `opt_level`: its -O level (0 compiles fastest).
    `grid_stride_blocks`: if given, a `grid_stride` launch runs min(its grid, this many) blocks
    (such a kernel must give the same result for any grid up to its own); by default every
    launch runs its full grid. `sanitize`: "address" builds the modules with AddressSanitizer,
    "" without; None (the default) reads TRACEJIT_EMULATOR_SANITIZE (unset: "").
    """

    name = "cuda-emulator"

    def __init__(self, compiler: str = "g++", opt_level: int = 0,
                 grid_stride_blocks: int | None = None, sanitize: str | None = None):
        if grid_stride_blocks is not None and grid_stride_blocks < 1:
            raise ValueError(f"grid_stride_blocks must be at least 1, got {grid_stride_blocks}")
        if opt_level not in (0, 1, 2, 3):
            raise ValueError(f"opt_level must be 0, 1, 2 or 3, got {opt_level!r}")
        where = "sanitize"
        if sanitize is None:
            sanitize, where = settings.choice(SANITIZE_ENV, tuple(SANITIZERS)), SANITIZE_ENV
        if sanitize and sanitize not in SANITIZERS:
            raise ValueError(f"{where}={sanitize!r}: expected one of {sorted(SANITIZERS)} or "
                             f"nothing")
        self.compiler = compiler
        self.sanitize = sanitize
        # The flags are part of every cache key: a sanitized module is a module of its own.
        self.flags = tuple(f"-O{opt_level}" if flag.startswith("-O") else flag
                           for flag in FLAGS) + SANITIZERS.get(sanitize, ())
        self.grid_stride_blocks = grid_stride_blocks

    _default: "EmulatedDevice | None" = None
    _default_lock = threading.Lock()

    @classmethod
    def get(cls) -> "EmulatedDevice":
        """The process's emulated device (`backend="cuda-emulator"`): -O0, and grid-stride
        kernels run 2 blocks, as on a small GPU (their results do not depend on the grid)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls(grid_stride_blocks=2)
            return cls._default

    # -- compiling ----------------------------------------------------------------------------

    def _compiler_path(self) -> str:
        path = shutil.which(self.compiler)
        if path is None:
            raise RuntimeError(f"the CUDA emulator needs a host C++ compiler: {self.compiler!r} "
                               f"is not on PATH (install g++, or pass compiler=...)")
        return path

    def compile(self, lowering: CudaLowering) -> EmulatedModule:
        """Compile `lowering.source` with its launchers for the host and load it (cached)."""
        compiler = self._compiler_path()
        if self.sanitize == "address" and not asan_loaded():
            raise RuntimeError(
                f"the CUDA emulator builds with AddressSanitizer ({SANITIZE_ENV}=address), "
                f"whose runtime must be loaded before Python starts: run it with "
                f"LD_PRELOAD=$({Path(compiler).name} -print-file-name=libasan.so) "
                f"ASAN_OPTIONS=detect_leaks=0")
        source = wrapper_source(lowering)
        kernels = list(dict.fromkeys(launch.kernel for launch in lowering.launches))
        key = self.key(compiler, source)
        with _COMPILE_LOCK:
            module = _MODULES.get(key)
            if module is None or module.closed:
                module = self._build(compiler, source, kernels, key, _compiler_version(compiler))
                _MODULES[key] = module
        return module

    def key(self, compiler: str, source: str) -> str:
        """The cache key of a module: the headers, its text, the flags (the sanitizer's
        included), the compiler's version and the machine."""
        headers = HEADER.read_text() + "\0" + (MMA_DIR / "mma.h").read_text()
        return _digest(headers, source, " ".join(self.flags), _compiler_version(compiler),
                       platform.machine())

    def _build(self, compiler: str, source: str, kernels: list[str], key: str,
               version: str) -> EmulatedModule:
        folder = _process_folder()
        library = folder / f"{key}.so"
        cache = DiskCache.default()
        cached = cache.load(_disk_key("module", key)) if cache is not None else None
        if cached is not None:
            try:
                _write_atomically(library, cached)      # the verified bytes, and only they
                return EmulatedModule(library, kernels)
            except (OSError, AttributeError):
                library.unlink(missing_ok=True)   # unloadable: build it again
        work = Path(tempfile.mkdtemp(prefix="tracejit-cuda-emulator-src-"))
        cpp = work / "module.cpp"
        cpp.write_text(source)
        header = _precompiled_header(compiler, self.flags, cache, version)
        running = self._start_compiler(compiler, self.flags, header, cpp, library)

        def finish() -> None:
            error = self._wait_compiler(*running)
            if error is not None and header != HEADER:
                # A precompiled header the compiler rejects must not hide a good module.
                error = self._wait_compiler(*self._start_compiler(compiler, self.flags, HEADER,
                                                                  cpp, library))
            if error is not None:
                raise RuntimeError(f"{Path(compiler).name} could not compile the emulated CUDA "
                                   f"module (source kept at {cpp}):\n{error}")
            shutil.rmtree(work, ignore_errors=True)
            if cache is not None:
                cache.store(_disk_key("module", key), library.read_bytes())

        return EmulatedModule(library, kernels, finish)

    @staticmethod
    def _start_compiler(compiler: str, flags: tuple[str, ...], header: Path, cpp: Path,
                        library: Path):
        """Start compiling `cpp` into a temporary file next to `library`."""
        temp = Path(temp_beside(library))     # the compiler's output, replaced onto it
        command = [compiler, *flags, "-shared", "-include", str(header), "-I", str(MMA_DIR),
                   str(cpp), "-o", str(temp)]
        # Compilers that finished for modules nobody launched (yet) are reaped here, so that
        # neither processes nor pipes pile up.
        for done in [p for p in _RUNNING if p.poll() is not None]:
            _reap(done)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        _RUNNING.append(process)
        return process, command, temp, library

    @staticmethod
    def _wait_compiler(process, command, temp: Path, library: Path) -> str | None:
        """Wait for the compiler; move its output onto `library` (atomically). None, or the
        compiler's message."""
        stderr = _reap(process)
        if process.returncode != 0:
            temp.unlink(missing_ok=True)
            return f"$ {' '.join(command)}\n{stderr.strip()}"
        os.replace(temp, library)
        return None

    # -- launching ----------------------------------------------------------------------------

    def launch(self, module: EmulatedModule, launch: Launch, pointers: list[int]) -> None:
        """Run `launch.kernel` on these parameter addresses; returns when it has finished."""
        if len(pointers) != len(launch.params):
            raise ValueError(f"kernel {launch.kernel} takes {len(launch.params)} parameters, "
                             f"got {len(pointers)} pointers")
        function = module.launchers[launch.kernel]
        grid = launch.grid
        if launch.grid_stride and self.grid_stride_blocks is not None:
            grid = min(grid, self.grid_stride_blocks)
        table = (ctypes.c_void_p * max(len(pointers), 1))(*pointers)
        with _LAUNCH_LOCK:
            if module.closed:           # unloaded since `function` was fetched
                raise RuntimeError(f"{module!r} was closed")
            rc = function(grid, launch.block, table)
        if rc != 0:
            problem = _LAUNCH_ERRORS.get(rc, f"error code {rc}")
            raise RuntimeError(f"emulated launch of {launch.kernel} (grid {grid}, block "
                               f"{launch.block}) failed: {problem}")

    # -- memory -------------------------------------------------------------------------------

    def alloc(self, nbytes: int) -> tuple[int, np.ndarray]:
        """(address, handle) of `nbytes` uninitialised bytes, 256-byte aligned."""
        buffer = _aligned(nbytes)
        return buffer.ctypes.data, buffer

    def upload(self, array: np.ndarray) -> tuple[int, np.ndarray]:
        """(address, handle) of a new aligned copy of `array`."""
        array = np.ascontiguousarray(array)
        buffer = _aligned(array.nbytes)
        buffer[:] = array.reshape(-1).view(np.uint8)
        return buffer.ctypes.data, buffer

    def argument(self, x, shape: tuple[int, ...], dtype: np.dtype,
                 where: str) -> tuple[int, np.ndarray]:
        """(address, handle) of a user's argument: an array (or NumPy scalar) of exactly this
        dtype and shape, or a Python number of shape () that the dtype holds: exactly for an
        integer or bool dtype, to the nearest for a floating one (but a finite number must not
        overflow to infinity). A contiguous, 256-byte aligned array is used in place; any other
        is copied. Anything else raises TypeError naming `where`."""
        dtype, shape = np.dtype(dtype), tuple(shape)
        if isinstance(x, (np.ndarray, np.generic)):
            if x.dtype != dtype or x.shape != shape:
                raise TypeError(f"{where}: expected {dtype} of shape {shape}, got {x.dtype} of "
                                f"shape {x.shape}")
            array = np.asarray(x)
        elif isinstance(x, (bool, int, float)):
            if shape != ():
                raise TypeError(f"{where}: expected {dtype} of shape {shape}, got the number "
                                f"{x!r}")
            try:
                with np.errstate(over="ignore"):
                    array = np.asarray(x, dtype=dtype)
            except (OverflowError, ValueError):
                array = None
            if array is None:
                holds = False
            elif dtype.kind == "f":
                holds = bool(np.isfinite(array)) or not np.isfinite(x)
            else:
                holds = array.item() == x
            if not holds:
                raise TypeError(f"{where}: the number {x!r} is not exactly representable as "
                                f"{dtype}")
        else:
            raise TypeError(f"{where}: expected {dtype} of shape {shape}, got a "
                            f"{type(x).__name__}")
        if array.flags.c_contiguous and array.ctypes.data % ALIGNMENT == 0:
            return array.ctypes.data, array
        return self.upload(array)

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, np.ndarray]:
        """(address, the new array itself) of an uninitialised result array."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        buffer = _aligned(count * dtype.itemsize)
        array = buffer.view(dtype)[:count].reshape(shape)
        return array.ctypes.data, array

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Copy `nbytes` from `src` to `dst`."""
        if nbytes:
            ctypes.memmove(dst, src, nbytes)

    def zero(self, ptr: int, nbytes: int) -> None:
        """Set `nbytes` at `ptr` to zero."""
        if nbytes:
            ctypes.memset(ptr, 0, nbytes)

    def to_host(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A new array holding a copy of the memory at `ptr`."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes == 0:
            return np.empty(shape, dtype)
        raw = np.frombuffer((ctypes.c_char * nbytes).from_address(ptr), dtype=np.uint8)
        return raw.copy().view(dtype).reshape(shape)


def asan_loaded() -> bool:
    """Whether the AddressSanitizer runtime is loaded in this process (LD_PRELOAD): a sanitized
    module loaded without it aborts the process."""
    return hasattr(ctypes.CDLL(None), "__asan_init")


@functools.cache
def _asan_regions():
    """(poison, unpoison) of the loaded AddressSanitizer runtime (each takes an address and a
    byte count), or None without it."""
    if not asan_loaded():
        return None
    runtime = ctypes.CDLL(None)
    functions = (runtime.__asan_poison_memory_region, runtime.__asan_unpoison_memory_region)
    for f in functions:
        f.argtypes, f.restype = [ctypes.c_void_p, ctypes.c_size_t], None
    return functions


def _aligned(nbytes: int) -> np.ndarray:
    """A uint8 array of `nbytes` whose data address is a multiple of ALIGNMENT (the array keeps
    its larger base alive). Under AddressSanitizer the base's bytes around the array are
    unaddressable while it lives, so that a kernel touching them is reported."""
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    regions = _asan_regions()
    if regions is not None:
        poison, unpoison = regions
        base, end = raw.ctypes.data, raw.ctypes.data + raw.nbytes
        poison(base, start)
        poison(base + start + nbytes, end - (base + start + nbytes))
        # Addressable again when freed: NumPy may hand the memory out again without malloc.
        weakref.finalize(raw, unpoison, base, raw.nbytes)
    # NumPy gives an empty slice its base's address: slice one byte, then shorten that.
    return raw[start:start + max(nbytes, 1)][:nbytes]


def _precompiled_header(compiler: str, flags: tuple[str, ...], cache: DiskCache | None,
                        version: str) -> Path:
    """The header to force-include: a copy of cuda_emulation.h next to its precompiled form in
    this process's folder (once per header text, flags and compiler; the compiler uses it only
    under the same flags), from a verified entry of `cache` or built and stored there; or the
    header itself if the precompiled form cannot be built. Called under _COMPILE_LOCK."""
    text = HEADER.read_text()
    key = _digest(text, " ".join(flags), version)
    if key in _HEADERS:
        return _HEADERS[key]
    pch_folder = _process_folder() / f"pch-{key[:24]}"
    copy = pch_folder / HEADER.name
    gch = pch_folder / (HEADER.name + ".gch")
    cached = cache.load(_disk_key("precompiled header", key)) if cache is not None else None
    try:
        pch_folder.mkdir(exist_ok=True)
        _write_atomically(copy, text.encode())
        if cached is not None:
            _write_atomically(gch, cached)
        else:
            done = subprocess.run([compiler, *flags, "-x", "c++-header", str(copy), "-o",
                                   str(gch)], check=False, capture_output=True, text=True)
            if done.returncode != 0:
                gch.unlink(missing_ok=True)
                copy = HEADER
            elif cache is not None:
                cache.store(_disk_key("precompiled header", key), gch.read_bytes())
    except OSError:
        copy = HEADER
    _HEADERS[key] = copy
    return copy
