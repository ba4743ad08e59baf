"""The compiled kernel (_kernel.c, through _fast.KernelSGD) against the readable layers.

The kernel skips zero inputs and sums in its own order, so it matches the readable path to
rounding: to 1e-9 in float64, where rounding is far below the differences a wrong gradient would
make, and to the float32 noise level in float32. It is exactly reproducible: the same numbers for
one thread or two, for one call per epoch or a call per chunk of batches, for uint8 or float pixels.

CI builds the extension, so these tests fail if it is missing; set BAREPROP_NO_KERNEL=1 to skip
them on a machine where it cannot be built (bareprop then trains on its NumPy paths).
"""

import os

import numpy as np
import pytest

from bareprop import NeuralNet, load_mnist, train
from bareprop import _fast

if _fast._kernel is None:
    if os.environ.get("BAREPROP_NO_KERNEL") == "1":
        pytest.skip("the compiled kernel is not built (BAREPROP_NO_KERNEL=1)", allow_module_level=True)
    raise AssertionError("bareprop._kernel was not built: reinstall with a C compiler, or set BAREPROP_NO_KERNEL=1")

from bareprop import _kernel  # noqa: E402


@pytest.fixture(scope="module")
def mnist_subset():
    X, y = load_mnist("test", dtype=np.uint8)
    return X[:3000], y[:3000]  # 46 batches of 64 and one of 56


def fit(X, y, sizes, *, kernel, dtype=np.float32, epochs=2, batch_size=64, threads=None, on_batch=None, seed=7):
    """Train a fresh net; kernel=True runs KernelSGD, False the readable layers. Returns (history, weights)."""
    rng = np.random.default_rng(seed)
    net = NeuralNet(sizes, lr=0.001, rng=rng, dtype=dtype)
    if kernel:
        assert _fast.KernelSGD.takes(net, batch_size)
        made = []

        def make(net_, batch_size_, optimizer=None):
            made.append(_fast.KernelSGD(net_, batch_size_, optimizer, threads=threads))
            return made[-1]
        original, _fast.fast_path = _fast.fast_path, make
        try:
            history = train(net, X, y, epochs=epochs, batch_size=batch_size, rng=rng, X_test=X[:500], y_test=y[:500],
                            on_batch=on_batch)
        finally:
            _fast.fast_path = original
        assert len(made) == 1
    else:
        history = train(net, X, y, epochs=epochs, batch_size=batch_size, rng=rng, X_test=X[:500], y_test=y[:500],
                        fast=False)
    return history, net.params()


@pytest.mark.parametrize("sizes", [(784, 32, 10), (784, 16, 12, 10), (784, 40, 3), (784, 70, 9, 33, 10),
                                   (784, 300, 10), (784, 256, 10)])
def test_kernel_matches_readable_layers_in_float64(mnist_subset, sizes):
    """Widths 3..70 cover every block shape of the kernel's loops (1 to 4 vectors, and a second block);
    300 several tiles of the first layer's outputs (TILE_BYTES of a row each); 256 doubles, rows of
    SPREAD_BYTES, a padded row of one cache line more."""
    X, y = mnist_subset
    y = y % sizes[-1]  # as many classes as the last layer has outputs
    h_ref, W_ref = fit(X, y, sizes, kernel=False, dtype=np.float64)
    h_k, W_k = fit(X, y, sizes, kernel=True, dtype=np.float64)
    for a, b in zip(W_ref, W_k):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_k.train_loss, h_ref.train_loss, rtol=1e-9)
    np.testing.assert_allclose(h_k.test_loss, h_ref.test_loss, rtol=1e-9)
    assert h_k.train_acc == pytest.approx(h_ref.train_acc, abs=1e-12)
    assert h_k.test_acc == h_ref.test_acc
    assert h_k.train_loss[1] < h_k.train_loss[0]  # it did train


def test_kernel_matches_readable_layers_in_float32(mnist_subset):
    X, y = mnist_subset
    h_ref, W_ref = fit(X, y, (784, 32, 10), kernel=False, epochs=3)
    h_k, W_k = fit(X, y, (784, 32, 10), kernel=True, epochs=3)
    for a, b in zip(W_ref, W_k):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h_k.train_loss, h_ref.train_loss, rtol=1e-3)
    np.testing.assert_allclose(h_k.train_acc, h_ref.train_acc, atol=2e-3)
    np.testing.assert_allclose(h_k.test_acc, h_ref.test_acc, atol=4e-3)


