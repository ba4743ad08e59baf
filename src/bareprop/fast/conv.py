"""The private fast path for convolutional nets: the same net, its image layers swapped for compiled twins.
Not public API.

The readable Conv2d (core/conv.py) copies every patch into a matrix (im2col) and adds the input gradient
back from one (col2im); on a CPU those copies cost more than the products. The twins below compute the
same sums straight from the image (_conv.c: a direct convolution, and max pooling), on images kept
channels-last, (B, H, W, C), between the net's Reshape and its Flatten. They share the net's weight arrays;
every other layer, the loss and the optimizer are the net's own, and each epoch is the readable loop
(core.train.run_epoch) run on the twin net: any optimizer, schedule or loss works. Sums run in another order
than BLAS's: the twin agrees with the readable layers to rounding (tests/test_fast_conv.py).

train(path="auto") calls `runner` once, before its loop, for a net with a Conv2d. The rule (`why_not`):
float32 NumPy weights; Reshape first, then Conv2d, MaxPool2d and activation layers (core.layers.ACTIVATIONS),
then Flatten and any layers that take rows; each Conv2d's out_channels a multiple of 8 (the loops' vectors), so
that the in_channels of each one after the first are too (the input gradient is a convolution whose outputs are
the input channels; the first layer's is never formed). See docs/speed.md.

Glossary as in core/conv.py: B batch, C input channels, H, W height and width, O output channels, k kernel
side, s stride, p padding, Ho, Wo the output's height and width.
"""

import sys

import numpy as np

try:
    from . import _conv
except ImportError:  # the package was installed without its compiled extension
    _conv = None

from ..core.conv import Conv2d, Flatten, MaxPool2d, Reshape, _check_fits, out_size
from ..core.layers import ACTIVATIONS, ReLU
from ..core.net import Sequential
from ..core.train import run_epoch

# What may stand between the Reshape and the Flatten: the activations act number by number, so the net's own run
# on channels-last images as they are.
IMAGE_LAYERS = (Conv2d, MaxPool2d, *ACTIVATIONS)


def is_convolutional(net):
    return any(type(layer) is Conv2d for layer in getattr(net, "layers", ()))


def why_not(net):
    """Why the twin cannot train `net` ('' if it can)."""
    layers = list(net.layers)
    kinds = [type(layer) for layer in layers]
    if Flatten not in kinds or kinds[0] is not Reshape:
        return "its layers are not a Reshape, then Conv2d, MaxPool2d and activation layers, then a Flatten"
    flat = kinds.index(Flatten)
    if not all(kind in IMAGE_LAYERS for kind in kinds[1:flat]):
        return "its layers are not a Reshape, then Conv2d, MaxPool2d and activation layers, then a Flatten"
    if any(kind in (Conv2d, MaxPool2d, Reshape, Flatten) for kind in kinds[flat + 1:]):
        return "it has image layers after its Flatten"
    for conv in (layer for layer in layers if type(layer) is Conv2d):  # Sequential checked that each feeds the next
        if conv.out_channels % 8:
            return f"{conv!r} has output channels that are not a multiple of 8"
    Ws = net.params()
    if not all(isinstance(W, np.ndarray) and W.dtype == np.float32 for W in Ws):
        return "its weights are not float32 NumPy arrays"
    if not all(W.flags.c_contiguous and W.flags.writeable for W in Ws):
        return "its weights are not contiguous, writable arrays"
    return ""


_warned = False  # set once the missing extension has been reported (fast.chosen)


def runner(net, batch_size, threads, *, required):
    """A ConvTwin for this net, or None (the readable loop); with required (path="kernel"), a ValueError
    saying why instead of None. An extension that was not built is reported once, by a warning."""
    from . import chosen

    return chosen(sys.modules[__name__], why_not(net), _conv, "convolution", net, required,
                  lambda: ConvTwin(net, batch_size))


