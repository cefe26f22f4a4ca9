"""The CUDA runtime: run a Program's generated CUDA C on a device.

`CudaProgram(program, device, allow_tf32)` lowers the Program once (`codegen.cuda`), compiles
the module through the device, and on every call resolves each launch's parameters (argument
table, arena offsets, the status words) to device addresses and launches the kernels in order.
What a device is, is a small protocol (`Device` below) with two implementations:

- `PycudaDevice` (runtime/cuda_pycuda.py): a real GPU through pycuda. Arguments may be NumPy
  arrays (copied in), pycuda `GPUArray`s or any object with `__cuda_array_interface__` (no
  copy); results are `GPUArray`s that stay on the device.
- `EmulatedDevice` (runtime/cuda_emulator.py): the same CUDA C compiled for the host with an
  emulation header, memory in NumPy arrays; for testing and studying without a GPU.

Rank-0 results come back as NumPy scalars on every device (one small copy to the host).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

import numpy as np

from tracejit.ir import Literal
from tracejit.kernels import Program

from tracejit.codegen.cuda import CudaLowering, Launch
from tracejit.codegen.status import STATUS_WORDS, sites, status_error


class Device(Protocol):
    """What CudaProgram needs of a device. Pointers are ints (device addresses); a `handle`
    is whatever object keeps that memory alive."""

    name: str

    def compile(self, lowering: CudaLowering) -> object:
        """A loaded module holding every kernel of `lowering.source`."""

    def launch(self, module: object, launch: Launch, pointers: list[int]) -> None:
        """Launch `launch.kernel` with these parameter values (one address per
        `launch.params` entry), `launch.block` threads a block; `launch.grid` blocks, or for a
        `launch.grid_stride` kernel any number of blocks up to that (the device's choice)."""

    def alloc(self, nbytes: int) -> tuple[int, object]:
        """(address, handle) of `nbytes` of uninitialised device memory (at least 256-byte
        aligned; nbytes may be 0)."""

    def upload(self, array: np.ndarray) -> tuple[int, object]:
        """(address, handle) of a new device copy of a contiguous host array."""

    def argument(self, x, shape: tuple[int, ...], dtype: np.dtype,
                 where: str) -> tuple[int, object]:
        """(address, handle) of a user's argument of this shape and dtype: device arrays used
        in place, host arrays copied in; anything else raises TypeError naming `where`."""

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, object]:
        """(address, array returned to the user) of a new result array."""

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Device-to-device copy."""

    def zero(self, ptr: int, nbytes: int) -> None:
        """Set device memory to zero bytes."""

    def to_host(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A host copy of device memory (waits for the work launched before)."""


