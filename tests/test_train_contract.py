"""train()'s promises about its arguments and what it records, each at its edge: the defaults, the bounds
and their messages, BLAS held to `threads` while it trains, the seconds it measured, inputs that are not
finite, why a run diverged, and the gradient norms of a loss that says nothing of its reduction.
(What mutation testing found unchecked: docs/testing.md, "Mutation testing".)"""

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import bareprop as bp
import bareprop.fast.kernel  # noqa: F401  its OpenMP runtime loaded before the pools are compared


def small(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 6)).astype(dtype)  # (N, I)
    y = rng.integers(0, 3, size=40)  # (N,)
    return bp.NeuralNet((6, 5, 3), rng=rng, dtype=dtype), X, y, rng


def test_by_default_ten_epochs_in_batches_of_64_on_one_thread():
    net, X, y, rng = small()
    X, y = np.concatenate([X, X]), np.concatenate([y, y])  # 80 examples: two batches of 64 and 16
    seen = []
    history = bp.train(net, X, y, rng=rng, path="readable",
                       on_batch=lambda history, i, n_batches, running: seen.append((i, n_batches)))
    assert len(history.epoch) == 10 and history.threads == 1
    assert seen == [(0, 2), (1, 2)] * 10  # two batches an epoch: 64, then the 16 left


@pytest.mark.parametrize("epochs, batch_size", [(0, 64), (1, 0), (-1, -1)])
def test_epochs_and_batch_size_below_1_are_refused_naming_both(epochs, batch_size):
    net, X, y, rng = small()
    with pytest.raises(ValueError, match=rf"^train: epochs and batch_size must be positive, got {epochs} and "
                                         rf"{batch_size}$"):
        bp.train(net, X, y, epochs=epochs, batch_size=batch_size, rng=rng)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_blas_runs_on_the_threads_given_while_it_trains_and_as_before_after(threads, path):
    def blas_threads():
        return sorted({pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"})

    def other_pools():  # OpenMP's (the kernel's libgomp, PyTorch's if loaded): train() leaves them alone
        return sorted((pool["filepath"], pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] != "blas")

    before, others = blas_threads(), other_pools()
    net, X, y, rng = small()
    during = []
    bp.train(net, X, y, epochs=2, batch_size=8, rng=rng, path=path, threads=threads,
             on_epoch=lambda history: during.append((blas_threads(), other_pools())))
    assert during == [([threads], others)] * 2 and blas_threads() == before


def test_the_seconds_recorded_are_each_epochs_own():
    net, X, y, rng = small()
    start = time.perf_counter()
    history = bp.train(net, X, y, epochs=3, batch_size=8, rng=rng)
    wall = time.perf_counter() - start
    assert len(history.seconds) == 3 and all(0 < s <= wall for s in history.seconds) and sum(history.seconds) <= wall


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["first", "last"])
def test_an_input_that_is_not_finite_is_refused_wherever_it_is(bad, where):
    """min and max are what train() looks at: a lone +inf (max) or -inf (min) anywhere is found."""
    net, X, y, rng = small()
    X = X.copy()
    X[0 if where == "first" else -1, 2] = bad
    with pytest.raises(ValueError, match=r"^train: X holds NaN or infinite values$"):
        bp.train(net, X, y, epochs=1, rng=rng)


def test_integer_inputs_other_than_uint8_are_refused_and_uint8_taken():
    net, X, y, rng = small()
    for dtype in (np.int64, np.int8, np.uint16):
        with pytest.raises(ValueError, match=rf"^train: X is {np.dtype(dtype).name}; give uint8 pixel values"):
            bp.train(net, np.zeros((8, 6), dtype), y[:8], epochs=1, rng=rng)
    bp.train(net, np.zeros((8, 6), np.uint8), y[:8], epochs=1, rng=rng)


def test_a_weight_that_overflows_ends_the_epoch_as_diverged_saying_so():
    """One batch, an lr so large that the update overflows: the loss of the epoch was finite, the
    weights after it are not."""
    net, X, y, rng = small()
    with pytest.raises(bp.TrainingDiverged) as caught, np.errstate(over="ignore"):
        bp.train(net, X, y, epochs=1, batch_size=len(X), rng=rng, path="readable", optimizer=bp.SGD(1e308))
    assert caught.value.what == "a weight is not a finite number" and caught.value.step is None
    assert str(caught.value) == ("training diverged at the end of epoch 0 (a weight is not a finite number): "
                                 "try a lower learning rate")


def test_a_gradient_whose_norm_overflows_ends_the_epoch_as_diverged_saying_so():
    """float32 inputs near 1e19: the loss and, after a tiny step, the weights stay finite, but the norm of
    the gradient (sums of squares near 1e41) does not fit a float32."""
    net, X, y, rng = small(dtype=np.float32)
    X = np.sign(X) * np.float32(1e19)
    with pytest.raises(bp.TrainingDiverged) as caught, np.errstate(over="ignore"):
        bp.train(net, X, y, epochs=1, batch_size=len(X), rng=rng, path="readable", optimizer=bp.SGD(1e-30))
    assert caught.value.what == "a gradient is not a finite number"
    assert all(np.isfinite(W).all() for W in net.params())


class UnsaidLoss:
    """Softmax + cross-entropy summed over the batch, from an object with no `reduction` attribute (a loss
    written outside bareprop): its gradient is taken to be summed, as the post's."""

    def __init__(self):
        self._inner = bp.SoftmaxCrossEntropy()

    def __call__(self, X, Y):
        out = self._inner(X, Y)
        self.Y = self._inner.Y
        return out

    def bp_input(self, grad):
        return self._inner.bp_input(grad)

    def per_example(self, X, Y):
        return self._inner.per_example(X, Y)

    def output(self, X):
        return self._inner.output(X)


def test_gradient_norms_are_per_example_for_a_loss_that_says_nothing_of_its_reduction():
    assert not hasattr(UnsaidLoss(), "reduction")
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(16, 6)), rng.integers(0, 3, size=16)
    net = bp.Sequential([bp.Linear(6, 3, rng=rng, dtype=np.float64)], loss=UnsaidLoss())
    probe = bp.Sequential([bp.Linear(6, 3, rng=np.random.default_rng(0), dtype=np.float64)])
    probe.layers[0].W = net.layers[0].W.copy()
    order = np.random.default_rng(9)
    first = bp.core.train.batches(order.permutation(16), 8)[0]  # the batch the epoch's norm comes from
    probe.evaluate(X[first], y[first])
    (dW,) = probe.backprop()
    history = bp.train(net, X, y, epochs=1, batch_size=8, rng=np.random.default_rng(9), path="readable")
    assert history.grad_norm[0] == pytest.approx([np.linalg.vector_norm(dW) / 8], rel=1e-12)