class ConvTwin:
    """Runs train()'s epochs on a twin of the net: its Reshape, Conv2d, MaxPool2d and Flatten swapped for
    the channels-last twins below, its other layers, its loss and its weights the net's own."""

    name = "kernel"

    def __init__(self, net, batch_size):
        twins = {Reshape: _Image, Conv2d: _Conv, MaxPool2d: _Pool, Flatten: _Rows}
        layers = []
        for layer in net.layers:
            if type(layer) is MaxPool2d and layers and type(layers[-1]) is ReLU:
                layers[-1] = _Pool(layer, relu=True)  # the ReLU before it, done in the same loop
            else:
                layers.append(twins[type(layer)](layer) if type(layer) in twins else layer)
        self.twin = Sequential(layers, net.loss, net.lr)
        self.batch_size = batch_size

    def epoch(self, X, y, order, optimizer, state, on_step, epoch):
        return run_epoch(self.twin, X, y, order, self.batch_size, optimizer, state, on_step, epoch)

    def score(self, X, y):
        return self.twin.score(X, y)


class _Image:
    """Reshape's twin: flat rows (B, C*H*W) to images, channels-last (B, H, W, C). No bp_input: the first Conv2d
    comes after it, and backprop stops at the first layer with weights."""

    def __init__(self, layer):
        self.layer, self.in_features = layer, layer.in_features

    def __call__(self, X):  # (B, C*H*W) -> (B, H, W, C)
        return np.ascontiguousarray(self.layer(X).transpose(0, 2, 3, 1))  # the readable reshape, then channels last


class _Rows:
    """Flatten's twin: (B, H, W, C) to the rows Flatten gives, (B, C*H*W) in (channel, row, column) order."""

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, X):  # (B, H, W, C) -> (B, C*H*W)
        self.in_shape = X.shape  # kept for bp_input
        return self.layer(np.ascontiguousarray(X.transpose(0, 3, 1, 2)))

    def bp_input(self, grad):  # (B, C*H*W) -> (B, H, W, C)
        B, H, W, C = self.in_shape
        return np.ascontiguousarray(grad.reshape(B, C, H, W).transpose(0, 2, 3, 1))


