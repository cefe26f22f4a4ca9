"""An on-disk cache of compiled object code, so that a new process can skip LLVM.

A cache key is a mapping of named parts, all strings: the Program's text, the compile options,
the versions of tracejit, llvmlite and LLVM, the CPU and its features. Layout:

    <directory>/secret-key                      this user's key: 32 random bytes, mode 0600
    <directory>/<sha256 of the "ir" part (else the first), 16 hex>/<sha256 of the key, 64 hex>

Entries of one IR share a folder, so that `DiskCache.explain` can tell which parts of the key
made a lookup miss. An entry file is

    TRACEJIT-CACHE 2\\n            magic and format version
    {"cpu":"znver5",...}\\n        the key as canonical JSON (sorted, ASCII, one line)
    <length> <HMAC hex>\\n         of the payload: HMAC-SHA256 under the secret key
    <payload>

What it trusts (docs/cache.md): a directory owned by this user and writable by no one else, a
key file owned by this user, readable and writable by no one else, and entries that are regular
files of this user, writable by no one else, whose MAC (over the format, the key and the
payload) is right. Anything else is never run: a refused directory or key file disables the
cache (one warning; nothing is repaired behind the user's back), a refused entry is a miss and
is removed. Files are opened without following a final symbolic link and without blocking
(a FIFO cannot hang a lookup), checked on the open descriptor, and read up to MAX_ENTRY_BYTES.

`load` returns the payload only if every line is exactly what `store` would write for this key
and payload; any other file is a miss and is removed. Failures of the file system (missing or
unwritable directory, full disk) never reach the caller: `store` becomes a no-op with one
warning per cache object, and `load` a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import struct
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

from tracejit import settings
from tracejit.files import NotRegularFile, atomic_write, file_kind, open_regular, temp_beside

MAGIC = b"TRACEJIT-CACHE"
VERSION = 2
MAX_ENTRY_BYTES = 256 << 20    # an entry larger than this is refused unread (and never written)
KEY_FILE = "secret-key"
KEY_BYTES = 32


class Refused(Exception):
    """A file that the cache does not trust; the message says why."""


def untrusted(st: os.stat_result, mask: int) -> str | None:
    """Why a file of status `st` is not this user's own: another owner, or one of the mode bits
    `mask` (0o022: writable by group or others; 0o066: readable or writable) set. None if it
    is (always, where the system has no user ids)."""
    if not hasattr(os, "geteuid"):
        return None
    if st.st_uid != os.geteuid():
        return f"owned by user id {st.st_uid}, not by this user ({os.geteuid()})"
    if st.st_mode & mask:
        what = "readable or writable" if mask & 0o044 else "writable"
        return f"mode {stat.S_IMODE(st.st_mode):04o}: {what} by group or others"
    return None


def read_private(path: str | os.PathLike, limit: int, mask: int = 0o022) -> bytes:
    """The bytes of `path` if it is a regular file (not a symbolic link) of this user without
    the mode bits `mask`, of at most `limit` bytes; else Refused. Never blocks or reads more
    than limit + 1 bytes; a file system failure is an OSError."""
    try:
        fd, st = open_regular(path, follow_links=False)
    except NotRegularFile as refused:
        raise Refused(refused.kind) from None
    try:
        problem = untrusted(st, mask)
        if problem is None and st.st_size > limit:
            problem = f"{st.st_size} bytes, more than the limit of {limit}"
        if problem is not None:
            raise Refused(problem)
        # One byte more than its size: a file that grew meanwhile fails its length check.
        chunks, left = [], st.st_size + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 24))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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


def _head() -> bytes:
    return MAGIC + b" %d" % VERSION


def _meta_line(secret: bytes, key: Mapping[str, str], payload: bytes) -> bytes:
    """The payload's length and its HMAC-SHA256, which covers the format, the key (injectively
    encoded) and the payload, as the third line of an entry."""
    mac = hmac.new(secret, _head() + b"\n" + _canonical(key), hashlib.sha256)
    mac.update(struct.pack("<Q", len(payload)) + payload)
    return b"%d %s" % (len(payload), mac.hexdigest().encode())


def _short(value: str | None) -> str:
    """A key part's value, shortened for a message."""
    if value is None:
        return "(absent)"
    return value if len(value) <= 40 else value[:37] + "..."


