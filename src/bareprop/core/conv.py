"""Convolutions, the post's way: a convolution is the post's Linear, applied to every patch.

Cut the input into patches (im2col), append the ones column, multiply by W: that is Conv2d's forward.
bp_param is the post's `X.T @ grad` with the patches as X; bp_input is the post's `grad @ W[:-1].T`,
one row per patch, added back onto the image where each patch came from (col2im, the adjoint of
im2col). Nothing is new but the bookkeeping; docs/derivations.md works it through on a 4x4 image.

Shape glossary, as in layers.py (B batch, O output width: here the output channels), and:
    C       input channels
    H, W    input height and width (`W` alone, as everywhere, is the weight matrix)
    k       the kernel's (and a pooling window's) side: square windows
    s, p    stride and zero padding
    Ho, Wo  output height and width: Ho = (H + 2p - k) // s + 1, Wo alike
    N       B * Ho * Wo: the number of patches, one row each
    F       C * k * k: the numbers in one patch, ordered (channel, kernel row, kernel column)

Every layer here has __call__, bp_input (and Conv2d bp_param) and spec(), like those of layers.py,
and is registered in its LAYERS.
"""

import math

import numpy as np

from .arrays import namespace
from .init import xavier_uniform


def out_size(size, k, stride, padding):
    """The output height (or width) of a window of side k slid over `size` numbers padded by `padding`."""
    return (size + 2 * padding - k) // stride + 1


def pad(X, padding):  # (B, C, H, W) -> (B, C, H+2p, W+2p)
    """X in a frame of zeros `padding` pixels wide (X itself when padding is 0)."""
    if padding == 0:
        return X
    xp = namespace(X)  # X's array library (bareprop.core.arrays)
    B, C, H, Wd = X.shape
    Xp = xp.zeros((B, C, H + 2 * padding, Wd + 2 * padding), dtype=X.dtype, device=X.device)  # (B, C, H+2p, W+2p)
    Xp[:, :, padding:padding + H, padding:padding + Wd] = X
    return Xp


def im2col(X, k, stride=1, padding=0, out=None):  # (B, C, H, W) -> (N, F)
    """Every k x k patch of X (zero-padded by `padding`, taken every `stride` pixels) as one row.

    Row b*Ho*Wo + i*Wo + j holds the patch whose top-left corner is (i*s, j*s) in example b's padded
    image, its numbers in (channel, kernel row, kernel column) order: the order of W's rows in Conv2d.
    With `out`, a (B, Ho, Wo, F') array with F' >= F, the rows are written into its first F columns
    instead, and `out` is returned: Conv2d's ones column then needs no second copy.
    """
    xp = namespace(X)
    B, C, H, Wd = X.shape
    Ho, Wo = out_size(H, k, stride, padding), out_size(Wd, k, stride, padding)
    F = C * k * k
    Xp = pad(X, padding)  # (B, C, H+2p, W+2p)
    rows = xp.empty((B, Ho, Wo, F), dtype=X.dtype, device=X.device) if out is None else out  # (B, Ho, Wo, F')
    # the first F columns seen as (B, Ho, Wo, C, k, k): splitting F keeps a view (copy=False makes that an
    # error, never a silent copy, on a library that could not)
    patches = xp.reshape(rows[..., :F], (B, Ho, Wo, C, k, k), copy=False)  # [b, i, j, c, di, dj]
    for c in range(C):
        # number (c, di, dj) of the patch at (i, j) is pixel (i*s + di, j*s + dj) of channel c: for one
        # offset (di, dj), that number of every patch is one strided slice of the channel (rows di, di + s,
        # ..., di + s*(Ho - 1), and columns alike)
        offsets = xp.stack([Xp[:, c, di:di + stride * (Ho - 1) + 1:stride, dj:dj + stride * (Wo - 1) + 1:stride]
                            for di in range(k) for dj in range(k)])  # (k*k, B, Ho, Wo)
        offsets = xp.reshape(offsets, (k, k, B, Ho, Wo))  # [di, dj, b, i, j]
        patches[:, :, :, c, :, :] = xp.permute_dims(offsets, (2, 3, 4, 0, 1))  # (B, Ho, Wo, k, k)
    return xp.reshape(rows, (B * Ho * Wo, F)) if out is None else out  # (N, F): one patch a row; or the buffer


