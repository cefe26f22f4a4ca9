"""Gradient descent on a quadratic, with one jitted step: the smallest training loop.

First the cost is written into the function, J(w) = w**2 - 10 w + 25 = (w - 5)**2, and
w moves from 0 towards 5 (the first step, lr 0.01, gives w = 0.1). Then the coefficients are
fed as data, J(w) = c0 w**2 + c1 w + c2 with c = [1, -20, 100] = (w - 10)**2, so the same
compiled step minimises whatever quadratic it is given, and w moves towards 10:

    python examples/quadratic.py                 # lr 0.01, 1000 steps, from w = 0
    python examples/quadratic.py --steps 200 --show-ir
"""

import argparse

import numpy as np

import tracejit as tj


def cost(w):
    """J(w) = w**2 - 10 w + 25, minimal at w = 5."""
    return w ** 2 - 10.0 * w + 25.0


def cost_data(w, c):
    """J(w) = c0 w**2 + c1 w + c2, the coefficients given as an array."""
    return c[0] * w ** 2 + c[1] * w + c[2]


def step(w, lr):
    """One step of gradient descent on `cost`."""
    return w - lr * tj.grad(cost)(w)


def step_data(w, c, lr):
    """One step of gradient descent on `cost_data` with coefficients `c`."""
    return w - lr * tj.grad(cost_data)(w, c)


def descend(jitted, w, extra, lr, steps, label):
    """Run `steps` steps of `jitted(w, *extra, lr)`; returns (w after one step, final w)."""
    first = None
    for t in range(steps):
        w = jitted(w, *extra, lr)
        first = w if first is None else first
        if t % max(steps // 5, 1) == 0 or t == steps - 1:
            print(f"{label:22s}  step {t + 1:5d}  w = {float(w):.6f}")
    return float(first), float(w)


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=1000, help="gradient steps (default: 1000)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (default: 0.01)")
    parser.add_argument("--show-ir", action="store_true", help="print the IR of both steps")
    args = parser.parse_args(argv)

    w0 = np.float64(0.0)
    c = np.array([1.0, -20.0, 100.0])

    jitted = tj.jit(step)
    jitted_data = tj.jit(step_data)
    if args.show_ir:
        print(jitted.lower(w0, args.lr))
        print(jitted_data.lower(w0, c, args.lr))

    first, w = descend(jitted, w0, (), args.lr, args.steps, "J = w^2 - 10w + 25")
    first_data, w_data = descend(jitted_data, w0, (c,), args.lr, args.steps,
                                 "J = c0 w^2 + c1 w + c2")
    print(f"w -> {w:.6f} (minimum at 5), w -> {w_data:.6f} (minimum at -c1 / (2 c0) = "
          f"{-c[1] / (2 * c[0]):g}); each step traced {jitted.trace_count} and "
          f"{jitted_data.trace_count} time(s)")
    return {"first": first, "w": w, "first_data": first_data, "w_data": w_data,
            "trace_counts": (jitted.trace_count, jitted_data.trace_count)}


if __name__ == "__main__":
    main()
