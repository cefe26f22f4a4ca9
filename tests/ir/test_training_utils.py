"""Training utilities: tracejit.init, save/load, check_grads and jit's donate_argnums.

- init: shapes, dtypes, determinism per seed, and sample statistics against the formulas
  (He and Glorot scales and bounds, uniform and normal parameters) on large samples; `fans`
  for 0-d to 4-d shapes; `mlp` names, shapes and biases.
- save/load: exact round trips of nested dicts/lists/tuples/None/scalars and every dtype; the
  file is an ordinary .npz readable with allow_pickle=False; files without the structure
  record, object leaves and non-string keys are rejected; a failed write leaves neither a
  partial file nor a temporary file, and an existing file intact; overwriting; permissions.
- check_grads: passes on tracejit's gradients (scalar and array outputs, pytree and number
  arguments, float32 inputs) and raises AssertionError when a primitive's VJP rule is
  deliberately wrong (monkeypatched for the test only).
- donate_argnums: an SGD step updates the caller's parameter arrays in place with the values
  of the non-donated step; other arguments are never mutated; unusable donations raise
  ValueError; results without a matching donated array come back as fresh arrays.
"""

from __future__ import annotations

import math
import os
import pickle
import zipfile
from collections import namedtuple
from itertools import pairwise

import numpy as np
import pytest

import tracejit as tj
import tracejit.primitives as P
from tracejit import ops
from tracejit.pytree import flatten

import support

# ---------------------------------------------------------------------------------------------
# init

INITS = ["zeros", "uniform", "normal", "glorot_uniform", "glorot_normal", "he_normal",
         "he_uniform"]


@pytest.mark.parametrize("shape,want", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((5, 3), (5, 3)),
    ((3, 3, 16, 32), (9 * 16, 9 * 32)),
    ((2, 4, 6), (2 * 4, 2 * 6)),
])
def test_fans(shape, want):
    assert tj.init.fans(shape) == want
    assert tj.init.fans(list(shape)) == want


@pytest.mark.parametrize("name", INITS)
@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 3, 4, 5)])
def test_shapes_dtypes_and_determinism(name, shape):
    init = getattr(tj.init, name)
    for dtype in (np.float32, np.float64):
        a = init(np.random.default_rng(7), shape, dtype=dtype)
        assert isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype
        np.testing.assert_array_equal(a, init(np.random.default_rng(7), shape, dtype=dtype))
        np.testing.assert_array_equal(a, init(7, shape, dtype=dtype))   # an int seed works too
    assert init(0, shape).dtype == np.float32                            # the default
    if name != "zeros":
        rng = np.random.default_rng(1)
        first, second = init(rng, shape), init(rng, shape)           # a generator advances
        assert not np.array_equal(first, second)
        assert not np.array_equal(init(1, shape), init(2, shape))
        assert np.all(np.isfinite(first))
    else:
        assert not np.any(init(0, shape))


def fraction_within(a, bound):
    return float(np.mean(np.abs(a) <= bound))