def col2im(cols, shape, k, stride=1, padding=0):  # (N, F) -> (B, C, H, W)
    """The adjoint of im2col: each row's numbers added back where im2col took them from.

    Where patches overlap (stride < k) a pixel is in several rows, so it receives the sum of their
    numbers; the padding's share is dropped. One slice-add per kernel offset (di, dj), none per pixel.
    """
    xp = namespace(cols)
    B, C, H, Wd = shape
    Ho, Wo = out_size(H, k, stride, padding), out_size(Wd, k, stride, padding)
    # column f = (c, di, dj) of every row: each column is one number of every patch. A view where cols
    # is column-major (as Conv2d.bp_input makes it, so that each column is read in order), else a copy.
    columns = xp.reshape(cols.T, (C, k, k, B, Ho, Wo))  # (C, k, k, B, Ho, Wo)
    Xp = xp.zeros((B, C, H + 2 * padding, Wd + 2 * padding), dtype=cols.dtype, device=cols.device)  # (B, C, H+2p, W+2p)
    for di in range(k):
        for dj in range(k):
            # every patch's number at offset (di, dj) goes to pixel (i*s + di, j*s + dj): distinct
            # pixels for distinct (i, j), so one += per offset adds them all
            Xp[:, :, di:di + stride * (Ho - 1) + 1:stride, dj:dj + stride * (Wo - 1) + 1:stride] += \
                xp.permute_dims(columns[:, di, dj, ...], (1, 0, 2, 3))  # (B, C, Ho, Wo)
    return Xp[:, :, padding:padding + H, padding:padding + Wd]  # (B, C, H, W)


def _check_image(layer, X, channels=None):
    """Raise a ValueError naming the layer and the shape unless X is (B, C, H, W) (with C = channels)."""
    if X.ndim != 4 or (channels is not None and X.shape[1] != channels):
        want = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        raise ValueError(f"{layer}: expected input of shape {want}, got {X.shape}")


def _check_fits(layer, X, k, padding):
    if X.shape[2] + 2 * padding < k or X.shape[3] + 2 * padding < k:
        raise ValueError(f"{layer}: a {k}x{k} window does not fit in an input of shape {X.shape}"
                         + (f" padded by {padding}" if padding else ""))


class Conv2d:
    """2-D convolution (cross-correlation, as in PyTorch), out = [patches, 1] @ W for every patch.

    W is (C*k*k + 1, O): one column per output channel (a filter), its rows in (channel, kernel row,
    kernel column) order with the bias as the last row: the post's Linear with a patch as its input.
    PyTorch's weight (O, C, k, k) is W[:-1].T reshaped, its bias W[-1]. `init` is an initialiser of
    bareprop.init, called as for a Linear of C*k*k inputs.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *, rng, dtype=np.float32,
                 init=xavier_uniform):
        if min(in_channels, out_channels, kernel_size, stride) < 1 or padding < 0:
            raise ValueError(f"Conv2d: channels, kernel_size and stride must be positive and padding at least 0, got "
                             f"{in_channels}, {out_channels}, {kernel_size}, {stride}, {padding}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.W = init(rng, in_channels * kernel_size**2 + 1, out_channels, dtype)  # (F+1, O)

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, {self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding})")

    def spec(self):
        return {"in_channels": int(self.in_channels), "out_channels": int(self.out_channels),
                "kernel_size": int(self.kernel_size), "stride": int(self.stride), "padding": int(self.padding)}

    def __call__(self, X):  # (B, C, H, W) -> (B, O, Ho, Wo)
        _check_image(self, X, self.in_channels)
        _check_fits(self, X, self.kernel_size, self.padding)
        B, _, H, Wd = X.shape
        Ho, Wo = out_size(H, self.kernel_size, self.stride, self.padding), out_size(Wd, self.kernel_size,
                                                                                    self.stride, self.padding)
        xp = namespace(X)  # X's array library (bareprop.core.arrays)
        self.in_shape = X.shape  # kept for bp_input
        F = self.W.shape[0] - 1
        patches = xp.empty((B, Ho, Wo, F + 1), dtype=X.dtype, device=X.device)  # (B, Ho, Wo, F+1): a row per patch and a 1
        im2col(X, self.kernel_size, self.stride, self.padding, out=patches)  # (B, Ho, Wo, F) of it: the patches
        patches[..., F] = 1  # the ones column: the post's [X, 1]
        self.X = xp.reshape(patches, (-1, F + 1))  # (N, F+1), kept for bp_param: the post's Linear input
        out = self.X @ self.W  # (N, F+1) @ (F+1, O) = (N, O): one row per patch
        return xp.permute_dims(xp.reshape(out, (B, Ho, Wo, self.out_channels)), (0, 3, 1, 2))  # (B, O, Ho, Wo)

    def _rows(self, grad):  # (B, O, Ho, Wo) -> (N, O)
        """The gradient as one row per patch, in im2col's (b, i, j) order."""
        xp = namespace(grad)
        return xp.reshape(xp.permute_dims(grad, (0, 2, 3, 1)), (-1, self.out_channels))  # (N, O)

    def bp_input(self, grad):  # (B, O, Ho, Wo) -> (B, C, H, W)
        dcols = (self.W[:-1, :] @ self._rows(grad).T).T  # ((F, O) @ (O, N)).T = (N, O) @ (O, F) = (N, F); the bias
        # row has no input. Computed as its transpose, so that col2im reads each column in order.
        return col2im(dcols, self.in_shape, self.kernel_size, self.stride, self.padding)  # (B, C, H, W)

    def bp_param(self, grad):  # (B, O, Ho, Wo) -> (F+1, O)
        dW = self.X.T @ self._rows(grad)  # (F+1, N) @ (N, O) = (F+1, O), summed over every patch of the batch
        return dW


