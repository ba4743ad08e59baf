"""The compiled twin of a convolutional net (fast/conv.py, _conv.c) against the readable layers it stands for.

Each twin layer works on channels-last images (B, H, W, C); the readable ones on (B, C, H, W). Every check
moves the twin's arrays to the readable layout and compares: convolutions to float32 rounding (the sums run in
another order than BLAS's), max pooling exactly (it only picks and routes numbers).

CI builds the extension, so these tests fail if it is missing; BAREPROP_NO_KERNEL=1 skips them on a machine
where it cannot be built, as it skips tests/test_kernel.py.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bareprop as bp
from bareprop.core.conv import Conv2d, Flatten, MaxPool2d, Reshape
from bareprop.core.layers import ACTIVATIONS, Dropout, Linear, ReLU
from bareprop.fast import conv as fast_conv
from bareprop.fast.conv import ConvTwin, _Conv, _Pool, why_not

if fast_conv._conv is None:
    if os.environ.get("BAREPROP_NO_KERNEL") == "1":
        pytest.skip("the compiled convolution is not built (BAREPROP_NO_KERNEL=1)", allow_module_level=True)
    raise AssertionError("bareprop.fast._conv was not built: reinstall with a C compiler, or set BAREPROP_NO_KERNEL=1")
_conv = fast_conv._conv


def nhwc(A):  # (B, C, H, W) -> (B, H, W, C)
    return np.ascontiguousarray(A.transpose(0, 2, 3, 1))


def nchw(A):  # (B, H, W, C) -> (B, C, H, W)
    return A.transpose(0, 3, 1, 2)


def close(twin, readable):
    """Equal to float32 rounding: every number within 1e-5 of the largest one's size."""
    scale = max(1.0, float(np.abs(readable).max()))
    np.testing.assert_allclose(twin, readable, rtol=0, atol=1e-5 * scale)


conv_cases = st.fixed_dictionaries({
    "B": st.integers(1, 3), "C": st.sampled_from([1, 3, 8, 16]), "O": st.sampled_from([8, 16, 24, 32]),
    "k": st.integers(1, 5), "s": st.integers(1, 3), "p": st.integers(0, 2),
    "H": st.integers(5, 12), "W": st.integers(5, 12), "seed": st.integers(0, 2**16)})


@settings(max_examples=60, deadline=None)
@given(conv_cases)
def test_the_compiled_convolution_matches_conv2d(case):
    """Forward, bp_param and (for channels the twin takes: multiples of 8) bp_input, on random shapes, strides
    and paddings; 24 output channels mix the 16- and 8-wide loops."""
    B, C, O, k, s, p, H, W = (case[n] for n in "B C O k s p H W".split())
    if H + 2 * p < k or W + 2 * p < k:
        return
    rng = np.random.default_rng(case["seed"])
    layer = Conv2d(C, O, k, stride=s, padding=p, rng=rng)
    layer.W[-1] = rng.normal(size=O)  # a bias that is not zero
    X = rng.normal(size=(B, C, H, W)).astype(np.float32)
    twin = _Conv(layer)
    out = layer(X)
    close(nchw(twin(nhwc(X))), out)
    grad = rng.normal(size=out.shape).astype(np.float32)
    close(twin.bp_param(nhwc(grad)), layer.bp_param(grad))
    if C % 8 == 0:
        close(nchw(twin.bp_input(nhwc(grad))), layer.bp_input(grad))


def test_a_kernel_read_in_the_wrong_order_is_far_outside_the_tolerance():
    """The comparison above can fail: W's rows given to _conv in the readable layer's (channel, row, column)
    order, not the patch's (row, column, channel), give other numbers by far."""
    rng = np.random.default_rng(0)
    layer = Conv2d(8, 16, 3, padding=1, rng=rng)
    X = rng.normal(size=(2, 8, 6, 6)).astype(np.float32)
    out = np.empty((2, 6, 6, 16), np.float32)
    Xp = np.pad(nhwc(X), ((0, 0), (1, 1), (1, 1), (0, 0)))
    _conv.forward(Xp, 2, 8, 8, 8, layer.W, 16, 3, 1, out)
    assert np.abs(nchw(out) - layer(X)).max() > 0.1
    _conv.forward(Xp, 2, 8, 8, 8, _Conv(layer)._patch_order(layer.W), 16, 3, 1, out)
    close(nchw(out), layer(X))


