"""The programs in examples/: each one's `main([...])` run in-process with small arguments, and
its numbers checked against oracles (closed forms, np.polyfit, NumPy forward passes and
gradients written out by hand, accuracy recomputed from the true labels); and each one run
once as a script.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tracejit as tj
from support import cuda_backend

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def load_example(name):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"tracejit_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 1000


def hide_matplotlib(monkeypatch):
    """Make `import matplotlib` fail, as on a machine without it."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


# ---------------------------------------------------------------------------------------------
# quadratic.py


@pytest.mark.parametrize("steps", [1, 10, 1000])
def test_quadratic_follows_the_closed_form(steps):
    # w_{t+1} = w_t - lr * 2 c0 (w_t - m)  =>  w_t = m (1 - (1 - 2 c0 lr)**t), m the minimum
    out = load_example("quadratic").main(["--steps", str(steps)])
    lr = 0.01
    np.testing.assert_allclose(out["first"], 0.1, rtol=1e-12)
    np.testing.assert_allclose(out["first_data"], 0.2, rtol=1e-12)
    np.testing.assert_allclose(out["w"], 5 * (1 - (1 - 2 * lr) ** steps), rtol=1e-10)
    np.testing.assert_allclose(out["w_data"], 10 * (1 - (1 - 2 * lr) ** steps), rtol=1e-10)
    assert out["trace_counts"] == (1, 1)


def test_quadratic_reaches_the_minima():
    out = load_example("quadratic").main([])
    assert abs(out["w"] - 5.0) < 1e-6
    assert abs(out["w_data"] - 10.0) < 1e-6


# ---------------------------------------------------------------------------------------------
# linear_regression.py


