"""The GPU backend without pycuda or without a GPU: clear errors, and no pycuda import.

These tests run everywhere: a missing pycuda, a pycuda whose driver module cannot load (no
libcuda.so.1) and a driver that finds no GPU are simulated through `sys.modules` and
`builtins.__import__`, with `PycudaDevice`'s per-process instance reset around each test. The
argument checks of `PycudaDevice` that need no device (`__cuda_array_interface__`, strides,
the grid of grid-stride kernels) and its context rules (on a stand-in for pycuda's driver with
a context stack per thread) are tested here too.
"""

from __future__ import annotations

import builtins
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit.codegen.cuda import Launch
from tracejit.runtime import cuda_pycuda
from tracejit.runtime.cuda_pycuda import (CudaUnavailableError, PycudaDevice, _c_contiguous,
                                          _type_text)

#: What `import pycuda.driver` raises where pycuda is built but there is no NVIDIA driver
#: (captured from a pycuda 2026.1 built against CUDA 13.0 on a machine without libcuda).
LIBCUDA_MISSING = "libcuda.so.1: cannot open shared object file: No such file or directory"
#: What pycuda.driver.init() raises on a machine with the driver but no GPU.
NO_DEVICE = "cuInit failed: no CUDA-capable device is detected"

INSTALL_HINT = "pip install 'tracejit[cuda]'"
DOCS_HINT = 'docs/cuda.md ("Installing pycuda")'


def loss(x):
    return np.sum(np.tanh(x) * 2.0)


X = np.linspace(-1.0, 1.0, 12).reshape(3, 4).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_device(monkeypatch):
    """No device made before the test is reused by it, and none made by it outlives it."""
    monkeypatch.setattr(PycudaDevice, "_instance", None)


def hide_pycuda(monkeypatch) -> None:
    """Forget every imported pycuda module (restored after the test)."""
    for name in list(sys.modules):
        if name == "pycuda" or name.startswith("pycuda."):
            monkeypatch.delitem(sys.modules, name)


def without_pycuda(monkeypatch) -> None:
    """`import pycuda` fails as where it is not installed."""
    hide_pycuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pycuda", None)


def with_broken_driver_module(monkeypatch) -> None:
    """pycuda imports, `import pycuda.driver` fails as it does without libcuda.so.1."""
    hide_pycuda(monkeypatch)
    package = types.ModuleType("pycuda")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "pycuda", package)
    real_import = builtins.__import__

    def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and (name in ("pycuda.driver", "pycuda._driver")
                           or (name == "pycuda" and fromlist and "driver" in fromlist)):
            raise ImportError(LIBCUDA_MISSING)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def fake_driver(init_error: str | None = None, devices: int = 1) -> types.ModuleType:
    """A stand-in for pycuda.driver whose init() fails with `init_error`, or that has
    `devices` devices and no current context."""
    drv = types.ModuleType("pycuda.driver")

    class Error(Exception):
        pass

    class DriverRuntimeError(Error):
        pass

    def init(flags=0):
        if init_error is not None:
            raise DriverRuntimeError(init_error)

    class Context:
        @staticmethod
        def get_current():
            return None

    class Device:
        def __init__(self, index):
            raise AssertionError("no device should be opened")

        @staticmethod
        def count():
            return devices

    drv.Error, drv.RuntimeError, drv.init = Error, DriverRuntimeError, init
    drv.Context, drv.Device = Context, Device
    return drv


def with_driver(monkeypatch, drv: types.ModuleType) -> None:
    hide_pycuda(monkeypatch)
    package = types.ModuleType("pycuda")
    package.__path__ = []
    package.driver = drv
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)


# ---------------------------------------------------------------------------------------------
# the errors


def test_missing_pycuda_names_the_install_command(monkeypatch):
    without_pycuda(monkeypatch)
    with pytest.raises(CudaUnavailableError) as info:
        PycudaDevice.get()
    message = str(info.value)
    assert "pycuda" in message and "not installed" in message
    assert INSTALL_HINT in message and "nvcc" in message and DOCS_HINT in message
    assert isinstance(info.value, RuntimeError)
    assert PycudaDevice._instance is None          # a later call tries again