class MaxPool2d:
    """Max pooling: each channel's k x k windows, taken every `stride` pixels (k by default), to their max.

    The gradient goes to the element that was the max, the rest of its window getting 0; on a tie, to
    the first of the tied elements in the window's row-major order (as np.argmax picks it, and PyTorch
    on the CPU). Windows that overlap (stride < k) add up their gradients at a shared pixel. The windows
    are handled element by element: element (di, dj) of every window is one strided slice of the image.
    """

    def __init__(self, kernel_size, stride=None):
        stride = kernel_size if stride is None else stride
        if kernel_size < 1 or stride < 1:
            raise ValueError(f"MaxPool2d: kernel_size and stride must be positive, got {kernel_size}, {stride}")
        self.kernel_size, self.stride = kernel_size, stride

    def __repr__(self):
        return f"MaxPool2d({self.kernel_size}, stride={self.stride})"

    def spec(self):
        return {"kernel_size": int(self.kernel_size), "stride": int(self.stride)}

    def _offsets(self, shape):
        """For each element (di, dj) of a window, row by row: the slice of the image that holds that
        element of every window (a strided view of (B, C, Ho, Wo))."""
        k, s = self.kernel_size, self.stride
        Ho, Wo = out_size(shape[2], k, s, 0), out_size(shape[3], k, s, 0)
        return [(slice(None), slice(None), slice(di, di + s * (Ho - 1) + 1, s), slice(dj, dj + s * (Wo - 1) + 1, s))
                for di in range(k) for dj in range(k)]

    def __call__(self, X):  # (B, C, H, W) -> (B, C, Ho, Wo)
        _check_image(self, X)
        _check_fits(self, X, self.kernel_size, 0)
        xp = namespace(X)
        self.in_shape = X.shape  # kept for bp_input
        windows = xp.stack([X[at] for at in self._offsets(X.shape)])  # (k*k, B, C, Ho, Wo): element d of each window
        self.argmax = xp.argmax(windows, axis=0)  # (B, C, Ho, Wo): which element is each window's max, kept for bp_input
        return xp.max(windows, axis=0)  # (B, C, Ho, Wo)

    def bp_input(self, grad):  # (B, C, Ho, Wo) -> (B, C, H, W)
        xp = namespace(grad)
        dX = xp.zeros(self.in_shape, dtype=grad.dtype, device=grad.device)  # (B, C, H, W): zero where no window's max is
        for d, at in enumerate(self._offsets(self.in_shape)):  # one add per element of a window, none per pixel
            dX[at] += xp.where(self.argmax == d, grad, 0)  # each window's gradient to its max; overlaps add up
        return dX


class Flatten:
    """(B, C, H, W) -> (B, C*H*W): images into the rows a Linear takes, in (channel, row, column) order."""

    def __repr__(self):
        return "Flatten()"

    def spec(self):
        return {}

    def __call__(self, X):  # (B, C, H, W) -> (B, C*H*W)
        _check_image(self, X)
        self.in_shape = X.shape  # kept for bp_input
        return namespace(X).reshape(X, (X.shape[0], -1))  # (B, C*H*W)

    def bp_input(self, grad):  # (B, C*H*W) -> (B, C, H, W)
        return namespace(grad).reshape(grad, self.in_shape)  # (B, C, H, W)


class Reshape:
    """(B, C*H*W) -> (B, C, H, W): flat rows (MNIST's 784 pixels) into images, so that the post's data
    feeds a convolutional net unchanged. `shape` is (C, H, W)."""

    def __init__(self, shape):
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Reshape: shape must be three positive sizes (C, H, W), got {shape}")
        self.shape = shape
        self.in_features = math.prod(shape)  # the width of the rows it takes, as a Linear's

    def __repr__(self):
        return f"Reshape({self.shape})"

    def spec(self):
        return {"shape": list(self.shape)}

    def __call__(self, X):  # (B, C*H*W) -> (B, C, H, W)
        if X.ndim != 2 or X.shape[1] != self.in_features:
            raise ValueError(f"{self}: expected input of shape (B, {self.in_features}), got {X.shape}")
        return namespace(X).reshape(X, (X.shape[0], *self.shape))  # (B, C, H, W)

    def bp_input(self, grad):  # (B, C, H, W) -> (B, C*H*W)
        return namespace(grad).reshape(grad, (grad.shape[0], -1))  # (B, C*H*W)