def linreg_data():
    """The data as the example's docstring describes it, generated here independently."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-10.0, 10.0, 200)
    y = 0.1 * x + 0.3 + rng.normal(0.0, 0.15, 200)
    return x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)


def test_linear_regression_matches_polyfit(tmp_path):
    path = tmp_path / "fit.png"
    out = load_example("linear_regression").main(["--plot", str(path)])
    x, y = linreg_data()
    w_ls, b_ls = np.polyfit(x, y, 1)
    np.testing.assert_allclose(out["polyfit"], (w_ls, b_ls), rtol=1e-12)
    for name in ("sgd", "adam"):
        w, b = out[name]
        assert abs(w - w_ls) < 1e-4 and abs(b - b_ls) < 1e-4, (name, w, b, w_ls, b_ls)
        losses = out[f"{name}_losses"]
        # the first loss is at w = b = 0; the last one is the least-squares residual
        np.testing.assert_allclose(losses[0], np.mean(y ** 2), rtol=1e-5)
        np.testing.assert_allclose(losses[-1], np.mean((w_ls * x + b_ls - y) ** 2), rtol=1e-4)
    assert abs(w_ls - 0.1) < 0.01 and abs(b_ls - 0.3) < 0.05      # the data is what it says
    assert out["plotted"] == HAVE_MATPLOTLIB
    if HAVE_MATPLOTLIB:
        assert_png(path)
    else:
        assert not path.exists()


def test_linear_regression_without_matplotlib(tmp_path, monkeypatch, capsys):
    hide_matplotlib(monkeypatch)
    path = tmp_path / "fit.png"
    out = load_example("linear_regression").main(["--steps", "5", "--plot", str(path)])
    assert out["plotted"] is False and not path.exists()
    assert "matplotlib is not installed" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# graph.py


@pytest.mark.parametrize("seed", [0, 3])
def test_graph_gradients_are_y_x_ones(seed):
    out = load_example("graph").main(["--seed", str(seed)])
    x, y, z = out["x"], out["y"], out["z"]
    assert x.shape == (3, 4) and x.dtype == np.float32
    np.testing.assert_allclose(out["c"], np.sum(x.astype(np.float64) * y + z), rtol=1e-5)
    for got, want in zip(out["grads"], (y, x, np.ones((3, 4), np.float32))):
        assert got.dtype == np.float32 and got.shape == (3, 4)
        np.testing.assert_array_equal(got, want)
    assert "reduce_sum" in out["forward_ir"] and "mul" in out["forward_ir"]
    assert out["grad_ir"].count("f32[3,4]") > out["forward_ir"].count("f32[3,4]")


# ---------------------------------------------------------------------------------------------
# two_layer_net.py


def numpy_loss_and_grads(w1, w2, x, y, reduction):
    """The loss and its gradients, written out by hand in float64."""
    w1, w2, x, y = (a.astype(np.float64) for a in (w1, w2, x, y))
    pre = x @ w1
    h = np.maximum(pre, 0.0)
    err = h @ w2 - y
    scale = 1.0 / len(x) if reduction == "mean" else 1.0
    loss = scale * np.sum(err ** 2)
    d_out = 2.0 * scale * err
    g2 = h.T @ d_out
    g1 = x.T @ ((d_out @ w2.T) * (pre > 0))
    return loss, g1, g2


@pytest.mark.parametrize("variant, steps, drop, printed", [
    ("l2", 50, 1e4, list(range(50))),                   # every step
    ("torch", 200, 1e6, [0, 50, 100, 150, 199]),       # every 50 steps, and the last
])
def test_two_layer_net_losses(variant, steps, drop, printed, capsys):
    module = load_example("two_layer_net")
    out = module.main(["--variant", variant, "--steps", str(steps)])
    v, losses = out["variant"], out["losses"]
    assert len(losses) == steps
    lines = [line.split() for line in capsys.readouterr().out.splitlines()
             if line.startswith("step ")]
    assert [int(w[1]) for w in lines] == printed
    np.testing.assert_allclose([float(w[3]) for w in lines], [losses[t] for t in printed],
                               rtol=1e-5)
    x, y, w1, w2 = module.make_problem(v, out["seed"])
    assert x.shape == (64, 1000) and y.shape == (64, v.d_out) and w2.shape == (100, v.d_out)
    loss0, g1, g2 = numpy_loss_and_grads(w1, w2, x, y, v.reduction)
    np.testing.assert_allclose(losses[0], loss0, rtol=1e-4)
    # the second loss is NumPy's loss after one gradient step by hand
    loss1 = numpy_loss_and_grads(w1 - v.lr * g1, w2 - v.lr * g2, x, y, v.reduction)[0]
    np.testing.assert_allclose(losses[1], loss1, rtol=1e-3)
    assert losses[-1] < losses[0] / drop
    assert all(np.isfinite(losses))


# ---------------------------------------------------------------------------------------------
# digits.py


def numpy_accuracy(params, rows):
    """Accuracy of the MLP on load_digits' rows `rows`, by a NumPy forward pass against the
    true labels."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = digits.data[rows] / 16.0
    h = np.maximum(x @ params["w1"].astype(np.float64) + params["b1"], 0.0)
    pred = np.argmax(h @ params["w2"].astype(np.float64) + params["b2"], axis=1)
    return np.mean(pred == digits.target[rows])


def test_digits_default_run_reaches_95_percent(tmp_path):
    pytest.importorskip("sklearn")
    plot_path, save_path = tmp_path / "curves.png", tmp_path / "mlp.npz"
    out = load_example("digits").main(["--plot", str(plot_path), "--save", str(save_path)])
    params, rows = out["params"], out["test_index"]
    assert len(rows) == 359 and len(np.unique(rows)) == 359
    accuracy = numpy_accuracy(params, rows)
    assert accuracy >= 0.95
    assert abs(accuracy - out["test_accuracy"]) <= 1.5 / len(rows)     # at most one near-tie
    history = out["history"]
    assert len(history["loss"]) == 15 and history["loss"][-1] < history["loss"][0] / 5
    assert out["trace_count"] == 1 and out["median_step_s"] > 0
    saved = tj.load(save_path)
    assert sorted(saved) == ["b1", "b2", "w1", "w2"]
    for k, a in params.items():
        assert saved[k].dtype == np.float32 and saved[k].shape == a.shape
        np.testing.assert_array_equal(saved[k], a)
    assert out["plotted"] == HAVE_MATPLOTLIB
    if HAVE_MATPLOTLIB:
        assert_png(plot_path)