@pytest.mark.parametrize("name,shape,std", [
    ("he_normal", (500, 400), math.sqrt(2 / 500)),
    ("he_normal", (3, 3, 64, 128), math.sqrt(2 / (9 * 64))),
    ("glorot_normal", (500, 300), math.sqrt(2 / 800)),
    ("glorot_normal", (3, 3, 32, 64), math.sqrt(2 / (9 * 32 + 9 * 64))),
])
def test_normal_initialisers_statistics(name, shape, std):
    a = getattr(tj.init, name)(0, shape, dtype=np.float64)
    n = a.size            # tolerances: 5 standard errors of each estimate for n samples
    assert abs(a.mean()) < 5 * std / math.sqrt(n)
    np.testing.assert_allclose(a.std(), std, rtol=5 / math.sqrt(2 * n))
    # a normal distribution: 68.27% within one standard deviation, 95.45% within two
    for k, p in [(1, 0.6827), (2, 0.9545)]:
        assert abs(fraction_within(a, k * std) - p) < 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("name,shape,bound", [
    ("glorot_uniform", (500, 300), math.sqrt(6 / 800)),
    ("glorot_uniform", (3, 3, 32, 64), math.sqrt(6 / (9 * 32 + 9 * 64))),
    ("he_uniform", (400, 600), math.sqrt(6 / 400)),
    ("he_uniform", (3, 3, 64, 32), math.sqrt(6 / (9 * 64))),
])
def test_uniform_initialisers_statistics(name, shape, bound):
    for dtype in (np.float32, np.float64):
        a = getattr(tj.init, name)(0, shape, dtype=dtype)
        assert a.min() >= -np.asarray(bound, dtype) and a.max() <= np.asarray(bound, dtype)
        assert a.min() < -0.999 * bound and a.max() > 0.999 * bound   # the bounds are reached
        # tolerances: 5 standard errors for a.size samples (the variance of U(-a, a)
        # estimates with relative error sqrt(0.8 / n), the standard deviation half that)
        n = a.size
        np.testing.assert_allclose(a.astype(np.float64).std(), bound / math.sqrt(3),
                                   rtol=2.5 * math.sqrt(0.8 / n))
        # flat: each tenth of [-bound, bound] holds a tenth of the samples
        counts, _ = np.histogram(a, bins=10, range=(-bound, bound))
        np.testing.assert_allclose(counts / n, 0.1, atol=5 * math.sqrt(0.09 / n))


def test_uniform_and_normal_parameters():
    u = tj.init.uniform(0, (200_000,), low=2.0, high=5.0, dtype=np.float64)
    assert u.min() >= 2.0 and u.max() <= 5.0
    np.testing.assert_allclose(u.mean(), 3.5, atol=0.01)
    np.testing.assert_allclose(u.var(), 9 / 12, rtol=0.02)
    d = tj.init.uniform(0, (100_000,))
    assert d.dtype == np.float32 and d.min() >= -1.0 and d.max() <= 1.0 and d.min() < -0.99
    n = tj.init.normal(0, (200_000,), std=3.0, mean=-1.0, dtype=np.float64)
    np.testing.assert_allclose(n.mean(), -1.0, atol=0.03)
    np.testing.assert_allclose(n.std(), 3.0, rtol=0.01)


@pytest.mark.parametrize("sizes", [[4, 8, 3], [784, 64, 64, 10], [5, 1]])
def test_mlp(sizes):
    params = tj.init.mlp(0, sizes)
    n = len(sizes) - 1
    assert sorted(params) == sorted([f"w{i}" for i in range(1, n + 1)]
                                    + [f"b{i}" for i in range(1, n + 1)])
    for i, (a, b) in enumerate(pairwise(sizes), 1):
        w, bias = params[f"w{i}"], params[f"b{i}"]
        assert (w.shape, w.dtype, bias.shape, bias.dtype) == ((a, b), np.float32, (b,),
                                                              np.float32)
        assert not np.any(bias) and np.all(np.isfinite(w))
    again = tj.init.mlp(np.random.default_rng(0), sizes)
    for k in params:
        np.testing.assert_array_equal(params[k], again[k])
    if n > 1:   # every layer gets its own draws
        assert not np.array_equal(params["w2"].ravel()[:5], params["w1"].ravel()[:5])


def test_mlp_weights_and_dtype():
    params = tj.init.mlp(3, [300, 200, 100], weights=tj.init.glorot_uniform, dtype=np.float64)
    for i, (a, b) in enumerate([(300, 200), (200, 100)], 1):
        w = params[f"w{i}"]
        bound = math.sqrt(6 / (a + b))
        assert w.dtype == np.float64 and params[f"b{i}"].dtype == np.float64
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
        np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.03)
    he = tj.init.mlp(3, [1000, 500])
    np.testing.assert_allclose(he["w1"].std(), math.sqrt(2 / 1000), rtol=0.02)


# ---------------------------------------------------------------------------------------------
# save and load

ALL_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64, np.bool_, np.complex64, np.complex128]
if "bf16" in tj.ir.DTYPES:              # ml_dtypes' bfloat16: .npy keeps only its bytes
    ALL_DTYPES.append(tj.ir.DTYPES["bf16"].type)


