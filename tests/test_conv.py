"""The convolution chapter (core/conv.py): im2col and col2im, the layers on images, a CNN in a net.

The registry (check/references.py) already puts Conv2d, MaxPool2d, Flatten and Reshape through every
tier of tests/test_layers.py (shapes, finite differences, PyTorch) on Hypothesis-drawn kernels of 1-5,
strides 1-3, paddings 0-2 and odd sizes. Here: the bookkeeping itself, a small convolution worked by
hand, broken variants the harness must catch, and a CNN trained step by step against PyTorch.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bareprop as bp
from bareprop import Conv2d, Flatten, MaxPool2d, Reshape, col2im, gradcheck, im2col, torch_check
from bareprop.core.conv import out_size


# --- im2col and col2im -------------------------------------------------------------------------

def test_im2col_rows_are_the_patches_in_channel_row_column_order():
    X = np.arange(2 * 4 * 4, dtype=np.float64).reshape(1, 2, 4, 4)  # channel 0: 0..15, channel 1: 16..31
    cols = im2col(X, k=2, stride=2)  # four 2x2 patches, (N, F) = (4, 2*2*2)
    assert cols.tolist() == [
        [0, 1, 4, 5, 16, 17, 20, 21],  # top left: channel 0's 2x2, then channel 1's
        [2, 3, 6, 7, 18, 19, 22, 23],  # top right
        [8, 9, 12, 13, 24, 25, 28, 29],  # bottom left
        [10, 11, 14, 15, 26, 27, 30, 31],  # bottom right
    ]
    padded = im2col(X[:, :1, :2, :2], k=2, stride=1, padding=1)  # the 2x2 [[0, 1], [4, 5]] in a frame of zeros
    assert padded.shape == (9, 4)
    assert padded[0].tolist() == [0, 0, 0, 0]  # top left: all padding but the image's first pixel at its corner
    assert padded[4].tolist() == [0, 1, 4, 5]  # the centre patch is the image itself
    assert padded[8].tolist() == [5, 0, 0, 0]  # bottom right: the last pixel, then padding


def test_im2col_and_col2im_count_how_many_patches_hold_each_pixel():
    ones = np.ones((1, 1, 4, 4))
    counts = col2im(np.ones_like(im2col(ones, 3, 1)), ones.shape, 3, 1)  # stride 1: the windows overlap
    assert counts[0, 0].tolist() == [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    ones = np.ones((1, 1, 5, 5))
    apart = col2im(np.ones_like(im2col(ones, 2, 3)), ones.shape, 2, 3)  # stride 3 > k: some pixels in none
    assert apart[0, 0].tolist() == [[1, 1, 0, 1, 1], [1, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 1, 1], [1, 1, 0, 1, 1]]


geometry = st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(0, 2)).flatmap(  # k, stride, padding
    lambda ksp: st.tuples(st.just(ksp), st.integers(max(1, ksp[0] - 2 * ksp[2]), 9),
                          st.integers(max(1, ksp[0] - 2 * ksp[2]), 9)))


@settings(max_examples=60, deadline=None)
@given(geometry=geometry, batch=st.integers(1, 3), channels=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_col2im_is_the_adjoint_of_im2col(geometry, batch, channels, seed):
    """<im2col(X), Y> == <X, col2im(Y)> for every X and Y: col2im is exactly the transpose of the linear map
    im2col, which is what makes Conv2d.bp_input the gradient of its forward."""
    (k, stride, padding), H, W = geometry
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, channels, H, W))
    cols = im2col(X, k, stride, padding)
    assert cols.shape == (batch * out_size(H, k, stride, padding) * out_size(W, k, stride, padding), channels * k * k)
    Y = rng.normal(size=cols.shape)
    back = col2im(Y, X.shape, k, stride, padding)
    assert back.shape == X.shape
    np.testing.assert_allclose(np.vdot(cols, Y), np.vdot(X, back), rtol=1e-12, atol=1e-12)


# --- a small convolution, worked by hand ---------------------------------------------------------

def test_a_small_convolution_worked_by_hand():
    """One channel, a 3x3 image, one 2x2 filter, stride 1, no padding:

        X = [[1, 2, 0],      filter [[1, 0],     bias 1
             [0, 1, 3],              [2, -1]]
             [4, 0, 1]]

    im2col makes the four 2x2 patches rows [x00, x01, x10, x11] and appends a 1:
        top left [1, 2, 0, 1, 1], top right [2, 0, 1, 3, 1], bottom left [0, 1, 4, 0, 1], bottom right [1, 3, 0, 1, 1]
    W is the filter as a column, (k*k + 1, 1) = [1, 0, 2, -1, 1]. out = patches @ W:
        1*1 + 2*0 + 0*2 + 1*(-1) + 1 = 1      2 + 0 + 2 - 3 + 1 = 2
        0 + 0 + 8 - 0 + 1 = 9                 1 + 0 + 0 - 1 + 1 = 1
    With the upstream gradient G = [[1, 0], [0, 2]] (one number per output pixel):
        dW = patches.T @ G: the top-left patch once plus the bottom-right patch twice
           = [1, 2, 0, 1, 1] + 2 [1, 3, 0, 1, 1] = [3, 8, 0, 3, 3]   (the bias row: 1 + 2 = 3, the sum of G)
        dX: each output pixel's gradient times the filter, added back where its patch came from:
            the top-left patch gets 1 * [[1, 0], [2, -1]], the bottom-right 2 * [[1, 0], [2, -1]]:
            [[1, 0, 0],
             [2, -1 + 2, 0],
             [0, 4, -2]]      (pixel (1, 1) is in both patches: -1 from one, 2 from the other)
    """
    layer = Conv2d(1, 1, 2, rng=np.random.default_rng(0), dtype=np.float64)
    layer.W = np.array([[1.0], [0.0], [2.0], [-1.0], [1.0]])  # (k*k + 1, O): the filter row by row, then the bias
    X = np.array([[[[1, 2, 0], [0, 1, 3], [4, 0, 1]]]], dtype=np.float64)  # (1, 1, 3, 3)
    out = layer(X)
    assert out.tolist() == [[[[1, 2], [9, 1]]]]
    G = np.array([[[[1.0, 0.0], [0.0, 2.0]]]])  # (1, 1, 2, 2)
    assert layer.bp_param(G).ravel().tolist() == [3, 8, 0, 3, 3]
    assert layer.bp_input(G)[0, 0].tolist() == [[1, 0, 0], [2, 1, 0], [0, 4, -2]]


# --- broken variants: the harness must catch each -------------------------------------------------

class FlippedKernelConv2d(Conv2d):
    def bp_input(self, grad):  # bug: the filter flipped (a true convolution's kernel), as in a textbook slip
        k, C, O = self.kernel_size, self.in_channels, self.out_channels
        flipped = self.W[:-1].reshape(C, k, k, O)[:, ::-1, ::-1].reshape(C * k * k, O)  # (F, O)
        dcols = self._rows(grad) @ flipped.T  # (N, F)
        return col2im(dcols, self.in_shape, k, self.stride, self.padding)


class BiasRowDroppedConv2d(Conv2d):
    def bp_param(self, grad):  # bug: the bias row dropped and padded back as zeros, so the shape is right
        dW = self.X.T @ self._rows(grad)  # (F+1, O)
        dW[-1] = 0
        return dW


def overwriting_col2im(cols, shape, k, stride, padding):  # (N, F) -> (B, C, H, W), wrongly
    B, C, H, W = shape
    Ho, Wo = out_size(H, k, stride, padding), out_size(W, k, stride, padding)
    patches = cols.reshape(B, Ho, Wo, C, k, k)
    Xp = np.zeros((B, C, H + 2 * padding, W + 2 * padding))
    for di in range(k):
        for dj in range(k):  # bug: = where patches overlap must add
            Xp[:, :, di:di + stride * Ho:stride, dj:dj + stride * Wo:stride] = patches[:, :, :, :, di, dj].transpose(0, 3, 1, 2)
    return Xp[:, :, padding:padding + H, padding:padding + W]


class OverwritingConv2d(Conv2d):
    def bp_input(self, grad):  # bug: col2im that overwrites instead of accumulating
        dcols = self._rows(grad) @ self.W[:-1].T
        return overwriting_col2im(dcols, self.in_shape, self.kernel_size, self.stride, self.padding)


class EveryElementMaxPool2d(MaxPool2d):
    def bp_input(self, grad):  # bug: each window's gradient to all of its elements, not only its max
        B, C, H, W = self.in_shape
        dwindows = np.repeat(grad.reshape(-1, 1), self.kernel_size**2, axis=1)
        return col2im(dwindows, (B * C, 1, H, W), self.kernel_size, self.stride).reshape(B, C, H, W)


@pytest.mark.torch
@pytest.mark.parametrize("broken, shape, wrong", [
    (FlippedKernelConv2d(2, 3, 3, padding=1, rng=np.random.default_rng(1)), (2, 2, 5, 6), ["dX"]),
    (BiasRowDroppedConv2d(2, 3, 3, stride=2, rng=np.random.default_rng(2)), (2, 2, 7, 5), ["dW"]),
    (OverwritingConv2d(1, 2, 3, rng=np.random.default_rng(3)), (2, 1, 6, 6), ["dX"]),
    (EveryElementMaxPool2d(2), (2, 3, 4, 6), ["dX"]),
], ids=["flipped kernel", "bias row dropped", "col2im overwrites", "max pool to every element"])
def test_the_harness_catches_each_broken_layer_on_images(broken, shape, wrong):
    for result in (gradcheck(broken, shape, rng=np.random.default_rng(7)),
                   torch_check(broken, shape, rng=np.random.default_rng(7))):
        assert [c.tensor for c in result.failures] == wrong, result.message
        assert result.message.startswith(repr(broken))
    correct = type(broken).__mro__[1]  # the class it breaks, with the same settings
    fixed = copy.deepcopy(broken)
    fixed.__class__ = correct
    assert gradcheck(fixed, shape, rng=np.random.default_rng(7)).ok


# --- max pooling's routing ------------------------------------------------------------------------

@pytest.mark.torch
def test_max_pooling_sends_a_tied_windows_gradient_to_its_first_max_as_pytorch_does():
    import torch
    import torch.nn.functional as F

    X = np.array([[[[3, 3, 1, 2], [0, 3, 2, 2], [5, 1, 4, 4], [5, 0, 4, 4]]]], dtype=np.float64)  # ties in each window
    pool = MaxPool2d(2)
    assert pool(X).tolist() == [[[[3, 2], [5, 4]]]]
    G = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    dX = pool.bp_input(G)
    assert dX[0, 0].tolist() == [[1, 0, 0, 2], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]  # the first in row-major order
    Xt = torch.tensor(X, requires_grad=True)
    (F.max_pool2d(Xt, 2) * torch.tensor(G)).sum().backward()
    np.testing.assert_array_equal(dX, Xt.grad.numpy())


def test_layers_on_images_refuse_inputs_of_the_wrong_shape_naming_themselves():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, 3, stride=1, padding=0\): expected input of shape \(B, 3, H, W\), got \(2, 1, 5, 5\)"):
        Conv2d(3, 4, 3, rng=rng)(np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"a 5x5 window does not fit in an input of shape \(1, 1, 3, 3\)$"):
        Conv2d(1, 1, 5, rng=rng)(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"MaxPool2d\(2, stride=2\): expected input of shape \(B, C, H, W\)"):
        MaxPool2d(2)(np.zeros((4, 9), np.float32))
    with pytest.raises(ValueError, match=r"Reshape\(\(1, 28, 28\)\): expected input of shape \(B, 784\), got \(2, 783\)"):
        Reshape((1, 28, 28))(np.zeros((2, 783), np.float32))
    with pytest.raises(ValueError, match=r"Conv2d: channels, kernel_size and stride must be positive"):
        Conv2d(1, 1, 0, rng=rng)
    with pytest.raises(ValueError, match=r"Reshape: shape must be three positive sizes"):
        Reshape((28, 28))


# --- a CNN in a net -------------------------------------------------------------------------------

def small_cnn(rng, dtype=np.float32):
    """784 -> (1, 28, 28) -> conv 4 5x5 -> ReLU -> pool 2 -> conv 6 3x3 stride 2 -> ReLU -> 6*5*5 -> 10."""
    return bp.Sequential([
        Reshape((1, 28, 28)),
        Conv2d(1, 4, 5, rng=rng, dtype=dtype), bp.ReLU(), MaxPool2d(2),  # (B, 4, 12, 12)
        Conv2d(4, 6, 3, stride=2, rng=rng, dtype=dtype), bp.ReLU(),  # (B, 6, 5, 5)
        Flatten(), bp.Linear(150, 10, rng=rng, dtype=dtype),
    ], lr=0.001)


def test_a_cnn_takes_flat_rows_and_trains_on_the_readable_path(mnist_subset, tmp_path):
    X, y = mnist_subset
    rng = np.random.default_rng(0)
    net = small_cnn(rng)
    assert net.sizes == (784, 10) and net.num_classes == 10
    with pytest.raises(ValueError, match=r"Conv2d\(1, 4, 5.* has output channels that are not a multiple of 8"):
        bp.train(net, X[:64], y[:64], epochs=1, rng=rng, path="kernel")  # the compiled twin's rule (fast/conv.py)
    history = bp.train(net, X[:1000], y[:1000], epochs=3, batch_size=32, rng=rng)
    assert history.path == "readable"
    assert history.train_loss[-1] < history.train_loss[0] and history.train_acc[-1] > 0.7
    bp.save(net, tmp_path / "cnn.npz")
    again = bp.load(tmp_path / "cnn.npz")
    assert [repr(layer) for layer in again.layers] == [repr(layer) for layer in net.layers]
    np.testing.assert_array_equal(again.predict_proba(X[:50]), net.predict_proba(X[:50]))


def test_a_sequential_of_mismatched_convolutions_or_no_rows_in_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"Conv2d\(1, 4, 3.*cannot feed Conv2d\(5, 2, 3.*: 4 != 5"):
        bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 4, 3, rng=rng), Conv2d(5, 2, 3, rng=rng), Flatten(),
                       bp.Linear(32, 2, rng=rng)])
    with pytest.raises(ValueError, match="needs a Linear or a Reshape before any other layer with weights"):
        bp.Sequential([Conv2d(1, 4, 3, rng=rng), Flatten(), bp.Linear(36, 2, rng=rng)])
    with pytest.raises(ValueError, match="and a Linear as the last"):
        bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 4, 3, rng=rng)])


@pytest.mark.torch
def test_one_epoch_of_a_cnn_in_float64_matches_pytorch_step_by_step(mnist_subset):
    """The small CNN on 3,000 MNIST images, one epoch of batches of 32 in float64, against the same net
    written the ordinary PyTorch way (nn.Conv2d with bareprop's weights, autograd, optim.SGD, the
    batch-summed cross-entropy), batch for batch in the same order: every loss to 1e-9, the weights at the
    end to 1e-8."""
    import torch
    import torch.nn.functional as F

    from bareprop.core.net import as_inputs
    from bareprop.core.train import batches

    X, y = mnist_subset
    X = as_inputs(X, np.dtype(np.float64))
    rng = np.random.default_rng(5)
    net = small_cnn(rng, np.float64)
    convs = [layer for layer in net.layers if isinstance(layer, Conv2d)]
    model = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 28, 28)), torch.nn.Conv2d(1, 4, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(150, 10)).double()
    torch_layers = [model[1], model[4], model[7]]
    with torch.no_grad():
        for layer, ours in zip(torch_layers, convs + [net.layers[-1]]):
            shape = layer.weight.shape  # (O, C, k, k) or (O, I)
            layer.weight.copy_(torch.from_numpy(ours.W[:-1].T.reshape(shape)))  # W's rows are (c, di, dj)
            layer.bias.copy_(torch.from_numpy(ours.W[-1]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    ours, theirs = [], []
    for idx in batches(rng.permutation(len(X)), 32):
        _, _, loss = net.evaluate(X[idx], y[idx])
        net.gradient_descent()
        ours.append(float(loss))
        optimizer.zero_grad()
        total = F.cross_entropy(model(Xt[idx]), yt[idx], reduction="sum")  # summed, as bareprop's gradient is
        total.backward()
        optimizer.step()
        theirs.append(total.item() / len(idx))
    assert len(ours) == -(-len(X) // 32)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
    assert np.mean(theirs[-10:]) < np.mean(theirs[:10]) / 2  # it learned: not two equally broken nets
    for layer, ours_layer in zip(torch_layers, convs + [net.layers[-1]]):
        W = torch.cat([layer.weight.reshape(len(layer.weight), -1).T, layer.bias[None]]).detach().numpy()
        np.testing.assert_allclose(ours_layer.W, W, rtol=0, atol=1e-8)


# --- what mutation testing found unchecked (docs/testing.md, "Mutation testing") ----------------------

def test_each_layer_on_images_records_its_settings_by_name():
    assert Conv2d(1, 2, 3, stride=2, padding=1, rng=np.random.default_rng(0)).spec() == {
        "in_channels": 1, "out_channels": 2, "kernel_size": 3, "stride": 2, "padding": 1}
    assert MaxPool2d(3, stride=2).spec() == {"kernel_size": 3, "stride": 2} and MaxPool2d(2).spec()["stride"] == 2
    assert Reshape((1, 4, 5)).spec() == {"shape": [1, 4, 5]} and Flatten().spec() == {}


def test_im2col_and_col2im_take_stride_1_and_no_padding_by_default():
    X = np.arange(2 * 3 * 5 * 4, dtype=np.float64).reshape(2, 3, 5, 4)
    np.testing.assert_array_equal(im2col(X, 2), im2col(X, 2, 1, 0))
    cols = im2col(X, 3)
    np.testing.assert_array_equal(col2im(cols, X.shape, 3), col2im(cols, X.shape, 3, 1, 0))


@pytest.mark.parametrize("layer, shape, message", [
    (Conv2d(1, 1, 5, rng=np.random.default_rng(0)), (1, 1, 3, 9), r"^Conv2d\(1, 1, 5, stride=1, padding=0\): a 5x5 window "
     r"does not fit in an input of shape \(1, 1, 3, 9\)$"),
    (Conv2d(1, 1, 5, rng=np.random.default_rng(0)), (1, 1, 9, 3), r"does not fit in an input of shape \(1, 1, 9, 3\)$"),
    (Conv2d(1, 1, 6, padding=1, rng=np.random.default_rng(0)), (1, 1, 3, 9),
     r"a 6x6 window does not fit in an input of shape \(1, 1, 3, 9\) padded by 1$"),
    (Conv2d(1, 1, 6, padding=1, rng=np.random.default_rng(0)), (1, 1, 9, 3), r"\(1, 1, 9, 3\) padded by 1$"),
    (MaxPool2d(3), (1, 1, 2, 5), r"^MaxPool2d\(3, stride=3\): a 3x3 window does not fit in an input of shape \(1, 1, 2, 5\)$"),
    (Flatten(), (4, 9), r"^Flatten\(\): expected input of shape \(B, C, H, W\), got \(4, 9\)$"),
], ids=["too short", "too narrow", "too short padded", "too narrow padded", "pool too short", "flatten rows"])
def test_a_window_that_does_not_fit_either_side_is_refused_naming_the_layer(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: Conv2d(0, 1, 3, rng=np.random.default_rng(0)), r"got 0, 1, 3, 1, 0$"),
    (lambda: Conv2d(1, 0, 3, rng=np.random.default_rng(0)), r"got 1, 0, 3, 1, 0$"),
    (lambda: Conv2d(1, 1, 3, stride=0, rng=np.random.default_rng(0)), r"got 1, 1, 3, 0, 0$"),
    (lambda: Conv2d(1, 1, 3, padding=-1, rng=np.random.default_rng(0)), r"got 1, 1, 3, 1, -1$"),
    (lambda: MaxPool2d(2, stride=0), r"^MaxPool2d: kernel_size and stride must be positive, got 2, 0$"),
    (lambda: MaxPool2d(0, stride=2), r"^MaxPool2d: kernel_size and stride must be positive, got 0, 2$"),
], ids=["no input channel", "no filter", "stride 0", "negative padding", "pool stride 0", "pool window 0"])
def test_each_setting_of_a_layer_on_images_is_refused_at_its_edge(make, message):
    with pytest.raises(ValueError, match=message):
        make()
