"""The README's first snippet runs as pasted, and its numbers are NumPy's; the dump snippet of
its tour runs on the quick start's `step`; the snippets of its transformations run in order,
and their numbers are checked against NumPy and finite differences."""

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


def test_transformation_snippets_run_in_order_and_are_right():
    text = README.read_text()
    section = text[text.index("### Transformations"):text.index("### `jit`")]
    blocks = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    assert len(blocks) >= 8
    ns: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, "README.md", "exec"), ns)
    w1, w2, x, y = (ns[k] for k in ("w1", "w2", "x", "y"))
    h = np.maximum(x @ w1, 0)
    r = h @ w2 - y
    np.testing.assert_allclose(ns["g2"], 2 * h.T @ r, rtol=1e-12)
    np.testing.assert_allclose(ns["g1"], x.T @ ((2 * r @ w2.T) * (h > 0)), rtol=1e-12)
    # The Jacobian of h @ w2 in w2 is h on the diagonal of the output columns; the Hessian of
    # the loss in w2 is 2 h^T h on that diagonal.
    eye = np.eye(3)
    np.testing.assert_allclose(ns["J"], np.einsum("nk,ij->nikj", h, eye), atol=1e-12)
    np.testing.assert_allclose(ns["H"], np.einsum("kl,ij->kilj", 2 * h.T @ h, eye),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ns["Hv"], 2 * h.T @ h @ ns["t2"], rtol=1e-12)
    # per-example gradients: each example's own
    for i in (0, 7):
        hi = np.maximum(x[i] @ w1, 0)
        ri = hi @ w2 - y[i]
        np.testing.assert_allclose(ns["g2s"][i], 2 * np.outer(hi, ri), rtol=1e-12)
    assert "[0.5 1. ]" in out.getvalue()
    # The IR the README shows for the JVP is what the snippet prints.
    shown = section[section.index("func @loss_jvp"):]
    shown = shown[:shown.index("```")].strip()
    assert shown in out.getvalue()
    # checkpoint's gradient, along a random direction, against central differences of NumPy
    def deep(w):
        hh = np.tanh(np.tanh(np.tanh(np.tanh(x @ w) @ w) @ w) @ w)
        return np.sum(hh ** 2)
    w, v = np.eye(20) * 0.5, np.random.default_rng(1).standard_normal((20, 20))
    fd = (deep(w + 1e-6 * v) - deep(w - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(np.sum(ns["g"] * v), fd, rtol=1e-6)


def test_random_snippet_runs_and_draws_new_masks():
    text = README.read_text()
    section = text[text.index("### Random numbers"):text.index("### `jit`")]
    (block,) = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    ns: dict = {"np": np}
    exec("import tracejit as tj\n" + block, ns)
    tj = ns["tj"]
    w = ns["w"]
    keep = tj.random.bernoulli(tj.random.split(tj.random.key(0))[1], 0.9, (4, 5))
    np.testing.assert_allclose(w, np.where(keep, np.float32(1 / 0.9), 0.0), rtol=1e-6)
    second, _ = ns["noisy_step"](np.ones((4, 5), np.float32), ns["key"])
    assert not np.array_equal(second != 0, keep)           # another key, another mask
    assert ns["z"].shape == (3,)