def sample_tree():
    rng = np.random.default_rng(0)
    arrays = {np.dtype(d).name: (rng.standard_normal((2, 3)) * 50).astype(d)
              for d in ALL_DTYPES}
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-310, -1.5], np.float64)
    return {
        "arrays": arrays,
        "nested": [1, 2.5, True, None, (np.float32(0.25), np.int64(-7), []),
                   {"deep": [(), {}, None, np.zeros((0, 3), np.float32)]}],
        "specials": (specials, specials.astype(np.float32)),
        "scalar": np.asarray(3.0, np.float32),
        "big": np.arange(10_000, dtype=np.int64).reshape(100, 100) * (2 ** 40),
    }


def assert_same_tree(got, want):
    """Exact: structure (tuples stay tuples), and every leaf as np.asarray(original) to the bit;
    arrays come back as NumPy arrays, numbers as numbers of their own type."""
    g_leaves, g_tree = flatten(got)
    w_leaves, w_tree = flatten(want)
    assert g_tree == w_tree, (g_tree, w_tree)
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        # arrays come back as arrays, numbers as the same kind of number
        assert type(g) is (np.ndarray if isinstance(w, np.ndarray) else type(w)), (i, type(g))
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), (i, g.dtype, g.shape, w.dtype, w.shape)
        assert g.tobytes() == w.tobytes(), i


def leftovers(folder):
    return sorted(os.listdir(folder))


def test_round_trip_is_exact(tmp_path):
    tree = sample_tree()
    path = tmp_path / "tree.npz"
    tj.save(path, tree)
    got = tj.load(path)
    assert_same_tree(got, tree)
    assert type(got["nested"][4]) is tuple and type(got["nested"]) is list
    assert got["nested"][3] is None and got["nested"][5]["deep"][1] == {}
    assert leftovers(tmp_path) == ["tree.npz"]


@pytest.mark.parametrize("tree", [
    np.arange(5.0), 1.5, None, (), [], {}, [None], {"a": None}, ((np.int32(3),),),
    {"dict": {"list": [1], "tuple": (2,)}, "*": 4},
], ids=["array", "number", "none", "empty-tuple", "empty-list", "empty-dict", "list-none",
        "dict-none", "nested-tuple", "keys-like-the-format"])
def test_round_trip_small_trees(tmp_path, tree):
    tj.save(str(tmp_path / "t.npz"), tree)
    assert_same_tree(tj.load(str(tmp_path / "t.npz")), tree)


def test_namedtuples_come_back_as_tuples(tmp_path):
    Pair = namedtuple("Pair", "a b")
    tj.save(tmp_path / "n.npz", {"p": Pair(np.ones(2), 3)})
    got = tj.load(tmp_path / "n.npz")
    assert type(got["p"]) is tuple
    assert_same_tree(got, {"p": (np.ones(2), 3)})


def test_file_is_a_plain_npz(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.int32(4)]}
    path = tmp_path / "plain.npz"
    tj.save(path, tree)
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"__tree__", "leaf_0", "leaf_1"}
        assert data["__tree__"].dtype.kind == "U"
        # leaves in flatten order: dict keys sorted, so 'b' comes first
        np.testing.assert_array_equal(data["leaf_0"], np.int32(4))
        np.testing.assert_array_equal(data["leaf_1"], tree["w"])
        assert data["leaf_1"].dtype == np.float32


def test_numbers_come_back_as_they_were_saved(tmp_path):
    """A Python int stays an int (a step counter), a NumPy scalar a NumPy scalar."""
    tree = {"step": 300, "lr": 0.25, "done": False, "z": 1 + 2j, "s": np.float32(2.5),
            "i": np.int64(-3), "w": np.arange(3.0), "zero_d": np.array(4.0), "l": [1, 2.0]}
    tj.save(tmp_path / "n.npz", tree)
    got = tj.load(tmp_path / "n.npz")
    for key, want in tree.items():
        for g, w in zip(got[key] if key == "l" else [got[key]],
                        want if key == "l" else [want]):
            assert type(g) is type(w), key
            np.testing.assert_array_equal(g, w)
            assert np.asarray(g).dtype == np.asarray(w).dtype, key