@pytest.mark.parametrize("fn", [loss, lambda x: x * 2 + 1], ids=["scalar", "array"])
def test_jit_on_cuda_without_pycuda_raises(monkeypatch, fn):
    without_pycuda(monkeypatch)
    with pytest.raises(CudaUnavailableError, match="pip install 'tracejit\\[cuda\\]'"):
        tj.jit(fn, backend="cuda")(X)
    # The cpu backend is not affected.
    np.testing.assert_allclose(tj.jit(fn)(X), fn(X), rtol=1e-6)


def test_the_hint_names_a_page_that_has_the_section():
    """The page and section the errors send a user to exist in the repository."""
    page, section = DOCS_HINT.split(" ", 1)
    heading = "## " + section.strip('()"') + "\n"
    assert heading in (Path(__file__).resolve().parents[2] / page).read_text()


def test_the_error_is_importable_from_the_package(monkeypatch):
    """A user catches it as tracejit.CudaUnavailableError, without importing the runtime."""
    import tracejit.errors
    assert tj.CudaUnavailableError is tracejit.errors.CudaUnavailableError is CudaUnavailableError
    without_pycuda(monkeypatch)
    with pytest.raises(tj.CudaUnavailableError):
        tj.jit(loss, backend="cuda")(X)


def test_driver_library_missing(monkeypatch):
    with_broken_driver_module(monkeypatch)
    with pytest.raises(CudaUnavailableError) as info:
        PycudaDevice.get()
    message = str(info.value)
    assert LIBCUDA_MISSING in message and "pycuda.driver" in message
    assert "backend='cuda-emulator'" in message and DOCS_HINT in message
    with pytest.raises(CudaUnavailableError, match="libcuda.so.1"):
        tj.jit(loss, backend="cuda")(X)


def test_no_gpu(monkeypatch):
    with_driver(monkeypatch, fake_driver(init_error=NO_DEVICE))
    with pytest.raises(CudaUnavailableError) as info:
        PycudaDevice.get()
    message = str(info.value)
    assert NO_DEVICE in message and "backend='cuda-emulator'" in message
    with pytest.raises(CudaUnavailableError, match="cuInit failed"):
        tj.jit(loss, backend="cuda")(X)


def test_driver_without_devices(monkeypatch):
    with_driver(monkeypatch, fake_driver(devices=0))
    with pytest.raises(CudaUnavailableError, match="no CUDA device.*cuda-emulator"):
        PycudaDevice.get()


def test_device_number_beyond_the_devices(monkeypatch):
    with_driver(monkeypatch, fake_driver(devices=2))
    monkeypatch.setenv("TRACEJIT_CUDA_DEVICE", "2")
    with pytest.raises(CudaUnavailableError, match=r"TRACEJIT_CUDA_DEVICE=2, but there are 2 "):
        PycudaDevice.get()
    monkeypatch.setenv("TRACEJIT_CUDA_DEVICE", "first")
    with pytest.raises(ValueError, match="TRACEJIT_CUDA_DEVICE='first': expected a device number"):
        PycudaDevice.get()


def test_importing_tracejit_never_imports_pycuda():
    code = """if True:
        import sys
        import numpy as np
        import tracejit as tj
        import tracejit.runtime.cuda_pycuda
        import tracejit.runtime.cuda
        f = tj.jit(lambda x: np.sum(x * 2))
        assert f(np.ones(3)) == 6.0
        loaded = sorted(m for m in sys.modules if m == "pycuda" or m.startswith("pycuda."))
        print(loaded)
        sys.exit(1 if loaded else 0)
    """
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


# ---------------------------------------------------------------------------------------------
# checks that need no device


class Exporter:
    """An object exposing only a `__cuda_array_interface__`."""

    def __init__(self, **iface):
        self.__cuda_array_interface__ = {"shape": (2, 3), "typestr": "<f4", "data": (4096, False),
                                         "strides": None, "version": 3, **iface}


def interface_argument(x, shape=(2, 3), dtype=np.float32):
    return PycudaDevice._interface_argument(
        x, x.__cuda_array_interface__, shape, np.dtype(dtype), "argument 0 of f")


def test_interface_pointer_is_used_in_place():
    x = Exporter()
    assert interface_argument(x) == (4096, x)
    x = Exporter(strides=(12, 4), version=2)                # explicit C-contiguous strides
    assert interface_argument(x) == (4096, x)
    x = Exporter(shape=(2, 1), strides=(4, 99))              # length-1 axes: any stride
    assert interface_argument(x, shape=(2, 1))[0] == 4096
    x = Exporter(shape=(0, 3), data=(0, False))              # empty: no memory
    assert interface_argument(x, shape=(0, 3))[0] == 0


