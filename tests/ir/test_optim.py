"""tracejit.optim: sgd, momentum (heavy ball and Nesterov), adam and adamw.

Every optimiser is checked step by step on a pytree of parameters (a dict holding a nested
list) against a hand-written float64 NumPy reference of PyTorch's update formulas, and against
torch.optim itself when torch is installed. Then: learning-rate schedules (values, and no
promotion of float32 parameters), dtypes of parameters and state for every optimiser, a jitted
training step (loss, gradients, update) against the un-jitted step and a hand-differentiated
NumPy step (tracing once), fusion of the Adam update (no kernel left holding a single
elementwise equation of it; kernel counts against SGD and against fuse=False), and training a
tiny regression with each optimiser, switching optimiser in one line.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import primitives as P
from tracejit.pytree import flatten, unflatten

STEPS = 5
TOL = {np.dtype(np.float32): {"rtol": 2e-5, "atol": 1e-6},
       np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-13}}

# (optimiser name, keyword arguments): every case is built as getattr(tj.optim, name)(lr, **kw)
CASES = [
    ("sgd", {}),
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {"beta": 0.9}),
    ("momentum", {"beta": 0.8, "nesterov": True}),
    ("momentum", {"beta": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("adam", {}),
    ("adam", {"weight_decay": 0.1}),
    ("adamw", {}),
    ("adamw", {"weight_decay": 0.1, "b1": 0.8, "b2": 0.99, "eps": 1e-6}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CASES]


def schedule(count):
    return 0.1 * 0.9 ** count


def make_params(dtype=np.float64, seed=0):
    """{'w': matrix, 'layers': [vector, {'s': 0-d array}]}, with an optional second dtype."""
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 4)).astype(dtype),
            "layers": [rng.standard_normal(4).astype(dtype),
                       {"s": np.asarray(rng.standard_normal(), dtype)}]}


def fake_grads(params, k):
    """Gradients that depend on the parameters and on the step: 0.5 * p + noise_k (NumPy)."""
    rng = np.random.default_rng(100 + k)
    return tj.tree_map(lambda p: (0.5 * np.asarray(p, np.float64)
                                  + rng.standard_normal(np.shape(p))).astype(np.asarray(p).dtype),
                       params)


def assert_tree_close(got, want, tol=None):
    """Same structure; every leaf of the same dtype and shape, values within tolerance."""
    g_leaves, g_tree = flatten(got)
    w_leaves, w_tree = flatten(want)
    assert g_tree == w_tree, (g_tree, w_tree)
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), (i, g.dtype, g.shape, w.dtype, w.shape)
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w, err_msg=f"leaf {i}")
        else:
            np.testing.assert_allclose(g, w, **(tol or TOL[w.dtype]), err_msg=f"leaf {i}")


# ---------------------------------------------------------------------------------------------
# the reference: PyTorch's formulas, written out per leaf in float64


def reference_step(name, kw, p, g, st, t, lr):
    """One step for one leaf p with gradient g at step t = 1, 2, ... (st: this leaf's state).

    torch.optim.SGD: g += wd p; with momentum, buf = g at t = 1, then buf = beta buf + g;
    the direction is g + beta buf (Nesterov) or buf. torch.optim.Adam: g += wd p;
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m /
    (sqrt(v) / sqrt(1 - b2^t) + eps). torch.optim.AdamW: p *= 1 - lr wd first, g unchanged."""
    wd = kw.get("weight_decay", 1e-2 if name == "adamw" else 0.0)
    if name in ("sgd", "momentum", "adam") and wd:
        g = g + wd * p
    if name == "sgd":
        return p - lr * g
    if name == "momentum":
        beta = kw.get("beta", 0.9)
        st["buf"] = g.copy() if t == 1 else beta * st["buf"] + g
        d = g + beta * st["buf"] if kw.get("nesterov", False) else st["buf"]
        return p - lr * d
    b1, b2, eps = kw.get("b1", 0.9), kw.get("b2", 0.999), kw.get("eps", 1e-8)
    if name == "adamw":
        p = p * (1 - lr * wd)
    st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
    st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
    step_size = lr / (1 - b1 ** t)
    denom = np.sqrt(st["v"]) / np.sqrt(1 - b2 ** t) + eps
    return p - step_size * st["m"] / denom


def reference_run(name, kw, params, lr, steps=STEPS):
    """The parameters after every step, by the reference (float64)."""
    leaves, tree = flatten(params)
    ps = [np.asarray(p, np.float64) for p in leaves]
    states = [{} for _ in ps]
    history = []
    for k in range(steps):
        rate = lr(k) if callable(lr) else lr
        gs = flatten(fake_grads(unflatten(tree, ps), k))[0]
        ps = [reference_step(name, kw, p, np.asarray(g, np.float64), st, k + 1, rate)
              for p, g, st in zip(ps, gs, states)]
        history.append(unflatten(tree, ps))
    return history


def tracejit_run(opt, params, steps=STEPS, jit=False):
    update = tj.jit(opt.update) if jit else opt.update
    state = opt.init(params)
    history = []
    for k in range(steps):
        params, state = update(fake_grads(params, k), state, params)
        history.append(params)
    return history, state, update


@pytest.mark.parametrize("lr", [0.05, schedule], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_matches_reference_formulas(name, kw, lr):
    opt = getattr(tj.optim, name)(lr, **kw)
    got, state, _ = tracejit_run(opt, make_params())
    want = reference_run(name, kw, make_params(), lr)
    for g, w in zip(got, want):
        assert_tree_close(g, w)
    assert int(state["count"]) == STEPS
    assert np.asarray(state["count"]).dtype == np.int32


@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_jitted_update_matches_reference(name, kw):
    opt = getattr(tj.optim, name)(schedule, **kw)
    got, _, update = tracejit_run(opt, make_params(), jit=True)
    for g, w in zip(got, reference_run(name, kw, make_params(), schedule)):
        assert_tree_close(g, w)
    assert update.trace_count == 1


def torch_optimizer(torch, name, kw, tensors, lr):
    if name in ("sgd", "momentum"):
        return torch.optim.SGD(tensors, lr=lr, momentum=kw.get("beta", 0.9) if name == "momentum"
                               else 0.0, nesterov=kw.get("nesterov", False),
                               weight_decay=kw.get("weight_decay", 0.0))
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    extra = {"weight_decay": kw["weight_decay"]} if "weight_decay" in kw else {}
    return cls(tensors, lr=lr, betas=(kw.get("b1", 0.9), kw.get("b2", 0.999)),
               eps=kw.get("eps", 1e-8), **extra)


@pytest.mark.parametrize("lr", [0.05, schedule], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_matches_torch(name, kw, lr):
    """torch.optim on the same gradients (float64), step for step; torch's own defaults for
    whatever the case leaves out (AdamW's weight decay 1e-2, betas, eps)."""
    torch = pytest.importorskip("torch")
    params = make_params()
    leaves, tree = flatten(params)
    tensors = [torch.tensor(np.asarray(p), dtype=torch.float64, requires_grad=True)
               for p in leaves]
    topt = torch_optimizer(torch, name, kw, tensors, lr(0) if callable(lr) else lr)
    got, _, _ = tracejit_run(getattr(tj.optim, name)(lr, **kw), params)
    for k in range(STEPS):
        if callable(lr):
            for group in topt.param_groups:
                group["lr"] = lr(k)
        current = unflatten(tree, [t.detach().numpy().copy() for t in tensors])
        for t, g in zip(tensors, flatten(fake_grads(current, k))[0]):
            t.grad = torch.from_numpy(np.asarray(g, np.float64).copy())
        topt.step()
        want = unflatten(tree, [t.detach().numpy().copy() for t in tensors])
        assert_tree_close(got[k], want)


# ---------------------------------------------------------------------------------------------
# schedules and dtypes


def mixed_params(seed=0):
    """float32 and float64 leaves in one tree."""
    p32, p64 = make_params(np.float32, seed), make_params(np.float64, seed + 1)
    return {"f32": p32, "f64": p64["layers"]}


def dtypes(tree):
    return [np.asarray(x).dtype for x in flatten(tree)[0]]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("lr", [0.05, schedule], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_params_and_state_keep_their_dtypes(name, kw, lr, jit):
    params = mixed_params()
    opt = getattr(tj.optim, name)(lr, **kw)
    history, state, _ = tracejit_run(opt, params, steps=3, jit=jit)
    want = reference_run(name, kw, params, lr, steps=3)
    for got, ref in zip(history, want):
        assert dtypes(got) == dtypes(params)
        assert_tree_close(got, tj.tree_map(lambda r, p: np.asarray(r, np.asarray(p).dtype),
                                           ref, params))
    for key in ("buf", "m", "v"):
        if key in state:
            assert dtypes(state[key]) == dtypes(params), key
            assert [np.shape(x) for x in flatten(state[key])[0]] == \
                [np.shape(x) for x in flatten(params)[0]]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_schedule_values_with_sgd(jit):
    """With g = 1 everywhere, SGD moves every parameter by exactly -lr(count) per step."""
    opt = tj.optim.sgd(schedule)
    update = tj.jit(opt.update) if jit else opt.update
    params = {"a": np.zeros(3, np.float32), "b": [np.zeros((2, 2), np.float64)]}
    state = opt.init(params)
    ones = tj.tree_map(np.ones_like, params)
    total = 0.0
    for k in range(6):
        params, state = update(ones, state, params)
        total -= 0.1 * 0.9 ** k
        assert np.asarray(params["a"]).dtype == np.float32
        assert np.asarray(params["b"][0]).dtype == np.float64
        np.testing.assert_allclose(params["a"], np.full(3, total, np.float32), rtol=1e-6)
        np.testing.assert_allclose(params["b"][0], np.full((2, 2), total), rtol=1e-13)
        assert int(state["count"]) == k + 1


def test_schedule_is_traced_not_a_constant():
    """Inside jit the schedule is a function of the traced count: one trace, changing lr."""
    seen = []

    def lr(count):
        seen.append(type(count).__name__)
        return 0.5 / (1.0 + count)

    opt = tj.optim.sgd(lr)
    update = tj.jit(opt.update)
    p = {"x": np.zeros(2, np.float32)}
    state = opt.init(p)
    g = {"x": np.ones(2, np.float32)}
    for k in range(4):
        p, state = update(g, state, p)
    want = -sum(0.5 / (1.0 + k) for k in range(4))
    np.testing.assert_allclose(p["x"], np.full(2, want, np.float32), rtol=1e-6)
    assert update.trace_count == 1 and seen == ["Tracer"]


# ---------------------------------------------------------------------------------------------
# a jitted training step


def regression_data(n=32, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(dtype)
    w_true = np.array([[1.0], [-2.0], [0.5]])
    y = (x @ w_true + 0.3).astype(dtype)
    return x, y


def regression_params(dtype=np.float64, seed=2):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 1)).astype(dtype),
            "extra": [np.zeros(1, dtype), {"scale": np.asarray(1.0, dtype)}]}


def regression_loss(p, x, y):
    pred = (x @ p["w"] + p["extra"][0]) * p["extra"][1]["scale"]
    return np.mean((pred - y) ** 2)


def regression_grads(p, x, y):
    """The gradients of regression_loss, differentiated by hand (NumPy)."""
    s = p["extra"][1]["scale"]
    z = x @ p["w"] + p["extra"][0]
    r = 2.0 * (z * s - y) / y.size
    return regression_loss(p, x, y), {
        "w": x.T @ (r * s), "extra": [np.sum(r * s, axis=0), {"scale": np.sum(r * z)}]}


def apply_update(opt, grads, state, params):
    """The optimiser's update (its equations carry this function's name as their location)."""
    return opt.update(grads, state, params)


def make_step(opt, loss_fn=regression_loss):
    def step(params, state, x, y):
        loss, grads = tj.value_and_grad(loss_fn)(params, x, y)
        params, state = apply_update(opt, grads, state, params)
        return loss, params, state
    return step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_jitted_training_step(name, kw, dtype):
    opt = getattr(tj.optim, name)(0.05, **kw)
    x, y = regression_data(dtype=dtype)
    step = make_step(opt)
    jitted = tj.jit(step)
    p_jit = p_eager = p_ref = regression_params(dtype)
    s_jit = s_eager = opt.init(p_jit)
    ref_states = [{} for _ in flatten(p_ref)[0]]
    for k in range(STEPS):
        loss_jit, p_jit, s_jit = jitted(p_jit, s_jit, x, y)
        loss_eager, p_eager, s_eager = step(p_eager, s_eager, x, y)
        # the hand-differentiated NumPy step, in float64
        p64 = tj.tree_map(lambda a: np.asarray(a, np.float64), p_ref)
        loss_ref, g_ref = regression_grads(p64, x.astype(np.float64), y.astype(np.float64))
        leaves, tree = flatten(p64)
        p_ref = unflatten(tree, [
            reference_step(name, kw, p, np.asarray(g), st, k + 1, 0.05).astype(dtype)
            for p, g, st in zip(leaves, flatten(g_ref)[0], ref_states)])
        assert np.asarray(loss_jit).dtype == dtype and np.shape(loss_jit) == ()
        assert_tree_close(loss_jit, loss_eager)
        assert_tree_close(p_jit, p_eager)
        assert_tree_close(s_jit, s_eager)
        ref_tol = TOL[np.dtype(dtype)] if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-5}
        np.testing.assert_allclose(loss_jit, loss_ref, **ref_tol)
        assert_tree_close(p_jit, p_ref, ref_tol)
    assert jitted.trace_count == 1 and jitted.cache_size == 1


