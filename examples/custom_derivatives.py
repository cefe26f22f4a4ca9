"""Derivative rules of your own with tj.custom_vjp and tj.custom_jvp: a stable log(1 + exp(x)),
gradient clipping, and a straight-through estimator for np.round.

(a) log1pexp(x) = log(1 + exp(x)) written naively overflows: exp(800) = inf, so the value is
    inf, and the derived gradient, the chain rule's [1 / (1 + exp(x))] * exp(x) = 0 * inf, is
    not the true derivative 1 (IEEE says nan; tracejit treats a zero cotangent times an
    infinite partial as 0, so it gives 0). With tj.custom_vjp the forward pass is
    np.logaddexp(0, x) (800 at x = 800) and the backward pass is the rule g * sigmoid(x), 1.0
    at x = 800.
(b) clip_gradient(x) is the identity forward; backward, the cotangent arriving at it is
    clipped to [-1, 1] before it goes on, whatever the rest of the function does.
(c) The straight-through estimator: round(x) forward, and the cotangent passed through
    unchanged backward, as if round were the identity (its true derivative is 0 almost
    everywhere, which trains nothing). It trains a linear model whose weights are quantised to
    multiples of 0.25 to the exact weights that generated the data.
(d) The same log1pexp with tj.custom_jvp, one forward-mode rule d log1pexp = sigmoid(x) dx,
    used by tj.jvp and, transposed, by tj.grad.

Each result is printed beside its closed form, and the IR of a function that calls log1pexp,
where the call is one unit (custom_vjp_call ... name=log1pexp):

    python examples/custom_derivatives.py
    python examples/custom_derivatives.py --steps 500 --lr 0.05
"""

import argparse

import numpy as np

import tracejit as tj

POINTS = np.array([-800.0, -30.0, -2.0, 0.0, 1.5, 40.0, 800.0])


def sigmoid(x):
    """1 / (1 + exp(-x)): 0 at x = -800 (exp(800) = inf), 1 at x = 800."""
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------------
# (a) log1pexp with custom_vjp


def naive_log1pexp(x):
    """log(1 + exp(x)) as written: inf at x = 800, and its derived gradient there is 0 * inf
    (0 in tracejit, nan in IEEE arithmetic) instead of 1."""
    return np.log1p(np.exp(x))


@tj.custom_vjp
def log1pexp(x):
    """log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), finite for every finite x."""
    return np.logaddexp(0.0, x)


def _log1pexp_fwd(x):
    return log1pexp(x), x                           # keep x for the backward pass


def _log1pexp_bwd(x, g):
    # d/dx log(1 + exp(x)) = exp(x) / (1 + exp(x)) = 1 / (1 + exp(-x)) = sigmoid(x)
    return (g * sigmoid(x),)


log1pexp.defvjp(_log1pexp_fwd, _log1pexp_bwd)


# ---------------------------------------------------------------------------------------------
# (b) gradient clipping


@tj.custom_vjp
def clip_gradient(x):
    """The identity; its backward pass clips the cotangent to [-1, 1]."""
    return x


clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1.0, 1.0),))


def clipped_energy(x):
    """sum(10 clip_gradient(x)**2): its gradient is clip(20 x, -1, 1) instead of 20 x."""
    return np.sum(10.0 * clip_gradient(x) ** 2)


# ---------------------------------------------------------------------------------------------
# (c) straight-through estimator for round


@tj.custom_vjp
def round_ste(x):
    """np.round(x) forward; backward the cotangent passes through as if round were x."""
    return np.round(x)


round_ste.defvjp(lambda x: (np.round(x), None), lambda _, g: (g,))

GRID = 0.25                                     # quantisation step of the weights
W_TRUE = np.array([0.5, -1.25, 2.0])            # on the grid: a quantised model can fit exactly


def quantise(w, rounding):
    """w rounded to the nearest multiple of GRID by `rounding` (np.round or round_ste)."""
    return rounding(w / GRID) * GRID


def quantised_loss(w, x, y, rounding):
    """Mean squared error of the linear model with quantised weights, x @ quantise(w)."""
    return np.mean((x @ quantise(w, rounding) - y) ** 2)


def make_data(n=64, seed=0):
    """x ~ N(0, 1) of shape (n, 3), y = x @ W_TRUE (no noise)."""
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return x, x @ W_TRUE


def train_quantised(x, y, steps, lr):
    """Gradient descent on the latent weights w (from 0) through the straight-through
    estimator; returns (w, quantise(w), losses)."""

    @tj.jit
    def step(w, x, y):
        value, g = tj.value_and_grad(quantised_loss)(w, x, y, round_ste)
        return value, w - lr * g

    w, losses = np.zeros(3), []
    for _ in range(steps):
        value, w = step(w, x, y)
        losses.append(float(value))
    return w, np.round(w / GRID) * GRID, losses


# ---------------------------------------------------------------------------------------------
# (d) log1pexp with custom_jvp


@tj.custom_jvp
def log1pexp_jvp(x):
    """log(1 + exp(x)) as in (a), with a forward-mode rule."""
    return np.logaddexp(0.0, x)


