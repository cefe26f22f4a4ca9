"""An on-disk cache of compiled object code, so that a new process can skip LLVM.

A cache key is a mapping of named parts, all strings: the Program's text, the compile options,
the versions of tracejit, llvmlite and LLVM, the CPU and its features. Layout:

    <directory>/<sha256 of the "ir" part (else the first), 16 hex>/<sha256 of the key, 64 hex>

Entries of one IR share a folder, so that `DiskCache.explain` can tell which parts of the key
made a lookup miss. An entry file is

    TRACEJIT-CACHE 1\\n            magic and format version
    {"cpu":"znver5",...}\\n        the key as canonical JSON (sorted, ASCII, one line)
    <length> <sha256 hex>\\n       of the payload
    <payload>

`load` returns the payload only if every line is exactly what `store` would write for this key
and payload; any other file is a miss and is removed. Failures of the file system (missing or
unwritable directory, full disk) never reach the caller: `store` becomes a no-op with one
warning per cache object, and `load` a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

MAGIC = b"TRACEJIT-CACHE"
VERSION = 1
_DISABLED = {"0", "off", "false", ""}


def _canonical(key: Mapping[str, str]) -> bytes:
    """Encode `key` injectively: each name and value length-prefixed, in sorted name order."""
    if not key:
        raise ValueError("a cache key needs at least one part")
    out = []
    for name in sorted(key):
        value = key[name]
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"cache key parts must be str -> str, got {name!r}: {value!r}")
        for text in (name, value):
            raw = text.encode("utf-8", "surrogatepass")
            out.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(out)


def _key_line(key: Mapping[str, str]) -> bytes:
    """The key as one line of JSON; ensure_ascii escapes every newline and non-ASCII char."""
    return json.dumps(dict(key), sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def _meta_line(payload: bytes) -> bytes:
    """The payload's length and sha256, as the third line of an entry."""
    return b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())


def _short(value: str | None) -> str:
    """A key part's value, shortened for a message."""
    if value is None:
        return "(absent)"
    return value if len(value) <= 40 else value[:37] + "..."


class DiskCache:
    """Compiled object code on disk, keyed by a mapping of named string parts.

    `directory` (a Path) is created on the first `store`. Safe to share between threads and
    processes: entries are replaced atomically, so a reader sees a whole entry or none.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        self._reasons: dict[Path, str] = {}  # entry path -> why its file was discarded
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> DiskCache | None:
        """From TRACEJIT_CACHE_DIR: unset -> the user's cache directory
        ($XDG_CACHE_HOME/tracejit, else ~/.cache/tracejit); "0", "off", "false" or "" -> None
        (disabled); anything else is the directory."""
        setting = os.environ.get("TRACEJIT_CACHE_DIR")
        if setting is not None:
            return None if setting.strip().lower() in _DISABLED else cls(setting)
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path("~/.cache").expanduser()
        return cls(base / "tracejit")

    def _path(self, key: Mapping[str, str]) -> Path:
        whole = hashlib.sha256(_canonical(key)).hexdigest()  # also checks the key's types
        # Without an "ir" part, the first part in the caller's order names the folder.
        part = "ir" if "ir" in key else next(iter(key))
        folder = hashlib.sha256(_canonical({part: key[part]})).hexdigest()[:16]
        return self.directory / folder / whole

    def _check(self, data: bytes, key: Mapping[str, str]) -> tuple[bytes | None, str | None]:
        """(payload, None) if `data` is a valid entry for `key`, else (None, what is wrong)."""
        lines = data.split(b"\n", 3)
        if len(lines) < 4:
            return None, "truncated header"
        head, key_line, meta, payload = lines
        if not head.startswith(MAGIC + b" "):
            return None, "not a tracejit cache entry"
        if head != MAGIC + b" %d" % VERSION:
            version = head[len(MAGIC) + 1:].decode("ascii", "replace")
            return None, f"format version {version!r}, expected {VERSION}"
        if key_line != _key_line(key):
            return None, "key mismatch"
        if meta.split(b" ")[0] != b"%d" % len(payload):
            return None, "length mismatch: truncated or extended"
        if meta != _meta_line(payload):
            return None, "checksum mismatch"
        return payload, None

    def _discard(self, path: Path, problem: str) -> str:
        """Remove a bad entry file (best-effort) and remember why, for `explain`."""
        try:
            path.unlink(missing_ok=True)  # another reader may have removed it first
            reason = f"the entry was corrupt ({problem}) and was removed"
        except OSError as error:
            reason = f"the entry was corrupt ({problem}) and could not be removed: {error}"
        self._reasons[path] = reason
        return reason

    def load(self, key: Mapping[str, str]) -> bytes | None:
        """The payload stored under `key`, or None on a miss (absent, corrupt or unreadable)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        payload, problem = self._check(data, key)
        if problem is not None:
            self._discard(path, problem)
        return payload

    def store(self, key: Mapping[str, str], payload: bytes) -> None:
        """Write `payload` under `key` atomically; a failing file system makes this a no-op."""
        path = self._path(key)
        payload = bytes(payload)
        data = b"\n".join([MAGIC + b" %d" % VERSION, _key_line(key), _meta_line(payload), payload])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                # Atomic on POSIX and Windows: concurrent writers each replace a whole file,
                # the last one wins. A file torn by a power loss fails its checksum on load.
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        except OSError as error:
            with self._lock:
                warn, self._warned = not self._warned, True
            if warn:
                warnings.warn(f"tracejit: cannot write the compiled-code cache in "
                              f"{self.directory}, continuing without it: {error}",
                              RuntimeWarning, stacklevel=2)
            return
        self._reasons.pop(path, None)

    def explain(self, key: Mapping[str, str]) -> str:
        """Why `key` misses (or 'hit'): 'no entry for this IR', or 'an entry for this IR
        differs in: llvm (15.0.7 != 22.1.0), cpu (...)' (the entry's value first), or 'the
        entry was corrupt (checksum mismatch) and was removed', ..."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            data = None
        except OSError as error:
            return f"the entry could not be read: {error}"
        if data is not None:
            problem = self._check(data, key)[1]
            return "hit" if problem is None else self._discard(path, problem)
        if path in self._reasons:
            return self._reasons[path]
        best: list[str] | None = None  # the differences from the closest entry of this IR
        with contextlib.suppress(OSError):
            for sibling in path.parent.iterdir():
                other = self._read_key(sibling)
                if other is None:
                    continue
                diffs = [f"{name} ({_short(other.get(name))} != {_short(key.get(name))})"
                         for name in sorted(set(other) | set(key))
                         if other.get(name) != key.get(name)]
                if diffs and (best is None or len(diffs) < len(best)):
                    best = diffs
        if best is None:
            return "no entry for this IR"
        return "an entry for this IR differs in: " + ", ".join(best)

    @staticmethod
    def _read_key(path: Path) -> dict | None:
        """The key in an entry file's header, or None if it is not a readable entry."""
        if "." in path.name:  # a temp file of a store in progress
            return None
        try:
            with open(path, "rb") as file:
                if file.readline() != MAGIC + b" %d\n" % VERSION:
                    return None
                other = json.loads(file.readline())
        except (OSError, ValueError):
            return None
        if not isinstance(other, dict) or not all(isinstance(v, str) for v in other.values()):
            return None
        return other