# ---------------------------------------------------------------------------------------------
# fusion of the update


def dense_params(seed=3):
    rng = np.random.default_rng(seed)
    return {"w1": rng.standard_normal((3, 5)).astype(np.float32),
            "rest": [rng.standard_normal((5, 2)).astype(np.float32),
                     {"s": np.asarray(0.7, np.float32)}]}


def dense_loss(p, x, y):
    h = np.tanh(x @ p["w1"])
    return np.mean((h @ p["rest"][0] * p["rest"][1]["s"] - y) ** 2)


def bias_params(seed=4):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((3, 2)).astype(np.float32),
            "b": np.zeros(2, np.float32)}


def bias_loss(p, x, y):
    return np.mean((np.tanh(x @ p["w"] + p["b"]) - y) ** 2)


def mlp_loss(p, x, y):
    h = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    h = np.tanh(h @ p["w2"] + p["b2"])
    return np.mean((h @ p["w3"] + p["b3"] - y) ** 2)


MODELS = {"dense": (dense_params, dense_loss),
          "with-bias": (bias_params, bias_loss),
          "mlp": (lambda: tj.init.mlp(6, [3, 8, 8, 2]), mlp_loss)}


def step_programs(opt, model, fuse=True):
    make, loss = MODELS[model]
    params = make()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    state = opt.init(params)
    jitted = tj.jit(make_step(opt, loss), fuse=fuse)
    eager = make_step(opt, loss)(params, state, x, y)
    assert_tree_close(jitted(params, state, x, y), eager)
    return jitted.program(params, state, x, y), len(flatten(params)[0])