@log1pexp_jvp.defjvp
def _log1pexp_jvp_rule(primals, tangents):
    (x,), (dx,) = primals, tangents
    # d log1pexp(x) = sigmoid(x) dx: linear in dx, so reverse mode can transpose it
    return log1pexp_jvp(x), sigmoid(x) * dx


def show(label, values):
    """One labelled row of numbers."""
    print(f"  {label:34s} {np.array2string(np.asarray(values), precision=6)}")


def table(columns):
    """{heading: values} as a table, one row per point."""
    print("  " + "".join(f"{h:>15s}" for h in columns))
    for row in zip(*columns.values()):
        print("  " + "".join(f"{float(v):15.7g}" for v in row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=200,
                        help="gradient steps of the quantised model (default: 200)")
    parser.add_argument("--lr", type=float, default=0.1,
                        help="learning rate of the quantised model (default: 0.1)")
    parser.add_argument("--no-ir", action="store_true", help="do not print the IR")
    args = parser.parse_args(argv)
    x = POINTS
    out = {"x": x}

    print("(a) log(1 + exp(x)), naive and with custom_vjp (value log1pexp, gradient d/dx)")
    with np.errstate(over="ignore", invalid="ignore"):
        naive_value = naive_log1pexp(x)
        naive_grad = tj.grad(lambda x: np.sum(naive_log1pexp(x)))(x)
    custom_value = log1pexp(x)
    custom_grad = tj.jit(tj.grad(lambda x: np.sum(log1pexp(x))))(x)
    with np.errstate(over="ignore"):           # exp(800) = inf in 1 / (1 + exp(-x)): fine
        closed = sigmoid(x)
    table({"x": x, "naive value": naive_value, "naive d/dx": naive_grad,
           "custom value": custom_value, "custom d/dx": custom_grad, "sigmoid(x)": closed})
    print(f"  at x = 800 the naive gradient is {naive_grad[-1]:g}, not 1: the chain rule's "
          f"[1 / (1 + exp(x))] * exp(x) is 0 * inf")
    moderate = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    error = tj.check_grads(lambda x: np.sum(log1pexp(x)), (moderate,), modes=("rev",))
    print(f"  check_grads against central differences at moderate x: relative error {error:.1e}")
    out.update(naive_value=naive_value, naive_grad=naive_grad, custom_value=custom_value,
               custom_grad=custom_grad, check_grads_error=error)
    ir = str(tj.trace(lambda x: 2.0 * log1pexp(x), x))
    out["ir"] = ir
    if not args.no_ir:
        print("  the IR of x -> 2 log1pexp(x): the call is one unit, with its rule attached")
        print("    " + ir.replace("\n", "\n    "))

    print("(b) gradient clipping: f(x) = sum(10 clip_gradient(x)**2)")
    xb = np.array([-0.2, -0.03, 0.0, 0.01, 0.5])
    clipped_grad = tj.grad(clipped_energy)(xb)
    show("x", xb)
    show("unclipped gradient 20 x", 20.0 * xb)
    show("gradient with clip_gradient", clipped_grad)
    out.update(clip_x=xb, clipped_grad=clipped_grad)

    print(f"(c) straight-through estimator: a linear model with weights quantised to "
          f"multiples of {GRID}")
    xd, yd = make_data()
    w0 = np.array([0.3, -0.4, 0.9])
    round_grad = tj.grad(quantised_loss)(w0, xd, yd, np.round)
    ste_grad = tj.grad(quantised_loss)(w0, xd, yd, round_ste)
    show("gradient through np.round (all 0)", round_grad)
    show("gradient through round_ste", ste_grad)
    w, w_quantised, losses = train_quantised(xd, yd, args.steps, args.lr)
    print(f"  after {args.steps} steps of gradient descent through round_ste: loss "
          f"{losses[0]:.4f} -> {losses[-1]:.3g}\n  latent w {np.array2string(w, precision=4)}, "
          f"quantised {np.array2string(w_quantised)}, the data made with "
          f"{np.array2string(W_TRUE)}")
    out.update(ste_w0=w0, ste_data=(xd, yd), round_grad=round_grad, ste_grad=ste_grad,
               ste_w=w, ste_w_quantised=w_quantised, ste_losses=losses)

    print("(d) log1pexp with custom_jvp, under tj.jvp and tj.grad")
    tangent = np.linspace(-1.0, 2.0, len(x))
    jvp_value, jvp_tangent = tj.jvp(log1pexp_jvp, (x,), (tangent,))
    jvp_grad = tj.grad(lambda x: np.sum(log1pexp_jvp(x)))(x)
    table({"x": x, "tangent t": tangent, "jvp tangent": jvp_tangent,
           "sigmoid(x) t": closed * tangent, "grad": jvp_grad})
    error_jvp = tj.check_grads(lambda x: np.sum(log1pexp_jvp(x)), (moderate,))
    print(f"  check_grads (forward and reverse mode) at moderate x: relative error "
          f"{error_jvp:.1e}")
    out.update(tangent=tangent, jvp_value=jvp_value, jvp_tangent=jvp_tangent,
               jvp_grad=jvp_grad, check_grads_error_jvp=error_jvp)
    return out


if __name__ == "__main__":
    main()
