"""Per-example gradients with tj.vmap(tj.grad(loss)), and DP-SGD style training with them:
every example's gradient is clipped to a norm C before the batch average, and noise is added.

The loss is written for ONE example (an image x of shape (64,) and its integer label) of an
MLP 64 -> 32 -> 10 with a ReLU on scikit-learn's digits (the same data and 80/20 split as
examples/digits.py). tj.vmap(tj.grad(loss), in_axes=(None, 0, 0)) maps it over a batch: the
parameters are shared (None), the images and labels are split along axis 0, and the result is
the parameters' pytree with a leading batch axis on every leaf, one gradient per example.

A training step, jitted as one function, computes the per-example gradients, their global L2
norms |g_i| (over all parameters), clips each one to g_i min(1, C / |g_i|), averages them, adds
Gaussian noise of standard deviation sigma C / B (sigma the noise multiplier, B the batch size;
the noise itself is drawn outside with default_rng(seed) and passed in) and takes a plain SGD
step. Printed: the distribution of the norms in the first batch, the loss and accuracy per
epoch, and the time of the jitted vmap(grad) against a Python loop of the jitted grad:

    python examples/per_example_gradients.py                 # 5 epochs, C = 1, no noise
    python examples/per_example_gradients.py --noise 1.1 --clip 0.5 --epochs 10
"""

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np

import tracejit as tj

CLASSES = 10


def load_digits_split(seed=0):
    """examples/digits.py's load(): (x_train, y_train, x_test, y_test, test_index)."""
    spec = importlib.util.spec_from_file_location("tracejit_example_digits_data",
                                                  Path(__file__).resolve().parent / "digits.py")
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    return digits.load(seed)


def logits(params, x):
    """relu(x @ w1 + b1) @ w2 + b2, for one image (64,) or a batch (B, 64)."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return h @ params["w2"] + params["b2"]


def loss(params, x, label):
    """Softmax cross-entropy of ONE example: -log softmax(logits)[label]."""
    z = logits(params, x)                                       # shape (10,)
    z = z - np.max(z)                                           # stable log-softmax
    log_p = z - np.log(np.sum(np.exp(z)))
    return -np.sum(np.where(np.arange(CLASSES) == label, log_p, 0.0))


# One gradient per example: params shared, x and label batched along axis 0.
per_example_grads = tj.vmap(tj.grad(loss), in_axes=(None, 0, 0))


def global_norms(grads):
    """|g_i| = sqrt(sum over every parameter of g_i**2), one per example: shape (B,)."""
    squares = [np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in grads.values()]
    return np.sqrt(sum(squares))


def clip(grads, norms, c):
    """g_i * min(1, C / |g_i|): every example's gradient scaled down to norm at most C."""
    scale = np.minimum(1.0, c / np.maximum(norms, 1e-12))
    return {k: g * scale.reshape((-1,) + (1,) * (g.ndim - 1)) for k, g in grads.items()}


def inspect_batch(params, x, labels, c):
    """(per-example grads, their norms, the clipped grads, their norms) of one batch."""
    grads = per_example_grads(params, x, labels)
    norms = global_norms(grads)
    clipped = clip(grads, norms, c)
    return grads, norms, clipped, global_norms(clipped)


def dp_step(params, x, labels, noise, lr, c, sigma):
    """One DP-SGD step: (mean loss, new params).

    g = (sum_i clip(g_i, C) + sigma C n) / B with n ~ N(0, I) given in `noise`; p <- p - lr g.
    """
    batch = x.shape[0]
    losses, grads = tj.vmap(tj.value_and_grad(loss), in_axes=(None, 0, 0))(params, x, labels)
    clipped = clip(grads, global_norms(grads), c)
    new = {k: params[k] - lr * (np.sum(clipped[k], axis=0) + sigma * c * noise[k]) / batch
           for k in params}
    return np.mean(losses), new


def predict(params, x):
    """The most likely class of every row of x."""
    return np.argmax(logits(params, x), axis=1)


