"""The emulated kernels under AddressSanitizer: the deterministic random programs
(tests/ir/test_random_programs.py: every operation, the regressions) and the zero-sized
dimensions of every kernel kind (tests/cuda/test_zero_sizes.py) rerun on the CUDA emulator with
its modules built with `-fsanitize=address` (TRACEJIT_EMULATOR_SANITIZE=address).

A kernel that reads or writes outside its buffers (a tile of an empty batch, one element past
an argument) only sometimes corrupts the heap visibly; under ASan it stops the run with a report
naming the kernel. The ASan runtime must be loaded before Python starts when the instrumented
code is a shared library loaded later, so the tests run in a child pytest with
`LD_PRELOAD=$(g++ -print-file-name=libasan.so)` and `ASAN_OPTIONS=detect_leaks=0` (Python itself
is not instrumented and keeps memory until exit). Skipped where g++ or its libasan is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tracejit.runtime.cuda_emulator import SANITIZE_ENV

TESTS = Path(__file__).resolve().parents[1]
TARGETS = [TESTS / "ir" / "test_random_programs.py", TESTS / "cuda" / "test_zero_sizes.py"]
# The emulated runs of those files: the random programs check every backend, the zero-size
# tests name the emulator's runs.
SELECT = "every_operation or regressions or emulator or tf32"


def libasan() -> str | None:
    """The path of g++'s AddressSanitizer runtime, or None."""
    if shutil.which("g++") is None:
        return None
    done = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True,
                          text=True, check=False)
    path = done.stdout.strip()
    return path if done.returncode == 0 and os.path.isabs(path) and os.path.exists(path) \
        else None


LIBASAN = libasan()


@pytest.mark.skipif(LIBASAN is None, reason="needs g++ and its libasan")
@pytest.mark.skipif(bool(os.environ.get(SANITIZE_ENV)), reason="already the sanitized run")
def test_emulated_kernels_under_address_sanitizer():
    env = dict(os.environ, LD_PRELOAD=LIBASAN, ASAN_OPTIONS="detect_leaks=0",
               **{SANITIZE_ENV: "address"})
    # -v names each test before it runs, and ASan's report (written to file descriptor 2 as
    # the process stops) must not go into pytest's capture of it: --capture=sys.
    command = [sys.executable, "-m", "pytest", "-v", "-x", "--capture=sys", "-p",
               "no:cacheprovider", "-k", SELECT, *map(str, TARGETS)]
    done = subprocess.run(command, cwd=TESTS.parent, env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, (f"the emulated kernels under AddressSanitizer "
                                  f"(exit status {done.returncode}):\n{output[-12000:]}")
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 100, output[-3000:]
