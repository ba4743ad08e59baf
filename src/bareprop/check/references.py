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

The harness (gradcheck.py) finds a layer's entry here, the tests (tests/test_layers.py), the
`bareprop gradcheck` command and the docs walk this registry: adding a layer means adding one entry
here, and no test code (see docs/adding-a-layer.md). PyTorch is imported only by the functions that
use it.

Glossary: B batch size, I input width, O output width, K number of classes.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..core.layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from ..core.losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from ..core.net import one_hot


@dataclass(frozen=True)
class Reference:
    """How to build a small example of a layer class, and the same layer in PyTorch (see the module docstring)."""

    build: Callable  # (width, rng) -> layer taking (B, width)
    torch: Callable  # (layer, X, W) -> out;  for a loss: (loss, X, Y) -> (out, summed loss)
    targets: Callable | None = None  # losses only: (shape, rng) -> Y


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

    return X * torch.from_numpy(layer.mask)  # the very mask the layer drew on this X, 0 or 1 / (1 - p)


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
