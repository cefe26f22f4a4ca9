"""Settings the CUDA backends read: a bad value is a ValueError naming the variable and what
is allowed."""

from __future__ import annotations

import pytest

from tracejit.runtime.cuda_emulator import EmulatedDevice
from tracejit.runtime.cuda_pycuda import PycudaDevice


@pytest.mark.parametrize("value", ["first", "-1", "0x1", "1.0"])
def test_cuda_device_refused(monkeypatch, value):
    monkeypatch.setenv("TRACEJIT_CUDA_DEVICE", value)
    with pytest.raises(ValueError, match=f"TRACEJIT_CUDA_DEVICE={value!r}: expected a device "
                                         "number: 0, 1, ..."):
        PycudaDevice._device_index()


def test_cuda_device_accepted(monkeypatch):
    monkeypatch.delenv("TRACEJIT_CUDA_DEVICE", raising=False)
    assert PycudaDevice._device_index() == 0
    for value, index in [("", 0), (" 2 ", 2), ("0", 0)]:
        monkeypatch.setenv("TRACEJIT_CUDA_DEVICE", value)
        assert PycudaDevice._device_index() == index


def test_emulator_sanitize_refused(monkeypatch):
    monkeypatch.setenv("TRACEJIT_EMULATOR_SANITIZE", "thread")
    with pytest.raises(ValueError, match="TRACEJIT_EMULATOR_SANITIZE='thread': expected one of "
                                         "'address' or nothing"):
        EmulatedDevice()
    monkeypatch.setenv("TRACEJIT_EMULATOR_SANITIZE", " ")
    assert EmulatedDevice().sanitize == ""
