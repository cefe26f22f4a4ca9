"""Random numbers drawn while tracing are an error at the user's line (they would be frozen into
the compiled program), NumPy's generators behave as before outside tracing, and the report lists
the arrays baked into a program."""

from __future__ import annotations

import functools
import re
import threading

import numpy as np
import pytest

import tracejit as tj

X = np.ones(3)
RNG = np.random.default_rng(0)
LEGACY = np.random.RandomState(0)


def legacy_module(x):
    return x + np.random.standard_normal(x.shape)


def global_generator(x):
    noise = RNG.normal(size=x.shape)
    y = x * 2.0
    return y + noise


def legacy_object(x):
    return x * LEGACY.rand(3)


def unseeded_inside(x):
    rng = np.random.default_rng()
    return x + rng.normal(size=3)


def drawn_last(x):
    return x, RNG.normal()


def closure():
    rng = np.random.default_rng(1)

    def dropout(x):
        return x * (rng.random(x.shape) > 0.5)
    return dropout


class Model:
    def __init__(self):
        self.rng = np.random.default_rng(2)

    def loss(self, x):
        return np.sum(x * self.rng.random(3))


def line_of(fn, text):
    import inspect
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize("fn,text,what", [
    (legacy_module, "standard_normal", "np.random.standard_normal"),
    (global_generator, "RNG.normal", "Generator"),
    (legacy_object, "LEGACY.rand", "RandomState"),
    (unseeded_inside, "rng.normal", "Generator"),
])
@pytest.mark.parametrize("transform", ["trace", "jit", "grad"])
def test_drawing_while_tracing_names_the_line(fn, text, what, transform):
    run = {"trace": lambda: tj.trace(fn, X),
           "jit": lambda: tj.jit(fn)(X),
           "grad": lambda: tj.grad(lambda x: np.sum(fn(x)))(X)}[transform]
    with pytest.raises(tj.UnsupportedError, match="pass them in as an argument") as info:
        run()
    message = str(info.value)
    assert what in message and "frozen" in message
    want = line_of(fn, text)
    got = int(re.search(r"test_random_guard\.py:(\d+)", message).group(1))
    # The line that drew, or (for a generator object) the first traced operation after it.
    assert want <= got <= want + 1


@pytest.mark.parametrize("make", [closure, lambda: Model().loss,
                                  lambda: functools.partial(lambda x, r: x * r.random(), r=RNG)])
def test_generators_reached_through_closures_objects_and_partials(make):
    with pytest.raises(tj.UnsupportedError, match="drew random numbers"):
        tj.jit(make())(X)


def test_draw_after_the_last_operation():
    with pytest.raises(tj.UnsupportedError, match="after the last traced operation"):
        tj.jit(drawn_last)(X)


def test_static_generator_argument():
    with pytest.raises(tj.UnsupportedError, match="drew random numbers"):
        tj.jit(lambda x, g: x + g.normal(), static_argnums=1)(X, np.random.default_rng(3))


def test_seeded_generator_made_inside_is_exact():
    """default_rng(seed) inside the function draws the same numbers on every NumPy call too."""
    def fn(x):
        return x + np.random.default_rng(5).normal(size=3)
    np.testing.assert_allclose(tj.jit(fn)(X), fn(X))


def test_random_numbers_outside_tracing_are_unchanged():
    np.random.seed(7)
    a = np.random.standard_normal(4)
    np.random.seed(7)
    b = np.random.RandomState(7).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert np.random.standard_normal.__name__ == "standard_normal"
    np.testing.assert_array_equal(np.random.default_rng(3).random(2),
                                  np.random.Generator(np.random.PCG64(3)).random(2))


def test_other_threads_draw_while_one_traces():
    """The guard is per thread: a thread not tracing draws freely meanwhile."""
    stop = threading.Event()
    drawn, failures = [], []

    def draw():
        try:
            while not stop.is_set():
                drawn.append(np.random.standard_normal())
        except Exception as exc:
            failures.append(exc)

    t = threading.Thread(target=draw)
    t.start()
    try:
        for k in range(20):
            f = tj.jit(lambda x: np.tanh(x) * (k + 1.0))
            np.testing.assert_allclose(f(X), np.tanh(X) * (k + 1.0))
    finally:
        stop.set()
        t.join()
    assert not failures and drawn


def test_report_lists_baked_constants():
    w = np.ones((64, 32))
    f = tj.jit(lambda x: np.sum(x @ w), backend="interpret")
    report = f.report(np.ones((2, 64)))
    assert "constants baked into the program: 1 array (16.0 KiB)" in report
    assert "f64[64,32]" in report.split("constants baked")[1]
    assert "constants baked" not in tj.jit(lambda x: x * 2.0, backend="interpret").report(X)
