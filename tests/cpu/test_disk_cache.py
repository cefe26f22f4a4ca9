"""The on-disk cache of compiled object code: round trips, corruption, races, configuration,
and what it trusts (hostile entries, the directory, the key file)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime import cache as cache_module
from tracejit.runtime.cache import DiskCache

import support

KEY = {"ir": "program f(x: f32[4]) -> f32[4]\n  y = exp x\n", "options": "O3", "tracejit": "0.1.0",
       "llvmlite": "0.50.0", "llvm": "22.1.0", "cpu": "znver5", "features": "+avx2,+fma"}
PAYLOAD = bytes(range(256)) * 3 + b"\n\x00end"


def entry_files(directory: Path) -> list[Path]:
    """Every file in the folders of `directory`: entries and any leftover temp files (not the
    key file beside them)."""
    return sorted(p for p in directory.glob("*/*") if p.is_file())


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
    # The MAC: HMAC-SHA256 under this cache's key of the format line, the length-prefixed key
    # parts in sorted order, the payload's length and the payload.
    secret = (tmp_path / "secret-key").read_bytes()
    parts = b"".join(struct.pack("<Q", len(t.encode())) + t.encode()
                     for name in sorted(KEY) for t in (name, KEY[name]))
    mac = hmac.new(secret, b"TRACEJIT-CACHE 2\n" + parts + struct.pack("<Q", len(PAYLOAD))
                   + PAYLOAD, hashlib.sha256).hexdigest()
    header = (b"TRACEJIT-CACHE 2\n" + cache_module._key_line(KEY) + b"\n"
              + b"%d %s\n" % (len(PAYLOAD), mac.encode()))
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


def test_flipped_payload_byte_is_a_mac_mismatch(tmp_path):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    path = the_entry(tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[-5] ^= 0x10
    path.write_bytes(damaged)
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == ("the entry was corrupt (MAC mismatch: damaged, or not written "
                                  "with this user's key) and was removed")
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
    path.write_bytes(whole.replace(b"TRACEJIT-CACHE 2\n", b"TRACEJIT-CACHE 3\n", 1))
    assert cache.explain(KEY) == \
        "the entry was corrupt (format version '3', expected 2) and was removed"
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


# ---------------------------------------------------------------------------------------------
# what the cache trusts: hostile entries, the directory, the key file (docs/cache.md)


def double(x):
    return x * 2.0


def plus_one(x):
    return x + 1.0


X = np.arange(4.0)
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")


def jit_call(fn):
    """A fresh jit of `fn` on X: (result, the CpuProgram's CompileInfo)."""
    jitted = tj.jit(fn)
    return jitted(X), jitted.compiled(X).native.info


@pytest.fixture
def deadline():
    """A cache lookup that blocks (opening a FIFO) fails the test instead of hanging it (a
    TimeoutError would not do: it is an OSError, which a lookup takes for a miss)."""
    with support.deadline(20, "the cache lookup"):
        yield


def double_entry(cache_dir: Path) -> Path:
    """Compile `double` into an empty cache; its entry file."""
    out, info = jit_call(double)
    assert info.source == "compiled"
    np.testing.assert_array_equal(out, X * 2.0)
    return the_entry(cache_dir)


def assert_recompiled(reason: str) -> None:
    """A fresh jit of `double` misses the disk cache for `reason`, and is right."""
    out, info = jit_call(double)
    np.testing.assert_array_equal(out, X * 2.0)
    assert info.source == "compiled"
    assert reason in info.cache_miss, info.cache_miss


def test_planted_object_code_never_runs(cache_dir):
    entry = double_entry(cache_dir)
    jit_call(plus_one)
    (other,) = set(entry_files(cache_dir)) - {entry}
    head, key_line, _, _ = entry.read_bytes().split(b"\n", 3)
    _, _, other_meta, planted = other.read_bytes().split(b"\n", 3)
    # What anyone who can write the folder can write: the victim's header and key with the
    # object code of `x + 1.0`, under its checksum or under the line of an authentic entry, in
    # this format or in the format before it (a bare SHA-256 checksum).
    for meta in [b"%d %s" % (len(planted), hashlib.sha256(planted).hexdigest().encode()),
                 other_meta]:
        for version, problem in [(head, "MAC mismatch"),
                                 (b"TRACEJIT-CACHE 1", "format version '1', expected 2")]:
            entry.write_bytes(b"\n".join([version, key_line, meta, planted]))
            out, info = jit_call(double)
            np.testing.assert_array_equal(out, X * 2.0)       # not [1, 2, 3, 4]
            assert info.source == "compiled"
            assert info.cache_miss.startswith(f"the entry was corrupt ({problem}"), \
                info.cache_miss
    assert jit_call(double)[1].source == "disk cache"         # the recompiled entry is used


def test_fifo_entry_is_a_fast_miss(cache_dir, deadline):
    entry = double_entry(cache_dir)
    entry.unlink()
    os.mkfifo(entry)
    assert_recompiled("the entry was refused (a FIFO) and was removed")
    assert entry.is_file() and jit_call(double)[1].source == "disk cache"


def test_fifo_beside_the_entry_is_skipped_by_explain(cache_dir, deadline):
    entry = double_entry(cache_dir)
    os.mkfifo(entry.with_name("f" * 64))
    entry.unlink()
    assert_recompiled("no entry for this IR")


def test_symlinked_entry_is_a_miss(cache_dir, tmp_path, deadline):
    entry = double_entry(cache_dir)
    real = tmp_path / "elsewhere"
    real.write_bytes(entry.read_bytes())
    entry.unlink()
    entry.symlink_to(real)
    assert_recompiled("the entry was refused (a symbolic link) and was removed")
    assert real.exists() and not entry.is_symlink()


def test_hostile_entries_in_a_process_of_their_own(tmp_path):
    """An entry that is a symbolic link to /dev/zero, or a sparse file of 64 GiB: each a miss at
    once, never read. In a child whose address space is bounded, so that reading either cannot
    take this machine's memory."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /dev/zero and /proc")
    code = textwrap.dedent("""
        import os, resource, signal, sys
        from pathlib import Path
        from tracejit.runtime.cache import DiskCache
        signal.alarm(60)
        size = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))
        cache, key = DiskCache(sys.argv[1]), {"ir": "f", "cpu": "znver5"}
        for kind in ["zero", "sparse"]:
            cache.store(key, b"object code")
            (entry,) = [p for p in Path(sys.argv[1]).rglob("*") if len(p.name) == 64]
            entry.unlink()
            if kind == "zero":
                entry.symlink_to("/dev/zero")
            else:
                with open(entry, "wb") as file:
                    file.truncate(64 << 30)
            assert cache.load(key) is None
            print(kind, cache.explain(key))
            assert not os.path.lexists(entry)
            cache.store(key, b"object code")
            assert cache.load(key) == b"object code"
    """)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "zero the entry was refused (a symbolic link) and was removed",
        f"sparse the entry was refused ({64 << 30} bytes, more than the limit of "
        f"{cache_module.MAX_ENTRY_BYTES}) and was removed"]


def test_group_writable_entry_is_a_miss(cache_dir):
    entry = double_entry(cache_dir)
    os.chmod(entry, 0o620)
    assert_recompiled("the entry was refused (mode 0620: writable by group or others) and "
                      "was removed")
    assert stat.S_IMODE(the_entry(cache_dir).stat().st_mode) == 0o600


@needs_root
def test_entry_of_another_user_is_a_miss(cache_dir):
    entry = double_entry(cache_dir)
    os.chown(entry, 4242, -1)
    assert_recompiled("the entry was refused (owned by user id 4242, not by this user (0))")


def test_entry_that_is_a_directory_is_a_miss(cache_dir):
    entry = double_entry(cache_dir)
    entry.unlink()
    entry.mkdir()
    with pytest.warns(RuntimeWarning, match="cannot write the compiled-code cache"):
        assert_recompiled("the entry was refused (a directory) and could not be removed")
    assert entry.is_dir()


def test_unreadable_entry_is_a_miss(cache_dir, monkeypatch):
    entry = double_entry(cache_dir)
    real_open = os.open

    def denied(path, *args, **kwargs):
        if Path(path) == entry:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert_recompiled("the entry could not be read: [Errno 13] Permission denied")


def test_truncated_entry_is_a_miss(cache_dir):
    entry = double_entry(cache_dir)
    data = entry.read_bytes()
    entry.write_bytes(data[:-16])       # torn within the object code
    assert_recompiled("the entry was corrupt (length mismatch: truncated or extended) and "
                      "was removed")


def test_oversize_entry_is_refused_unread(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path)
    cache.store(KEY, PAYLOAD)
    size = the_entry(tmp_path).stat().st_size
    monkeypatch.setattr(cache_module, "MAX_ENTRY_BYTES", size - 1)
    assert cache.load(KEY) is None
    assert cache.explain(KEY) == (f"the entry was refused ({size} bytes, more than the limit "
                                  f"of {size - 1}) and was removed")
    cache.store(KEY, PAYLOAD)                   # more than the limit: not written
    assert entry_files(tmp_path) == []
    monkeypatch.setattr(cache_module, "MAX_ENTRY_BYTES", size)
    cache.store(KEY, PAYLOAD)
    assert cache.load(KEY) == PAYLOAD


def test_folder_key_file_and_entries_are_private(tmp_path):
    directory = tmp_path / "a" / "cache"
    DiskCache(directory).store(KEY, PAYLOAD)
    entry = the_entry(directory)
    modes = [stat.S_IMODE(p.stat().st_mode)
             for p in (directory, directory / "secret-key", entry.parent, entry)]
    assert modes == [0o700, 0o600, 0o700, 0o600]
    assert len((directory / "secret-key").read_bytes()) == 32


@pytest.mark.parametrize("damage, problem", [
    ("mode", "mode 0640: readable or writable by group or others"),
    ("long", "33 bytes, more than the limit of 32"),
    ("short", "5 bytes, not 32"),
    ("fifo", "a FIFO"),
    ("symlink", "a symbolic link"),
    pytest.param("owner", "owned by user id 4242, not by this user (0)", marks=needs_root),
])
def test_refused_key_file_disables_the_cache(cache_dir, deadline, damage, problem):
    entry = double_entry(cache_dir)
    key_file = cache_dir / "secret-key"
    secret = key_file.read_bytes()
    if damage == "mode":
        os.chmod(key_file, 0o640)
    elif damage in ("long", "short"):
        key_file.write_bytes(secret + b"\0" if damage == "long" else b"short")
    elif damage == "fifo":
        key_file.unlink()
        os.mkfifo(key_file)
    elif damage == "symlink":
        key_file.unlink()
        (cache_dir / "elsewhere").write_bytes(secret)
        os.chmod(cache_dir / "elsewhere", 0o600)
        key_file.symlink_to(cache_dir / "elsewhere")
    else:
        os.chown(key_file, 4242, -1)
    with pytest.warns(RuntimeWarning, match="the compiled-code cache is disabled, the key file"):
        assert_recompiled(f"the disk cache is disabled: the key file {key_file}: {problem} "
                          f"(remove it, and a new key is made)")
    assert os.path.lexists(key_file) and entry.exists()       # nothing repaired behind one's back
    key_file.unlink()
    assert_recompiled("MAC mismatch")                          # a new key: old entries fail
    assert jit_call(double)[1].source == "disk cache"


def test_key_of_another_cache_fails_every_entry(cache_dir, tmp_path):
    double_entry(cache_dir)
    foreign = tmp_path / "foreign"
    DiskCache(foreign).store(KEY, PAYLOAD)
    os.replace(foreign / "secret-key", cache_dir / "secret-key")
    assert_recompiled("the entry was corrupt (MAC mismatch: damaged, or not written with this "
                      "user's key) and was removed")


def test_directory_is_checked_on_every_use(tmp_path):
    directory = tmp_path / "cache"
    cache = DiskCache(directory)
    cache.store(KEY, PAYLOAD)
    os.chmod(directory, 0o770)
    problem = f"the cache directory {directory}: mode 0770: writable by group or others"
    with pytest.warns(RuntimeWarning, match="the compiled-code cache is disabled"):
        assert cache.load(KEY) is None
    assert cache.explain(KEY) == f"the disk cache is disabled: {problem}"
    cache.store({**KEY, "cpu": "zen4"}, PAYLOAD)                # refused: nothing written
    os.chmod(directory, 0o700)
    assert cache.load(KEY) == PAYLOAD and len(entry_files(directory)) == 1


@needs_root
def test_directory_of_another_user_disables_the_cache(cache_dir):
    double_entry(cache_dir)
    os.chown(cache_dir, 4242, -1)
    with pytest.warns(RuntimeWarning, match="the compiled-code cache is disabled"):
        assert_recompiled(f"the disk cache is disabled: the cache directory {cache_dir}: owned "
                          f"by user id 4242")


def test_directory_through_a_symbolic_link(tmp_path):
    real, link, file = tmp_path / "real", tmp_path / "link", tmp_path / "file"
    DiskCache(real).store(KEY, PAYLOAD)
    link.symlink_to(real)
    assert DiskCache(link).load(KEY) == PAYLOAD      # a link to a trusted folder: that folder
    file.write_bytes(b"not a folder")
    for target, kind in [(file, "a regular file"), (Path("/dev/null"), "a character device")]:
        link.unlink()
        link.symlink_to(target)
        cache = DiskCache(link)
        with pytest.warns(RuntimeWarning, match=f"not a directory but {kind}"):
            cache.store(KEY, PAYLOAD)
        assert cache.load(KEY) is None
        assert cache.explain(KEY) == (f"the disk cache is disabled: the cache directory "
                                      f"{link}: not a directory but {kind}")
    assert file.read_bytes() == b"not a folder"
    link.unlink()
    link.symlink_to(tmp_path / "nowhere")            # dangling: the folder cannot be made
    cache = DiskCache(link)
    assert cache.load(KEY) is None
    with pytest.warns(RuntimeWarning, match="cannot write the compiled-code cache"):
        cache.store(KEY, PAYLOAD)


def test_concurrent_first_stores_agree_on_one_key(tmp_path):
    directory = tmp_path / "cache"
    keys = [{**KEY, "options": f"O{i}"} for i in range(8)]
    barrier = threading.Barrier(len(keys))

    def first_store(key):
        barrier.wait()
        DiskCache(directory).store(key, PAYLOAD + key["options"].encode())

    threads = [threading.Thread(target=first_store, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = DiskCache(directory)
    assert [fresh.load(key) for key in keys] == [PAYLOAD + k["options"].encode() for k in keys]
    assert sorted(p.name for p in directory.iterdir() if p.is_file()) == ["secret-key"]
    assert not any("." in name for _, _, names in os.walk(directory) for name in names)
