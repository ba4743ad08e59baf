"""Every registered layer and loss, in three tiers: shapes, finite differences in float64, PyTorch.

The classes come from bareprop.check.references.REFERENCES, and the first tests fail unless it holds
exactly the classes of LAYERS and LOSSES, and those hold every layer and loss bareprop exports: a new
layer is checked as soon as it has its entry, with no new test code. Hypothesis chooses the shapes: batch size 1, width 1 and odd, non-square widths
among them (Linear's output width is drawn from the same seed).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import bareprop
from bareprop import Linear, SoftmaxCrossEntropy, gradcheck, one_hot, torch_check
from bareprop.check.references import REFERENCES, input_shape
from bareprop.core.layers import LAYERS
from bareprop.core.losses import LOSSES

each_class = pytest.mark.parametrize("cls", list(REFERENCES), ids=lambda cls: cls.__name__)
shapes = given(batch=st.integers(1, 6), width=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
few = settings(max_examples=15, deadline=None)


def example_of(cls, batch, width, seed):
    """A small example of cls from its registry entry, the shape of its inputs ((batch, width), or
    (batch, C, H, W) for a layer on images) and the generator they were drawn from."""
    rng = np.random.default_rng(seed)
    layer = REFERENCES[cls].build(width, rng)
    return layer, input_shape(layer, batch, width, rng), rng


def test_every_layer_and_loss_has_a_reference_and_every_reference_a_layer_or_loss():
    kinds = LAYERS + LOSSES
    missing = [cls.__name__ for cls in kinds if cls not in REFERENCES]
    assert not missing, f"in LAYERS or LOSSES but not in bareprop.check.references.REFERENCES: {missing}"
    strays = [cls.__name__ for cls in REFERENCES if cls not in kinds]
    assert not strays, f"in REFERENCES but not in bareprop.core's LAYERS or LOSSES: {strays}"
    assert len(set(kinds)) == len(kinds) == len(REFERENCES)


def test_every_exported_layer_and_loss_is_in_layers_or_losses():
    exported = [getattr(bareprop, name) for name in bareprop.__all__]
    layers = [obj for obj in exported if isinstance(obj, type) and hasattr(obj, "bp_input")]
    assert Linear in layers and SoftmaxCrossEntropy in layers  # the scan itself finds layers and losses
    missing = [cls.__name__ for cls in layers if cls not in LAYERS + LOSSES]
    assert not missing, f"exported but in neither bareprop.core.layers.LAYERS nor bareprop.core.losses.LOSSES: {missing}"
    unexported = [cls.__name__ for cls in LAYERS + LOSSES if cls not in layers]
    assert not unexported, f"in LAYERS or LOSSES but not exported from bareprop: {unexported}"


# --- tier 1: shapes (and float32 stays float32) -------------------------------------------

@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
def test_shapes(cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    X = rng.normal(size=shape).astype(np.float32)
    targets = REFERENCES[cls].targets
    if targets is None:
        out = layer(X)  # (B, O)
        grad = rng.normal(size=out.shape).astype(np.float32)  # (B, O)
    else:
        out, loss = layer(X, targets(X.shape, rng).astype(np.float32))  # (B, K), ()
        assert np.shape(loss) == () and np.isfinite(loss)
        grad = np.ones_like(X)  # (B, K), as NeuralNet calls it
    assert out.ndim in (2, 4) and out.shape[0] == batch and out.dtype == np.float32
    dX = layer.bp_input(grad)
    assert dX.shape == X.shape and dX.dtype == np.float32
    if hasattr(layer, "bp_param"):
        dW = layer.bp_param(grad)
        assert dW.shape == layer.W.shape and dW.dtype == np.float32


# --- tier 2: finite differences in float64 -----------------------------------------------

@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
@example(batch=3, width=7, seed=1)
def test_gradients_match_finite_differences(cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    result = gradcheck(layer, shape, rng=rng)
    assert result.ok, result.message


# --- tier 3: PyTorch autograd as the oracle -----------------------------------------------

@pytest.mark.torch
@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
@example(batch=5, width=3, seed=2)
def test_forward_and_gradients_match_pytorch(cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    result = torch_check(layer, shape, rng=rng)
    assert result.ok, result.message


# --- numerical stability and shape errors ---------------------------------------------

def test_softmax_cross_entropy_is_stable_for_huge_logits():
    X = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=np.float32)
    Y = one_hot(np.array([1, 2]), 3)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow, no log(0), no NaN
        probs, loss = SoftmaxCrossEntropy()(X, Y)
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    np.testing.assert_allclose(loss, (2e4 + 0) / 2, rtol=1e-6)  # -log P[0,1] = 2e4, -log P[1,2] = 0


def test_linear_rejects_wrong_width_naming_layer_and_shapes():
    layer = Linear(5, 3, rng=np.random.default_rng(1234))
    with pytest.raises(ValueError, match=r"Linear\(5, 3\).*\(B, 5\).*\(4, 6\)"):
        layer(np.zeros((4, 6), np.float32))


def test_xavier_bounds_and_seeded_repeatability():
    W = Linear(784, 32, rng=np.random.default_rng(0)).W
    bound = np.sqrt(6 / (785 + 32))
    assert W.shape == (785, 32) and W.dtype == np.float32
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.95 * bound
    np.testing.assert_array_equal(W, Linear(784, 32, rng=np.random.default_rng(0)).W)
