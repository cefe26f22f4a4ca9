"""Writing files whole or not at all: the one atomic-write helper of the project (checkpoints,
IR dumps, the disk caches of compiled code)."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import BinaryIO, Iterator


def temp_beside(path: str | os.PathLike, private: bool = True) -> str:
    """Create a new, empty temporary file in `path`'s folder (`O_EXCL`: never an existing file
    or a planted link) and return its name, `.NAME.RANDOM.tmp`. `private`: mode 0600, else
    0666 less the umask, as `open(path, "w")` would create `path`."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    os.close(os.open(temp, flags, 0o600 if private else 0o666))
    return temp


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, private: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary file whose contents replace `path` whole when the block ends without an
    exception: a temporary file beside `path` (`temp_beside`), then `os.replace`, atomic on
    POSIX, so readers see the old file or the new one, never a part. On an exception the
    temporary file is removed, `path` is left as it was, and the exception propagates."""
    temp = temp_beside(path, private)
    try:
        with open(temp, "wb") as file:
            yield file
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