class _Conv:
    """Conv2d's twin on (B, H, W, C) images: the layer's own W, _conv's direct loops."""

    def __init__(self, layer):
        self.layer = layer
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels

    @property
    def W(self):  # (C*k*k + 1, O): the layer's array, updated in place by the optimizer
        return self.layer.W

    def _patch_order(self, W):  # (C*k*k + 1, O) -> (k*k*C + 1, O)
        """W's rows in the order of a channels-last patch, (kernel row, kernel column, channel), as _conv
        takes them (the readable layer's are (channel, kernel row, kernel column)); the bias row last."""
        k, C, O = self.layer.kernel_size, self.in_channels, self.out_channels
        return np.concatenate([W[:-1, :].reshape(C, k, k, O).transpose(1, 2, 0, 3).reshape(k * k * C, O), W[-1:, :]])

    def __call__(self, X):  # (B, H, W, C) -> (B, Ho, Wo, O)
        k, s, p = self.layer.kernel_size, self.layer.stride, self.layer.padding
        _check_fits(self.layer, X.transpose(0, 3, 1, 2), k, p)  # the readable layer's check, on X seen as (B, C, H, W)
        B, H, W, C = X.shape
        self.X = np.zeros((B, H + 2 * p, W + 2 * p, C), np.float32)  # kept for bp_param: X in a frame of zeros
        self.X[:, p:p + H, p:p + W, :] = X
        out = np.empty((B, out_size(H, k, s, p), out_size(W, k, s, p), self.out_channels), np.float32)
        _conv.forward(self.X, B, H + 2 * p, W + 2 * p, C, self._patch_order(self.W), self.out_channels, k, s, out)
        return out

    def bp_param(self, grad):  # (B, Ho, Wo, O) -> (C*k*k + 1, O)
        B, Hp, Wp, C = self.X.shape
        k, O = self.layer.kernel_size, self.out_channels
        dW = np.empty_like(self.W)  # (k*k*C + 1, O): rows in patch order
        _conv.weight_grad(self.X, B, Hp, Wp, C, np.ascontiguousarray(grad), O, k, self.layer.stride, dW)
        dW[:-1, :] = dW[:-1, :].reshape(k, k, C, O).transpose(2, 0, 1, 3).reshape(C * k * k, O)  # rows (c, di, dj)
        return dW

    def bp_input(self, grad):  # (B, Ho, Wo, O) -> (B, H, W, C)
        """The input gradient is itself a convolution: of the gradient spread out by the stride (s-1 zeros
        between its pixels) and padded by k-1 (the "full" correlation: every output that read an input pixel
        reaches it), with the kernel flipped and its channels swapped; cropped by the forward's padding p."""
        k, s, p = self.layer.kernel_size, self.layer.stride, self.layer.padding
        B, Ho, Wo, O = grad.shape
        B, Hp, Wp, C = self.X.shape  # the padded input's
        full = np.zeros((B, Hp + k - 1, Wp + k - 1, O), np.float32)  # (B, Hp+k-1, Wp+k-1, O)
        full[:, k - 1:k - 1 + s * (Ho - 1) + 1:s, k - 1:k - 1 + s * (Wo - 1) + 1:s, :] = grad  # output (i, j) at
        # (k-1 + i*s, k-1 + j*s)
        H, W = Hp - 2 * p, Wp - 2 * p
        spread = np.ascontiguousarray(full[:, p:p + H + k - 1, p:p + W + k - 1, :])  # (B, H+k-1, W+k-1, O): what
        # the input's own pixels (not its padding) read
        flipped = self.W[:-1, :].reshape(C, k, k, O)[:, ::-1, ::-1, :]  # [c, k-1-di, k-1-dj, o]
        Wt = np.zeros((k * k * O + 1, C), np.float32)  # rows (di, dj, o) in patch order, then a bias row of zeros
        Wt[:-1, :] = flipped.transpose(1, 2, 3, 0).reshape(k * k * O, C)
        dX = np.empty((B, H, W, C), np.float32)
        _conv.forward(spread, B, H + k - 1, W + k - 1, O, Wt, C, k, 1, dX)
        return dX


class _Pool:
    """MaxPool2d's twin on (B, H, W, C) images: the same windows, the same ties (the first max). With relu, also
    the ReLU before it: max(relu(x)) = relu(max(x)), and a window whose max is not above 0 passes no gradient,
    as the ReLU's mask would stop it."""

    def __init__(self, layer, relu=False):
        self.layer, self.relu = layer, relu

    def __call__(self, X):  # (B, H, W, C) -> (B, Ho, Wo, C)
        k, s = self.layer.kernel_size, self.layer.stride
        _check_fits(self.layer, X.transpose(0, 3, 1, 2), k, 0)  # the readable layer's check, on X seen as (B, C, H, W)
        X = np.ascontiguousarray(X)
        B, H, W, C = self.in_shape = X.shape  # kept for bp_input
        out = np.empty((B, out_size(H, k, s, 0), out_size(W, k, s, 0), C), np.float32)
        self.argmax = np.empty(out.shape, np.int32)  # kept for bp_input: which element of each window is its max (-1: none)
        _conv.pool_forward(X, B, H, W, C, k, s, self.relu, out, self.argmax)
        return out

    def bp_input(self, grad):  # (B, Ho, Wo, C) -> (B, H, W, C)
        dX = np.zeros(self.in_shape, np.float32)
        _conv.pool_backward(np.ascontiguousarray(grad), self.argmax, *self.in_shape,
                            self.layer.kernel_size, self.layer.stride, dX)
        return dX