def test_overwrite(tmp_path):
    path = tmp_path / "ckpt.npz"
    tj.save(path, {"a": np.zeros(3)})
    tj.save(path, {"b": [np.ones(2, np.int32)]})
    assert_same_tree(tj.load(path), {"b": [np.ones(2, np.int32)]})
    assert leftovers(tmp_path) == ["ckpt.npz"]


def test_new_files_get_the_usual_permissions(tmp_path):
    """Like np.savez(path): mode 0o666 less the umask, not a temporary file's 0o600."""
    reference = tmp_path / "reference"
    with open(reference, "wb"):
        pass
    tj.save(tmp_path / "t.npz", [np.ones(2)])
    assert (os.stat(tmp_path / "t.npz").st_mode & 0o777) == (os.stat(reference).st_mode & 0o777)


def test_file_without_structure_record_is_rejected(tmp_path):
    np.savez(tmp_path / "other.npz", leaf_0=np.ones(3))
    with pytest.raises(ValueError, match="structure"):
        tj.load(tmp_path / "other.npz")


def test_unknown_format_is_rejected(tmp_path):
    np.savez(tmp_path / "v9.npz", __tree__=np.array('{"format": "tracejit-pytree-9", '
                                                    '"tree": "*"}'), leaf_0=np.ones(3))
    with pytest.raises(ValueError, match="format"):
        tj.load(tmp_path / "v9.npz")


def test_pickled_leaves_are_never_loaded(tmp_path):
    np.savez(tmp_path / "evil.npz", __tree__=np.array('{"format": "tracejit-pytree-1", '
                                                      '"tree": "*"}'),
             leaf_0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        tj.load(tmp_path / "evil.npz")


def test_pickles_and_other_files_are_refused(tmp_path):
    """A plain pickle or a .npy file is not a checkpoint: a clear ValueError, nothing run."""
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"w": np.ones(2)}))
    np.save(tmp_path / "a.npy", np.ones(2))
    for name, match in [("p.pkl", "not written by tracejit.save: .*pickled"),
                        ("a.npy", "not an .npz archive")]:
        with pytest.raises(ValueError, match=match):
            tj.load(tmp_path / name)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_special_files_are_refused_at_once(tmp_path, kind):
    """A FIFO (whose open would wait for a writer forever), a link to /dev/zero (endless) or a
    folder: ValueError naming it, at once. A blocked open fails the test after 20 s instead of
    hanging it (SIGALRM to the main thread; pytest's Failed is no OSError to be swallowed)."""
    path = tmp_path / "ckpt.npz"
    {"fifo": os.mkfifo, "dev-zero": lambda p: p.symlink_to("/dev/zero"),
     "directory": os.mkdir}[kind](path)
    what = {"fifo": "a FIFO", "dev-zero": "a character device", "directory": "a directory"}
    with support.deadline(20, "tj.load"):
        with pytest.raises(ValueError, match=f"is not a regular file but {what[kind]}"):
            tj.load(path)


@pytest.mark.parametrize("bad", [
    {"a": np.array([1, "x"], dtype=object)},
    [np.ones(2), object()],
    {"a": [2 ** 80]},
], ids=["object-array", "object", "huge-int"])
def test_object_leaves_are_rejected(tmp_path, bad):
    with pytest.raises(TypeError, match="not an array or a number"):
        tj.save(tmp_path / "x.npz", bad)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("make", [lambda: np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
                                  lambda: np.asarray([[1.0, 2.0]]).view(np.matrix)],
                         ids=["masked", "matrix"])
def test_subclass_leaves_are_refused_not_stripped(tmp_path, make):
    # Saved as plain arrays, the mask (or the matrix class) would be lost without a word.
    with pytest.raises(TypeError, match="ndarray subclass"):
        tj.save(tmp_path / "p.npz", {"w": make()})
    assert not (tmp_path / "p.npz").exists()


