"""The compiled kernel (fast/_kernel.c, run by fast/kernel.py) against the readable layers.

The kernel skips zero inputs and sums in its own order, so it matches the readable path to
rounding: to 1e-9 in float64, where rounding is far below the differences a wrong gradient would
make, and to the float32 noise level in float32. It is exactly reproducible: the same numbers for
one, two or three threads, for one call per epoch or a call per chunk of batches, for uint8 or float
pixels. train(path="kernel") runs it (or says why it cannot), path="readable" the layers.

CI builds the extension, so these tests fail if it is missing; set BAREPROP_NO_KERNEL=1 to skip
them on a machine where it cannot be built (bareprop then trains on its readable path).
"""

import os

import numpy as np
import pytest

from bareprop import SGD, Adam, NeuralNet, train
from bareprop.core.optim import CosineDecay
from bareprop.core.train import batches
from bareprop.fast import kernel

if kernel._kernel is None:
    if os.environ.get("BAREPROP_NO_KERNEL") == "1":
        pytest.skip("the compiled kernel is not built (BAREPROP_NO_KERNEL=1)", allow_module_level=True)
    raise AssertionError("bareprop.fast._kernel was not built: reinstall with a C compiler, or set BAREPROP_NO_KERNEL=1")

from bareprop.fast import _kernel  # noqa: E402


def fit(X, y, sizes, *, path, dtype=np.float32, epochs=2, batch_size=64, threads=1, on_batch=None, seed=7,
        scale=None):
    """Train a fresh net on `path` ("kernel" or "readable"). Returns (history, weights).
    scale(weights), if given, changes the initial weights in place first."""
    rng = np.random.default_rng(seed)
    net = NeuralNet(sizes, lr=0.001, rng=rng, dtype=dtype)
    if scale is not None:
        scale(net.params())
    history = train(net, X, y, epochs=epochs, batch_size=batch_size, rng=rng, X_test=X[:500], y_test=y[:500],
                    on_batch=on_batch, path=path, threads=threads)
    assert history.path == path and history.threads == threads
    return history, net.params()


def assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k):
    """The float64 check: weights and every history figure to rounding."""
    for a, b in zip(W_ref, W_k):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_k.train_loss, h_ref.train_loss, rtol=1e-9)
    np.testing.assert_allclose(h_k.test_loss, h_ref.test_loss, rtol=1e-9)
    np.testing.assert_allclose(h_k.grad_norm, h_ref.grad_norm, rtol=1e-9)
    assert h_k.train_acc == pytest.approx(h_ref.train_acc, abs=1e-12)
    assert h_k.test_acc == h_ref.test_acc


@pytest.mark.parametrize("sizes", [(784, 32, 10), (784, 16, 12, 10), (784, 40, 3), (784, 70, 9, 33, 10),
                                   (784, 30, 5), (784, 300, 10), (784, 256, 10), (784, 10)])
def test_kernel_matches_readable_layers_in_float64(mnist_subset, sizes):
    """Widths 3..70 cover every block shape of the kernel's loops (1 to 4 vectors, and a second block;
    a narrow layer, 3 or 5 outputs, run dense: its 40 rows 4 at a time, or 30, the last 2 one by one);
    300 several tiles of the first layer's outputs; 256 doubles (2048 bytes a row) the update by
    column and the width the kernel once padded; (784, 10) a net with no hidden layer."""
    X, y = mnist_subset
    y = y % sizes[-1]  # as many classes as the last layer has outputs
    h_ref, W_ref = fit(X, y, sizes, path="readable", dtype=np.float64)
    h_k, W_k = fit(X, y, sizes, path="kernel", dtype=np.float64)
    assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k)
    assert h_k.train_loss[1] < h_k.train_loss[0]  # it did train


