"""The benchmark suite's --quick mode: every workload at small sizes, every implementation
that is installed, checked for agreement with tracejit (the suite must never rot).

The GPU parts are checked here without a GPU: which backends run by default, the CUDA C on its
host emulation (backend "cuda-emulator") against the cpu backend, the uploading of arguments,
the GPU floors' arithmetic and the ratios of GPU rows to GPU peers only. Where a GPU is usable,
a quick run of backend "cuda" with its floors and GPU peers is checked too.
"""

import shutil

import numpy as np
import pytest

import tracejit as tj
from benchmarks.__main__ import main
from benchmarks.runner import (GpuFloors, Plan, Row, agreement, assign_ratios,
                               cuda_unavailable_reason, default_backends, run, targets,
                               upload_arrays)
from benchmarks.workloads import VARIANTS
from tracejit.pytree import flatten
from tracejit.runtime.cuda_pycuda import CudaUnavailableError, PycudaDevice

BY_ID = {(v.workload, v.name): v for v in VARIANTS}
W3 = BY_ID[("W3", "value+grad")]
NO_GPP = pytest.mark.skipif(shutil.which("g++") is None, reason="cuda-emulator needs g++")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.title)
def test_workload_matches_hand_written_numpy(variant):
    args = variant.make_args(True)
    got = [np.asarray(a) for a in flatten(tj.jit(variant.fn)(*args))[0]]
    want = [np.asarray(a) for a in flatten(variant.numpy(*args))[0]]
    ok, err = agreement(got, want, variant.rtol)
    assert ok, f"max relative error {err}"


