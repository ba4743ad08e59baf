"""Sequential nets of any depth: the whole backward pass against PyTorch, Dropout at inference, losses."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bareprop import (
    GELU, MSE, SGD, Dropout, LeakyReLU, Linear, NeuralNet, ReLU, Sequential, Sigmoid, SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy, Tanh, he_uniform, sigmoid, softmax, train,
)


def small_data(r, n=50, d=6, k=3):
    centres = r.normal(size=(k, d)) * 3
    y = r.integers(0, k, size=n)
    return (centres[y] + r.normal(size=(n, d))).astype(np.float32), y


def torch_linear(X, W):
    return torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1) @ W


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_deep_net_backprop_matches_pytorch(reduction):
    r = np.random.default_rng(2)
    X, y = small_data(r, n=9, d=7, k=4)
    layers = [Linear(7, 6, rng=r, dtype=np.float64), GELU(), Linear(6, 5, rng=r, dtype=np.float64, init=he_uniform),
              Tanh(), Linear(5, 5, rng=r, dtype=np.float64), LeakyReLU(0.2), Linear(5, 3, rng=r, dtype=np.float64),
              Sigmoid(), Linear(3, 4, rng=r, dtype=np.float64)]
    net = Sequential(layers, loss=SoftmaxCrossEntropy(reduction))
    Ws = [torch.tensor(W, requires_grad=True) for W in net.params()]
    net.evaluate(X, y)
    grads = net.backprop()
    h = torch.tensor(X, dtype=torch.float64)
    h = F.gelu(torch_linear(h, Ws[0]), approximate="tanh")
    h = torch.tanh(torch_linear(h, Ws[1]))
    h = F.leaky_relu(torch_linear(h, Ws[2]), 0.2)
    h = torch.sigmoid(torch_linear(h, Ws[3]))
    F.cross_entropy(torch_linear(h, Ws[4]), torch.tensor(y), reduction=reduction).backward()
    assert len(grads) == 5
    for dW, W in zip(grads, Ws):
        np.testing.assert_allclose(dW, W.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_neural_net_default_is_the_posts_network():
    net = NeuralNet(rng=np.random.default_rng(0))
    assert repr(net) == "NeuralNet(Linear(784, 32), ReLU(), Linear(32, 10), SoftmaxCrossEntropy())"
    assert isinstance(net, Sequential) and net.sizes == (784, 32, 10) and net.num_classes == 10


def test_neural_net_of_any_depth_with_activation_and_dropout():
    net = NeuralNet((20, 16, 12, 8, 5), rng=np.random.default_rng(0), activation=GELU, p_drop=0.25)
    assert repr(net) == ("NeuralNet(Linear(20, 16), GELU(), Dropout(0.25), Linear(16, 12), GELU(), Dropout(0.25), "
                         "Linear(12, 8), GELU(), Dropout(0.25), Linear(8, 5), SoftmaxCrossEntropy())")
    assert [W.shape for W in net.params()] == [(21, 16), (17, 12), (13, 8), (9, 5)]
    leaky = NeuralNet((4, 3, 2), rng=np.random.default_rng(0), activation=lambda: LeakyReLU(0.3))
    assert repr(leaky.layers[1]) == "LeakyReLU(0.3)"


def test_dropout_is_active_in_training_and_the_identity_at_inference():
    r = np.random.default_rng(3)
    X, y = small_data(r)
    net = NeuralNet((6, 40, 3), rng=r, p_drop=0.5, dtype=np.float64)
    no_dropout = Sequential([layer for layer in net.layers if not isinstance(layer, Dropout)])
    first, _, _ = net.evaluate(X, y)
    second, _, _ = net.evaluate(X, y)
    assert not np.allclose(first, second)  # a fresh mask each training forward pass
    grads_before = [g.copy() for g in net.backprop()]
    np.testing.assert_allclose(net.predict_proba(X), no_dropout.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(net.predict_proba(X), net.predict_proba(X))
    assert net.score(X, y) == no_dropout.score(X, y)
    for before, after in zip(grads_before, net.backprop()):  # inference left the training caches alone
        np.testing.assert_array_equal(before, after)
    assert all(layer.training for layer in net.layers if isinstance(layer, Dropout))


def test_sequential_refuses_layers_that_do_not_chain():
    r = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"Sequential: Linear\(4, 3\) cannot feed Linear\(5, 2\): 3 != 5"):
        Sequential([Linear(4, 3, rng=r), ReLU(), Linear(5, 2, rng=r)])
    with pytest.raises(ValueError, match="at least one layer with weights"):
        Sequential([Tanh()])
    with pytest.raises(ValueError, match="one dtype"):
        Sequential([Linear(4, 3, rng=r), Linear(3, 2, rng=r, dtype=np.float64)])


@pytest.mark.parametrize("loss, output, lr", [
    (MSE(), lambda Z: Z, 0.001),  # summed over batches of 32: a per-example step
    (SigmoidBinaryCrossEntropy(), sigmoid, 0.01),
    (SoftmaxCrossEntropy("mean"), softmax, 0.3),  # averaged: a step for the whole batch
])
def test_other_losses_train_and_predict_through_their_output(loss, output, lr):
    r = np.random.default_rng(4)
    X, y = small_data(r, n=300)
    net = Sequential([Linear(6, 16, rng=r), Tanh(), Linear(16, 3, rng=r)], loss=loss)
    h = train(net, X, y, epochs=5, batch_size=32, rng=r, X_test=X, y_test=y, optimizer=SGD(lr, momentum=0.5))
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.test_acc[-1] > 0.95
    np.testing.assert_allclose(net.predict_proba(X[:5]), output(net._logits(X[:5])), rtol=1e-5)
    acc, mean_loss = net.score(X, y)
    assert mean_loss == pytest.approx(h.test_loss[-1]) and acc == h.test_acc[-1]


def test_recorded_gradient_norms_are_per_example_for_either_reduction():
    r = np.random.default_rng(6)
    X, y = small_data(r, n=64)
    norms = []
    for reduction in ("sum", "mean"):
        rr = np.random.default_rng(0)
        net = Sequential([Linear(6, 5, rng=rr, dtype=np.float64), Tanh(), Linear(5, 3, rng=rr, dtype=np.float64)],
                         loss=SoftmaxCrossEntropy(reduction))
        norms.append(train(net, X, y, epochs=1, batch_size=64, rng=np.random.default_rng(1)).grad_norm[0])
    np.testing.assert_allclose(norms[0], norms[1], rtol=1e-12)
