"""The training loop: plain and short. Returns a History."""

import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class History:
    """Per-epoch figures. Train figures are averaged over the epoch's batches, as in the post."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: list(d[k]) for k in cls.__dataclass_fields__})


def batches(n, batch_size, rng):
    """Index arrays covering 0..n-1 in a fresh random order; the last batch may be smaller."""
    order = rng.permutation(n)  # (N,)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train(net, X, y, *, epochs=10, batch_size=64, rng, X_test=None, y_test=None, on_epoch=None):
    """Train `net` with minibatch SGD (reshuffled every epoch) and return its History.

    After each epoch the test set, if given, is scored without touching training
    state, and on_epoch(history), if given, is called (the CLI prints from there).
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"train: epochs and batch_size must be positive, got {epochs} and {batch_size}")
    X = np.asarray(X, dtype=net.dtype)
    history = History()
    for epoch in range(epochs):
        start = time.perf_counter()
        epoch_batches = batches(len(X), batch_size, rng)
        loss, correct = 0.0, 0.0
        for idx in epoch_batches:
            _, batch_correct, batch_loss = net.evaluate(X[idx], y[idx])
            net.gradient_descent()
            correct += batch_correct / len(epoch_batches)
            loss += batch_loss / len(epoch_batches)
        seconds = time.perf_counter() - start
        history.epoch.append(epoch)
        history.train_loss.append(float(loss))
        history.train_acc.append(float(correct))
        history.seconds.append(seconds)
        if X_test is not None:
            test_acc, test_loss = net.score(X_test, y_test)
            history.test_acc.append(test_acc)
            history.test_loss.append(test_loss)
        if on_epoch is not None:
            on_epoch(history)
    return history
