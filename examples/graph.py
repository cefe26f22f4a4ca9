"""The computational graph of c = sum(x * y + z), and of its gradient, as tracejit's IR.

The forward function is traced with `tj.trace` and printed; so is its gradient, which is
itself a function built on the IR (`tj.trace(tj.grad(f, argnums=(0, 1, 2)), ...)`), where
the backward equations follow the forward ones; `jit` then removes the forward values the
gradient does not need. Then both run: dc/dx = y, dc/dy = x and dc/dz = ones:

    python examples/graph.py
    python examples/graph.py --seed 3 --locations      # other values; file:line per equation
"""

import argparse

import numpy as np

import tracejit as tj


def f(x, y, z):
    """c = sum(x * y + z)."""
    a = x * y
    b = a + z
    return np.sum(b)


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--seed", type=int, default=0, help="seed of the example data (default: 0)")
    parser.add_argument("--locations", action="store_true",
                        help="print the source line of every equation")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x, y, z = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    grad_f = tj.grad(f, argnums=(0, 1, 2))

    forward_ir = tj.trace(f, x, y, z)
    grad_ir = tj.trace(grad_f, x, y, z)
    print("forward:")
    print(forward_ir.format(locations=args.locations))
    print("\ngradient with respect to x, y, z:")
    print(grad_ir.format(locations=args.locations))

    c = tj.jit(f)(x, y, z)
    jitted_grad = tj.jit(grad_f)
    gx, gy, gz = jitted_grad(x, y, z)
    print("\nthe gradient as jit optimises it (the unused forward values are gone):")
    print(jitted_grad.lower(x, y, z).format(locations=args.locations))
    with np.printoptions(precision=4, suppress=True):
        print(f"\nx =\n{x}\ny =\n{y}\nz =\n{z}")
        print(f"\nc = {c:.6f}\ndc/dx (= y) =\n{gx}\ndc/dy (= x) =\n{gy}\n"
              f"dc/dz (= ones) =\n{gz}")
    return {"x": x, "y": y, "z": z, "c": c, "grads": (gx, gy, gz),
            "forward_ir": str(forward_ir), "grad_ir": str(grad_ir)}


if __name__ == "__main__":
    main()