def test_digits_compares_with_a_pytorch_step_when_asked():
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    run = load_example("digits").main(["--epochs", "1", "--plot", "", "--torch"])
    assert run["torch_median_step_s"] is not None and run["torch_median_step_s"] > 0
    assert run["trace_count"] == 1


def test_digits_fused_and_unfused_train_alike():
    pytest.importorskip("sklearn")
    digits = load_example("digits")
    runs = [digits.main(["--epochs", "2", "--plot", ""] + flag) for flag in ([], ["--no-fuse"])]
    fused, unfused = (r["history"] for r in runs)
    np.testing.assert_allclose(fused["loss"], unfused["loss"], rtol=1e-4)
    assert runs[1]["kernels"] > 2 * runs[0]["kernels"]      # --no-fuse: one kernel per primitive
    for r in runs:
        assert numpy_accuracy(r["params"], r["test_index"]) >= 0.85     # learning after 2 epochs


def test_digits_trains_alike_on_the_cuda_backend():
    """The same step as generated CUDA C (on a GPU, or the host emulation) follows the cpu
    backend's loss curve."""
    pytest.importorskip("sklearn")
    if shutil.which("g++") is None:
        pytest.skip("no host C++ compiler for the CUDA emulator")
    digits = load_example("digits")
    backend = cuda_backend()
    runs = [digits.main(["--epochs", "1", "--plot", "", "--backend", b])
            for b in ("cpu", backend)]
    np.testing.assert_allclose(runs[1]["history"]["loss"], runs[0]["history"]["loss"],
                               rtol=1e-4)
    assert runs[1]["history"]["test_accuracy"][-1] >= 0.75


# ---------------------------------------------------------------------------------------------
# as scripts


@pytest.mark.parametrize("name, args, expect", [
    ("quadratic", ["--steps", "3"], "w -> "),
    ("linear_regression", ["--steps", "3", "--plot", ""], "sgd : y = "),
    ("graph", [], "dc/dz (= ones)"),
    ("two_layer_net", ["--variant", "torch", "--steps", "2"], "torch: loss"),
    ("digits", ["--epochs", "1", "--plot", ""], "test accuracy"),
])
def test_runs_as_a_script(name, args, expect, tmp_path):
    if name == "digits":
        pytest.importorskip("sklearn")
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


# ---------------------------------------------------------------------------------------------
# --help