def test_kernel_matches_readable_layers_in_float32(mnist_subset):
    X, y = mnist_subset
    h_ref, W_ref = fit(X, y, (784, 32, 10), path="readable", epochs=3)
    h_k, W_k = fit(X, y, (784, 32, 10), path="kernel", epochs=3)
    for a, b in zip(W_ref, W_k):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(h_k.train_loss, h_ref.train_loss, rtol=1e-3)
    np.testing.assert_allclose(h_k.train_acc, h_ref.train_acc, atol=2e-3)
    np.testing.assert_allclose(h_k.test_acc, h_ref.test_acc, atol=4e-3)


def test_a_wrong_gradient_is_far_outside_the_float64_tolerance(mnist_subset):
    """The float64 comparison can fail: a learning rate off by one part in a million already breaks it."""
    X, y = mnist_subset
    _, W_ref = fit(X, y, (784, 16, 10), path="readable", dtype=np.float64, epochs=1)
    rng = np.random.default_rng(7)
    net = NeuralNet((784, 16, 10), lr=0.001 * (1 + 1e-6), rng=rng, dtype=np.float64)
    train(net, X, y, epochs=1, batch_size=64, rng=rng, path="kernel")
    assert not np.allclose(net.params()[0], W_ref[0], rtol=1e-9, atol=1e-12)


def test_huge_logits_stay_finite_and_agree(mnist_subset):
    """The last layer scaled up until logits reach about 1e3: exp(logit) overflows unless softmax
    subtracts the row's largest logit first, and log P underflows to -inf unless it is taken as
    logit - logsumexp. The kernel must give the readable layers' finite numbers."""
    X, y = mnist_subset

    def scale_up(Ws):
        Ws[-1] *= 3000.0

    h_ref, W_ref = fit(X[:1000], y[:1000], (784, 32, 10), path="readable", dtype=np.float64, epochs=1,
                       scale=scale_up)
    h_k, W_k = fit(X[:1000], y[:1000], (784, 32, 10), path="kernel", dtype=np.float64, epochs=1, scale=scale_up)
    assert h_ref.train_loss[0] > 100  # the logits are huge: a wrong class costs hundreds
    assert all(np.isfinite(W).all() for W in W_k) and np.isfinite(h_k.train_loss + h_k.test_loss).all()
    assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k)


def test_inputs_exactly_at_the_relu_gate(mnist_subset):
    """ReLU passes no gradient where its input is exactly 0 (mask = X > 0). Hidden units whose weights
    and bias are all zero get exactly 0 on every example: their weights must stay zero on both paths."""
    X, y = mnist_subset
    dead = [0, 5, 31]

    def kill(Ws):
        Ws[0][:, dead] = 0.0  # (I+1, O): these units' inputs are 0 whatever the data

    h_ref, W_ref = fit(X, y, (784, 32, 10), path="readable", dtype=np.float64, epochs=1, scale=kill)
    h_k, W_k = fit(X, y, (784, 32, 10), path="kernel", dtype=np.float64, epochs=1, scale=kill)
    assert not W_k[0][:, dead].any() and not W_ref[0][:, dead].any()
    assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k)


def test_threads_and_chunks_do_not_change_a_bit(mnist_subset):
    """train(threads=1, 2, 3), one kernel call per epoch or one per 16 batches (with a per-batch hook):
    the same bits. The hook runs after the first (readable) batch, every 16 kernel batches and the last."""
    X, y = mnist_subset
    runs, calls = [], []
    for threads in (1, 2, 3):
        runs.append(fit(X, y, (784, 32, 10), path="kernel", dtype=np.float32, threads=threads))
    runs.append(fit(X, y, (784, 32, 10), path="kernel", dtype=np.float32, threads=2,
                    on_batch=lambda history, i, n, running: calls.append((len(history.epoch), i, n, running()))))
    (h1, W1), others = runs[0], runs[1:]
    for h, W in others:
        for a, b in zip(W1, W):
            np.testing.assert_array_equal(a, b)
        assert h.to_dict() | {"seconds": 0, "threads": 0} == h1.to_dict() | {"seconds": 0, "threads": 0}
    assert [(epoch, i) for epoch, i, _, _ in calls] == [(e, i) for e in (0, 1) for i in (0, 16, 32, 46)]
    assert all(n == 47 for _, _, n, _ in calls)
    for epoch in (0, 1):  # at the epoch's last batch the running figures are the epoch's
        assert calls[4 * epoch + 3][3] == (h1.train_loss[epoch], h1.train_acc[epoch])
    first_loss, first_acc = calls[0][3]  # after the first batch: that batch's own figures
    assert first_loss > h1.train_loss[0] and 0 <= first_acc <= 1


