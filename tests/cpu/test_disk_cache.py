"""The on-disk cache of compiled object code: round trips, corruption, races, configuration."""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path

import pytest

from tracejit.runtime import cache as cache_module
from tracejit.runtime.cache import DiskCache

KEY = {"ir": "program f(x: f32[4]) -> f32[4]\n  y = exp x\n", "options": "O3", "tracejit": "0.1.0",
       "llvmlite": "0.50.0", "llvm": "22.1.0", "cpu": "znver5", "features": "+avx2,+fma"}
PAYLOAD = bytes(range(256)) * 3 + b"\n\x00end"


def entry_files(directory: Path) -> list[Path]:
    """Every file under `directory`: entries and any leftover temp files."""
    return sorted(p for p in directory.rglob("*") if p.is_file())


def the_entry(directory: Path) -> Path:
    (path,) = entry_files(directory)
    return path


def test_round_trip_and_layout(tmp_path):
    cache = DiskCache(tmp_path)
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == "no entry for this IR"
    cache.store(KEY, PAYLOAD)
    assert cache.load(KEY) == PAYLOAD
    assert DiskCache(tmp_path).load(dict(reversed(list(KEY.items())))) == PAYLOAD
    assert cache.explain(KEY) == "hit"
    path = the_entry(tmp_path)
    assert path.parent.parent == tmp_path
    assert len(path.parent.name) == 16 and len(path.name) == 64
    int(path.parent.name + path.name, 16)  # all hex
    header = (b"TRACEJIT-CACHE 1\n" + cache_module._key_line(KEY) + b"\n"
              + b"%d %s\n" % (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest().encode()))
    assert path.read_bytes() == header + PAYLOAD


def test_empty_payload_and_overwrite(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, b"")
    assert cache.load(KEY) == b""
    cache.store(KEY, b"second")
    assert cache.load(KEY) == b"second"
    assert len(entry_files(tmp_path)) == 1