def test_quick_mode_agrees(capsys):
    assert main(["--quick", "--peers", "numpy", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for v in VARIANTS:
        assert v.title in out
    assert " NO " not in out


def test_agreement_detects_a_difference():
    ok, err = agreement([np.array([1.0, 2.0])], [np.array([1.0, 2.1])], 1e-3)
    assert not ok and err == pytest.approx(0.1 / np.hypot(1.0, 2.1))


# ---------------------------------------------------------------------------------------------
# which backends run


def _gpu_unusable(monkeypatch):
    def get(cls):
        raise CudaUnavailableError("no GPU in this test")
    monkeypatch.setattr(PycudaDevice, "get", classmethod(get))


def test_default_backends_exclude_cuda_when_unavailable(monkeypatch, capsys):
    if cuda_unavailable_reason() is not None:       # as this machine is
        assert "cuda" not in default_backends()
    _gpu_unusable(monkeypatch)
    assert cuda_unavailable_reason() == "no GPU in this test"
    assert default_backends() == ["cpu", "interpret"]
    # Asking for it anyway is a parser error that gives the reason.
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--backends", "cpu,cuda", "--workloads", "W3", "--no-progress"])
    assert exc.value.code == 2
    assert "backend 'cuda' cannot run here: no GPU in this test" in capsys.readouterr().err


def test_default_backends_include_cuda_when_usable(monkeypatch):
    monkeypatch.setattr(PycudaDevice, "get", classmethod(lambda cls: object()))
    assert cuda_unavailable_reason() is None
    assert default_backends() == ["cpu", "interpret", "cuda"]
    # cuda brings its TF32 variant; the emulator, never default, has none.
    labels = [(t.backend, t.allow_tf32, t.device)
              for t in targets(["cpu", "cuda", "cuda-emulator"])]
    assert labels == [("cpu", False, "cpu"), ("cuda", False, "gpu"), ("cuda", True, "gpu"),
                      ("cuda-emulator", False, "cpu")]
    assert Row("W4", "step", "tracejit", "cuda", "on", allow_tf32=True).label == \
        "tracejit cuda tf32 fuse=on"


@NO_GPP
def test_quick_cuda_emulator_agrees_with_cpu(capsys):
    rows, _, _ = run(Plan([W3], ["cpu", "cuda-emulator"], [True, False], ["numpy"],
                          quick=True), progress=False)
    emulated = [r for r in rows if r.backend == "cuda-emulator"]
    assert [r.fuse for r in emulated] == ["on", "off"]
    for r in emulated:      # the reference is the first backend's (cpu) result
        assert r.agrees and r.max_rel_err <= W3.rtol, r.note
        assert r.device == "cpu" and r.kernels >= 1
    # and directly, element by element, against the cpu backend
    args = W3.make_args(True)
    want = flatten(tj.jit(W3.fn, backend="cpu")(*args))[0]
    got = flatten(tj.jit(W3.fn, backend="cuda-emulator")(*args))[0]
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)
    # the command line
    assert main(["--quick", "--backends", "cpu,cuda-emulator", "--workloads", "W3",
                 "--peers", "numpy", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "tracejit cuda-emulator fuse=on" in out and " NO " not in out


# ---------------------------------------------------------------------------------------------
# the GPU's plumbing, with stand-ins for device arrays


class FakeDeviceArray:
    """Stands for a pycuda GPUArray: holds a copy; `.get()` copies it back."""

    gpudata = 0

    def __init__(self, a):
        self.data = np.array(a)
        self.shape, self.dtype = self.data.shape, self.data.dtype

    def get(self):
        return self.data.copy()


def test_upload_arrays_moves_array_leaves_only():
    for v in (BY_ID[("W2", "step")], BY_ID[("W7", "step")]):
        args = v.make_args(True)
        up = upload_arrays(args, FakeDeviceArray)
        leaves, uploaded = flatten(args)[0], flatten(up)[0]
        assert len(leaves) == len(uploaded)
        for a, u in zip(leaves, uploaded):
            if isinstance(a, np.ndarray):
                assert isinstance(u, FakeDeviceArray)
            else:                   # scalars stay on the host, untouched
                assert u is a
            back = np.asarray(tj.to_host(u))
            assert back.dtype == np.asarray(a).dtype
            np.testing.assert_array_equal(back, np.asarray(a))
    assert sum(isinstance(u, FakeDeviceArray) for u in flatten(upload_arrays(
        BY_ID[("W2", "step")].make_args(True), FakeDeviceArray))[0]) == 2     # x, y; not w, b


def test_gpu_floors_arithmetic():
    v4, v5, v6 = BY_ID[("W4", "step")], BY_ID[("W5", "value+grad")], BY_ID[("W6", "step")]
    a4, a5, a6 = v4.make_args(True), v5.make_args(True), v6.make_args(True)
    g = GpuFloors("test GPU", copy_bandwidth=2e12, sgemm_flops=5e13, tf32_flops=2e14)
    for i, shape in enumerate(v4.matmuls(a4)):      # cuBLAS times, as if measured
        key = ",".join(map(str, shape))
        g.blas[key] = 1e-6 * (i + 1)
        g.blas_tf32[key] = 1e-7 * (i + 1)
    assert g.floor(v4, a4) == (pytest.approx(15e-6), "5 matmuls in cuBLAS FP32")
    assert g.floor(v4, a4, tf32=True) == (pytest.approx(15e-7), "5 matmuls in cuBLAS TF32")
    # W5 value+grad: x, y, z read once and three gradients written once
    t, what = g.floor(v5, a5)
    assert t == pytest.approx(6 * 1024 * 4 / 2e12) and "GPU's copy bandwidth" in what
    n, d = a6[2].shape
    flops = 2 * (2 * n * d * 10)
    assert g.floor(v6, a6)[0] == pytest.approx(n * d * 4 / 2e12 + flops / 5e13)
    assert g.floor(v6, a6, tf32=True)[0] == pytest.approx(n * d * 4 / 2e12 + flops / 2e14)
    assert g.floor(W3, W3.make_args(True), call_overhead=7e-8) == (7e-8, "a Python call")
    # without a cuBLAS speed (no torch with CUDA), no floor, and why
    g = GpuFloors("test GPU", 2e12, cublas_note="no cuBLAS floor: torch is not installed")
    assert g.floor(v6, a6) == (None, "no cuBLAS floor: torch is not installed")
    assert g.floor(v5, a5)[0] == pytest.approx(6 * 1024 * 4 / 2e12)


def test_ratios_meet_peers_of_the_same_device_only():
    def row(impl, median, device, floor, backend=""):
        r = Row("W4", "step", impl, backend, median=median, device=device)
        r.floor = floor
        return r

    group = [row("tracejit", 2.0, "cpu", 1.0, "cpu"), row("tracejit", 0.5, "gpu", 0.1, "cuda"),
             row("tracejit", 0.3, "gpu", None, "cuda"), row("numpy", 4.0, "cpu", 1.0),
             row("torch", 3.0, "cpu", 1.0), row("torch-cuda", 0.25, "gpu", 0.1),
             row("jax-gpu", 1.0, "gpu", 0.1), row("jax", None, "cpu", 1.0)]
    assign_ratios(group)
    got = [(r.ratio_floor, r.ratio_best_peer) for r in group]
    assert got == [(2.0, pytest.approx(2 / 3)), (pytest.approx(5.0), 2.0),
                   (None, pytest.approx(1.2)), (4.0, pytest.approx(4 / 3)), (3.0, 1.0),
                   (pytest.approx(2.5), 1.0), (pytest.approx(10.0), 4.0), (None, None)]
    # a device without timed peers has no best-peer ratio
    lone = [row("tracejit", 0.5, "gpu", 0.1, "cuda"), row("numpy", 4.0, "cpu", 1.0)]
    assign_ratios(lone)
    assert lone[0].ratio_best_peer is None and lone[0].ratio_floor == pytest.approx(5.0)


# ---------------------------------------------------------------------------------------------
# on a real GPU


@pytest.mark.skipif(cuda_unavailable_reason() is not None, reason="no usable GPU")
def test_quick_cuda_with_gpu_floors_and_peers():
    variants = [W3, BY_ID[("W4", "step")], BY_ID[("W5", "forward")]]
    rows, _, env = run(Plan(variants, ["cpu", "cuda"], [True, False],
                            ["numpy", "torch-cuda", "jax-gpu"], quick=True), progress=False)
    cuda = [r for r in rows if r.backend == "cuda"]
    assert [(r.workload, r.allow_tf32) for r in cuda] == [
        ("W3", False), ("W3", False), ("W4", False), ("W4", False), ("W4", True), ("W4", True),
        ("W5", False), ("W5", False)]
    for r in cuda:
        assert r.agrees, (r.label, r.note, r.max_rel_err)
        assert r.device == "gpu"
    gpu = env["gpu_floors"]
    assert gpu["copy_bandwidth"] > 1e10         # any GPU copies faster than 10 GB/s
    w5 = next(r for r in cuda if r.workload == "W5")
    assert w5.floor == pytest.approx(3 * 1024 * 4 / gpu["copy_bandwidth"])
    for r in rows:
        if r.impl in ("torch-cuda", "jax-gpu"):
            assert r.device == "gpu" and (r.agrees or r.note.startswith("failed")), r.note