def test_running_figures_agree_with_the_readable_loops(mnist_subset):
    """A progress bar shows the same running (loss, accuracy) on either path, to rounding."""
    X, y = mnist_subset
    seen = {}
    for path in ("readable", "kernel"):
        seen[path] = {}
        fit(X, y, (784, 16, 10), path=path, dtype=np.float64, epochs=1,
            on_batch=lambda history, i, n, running, into=seen[path]: into.setdefault(i, running()))
    assert set(seen["kernel"]) == {0, 16, 32, 46}
    for i, (loss, acc) in seen["kernel"].items():
        assert loss == pytest.approx(seen["readable"][i][0], rel=1e-9)
        assert acc == pytest.approx(seen["readable"][i][1], abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sizes", [(784, 8, 10), (784, 24, 10), (784, 48, 10), (784, 70, 9, 33, 10), (784, 10),
                                   (784, 300, 10), (784, 256, 10), (784, 512, 10)])
def test_any_number_of_threads_gives_the_same_bits(mnist_subset, sizes, dtype):
    """Threads share the first layer by its outputs, in cache lines: one thread's share can be empty
    (8 outputs: one line), uneven (24, 70), whole lines (48 doubles) or several tiles (300, 512);
    the rest by examples and rows. The kernel called directly, on every example of an epoch."""
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


@pytest.mark.parametrize("pixels", [True, False])
def test_odd_widths_runs_of_zeros_and_negative_zeros_match_the_readable_layers(pixels):
    """Rows are compressed 8 columns at a time: 37 columns (a last chunk of 5), runs of zero columns,
    empty rows, batches of 12 (a last one of 11) and, as floats, -0.0 entries (zeros, skipped). In
    float64 to 1e-9, against the readable layers."""
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, size=(203, 37), dtype=np.uint8)
    X[rng.random(X.shape) < 0.6] = 0  # mostly zero, as MNIST
    X[:, 8:24] = 0  # two whole chunks of 8 columns blank in every example
    X[[3, 50, 51]] = 0  # empty rows
    y = rng.integers(0, 4, size=203)
    data = X if pixels else np.where(X == 0, -0.0, X / 255.0)  # floats: every zero a negative zero
    runs = {}
    for path in ("readable", "kernel"):
        net = NeuralNet((37, 20, 4), lr=0.01, rng=np.random.default_rng(2), dtype=np.float64)
        runs[path] = train(net, data, y, epochs=2, batch_size=12, rng=np.random.default_rng(4), path=path,
                           X_test=data, y_test=y), net.params()
    assert_kernel_matches_readable(*runs["readable"], *runs["kernel"])
    assert runs["kernel"][0].train_loss[1] < runs["kernel"][0].train_loss[0]


