"""Helpers shared by tests of several folders (tests/ is on the import path)."""

from __future__ import annotations

import contextlib
import signal
import threading

import pytest


@contextlib.contextmanager
def deadline(seconds: float, what: str):
    """Fail the test, instead of hanging it, when its body blocks for `seconds` (opening a
    FIFO, say): SIGALRM is sent to the main thread itself (a signal another thread received
    would not interrupt its system call), and its handler fails the test. pytest's Failed is
    no Exception, so no `except OSError` on the way (a TimeoutError is one) can swallow it."""
    def expired(signum, frame):
        pytest.fail(f"{what} blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    timer = threading.Timer(seconds, signal.pthread_kill,
                            (threading.main_thread().ident, signal.SIGALRM))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        signal.signal(signal.SIGALRM, previous)


def cuda_backend() -> str:
    """"cuda" where pycuda and a GPU are usable, else "cuda-emulator"."""
    from tracejit.runtime.backends import get
    return "cuda" if get("cuda").why_unavailable() is None else "cuda-emulator"
