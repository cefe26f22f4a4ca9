"""Compiling every generated CUDA kernel with nvcc, in batches, while the tests run.

`NvccChecker.add(source, origin)` splits a generated module into its kernels and keeps the
distinct ones (comments and `extern "C"` dropped, so that identical kernels of different
modules are one and kernel names may repeat). Each full batch becomes one translation unit (the
device helpers once, then each kernel in a namespace of its own), compiled for every
architecture by one background nvcc process at a time, so that the compiles overlap the rest
of the test session. `finish()` compiles what is left, waits, and returns the failures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from tracejit.codegen.cuda import preamble

NVCC = shutil.which("nvcc")
ARCHS = ("sm_80", "sm_90")
BATCH = 1500


def kernels_of(source: str) -> list[str]:
    """A module's kernel functions, without comments and `extern "C"`."""
    body = source.split(preamble(), 1)[1]
    functions = []
    for chunk in body.strip().split("\n\n"):
        code = "\n".join(line for line in chunk.splitlines() if not line.startswith("//"))
        functions.append(code.replace('extern "C" __global__', "__global__"))
    return functions


def translation_unit(functions: list[str]) -> str:
    parts = ["#include <mma.h>", preamble()]
    for i, code in enumerate(functions):
        parts.append(f"namespace module{i} {{\n{code}\n}}  // module{i}")
    return "\n".join(parts)


def command(path: str, arch: str) -> list[str]:
    return [NVCC, "-cubin", f"-arch={arch}", "--fmad=false", "-std=c++17", "-o", os.devnull,
            path]


def failing_modules(text: str, stderr: str) -> set[int]:
    """The kernels (namespace numbers) whose lines nvcc complained about."""
    starts = [(text.count("\n", 0, m.start()) + 1, int(m.group(1)))
              for m in re.finditer(r"namespace module(\d+) ", text)]
    bad = set()
    for m in re.finditer(r"\((\d+)\): error", stderr):
        line = int(m.group(1))
        owner = [i for first, i in starts if first <= line]
        if owner:
            bad.add(owner[-1])
    return bad


class NvccChecker:
    """Distinct kernels, compiled in background batches (see the module docstring)."""

    def __init__(self):
        self.origin: dict[str, str] = {}       # kernel → where it first came from
        self.pending: list[str] = []
        self.queue: list[tuple[str, str, list[str]]] = []       # (path, arch, kernels)
        self.running: tuple | None = None                        # (job, Popen)
        self.failures: list[str] = []
        self.folder = tempfile.mkdtemp(prefix="tracejit-nvcc-")
        self.batches = 0
        self.compiled = 0

    @staticmethod
    def available() -> bool:
        return NVCC is not None

    def add(self, source: str, origin: str) -> None:
        for code in kernels_of(source):
            if code not in self.origin:
                self.origin[code] = origin
                self.pending.append(code)
        if len(self.pending) >= BATCH:
            self._batch()
        self._advance()

    def _batch(self) -> None:
        if not self.pending:
            return
        path = os.path.join(self.folder, f"batch{self.batches}.cu")
        self.batches += 1
        with open(path, "w") as f:
            f.write(translation_unit(self.pending))
        self.queue += [(path, arch, self.pending) for arch in ARCHS]
        self.compiled += len(self.pending)
        self.pending = []

    def _advance(self, wait: bool = False) -> None:
        """Collect a finished compile and start the next (one nvcc at a time)."""
        while True:
            if self.running is not None:
                job, process = self.running
                if not wait and process.poll() is None:
                    return
                process.wait()
                with open(self._log(job)) as log:
                    stderr = log.read()
                if process.returncode:
                    self._failed(job, stderr)
                self.running = None
            if not self.queue:
                return
            job = self.queue.pop(0)
            # nvcc's warnings go to a file: through a pipe that is read only at the end, a
            # batch's warnings fill it and the compile stops until then.
            with open(self._log(job), "w") as log:
                process = subprocess.Popen(command(job[0], job[1]), stdout=subprocess.DEVNULL,
                                           stderr=log)
            self.running = (job, process)
            if not wait:
                return

    @staticmethod
    def _log(job) -> str:
        """The file of nvcc's messages for a job (a batch and an architecture)."""
        return f"{job[0]}.{job[1]}.log"

    def _failed(self, job, stderr: str) -> None:
        path, arch, kernels = job
        text = open(path).read()
        for i in sorted(failing_modules(text, stderr))[:3]:
            self.failures.append(f"{arch}: kernel module{i} of {path} "
                                 f"(from {self.origin[kernels[i]]})")
        self.failures.append(stderr[:4000])

    def finish(self) -> list[str]:
        """Compile the rest, wait for every compile; the failures (empty when all compiled).
        Kernels added later are checked by the next call."""
        self._batch()
        self._advance(wait=True)
        return self.failures

    def close(self) -> None:
        """Remove the batches' sources, unless one failed (they are kept to be looked at)."""
        if not self.failures:
            shutil.rmtree(self.folder, ignore_errors=True)
