"""Train a two-layer ReLU network with a jit-compiled training step.

The loss, its gradients and the SGD update of both weight matrices are traced from plain
NumPy into one tracejit Function and run as one compiled program per call:

    python examples/train_mlp.py            # N, D_in, H, D_out = 64, 1000, 100, 10; 500 steps
    python examples/train_mlp.py --steps 50 --show-ir
"""

import argparse
import time

import numpy as np

import tracejit as tj
from tracejit.runtime import backends


def loss(w1, w2, x, y):
    """Sum of squared errors of relu(x @ w1) @ w2 against y."""
    h = np.maximum(x @ w1, 0.0)
    return np.sum((h @ w2 - y) ** 2)


def sgd_step(w1, w2, x, y, lr):
    """One training step: the loss and the updated weights."""
    value, (g1, g2) = tj.value_and_grad(loss, argnums=(0, 1))(w1, w2, x, y)
    return value, w1 - lr * g1, w2 - lr * g2


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=500, help="SGD steps (default: 500)")
    parser.add_argument("--lr", type=float, default=1e-6, help="learning rate (default: 1e-6)")
    parser.add_argument("--backend", default="cpu", choices=backends.NAMES,
                        help="where the step runs (default: cpu)")
    parser.add_argument("--show-ir", action="store_true", help="print the step's optimised IR")
    args = parser.parse_args(argv)

    n, d_in, h, d_out = 64, 1000, 100, 10
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    y = rng.standard_normal((n, d_out)).astype(np.float32)
    w1 = rng.standard_normal((d_in, h)).astype(np.float32)
    w2 = rng.standard_normal((h, d_out)).astype(np.float32)

    step = tj.jit(sgd_step, backend=args.backend)
    if args.show_ir:
        print(step.lower(w1, w2, x, y, args.lr).format(locations=True))

    start = time.perf_counter()
    first = None
    for t in range(args.steps):
        value, w1, w2 = step(w1, w2, x, y, args.lr)
        first = value if first is None else first
        if t % max(args.steps // 10, 1) == 0 or t == args.steps - 1:
            print(f"step {t:4d}  loss {value:14.4f}")
    elapsed = time.perf_counter() - start
    print(f"loss {first:.4g} -> {value:.4g} in {args.steps} steps "
          f"({elapsed / args.steps * 1e3:.2f} ms/step on backend {args.backend!r}, "
          f"traced {step.trace_count} time(s))")
    return float(first), float(value)


if __name__ == "__main__":
    main()
