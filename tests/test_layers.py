import numpy as np
import pytest
import torch

from bareprop import Linear, ReLU, SoftmaxCrossEntropy, one_hot

from checks import analytic_grads, as_float64, numeric_grad, numeric_grads, torch_grads

B, I, O = 3, 5, 4  # small, non-square: a transposed gradient has the wrong shape or values


def rng():
    return np.random.default_rng(1234)


def make_input(shape, r):
    X = r.normal(size=shape)
    X[np.abs(X) < 1e-3] = 0.5  # keep ReLU's kink away from the finite-difference step
    return X


# PyTorch reference of each layer, from the same weights.
TORCH = {
    Linear: lambda X, W: torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1) @ W,
    ReLU: lambda X, W: torch.relu(X),
}
LAYERS = [lambda: Linear(I, O, rng=rng()), lambda: ReLU()]


def out_width(layer):
    return layer.out_features if isinstance(layer, Linear) else I


# --- tier 1: shapes -------------------------------------------------------------------

@pytest.mark.parametrize("make", LAYERS)
def test_shapes(make):
    layer = make()
    X = rng().normal(size=(B, I)).astype(np.float32)
    out = layer(X)
    assert out.shape == (B, out_width(layer)) and out.dtype == np.float32
    grad = np.ones_like(out)
    assert layer.bp_input(grad).shape == (B, I)
    if hasattr(layer, "bp_param"):
        assert layer.W.shape == (I + 1, O)
        assert layer.bp_param(grad).shape == layer.W.shape


def test_loss_shapes():
    X = rng().normal(size=(B, O)).astype(np.float32)
    probs, loss = SoftmaxCrossEntropy()(X, one_hot(np.array([0, 3, 1]), O))
    assert probs.shape == (B, O) and np.shape(loss) == ()
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)


# --- tier 2: finite differences in float64 -------------------------------------------

@pytest.mark.parametrize("make", LAYERS)
def test_gradients_match_finite_differences(make):
    r = rng()
    layer = as_float64(make())
    X = make_input((B, I), r)
    G = r.normal(size=(B, out_width(layer)))
    dX, dW = analytic_grads(layer, X, G)
    num_dX, num_dW = numeric_grads(layer, X, G)
    np.testing.assert_allclose(dX, num_dX, rtol=1e-6, atol=1e-8)
    if dW is not None:
        np.testing.assert_allclose(dW, num_dW, rtol=1e-6, atol=1e-8)


def test_softmax_cross_entropy_matches_finite_differences():
    r = rng()
    X = r.normal(size=(B, O))
    Y = one_hot(np.array([2, 0, 3]), O, np.float64)
    G = r.normal(size=(B, O))  # a random upstream gradient, per element
    loss_layer = SoftmaxCrossEntropy()
    loss_layer(X, Y)
    dX = loss_layer.bp_input(G)
    # bp_input's P - Y is the gradient of each example's own loss (the batch *sum*):
    # d/dX of sum_b loss_b, with each logit's gradient scaled by G elementwise.
    def summed_loss():
        return float(-(Y * np.log(SoftmaxCrossEntropy()(X, Y)[0])).sum())
    num = numeric_grad(summed_loss, X)
    np.testing.assert_allclose(dX, num * G, rtol=1e-6, atol=1e-8)


# --- tier 3: PyTorch autograd as the oracle -------------------------------------------

@pytest.mark.parametrize("make", LAYERS)
def test_gradients_match_pytorch(make):
    r = rng()
    layer = as_float64(make())
    X = make_input((B, I), r)
    G = r.normal(size=(B, out_width(layer)))
    out, dX, dW = layer(X), *analytic_grads(layer, X, G)
    t_out, t_dX, t_dW = torch_grads(TORCH[type(layer)], X, getattr(layer, "W", None), G)
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dX, t_dX, rtol=1e-10, atol=1e-12)
    if dW is not None:
        np.testing.assert_allclose(dW, t_dW, rtol=1e-10, atol=1e-12)


def test_softmax_cross_entropy_matches_pytorch():
    r = rng()
    X = r.normal(size=(B, O)) * 3
    y = np.array([1, 3, 0])
    probs, loss = SoftmaxCrossEntropy()(X, one_hot(y, O, np.float64))
    Xt = torch.tensor(X, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(Xt, torch.tensor(y), reduction="sum")
    t_loss.backward()
    np.testing.assert_allclose(loss * B, t_loss.item(), rtol=1e-12)  # ours is the batch mean
    np.testing.assert_allclose(probs, torch.softmax(Xt, dim=1).detach().numpy(), rtol=1e-12)
    loss_layer = SoftmaxCrossEntropy()
    loss_layer(X, one_hot(y, O, np.float64))
    np.testing.assert_allclose(loss_layer.bp_input(np.ones((B, O))), Xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- numerical stability and shape errors ---------------------------------------------

def test_softmax_cross_entropy_is_stable_for_huge_logits():
    X = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=np.float32)
    Y = one_hot(np.array([1, 2]), 3)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow, no log(0), no NaN
        probs, loss = SoftmaxCrossEntropy()(X, Y)
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(loss, (2e4 + 0) / 2, rtol=1e-6)  # -log P[0,1] = 2e4, -log P[1,2] = 0


def test_linear_rejects_wrong_width_naming_layer_and_shapes():
    layer = Linear(5, 3, rng=rng())
    with pytest.raises(ValueError, match=r"Linear\(5, 3\).*\(B, 5\).*\(4, 6\)"):
        layer(np.zeros((4, 6), np.float32))


def test_xavier_bounds_and_seeded_repeatability():
    W = Linear(784, 32, rng=np.random.default_rng(0)).W
    bound = np.sqrt(6 / (785 + 32))
    assert W.shape == (785, 32) and W.dtype == np.float32
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.95 * bound
    np.testing.assert_array_equal(W, Linear(784, 32, rng=np.random.default_rng(0)).W)
