"""Shared test configuration.

Under CI (the CI environment variable set), hypothesis runs derandomized: the same examples
every run, so a CI result is reproducible. Locally it explores new random examples each run.

Every CUDA module generated while the tests run is recorded (`GENERATED_CUDA`), so that
tests/cuda/test_nvcc.py, which runs last, can compile all of them with nvcc.
"""

import os

import pytest
from hypothesis import settings

from tracejit.codegen import cuda as cuda_codegen

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: {module source: a description of where it came from}, in order of generation.
GENERATED_CUDA: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="session")
def _record_cuda_modules():
    """Record the source of every CudaLowering made during the session."""
    original = cuda_codegen.CudaLowering.__init__

    def recording(self, program, *args, **kwargs):
        original(self, program, *args, **kwargs)
        GENERATED_CUDA.setdefault(self.source, os.environ.get("PYTEST_CURRENT_TEST", "?"))

    cuda_codegen.CudaLowering.__init__ = recording
    yield
    cuda_codegen.CudaLowering.__init__ = original


def pytest_collection_modifyitems(items):
    """Tests marked `last` run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def pytest_configure(config):
    config.addinivalue_line("markers", "last: run after every other test (nvcc checks)")
