"""The layers and losses beyond the post, beyond what the registry checks.

Every class here is registered in bareprop.check.references.REFERENCES, so tests/test_layers.py already
checks it in three tiers (shapes; finite differences; PyTorch). Here: the losses with
reduction="mean" and with probability targets, and what the gradient checks cannot see.
"""

import re

import numpy as np
import pytest

from bareprop import (
    GELU, MSE, Dropout, LeakyReLU, Linear, NeuralNet, Sigmoid, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, Tanh,
    gradcheck, he_uniform, one_hot, torch_check,
)
from bareprop.check.references import REFERENCES
from bareprop.core.layers import LAYERS
from bareprop.core.losses import LOSSES

B, I = 3, 5
LOGITS = np.random.default_rng(5).normal(size=(4, 3)) * 2  # (B, K), non-square
SOFT = np.random.default_rng(6).uniform(size=(4, 3))  # targets in [0, 1], rows not summing to 1


def both(loss, Y, torch_forward):
    """The public harness, both oracles, on LOGITS and the given targets: asserts both pass."""
    for result in (gradcheck(loss, LOGITS, targets=Y), torch_check(loss, LOGITS, targets=Y, torch_forward=torch_forward)):
        assert result.ok, result.message


# PyTorch references: (loss, X, Y) -> (out, the batch SUM of the losses); the harness divides by B for "mean".
def torch_softmax_ce(loss, X, Y):
    import torch
    import torch.nn.functional as F

    return torch.softmax(X, dim=1), F.cross_entropy(X, Y, reduction="sum")


def torch_mse(loss, X, Y):
    import torch.nn.functional as F

    return X, F.mse_loss(X, Y, reduction="sum")


def torch_sigmoid_bce(loss, X, Y):
    import torch
    import torch.nn.functional as F

    return torch.sigmoid(X), F.binary_cross_entropy_with_logits(X, Y, reduction="sum")


@pytest.mark.torch
def test_softmax_cross_entropy_mean():
    both(SoftmaxCrossEntropy("mean"), one_hot(np.array([2, 0, 1, 2]), 3, np.float64), torch_softmax_ce)


@pytest.mark.torch
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_cross_entropy_with_probability_targets(reduction):
    both(SoftmaxCrossEntropy(reduction), SOFT / SOFT.sum(axis=1, keepdims=True), torch_softmax_ce)  # P - Y holds


@pytest.mark.torch
def test_mse_mean():
    # ours averages over the batch only, not over the K outputs as PyTorch's mse_loss(reduction="mean") does
    both(MSE("mean"), SOFT, torch_mse)


@pytest.mark.torch
def test_sigmoid_binary_cross_entropy_mean():
    both(SigmoidBinaryCrossEntropy("mean"), SOFT, torch_sigmoid_bce)


def test_mean_is_the_sum_divided_by_the_batch():
    for make in (SoftmaxCrossEntropy, MSE, SigmoidBinaryCrossEntropy):
        Y = one_hot(np.array([2, 0, 1, 2]), 3, np.float64)
        total, mean = make("sum"), make("mean")
        assert total(LOGITS, Y)[1] == mean(LOGITS, Y)[1]  # the reported loss is the batch mean either way
        G = np.random.default_rng(0).normal(size=LOGITS.shape)
        np.testing.assert_allclose(mean.bp_input(G), total.bp_input(G) / len(LOGITS), rtol=1e-15)


@pytest.mark.torch
def test_linear_with_he_init_passes_both_checks():
    layer = Linear(I, 4, rng=np.random.default_rng(0), init=he_uniform)
    assert gradcheck(layer, (B, I)).ok and torch_check(layer, (B, I)).ok


# --- behaviour beyond the gradients -----------------------------------------------------

