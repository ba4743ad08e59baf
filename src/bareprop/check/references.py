"""The reference entries: for every layer and loss bareprop has, a small example and the same thing in PyTorch.

REFERENCES maps every class in bareprop's LAYERS and LOSSES to a Reference (a test fails if one is
missing, or an entry names a class that is in neither):

    build(width, rng)     a small example of the class that takes inputs of shape (B, width),
                          its weights drawn from rng
    torch(layer, X, W)    the same layer in PyTorch: X a float64 tensor (B, width), W the layer's
                          weights as a float64 tensor (None for a layer without bp_param); returns
                          the output tensor. `layer` is the float64 copy that has just run forward
                          on X, so a layer that draws randomness can hand PyTorch the mask it drew.
    targets(shape, rng)   losses only: targets Y for inputs of `shape`. A loss's `torch` is called
                          as torch(loss, X, Y) and returns (out, the batch *sum* of the losses).
    inputs(layer, B, width, rng)
                          layers on images only: the shape of the inputs the example `layer` takes,
                          such as (B, C, H, W); the others take (B, width). See input_shape.

The harness (gradcheck.py) finds a layer's entry here, the tests (tests/test_layers.py), the
`bareprop gradcheck` command and the docs walk this registry: adding a layer means adding one entry
here, and no test code (see docs/adding-a-layer.md). PyTorch is imported only by the functions that
use it.

Glossary: B batch size, I input width, O output width, K number of classes.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.arrays import to_numpy
from ..core.conv import Conv2d, Flatten, MaxPool2d, Reshape
from ..core.layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from ..core.losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from ..core.net import one_hot


@dataclass(frozen=True)
class Reference:
    """How to build a small example of a layer class, and the same layer in PyTorch (see the module docstring)."""

    build: Callable  # (width, rng) -> layer taking (B, width)
    torch: Callable  # (layer, X, W) -> out;  for a loss: (loss, X, Y) -> (out, summed loss)
    targets: Callable | None = None  # losses only: (shape, rng) -> Y
    inputs: Callable | None = None  # layers on images only: (layer, B, width, rng) -> the input's shape


def input_shape(layer, B, width, rng):
    """The shape of the inputs the registered example `layer` takes: (B, width), or, for a layer on
    images, the (B, C, H, W) its entry draws from rng (`width` is then the smallest height it may draw)."""
    reference = next((REFERENCES[cls] for cls in type(layer).__mro__ if cls in REFERENCES), None)
    if reference is None or reference.inputs is None:
        return (B, width)
    return reference.inputs(layer, B, width, rng)


# --- layers: (layer, X, W) -> out ----------------------------------------------------------

def _torch_linear(layer, X, W):  # (B, I), (I+1, O) -> (B, O)
    import torch.nn.functional as F

    return F.linear(X, W[:-1].T, W[-1])  # PyTorch's weight (O, I) is W[:-1].T, its bias (O,) is W[-1]


def _torch_relu(layer, X, W):  # (B, I) -> (B, I)
    import torch

    return torch.relu(X)


def _torch_leaky_relu(layer, X, W):  # (B, I) -> (B, I)
    import torch.nn.functional as F

    return F.leaky_relu(X, layer.slope)


def _torch_sigmoid(layer, X, W):  # (B, I) -> (B, I)
    import torch

    return torch.sigmoid(X)


def _torch_tanh(layer, X, W):  # (B, I) -> (B, I)
    import torch

    return torch.tanh(X)


def _torch_gelu(layer, X, W):  # (B, I) -> (B, I)
    import torch.nn.functional as F

    return F.gelu(X, approximate="tanh")


def _torch_dropout(layer, X, W):  # (B, I) -> (B, I)
    import torch

    return X * torch.from_numpy(to_numpy(layer.mask))  # the very mask the layer drew on this X, 0 or 1 / (1 - p)


# --- layers on images: (layer, X, W) -> out, X (B, C, H, W) ----------------------------------

def _torch_conv2d(layer, X, W):  # (B, C, H, W), (C*k*k+1, O) -> (B, O, Ho, Wo)
    import torch.nn.functional as F

    k = layer.kernel_size
    weight = W[:-1].T.reshape(layer.out_channels, layer.in_channels, k, k)  # PyTorch's (O, C, k, k): W's rows are (c, di, dj)
    return F.conv2d(X, weight, W[-1], stride=layer.stride, padding=layer.padding)


def _torch_max_pool2d(layer, X, W):  # (B, C, H, W) -> (B, C, Ho, Wo)
    import torch.nn.functional as F

    return F.max_pool2d(X, layer.kernel_size, layer.stride)


def _torch_flatten(layer, X, W):  # (B, C, H, W) -> (B, C*H*W)
    return X.flatten(1)


def _torch_reshape(layer, X, W):  # (B, C*H*W) -> (B, C, H, W)
    return X.reshape(len(X), *layer.shape)


def _image_side(k, padding, width, rng):  # a height or width a k x k window padded by `padding` fits in
    return max(1, k - 2 * padding) + int(rng.integers(0, 4)) + width % 3  # odd and even, square or not


def _conv2d_example(width, rng):
    k, padding = int(rng.integers(1, 6)), int(rng.integers(0, 3))
    return Conv2d(int(rng.integers(1, 4)), int(rng.integers(1, 4)), k, stride=int(rng.integers(1, 4)),
                  padding=padding, rng=rng)


def _conv2d_inputs(layer, B, width, rng):  # -> (B, C, H, W)
    side = lambda: _image_side(layer.kernel_size, layer.padding, width, rng)  # noqa: E731
    return (B, layer.in_channels, side(), side())


def _max_pool2d_example(width, rng):
    k = int(rng.integers(1, 4))
    return MaxPool2d(k, stride=int(rng.integers(1, 4)))


def _max_pool2d_inputs(layer, B, width, rng):  # -> (B, C, H, W)
    side = lambda: _image_side(layer.kernel_size, 0, width, rng)  # noqa: E731
    return (B, int(rng.integers(1, 4)), side(), side())


def _flatten_inputs(layer, B, width, rng):  # -> (B, C, H, W)
    return (B, int(rng.integers(1, 4)), int(rng.integers(1, 5)), max(1, width % 5))


def _reshape_inputs(layer, B, width, rng):  # -> (B, C*H*W)
    return (B, layer.in_features)


# --- losses: (loss, X, Y) -> (out, the batch sum of the losses), and their targets ------------

def _torch_softmax_cross_entropy(loss, X, Y):  # (B, K), (B, K) -> (B, K), ()
    import torch
    import torch.nn.functional as F

    return torch.softmax(X, dim=1), F.cross_entropy(X, Y, reduction="sum")  # Y as class probabilities


def _torch_mse(loss, X, Y):  # (B, K), (B, K) -> (B, K), ()
    import torch.nn.functional as F

    return X, F.mse_loss(X, Y, reduction="sum")  # sum over b and k of (X - Y)^2


def _torch_sigmoid_binary_cross_entropy(loss, X, Y):  # (B, K), (B, K) -> (B, K), ()
    import torch
    import torch.nn.functional as F

    return torch.sigmoid(X), F.binary_cross_entropy_with_logits(X, Y, reduction="sum")


def _one_hot_targets(shape, rng):  # (B, K) -> one-hot (B, K)
    return one_hot(rng.integers(0, shape[1], size=shape[0]), shape[1], np.float64)


def _real_targets(shape, rng):  # (B, K) -> (B, K)
    return rng.normal(size=shape)


def _unit_interval_targets(shape, rng):  # (B, K) -> (B, K) in [0, 1]: yes/no probabilities
    return rng.uniform(size=shape)


REFERENCES = {
    Linear: Reference(
        build=lambda width, rng: Linear(width, int(rng.integers(1, 9)), rng=rng),
        torch=_torch_linear,
    ),
    ReLU: Reference(
        build=lambda width, rng: ReLU(),
        torch=_torch_relu,
    ),
    LeakyReLU: Reference(
        build=lambda width, rng: LeakyReLU(float(rng.uniform(0.01, 0.5))),
        torch=_torch_leaky_relu,
    ),
    Sigmoid: Reference(
        build=lambda width, rng: Sigmoid(),
        torch=_torch_sigmoid,
    ),
    Tanh: Reference(
        build=lambda width, rng: Tanh(),
        torch=_torch_tanh,
    ),
    GELU: Reference(
        build=lambda width, rng: GELU(),
        torch=_torch_gelu,
    ),
    Dropout: Reference(
        build=lambda width, rng: Dropout(0.3, rng=np.random.default_rng(int(rng.integers(2**32)))),
        torch=_torch_dropout,
    ),
    Conv2d: Reference(
        build=_conv2d_example,
        torch=_torch_conv2d,
        inputs=_conv2d_inputs,
    ),
    MaxPool2d: Reference(
        build=_max_pool2d_example,
        torch=_torch_max_pool2d,
        inputs=_max_pool2d_inputs,
    ),
    Flatten: Reference(
        build=lambda width, rng: Flatten(),
        torch=_torch_flatten,
        inputs=_flatten_inputs,
    ),
    Reshape: Reference(
        build=lambda width, rng: Reshape((int(rng.integers(1, 4)), int(rng.integers(1, 5)), max(1, width % 5))),
        torch=_torch_reshape,
        inputs=_reshape_inputs,
    ),
    SoftmaxCrossEntropy: Reference(
        build=lambda width, rng: SoftmaxCrossEntropy(),
        torch=_torch_softmax_cross_entropy,
        targets=_one_hot_targets,
    ),
    MSE: Reference(
        build=lambda width, rng: MSE(),
        torch=_torch_mse,
        targets=_real_targets,
    ),
    SigmoidBinaryCrossEntropy: Reference(
        build=lambda width, rng: SigmoidBinaryCrossEntropy(),
        torch=_torch_sigmoid_binary_cross_entropy,
        targets=_unit_interval_targets,
    ),
}