def test_non_string_keys_are_rejected(tmp_path):
    with pytest.raises(TypeError, match="keys must be strings"):
        tj.save(tmp_path / "x.npz", {1: np.ones(2)})
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["oserror", "interrupt"])
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch, error):
    path = tmp_path / "ckpt.npz"
    old = {"w": np.arange(4.0)}
    tj.save(path, old)
    real_savez = np.savez

    def failing_savez(file, **arrays):
        real_savez(file, **{k: arrays[k] for k in list(arrays)[:1]})   # half written...
        file.write(b"\0" * 100)
        raise error                                                    # ...then the failure

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(type(error)):
        tj.save(path, {"w": np.ones(1000), "more": [np.ones(3)]})
    monkeypatch.undo()
    assert leftovers(tmp_path) == ["ckpt.npz"]
    assert_same_tree(tj.load(path), old)


def test_missing_folder_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        tj.save(tmp_path / "missing" / "x.npz", [np.ones(2)])
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder_creates_nothing(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            tj.save(folder / "x.npz", [np.ones(2)])
        assert leftovers(folder) == []
    finally:
        folder.chmod(0o755)


def test_checkpoint_resumes_training_exactly(tmp_path):
    """Saving params and Adam state mid-training and resuming from the file gives bit-identical
    parameters to training straight through, without a retrace."""
    opt = tj.optim.adam(0.01)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal(16).astype(np.float32)

    def loss_fn(p, x, y):
        return np.mean((np.tanh(x @ p["w"]) + p["b"][0] - y) ** 2)

    @tj.jit
    def step(params, state):
        grads = tj.grad(loss_fn)(params, x, y)
        return opt.update(grads, state, params)

    def train(params, state, n):
        for _ in range(n):
            params, state = step(params, state)
        return params, state

    p0 = {"w": rng.standard_normal(3).astype(np.float32), "b": [np.asarray(0.0, np.float32)]}
    straight = train(p0, opt.init(p0), 5)
    tj.save(tmp_path / "ckpt.npz", train(p0, opt.init(p0), 2))
    resumed = train(*tj.load(tmp_path / "ckpt.npz"), 3)
    for g, w in zip(flatten(resumed)[0], flatten(straight)[0]):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape) and g.tobytes() == w.tobytes()
    assert step.trace_count == 1


# ---------------------------------------------------------------------------------------------
# check_grads

RNG = np.random.default_rng(42)
X = RNG.standard_normal((3, 4))
Y = RNG.standard_normal((4,))