def test_a_wrong_gradient_is_far_outside_the_float64_tolerance(mnist_subset):
    """The float64 comparison can fail: a learning rate off by one part in a million already breaks it."""
    X, y = mnist_subset
    _, W_ref = fit(X, y, (784, 16, 10), kernel=False, dtype=np.float64, epochs=1)
    rng = np.random.default_rng(7)
    net = NeuralNet((784, 16, 10), lr=0.001 * (1 + 1e-6), rng=rng, dtype=np.float64)
    train(net, X, y, epochs=1, batch_size=64, rng=rng)
    assert not np.allclose(net.params()[0], W_ref[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_and_chunks_do_not_change_a_bit(mnist_subset, dtype):
    X, y = mnist_subset
    h1, W1 = fit(X, y, (784, 32, 10), kernel=True, dtype=dtype, threads=1)
    h2, W2 = fit(X, y, (784, 32, 10), kernel=True, dtype=dtype, threads=2)
    calls = []
    h3, W3 = fit(X, y, (784, 32, 10), kernel=True, dtype=dtype, threads=2,
                 on_batch=lambda history, i, n, running: calls.append((i, running())))
    for a, b, c in zip(W1, W2, W3):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert h1.to_dict() | {"seconds": 0} == h2.to_dict() | {"seconds": 0} == h3.to_dict() | {"seconds": 0}
    n_batches = -(-len(X) // 64)
    assert [i for i, _ in calls[:3]] == [15, 31, 46]  # every CHUNK batches, and the last
    assert len(calls) == 2 * 3
    loss, acc = calls[2][1]  # the first epoch's running figures at its end: over all its examples
    assert 0 < loss < 3 and 0 < acc <= 1
    assert n_batches == 47


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [(784, 8, 10), (784, 24, 10), (784, 48, 10), (784, 70, 9, 33, 10), (784, 10),
                                   (784, 300, 10), (784, 256, 10)])
def test_any_number_of_threads_gives_the_same_bits(mnist_subset, sizes, dtype):
    """Threads share the first layer by its outputs, in cache lines: one thread's share can be empty
    (8 outputs: one line), uneven (24, 70; 256 doubles, padded to 33 lines), whole lines (48 doubles)
    or several tiles (300); the rest by examples and rows."""
    X, y = mnist_subset
    X, y = X[:700], (y[:700] % sizes[-1]).astype(np.int64)
    rows = _kernel.SparseRows(X, True, *X.shape, dtype == np.float64, 1)
    order = np.random.default_rng(1).permutation(len(X)).astype(np.int64)
    results = []
    for threads in (1, 2, 3):
        net = NeuralNet(sizes, rng=np.random.default_rng(3), dtype=dtype)
        out = np.empty(len(X), dtype), np.empty(len(X), np.int64)
        _kernel.sgd_steps(tuple(net.params()), sizes, dtype == np.float64, rows, y, order, 0, len(X), 64, 0.001,
                          *out, threads, _kernel.Workspace())
        results.append([W.copy() for W in net.params()] + list(out))
    assert not np.array_equal(results[0][0], NeuralNet(sizes, rng=np.random.default_rng(3), dtype=dtype).params()[0])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_size", [64, 256, 1000])
def test_a_kernel_call_covers_at_most_max_examples(mnist_subset, monkeypatch, batch_size):
    """Python (and so Ctrl-C) waits for a kernel call: each covers whole batches, 16,384 examples at most."""
    X, y = mnist_subset
    X, y = np.concatenate([X] * 7), np.concatenate([y] * 7)  # 21,000 examples: more than one call
    calls, sgd_steps = [], _kernel.sgd_steps

    def recording(*args):
        calls.append((args[6], args[7]))  # start, stop
        return sgd_steps(*args)

    monkeypatch.setattr(_kernel, "sgd_steps", recording)
    net = NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    train(net, X, y, epochs=1, batch_size=batch_size, rng=np.random.default_rng(0))
    assert calls[0][0] == 0 and calls[-1][1] == len(X) and len(calls) > 1
    for (start, stop), (next_start, _) in zip(calls, calls[1:] + [(len(X), None)]):
        assert stop == next_start and start % batch_size == 0
        assert 0 < stop - start <= _fast.KernelSGD.MAX_EXAMPLES


def test_the_thread_chooser_runs_the_faster_count_and_keeps_trying_the_other():
    chooser = _fast.ThreadChooser(2)
    seconds_per_batch = {2: 1.0, 1: 3.0}  # two threads three times as fast
    picks = []
    for _ in range(40):
        threads = chooser.pick()
        picks.append(threads)
        chooser.record(threads, 10 * seconds_per_batch[threads], 10)
    assert picks[:3] == [2, 2, 1]  # warm-up, then one try of each
    assert picks.count(1) == 1 + 2 and picks[16] == picks[32] == 1  # a try of the other every 16th call
    seconds_per_batch = {2: 5.0, 1: 3.0}  # now the other core is busy: one thread is faster
    for _ in range(40):
        threads = chooser.pick()
        picks.append(threads)
        chooser.record(threads, 10 * seconds_per_batch[threads], 10)
    assert picks[-20:].count(1) >= 18  # it noticed at its next try and switched
    assert _fast.ThreadChooser(1).pick() == 1


def test_uint8_pixels_and_their_floats_give_the_same_bits(mnist_subset):
    X, y = mnist_subset
    _, W_u8 = fit(X, y, (784, 8, 10), kernel=True, epochs=1)
    _, W_f32 = fit(np.divide(X, np.float32(255), dtype=np.float32), y, (784, 8, 10), kernel=True, epochs=1)
    for a, b in zip(W_u8, W_f32):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_rows_hold_exactly_the_nonzero_entries(dtype, threads):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(301, 37), dtype=np.uint8)
    X[rng.random(X.shape) < 0.7] = 0  # mostly zero, as MNIST
    X[5] = 0  # an empty row
    X[:, :16][rng.random((301, 16)) < 0.9] = 0  # runs of zeros, skipped 8 at a time
    for pixels, data in [(True, X), (False, np.divide(X, dtype(255), dtype=dtype))]:
        data = data.copy()
        if not pixels:
            data[7, 3] = -0.0  # a negative zero is a zero
            data[8, 30] = np.nan  # a NaN is not
        rows = _kernel.SparseRows(data, pixels, *data.shape, dtype == np.float64, threads)
        assert rows.compact == pixels  # pixels: uint16 columns and the pixel bytes; else int32 and floats
        types = (np.int64, np.uint16, np.uint8) if pixels else (np.int64, np.int32, dtype)
        indptr, col, val = (np.frombuffer(b, t) for b, t in zip(rows.arrays(), types))
        dense = X if pixels else data
        r, c = np.nonzero((dense != 0) | np.isnan(dense))
        assert rows.nnz == len(r) and rows.N == 301 and rows.I == 37
        np.testing.assert_array_equal(indptr, np.concatenate([[0], np.cumsum(np.bincount(r, minlength=301))]))
        np.testing.assert_array_equal(col, c)
        np.testing.assert_array_equal(val, dense[r, c])


def test_the_kernel_refuses_what_would_read_out_of_bounds():
    rng = np.random.default_rng(0)
    net = NeuralNet((6, 4, 3), rng=rng)
    Ws, sizes = tuple(net.params()), (6, 4, 3)
    X = np.ones((10, 6), np.uint8)
    rows = _kernel.SparseRows(X, True, 10, 6, False)
    y = np.zeros(10, np.int64)
    order = np.arange(10, dtype=np.int64)
    out = np.empty(10, np.float32), np.empty(10, np.int64)

    workspace = _kernel.Workspace()

    def steps(rows=rows, y=y, order=order, Ws=Ws, threads=1):
        _kernel.sgd_steps(Ws, sizes, False, rows, y, order, 0, 10, 4, 0.001, *out, threads, workspace)

    steps()  # as given, it runs
    with pytest.raises(ValueError, match="columns"):
        steps(rows=_kernel.SparseRows(np.ones((10, 5), np.uint8), True, 10, 5, False))
    with pytest.raises(ValueError, match="label out of range"):
        steps(y=np.full(10, 3, np.int64))
    with pytest.raises(ValueError, match="row 10 or its label out of range"):
        steps(order=np.arange(1, 11, dtype=np.int64))
    with pytest.raises(ValueError, match="bytes, needs"):
        steps(Ws=(Ws[0][:5], Ws[1]))
    with pytest.raises(ValueError, match="threads"):
        steps(threads=0)
    with pytest.raises(ValueError, match="bytes, needs"):
        _kernel.SparseRows(X, True, 11, 6, False)
    with pytest.raises(TypeError):
        steps(rows=np.zeros(3))
    steps()  # and after all these refusals the workspace still serves


def test_a_reused_workspace_gives_the_same_numbers_as_a_fresh_one(mnist_subset):
    """Layouts change (training, scoring, another net) and the memory is reused: nothing carries over."""
    X, y = mnist_subset
    workspace = _kernel.Workspace()
    rows = _kernel.SparseRows(X, True, *X.shape, False)
    y64 = y.astype(np.int64)
    results = []
    for ws in (workspace, workspace, _kernel.Workspace()):
        for sizes in ((784, 16, 10), (784, 24, 10)):
            net = NeuralNet(sizes, rng=np.random.default_rng(3))
            out = np.empty(len(X), np.float32), np.empty(len(X), np.int64)
            _kernel.sgd_steps(tuple(net.params()), sizes, False, rows, y64, np.arange(len(X), dtype=np.int64), 0,
                              len(X), 64, 0.001, *out, 2, ws)
            _kernel.score(tuple(net.params()), sizes, False, rows, y64, *out, 2, ws)
            results.append([W.copy() for W in net.params()] + [out[0].copy()])
    for a, b, c in zip(results[:2], results[2:4], results[4:]):
        for x, y_, z in zip(a, b, c):
            np.testing.assert_array_equal(x, y_)
            np.testing.assert_array_equal(x, z)


@pytest.mark.parametrize("fast", [False, True])
def test_no_training_examples_is_a_clear_error(fast):
    net = NeuralNet((4, 3, 2), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"train: no training examples \(X has shape \(0, 4\)\)"):
        train(net, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), epochs=1, rng=np.random.default_rng(0),
              fast=fast)