def update_eqns(kernel):
    """The floating-point elementwise equations of the optimiser update in this kernel (not the
    int32 step counter)."""
    return [e for e in kernel.eqns if e.loc is not None and e.loc.function == "apply_update"
            and e.prim.category is P.ELEMENTWISE and e.out.type.dtype in ("f32", "f64")]


def describe(program):
    return "\n".join(f"{k.name} {k.kind}: {[e.prim.name for e in k.eqns]}"
                     for k in program.kernels)


@pytest.mark.parametrize("model", list(MODELS))
def test_adam_update_leaves_no_single_equation_kernel(model):
    program, n_leaves = step_programs(tj.optim.adam(1e-2), model)
    lonely = [k for k in program.kernels if len(k.eqns) == 1 and update_eqns(k)]
    assert not lonely, (
        f"every elementwise equation of the Adam update should fuse with others, but "
        f"{len(lonely)} kernels hold a single one:\n{describe(program)}")
    holders = [k for k in program.kernels if update_eqns(k)]
    assert len(holders) <= n_leaves, (
        f"the Adam update of {n_leaves} parameter leaves should take at most one kernel per "
        f"leaf, it is spread over {len(holders)}:\n{describe(program)}")


@pytest.mark.parametrize("model", list(MODELS))
def test_adam_step_kernels_at_most_sgd_plus_one_per_leaf(model):
    adam, n_leaves = step_programs(tj.optim.adam(1e-2), model)
    sgd, _ = step_programs(tj.optim.sgd(1e-2), model)
    assert len(adam.kernels) <= len(sgd.kernels) + n_leaves, (
        f"a training step with adam should take at most (kernels with sgd = "
        f"{len(sgd.kernels)}) + (parameter leaves = {n_leaves}) kernels, it takes "
        f"{len(adam.kernels)}:\n{describe(adam)}")