GOOD = {
    "scalar": (lambda x, y: np.sum(np.sin(x) * y), [X, Y]),
    "array-output": (lambda x, y: np.sin(x @ y) * np.exp(y[0]), [X, Y]),
    "matrix-output": (lambda x: np.sin(x).T @ np.cos(x), [X]),
    "pytree-arg": (lambda p, x: np.sum(np.sin(p["w"] @ x) ** 2 + p["b"][0] * p["b"][1]["c"]),
                   [{"w": X, "b": [Y[:3], {"c": 1.5}]}, Y]),
    "number-arg": (lambda x, s: np.exp(s * x) / (1.0 + s * s), [Y, 0.7]),
    "float32-args": (lambda x, y: np.mean(np.sin(x) @ y), [X.astype(np.float32),
                                                          Y.astype(np.float32)]),
    "integer-arg-skipped": (lambda x, n: np.sum(x ** n), [Y, 3]),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_check_grads_passes_on_correct_gradients(case):
    f, args = GOOD[case]
    worst = tj.check_grads(f, args)
    assert 0.0 <= worst < 1e-6


@pytest.mark.parametrize("argnums", [0, 1, (0, 1), [1]])
def test_check_grads_argnums(argnums):
    def f(x, y):
        return np.sin(x) @ y

    assert tj.check_grads(f, [X, Y], argnums=argnums) < 1e-6


def test_check_grads_needs_a_float_argument():
    with pytest.raises(ValueError, match="no floating-point argument"):
        tj.check_grads(lambda n: n * 2, [3])


def wrong_by(rule, factor, which=None):
    """A VJP rule giving cotangents `factor` times the right ones (only operand `which`)."""
    def wrong(g, *xs, out, **params):
        cts = list(rule(g, *xs, out=out, **params))
        return [ops.mul(c, factor) if which in (None, i) else c for i, c in enumerate(cts)]
    return wrong


@pytest.mark.parametrize("case", ["scalar", "array-output", "matrix-output", "pytree-arg",
                                  "float32-args"])
@pytest.mark.parametrize("factor", [1.01, -1.0, 0.0])
def test_check_grads_catches_a_wrong_sin_rule(monkeypatch, case, factor):
    f, args = GOOD[case]
    monkeypatch.setattr(P.sin, "vjp", wrong_by(P.sin.vjp, factor))
    with pytest.raises(AssertionError,
                       match=r"check_grads: order 1, direction 0 \((fwd|rev)\): tracejit gives"):
        tj.check_grads(f, args)


def test_check_grads_catches_a_rule_ignoring_its_cotangent(monkeypatch):
    """cos(x) instead of g * cos(x) is right for the cotangent of np.sum(sin(x)), all ones:
    an array output must be projected on a random cotangent to catch it."""
    monkeypatch.setattr(P.sin, "vjp", lambda g, x, out: [ops.cos(x)])
    assert tj.check_grads(lambda x: np.sum(np.sin(x)), [X], modes=("rev",)) < 1e-6
    with pytest.raises(AssertionError):
        tj.check_grads(lambda x: np.sin(x), [X])
    # Forward mode derives sin's tangent from the rule as a linear map of the cotangent, which
    # this one is not: it is caught even with the all-ones cotangent.
    with pytest.raises(AssertionError, match=r"\(fwd\)"):
        tj.check_grads(lambda x: np.sum(np.sin(x)), [X], modes=("fwd",))


def test_check_grads_catches_a_wrong_rule_for_one_operand(monkeypatch):
    """mul's cotangent is wrong for its second operand only: caught when that operand is
    differentiated, not when only the first one is."""
    def f(x, y):
        return np.sum(np.tanh(x) * y)

    monkeypatch.setattr(P.mul, "vjp", wrong_by(P.mul.vjp, 1.001, which=1))
    with pytest.raises(AssertionError):
        tj.check_grads(f, [Y, Y[::-1].copy()], argnums=1)
    assert tj.check_grads(f, [Y, Y[::-1].copy()], argnums=0) < 1e-6


@pytest.mark.parametrize("case", ["scalar", "array-output", "pytree-arg"])
def test_check_grads_higher_orders(case):
    f, args = GOOD[case]
    assert tj.check_grads(f, args, 2) < 1e-5
    assert tj.check_grads(f, args, order=3, modes=("fwd",), rtol=1e-4) < 1e-4


@tj.custom_vjp
def _stop(x):
    return x


_stop.defvjp(lambda x: (x, None), lambda _, g: (np.zeros_like(g),))


@tj.custom_vjp
def _cube(x):
    return x ** 3


# A first derivative that is right (3 x^2 g) but whose own derivative is not (the x^2 is
# behind a gradient stop): order 1 passes, order 2 fails, in either mode.
_cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3 * _stop(x) ** 2 * g,))


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_check_grads_catches_a_wrong_second_derivative(mode):
    f = lambda x: np.sum(_cube(x) * x)                                         # noqa: E731
    assert tj.check_grads(f, [X], 1, modes=(mode,)) < 1e-6
    with pytest.raises(AssertionError, match=rf"order 2, direction 0 \({mode}\)"):
        tj.check_grads(f, [X], 2, modes=(mode,))
    with pytest.raises(ValueError, match="order"):
        tj.check_grads(f, [X], 0)


def test_monkeypatched_rule_is_restored():
    """Runs after the monkeypatching tests (file order): the real rules are back."""
    f, args = GOOD["scalar"]
    assert tj.check_grads(f, args) < 1e-6
    np.testing.assert_allclose(tj.grad(lambda x: np.sum(np.sin(x)))(Y), np.cos(Y), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# donate_argnums


def sgd_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((3, 2)), "layers": [rng.standard_normal(2),
                                                          {"s": np.asarray(0.5)}]}
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    return params, x, y


def sgd_loss(p, x, y):
    return np.mean(((x @ p["w"] + p["layers"][0]) * p["layers"][1]["s"] - y) ** 2)


