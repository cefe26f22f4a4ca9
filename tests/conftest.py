"""Shared test configuration.

Under CI (the CI environment variable set), hypothesis runs derandomized: the same examples
every run, so a CI result is reproducible. Locally it explores new random examples each run.

Every CUDA module generated while the tests run goes to `NVCC` (tests/nvcc_batches.py), which
compiles its distinct kernels with nvcc in background batches; tests/cuda/test_nvcc.py, which
runs last, waits for them and fails on any error. In a parallel run (`-n`, pytest-xdist) each
worker process has its own `NVCC`, and the test runs in one of them while the others may still
be generating kernels: there every worker checks the rest of its kernels after its last test,
and the controlling process fails the run on any error they report.
"""

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

from tracejit.codegen import cuda as cuda_codegen
from tracejit.runtime.cuda_emulator import SANITIZE_ENV

from nvcc_batches import NvccChecker

SANITIZED = bool(os.environ.get(SANITIZE_ENV))

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Every generated module's kernels, compiled with nvcc as the session goes (None: no nvcc, or
#: the sanitized rerun of tests/cuda/test_sanitized_emulator.py, whose kernels the main run has).
NVCC = NvccChecker() if NvccChecker.available() and not SANITIZED else None

#: The folder where the workers of a parallel run leave their nvcc failures (set by the
#: controlling process, inherited by the workers).
REPORTS_ENV = "TRACEJIT_NVCC_REPORTS"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A disk cache of compiled code of its own, in a folder not made yet."""
    directory = tmp_path / "cache"
    monkeypatch.setenv("TRACEJIT_CACHE_DIR", str(directory))
    return directory


@pytest.fixture(autouse=True, scope="session")
def _record_cuda_modules():
    """Record the source of every CudaLowering made during the session."""
    original = cuda_codegen.CudaLowering.__init__

    def recording(self, program, *args, **kwargs):
        original(self, program, *args, **kwargs)
        if NVCC is not None:
            NVCC.add(self.source, os.environ.get("PYTEST_CURRENT_TEST", "?"))

    cuda_codegen.CudaLowering.__init__ = recording
    yield
    cuda_codegen.CudaLowering.__init__ = original


def pytest_collection_modifyitems(items):
    """Tests marked `last` run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (nvcc checks)")
    if not hasattr(config, "workerinput"):
        os.environ[REPORTS_ENV] = tempfile.mkdtemp(prefix="tracejit-nvcc-reports-")


def pytest_sessionfinish(session):
    """After the last test: a process that ran the nvcc check compiles the kernels generated
    since (a worker of a parallel run leaves its failures in the reports folder); the
    controlling process fails the run on any failure reported."""
    folder = Path(os.environ[REPORTS_ENV])
    worker = getattr(session.config, "workerinput", None)
    checked = any(item.nodeid.startswith("tests/cuda/test_nvcc.py") for item in session.items)
    if NVCC is not None and checked:
        failures = NVCC.finish()
        NVCC.close()
        name = worker["workerid"] if worker else "main"
        if failures:
            (folder / f"{name}.txt").write_text("\n".join(failures))
    if worker is None:
        reports = sorted(folder.glob("*.txt"))
        session.config.stash[_NVCC_FAILURES] = [p.read_text() for p in reports]
        if reports:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        for path in reports:
            path.unlink()
        folder.rmdir()


_NVCC_FAILURES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, config):
    """The nvcc failures found after the last test (see pytest_sessionfinish)."""
    for text in config.stash.get(_NVCC_FAILURES, []):
        terminalreporter.section("kernels that nvcc rejected", red=True)
        terminalreporter.write_line(text)
