"""The training loop: plain and short. Returns a History."""

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import _fast


@dataclass
class History:
    """Per-epoch figures. Train figures are averaged over the epoch's batches, as in the post."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    weight_norm: list = field(default_factory=list)  # per epoch: the norm of each weight matrix after the epoch
    grad_norm: list = field(default_factory=list)  # per epoch: each gradient's norm on its first batch, per example

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})


def batches(n, batch_size, rng):
    """Index arrays covering 0..n-1 in a fresh random order; the last batch may be smaller."""
    order = rng.permutation(n)  # (N,)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def gradient_norms(net, X, y):
    """The norm of each weight gradient on the batch (X, y), divided by its size (the gradient is
    summed over the batch; a loss with reduction="mean" has already divided it). Runs the readable
    layers; the weights are left as they were."""
    net.evaluate(X, y)
    per_example = len(X) if getattr(net.loss, "reduction", "sum") == "sum" else 1
    return [float(np.linalg.norm(dW)) / per_example for dW in net.backprop()]


def train(net, X, y, *, epochs=10, batch_size=64, rng, X_test=None, y_test=None, on_epoch=None, optimizer=None,
          fast=True, on_batch=None):
    """Train `net` on minibatches (reshuffled every epoch) and return its History.

    X is (N, I) floats, or uint8 pixel values 0..255 that are scaled to [0, 1] batch by
    batch. `optimizer` is any optimizer from bareprop.optim, stepped once per batch (a
    schedule counts batches); without one, each batch takes net.gradient_descent(), the
    post's plain SGD with the net's lr. After each epoch the test set, if given, is scored
    without touching training state, and on_epoch(history), if given, is called (the CLI
    prints from there).
    After each batch, on_batch(history, batch, n_batches, running), if given, is called
    with the history of the epochs before and a function giving the epoch's running
    (loss, accuracy): a progress bar's hook, which asks for the figures only when it draws.
    (On the compiled path it is called after every 16 batches and after the epoch's last.)

    The loop below is the reference. When fast=True and the net is one the private fast
    paths know (the post's Linear/ReLU nets with plain SGD at a constant lr), each epoch
    runs on one of them instead (see _fast.fast_path and docs/speed.md): the compiled
    kernel, the same steps in C skipping zero inputs, equal to this loop to rounding; or,
    where the kernel is not built or is slower, the NumPy fast path, equal to it bit for bit.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"train: epochs and batch_size must be positive, got {epochs} and {batch_size}")
    X, y = np.asarray(X), np.asarray(y)
    net.check_inputs(X, y)
    if len(X) == 0:
        raise ValueError(f"train: no training examples (X has shape {X.shape})")
    if X_test is not None:
        X_test, y_test = np.asarray(X_test), np.asarray(y_test)
        net.check_inputs(X_test, y_test)
    fast_sgd = _fast.fast_path(net, batch_size, optimizer) if fast else None
    state = optimizer.init(net.params()) if optimizer is not None else None
    history = History()
    for epoch in range(epochs):
        start = time.perf_counter()
        epoch_batches = batches(len(X), batch_size, rng)
        step_hook = None if on_batch is None else lambda i, running: on_batch(history, i, len(epoch_batches), running)
        with _fast.blas_threads_for(net, batch_size, fast_sgd):  # readable and NumPy alike: the same bits
            first = epoch_batches[0]
            # for the record, the gradients of the epoch's first batch: the NumPy fast path has them anyway;
            # elsewhere they cost one extra batch (forward and backward) per epoch
            recorded = getattr(fast_sgd, "records_gradient_norms", False)
            grad_norm = None if recorded else gradient_norms(net, X[first], y[first])
            if fast_sgd is not None:
                loss, correct = fast_sgd.epoch(X, y, epoch_batches, on_step=step_hook)
                if recorded:
                    grad_norm = fast_sgd.first_gradient_norms
            else:
                loss, correct = 0.0, 0.0
                for i, idx in enumerate(epoch_batches):
                    _, batch_correct, batch_loss = net.evaluate(X[idx], y[idx])
                    if optimizer is None:
                        net.gradient_descent()
                    else:
                        state = optimizer.step(net.params(), net.backprop(), state)
                    correct += batch_correct / len(epoch_batches)
                    loss += batch_loss / len(epoch_batches)
                    if step_hook is not None:
                        step_hook(i, lambda done=(i + 1) / len(epoch_batches): (loss / done, correct / done))
            seconds = time.perf_counter() - start
            weight_norm = [float(np.linalg.norm(W)) for W in net.params()]  # a BLAS dot: in the same context
        history.epoch.append(epoch)
        history.train_loss.append(float(loss))
        history.train_acc.append(float(correct))
        history.seconds.append(seconds)
        history.weight_norm.append(weight_norm)
        history.grad_norm.append(grad_norm)
        if X_test is not None:
            with _fast.blas_threads_for(net, 1000, fast_sgd):  # score()'s chunks of 1000 rows
                scorer = fast_sgd if fast_sgd is not None else net
                test_acc, test_loss = scorer.score(X_test, y_test)
            history.test_acc.append(test_acc)
            history.test_loss.append(test_loss)
        if on_epoch is not None:
            on_epoch(history)
    return history