class CudaProgram:
    """A Program compiled for a CUDA device (or its emulation): call it on the flat argument
    leaves; returns the results as the device's arrays (rank 0: NumPy 0-d arrays).

    The arena (intermediates and scratch, laid out by the buffer plan) and the status words
    are allocated once per program and reused by every call; calls are serialised by a lock,
    since they share them."""

    def __init__(self, program: Program, device: Device, allow_tf32: bool = False):
        self.program = program
        self.device = device
        start = time.perf_counter()
        self.lowering = CudaLowering(program, allow_tf32, name=program.fn.name)
        self.plan = self.lowering.plan
        self.launches = self.lowering.launches
        self.module = device.compile(self.lowering)
        self.compile_seconds = time.perf_counter() - start
        fn = program.fn
        self._params = [(tuple(p.type.shape), p.type.np_dtype) for p in fn.params]
        self._constants = [device.upload(np.ascontiguousarray(c.params["value"],
                                                              dtype=c.out.type.np_dtype))
                           for c in program.constants]
        self._results = [(tuple(v.type.shape), v.type.np_dtype) for v in self.plan.results]
        self._arena = device.alloc(self.plan.peak)
        self._status = device.alloc(8 * STATUS_WORDS)
        device.zero(self._status[0], 8 * STATUS_WORDS)
        self._lock = threading.Lock()
        # The alignment each argument-table slot needs (vector loads), and each launch's
        # parameters as ("slot", i) or a fixed address.
        self._align = [1] * len(self.plan.args)
        self._resolved = []
        for launch in self.launches:
            values = []
            for p in launch.params:
                kind, at = p.where
                if kind == "arg":
                    self._align[at] = max(self._align[at], launch.align)
                    values.append((True, at))
                elif kind == "arena":
                    values.append((False, self._arena[0] + at))
                else:
                    values.append((False, self._status[0]))
            self._resolved.append((launch, values))
        # How each result of the function is made: ("slot", i) an argument-table slot (a
        # kernel's result, or a copy of a parameter or constant, or of a result returned
        # twice), ("literal", value).
        self._assembly = []
        seen: set = set()
        for r in fn.results:
            if isinstance(r, Literal):
                self._assembly.append(("literal", np.array(r.value, dtype=r.type.np_dtype),
                                       False))
                continue
            kind, slot = self.plan.locations[r]
            copied = r in seen or slot < self.plan.n_params + self.plan.n_constants
            seen.add(r)
            self._assembly.append(("slot", slot, copied))

    def stages(self) -> dict[str, str]:
        """The backend's stages for dumps: the CUDA C module."""
        return {"cuda": self.lowering.source}

    def close(self) -> None:
        """Drop the compiled module and this program's device memory (arena, status words,
        constants): at once, or when the call running in another thread returns. A module is
        unloaded once no program holds it (programs of one source share it). A later call
        raises RuntimeError; results returned before stay valid. Closing again does nothing.
        Dropping the last reference to the program frees the same."""
        with self._lock:
            self.module = self._arena = self._status = None
            self._constants, self._resolved = [], []

    def __call__(self, flat: list) -> list:
        dev = self.device
        with self._lock:
            if self.module is None:
                raise RuntimeError(f"the compiled program of {self.program.fn.name} was closed")
            slots, keep = [], []
            for i, (x, (shape, dtype)) in enumerate(zip(flat, self._params)):
                ptr, handle = dev.argument(x, shape, dtype, f"argument leaf {i}")
                if ptr % self._align[i]:
                    # A view at an odd offset (a slice of a device array): vector loads need
                    # the alignment, so the kernels read an aligned copy.
                    nbytes = math.prod(shape) * dtype.itemsize
                    ptr2, h2 = dev.alloc(nbytes)
                    dev.copy(ptr2, ptr, nbytes)
                    keep.append(handle)
                    ptr, handle = ptr2, h2
                slots.append(ptr)
                keep.append(handle)
            slots += [ptr for ptr, _ in self._constants]
            outputs = []
            for shape, dtype in self._results:
                ptr, array = dev.empty(shape, dtype)
                slots.append(ptr)
                outputs.append(array)
            for launch, values in self._resolved:
                dev.launch(self.module, launch, [slots[v] if is_slot else v
                                                 for is_slot, v in values])
            if self.lowering.may_fail:
                code = dev.to_host(self._status[0], (STATUS_WORDS,), np.dtype(np.int64))
                if code[0]:
                    dev.zero(self._status[0], 8 * STATUS_WORDS)
                    raise status_error(code, sites(self.program))
            results = []
            first = self.plan.n_params + self.plan.n_constants
            for kind, value, copied in self._assembly:
                if kind == "literal":
                    results.append(value.copy())
                    continue
                shape, dtype = self._slot_type(value)
                if shape == ():
                    results.append(dev.to_host(slots[value], (), dtype))
                elif copied:
                    ptr, array = dev.empty(shape, dtype)
                    dev.copy(ptr, slots[value], math.prod(shape) * dtype.itemsize)
                    results.append(array)
                else:
                    results.append(outputs[value - first])
            return results

    def _slot_type(self, slot: int) -> tuple[tuple[int, ...], np.dtype]:
        v = self.plan.args[slot]
        return tuple(v.type.shape), v.type.np_dtype
