"""A two-layer ReLU network, y_pred = relu(x @ w1) @ w2, fitted to random data by gradient
descent with one jitted step (loss, gradients and update), in the two classic settings:

  --variant l2     N, D, H = 64, 1000, 100 with output D; loss = mean over the batch of the
                   sum of squared errors; lr 1e-5, 50 steps; loss printed every step.
  --variant torch  PyTorch's tutorial net: N, D_in, H, D_out = 64, 1000, 100, 10; loss = sum
                   of squared errors; lr 1e-6, 500 steps; loss printed every 50 steps.

Data and weights are standard normal (float32, default_rng(seed)):

    python examples/two_layer_net.py                       # the l2 variant
    python examples/two_layer_net.py --variant torch --steps 200
"""

import argparse
import functools
from dataclasses import dataclass

import numpy as np

import tracejit as tj


@dataclass(frozen=True)
class Variant:
    n: int
    d_in: int
    hidden: int
    d_out: int
    reduction: str       # "mean": mean over the batch of the row sums; "sum": the total sum
    lr: float
    steps: int
    print_every: int


VARIANTS = {
    "l2": Variant(64, 1000, 100, 1000, "mean", 1e-5, 50, 1),
    "torch": Variant(64, 1000, 100, 10, "sum", 1e-6, 500, 50),
}


def make_problem(v: Variant, seed=0):
    """x, y, w1, w2: standard normal float32 arrays."""
    rng = np.random.default_rng(seed)
    shapes = [(v.n, v.d_in), (v.n, v.d_out), (v.d_in, v.hidden), (v.hidden, v.d_out)]
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def loss(w1, w2, x, y, reduction):
    """Squared error of relu(x @ w1) @ w2 against y: summed over each row, then averaged
    over the batch ("mean") or summed ("sum")."""
    h = np.maximum(x @ w1, 0.0)
    err = np.sum((h @ w2 - y) ** 2, axis=1)
    return np.mean(err) if reduction == "mean" else np.sum(err)


def step(w1, w2, x, y, lr, reduction):
    """One step of gradient descent: the loss (before the update) and the new weights."""
    l2 = functools.partial(loss, reduction=reduction)      # grad has no static arguments
    value, (g1, g2) = tj.value_and_grad(l2, argnums=(0, 1))(w1, w2, x, y)
    return value, w1 - lr * g1, w2 - lr * g2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="l2",
                        help="which network and loss (default: l2; see below)")
    parser.add_argument("--steps", type=int, help="default: 50 (l2) or 500 (torch)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the data and weights (default: 0)")
    args = parser.parse_args(argv)

    v = VARIANTS[args.variant]
    steps = v.steps if args.steps is None else args.steps
    x, y, w1, w2 = make_problem(v, args.seed)
    jitted = tj.jit(step, static_argnums=5)

    losses = []
    for t in range(steps):
        value, w1, w2 = jitted(w1, w2, x, y, v.lr, v.reduction)
        losses.append(float(value))
        if t % v.print_every == 0 or t == steps - 1:
            print(f"step {t:4d}  loss {value:.6g}")
    print(f"{args.variant}: loss {losses[0]:.4g} -> {losses[-1]:.4g} in {steps} steps "
          f"(traced {jitted.trace_count} time(s))")
    return {"losses": losses, "variant": v, "seed": args.seed}


if __name__ == "__main__":
    main()
