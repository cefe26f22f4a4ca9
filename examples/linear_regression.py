"""Linear regression by gradient descent, with SGD and then with Adam: switching optimiser is
the one line that builds `opt`.

200 noisy points y = 0.1 x + 0.3 + N(0, 0.15**2), x ~ U(-10, 10), are fitted with w * x + b
by minimising the mean squared error. The loss, its gradients and the optimiser's update are
one jitted step. The fits are printed next to the least-squares solution (np.polyfit), and the
points and both fitted lines are saved as a PNG:

    python examples/linear_regression.py                     # 1000 steps each, plot to
    python examples/linear_regression.py --steps 300 --plot fit.png   # linear-regression.png
"""

import argparse

import numpy as np

import tracejit as tj


def make_data(n=200, seed=0):
    """x ~ U(-10, 10), y = 0.1 x + 0.3 + N(0, 0.15**2), as float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-10.0, 10.0, n)
    y = 0.1 * x + 0.3 + rng.normal(0.0, 0.15, n)
    return x.astype(np.float32), y.astype(np.float32)


def mse(params, x, y):
    """Mean squared error of the line params['w'] * x + params['b']."""
    return np.mean((params["w"] * x + params["b"] - y) ** 2)


def fit(opt, x, y, steps, label):
    """Fit w, b from zero with optimiser `opt`; returns (w, b, losses)."""
    params = {"w": np.zeros((), np.float32), "b": np.zeros((), np.float32)}
    state = opt.init(params)

    @tj.jit
    def step(params, state, x, y):
        loss, grads = tj.value_and_grad(mse)(params, x, y)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    losses = []
    for t in range(steps):
        loss, params, state = step(params, state, x, y)
        losses.append(float(loss))
        if t % max(steps // 5, 1) == 0 or t == steps - 1:
            print(f"{label:4s} step {t + 1:5d}  loss {loss:.6f}  w {params['w']:+.5f}  "
                  f"b {params['b']:+.5f}")
    return float(params["w"]), float(params["b"]), losses


def plot(path, x, y, fits):
    """Save the points and the fitted lines {label: (w, b)} to `path`; False without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x, y, s=8, alpha=0.5, label="data")
    line = np.array([x.min(), x.max()])
    for (label, (w, b)), style in zip(fits.items(), ["-", "--", ":"]):
        ax.plot(line, w * line + b, style, lw=2, label=f"{label}: y = {w:.4f} x + {b:.4f}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=1000, help="steps per optimiser (default: 1000)")
    parser.add_argument("--sgd-lr", type=float, default=0.01, help="SGD learning rate (default: 0.01)")
    parser.add_argument("--adam-lr", type=float, default=0.05,
                        help="Adam learning rate (default: 0.05)")
    parser.add_argument("--plot", default="linear-regression.png", metavar="PATH",
                        help="where to save the PNG; '' for none")
    args = parser.parse_args(argv)

    x, y = make_data()
    w_ls, b_ls = np.polyfit(x.astype(np.float64), y.astype(np.float64), 1)
    print(f"least squares (np.polyfit): w {w_ls:+.5f}  b {b_ls:+.5f}")

    w_sgd, b_sgd, sgd_losses = fit(tj.optim.sgd(args.sgd_lr), x, y, args.steps, "sgd")
    w_adam, b_adam, adam_losses = fit(tj.optim.adam(args.adam_lr), x, y, args.steps, "adam")
    print(f"sgd : y = {w_sgd:.5f} x + {b_sgd:.5f}\nadam: y = {w_adam:.5f} x + {b_adam:.5f}\n"
          f"true: y = 0.10000 x + 0.30000 (plus noise)")

    plotted = False
    if args.plot:
        plotted = plot(args.plot, x, y, {"sgd": (w_sgd, b_sgd), "adam": (w_adam, b_adam)})
    return {"sgd": (w_sgd, b_sgd), "adam": (w_adam, b_adam), "polyfit": (w_ls, b_ls),
            "sgd_losses": sgd_losses, "adam_losses": adam_losses, "plotted": plotted}


if __name__ == "__main__":
    main()
