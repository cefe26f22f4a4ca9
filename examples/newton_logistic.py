"""Newton's method on a small logistic regression, with the gradient and the Hessian from
tj.grad and tj.hessian in one jitted step: the loss falls to its minimum in a handful of steps.

200 points with 3 features x ~ N(0, 1) and a constant 1 for the bias get labels t in {0, 1}
drawn with probability sigmoid(x . w_true), w_true = (1.5, -2, 0.5, 0.3) with the bias last
(default_rng(seed): the features, then the uniforms that draw the labels), so that the two
classes overlap and the optimum is finite. The loss is the mean logistic loss plus a small L2
penalty,

    L(w) = mean(log(1 + exp(z)) - t z) + lam |w|^2 / 2,     z = X w,

whose Hessian X^T diag(p (1 - p)) X / n + lam I (p = sigmoid(z)) is positive definite. Each
Newton step solves H d = g and moves w -= d; near the optimum the number of correct digits
doubles at every step (quadratic convergence), visible in the printed |g|. For comparison,
plain gradient descent is run for the same number of steps:

    python examples/newton_logistic.py                  # 8 Newton steps
    python examples/newton_logistic.py --steps 5 --show-ir
"""

import argparse

import numpy as np

import tracejit as tj

W_TRUE = np.array([1.5, -2.0, 0.5, 0.3])      # three feature weights, then the bias


def make_data(n=200, seed=0):
    """(X, t): X of shape (n, 4), three N(0, 1) features and a column of ones; t in {0., 1.}
    with P(t = 1) = sigmoid(X @ W_TRUE). float64."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n, 3)), np.ones((n, 1))], axis=1)
    p = 1.0 / (1.0 + np.exp(-x @ W_TRUE))
    t = (rng.uniform(size=n) < p).astype(np.float64)
    return x, t


def loss(w, x, t, lam):
    """Mean logistic loss plus lam |w|^2 / 2.

    With z = x . w and p = sigmoid(z), -log P(t | x) = -t log p - (1 - t) log(1 - p)
    = log(1 + exp(z)) - t z; logaddexp(0, z) computes log(1 + exp(z)) without overflow."""
    z = x @ w
    return np.mean(np.logaddexp(0.0, z) - t * z) + 0.5 * lam * np.sum(w * w)


def newton_step(w, x, t, lam):
    """One Newton step: (loss, gradient, Hessian, new w), all at the current w.

    The quadratic model L(w + d) ~ L + g . d + d^T H d / 2 is minimal at H d = -g."""
    value, g = tj.value_and_grad(loss)(w, x, t, lam)
    h = tj.hessian(loss)(w, x, t, lam)                 # shape (4, 4): d2L / dw_i dw_j
    return value, g, h, w - np.linalg.solve(h, g)


def gd_step(w, x, t, lam, lr):
    """One step of plain gradient descent, for comparison: (loss, new w)."""
    value, g = tj.value_and_grad(loss)(w, x, t, lam)
    return value, w - lr * g


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=8, help="Newton steps (default: 8)")
    parser.add_argument("--n", type=int, default=200, help="number of points (default: 200)")
    parser.add_argument("--lam", type=float, default=1e-3,
                        help="L2 penalty lam in lam |w|^2 / 2 (default: 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default: 0)")
    parser.add_argument("--gd-lr", type=float, default=1.0,
                        help="learning rate of the gradient-descent comparison (default: 1.0)")
    parser.add_argument("--show-ir", action="store_true",
                        help="print the IR of the Newton step (long: some 900 lines)")
    args = parser.parse_args(argv)

    x, t = make_data(args.n, args.seed)
    print(f"{len(x)} points, {int(t.sum())} of class 1; features + bias = {x.shape[1]} "
          f"weights, lam = {args.lam:g}")
    step = tj.jit(newton_step)
    w = np.zeros(x.shape[1])
    if args.show_ir:
        print(tj.trace(newton_step, w, x, t, args.lam))

    losses, grad_norms = [], []
    for k in range(args.steps + 1):
        value, g, h, w_next = step(w, x, t, args.lam)
        losses.append(float(value))
        grad_norms.append(float(np.linalg.norm(g)))
        print(f"newton step {k:2d}  loss {losses[-1]:.15f}  |g| {grad_norms[-1]:.3e}")
        if k < args.steps:          # the last pass only measures the final w
            w = w_next
    hessian = np.asarray(h)

    # Gradient descent from the same start, the same number of steps.
    gd = tj.jit(gd_step)
    w_gd = np.zeros(x.shape[1])
    for _ in range(args.steps):
        _, w_gd = gd(w_gd, x, t, args.lam, args.gd_lr)
    gd_loss = float(gd(w_gd, x, t, args.lam, args.gd_lr)[0])
    print(f"after {args.steps} steps: Newton loss {losses[-1]:.10f}, gradient descent (lr "
          f"{args.gd_lr:g}) loss {gd_loss:.10f}")
    print(f"w = {np.array2string(w, precision=5)}  (the data were drawn with "
          f"{np.array2string(W_TRUE, precision=5)})")
    print(f"eigenvalues of the final Hessian (all > 0: a minimum): "
          f"{np.array2string(np.linalg.eigvalsh(hessian), precision=4)}")
    return {"w": w, "losses": losses, "grad_norms": grad_norms, "hessian": hessian,
            "gd_loss": gd_loss, "x": x, "t": t, "trace_count": step.trace_count}


if __name__ == "__main__":
    main()