@pytest.mark.parametrize("iface, message", [
    ({"typestr": "<f8"}, ("argument 0 of f .*Exporter.* is float64\\[2,3\\]; the compiled "
                          "program expects float32\\[2,3\\]")),
    ({"shape": (3, 2)}, "is float32\\[3,2\\]; the compiled program expects float32\\[2,3\\]"),
    ({"typestr": ">f4"}, "is >f4\\[2,3\\]; the compiled program expects float32"),  # big-endian
    ({"strides": (4, 8)}, "not C-contiguous \\(strides \\(4, 8\\)\\); make it contiguous"),
    ({"version": 1}, "version 1; version 2 or later"),
    ({"mask": object()}, "masked"),
])
def test_interface_checks(iface, message):
    with pytest.raises(TypeError, match=message):
        interface_argument(Exporter(**iface))


def test_contiguity_and_type_text():
    assert _c_contiguous((4, 5), (20, 4), 4) and _c_contiguous((4, 5), None, 4)
    assert not _c_contiguous((4, 5), (4, 16), 4)           # Fortran order
    assert not _c_contiguous((4, 5), (40, 8), 4)           # every other element
    assert _c_contiguous((4, 0), (7, 3), 4)
    assert _type_text((3, 4), np.float32) == "float32[3,4]" and _type_text((), bool) == "bool[]"


def test_argument_rejects_wrong_host_arrays_before_touching_a_device():
    device = PycudaDevice.__new__(PycudaDevice)            # no GPU needed for these checks
    with pytest.raises(TypeError, match="argument 1 is float64\\[2,3\\]; the compiled program "
                                        "expects float32\\[2,3\\]"):
        device.argument(np.zeros((2, 3)), (2, 3), np.float32, "argument 1")
    with pytest.raises(TypeError, match="argument 1 is int32\\[3\\]; .* expects int32\\[4\\]"):
        device.argument(np.zeros(3, np.int32), (4,), np.int32, "argument 1")
    with pytest.raises(TypeError, match="a Python float; the compiled program expects"):
        device.argument(1.5, (3,), np.float64, "argument 1")


def test_cubins_come_from_the_authenticated_cache_only(tmp_path, monkeypatch):
    """nvcc runs with pycuda's own cache off (it loads any file in its folder); the cubin is an
    entry of tracejit's cache: a second process loads it, a planted one is compiled again."""
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path))
    calls = []

    def compile(source, **options):
        calls.append(options)
        return b"cubin of " + source.encode()

    compiler = types.ModuleType("pycuda.compiler")
    compiler.compile = compile
    monkeypatch.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    monkeypatch.setitem(sys.modules, "pycuda.compiler", compiler)
    device = PycudaDevice.__new__(PycudaDevice)
    device.arch = "sm_90"
    assert device.cubin("kernel a") == b"cubin of kernel a"
    assert calls[0]["cache_dir"] is False and calls[0]["arch"] == "sm_90"
    assert device.cubin("kernel a") == b"cubin of kernel a" and len(calls) == 1
    device.cubin("kernel b")
    entry_a, entry_b = sorted(tmp_path.glob("*/*"), key=lambda p: b"kernel a" in p.read_bytes(),
                              reverse=True)
    entry_a.write_bytes(entry_b.read_bytes().replace(b"cubin of kernel b", b"cubin of evil!!"))
    assert device.cubin("kernel a") == b"cubin of kernel a" and len(calls) == 3


@pytest.mark.parametrize("grid, block, stride, want", [
    (10_000, 256, True, 132 * 8),        # 2048 threads per SM / 256: 8 blocks on each of 132
    (100, 256, True, 100),               # fewer blocks than fill the GPU: all of them
    (10_000, 1024, True, 132 * 2),
    (10_000, 4096, True, 132),           # at least one block a multiprocessor
    (10_000, 256, False, 10_000),        # a kernel that does not stride: its own grid
])
def test_grid_of_grid_stride_kernels(grid, block, stride, want):
    device = PycudaDevice.__new__(PycudaDevice)
    device.multiprocessors, device.threads_per_multiprocessor, device._resident = 132, 2048, {}
    launch = Launch("k", (), grid=grid, block=block, grid_stride=stride)
    assert device.blocks(launch) == want