pool_cases = st.fixed_dictionaries({
    "B": st.integers(1, 3), "C": st.integers(1, 10), "k": st.integers(1, 4), "s": st.integers(1, 4),
    "H": st.integers(4, 11), "W": st.integers(4, 11), "seed": st.integers(0, 2**16)})


@settings(max_examples=60, deadline=None)
@given(pool_cases)
def test_the_compiled_pooling_picks_and_routes_as_maxpool2d_ties_included(case):
    """Whole numbers from -2 to 2, so that most windows hold ties (and zeros, and windows of no positive
    number): the same max, the gradient routed to the same element (the first max of the window), with and
    without the ReLU before it done in the same loop. Whole-number gradients keep overlapping windows' sums exact."""
    B, C, k, s, H, W = (case[n] for n in "B C k s H W".split())
    if H < k or W < k:
        return
    rng = np.random.default_rng(case["seed"])
    X = rng.integers(-2, 3, size=(B, C, H, W)).astype(np.float32)
    pool, relu = MaxPool2d(k, s), ReLU()
    for fused in (False, True):
        twin = _Pool(pool, relu=fused)
        out = pool(relu(X)) if fused else pool(X)
        np.testing.assert_array_equal(nchw(twin(nhwc(X))), out)
        grad = rng.integers(1, 5, size=out.shape).astype(np.float32)
        dX = relu.bp_input(pool.bp_input(grad)) if fused else pool.bp_input(grad)
        np.testing.assert_array_equal(nchw(twin.bp_input(nhwc(grad))), dX)


def test_a_nan_in_a_window_comes_out_as_in_the_readable_pooling():
    X = np.zeros((1, 1, 4, 4), np.float32)
    X[0, 0, 0, 1], X[0, 0, 2, 2], X[0, 0, 3, 3] = np.nan, 5, np.nan  # NaN after a smaller number, and after a larger one
    pool = MaxPool2d(2)
    for fused in (False, True):
        out = nchw(_Pool(pool, relu=fused)(nhwc(X)))
        np.testing.assert_array_equal(np.isnan(out), np.isnan(pool(X)))
        assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 0, 1, 1])