def test_miss_on_a_different_key(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    assert cache.load({**KEY, "options": "O2"}) is None
    assert cache.load({**KEY, "ir": KEY["ir"] + " "}) is None
    assert cache.load({**KEY, "extra": ""}) is None
    assert cache.explain({**KEY, "ir": "other"}) == "no entry for this IR"
    assert cache.load(KEY) == PAYLOAD  # a miss on another key leaves the entry alone


def test_keys_encode_injectively(tmp_path):
    # Concatenating the parts would make these two keys alike; the length prefixes do not.
    cache = DiskCache(tmp_path)
    cache.store({"ir": "ab", "x": "c"}, b"1")
    cache.store({"ir": "a", "x": "bc"}, b"2")
    cache.store({"ira": "b", "x": "c"}, b"3")
    assert cache.load({"ir": "ab", "x": "c"}) == b"1"
    assert cache.load({"ir": "a", "x": "bc"}) == b"2"
    assert cache.load({"ira": "b", "x": "c"}) == b"3"
    assert len(entry_files(tmp_path)) == 3


def test_key_without_an_ir_part_and_unicode(tmp_path):
    cache = DiskCache(tmp_path)
    key = {"source": "λx. x\u2028y\n", "cpu": "znver5"}
    cache.store(key, b"obj")
    assert cache.load(key) == b"obj"
    assert cache.load({**key, "cpu": "skylake"}) is None
    assert cache.explain({**key, "cpu": "skylake"}) == \
        "an entry for this IR differs in: cpu (znver5 != skylake)"


def test_invalid_keys_raise(tmp_path):
    cache = DiskCache(tmp_path)
    with pytest.raises(ValueError, match="at least one part"):
        cache.store({}, b"x")
    with pytest.raises(TypeError, match="str -> str"):
        cache.load({"ir": 3})


def test_every_truncation_is_a_removed_miss(tmp_path):
    cache = DiskCache(tmp_path)
    key = {"ir": "f", "llvm": "22.1.0"}
    payload = b"\x7fELF" + bytes(range(40))
    cache.store(key, payload)
    path = the_entry(tmp_path)
    whole = path.read_bytes()
    for length in range(len(whole)):
        path.write_bytes(whole[:length])
        assert cache.load(key) is None, length
        assert not path.exists(), length
        reason = cache.explain(key)
        assert reason.startswith("the entry was corrupt (") and reason.endswith(
            ") and was removed"), (length, reason)
        cache.store(key, payload)  # a store afterwards works
        assert cache.load(key) == payload and cache.explain(key) == "hit"


def test_truncation_reasons(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    path = the_entry(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[:10])
    assert cache.explain(KEY) == "the entry was corrupt (truncated header) and was removed"
    path.write_bytes(whole[:-1])
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == \
        "the entry was corrupt (length mismatch: truncated or extended) and was removed"
    path.write_bytes(whole + b"\x00")
    assert cache.load(KEY) is None and not path.exists()


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_every_flipped_byte_is_a_miss(tmp_path, flip):
    cache = DiskCache(tmp_path)
    key = {"ir": "f", "cpu": "znver5"}
    payload = b"object code \x00\xff"
    cache.store(key, payload)
    path = the_entry(tmp_path)
    whole = path.read_bytes()
    for index in range(len(whole)):
        damaged = bytearray(whole)
        damaged[index] ^= flip
        path.write_bytes(damaged)
        assert cache.load(key) is None, index
        assert not path.exists(), index
        assert cache.explain(key).startswith("the entry was corrupt ("), index
    path.write_bytes(whole)
    assert cache.load(key) == payload


def test_flipped_payload_byte_is_a_checksum_mismatch(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    path = the_entry(tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 0x10
    path.write_bytes(damaged)
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == "the entry was corrupt (checksum mismatch) and was removed"
    assert entry_files(tmp_path) == []


def test_foreign_file_and_format_version(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    path = the_entry(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(b"ELF\n\n\n" + PAYLOAD)
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == \
        "the entry was corrupt (not a tracejit cache entry) and was removed"
    path.write_bytes(whole.replace(b"TRACEJIT-CACHE 1\n", b"TRACEJIT-CACHE 2\n", 1))
    assert cache.explain(KEY) == \
        "the entry was corrupt (format version '2', expected 1) and was removed"
    assert cache.load(KEY) is None


def test_other_versions_miss_and_are_named(tmp_path):
    cache = DiskCache(tmp_path)
    old = {**KEY, "llvm": "15.0.7", "tracejit": "0.0.9"}
    cache.store(old, b"old object")
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == \
        "an entry for this IR differs in: llvm (15.0.7 != 22.1.0), tracejit (0.0.9 != 0.1.0)"
    # An entry of another version is not corrupt: it stays, and both versions coexist.
    assert cache.load(old) == b"old object"
    cache.store(KEY, PAYLOAD)
    assert cache.load(KEY) == PAYLOAD and cache.load(old) == b"old object"
    assert len(entry_files(tmp_path)) == 2


def test_explain_names_the_closest_entry_and_absent_parts(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store({**KEY, "cpu": "skylake", "llvm": "15.0.7"}, b"a")
    cache.store({k: v for k, v in KEY.items() if k != "features"} | {"cpu": "zen3"}, b"b")
    wanted = {**KEY, "options": "O3 " + "x" * 60}
    assert cache.explain(wanted) == (
        "an entry for this IR differs in: cpu (zen3 != znver5), features ((absent) != +avx2,+fma),"
        " options (O3 != O3 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)")


def test_entry_copied_under_another_name_is_a_key_mismatch(tmp_path):
    cache = DiskCache(tmp_path)
    other = {**KEY, "options": "O0"}
    cache.store(KEY, PAYLOAD)
    cache.store(other, b"other object")
    by_name = {p.read_bytes(): p for p in entry_files(tmp_path)}
    (key_path,) = [p for data, p in by_name.items() if data.endswith(PAYLOAD)]
    (other_path,) = [p for data, p in by_name.items() if data.endswith(b"other object")]
    other_path.write_bytes(key_path.read_bytes())
    assert cache.load(other) is None
    assert not other_path.exists()
    assert cache.explain(other) == "the entry was corrupt (key mismatch) and was removed"
    assert cache.load(KEY) == PAYLOAD


def test_store_leaves_no_temp_files(tmp_path):
    cache = DiskCache(tmp_path)
    keys = [{**KEY, "options": f"O{level}"} for level in range(4)]
    for index, key in enumerate(keys):
        cache.store(key, PAYLOAD + bytes([index]))
        cache.store(key, PAYLOAD + bytes([index]))
    files = entry_files(tmp_path)
    assert len(files) == 4 and all("." not in p.name and len(p.name) == 64 for p in files)
    assert [cache.load(key) for key in keys] == [PAYLOAD + bytes([i]) for i in range(4)]


def test_failed_write_removes_its_temp_file_and_warns_once(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path)

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache_module.os, "replace", disk_full)
    with pytest.warns(RuntimeWarning, match="No space left on device") as caught:
        cache.store(KEY, PAYLOAD)
        cache.store({**KEY, "cpu": "zen4"}, PAYLOAD)
    assert len(caught) == 1
    assert entry_files(tmp_path) == []  # the folders remain, no temp file does
    assert cache.load(KEY) is None
    monkeypatch.undo()
    cache.store(KEY, PAYLOAD)
    assert cache.load(KEY) == PAYLOAD


def test_unusable_directory_never_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    cache = DiskCache(blocker / "sub")
    with pytest.warns(RuntimeWarning, match="cannot write the compiled-code cache") as caught:
        cache.store(KEY, PAYLOAD)
        cache.store(KEY, PAYLOAD)
    assert len(caught) == 1
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == "no entry for this IR"
    assert blocker.read_bytes() == b"not a directory"
    # The cache directory itself being a file behaves the same.
    cache = DiskCache(blocker)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.store(KEY, PAYLOAD)
    assert len(caught) == 1 and cache.load(KEY) is None


def test_missing_directory_is_created(tmp_path):
    cache = DiskCache(tmp_path / "a" / "b")
    assert cache.load(KEY) is None
    cache.store(KEY, PAYLOAD)
    assert cache.load(KEY) == PAYLOAD


def test_default_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(tmp_path / "here"))
    assert DiskCache.default().directory == tmp_path / "here"
    for off in ["0", "off", "OFF", "false", "False", "", " "]:
        monkeypatch.setenv("TRACEJIT_CACHE_DIR", off)
        assert DiskCache.default() is None, off
    monkeypatch.delenv("TRACEJIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DiskCache.default().directory == tmp_path / "xdg" / "tracejit"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ["", "relative/path"]:  # the XDG spec ignores relative paths
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert DiskCache.default().directory == tmp_path / "home" / ".cache" / "tracejit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert DiskCache.default().directory == tmp_path / "home" / ".cache" / "tracejit"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", "~/objects")
    assert DiskCache.default().directory == tmp_path / "home" / "objects"


def test_parallel_stores_of_one_key_end_in_one_valid_entry(tmp_path):
    cache = DiskCache(tmp_path)
    payloads = [bytes([i]) * (50_000 + i) for i in range(8)]
    seen: list[bytes | None] = []

    def write(barrier, payload):
        barrier.wait()
        for _ in range(5):
            cache.store(KEY, payload)

    def read(barrier):
        barrier.wait()
        for _ in range(20):
            seen.append(DiskCache(tmp_path).load(KEY))

    for _ in range(5):
        barrier = threading.Barrier(len(payloads) + 1)  # start all threads at once
        threads = [threading.Thread(target=write, args=(barrier, p)) for p in payloads]
        threads.append(threading.Thread(target=read, args=(barrier,)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert cache.load(KEY) in payloads
        assert len(entry_files(tmp_path)) == 1
    # A reader sees a whole entry or none, never a torn one (which it would have removed).
    assert all(data is None or data in payloads for data in seen)
    assert any(data is not None for data in seen)
    assert not any("." in name for _, _, names in os.walk(tmp_path) for name in names)
