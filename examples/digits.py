"""Train an MLP classifier on scikit-learn's handwritten digits with one jitted training step.

The 1797 8x8 images of load_digits (shipped with scikit-learn, nothing is downloaded) are
scaled to [0, 1] and split 80/20 into a training and a test set (default_rng(seed)). An MLP
64 -> 128 -> 10 with a ReLU, parameters from tj.init.mlp (He normal weights, zero biases),
is trained with Adam on minibatches of 64 under the softmax cross-entropy. The loss, its
gradients and the Adam update are one jitted step, which updates the parameters and the
optimiser state in place (donate_argnums); prediction is a second jitted function.

Each epoch shows a progress bar (tqdm if installed) and ends with the test accuracy; at the
end the median time of one step is printed, and the loss and accuracy curves are saved:

    python examples/digits.py                           # 15 epochs, plot to digits-training.png
    python examples/digits.py --no-fuse                 # the unfused baseline, for comparison
    python examples/digits.py --epochs 5 --save digits-mlp.npz --plot ''
"""

import argparse
import statistics
import sys
import time

import numpy as np

import tracejit as tj
from tracejit.runtime import backends

CLASSES = 10


def load(seed=0, test_fraction=0.2):
    """(x_train, y_train, x_test, y_test, test_index): pixels scaled by 1/16 to [0, 1] as
    float32, labels as int32, `test_index` the test rows of load_digits' arrays."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test], test


def logits(params, x):
    """relu(x @ w1 + b1) @ w2 + b2."""
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    return h @ params["w2"] + params["b2"]


def cross_entropy(params, x, labels):
    """Mean softmax cross-entropy of the logits against integer labels."""
    z = logits(params, x)
    z = z - np.max(z, axis=1, keepdims=True)                 # stable log-softmax
    log_p = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    one_hot = labels[:, None] == np.arange(CLASSES)
    return -np.mean(np.sum(np.where(one_hot, log_p, 0.0), axis=1))


def predict(params, x):
    """The most likely class of every row of x."""
    return np.argmax(logits(params, x), axis=1)


def make_step(opt, fuse, backend="cpu"):
    """The training step: loss, gradients and optimiser update as one jitted function. On the
    host backends it writes the new parameters and state into the arrays it was given; on the
    GPU they come back as new device arrays, passed in again at the next step."""

    def step(params, state, x, labels):
        loss, grads = tj.value_and_grad(cross_entropy)(params, x, labels)
        params, state = opt.update(grads, state, params)
        return loss, params, state

    donate = (0, 1) if backends.get(backend).donates else ()
    return tj.jit(step, fuse=fuse, donate_argnums=donate, backend=backend)


def progress(iterable, total, desc):
    """tqdm's progress bar if tqdm is installed, else a simple text bar on stderr."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _text_bar(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc, leave=False, ncols=80)


class _text_bar:
    def __init__(self, iterable, total, desc, width=30):
        self.iterable, self.total, self.desc, self.width = iterable, total, desc, width
        self.postfix = ""

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def __iter__(self):
        for i, item in enumerate(self.iterable, 1):
            yield item
            filled = self.width * i // self.total
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (self.width - filled)}] "
                             f"{i}/{self.total} {self.postfix}")
            sys.stderr.flush()
        sys.stderr.write("\r" + " " * (len(self.desc) + self.width + 40) + "\r")
        sys.stderr.flush()


def plot(path, history):
    """Save the training loss and the accuracies per epoch to `path`; False without
    matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, history["loss"], "o-")
    left.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    right.plot(epochs, history["train_accuracy"], "o-", label="train")
    right.plot(epochs, history["test_accuracy"], "s-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"plot saved to {path}")
    return True


def time_torch_step(x_train, y_train, args, steps=200):
    """The median time of a PyTorch eager training step of the same model (same sizes, Adam,
    same batches), for comparison; None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: no comparison")
        return None
    model = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(np.ascontiguousarray(x_train[:args.batch]))
    y = torch.from_numpy(y_train[:args.batch].astype(np.int64))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times[10:])
    print(f"PyTorch eager step of the same model: median {median * 1e3:.3f} ms "
          f"({torch.get_num_threads()} threads)")
    return median