def test_the_default_reduction_is_the_posts():
    loss = SoftmaxCrossEntropy()
    assert loss.reduction == "sum" and repr(loss) == "SoftmaxCrossEntropy()"
    assert repr(SoftmaxCrossEntropy("mean")) == "SoftmaxCrossEntropy(reduction='mean')"
    with pytest.raises(ValueError, match="reduction must be 'sum' or 'mean', got 'avg'"):
        MSE("avg")


@pytest.mark.parametrize("loss", [SigmoidBinaryCrossEntropy(), SoftmaxCrossEntropy()])
def test_fused_losses_are_stable_for_huge_logits(loss):
    X = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=np.float32)
    Y = one_hot(np.array([1, 2]), 3)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        outputs, reported = loss(X, Y)
        dX = loss.bp_input(np.ones_like(X))
    assert np.isfinite(reported) and np.all(np.isfinite(outputs)) and np.all(np.isfinite(dX))


@pytest.mark.parametrize("make", [Sigmoid, Tanh, GELU, lambda: LeakyReLU(0.2)])
def test_activations_keep_float32_and_shapes(make):
    X = np.random.default_rng(0).normal(size=(B, I)).astype(np.float32)
    layer = make()
    out = layer(X)
    assert out.shape == X.shape and out.dtype == np.float32
    assert layer.bp_input(np.ones_like(out)).dtype == np.float32


def test_sigmoid_never_overflows():
    with np.errstate(over="raise"):
        out = Sigmoid()(np.array([[-1e4, 0.0, 1e4]], dtype=np.float32))
    np.testing.assert_array_equal(out, [[0.0, 0.5, 1.0]])


def test_dropout_drops_p_and_keeps_the_expected_value():
    X = np.ones((200, 500), dtype=np.float32)
    layer = Dropout(0.3, rng=np.random.default_rng(0))
    out = layer(X)
    assert out.dtype == np.float32
    dropped = (out == 0).mean()
    assert abs(dropped - 0.3) < 0.01  # 100,000 draws: the standard error is 0.0015
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)  # survivors scaled up
    assert abs(out.mean() - 1) < 0.02
    np.testing.assert_array_equal(layer.bp_input(np.full_like(X, 2.0)), 2 * out)  # the same mask


def test_dropout_uses_the_generator_it_is_given():
    X = np.ones((4, 50))
    a, b = Dropout(0.5, rng=np.random.default_rng(3))(X), Dropout(0.5, rng=np.random.default_rng(3))(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, Dropout(0.5, rng=np.random.default_rng(4))(X))


def test_dropout_is_the_identity_at_inference():
    layer = Dropout(0.5, rng=np.random.default_rng(0))
    layer.training = False
    X = np.random.default_rng(1).normal(size=(B, I))
    np.testing.assert_array_equal(layer(X), X)
    np.testing.assert_array_equal(layer.bp_input(X), X)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match=r"Dropout: p_drop must lie in \[0, 1\)"):
        Dropout(p, rng=np.random.default_rng(0))


def test_he_bounds_and_seeded_repeatability():
    W = he_uniform(np.random.default_rng(0), 785, 256)
    bound = np.sqrt(6 / 785)
    assert W.shape == (785, 256) and W.dtype == np.float32
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound
    np.testing.assert_allclose(W.var(), 2 / 785, rtol=0.02)  # variance 2 / fan_in, He's point
    np.testing.assert_array_equal(W, he_uniform(np.random.default_rng(0), 785, 256))


def test_net_with_he_init_uses_it_for_every_linear():
    net = NeuralNet((20, 30, 10), rng=np.random.default_rng(0), init=he_uniform)
    for W in net.params():
        assert np.abs(W).max() <= np.sqrt(6 / W.shape[0]) and np.abs(W).max() > np.sqrt(6 / sum(W.shape))


# --- what mutation testing found unchecked (docs/testing.md, "Mutation testing") -----------------


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_a_loss_given_targets_of_another_shape_names_itself_and_both_shapes(cls):
    with pytest.raises(ValueError, match=rf"^{re.escape(str(cls()))}: outputs \(3, 2\) and targets \(3, 4\) must have "
                                         r"the same shape$"):
        cls()(np.zeros((3, 2)), np.zeros((3, 4)))