def cnn(rng, dense=(Linear, 32), dtype=np.float32):
    """Two convolutions of 8 and 16 channels (the cnn preset's, smaller kernels), then dense layers."""
    layers = [Reshape((1, 28, 28)), Conv2d(1, 8, 5, padding=2, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
              Conv2d(8, 16, 3, stride=2, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2, 1),
              Flatten(), Linear(16 * 6 * 6, 32, rng=rng, dtype=dtype), ReLU()]
    if dense is Dropout:
        layers.append(Dropout(0.3, rng=rng))
    return bp.Sequential([*layers, Linear(32, 10, rng=rng, dtype=dtype)])


@pytest.mark.parametrize("optimizer, dense", [(None, Linear), (lambda: bp.Adam(1e-3), Dropout)])
def test_an_epoch_on_the_twin_equals_the_readable_epoch_to_rounding(mnist_subset, optimizer, dense):
    """One epoch of 1,000 MNIST images, batches of 64 (the last of 40): the same losses, accuracies, gradient
    norms and final weights on path="kernel" (the twin) and path="readable", with plain SGD, and with Adam and
    a Dropout (the twin runs the net's own Dropout, Adam and loss: the same random masks)."""
    X, y = mnist_subset[0][:1000], mnist_subset[1][:1000]
    runs = {}
    for path in ("kernel", "readable"):
        net = cnn(np.random.default_rng(1), dense)
        opt = optimizer() if optimizer else None
        history = bp.train(net, X, y, epochs=1, rng=np.random.default_rng(2), optimizer=opt, path=path,
                           X_test=X[:300], y_test=y[:300])
        runs[path] = history, net
    (fast, fast_net), (slow, slow_net) = runs["kernel"], runs["readable"]
    assert (fast.path, slow.path) == ("kernel", "readable")
    np.testing.assert_allclose(fast.train_loss, slow.train_loss, rtol=1e-5)
    np.testing.assert_allclose(fast.grad_norm[0], slow.grad_norm[0], rtol=1e-5)
    assert abs(fast.train_acc[0] - slow.train_acc[0]) <= 2 / 1000 and abs(fast.test_acc[0] - slow.test_acc[0]) <= 2 / 300
    np.testing.assert_allclose(fast.test_loss, slow.test_loss, rtol=1e-4)
    for a, b in zip(fast_net.params(), slow_net.params()):
        close(a, b) if optimizer is None else np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_runs_on_the_twin_as_on_the_readable_layers(mnist_subset, activation):
    """Each activation of core.layers.ACTIVATIONS between the convolutions: the twin takes it as it is (it must
    act number by number, whatever the layout), and two steps agree with the readable layers to rounding."""
    X, y = mnist_subset[0][:128], mnist_subset[1][:128]
    nets = []
    for path in ("kernel", "readable"):
        rng = np.random.default_rng(3)
        net = bp.Sequential([Reshape((1, 28, 28)), Conv2d(1, 8, 3, rng=rng), activation(), MaxPool2d(2),
                             Conv2d(8, 8, 3, rng=rng), activation(), Flatten(), Linear(8 * 11 * 11, 10, rng=rng)])
        assert bp.train(net, X, y, epochs=1, rng=np.random.default_rng(4), path=path).path == path
        nets.append(net)
    for a, b in zip(*(net.params() for net in nets)):
        close(a, b)


def test_the_twin_shares_the_nets_weights_and_layers():
    net = cnn(np.random.default_rng(0))
    net.lr = 0.05  # the post's sugar for plain SGD: the twin says the same
    twin = ConvTwin(net, 64).twin
    assert all(a is b for a, b in zip(twin.params(), net.params())) and twin.lr == net.lr
    assert twin.loss is net.loss and twin.layers[-1] is net.layers[-1]
    kinds = [type(layer).__name__ for layer in twin.layers]
    assert kinds == ["_Image", "_Conv", "_Pool", "_Conv", "_Pool", "_Rows", "Linear", "ReLU", "Linear"]
    assert [layer.relu for layer in twin.layers if isinstance(layer, _Pool)] == [True, True]  # each ReLU in its pool


LAYOUT = "its layers are not a Reshape, then Conv2d, MaxPool2d and activation layers, then a Flatten"


def read_only(net):
    net.layers[1].W.flags.writeable = False
    return net


@pytest.mark.parametrize("make, reason", [
    (lambda rng: cnn(rng, dtype=np.float64), "its weights are not float32 NumPy arrays"),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 6, 3, rng=rng), Flatten(), Linear(216, 3, rng=rng)]),
     "Conv2d(1, 6, 3, stride=1, padding=0) has output channels that are not a multiple of 8"),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 8, 3, rng=rng), Conv2d(8, 8, 3, rng=rng),
                                Conv2d(8, 8, 3, rng=rng), Flatten(), Linear(32, 3, rng=rng)]), ""),
    (lambda rng: bp.Sequential([Reshape((3, 4, 4)), Conv2d(3, 8, 3, rng=rng), Conv2d(8, 4, 1, rng=rng), Flatten(),
                                Linear(16, 3, rng=rng)]),
     "Conv2d(8, 4, 1, stride=1, padding=0) has output channels that are not a multiple of 8"),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 8, 3, rng=rng), Dropout(0.5, rng=rng), Flatten(),
                                Linear(288, 3, rng=rng)]), LAYOUT),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Dropout(0.5, rng=rng), Conv2d(1, 8, 3, rng=rng), Flatten(),
                                Linear(288, 3, rng=rng)]), LAYOUT),  # right after the Reshape
    (lambda rng: bp.Sequential([Linear(64, 64, rng=rng), Reshape((1, 8, 8)), Conv2d(1, 8, 3, rng=rng), Flatten(),
                                Linear(288, 3, rng=rng)]), LAYOUT),  # rows before the Reshape
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 8, 8, rng=rng), Linear(8, 3, rng=rng)]), LAYOUT),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 8, 3, rng=rng), Flatten(), MaxPool2d(1),
                                Linear(288, 3, rng=rng)]), "it has image layers after its Flatten"),
    (lambda rng: bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 8, 3, rng=rng), Flatten(), Linear(288, 8, rng=rng),
                                Reshape((8, 1, 1)), Flatten(), Linear(8, 3, rng=rng)]), "it has image layers after its Flatten"),
    (lambda rng: read_only(cnn(rng)), "its weights are not contiguous, writable arrays"),
])
def test_the_rule_says_why_and_auto_falls_back_to_the_readable_loop(make, reason):
    rng = np.random.default_rng(0)
    net = make(rng)
    X = rng.normal(size=(20, net.sizes[0])).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    assert why_not(net) == reason
    if not reason:  # a net the twin takes, of three convolutions: it trains there
        assert bp.train(net, X, y, epochs=1, batch_size=8, rng=rng).path == "kernel"
        return
    with pytest.raises(ValueError) as error:
        bp.train(net, X, y, epochs=1, batch_size=8, rng=rng, path="kernel")
    assert str(error.value) == f"train: path='kernel' cannot train {net!r}: {reason}"
    try:
        history = bp.train(net, X, y, epochs=1, batch_size=8, rng=rng)  # path="auto"
    except ValueError as e:  # a net the readable layers cannot run either (images into a Linear, read-only weights)
        assert "path=" not in str(e)
    else:
        assert history.path == "readable"