def median_time(fn, repeats):
    """Median seconds of `repeats` calls of fn(), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training set "
                        "(default: 5)")
    parser.add_argument("--batch", type=int, default=32, help="minibatch size (default: 32)")
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate (default: 1.0)")
    parser.add_argument("--clip", type=float, default=1.0,
                        help="clipping norm C of every example's gradient (default: 1.0)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="noise multiplier sigma; 0 for none (default: 0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the weights, the order and the noise (default: 0)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed calls of each, after a warm-up (default: 5)")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, test_index = load_digits_split(args.seed)
    rng = np.random.default_rng(args.seed)
    params = tj.init.mlp(rng, [x_train.shape[1], 32, CLASSES])
    batches = len(x_train) // args.batch     # the incomplete last batch is dropped
    print(f"{len(x_train)} training and {len(x_test)} test images; MLP 64 -> 32 -> {CLASSES}, "
          f"SGD lr {args.lr}, {batches} batches of {args.batch}, clip C = {args.clip}, noise "
          f"multiplier {args.noise}")

    # The first batch, before any training: per-example gradients and their norms.
    xb, yb = x_train[:args.batch], y_train[:args.batch]
    inspect = tj.jit(inspect_batch)
    grads, norms, clipped, clipped_norms = (tj.to_host(a) for a in inspect(params, xb, yb,
                                                                           args.clip))
    print(f"first batch: per-example gradient norms min {norms.min():.4f}  median "
          f"{np.median(norms):.4f}  max {norms.max():.4f}; clipped to C = {args.clip}: max "
          f"{clipped_norms.max():.4f}, {int(np.sum(norms > args.clip))} of {args.batch} clipped")
    print("per-example gradient shapes: "
          + ", ".join(f"{k} {tuple(g.shape)}" for k, g in grads.items()))

    # Timing: one jitted vmap(grad) over the batch against a loop of the jitted grad.
    batched = tj.jit(per_example_grads)
    single = tj.jit(tj.grad(loss))
    vmap_s = median_time(lambda: batched(params, xb, yb), args.repeats)
    loop_s = median_time(lambda: [single(params, xb[i], yb[i]) for i in range(args.batch)],
                         args.repeats)
    print(f"per-example gradients of {args.batch} examples: jitted vmap(grad) "
          f"{vmap_s * 1e3:.3f} ms, Python loop of jitted grad {loop_s * 1e3:.3f} ms "
          f"({loop_s / vmap_s:.1f}x)")

    step = tj.jit(dp_step)
    predict_jit = tj.jit(predict)
    first = {"params": params, "x": xb, "labels": yb}
    history = {"loss": [], "test_accuracy": []}
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        for b in range(batches):
            rows = order[b * args.batch:(b + 1) * args.batch]
            noise = {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}
            value, params = step(params, x_train[rows], y_train[rows], noise, args.lr,
                                 args.clip, args.noise)
            losses.append(float(value))
        history["loss"].append(float(np.mean(losses)))
        accuracy = float(np.mean(tj.to_host(predict_jit(params, x_test)) == y_test))
        history["test_accuracy"].append(accuracy)
        print(f"epoch {epoch:3d}  loss {history['loss'][-1]:.4f}  test accuracy {accuracy:.4f}")
    accuracy = history["test_accuracy"][-1] if history["test_accuracy"] else None
    if accuracy is not None:
        print(f"test accuracy {accuracy:.4f} after {args.epochs} epochs of clipped"
              f"{' and noisy' if args.noise else ''} SGD (step traced {step.trace_count} "
              f"time(s))")
    return {"first_batch": first, "grads": grads, "norms": norms, "clipped": clipped,
            "clipped_norms": clipped_norms, "params": params, "history": history,
            "test_accuracy": accuracy, "test_index": test_index, "vmap_s": vmap_s,
            "loop_s": loop_s, "trace_count": step.trace_count}

if __name__ == "__main__":
    main()