def fn_update_eqns(program):
    return [e for e in program.fn.eqns if e.loc is not None and e.loc.function == "apply_update"
            and e.prim.category is P.ELEMENTWISE and e.out.type.dtype in ("f32", "f64")]


@pytest.mark.parametrize("model", list(MODELS))
def test_adam_unfused_is_one_kernel_per_primitive(model):
    fused, n_leaves = step_programs(tj.optim.adam(1e-2), model)
    unfused, _ = step_programs(tj.optim.adam(1e-2), model, fuse=False)
    assert all(len(k.eqns) == 1 for k in unfused.kernels), describe(unfused)
    n_update = sum(len(update_eqns(k)) for k in unfused.kernels)
    assert n_update == len(fn_update_eqns(unfused))
    # m, v and the parameter: at least 8 elementwise equations per leaf (Adam's formula)
    assert n_update >= 8 * n_leaves, (n_update, describe(unfused))
    # Fused, every update equation over arrays is computed by exactly one kernel; scalar work
    # on scalars (the bias corrections) is recomputed inside the kernels that use it.
    for e in fn_update_eqns(fused):
        owners = [k for k in fused.kernels if e in k.eqns]
        users = [k for k in fused.kernels if any(b.out is e.out for b in k.body)]
        assert len(owners) == 1 or (e.out.type.shape == () and not owners and users), (
            e.prim.name, [k.name for k in owners], describe(fused))
    holders = [k for k in fused.kernels if update_eqns(k)]
    assert len(holders) <= 2 * n_leaves < n_update, (
        f"the Adam update ({n_update} elementwise equations over {n_leaves} parameter leaves) "
        f"should take a few fused kernels, it is spread over {len(holders)}:\n{describe(fused)}")
    assert len(fused.kernels) < len(unfused.kernels) // 3, (
        len(fused.kernels), len(unfused.kernels))