def sgd_step(params, x, y, lr):
    loss, grads = tj.value_and_grad(sgd_loss)(params, x, y)
    return loss, tj.tree_map(lambda p, g: p - lr * g, params, grads)


def copies(tree):
    return tj.tree_map(lambda a: np.array(a, copy=True), tree)


def test_donated_sgd_step_updates_params_in_place():
    params, x, y = sgd_problem()
    plain = tj.jit(sgd_step)
    donated = tj.jit(sgd_step, donate_argnums=0)
    want_params = copies(params)
    originals = flatten(params)[0]
    x0, y0 = x.copy(), y.copy()
    for _ in range(3):
        want_loss, want_params = plain(want_params, x, y, 0.1)
        loss, new = donated(params, x, y, 0.1)
        # the same array objects (the 0-d one cannot be written in place), updated
        for got, orig in zip(flatten(new)[0], originals):
            if orig.ndim:
                assert got is orig
        for got, want in zip(flatten(params)[0], flatten(want_params)[0]):
            if np.ndim(want):
                assert got.tobytes() == np.asarray(want).tobytes()
        assert np.asarray(loss).tobytes() == np.asarray(want_loss).tobytes()
        np.testing.assert_array_equal(np.asarray(new["layers"][1]["s"]),
                                      want_params["layers"][1]["s"])
        params = new
        assert x.tobytes() == x0.tobytes() and y.tobytes() == y0.tobytes()
    assert donated.trace_count == 1


def test_non_donated_arguments_are_never_mutated():
    """State arrays with the shapes and dtypes of the results are not written into: only
    donated ones are."""
    rng = np.random.default_rng(3)
    a, m, v = (rng.standard_normal(4) for _ in range(3))

    def f(a, state):
        return a * 2, {"m": state["m"] + 1, "v": state["v"] * 3}, state["m"] - a

    state = {"m": m, "v": v}
    keep = copies((a, state))
    out = tj.jit(f, donate_argnums=0)(a, state)
    want = f(*keep)
    assert out[0] is a
    np.testing.assert_array_equal(a, want[0])
    assert state["m"].tobytes() == keep[1]["m"].tobytes()
    assert state["v"].tobytes() == keep[1]["v"].tobytes()
    for got, w in zip(flatten(out)[0], flatten(want)[0]):
        np.testing.assert_array_equal(got, w)
    assert not any(np.shares_memory(r, s) for r in flatten(out)[0][1:]
                   for s in (state["m"], state["v"]))


def test_results_without_a_matching_donated_array():
    """0-d results, other dtypes and shapes, and results beyond the donated arrays come back
    as fresh arrays; the donated arrays they do not match keep their values."""
    w = np.arange(6.0).reshape(2, 3)
    b = np.ones(3, np.float32)
    s = np.asarray(2.0)

    def f(p):
        w, b, s = p
        return (np.sum(w), w.T * 1.0, w + 1, w * 2, b.astype(np.float64), s * 3)

    keep = copies((w, b, s))
    out = tj.jit(f, donate_argnums=0)((w, b, s))
    want = f(keep)
    assert out[2] is w and all(o is not w for i, o in enumerate(out) if i != 2)
    assert all(o is not b and o is not s for o in out)
    assert b.tobytes() == keep[1].tobytes() and s.tobytes() == keep[2].tobytes()
    for got, ref in zip(out, want):
        got, ref = np.asarray(got), np.asarray(ref)
        assert (got.dtype, got.shape) == (ref.dtype, ref.shape)
        np.testing.assert_array_equal(got, ref)


def test_tied_donated_arrays_are_written_once():
    """One array appearing twice in the donated tree (tied weights): the results must still be
    those of the non-donated call."""
    w = np.ones(3)

    def f(p):
        return {"a": p["a"] + 1, "b": p["b"] * 10}

    want = tj.jit(f)({"a": w.copy(), "b": w.copy()})
    got = tj.jit(f, donate_argnums=0)({"a": w, "b": w})
    np.testing.assert_array_equal(got["a"], want["a"])
    np.testing.assert_array_equal(got["b"], want["b"])


