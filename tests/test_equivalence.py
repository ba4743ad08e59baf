"""A whole training run, proven equal to PyTorch's on the real MNIST.

bareprop trains the post's network (784 -> 32 -> ReLU -> 10, fused softmax + cross-entropy, summed
gradient, plain SGD); PyTorch trains the same network written the ordinary PyTorch way — nn.Linear
layers whose weight is W[:-1].T and bias W[-1] of bareprop's initial W, cross_entropy with
reduction="sum", torch.optim.SGD — on the same batches in the same order (bareprop.core.train.batches
of a permutation from the same generator state). In float64 every step agrees to rounding; in float32 after 10 epochs
the two test accuracies agree to 0.2 percentage points.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from bareprop import NeuralNet, train
from bareprop.core.net import as_inputs
from bareprop.core.train import batches

pytestmark = pytest.mark.torch

SIZES, LR, BATCH = (784, 32, 10), 0.001, 64


@pytest.fixture(scope="module")
def mnist(mnist):
    """The session's uint8 MNIST (conftest.py) as float32 in [0, 1], as load_mnist gives it."""
    return tuple((as_inputs(X, np.dtype(np.float32)), y.copy()) for X, y in mnist)  # torch wants writable arrays


@pytest.fixture(autouse=True)
def one_thread():
    """These batches are small: one thread each for PyTorch and NumPy's BLAS is as fast, and on a busy
    machine far faster than threads that wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(threads)


def torch_net(net):
    """The same MLP in PyTorch, its weights copied from bareprop's W (bias folded in as the last row)."""
    torch_dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).to(torch_dtype)
    with torch.no_grad():
        for linear, W in zip([model[0], model[2]], net.params()):
            linear.weight.copy_(torch.from_numpy(W[:-1].T))  # (O, I)
            linear.bias.copy_(torch.from_numpy(W[-1]))  # (O,)
    return model


def torch_weights(model):
    """PyTorch's weights in bareprop's layout: [weight.T; bias], (I+1, O) per layer."""
    return [torch.cat([linear.weight.T, linear.bias[None]]).detach().numpy() for linear in (model[0], model[2])]


def torch_step(model, optimizer, X, y):
    """One SGD step on the batch-summed cross-entropy; returns the batch's mean loss before the step."""
    optimizer.zero_grad()
    loss = F.cross_entropy(model(X), y, reduction="sum")  # summed, as bareprop's gradient is
    loss.backward()
    optimizer.step()
    return loss.item() / len(y)


def test_one_epoch_in_float64_matches_pytorch_step_by_step(mnist):
    (X, y), _ = mnist
    X = X.astype(np.float64)
    rng = np.random.default_rng(0)
    net = NeuralNet(SIZES, lr=LR, rng=rng, dtype=np.float64)
    model = torch_net(net)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    train_rng = copy.deepcopy(rng)  # the generator as train() would find it, for the run through train()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    epoch = batches(rng.permutation(len(X)), BATCH)  # as train() draws them
    assert len(epoch) == 938  # one full epoch of the 60,000 images, the last batch of 32
    ours = []
    for idx in epoch:
        _, _, loss = net.evaluate(X[idx], y[idx])
        net.gradient_descent()
        ours.append(float(loss))
    theirs = [torch_step(model, optimizer, Xt[idx], yt[idx]) for idx in epoch]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
    assert theirs[-1] < theirs[0] / 3  # it did learn: these are not two untrained nets
    for W, W_torch in zip(net.params(), torch_weights(model)):
        np.testing.assert_allclose(W, W_torch, rtol=0, atol=1e-8)
    # The same epoch through bareprop.train() on its compiled kernel (which sums in its own order)
    # gives these weights to rounding.
    again = NeuralNet(SIZES, lr=LR, rng=np.random.default_rng(0), dtype=np.float64)
    history = train(again, X, y, epochs=1, batch_size=BATCH, rng=train_rng, path="kernel")
    for W, W_again in zip(net.params(), again.params()):
        np.testing.assert_allclose(W_again, W, rtol=1e-9, atol=1e-12)
    assert history.train_loss[0] == pytest.approx(np.mean(ours), rel=1e-12)


def test_ten_epochs_in_float32_reach_the_same_test_accuracy(mnist):
    (X, y), (X_test, y_test) = mnist
    rng = np.random.default_rng(1)
    net = NeuralNet(SIZES, lr=LR, rng=rng)
    model = torch_net(net)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    torch_rng = copy.deepcopy(rng)  # the same batch order, epoch after epoch
    history = train(net, X, y, epochs=10, batch_size=BATCH, rng=rng, X_test=X_test, y_test=y_test)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(10):
        for idx in batches(torch_rng.permutation(len(X)), BATCH):
            torch_step(model, optimizer, Xt[idx], yt[idx])
    with torch.no_grad():
        torch_acc = (model(torch.from_numpy(X_test)).argmax(dim=1).numpy() == y_test).mean()
    assert history.test_acc[-1] > 0.94  # a trained net, not two equally broken ones
    assert abs(history.test_acc[-1] - torch_acc) <= 0.002, (history.test_acc[-1], torch_acc)