@pytest.mark.parametrize("batch_size", [64, 256, 1000])
def test_a_kernel_call_covers_at_most_max_examples(mnist_subset, monkeypatch, batch_size):
    """Python (and so Ctrl-C) waits for a kernel call: each covers whole batches, 16,384 examples at most,
    from the second batch (the first runs through the readable layers) to the last."""
    X, y = mnist_subset
    X, y = np.concatenate([X] * 7), np.concatenate([y] * 7)  # 21,000 examples: more than one call
    calls, sgd_steps = [], _kernel.sgd_steps

    def recording(*args):
        calls.append((args[6], args[7]))  # start, stop
        return sgd_steps(*args)

    monkeypatch.setattr(_kernel, "sgd_steps", recording)
    net = NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    train(net, X, y, epochs=1, batch_size=batch_size, rng=np.random.default_rng(0), path="kernel")
    assert calls[0][0] == batch_size and calls[-1][1] == len(X) and len(calls) > 1
    for (start, stop), (next_start, _) in zip(calls, calls[1:] + [(len(X), None)]):
        assert stop == next_start and start % batch_size == 0
        assert 0 < stop - start <= kernel.KernelSGD.MAX_EXAMPLES


def test_the_optimizer_counts_the_kernels_steps(mnist_subset):
    """After a kernel epoch the optimizer's state counts every batch, as the readable loop's does."""
    X, y = mnist_subset
    net = NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    optimizer = SGD(net.lr)
    runner = kernel.runner(net, 64, optimizer, 1, required=True)
    order = np.random.default_rng(0).permutation(len(X))
    state = optimizer.init(net.params())
    for epoch in (1, 2):
        *_, state = runner.epoch(X, y, order, optimizer, state)
        assert state["step"] == epoch * len(batches(order, 64)) == epoch * 47


def test_uint8_pixels_and_their_floats_give_the_same_bits(mnist_subset):
    """On both paths: uint8 pixels are scaled to [0, 1] as load_mnist scales them."""
    X, y = mnist_subset
    Xf = np.divide(X, np.float32(255), dtype=np.float32)
    for path in ("readable", "kernel"):
        _, W_u8 = fit(X, y, (784, 8, 10), path=path, epochs=1)
        _, W_f32 = fit(Xf, y, (784, 8, 10), path=path, epochs=1)
        for a, b in zip(W_u8, W_f32):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, reason", [
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng, p_drop=0.5), None), "layers are not Linear, then ReLU"),
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng), Adam(0.01)), "not plain SGD at a constant lr"),
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng), SGD(0.01, momentum=0.9)), "not plain SGD"),
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng), SGD(0.01, weight_decay=1e-4)), "not plain SGD"),
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng), SGD(CosineDecay(0.01, total_steps=10))), "not plain SGD"),
    (lambda rng: (NeuralNet((6, 4, 3), rng=rng, dtype=np.float16), None), "float16"),
])
def test_path_kernel_refuses_what_it_cannot_train_and_auto_falls_back(make, reason):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, size=40)
    net, optimizer = make(rng)
    with pytest.raises(ValueError, match=reason) as error:
        train(net, X, y, epochs=1, batch_size=16, rng=rng, optimizer=optimizer, path="kernel")
    assert str(error.value).startswith("train: path='kernel' cannot train") and "\n" not in str(error.value)
    history = train(net, X, y, epochs=1, batch_size=16, rng=rng, optimizer=optimizer)  # path="auto"
    assert history.path == "readable"


def test_path_kernel_refuses_a_loss_it_does_not_know():
    from bareprop import SoftmaxCrossEntropy

    net = NeuralNet((6, 4, 3), rng=np.random.default_rng(0))
    assert kernel.why_not(net, SGD(0.01)) == ""
    net.loss = SoftmaxCrossEntropy("mean")  # the kernel's gradient is the summed one
    assert "summed" in kernel.why_not(net, SGD(0.01))
    net.loss = object()
    assert "summed" in kernel.why_not(net, SGD(0.01))


def test_auto_takes_the_kernel_where_it_can(mnist_subset):
    X, y = mnist_subset
    net = NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    assert train(net, X[:200], y[:200], epochs=1, rng=np.random.default_rng(0)).path == "kernel"