def test_donation_order_is_result_order():
    """Each result goes to the first unused donated array of its shape and dtype."""
    a, b = np.zeros(2), np.zeros(2)
    out = tj.jit(lambda p: (p[1] + 5, p[0] + 7), donate_argnums=0)((a, b))
    assert out[0] is a and out[1] is b
    np.testing.assert_array_equal(a, [5, 5])
    np.testing.assert_array_equal(b, [7, 7])


@pytest.mark.parametrize("make", [
    lambda: np.ones((4, 4))[:, ::2],
    lambda: np.asfortranarray(np.ones((3, 4))),
    lambda: np.ones((4, 4))[::2],
    lambda: np.broadcast_to(np.ones(2), (3, 2)),
    lambda: read_only(np.ones((3, 2))),
], ids=["strided", "fortran", "row-strided", "broadcast", "read-only"])
def test_unusable_donation_raises(make):
    bad = make()
    good = np.full(bad.shape, 3.0)
    before = good.copy(), np.array(bad, copy=True)
    f = tj.jit(lambda p: tj.tree_map(lambda a: a * 2, p), donate_argnums=0)
    with pytest.raises(ValueError, match="C-contiguous"):
        f([good, bad])
    np.testing.assert_array_equal(good, before[0])      # nothing was written before the error
    np.testing.assert_array_equal(bad, before[1])
    got = tj.jit(lambda p: tj.tree_map(lambda a: a * 2, p))([good, bad])  # fine undonated
    np.testing.assert_array_equal(got[1], before[1] * 2)


def read_only(a):
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("static,donate", [(1, (0, 1)), ((0,), 0), ((0, 2), [2])])
def test_static_and_donated_overlap_raises(static, donate):
    with pytest.raises(ValueError, match="both static and donated"):
        tj.jit(lambda a, b, c=None: a, static_argnums=static, donate_argnums=donate)
    with pytest.raises(ValueError, match="both static and donated"):
        tj.jit(static_argnums=static, donate_argnums=donate)(lambda a, b, c=None: a)


def test_donate_argnums_out_of_range():
    f = tj.jit(lambda a: a + 1, donate_argnums=1)
    with pytest.raises(TypeError, match="donate_argnums names argument 1"):
        f(np.ones(2))


def test_donated_training_with_adam_matches():
    """A whole training loop with params donated: the same numbers as without donation."""
    params, x, y = sgd_problem(seed=5)
    opt = tj.optim.adam(0.05)

    def step(params, state, x, y):
        loss, grads = tj.value_and_grad(sgd_loss)(params, x, y)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    plain, donated = tj.jit(step), tj.jit(step, donate_argnums=(0, 1))
    p1, s1 = copies(params), opt.init(params)
    p2, s2 = copies(params), opt.init(params)
    w_obj = p2["w"]
    for _ in range(4):
        l1, p1, s1 = plain(p1, s1, x, y)
        l2, p2, s2 = donated(p2, s2, x, y)
        assert np.asarray(l1).tobytes() == np.asarray(l2).tobytes()
        for a, b in zip(flatten((p1, s1))[0], flatten((p2, s2))[0]):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert p2["w"] is w_obj


def test_donated_arrays_that_overlap_are_not_written():
    # Two donated views of one buffer: writing both would let the second write show through
    # the first result; neither is written, and both results are right.
    a = np.arange(4.0)
    first, second = tj.jit(lambda p: (p[0] * 0, p[1] + 1), donate_argnums=0)(
        (a[0:2], a[0:2].view()))
    np.testing.assert_array_equal(first, [0.0, 0.0])
    np.testing.assert_array_equal(second, [1.0, 2.0])
    np.testing.assert_array_equal(a, [0.0, 1.0, 2.0, 3.0])


def test_a_donated_array_also_passed_undonated_is_not_mutated():
    w = np.ones(3)
    out = tj.jit(lambda p, q: p + q, donate_argnums=0)(w, w)
    np.testing.assert_array_equal(out, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0])
    assert out is not w


def test_a_donated_array_also_passed_by_keyword_is_not_mutated():
    w = np.ones(3)
    out = tj.jit(lambda p, q=None: p * 2 + q, donate_argnums=0)(w, q=w)
    np.testing.assert_array_equal(out, [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0])