# ---------------------------------------------------------------------------------------------
# the context rules, on a stand-in for pycuda's driver (a context stack per thread, as pycuda's)


class FakeContext:
    stacks = threading.local()

    def __init__(self, name):
        self.name = name

    @classmethod
    def stack(cls) -> list:
        if not hasattr(cls.stacks, "items"):
            cls.stacks.items = []
        return cls.stacks.items

    @classmethod
    def get_current(cls):
        return cls.stack()[-1] if cls.stack() else None

    def push(self):
        self.stack().append(self)

    @classmethod
    def pop(cls):
        cls.stack().pop()

    @classmethod
    def get_device(cls):
        assert cls.get_current() is not None, "no current context"
        return FakeDevice(0)


class FakeDevice:
    def __init__(self, index):
        self.index = index

    @staticmethod
    def count():
        return 1

    def retain_primary_context(self):
        return FakeContext(f"primary {self.index}")

    def compute_capability(self):
        return (9, 0)

    def name(self):
        return "Fake GPU"

    def get_attribute(self, attr):
        return {"sm": 132, "threads": 2048}[attr]


class FakeAllocation:
    def __init__(self, log):
        self.log = log

    def free(self):
        self.log.append(FakeContext.get_current())


def working_driver(monkeypatch) -> types.ModuleType:
    """A pycuda stand-in with one device and no current context; atexit handlers collected in
    `drv.exit_handlers` instead of registered."""
    drv = fake_driver()
    drv.Context, drv.Device = FakeContext, FakeDevice
    drv.device_attribute = types.SimpleNamespace(MULTIPROCESSOR_COUNT="sm",
                                                 MAX_THREADS_PER_MULTIPROCESSOR="threads")
    drv.exit_handlers = []
    with_driver(monkeypatch, drv)
    gpuarray = types.ModuleType("pycuda.gpuarray")
    gpuarray.GPUArray = type("GPUArray", (), {})
    monkeypatch.setitem(sys.modules, "pycuda.gpuarray", gpuarray)
    sys.modules["pycuda"].gpuarray = gpuarray
    monkeypatch.setattr(cuda_pycuda.atexit, "register", drv.exit_handlers.append)
    monkeypatch.setattr(FakeContext, "stacks", threading.local())
    return drv


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_primary_context_stays_current_in_the_main_thread_until_exit(monkeypatch):
    drv = working_driver(monkeypatch)
    device = PycudaDevice.get()
    assert device.name == "Fake GPU (sm_90)" and device.arch == "sm_90"
    assert device.owns_context and device.context.name == "primary 0"
    assert FakeContext.stack() == [device.context]          # pushed once, left current
    with device.activate() as ctx:
        assert ctx is device.context and FakeContext.stack() == [device.context]
    assert FakeContext.stack() == [device.context]
    assert len(drv.exit_handlers) == 1
    drv.exit_handlers[0]()                                   # at exit: popped
    assert FakeContext.stack() == []
    with device.activate():                                  # after exit: pushed and popped
        assert FakeContext.get_current() is device.context
    assert FakeContext.stack() == []


def test_worker_threads_push_and_pop_around_each_operation(monkeypatch):
    working_driver(monkeypatch)
    device = PycudaDevice.get()

    def work():
        seen = []
        with device.activate():
            seen.append(FakeContext.get_current())
        seen.append(list(FakeContext.stack()))
        return seen

    current, after = in_thread(work)
    assert current is device.context and after == []


def test_memory_is_freed_with_the_context_current_in_any_thread(monkeypatch):
    working_driver(monkeypatch)
    device = PycudaDevice.get()
    log = []
    memory = cuda_pycuda.DeviceMemory(device, FakeAllocation(log))
    in_thread(lambda: memory.__del__())
    assert log == [device.context]
    memory.__del__()                                         # freed once only
    assert log == [device.context]


def test_a_users_current_context_is_used(monkeypatch):
    working_driver(monkeypatch)
    users = FakeContext("the user's")
    users.push()
    device = PycudaDevice.get()
    assert device.context is users and not device.owns_context
    assert FakeContext.stack() == [users]                    # nothing pushed on top

    def work():
        with device.activate():
            inside = FakeContext.get_current()
        return inside, list(FakeContext.stack())

    assert in_thread(work) == (users, [])                    # other threads: pushed, popped
