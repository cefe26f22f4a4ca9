"""The seed programs, on the interpret backend: each trains or differentiates as its source says.

Oracles: closed-form optima (w* = 5, w* = 10), the hand-derived first step, a least-squares fit
by NumPy, the analytic gradients of sum(x*y + z), and the losses of the two-layer networks
falling by orders of magnitude.
"""

import numpy as np
import pytest

import tracejit as tj


def test_quadratic_gradient_descent_reaches_five():
    def cost(w):
        return w ** 2 - 10.0 * w + 25.0

    step = tj.jit(lambda w: w - 0.01 * tj.grad(cost)(w))
    w = np.float32(0.0)
    w = step(w)
    assert w == pytest.approx(0.1, abs=1e-7)          # w - lr * (2w - 10) at w = 0
    for _ in range(999):
        w = step(w)
    assert w == pytest.approx(5.0, abs=1e-4)
    assert step.trace_count == 1


def test_quadratic_with_coefficients_as_data_reaches_ten():
    def cost(w, c):
        return c[0] * w ** 2 + c[1] * w + c[2]

    step = tj.jit(lambda w, c: w - 0.01 * tj.grad(cost)(w, c))
    c = np.array([1.0, -20.0, 100.0], dtype=np.float32)
    w = np.float32(0.0)
    for _ in range(1000):
        w = step(w, c)
    assert w == pytest.approx(10.0, abs=1e-3)
    assert step.trace_count == 1


def test_linear_regression_recovers_slope_and_intercept():
    rng = np.random.default_rng(0)
    x = rng.uniform(-10, 10, 200).astype(np.float32)
    y = (0.1 * x + 0.3 + rng.normal(0, 0.15, 200)).astype(np.float32)

    def loss(w, b, x, y):
        return np.mean((w * x + b - y) ** 2)

    @tj.jit
    def step(w, b, x, y):
        l, (gw, gb) = tj.value_and_grad(loss, argnums=(0, 1))(w, b, x, y)
        return l, w - 0.01 * gw, b - 0.01 * gb

    w, b = np.float32(0.0), np.float32(0.0)
    for _ in range(1000):
        l, w, b = step(w, b, x, y)
    slope, intercept = np.polyfit(x.astype(np.float64), y.astype(np.float64), 1)
    assert w == pytest.approx(slope, abs=1e-4)
    assert b == pytest.approx(intercept, abs=1e-3)
    assert abs(w - 0.1) < 0.01 and abs(b - 0.3) < 0.05
    assert l == pytest.approx(np.mean((slope * x + intercept - y) ** 2), rel=1e-3)


def test_graph_gradients_of_sum_x_times_y_plus_z():
    rng = np.random.default_rng(1)
    x, y, z = (rng.standard_normal((3, 4)) for _ in range(3))
    c, (gx, gy, gz) = tj.value_and_grad(lambda x, y, z: np.sum(x * y + z), argnums=(0, 1, 2))(
        x, y, z)
    assert c == pytest.approx(np.sum(x * y + z), rel=1e-12)
    np.testing.assert_array_equal(gx, y)
    np.testing.assert_array_equal(gy, x)
    np.testing.assert_array_equal(gz, np.ones_like(z))


def _relu_net(w1, w2, x):
    return np.maximum(x @ w1, 0.0) @ w2


def test_two_layer_net_l2_loss_lr_1e5_fifty_steps():
    # N, D, H = 64, 1000, 100; y_pred = relu(x @ w1) @ w2 with w2: H x D; L2 loss
    # (squared error summed over features, averaged over the batch); lr 1e-5; 50 steps.
    n, d, h = 64, 1000, 100
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((n, d)).astype(np.float32) for _ in range(2))
    w1 = rng.standard_normal((d, h)).astype(np.float32)
    w2 = rng.standard_normal((h, d)).astype(np.float32)

    def loss(w1, w2, x, y):
        diff = _relu_net(w1, w2, x) - y
        return np.mean(np.sum(diff ** 2, axis=1))

    @tj.jit
    def step(w1, w2, x, y):
        l, (g1, g2) = tj.value_and_grad(loss, argnums=(0, 1))(w1, w2, x, y)
        return l, w1 - 1e-5 * g1, w2 - 1e-5 * g2

    expected_first = loss(w1, w2, x, y)          # plain NumPy on the initial weights
    losses = []
    for _ in range(50):
        l, w1, w2 = step(w1, w2, x, y)
        losses.append(float(l))
    assert losses[0] == pytest.approx(float(expected_first), rel=1e-5)
    assert losses[-1] < losses[0] / 1e4
    assert all(np.isfinite(losses))


def test_two_layer_net_sum_of_squares_lr_1e6_500_steps():
    n, d_in, h, d_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    y = rng.standard_normal((n, d_out)).astype(np.float32)
    w1 = rng.standard_normal((d_in, h)).astype(np.float32)
    w2 = rng.standard_normal((h, d_out)).astype(np.float32)

    def loss(w1, w2, x, y):
        return np.sum((_relu_net(w1, w2, x) - y) ** 2)

    # The first loss against NumPy directly.
    assert float(tj.jit(loss)(w1, w2, x, y)) == pytest.approx(
        float(np.sum((np.maximum(x @ w1, 0) @ w2 - y) ** 2)), rel=1e-5)

    step = tj.jit(lambda w1, w2, x, y: (loss(w1, w2, x, y),) + tuple(
        w - 1e-6 * g for w, g in zip((w1, w2), tj.grad(loss, argnums=(0, 1))(w1, w2, x, y))))
    first = None
    for _ in range(500):
        l, w1, w2 = step(w1, w2, x, y)
        first = float(l) if first is None else first
    assert float(l) < first / 1e6
    assert step.trace_count == 1
