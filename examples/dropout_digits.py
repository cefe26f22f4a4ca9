"""Dropout with the mask drawn inside the compiled training step (tracejit.random).

An MLP 64 -> 256 -> 256 -> 10 with ReLUs on scikit-learn's digits (the data and split of
examples/digits.py), trained with Adam on minibatches of 64, with inverted dropout on both
hidden layers: each unit is kept with probability 1 - rate and scaled by 1 / (1 - rate)
while training, and left alone for prediction. The training step takes a key and returns the
next one, JAX's way: `key, sub = tj.random.split(key)` inside the step, and the masks are
`tj.random.bernoulli(sub, 1 - rate, h.shape)`, computed inside the fused kernels that use
them (never written to memory). Every call draws new masks without tracing again.

Printed: the test accuracy per epoch, and at the end the median step time with and without
dropout (the same model and batches) and their ratio:

    python examples/dropout_digits.py                   # rate 0.3, 20 epochs
    python examples/dropout_digits.py --rate 0 --epochs 5
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
    path = Path(__file__).resolve().parent / "digits.py"
    spec = importlib.util.spec_from_file_location("tracejit_example_digits_data", path)
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    return digits.load(seed)


def dropout(key, h, rate):
    """Inverted dropout: h where a Bernoulli(1 - rate) mask keeps it, scaled by 1/(1 - rate)."""
    if rate == 0.0:
        return h
    keep = tj.random.bernoulli(key, 1.0 - rate, h.shape)
    return np.where(keep, h / (1.0 - rate), 0.0)


def logits(params, x, key=None, rate=0.0):
    """The MLP; with a key, dropout of `rate` after each hidden layer."""
    keys = tj.random.split(key, 2) if key is not None else (None, None)
    h = x
    for layer, k in zip((1, 2), keys):
        h = np.maximum(h @ params[f"w{layer}"] + params[f"b{layer}"], 0.0)
        if k is not None:
            h = dropout(k, h, rate)
    return h @ params["w3"] + params["b3"]


def cross_entropy(params, x, labels, key, rate):
    z = logits(params, x, key, rate)
    z = z - np.max(z, axis=1, keepdims=True)
    log_p = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.mean(np.sum(np.where(labels[:, None] == np.arange(CLASSES), log_p, 0.0), axis=1))


def make_step(opt, rate):
    """One jitted step: a new key from the old, the loss and gradients with dropout masks
    drawn from it, and Adam's update (parameters and state updated in place)."""
    def step(params, state, key, x, labels):
        key, sub = tj.random.split(key)
        loss, grads = tj.value_and_grad(cross_entropy)(params, x, labels, sub, rate)
        params, state = opt.update(grads, state, params)
        return loss, params, state, key

    return tj.jit(step, static_argnums=(), donate_argnums=(0, 1))


def predict(params, x):
    return np.argmax(logits(params, x), axis=1)


def train(x_train, y_train, x_test, y_test, rate, epochs, batch, seed, lr, verbose=True):
    """Train from a fixed initialisation; returns (params, accuracies per epoch, step times,
    the jitted step)."""
    rng = np.random.default_rng(seed)
    params = tj.init.mlp(rng, [x_train.shape[1], 256, 256, CLASSES])
    opt = tj.optim.adam(lr)
    state = opt.init(params)
    step = make_step(opt, rate)
    key = tj.random.key(seed)
    predict_jit = tj.jit(predict)
    accuracies, times = [], []
    batches = len(x_train) // batch
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        for b in range(batches):
            rows = order[b * batch:(b + 1) * batch]
            start = time.perf_counter()
            loss, params, state, key = step(params, state, key, x_train[rows], y_train[rows])
            times.append(time.perf_counter() - start)
        accuracy = float(np.mean(predict_jit(params, x_test) == y_test))
        accuracies.append(accuracy)
        if verbose:
            print(f"dropout {rate:.2f}  epoch {epoch:3d}  loss {float(loss):.4f}  "
                  f"test accuracy {accuracy:.4f}")
    return params, accuracies, times, step


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--rate", type=float, default=0.3, help="dropout rate (default: 0.3)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (default: 20)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default: 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights "
                        "and the dropout key (default: 0)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.rate < 1.0:
        parser.error("--rate must be in [0, 1)")

    x_train, y_train, x_test, y_test, _ = load_digits_split(args.seed)
    print(f"{len(x_train)} training and {len(x_test)} test images; MLP 64 -> 256 -> 256 -> 10, "
          f"dropout {args.rate} on both hidden layers, Adam lr {args.lr}")
    params, accuracies, times, step = train(x_train, y_train, x_test, y_test, args.rate,
                                            args.epochs, args.batch, args.seed, args.lr)
    # The same model and batches without dropout, for the cost of the masks.
    _, plain_accuracies, plain_times, _ = train(x_train, y_train, x_test, y_test, 0.0,
                                                args.epochs, args.batch, args.seed, args.lr,
                                                verbose=False)
    with_dropout = statistics.median(times[10:])
    without = statistics.median(plain_times[10:])
    print(f"final test accuracy {accuracies[-1]:.4f} with dropout {args.rate}, "
          f"{plain_accuracies[-1]:.4f} without")
    print(f"median step {with_dropout * 1e6:.0f} us with dropout, {without * 1e6:.0f} us "
          f"without ({with_dropout / without:.2f}x); the step traced {step.trace_count} time(s)")
    return {"accuracies": accuracies, "plain_accuracies": plain_accuracies,
            "step_time": with_dropout, "plain_step_time": without,
            "trace_count": step.trace_count, "params": params}


if __name__ == "__main__":
    main()