def test_without_the_compiled_kernel_auto_warns_once_and_kernel_refuses(monkeypatch):
    monkeypatch.setattr(kernel, "_kernel", None)  # as when the extension could not be built
    monkeypatch.setattr(kernel, "_warned", False)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 6)).astype(np.float32), rng.integers(0, 3, size=40)
    net = NeuralNet((6, 4, 3), rng=rng)
    with pytest.warns(RuntimeWarning, match="not built.*readable path") as warned:
        history = train(net, X, y, epochs=1, batch_size=16, rng=rng)
    assert history.path == "readable" and len(warned) == 1
    assert warned[0].filename == __file__  # it points at the call of train()
    with pytest.raises(ValueError, match="not built"):
        train(net, X, y, epochs=1, batch_size=16, rng=rng, path="kernel")


@pytest.mark.parametrize("bad, message", [({"threads": 0}, "threads must be a positive integer"),
                                          ({"threads": 1.5}, "threads must be a positive integer"),
                                          ({"path": "fast"}, "path must be 'auto', 'readable' or 'kernel'")])
def test_bad_threads_or_path_is_a_value_error(bad, message):
    net = NeuralNet((6, 4, 3), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=message):
        train(net, np.zeros((10, 6), np.float32), np.zeros(10, np.int64), epochs=1, rng=np.random.default_rng(0),
              **bad)


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_inputs_are_checked_like_the_layers_on_either_path(path):
    rng = np.random.default_rng(0)
    net = NeuralNet((6, 4, 3), rng=rng)
    X, y = np.zeros((10, 5), np.float32), np.zeros(10, np.int64)
    with pytest.raises(ValueError, match=r"Linear\(6, 4\).*\(B, 6\).*\(10, 5\)"):
        train(net, X, y, epochs=1, rng=rng, path=path)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\(10,\).*\(9,\)"):
        train(net, np.zeros((10, 6), np.float32), y[:9], epochs=1, rng=rng, path=path)
    with pytest.raises(ValueError, match=r"train: no training examples \(X has shape \(0, 6\)\)"):
        train(net, np.zeros((0, 6), np.float32), np.zeros(0, np.int64), epochs=1, rng=rng, path=path)


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

    def steps(rows=rows, y=y, order=order, Ws=Ws, threads=1, B=4, stop=10, sizes=sizes):
        _kernel.sgd_steps(Ws, sizes, False, rows, y, order, 0, stop, B, 0.001, *out, threads, workspace)

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
    for B in (2**40, 2**62, 2**63 - 1):  # too much to allocate, or byte counts that would wrap around
        with pytest.raises(MemoryError, match=f"batches of {B} rows"):
            steps(B=B)
    with pytest.raises(MemoryError, match="batches of 4 rows at these widths need"):
        steps(sizes=(6, 2**31 - 9, 2**31 - 9, 3), Ws=Ws + Ws[1:])  # widths it takes, but a W of 2**65 bytes
    with pytest.raises(ValueError, match=r"stop < 2\*\*60"):
        steps(stop=2**62)
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


