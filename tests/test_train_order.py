"""The order train() visits the examples in is drawn from the generator passed in, and from nothing else.

Observed through what train() does, not how: with one example per batch, plain SGD ends at weights that
depend on the order of the steps, so runs that differ only in their generator must end apart, runs with
one seed must end on the same bits, and a run whose epochs repeat one order ends where a run that
restarts the generator each epoch ends. Both paths draw the order the same way; both are checked.
"""

import numpy as np
import pytest

from bareprop import NeuralNet, train

SIZES = (5, 7, 3)


def data():
    """12 distinct examples of 3 classes: each step on one of them moves the weights its own way."""
    r = np.random.default_rng(123)
    return r.normal(size=(12, 5)), np.arange(12) % 3


def run(seed, *, path, epochs=2, start=None):
    """Train a net (the same initial weights every time, or `start`'s) with default_rng(seed); its weights."""
    X, y = data()
    net = NeuralNet(SIZES, lr=0.05, rng=np.random.default_rng(0), dtype=np.float64)
    if start is not None:
        for W, W0 in zip(net.params(), start):
            W[...] = W0
    train(net, X, y, epochs=epochs, batch_size=1, rng=np.random.default_rng(seed), path=path)
    return [W.copy() for W in net.params()]


def apart(a, b):
    """Weights further apart than the kernel's rounding could put them."""
    return any(not np.allclose(Wa, Wb, rtol=1e-6, atol=1e-9) for Wa, Wb in zip(a, b))


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_one_seed_gives_one_order_whatever_the_global_state(path):
    np.random.seed(1)
    first = run(5, path=path)
    np.random.seed(2)  # numpy's global generator must play no part
    second = run(5, path=path)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_the_order_follows_the_seed(path):
    runs = [run(seed, path=path) for seed in (5, 6, 7)]
    assert apart(runs[0], runs[1]) and apart(runs[0], runs[2]) and apart(runs[1], runs[2])


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_each_epoch_draws_a_fresh_order(path):
    """Two epochs of one run against two one-epoch runs that each restart default_rng(5): the second
    epoch of the two-epoch run must not replay the first's order."""
    two_epochs = run(5, path=path, epochs=2)
    one_epoch = run(5, path=path, epochs=1)
    replayed = run(5, path=path, epochs=1, start=one_epoch)  # the first epoch's order again, from where it ended
    assert apart(two_epochs, replayed)
    assert apart(two_epochs, one_epoch)  # the second epoch did train