# ---------------------------------------------------------------------------------------------
# switching optimiser is one line


TRAIN = {
    "sgd": lambda: tj.optim.sgd(0.1),
    "sgd-weight-decay": lambda: tj.optim.sgd(0.1, weight_decay=1e-4),
    "momentum": lambda: tj.optim.momentum(0.05),
    "nesterov": lambda: tj.optim.momentum(0.05, nesterov=True),
    "adam": lambda: tj.optim.adam(0.05),
    "adam-weight-decay": lambda: tj.optim.adam(0.05, weight_decay=1e-5),
    "adamw": lambda: tj.optim.adamw(0.05, weight_decay=1e-4),
    "adam-schedule": lambda: tj.optim.adam(lambda c: 0.1 * 0.99 ** c),
}


@pytest.mark.parametrize("make_opt", TRAIN.values(), ids=list(TRAIN))
def test_training_a_regression_reaches_a_low_loss(make_opt):
    opt = make_opt()                                  # the only line that differs
    x, y = regression_data(n=64, dtype=np.float32)
    params = regression_params(np.float32)
    state = opt.init(params)
    step = tj.jit(make_step(opt))
    first = float(regression_loss(params, x, y))
    for _ in range(150):
        _, params, state = step(params, state, x, y)
    final = float(regression_loss(params, x, y))       # NumPy's loss of the final parameters
    assert first > 1.0 and final < 1e-3 * first, (first, final)
    assert step.trace_count == 1
    assert dtypes(params) == [np.float32] * 3