class DiskCache:
    """Compiled object code on disk, keyed by a mapping of named string parts.

    `directory` (a Path) is created (mode 0700) on the first `store`, its key file on first
    use. Safe to share between threads and processes: entries are replaced atomically, so a
    reader sees a whole entry or none. The directory and the key file are checked on every
    use (see the module's docstring for what is trusted).
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory).expanduser()
        self._reasons: dict[Path, str] = {}  # entry path -> why its file was discarded
        self._refused: str | None = None     # why the cache is disabled, at its last use
        self._warned = False
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> DiskCache | None:
        """From TRACEJIT_CACHE_DIR: unset -> the user's cache directory
        ($XDG_CACHE_HOME/tracejit, else ~/.cache/tracejit); "0", "off", "false" or "" -> None
        (disabled); anything else is the directory."""
        setting = settings.folder("TRACEJIT_CACHE_DIR", default="")
        if setting != "":
            return None if setting is None else cls(setting)
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path("~/.cache").expanduser()
        return cls(base / "tracejit")

    def _warn(self, message: str) -> None:
        """Warn once per cache object."""
        with self._lock:
            warn, self._warned = not self._warned, True
        if warn:
            warnings.warn(f"tracejit: {message}", RuntimeWarning, stacklevel=3)

    def _secret(self, create: bool = False) -> bytes | None:
        """This user's key, once the directory and the key file are trusted; the key file is
        made if absent, the directory too if `create`. None if the directory is absent, or if
        either is refused (then the cache is disabled: why in `_refused`, and one warning).
        A file system failure is an OSError."""
        self._refused = None
        try:
            st = os.stat(self.directory)     # a symbolic link to a folder is that folder
        except FileNotFoundError:
            if not create:
                return None
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.directory)
        problem = (None if stat.S_ISDIR(st.st_mode) else f"not a directory but "
                   f"{file_kind(st.st_mode)}") or untrusted(st, 0o022)
        if problem is not None:
            return self._disable(f"the cache directory {self.directory}: {problem}")
        path = self.directory / KEY_FILE
        try:
            try:
                secret = read_private(path, KEY_BYTES, 0o077)
            except FileNotFoundError:
                self._make_key(path)
                secret = read_private(path, KEY_BYTES, 0o077)   # this one's, or a racer's
        except Refused as refusal:
            problem = str(refusal)
        else:
            if len(secret) == KEY_BYTES:
                return secret
            problem = f"{len(secret)} bytes, not {KEY_BYTES}"
        return self._disable(f"the key file {path}: {problem} (remove it, and a new key is made)")

    def _disable(self, problem: str) -> None:
        self._refused = problem
        self._warn(f"the compiled-code cache is disabled, {problem}")

    def _make_key(self, path: Path) -> None:
        """Make the key file whole or not at all: a private temporary file (O_EXCL, 0600),
        hard-linked to `path`, which fails if another process made it first. Where the file
        system has no hard links, `path` is created with O_EXCL."""
        temp = temp_beside(path)
        key = secrets.token_bytes(KEY_BYTES)
        try:
            with open(temp, "wb") as file:
                file.write(key)
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:
            with contextlib.suppress(FileExistsError):
                # O_EXCL: a new file, never an existing one or a planted link.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_CLOEXEC", 0), 0o600)
                with os.fdopen(fd, "wb") as file:
                    file.write(key)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _path(self, key: Mapping[str, str]) -> Path:
        whole = hashlib.sha256(_canonical(key)).hexdigest()  # also checks the key's types
        # Without an "ir" part, the first part in the caller's order names the folder.
        part = "ir" if "ir" in key else next(iter(key))
        folder = hashlib.sha256(_canonical({part: key[part]})).hexdigest()[:16]
        return self.directory / folder / whole

    def _check(self, data: bytes, key: Mapping[str, str],
               secret: bytes) -> tuple[bytes | None, str | None]:
        """(payload, None) if `data` is a valid entry for `key`, else (None, what is wrong)."""
        lines = data.split(b"\n", 3)
        if len(lines) < 4:
            return None, "truncated header"
        head, key_line, meta, payload = lines
        if not head.startswith(MAGIC + b" "):
            return None, "not a tracejit cache entry"
        if head != _head():
            version = head[len(MAGIC) + 1:].decode("ascii", "replace")
            return None, f"format version {version!r}, expected {VERSION}"
        if key_line != _key_line(key):
            return None, "key mismatch"
        if meta.split(b" ")[0] != b"%d" % len(payload):
            return None, "length mismatch: truncated or extended"
        if not hmac.compare_digest(meta, _meta_line(secret, key, payload)):
            return None, "MAC mismatch: damaged, or not written with this user's key"
        return payload, None

    def _discard(self, path: Path, what: str) -> str:
        """Remove a bad entry file (best-effort) and remember why, for `explain`: `what` is
        'corrupt (...)' or 'refused (...)'."""
        try:
            path.unlink(missing_ok=True)  # another reader may have removed it first
            reason = f"the entry was {what} and was removed"
        except OSError as error:
            reason = f"the entry was {what} and could not be removed: {error}"
        self._reasons[path] = reason
        return reason

    def _read(self, path: Path, key: Mapping[str, str], secret: bytes) -> bytes | str:
        """The payload of the entry at `path`, or why it is not one (the entry then removed).
        A file system failure (absent, unreadable) is an OSError."""
        try:
            data = read_private(path, MAX_ENTRY_BYTES)
        except Refused as refusal:
            return self._discard(path, f"refused ({refusal})")
        payload, problem = self._check(data, key, secret)
        return payload if problem is None else self._discard(path, f"corrupt ({problem})")

    def load(self, key: Mapping[str, str]) -> bytes | None:
        """The payload stored under `key`, or None on a miss (absent, corrupt, refused or
        unreadable)."""
        path = self._path(key)
        try:
            secret = self._secret()
            found = None if secret is None else self._read(path, key, secret)
        except OSError:
            return None
        return found if isinstance(found, bytes) else None

    def store(self, key: Mapping[str, str], payload: bytes) -> None:
        """Write `payload` under `key` atomically; a failing file system, a refused directory
        or key file, or an entry over MAX_ENTRY_BYTES makes this a no-op."""
        path = self._path(key)
        payload = bytes(payload)
        try:
            secret = self._secret(create=True)
            if secret is None:
                return
            data = b"\n".join([_head(), _key_line(key), _meta_line(secret, key, payload),
                               payload])
            if len(data) > MAX_ENTRY_BYTES:
                return                  # it would be refused
            path.parent.mkdir(mode=0o700, exist_ok=True)
            # Concurrent writers each replace a whole file (mode 0600), the last one wins. A
            # file torn by a power loss fails its MAC on load.
            with atomic_write(path) as file:
                file.write(data)
        except OSError as error:
            self._warn(f"cannot write the compiled-code cache in {self.directory}, "
                       f"continuing without it: {error}")
            return
        self._reasons.pop(path, None)

    def explain(self, key: Mapping[str, str]) -> str:
        """Why `key` misses (or 'hit'): 'no entry for this IR', or 'an entry for this IR
        differs in: llvm (15.0.7 != 22.1.0), cpu (...)' (the entry's value first), or 'the
        entry was corrupt (MAC mismatch: ...) and was removed', 'the entry was refused (a
        FIFO) and was removed', 'the disk cache is disabled: the key file ...', ..."""
        path = self._path(key)
        try:
            secret = self._secret()
        except OSError:
            secret = None
        if self._refused is not None:
            return f"the disk cache is disabled: {self._refused}"
        if secret is None:
            return "no entry for this IR"
        try:
            found = self._read(path, key, secret)
        except (FileNotFoundError, NotADirectoryError):
            found = None
        except OSError as error:
            return f"the entry could not be read: {error}"
        if found is not None:
            return "hit" if isinstance(found, bytes) else found
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
        """The key in an entry file's header, or None if it is not a readable entry (only to
        name differences: nothing read here is run)."""
        if "." in path.name:  # a temp file of a store in progress
            return None
        try:
            lines = read_private(path, MAX_ENTRY_BYTES).split(b"\n", 2)
            if len(lines) < 3 or lines[0] != _head():
                return None
            other = json.loads(lines[1])
        except (OSError, ValueError, Refused):
            return None
        if not isinstance(other, dict) or not all(isinstance(v, str) for v in other.values()):
            return None
        return other