ALL_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_help_gives_the_whole_description_and_explains_every_option(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    first_paragraph = " ".join(module.__doc__.split("\n\n")[0].split())
    assert first_paragraph in " ".join(text.split())          # not cut mid-sentence
    options = text.split("options:")[1]
    for line in options.splitlines():
        words = line.split()
        # an option line without a help text would end at its metavar
        if words and words[0].startswith("--") and len(words) <= 2 and line.startswith("  -"):
            nxt = options.splitlines()[options.splitlines().index(line) + 1]
            assert nxt.startswith(" " * 10), f"{name}: {line.strip()} has no help text"


def test_train_mlp_runs_on_the_cpu_backend_by_default(tmp_path):
    """The default backend is cpu, as everywhere else: TRACEJIT_DUMP then writes LLVM IR."""
    env = dict(os.environ, TRACEJIT_DUMP=str(tmp_path / "out"))
    done = subprocess.run([sys.executable, str(EXAMPLES / "train_mlp.py"), "--steps", "3"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert "on backend 'cpu'" in done.stdout
    dumped = [p.name for p in (tmp_path / "out").rglob("*")]
    assert any(n.endswith("-llvm.txt") for n in dumped), dumped
    first, last = load_example("train_mlp").main(["--steps", "3", "--backend", "interpret"])
    assert f"loss {first:.4g} -> {last:.4g}" in done.stdout     # the same numbers as interpret


# ---------------------------------------------------------------------------------------------
# newton_logistic.py


def logistic_data():
    """The data as newton_logistic.py's docstring describes it, generated here independently."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(200, 3)), np.ones((200, 1))], axis=1)
    p = 1.0 / (1.0 + np.exp(-x @ np.array([1.5, -2.0, 0.5, 0.3])))
    t = (rng.uniform(size=200) < p).astype(np.float64)
    return x, t


def numpy_logistic(w, x, t, lam):
    """Loss, gradient and Hessian of mean(log(1 + exp(z)) - t z) + lam |w|^2 / 2, z = x w, in
    closed form: g = x^T (p - t) / n + lam w, H = x^T diag(p (1 - p)) x / n + lam I."""
    n = len(x)
    z = x @ w
    p = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(np.logaddexp(0.0, z) - t * z) + 0.5 * lam * (w @ w)
    g = x.T @ (p - t) / n + lam * w
    h = (x * (p * (1 - p))[:, None]).T @ x / n + lam * np.eye(len(w))
    return loss, g, h


def test_newton_logistic_matches_a_numpy_newton_iteration():
    out = load_example("newton_logistic").main([])
    x, t = logistic_data()
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["t"], t)
    assert 50 < t.sum() < 150                          # both classes, and they overlap
    lam, steps = 1e-3, 8
    w = np.zeros(4)
    losses, norms = [], []
    for k in range(steps + 1):
        loss, g, h = numpy_logistic(w, x, t, lam)
        losses.append(loss)
        norms.append(np.linalg.norm(g))
        if k < steps:
            w = w - np.linalg.solve(h, g)
    np.testing.assert_allclose(out["w"], w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-12)
    np.testing.assert_allclose(out["grad_norms"][:5], norms[:5], rtol=1e-8)
    # the Hessian from tj.hessian at the final w against the closed form there
    np.testing.assert_allclose(out["hessian"], numpy_logistic(out["w"], x, t, lam)[2],
                               rtol=1e-12, atol=1e-15)
    assert out["grad_norms"][-1] < 1e-10
    assert all(b <= a + 1e-15 for a, b in zip(out["losses"], out["losses"][1:]))
    # quadratic convergence: |g_{k+1}| <= C |g_k|^2 once close, above rounding level
    pairs = [(a, b) for a, b in zip(out["grad_norms"], out["grad_norms"][1:])
             if a < 1e-2 and b > 1e-15]
    assert len(pairs) >= 2 and all(b < 50 * a ** 2 for a, b in pairs), pairs
    assert out["gd_loss"] > out["losses"][-1] + 1e-3      # gradient descent is far behind
    assert out["trace_count"] == 1


# ---------------------------------------------------------------------------------------------
# per_example_gradients.py


def numpy_example_grads(params, x, label):
    """The gradient of one example's softmax cross-entropy through relu(x w1 + b1) w2 + b2, by
    backpropagation written out in float64."""
    w1, b1, w2, b2 = (params[k].astype(np.float64) for k in ("w1", "b1", "w2", "b2"))
    x = x.astype(np.float64)
    a = x @ w1 + b1
    h = np.maximum(a, 0.0)
    z = h @ w2 + b2
    p = np.exp(z - z.max())
    p /= p.sum()
    dz = p - np.eye(10)[label]                 # d(-log p_label) / dz = softmax - one-hot
    da = (w2 @ dz) * (a > 0)
    return {"w1": np.outer(x, da), "b1": da, "w2": np.outer(h, dz), "b2": dz}


def test_per_example_gradients_clipping_and_training():
    pytest.importorskip("sklearn")
    module = load_example("per_example_gradients")
    out = module.main(["--epochs", "3", "--repeats", "2"])
    first = out["first_batch"]
    params, xb, yb = first["params"], first["x"], first["labels"]
    grads, batch, c = out["grads"], len(xb), 1.0
    assert batch == 32 and sorted(grads) == ["b1", "b2", "w1", "w2"]
    single = tj.grad(module.loss)
    norms = []
    for i in range(batch):
        looped = single(params, xb[i], yb[i])
        by_hand = numpy_example_grads(params, xb[i], yb[i])
        for k, g in grads.items():
            assert g.shape == (batch,) + params[k].shape and g.dtype == np.float32
            np.testing.assert_allclose(g[i], looped[k], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(g[i], by_hand[k], rtol=1e-4, atol=1e-6)
        norms.append(np.linalg.norm(np.concatenate([grads[k][i].ravel() for k in grads])))
    np.testing.assert_allclose(out["norms"], norms, rtol=1e-5)
    # clipping: g_i min(1, C / |g_i|), so every clipped norm is at most C
    assert np.all(out["clipped_norms"] <= c * (1 + 1e-6))
    scale = np.minimum(1.0, c / np.asarray(norms))
    for k, g in out["clipped"].items():
        np.testing.assert_allclose(g, grads[k] * scale.reshape((-1,) + (1,) * (g.ndim - 1)),
                                   rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(out["clipped_norms"], np.minimum(norms, c), rtol=1e-5)
    # training with clipped gradients (no noise) learns: accuracy recomputed by NumPy
    accuracy = numpy_accuracy(out["params"], out["test_index"])
    assert accuracy > 0.85
    assert abs(accuracy - out["test_accuracy"]) <= 1.5 / len(out["test_index"])
    assert out["trace_count"] == 1 and out["vmap_s"] > 0 and out["loop_s"] > 0


def test_per_example_dp_step_with_noise_is_the_formula():
    """One jitted DP-SGD step with given noise against the same step in NumPy, from the
    hand-written per-example gradients."""
    pytest.importorskip("sklearn")
    module = load_example("per_example_gradients")
    rng = np.random.default_rng(1)
    params = tj.init.mlp(rng, [64, 32, 10])
    x = rng.uniform(0.0, 1.0, (8, 64)).astype(np.float32)
    labels = rng.integers(0, 10, 8).astype(np.int32)
    noise = {k: rng.standard_normal(p.shape).astype(np.float32) for k, p in params.items()}
    lr, c, sigma = 0.5, 0.3, 1.1
    loss, new = tj.jit(module.dp_step)(params, x, labels, noise, lr, c, sigma)
    per = [numpy_example_grads(params, x[i], labels[i]) for i in range(8)]
    norms = [np.sqrt(sum(np.sum(g[k] ** 2) for k in g)) for g in per]
    for k, p in params.items():
        clipped_sum = sum(g[k] * min(1.0, c / n) for g, n in zip(per, norms))
        want = p - lr * (clipped_sum + sigma * c * noise[k]) / 8
        np.testing.assert_allclose(new[k], want, rtol=1e-4, atol=1e-6)
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    z = (h @ params["w2"] + params["b2"]).astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.sum(np.exp(log_p), axis=1, keepdims=True))
    np.testing.assert_allclose(loss, -np.mean(log_p[np.arange(8), labels]), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# custom_derivatives.py


def stable_sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def test_custom_derivatives_match_their_closed_forms():
    out = load_example("custom_derivatives").main(["--no-ir"])
    x = out["x"]
    assert x[-1] == 800.0
    # (a) custom_vjp log1pexp: value logaddexp(0, x), gradient sigmoid(x), 1.0 at 800
    np.testing.assert_allclose(out["custom_value"], np.logaddexp(0.0, x), rtol=1e-15)
    np.testing.assert_allclose(out["custom_grad"], stable_sigmoid(x), rtol=1e-14)
    assert out["custom_grad"][-1] == 1.0 and out["custom_value"][-1] == 800.0
    # The naive one overflows: inf, and a gradient that is not the true 1 at 800. The chain
    # rule gives [1 / (1 + exp(800))] * exp(800) = 0 * inf: nan in IEEE arithmetic, 0 in
    # tracejit (its VJPs treat a zero cotangent times an infinite partial as 0).
    assert out["naive_value"][-1] == np.inf
    assert np.isnan(out["naive_grad"][-1]) or out["naive_grad"][-1] == 0.0
    np.testing.assert_allclose(out["naive_grad"][:-1], stable_sigmoid(x[:-1]), rtol=1e-12)
    assert out["check_grads_error"] < 1e-6 and out["check_grads_error_jvp"] < 1e-6
    # the call is one unit in the IR
    assert "custom_vjp_call" in out["ir"] and "name=log1pexp" in out["ir"]
    # (b) gradient clipping: clip(20 x, -1, 1) instead of 20 x
    np.testing.assert_array_equal(out["clipped_grad"], np.clip(20.0 * out["clip_x"], -1, 1))
    # (c) straight through: round's gradient is 0; round_ste's is the gradient at the
    # quantised weights as if quantising were the identity, 2 x^T (x q(w) - y) / n
    xd, yd = out["ste_data"]
    w0 = out["ste_w0"]
    q = np.round(w0 / 0.25) * 0.25
    np.testing.assert_array_equal(out["round_grad"], np.zeros(3))
    np.testing.assert_allclose(out["ste_grad"], 2 * xd.T @ (xd @ q - yd) / len(xd), rtol=1e-12)
    assert np.any(out["ste_grad"] != 0)
    np.testing.assert_array_equal(out["ste_w_quantised"], [0.5, -1.25, 2.0])
    assert out["ste_losses"][-1] < 1e-20 < out["ste_losses"][0]
    # (d) custom_jvp: tangent sigmoid(x) t under jvp, sigmoid(x) under grad
    np.testing.assert_allclose(out["jvp_value"], np.logaddexp(0.0, x), rtol=1e-15)
    np.testing.assert_allclose(out["jvp_tangent"], stable_sigmoid(x) * out["tangent"],
                               rtol=1e-14)
    np.testing.assert_allclose(out["jvp_grad"], stable_sigmoid(x), rtol=1e-14)


def test_custom_derivatives_prints_the_ir_once(capsys):
    out = load_example("custom_derivatives").main(["--steps", "3"])
    printed = capsys.readouterr().out
    assert printed.count("custom_vjp_call") == 1
    assert "custom_vjp_call %0 name=log1pexp" in printed
    assert out["ir"].replace("\n", "") in printed.replace("\n    ", "")


# ---------------------------------------------------------------------------------------------
# dropout_digits.py


def test_dropout_masks_are_bernoulli_and_scaled():
    module = load_example("dropout_digits")
    h = np.abs(np.random.default_rng(0).standard_normal((64, 256))).astype(np.float32) + 0.1
    key = tj.random.key(3)
    out = tj.jit(module.dropout, static_argnums=2)(key, h, 0.25)
    keep = tj.random.bernoulli(key, 0.75, h.shape)
    np.testing.assert_allclose(out, np.where(keep, h / np.float32(0.75), 0.0), rtol=1e-6)
    assert abs(np.mean(out != 0) - 0.75) < 0.02
    np.testing.assert_array_equal(module.dropout(key, h, 0.0), h)


def test_dropout_digits_trains_with_new_masks_every_step():
    pytest.importorskip("sklearn")
    module = load_example("dropout_digits")
    out = module.main(["--epochs", "3", "--rate", "0.2"])
    assert out["trace_count"] == 1                       # new keys, no new trace
    assert out["accuracies"][-1] > 0.9
    # the test accuracy recomputed with NumPy from the trained parameters
    _, _, x_test, y_test, _ = module.load_digits_split(0)
    p = out["params"]
    h = np.maximum(np.maximum(x_test @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"], 0)
    accuracy = np.mean(np.argmax(h @ p["w3"] + p["b3"], axis=1) == y_test)
    assert accuracy == pytest.approx(out["accuracies"][-1])


# ---------------------------------------------------------------------------------------------
# the examples above as scripts


@pytest.mark.parametrize("name, args, expect", [
    ("dropout_digits", ["--epochs", "1"], "with dropout 0.3"),
    ("newton_logistic", ["--steps", "3"], "newton step  3"),
    ("per_example_gradients", ["--epochs", "1", "--repeats", "1"], "test accuracy"),
    ("custom_derivatives", ["--steps", "3"], "custom_vjp_call %0 name=log1pexp"),
])
def test_new_examples_run_as_scripts(name, args, expect, tmp_path):
    if name in ("per_example_gradients", "dropout_digits"):
        pytest.importorskip("sklearn")
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout
