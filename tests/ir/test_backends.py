"""The registry of backends (tracejit.runtime.backends) against what the backends do.

Every registered backend that can run here compiles a function and agrees with NumPy, adds the
dump stages its record names, donates (or refuses to) as its record says, and returns host or
device arrays as its record says; unknown and planned names raise the documented errors; the
command line offers exactly the registered names. The cuda backend runs where pycuda and a GPU
are usable, and is skipped with the reason otherwise.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit.__main__ import main
from tracejit.api import is_device_array
from tracejit.runtime import backends
from tracejit.runtime.backends import BACKENDS, NAMES

REPO = Path(__file__).resolve().parents[2]
AVAILABLE = "cpu, cuda, cuda-emulator, interpret"

X = np.linspace(-2.0, 3.0, 12).reshape(3, 4)
B = np.array([0.5, -1.0, 2.0, 0.25])


def layer(x, b):
    return np.tanh(x @ np.ones((4, 4)) * 0.1 + b) * 2.0


def loss(x, b):
    return np.sum(layer(x, b) ** 2)


def usable(name: str):
    """The record of `name`, or skip the test saying why it cannot run here."""
    backend = BACKENDS[name]
    why = backend.why_unavailable()
    if why is not None:
        pytest.skip(f"backend {name!r} cannot run here: {why}")
    return backend


# ---------------------------------------------------------------------------------------------
# every backend runs


@pytest.mark.parametrize("name", NAMES)
def test_every_backend_agrees_with_numpy(name):
    usable(name)
    got = tj.to_host(tj.jit(layer, backend=name)(X, B))
    np.testing.assert_allclose(got, layer(X, B), rtol=1e-12)
    value, grad = tj.to_host(tj.jit(tj.value_and_grad(loss, argnums=1), backend=name)(X, B))
    want = np.sum(2 * layer(X, B) * (1 - np.tanh(X @ np.ones((4, 4)) * 0.1 + B) ** 2) * 2.0,
                  axis=0)
    np.testing.assert_allclose(value, loss(X, B), rtol=1e-12)
    np.testing.assert_allclose(grad, want, rtol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_the_native_program_and_its_dump_stages_are_the_records(name):
    backend = usable(name)
    jitted = tj.jit(layer, backend=name)
    assert (jitted.compiled(X, B).native is None) == (backend.compiler is None)
    stages = list(jitted.dump(X, B))
    assert stages[stages.index("fused") + 1:] == list(backend.stages)


@pytest.mark.parametrize("name", NAMES)
def test_results_are_device_arrays_exactly_on_device_backends(name):
    backend = usable(name)
    out = tj.jit(layer, backend=name)(X, B)
    assert (type(out) is not np.ndarray) == is_device_array(out) == backend.device
    np.testing.assert_allclose(tj.to_host(out), layer(X, B), rtol=1e-12)


class FakeDeviceArray:
    """A stand-in for an array in GPU memory (it only exposes `__cuda_array_interface__`)."""

    def __init__(self, a):
        self.shape, self.dtype = a.shape, a.dtype
        self.__cuda_array_interface__ = {"shape": a.shape, "typestr": a.dtype.str,
                                         "data": (0, False), "version": 3}


@pytest.mark.parametrize("name", [n for n in NAMES if not BACKENDS[n].device])
def test_a_host_backend_refuses_device_arrays_naming_the_device_backends(name):
    usable(name)
    device = [n for n in NAMES if BACKENDS[n].device]
    assert device == ["cuda"]
    with pytest.raises(TypeError, match=re.escape(
            "a device array (FakeDeviceArray) was passed to a host backend; copy it to the host "
            "first (GPUArray.get(), tensor.cpu().numpy()) or compile with backend='cuda'")):
        tj.jit(layer, backend=name)(FakeDeviceArray(X), B)


# ---------------------------------------------------------------------------------------------
# donation


@pytest.mark.parametrize("name", [n for n in NAMES if not BACKENDS[n].donates])
def test_donation_is_refused_where_the_record_says(name):
    assert BACKENDS[name].device          # the reason the message gives
    with pytest.raises(NotImplementedError, match=re.escape(
            f"donate_argnums is not implemented for the {name} backend: its results are new "
            f"device arrays; pass them back in as the next call's arguments")):
        tj.jit(layer, backend=name, donate_argnums=0)


def test_only_cuda_refuses_donation():
    assert [n for n in NAMES if not BACKENDS[n].donates] == ["cuda"]


@pytest.mark.parametrize("name", [n for n in NAMES if BACKENDS[n].donates])
def test_donating_backends_write_results_in_place(name):
    usable(name)
    x = X.copy()
    out = tj.jit(layer, backend=name, donate_argnums=0)(x, B)
    assert out is x
    np.testing.assert_allclose(x, layer(X, B), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# names


def test_names_in_order():
    assert NAMES == ("cpu", "cuda", "cuda-emulator", "interpret")
    assert list(BACKENDS) == list(NAMES)
    assert all(BACKENDS[n].name == n and backends.get(n) is BACKENDS[n] for n in NAMES)
    assert backends.PLANNED == ()


def test_records_of_the_backends():
    cpu, cuda, emulator, interpret = (BACKENDS[n] for n in NAMES)
    assert cpu.stages == ("llvm", "llvm optimized") and not cpu.device and cpu.donates
    assert cuda.stages == emulator.stages == ("cuda",) and cuda.device and not emulator.device
    assert emulator.emulates == "cuda" and cuda.emulates is None
    assert interpret.compiler is None and interpret.stages == ()
    assert cpu.why_unavailable() is None and interpret.why_unavailable() is None


@pytest.mark.parametrize("name", ["tpu", "CPU", "", None])
def test_unknown_backend(name):
    message = f"unknown backend {name!r}; available: {AVAILABLE}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        backends.get(name)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        tj.jit(layer, backend=name)


def test_planned_backend_is_not_implemented_yet(monkeypatch):
    monkeypatch.setattr(backends, "PLANNED", ("metal",))
    message = f"backend 'metal' is not implemented yet; available: {AVAILABLE}"
    with pytest.raises(NotImplementedError, match=f"^{re.escape(message)}$"):
        backends.get("metal")
    with pytest.raises(NotImplementedError, match=f"^{re.escape(message)}$"):
        tj.jit(layer, backend="metal")
    with pytest.raises(ValueError, match="unknown backend 'opencl'"):
        tj.jit(layer, backend="opencl")


def test_the_command_line_offers_the_registered_names(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["dump", "--help"])
    assert exc.value.code == 0
    assert "--backend {" + ",".join(NAMES) + "}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["dump", "f.py:f", "--backend", "tpu"])
    assert exc.value.code == 2


@pytest.mark.parametrize("name", NAMES)
def test_the_command_line_dumps_each_backends_stages(name, tmp_path, capsys):
    backend = usable(name)
    source = tmp_path / "model.py"
    source.write_text("import numpy as np\n\ndef f(x):\n    return np.sin(x) * 2.0\n")
    assert main(["dump", f"{source}:f", "--args", "f64[5]", "--backend", name, "--list"]) == 0
    listed = capsys.readouterr().out.split("\n")[:-1]
    assert listed[listed.index("fused") + 1:] == list(backend.stages)


def test_only_the_api_imports_the_runtime():
    """The layering: of tracejit's own modules, only the API imports tracejit.runtime."""
    importers = []
    for path in sorted((REPO / "tracejit").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "runtime" or n.startswith("runtime.") or ".runtime" in n
                   for n in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["api.py"]
