"""Settings (TRACEJIT_* environment variables): the readers of tracejit.settings, and the
settings read without a backend. A value outside the allowed ones is a ValueError naming the
variable, the value and what is allowed, raised where the setting is read."""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import settings

VAR = "TRACEJIT_TEST_SETTING"


@pytest.mark.parametrize("value, want", [(None, 7), ("", 7), (" 3 ", 3), ("12", 12)])
def test_integer(monkeypatch, value, want):
    if value is not None:
        monkeypatch.setenv(VAR, value)
    assert settings.integer(VAR, 7) == want


@pytest.mark.parametrize("value", ["abc", "0", "-2", "+2", "1.5", "1e3", "2_0", "٣"])
def test_integer_refuses(monkeypatch, value):
    monkeypatch.setenv(VAR, value)
    with pytest.raises(ValueError) as caught:
        settings.integer(VAR, 7)
    assert str(caught.value) == f"{VAR}={value!r}: expected a positive integer"


def test_integer_with_a_minimum_of_zero(monkeypatch):
    monkeypatch.setenv(VAR, "0")
    assert settings.integer(VAR, 5, minimum=0, allowed="0 or more") == 0
    monkeypatch.setenv(VAR, "-1")
    with pytest.raises(ValueError, match=f"{VAR}='-1': expected 0 or more"):
        settings.integer(VAR, 5, minimum=0, allowed="0 or more")


def test_flag(monkeypatch):
    assert settings.flag(VAR, True) is True and settings.flag(VAR, False) is False
    for value, want in [("0", False), ("Off", False), ("FALSE", False), ("no", False),
                        ("1", True), ("on", True), ("True", True), ("yes", True), (" ", True)]:
        monkeypatch.setenv(VAR, value)
        assert settings.flag(VAR, True) is want, value
    monkeypatch.setenv(VAR, "maybe")
    with pytest.raises(ValueError, match=f"{VAR}='maybe': expected one of 1, on, true, yes"):
        settings.flag(VAR, True)


def test_choice(monkeypatch):
    assert settings.choice(VAR, ("address",)) == ""
    monkeypatch.setenv(VAR, "address")
    assert settings.choice(VAR, ("address",)) == "address"
    monkeypatch.setenv(VAR, "Address")
    with pytest.raises(ValueError, match=f"{VAR}='Address': expected one of 'address' or "
                                         "nothing"):
        settings.choice(VAR, ("address",))


def test_folder(monkeypatch, tmp_path):
    assert settings.folder(VAR, default="d") == "d"
    for off in ["", " ", "0", "off", "FALSE", "no"]:
        monkeypatch.setenv(VAR, off)
        assert settings.folder(VAR, default="d") is None, off
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(VAR, "~/new")
    assert settings.folder(VAR, must_be_folder=True) == str(tmp_path / "new")
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(VAR, str(tmp_path / "file"))
    assert settings.folder(VAR) == str(tmp_path / "file")
    with pytest.raises(ValueError, match=f"{VAR}=.*file': expected a folder"):
        settings.folder(VAR, must_be_folder=True)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "64.0"])
def test_cache_limit(monkeypatch, value):
    monkeypatch.setenv("TRACEJIT_CACHE_LIMIT", "5")
    assert tj.jit(np.sin).cache_limit == 5
    monkeypatch.setenv("TRACEJIT_CACHE_LIMIT", value)
    with pytest.raises(ValueError, match=f"TRACEJIT_CACHE_LIMIT={value!r}: expected a "
                                         "positive integer"):
        tj.jit(np.sin)


def test_dump_folder_that_is_a_file(monkeypatch, tmp_path):
    """TRACEJIT_DUMP naming a file fails before compiling, naming the variable (it raised
    FileExistsError from deep inside the dump writer)."""
    blocker = tmp_path / "dump"
    blocker.write_text("a file")
    monkeypatch.setenv("TRACEJIT_DUMP", str(blocker))
    f = tj.jit(lambda x: x * 2.0, backend="interpret")
    with pytest.raises(ValueError, match="TRACEJIT_DUMP=.*dump': expected a folder"):
        f(np.ones(3))
    monkeypatch.setenv("TRACEJIT_DUMP", "off")
    np.testing.assert_array_equal(f(np.ones(3)), 2.0)
    assert blocker.read_text() == "a file"