def test_weights_that_are_not_contiguous_are_refused():
    net = cnn(np.random.default_rng(0))
    net.layers[1].W = np.asfortranarray(net.layers[1].W)
    assert why_not(net) == "its weights are not contiguous, writable arrays"


def test_only_a_net_with_a_conv2d_is_the_twins():
    assert not fast_conv.is_convolutional(object()) and not fast_conv.is_convolutional(bp.NeuralNet(
        (4, 3, 2), rng=np.random.default_rng(0)))
    assert fast_conv.is_convolutional(cnn(np.random.default_rng(0)))


def test_a_window_that_does_not_fit_is_the_same_error_on_either_path():
    """A 4x8 image: after a 3x3 convolution and a 2x2 pooling, 1x3; the next 3x3 convolution fits across,
    not down (and a 2x2 pooling of it neither)."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(4, 32)).astype(np.float32), rng.integers(0, 3, size=4)
    for last, name in ((Conv2d(8, 8, 3, rng=rng), r"Conv2d\(8, 8, 3"), (MaxPool2d(2), r"MaxPool2d\(2")):
        net = bp.Sequential([Reshape((1, 4, 8)), Conv2d(1, 8, 3, rng=rng), MaxPool2d(2), last, Flatten(),
                             Linear(8, 3, rng=rng)])
        for path in ("readable", "kernel"):
            with pytest.raises(ValueError, match=name + r".*: a \d+x\d+ window does not fit in an input of shape"):
                bp.train(net, X, y, epochs=1, rng=rng, path=path)


def test_the_twin_calls_the_progress_hook_after_every_batch_and_names_the_epoch_it_diverged_in(mnist_subset):
    X, y = mnist_subset[0][:200], mnist_subset[1][:200]
    net = cnn(np.random.default_rng(0))
    calls = []
    bp.train(net, X, y, epochs=1, batch_size=64, rng=np.random.default_rng(0),
             on_batch=lambda history, i, n, running: calls.append((i, n, running())))
    assert [(i, n) for i, n, _ in calls] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert all(0 <= accuracy <= 1 and loss > 0 for _, _, (loss, accuracy) in calls)
    with pytest.raises(bp.TrainingDiverged) as diverged, np.errstate(all="ignore"):
        bp.train(net, X, y, epochs=1, batch_size=64, rng=np.random.default_rng(0), optimizer=bp.SGD(1e30))
    assert diverged.value.epoch == 0 and diverged.value.step is not None


def test_without_the_compiled_extension_auto_warns_once_and_kernel_refuses(monkeypatch):
    monkeypatch.setattr(fast_conv, "_conv", None)  # as when the extension could not be built
    monkeypatch.setattr(fast_conv, "_warned", False)
    rng = np.random.default_rng(0)
    net = cnn(rng)
    X, y = rng.normal(size=(20, 784)).astype(np.float32), rng.integers(0, 10, size=20)
    with pytest.warns(RuntimeWarning) as warned:
        history = bp.train(net, X, y, epochs=2, batch_size=8, rng=rng)
        again = bp.train(net, X, y, epochs=1, batch_size=8, rng=rng)  # once per process, not per call
    assert history.path == again.path == "readable" and len(warned) == 1
    assert str(warned[0].message) == ("bareprop: the compiled convolution was not built (reinstall bareprop with a C "
                                      "compiler); training on the readable path")
    with pytest.raises(ValueError) as error:
        bp.train(net, X, y, epochs=1, batch_size=8, rng=rng, path="kernel")
    assert str(error.value).endswith(": the compiled convolution was not built (reinstall bareprop with a C compiler)")


def test_the_warning_points_at_the_call_of_train(monkeypatch):
    """(Not run under mutmut, whose trampolines add a frame: pyproject.toml.)"""
    monkeypatch.setattr(fast_conv, "_conv", None)
    monkeypatch.setattr(fast_conv, "_warned", False)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 784)).astype(np.float32), rng.integers(0, 10, size=20)
    with pytest.warns(RuntimeWarning, match="not built") as warned:
        bp.train(cnn(rng), X, y, epochs=1, batch_size=8, rng=rng)
    assert warned[0].filename == __file__


def test_the_bindings_refuse_arrays_of_the_wrong_size():
    x, W, out = np.zeros((1, 5, 5, 8), np.float32), np.zeros((8 * 9 + 1, 8), np.float32), np.zeros((1, 3, 3, 8),
                                                                                                    np.float32)
    _conv.forward(x, 1, 5, 5, 8, W, 8, 3, 1, out)  # the right sizes
    with pytest.raises(ValueError, match="x has 800 bytes, expected 1600"):
        _conv.forward(x, 2, 5, 5, 8, W, 8, 3, 1, out)
    with pytest.raises(ValueError, match="out has"):
        _conv.forward(x, 1, 5, 5, 8, W, 8, 3, 2, out)
    with pytest.raises(ValueError, match="multiple of 8"):
        _conv.forward(x, 1, 5, 5, 8, W.reshape(-1, 4), 4, 3, 1, out)
    with pytest.raises(ValueError, match="sizes out of range"):
        _conv.forward(x, 1, 5, 5, 8, W, 8, 6, 1, out)  # a window larger than the image
    with pytest.raises(ValueError, match="x has"):
        _conv.forward(x.astype(np.float64), 1, 5, 5, 8, W, 8, 3, 1, out)
    with pytest.raises(TypeError):
        _conv.forward(x, 1, 5, 5, 8, W, 8, 3, 1, out.copy().view(np.uint8)[:0].tobytes())  # read-only output
    arg = np.zeros((1, 3, 3, 8), np.int32)
    _conv.pool_backward(out, arg, 1, 5, 5, 8, 3, 1, x)
    arg[0, 0, 0, 0] = 9  # outside a 3x3 window: a write out of place
    with pytest.raises(ValueError, match="outside the window"):
        _conv.pool_backward(out, arg, 1, 5, 5, 8, 3, 1, x)
    assert _conv.ISA in ("generic", "avx2+fma", "avx512f")


def test_the_generic_build_computes_what_this_cpus_build_does(compiled):
    """The loops for any x86-64 (compiled here with -DNO_VARIANTS, as on a CPU without AVX2) against the build
    this CPU runs: the same sums in the same order, but without FMA's single rounding, so to rounding."""
    generic = compiled("_conv", "-DNO_VARIANTS")
    assert generic.ISA == "generic"
    rng = np.random.default_rng(0)
    for C, O, k, s in [(1, 8, 5, 1), (8, 16, 3, 2), (16, 24, 2, 1)]:
        x = rng.normal(size=(3, 9, 9, C)).astype(np.float32)
        W = rng.normal(size=(k * k * C + 1, O)).astype(np.float32)
        Ho = (9 - k) // s + 1
        g = rng.normal(size=(3, Ho, Ho, O)).astype(np.float32)
        outs = []
        for module in (generic, _conv):
            out, dW = np.empty((3, Ho, Ho, O), np.float32), np.empty_like(W)
            module.forward(x, 3, 9, 9, C, W, O, k, s, out)
            module.weight_grad(x, 3, 9, 9, C, g, O, k, s, dW)
            pooled, arg = np.empty((3, 4, 4, C), np.float32), np.empty((3, 4, 4, C), np.int32)
            module.pool_forward(x, 3, 9, 9, C, 2, 2, True, pooled, arg)
            outs.append((out, dW, pooled, arg))
        for a, b in zip(*outs):
            close(a, b)
