"""The NumPy fast path (FastSGD) must give the readable layers' numbers, bit for bit.

Every test here runs as if the compiled kernel were not built, so that train() takes FastSGD;
tests/test_kernel.py checks the kernel."""

import numpy as np
import pytest

from bareprop import NeuralNet, load_mnist, train
from bareprop import _fast


@pytest.fixture(autouse=True)
def numpy_fast_path(monkeypatch):
    monkeypatch.setattr(_fast, "_kernel", None)


@pytest.fixture(scope="module")
def mnist_subset():
    X, y = load_mnist("test", dtype=np.uint8)
    return X[:3000], y[:3000]  # 3000 = 46 batches of 64 + one of 56: the small last batch is exercised


def run(X, y, sizes, fast, dtype=np.float32, epochs=2, batch_size=64):
    rng = np.random.default_rng(7)
    net = NeuralNet(sizes, lr=0.001, rng=rng, dtype=dtype)
    history = train(net, X, y, epochs=epochs, batch_size=batch_size, rng=rng, X_test=X[:500], y_test=y[:500],
                    fast=fast)
    return history, net.params()


@pytest.mark.parametrize("sizes, dtype, pixels", [
    ((784, 32, 10), np.float32, "uint8"),
    ((784, 32, 10), np.float32, "float32"),
    ((784, 16, 12, 10), np.float32, "uint8"),
    ((784, 32, 10), np.float64, "float64"),
])
def test_fast_path_equals_readable_path_bit_for_bit(mnist_subset, sizes, dtype, pixels):
    X, y = mnist_subset
    if pixels != "uint8":
        X = np.divide(X, np.dtype(pixels).type(255), dtype=pixels)
    h_slow, W_slow = run(X, y, sizes, fast=False, dtype=dtype)
    h_fast, W_fast = run(X, y, sizes, fast=True, dtype=dtype)
    for a, b in zip(W_slow, W_fast):
        np.testing.assert_array_equal(a, b)
    assert h_fast.train_loss == h_slow.train_loss
    assert h_fast.train_acc == h_slow.train_acc
    assert h_fast.test_loss == h_slow.test_loss and h_fast.test_acc == h_slow.test_acc
    assert h_fast.grad_norm == h_slow.grad_norm  # FastSGD takes them from its first step, train() from an extra one
    assert h_fast.train_loss[1] < h_fast.train_loss[0]  # it did train


def test_uint8_pixels_are_scaled_like_load_mnist(mnist_subset):
    X, y = mnist_subset
    Xf = np.divide(X, np.float32(255), dtype=np.float32)
    _, W_u8 = run(X, y, (784, 8, 10), fast=False, epochs=1)
    _, W_f32 = run(Xf, y, (784, 8, 10), fast=False, epochs=1)
    for a, b in zip(W_u8, W_f32):
        np.testing.assert_array_equal(a, b)


def test_fast_path_is_used_only_for_nets_it_knows():
    rng = np.random.default_rng(0)
    assert _fast.supports(NeuralNet((5, 4, 3), rng=rng))
    assert _fast.supports(NeuralNet((5, 4, 4, 3), rng=rng))

    class MySGD(NeuralNet):
        def gradient_descent(self):  # a different update: the fast path must not replace it
            super().gradient_descent()

    assert not _fast.supports(MySGD((5, 4, 3), rng=rng))
    net = NeuralNet((5, 4, 3), rng=rng)
    net.loss = object()
    assert not _fast.supports(net)


def test_fast_path_checks_inputs_like_the_layers():
    rng = np.random.default_rng(0)
    net = NeuralNet((6, 4, 3), rng=rng)
    X, y = np.zeros((10, 5), np.float32), np.zeros(10, np.int64)
    with pytest.raises(ValueError, match=r"Linear\(6, 4\).*\(B, 6\).*\(10, 5\)"):
        train(net, X, y, epochs=1, rng=rng)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\(10,\).*\(9,\)"):
        train(net, np.zeros((10, 6), np.float32), y[:9], epochs=1, rng=rng)