def main(argv=None):
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--epochs", type=int, default=15,
                        help="passes over the training set (default: 15)")
    parser.add_argument("--batch", type=int, default=64, help="minibatch size (default: 64)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 3e-3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split and the initial weights (default: 0)")
    parser.add_argument("--no-fuse", action="store_true",
                        help="one kernel per primitive (the unfused baseline)")
    parser.add_argument("--plot", default="digits-training.png", metavar="PATH",
                        help="where to save the curves as PNG; '' for none")
    parser.add_argument("--save", metavar="PATH", help="save the trained parameters (.npz)")
    parser.add_argument("--backend", default="cpu", choices=backends.NAMES,
                        help="cpu (default), cuda (an NVIDIA GPU through pycuda), cuda-emulator "
                             "(the CUDA C on the host: slow) or interpret")
    parser.add_argument("--torch", action="store_true",
                        help="also time a PyTorch eager step of the same model (if installed)")
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test, test_index = load(args.seed)
    rng = np.random.default_rng(args.seed)
    params = tj.init.mlp(rng, [x_train.shape[1], args.hidden, CLASSES])
    opt = tj.optim.adam(args.lr)
    state = opt.init(params)
    step = make_step(opt, fuse=not args.no_fuse, backend=args.backend)
    predict_jit = tj.jit(predict, backend=args.backend)
    batches = len(x_train) // args.batch     # the incomplete last batch is dropped
    print(f"{len(x_train)} training and {len(x_test)} test images; MLP 64 -> {args.hidden} -> "
          f"{CLASSES}, Adam lr {args.lr}, {batches} batches of {args.batch} per epoch, "
          f"{'unfused' if args.no_fuse else 'fused'}")

    history = {"loss": [], "train_accuracy": [], "test_accuracy": []}
    step_times = []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x_train))
        losses = []
        bar = progress(range(batches), batches, f"epoch {epoch:3d}/{args.epochs}")
        for b in bar:
            rows = order[b * args.batch:(b + 1) * args.batch]
            xb, yb = x_train[rows], y_train[rows]
            start = time.perf_counter()
            loss, params, state = step(params, state, xb, yb)
            step_times.append(time.perf_counter() - start)
            losses.append(float(loss))
            bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        history["loss"].append(float(np.mean(losses)))
        for part, (xs, ys) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
            predicted = tj.to_host(predict_jit(params, xs))
            history[f"{part}_accuracy"].append(float(np.mean(predicted == ys)))
        print(f"epoch {epoch:3d}  loss {history['loss'][-1]:.4f}  "
              f"train accuracy {history['train_accuracy'][-1]:.4f}  "
              f"test accuracy {history['test_accuracy'][-1]:.4f}")

    # the first step traces and compiles: leave it out of the median
    median = statistics.median(step_times[1:] or step_times)
    kernels = len(step.program(params, state, xb, yb).kernels)
    print(f"test accuracy {history['test_accuracy'][-1]:.4f} after {args.epochs} epochs; "
          f"one step (batch of {args.batch}): median {median * 1e3:.3f} ms, {kernels} kernels "
          f"({'unfused' if args.no_fuse else 'fused'}, backend {step.backend!r}, traced "
          f"{step.trace_count} time(s), {len(step_times)} steps)")
    torch_median = time_torch_step(x_train, y_train, args) if args.torch else None
    if args.save:
        tj.save(args.save, tj.to_host(params))
        print(f"parameters saved to {args.save}")
    plotted = plot(args.plot, history) if args.plot else False
    return {"params": params, "history": history, "test_accuracy": history["test_accuracy"][-1],
            "test_index": test_index, "median_step_s": median, "kernels": kernels,
            "plotted": plotted, "trace_count": step.trace_count,
            "torch_median_step_s": torch_median}


if __name__ == "__main__":
    main()