def test_post_configuration_trains_to_the_posts_accuracy_on_the_kernel(mnist):
    """The whole post run on the kernel: the figures the README quotes."""
    (X, y), (X_test, y_test) = mnist
    rng = np.random.default_rng(0)
    net = NeuralNet((784, 32, 10), lr=0.001, rng=rng)
    history = train(net, X, y, epochs=10, batch_size=64, rng=rng, X_test=X_test, y_test=y_test, path="kernel")
    assert history.train_acc[-1] >= 0.96 and history.test_acc[-1] >= 0.955
    assert history.train_loss == sorted(history.train_loss, reverse=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logits_beyond_exps_range_in_each_precision(dtype):
    """Logits past the largest x with a finite exp(x) (88.7 in float32, 709.8 in float64), in the
    training steps and in scoring: softmax must shift by the row's largest logit, so the kernel gives
    the readable layers' finite numbers (to 1e-9 in float64; in float32 to the noise that
    rounding logits of hundreds makes)."""
    r = np.random.default_rng(3)
    X, y = r.normal(size=(200, 6)).astype(dtype), r.integers(0, 4, size=200)
    limit = np.log(np.finfo(dtype).max)  # () exp overflows past this

    def run(path):
        rng = np.random.default_rng(11)
        net = NeuralNet((6, 16, 4), lr=1e-4, rng=rng, dtype=dtype)
        net.params()[-1][...] *= 3 * limit  # (17, 4): logits of a few times the limit
        logits = net._logits(X)  # (N, K)
        assert np.abs(logits).max() > 2 * limit and np.isfinite(logits).all()
        h = train(net, X, y, epochs=2, batch_size=16, rng=rng, X_test=X, y_test=y, path=path)
        return h, net.params()

    h_ref, W_ref = run("readable")
    h_k, W_k = run("kernel")
    assert h_ref.train_loss[0] > limit  # a wrong class costs more than exp's whole range
    assert all(np.isfinite(W).all() for W in W_k) and np.isfinite(h_k.train_loss + h_k.test_loss).all()
    if dtype == np.float64:
        assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k)
    else:
        for a, b in zip(W_ref, W_k):
            np.testing.assert_allclose(b, a, rtol=1e-2, atol=3e-3)  # logits of hundreds carry float32's noise
        np.testing.assert_allclose(h_k.train_loss + h_k.test_loss, h_ref.train_loss + h_ref.test_loss, rtol=1e-2)
        assert h_k.test_acc == h_ref.test_acc


@pytest.mark.parametrize("flag, isas", [("-DNO_AVX2_VARIANT", {"generic"}),
                                        ("-DNO_AVX512_VARIANT", {"generic", "avx2+fma"})])
def test_the_narrower_builds_train_as_the_readable_layers(compiled, monkeypatch, mnist_subset, flag, isas):
    """The functions are compiled three times (any x86-64, AVX2 + FMA, AVX-512) and a CPU runs the widest
    it has; the others, compiled here without the wider ones, must train as the readable layers do
    (float64, to 1e-9), read uint8 pixels as their floats (the same bits) and give the same bits on 1
    and 2 threads."""
    module = compiled("_kernel", "-fopenmp", flag)
    assert module.ISA in isas
    monkeypatch.setattr(kernel, "_kernel", module)
    X, y = mnist_subset
    X, y = X[:1000], y[:1000]
    h_ref, W_ref = fit(X, y, (784, 24, 10), path="readable", dtype=np.float64, epochs=1)
    h_k, W_k = fit(X, y, (784, 24, 10), path="kernel", dtype=np.float64, epochs=1)
    assert_kernel_matches_readable(h_ref, W_ref, h_k, W_k)
    _, W_u8 = fit(X, y, (784, 24, 10), path="kernel", epochs=1)
    _, W_f32 = fit(np.divide(X, np.float32(255), dtype=np.float32), y, (784, 24, 10), path="kernel", epochs=1)
    _, W_2 = fit(X, y, (784, 24, 10), path="kernel", epochs=1, threads=2)
    for a, b, c in zip(W_u8, W_f32, W_2):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_logit_wins_the_argmax_and_makes_the_loss_nan(mnist_subset, dtype):
    """A NaN in class 3's weights makes its logit NaN for every example: argmax picks the first NaN, so
    the kernel's softmax must predict class 3 everywhere, as the readable layers do, and give a NaN loss."""
    X, y = mnist_subset
    X, y = X[:500], y[:500]
    net = NeuralNet((784, 32, 10), rng=np.random.default_rng(0), dtype=dtype)
    fast = kernel.KernelSGD(net, 64, 0.001)
    acc, loss = fast.score(X, y)
    assert (acc, loss) == pytest.approx(net.score(X, y), rel=1e-5)  # finite, and the readable layers' figures
    net.params()[-1][:, 3] = np.nan
    acc, loss = fast.score(X, y)
    assert acc == float(np.mean(y == 3)) == net.score(X, y)[0] and np.isnan(loss)
