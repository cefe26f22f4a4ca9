"""Files the project writes and reads: written whole or not at all (`atomic_write`, for
checkpoints, IR dumps and the disk caches), and read only when they are regular files, opened
without blocking (`open_regular`, for checkpoints and cache entries)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import BinaryIO, Iterator

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFREG: "a regular file",
          stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}
# Reading never blocks (opening a FIFO would wait for a writer); absent flags are 0.
_READ_FLAGS = os.O_RDONLY | sum(getattr(os, name, 0) for name in
                                ("O_NONBLOCK", "O_CLOEXEC", "O_BINARY"))


def file_kind(mode: int) -> str:
    """What a file of `st_mode` `mode` is, in words: "a FIFO", "a directory", ..."""
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


class NotRegularFile(ValueError):
    """A path to be read that is not a regular file; `kind` says what it is (`file_kind`)."""

    def __init__(self, path, kind: str):
        super().__init__(f"{os.fspath(path)} is not a regular file but {kind}")
        self.kind = kind


def open_regular(path: str | os.PathLike, follow_links: bool = True) -> tuple[int, os.stat_result]:
    """A descriptor open for reading on `path`, and its status, if it is a regular file; else
    NotRegularFile. The open never blocks, and the check is made on the descriptor, so the file
    cannot be swapped between them. Without `follow_links`, a final symbolic link is refused
    too. A file system failure is an OSError."""
    flags = _READ_FLAGS | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise NotRegularFile(path, "a symbolic link") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFile(path, file_kind(st.st_mode))
    return fd, st


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