def test_kernel_sgd_needs_whole_batches(mnist_subset):
    X, y = mnist_subset
    net = NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    kernel = _fast.KernelSGD(net, 64)
    with pytest.raises(ValueError, match="batches must hold 64"):
        kernel.epoch(X, y, [np.arange(32), np.arange(32, 96)])


def test_fast_path_picks_the_kernel_where_it_can(monkeypatch):
    rng = np.random.default_rng(0)
    assert type(_fast.fast_path(NeuralNet((784, 32, 10), rng=rng), 64)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 32, 10), rng=rng), 1024)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 256, 10), rng=rng), 1024)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 1024, 10), rng=rng), 256)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 1024, 10), rng=rng), 1024)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 2048, 10), rng=rng), 2048)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 256, 10), rng=rng), 8192)) is _fast.KernelSGD
    assert type(_fast.fast_path(NeuralNet((784, 1024, 10), rng=rng), 4096)) is _fast.FastSGD  # wide and big: BLAS
    assert type(_fast.fast_path(NeuralNet((784, 32, 10), rng=rng), 32768)) is _fast.FastSGD  # a batch over 16,384
    assert type(_fast.fast_path(NeuralNet((4, 3, 2), rng=rng, dtype=np.float16), 64)) is _fast.FastSGD
    assert _fast.fast_path(NeuralNet((4, 3, 2), rng=rng, p_drop=0.5), 64) is None  # Dropout: the readable loop
    monkeypatch.setattr(_fast, "_kernel", None)  # as when the extension could not be built
    assert type(_fast.fast_path(NeuralNet((784, 32, 10), rng=rng), 64)) is _fast.FastSGD


def test_post_configuration_trains_to_the_posts_accuracy_on_the_kernel():
    """The whole post run on the kernel: the figures the README quotes."""
    X, y = load_mnist("train", dtype=np.uint8)
    X_test, y_test = load_mnist("test", dtype=np.uint8)
    rng = np.random.default_rng(0)
    net = NeuralNet((784, 32, 10), lr=0.001, rng=rng)
    assert _fast.KernelSGD.takes(net, 64)
    history = train(net, X, y, epochs=10, batch_size=64, rng=rng, X_test=X_test, y_test=y_test)
    assert history.train_acc[-1] >= 0.96 and history.test_acc[-1] >= 0.955
    assert history.train_loss == sorted(history.train_loss, reverse=True)