@pytest.mark.parametrize("cls", LAYERS + LOSSES, ids=lambda c: c.__name__)
def test_repr_is_the_code_that_builds_the_same_layer(cls):
    """repr(layer) reads as the call that makes it (the generator aside): evaluated, the same class and
    the same spec (what the model file records)."""
    import inspect

    rng = np.random.default_rng(0)
    layer = REFERENCES[cls].build(3, rng)
    needs_rng = "rng" in inspect.signature(cls).parameters
    make = (lambda *args, **kw: cls(*args, **kw, rng=rng)) if needs_rng else cls
    again = eval(repr(layer), {cls.__name__: make})
    assert type(again) is cls and again.spec() == layer.spec()


@pytest.mark.torch
@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_per_example_is_each_examples_own_loss(cls):
    """per_example (what score() sums over a dataset) against PyTorch's losses with reduction="none",
    summed over the K outputs of each example; and the mean of the rows is the loss the forward reports."""
    import torch

    r = np.random.default_rng(7)
    X = r.normal(size=(4, 3)) * 3  # (B, K), logits well away from 0 so every term shows
    loss = cls()
    Y = REFERENCES[cls].targets(X.shape, r)  # (B, K)
    ours = loss.per_example(X, Y)  # (B,)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    theirs = {
        SoftmaxCrossEntropy: lambda: torch.nn.functional.cross_entropy(Xt, Yt, reduction="none"),
        MSE: lambda: torch.nn.functional.mse_loss(Xt, Yt, reduction="none").sum(dim=1),
        SigmoidBinaryCrossEntropy: lambda: torch.nn.functional.binary_cross_entropy_with_logits(
            Xt, Yt, reduction="none").sum(dim=1),
    }[cls]().numpy()
    assert ours.shape == (4,)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(ours.mean(), loss(X, Y)[1], rtol=1e-12)


@pytest.mark.torch
def test_leaky_relu_at_exactly_zero_takes_the_slope_as_pytorch_does():
    """At X = 0 the derivative is a convention: the negative side's slope, as in torch.nn.LeakyReLU
    (and ReLU's 0). Random inputs never hit 0 exactly; pixels and ReLU outputs often do."""
    import torch

    X = np.array([[-1.0, 0.0, 2.0], [0.0, 0.0, -0.0]])  # (B, I)
    layer = LeakyReLU(0.1)
    layer(X)
    grad = np.ones_like(X)  # (B, I)
    Xt = torch.tensor(X, requires_grad=True)
    torch.nn.functional.leaky_relu(Xt, 0.1).backward(torch.tensor(grad))
    np.testing.assert_array_equal(layer.bp_input(grad), Xt.grad.numpy())


def test_dropout_of_zero_is_allowed_and_keeps_everything():
    """The bound at its boundary: p_drop = 0 is a layer (the identity, in training too)."""
    X = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    layer = Dropout(0.0, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(layer(X), X)


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(reduction="mean"), MSE(reduction="mean"),
                                  SigmoidBinaryCrossEntropy()], ids=repr)
def test_a_losss_reduction_survives_the_model_file(loss, tmp_path):
    """A net saved with a mean-reduced loss loads with it (the spec records a reduction other than the
    post's sum), so a loaded net trains as the saved one did."""
    import bareprop as bp

    net = bp.Sequential([Linear(4, 3, rng=np.random.default_rng(0))], loss=loss)
    bp.save(net, tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert type(again.loss) is type(loss) and again.loss.reduction == loss.reduction
    from bareprop.experiment.modelfile import net_spec  # the file's JSON, as docs/files.md shows it

    recorded = {} if loss.reduction == "sum" else {"reduction": loss.reduction}
    assert net_spec(again)["loss"] == {"type": type(loss).__name__, **recorded}
