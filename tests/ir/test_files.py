"""The atomic-write helper that checkpoints, dumps and the disk caches share."""

from __future__ import annotations

import os
import stat

import pytest

from tracejit.files import atomic_write, temp_beside


def test_replaces_the_file_whole(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with atomic_write(path) as f:
        f.write(b"new ")
        assert path.read_bytes() == b"old"          # readers see the old file until the end
        f.write(b"contents")
    assert path.read_bytes() == b"new contents"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError):
        with atomic_write(path) as f:
            f.write(b"half")
            1 / 0
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


@pytest.mark.parametrize("private", [True, False])
def test_modes(tmp_path, private):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "f", private=private) as f:
            f.write(b"x")
    finally:
        os.umask(umask)
    mode = stat.S_IMODE((tmp_path / "f").stat().st_mode)
    assert mode == (0o600 if private else 0o644)


def test_temporaries_are_new_files_beside_the_target(tmp_path):
    names = {temp_beside(tmp_path / "f") for _ in range(3)}
    assert len(names) == 3
    for name in names:
        assert os.path.dirname(name) == str(tmp_path) and name.endswith(".tmp")
        assert os.path.getsize(name) == 0
