"""The README's first snippet runs as pasted, and its numbers are NumPy's; the dump snippet of
its tour runs on the quick start's `step`."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    """The ```python blocks of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


def test_first_snippet_runs_as_pasted_and_agrees_with_numpy():
    blocks = python_blocks()
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), ns)
    w1, w2, x, y = (ns[k].astype(np.float64) for k in ("w1", "w2", "x", "y"))
    h = np.maximum(x @ w1, 0)
    r = h @ w2 - y
    np.testing.assert_allclose(ns["l"], np.sum(r ** 2), rtol=1e-4)
    np.testing.assert_allclose(ns["g2"], 2 * h.T @ r, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(ns["g1"], x.T @ ((2 * r @ w2.T) * (h > 0)), rtol=1e-3, atol=1e-2)
    assert "func @loss" in out.getvalue()

    # The tour's look at every stage, on the same step.
    dump = next(b for b in blocks if "step.dump(" in b)
    with contextlib.redirect_stdout(out):
        exec(compile(dump, "README.md", "exec"), ns)
    assert {"traced", "fused"} <= set(ns["stages"])
