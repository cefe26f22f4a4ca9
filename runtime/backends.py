"""The backends: one record each, read by the API, the command line, the tests and benchmarks.

    cpu            Program → LLVM IR → host machine code (runtime/cpu.py)
    cuda           Program → CUDA C → a GPU through pycuda (runtime/cuda.py, cuda_pycuda.py)
    cuda-emulator  the same CUDA C compiled for the host by g++ (runtime/cuda_emulator.py)
    interpret      the kernel interpreter: no native code

`get(name)` is the record of a backend, raising the error `jit(..., backend=name)` raises for
a name that is not one. Every compiler is imported when first used: importing this module
imports neither llvmlite's engine nor pycuda.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tracejit.compiler import Options
    from tracejit.kernels import Program


def _usable() -> str | None:
    return None


@dataclass(frozen=True)
class Backend:
    """What tracejit knows about one backend.

    `compiler(options)` makes the function compiling a Program into the backend's native
    program (callable on the flat arguments, with a buffer `plan` and `stages()`); None for a
    backend that runs the kernel interpreter. `device`: arguments may be device arrays, used
    in place, and results stay on the device between calls. `donates`: `donate_argnums` is
    supported. `stages`: the stage names the native program adds to `Jitted.dump`, in order.
    `emulates`: the backend whose generated code this one runs on the host (for testing
    without its hardware: slow to compile, never benchmarked unless asked for).
    `why_unavailable()`: None where the backend can run here, else why not.
    """

    name: str
    compiler: Callable[[Options], Callable[[Program], Any]] | None
    device: bool = False
    donates: bool = True
    stages: tuple[str, ...] = ()
    emulates: str | None = None
    why_unavailable: Callable[[], str | None] = _usable


def _cpu_program(options: Options):
    """The cpu backend's compiler: Program → CpuProgram (LLVM, or object code from the disk
    cache)."""
    from tracejit.runtime.cache import DiskCache
    from tracejit.runtime.cpu import CpuProgram
    return lambda program: CpuProgram(program, DiskCache.default())


def _cuda_program(options: Options):
    """The cuda backend's compiler: Program → CudaProgram on the GPU (pycuda)."""
    from tracejit.runtime.cuda import CudaProgram
    from tracejit.runtime.cuda_pycuda import PycudaDevice
    device = PycudaDevice.get()
    return lambda program: CudaProgram(program, device, options.allow_tf32)


def _emulated_cuda_program(options: Options):
    """The cuda-emulator backend's compiler: Program → CudaProgram on the host emulation."""
    from tracejit.runtime.cuda import CudaProgram
    from tracejit.runtime.cuda_emulator import EmulatedDevice
    device = EmulatedDevice.get()
    return lambda program: CudaProgram(program, device, options.allow_tf32)


def _gpu_unavailable() -> str | None:
    """Why backend "cuda" cannot run here (pycuda, the driver or a GPU not usable), in the
    words of `CudaUnavailableError`; None when it can."""
    try:
        from tracejit.runtime.cuda_pycuda import CudaUnavailableError, PycudaDevice
    except ImportError as exc:          # the GPU runtime itself cannot be imported
        return f"the cuda runtime cannot be imported ({type(exc).__name__}: {exc})"
    try:
        PycudaDevice.get()
    except CudaUnavailableError as exc:
        return str(exc)
    return None


def _emulator_unavailable() -> str | None:
    """Why backend "cuda-emulator" cannot run here (no host C++ compiler); None when it can."""
    from tracejit.runtime.cuda_emulator import EmulatedDevice
    try:
        EmulatedDevice.get()._compiler_path()
    except RuntimeError as exc:
        return str(exc)
    return None


_RECORDS = (
    Backend("cpu", _cpu_program, stages=("llvm", "llvm optimized")),
    Backend("cuda", _cuda_program, device=True, donates=False, stages=("cuda",),
            why_unavailable=_gpu_unavailable),
    Backend("cuda-emulator", _emulated_cuda_program, stages=("cuda",), emulates="cuda",
            why_unavailable=_emulator_unavailable),
    Backend("interpret", None),
)

BACKENDS: dict[str, Backend] = {b.name: b for b in _RECORDS}
"""Every backend by name, in the order of `NAMES`."""

NAMES: tuple[str, ...] = tuple(BACKENDS)
"""The backends' names: the choices of every `--backend` option."""

PLANNED: tuple[str, ...] = ()
"""Backends named but not implemented yet: `get` says so instead of "unknown"."""


def get(name: str) -> Backend:
    """The record of backend `name`. Raises NotImplementedError for a planned backend and
    ValueError for any other name that is not a backend."""
    if name not in NAMES:
        if name in PLANNED:
            raise NotImplementedError(f"backend {name!r} is not implemented yet; available: "
                                      f"{', '.join(NAMES)}")
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(NAMES)}")
    return BACKENDS[name]
