"""The same layers on other array libraries (the Array API): array-api-strict, which has the standard and
nothing more, and PyTorch CPU tensors.

The registry's three tiers (shapes, finite differences, PyTorch) run again with the layer's weights and
inputs moved to each library; then whole epochs there equal NumPy's, model files cross between them,
and everything that cannot work says so in one line. CI installs array-api-compat, array-api-strict and
the CPU PyTorch; nothing here is skipped.
"""

import json
import sys

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import bareprop as bp
from bareprop.check.references import REFERENCES, input_shape
from bareprop.cli import main
from bareprop.core.arrays import asarray, backend_of, library, namespace, to_numpy
from bareprop.core.conv import Conv2d, Flatten, MaxPool2d, Reshape
from bareprop.core.layers import Dropout, Linear, ReLU, Tanh
from bareprop.experiment import RunConfig, run
from bareprop.experiment.runner import RunInterrupted, resume_run

BACKENDS = ["array_api_strict", pytest.param("torch", marks=pytest.mark.torch)]
each_backend = pytest.mark.parametrize("backend", BACKENDS)
each_class = pytest.mark.parametrize("cls", list(REFERENCES), ids=lambda cls: cls.__name__)
shapes = given(batch=st.integers(1, 5), width=st.integers(1, 8), seed=st.integers(0, 2**32 - 1))
few = settings(max_examples=8, deadline=None)


def example_of(cls, batch, width, seed):
    rng = np.random.default_rng(seed)
    layer = REFERENCES[cls].build(width, rng)
    return layer, input_shape(layer, batch, width, rng), rng


def moved(layer, backend):
    """The layer with its weights (if any) moved to `backend`."""
    if hasattr(layer, "W"):
        layer.W = asarray(layer.W, backend)
    return layer


# --- the registry on each library ------------------------------------------------------------

@each_backend
@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
def test_shapes_dtypes_and_library_are_kept(backend, cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    layer = moved(layer, backend)
    X = asarray(rng.normal(size=shape).astype(np.float32), backend)
    targets = REFERENCES[cls].targets
    if targets is None:
        out = layer(X)
        grad = asarray(rng.normal(size=tuple(out.shape)).astype(np.float32), backend)
    else:
        out, loss = layer(X, asarray(targets(tuple(X.shape), rng).astype(np.float32), backend))
        assert backend_of(loss) == backend and tuple(loss.shape) == ()
        grad = namespace(X).ones_like(X)
    dX = layer.bp_input(grad)
    assert backend_of(out) == backend_of(dX) == backend
    assert tuple(dX.shape) == tuple(X.shape) and dX.dtype == X.dtype == out.dtype
    if hasattr(layer, "bp_param"):
        dW = layer.bp_param(grad)
        assert backend_of(dW) == backend and tuple(dW.shape) == tuple(layer.W.shape) and dW.dtype == layer.W.dtype


@each_backend
@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
@example(batch=3, width=7, seed=1)
def test_gradients_match_finite_differences(backend, cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    result = bp.gradcheck(layer, shape, rng=rng, backend=backend)
    assert result.ok, result.message


@pytest.mark.torch
@each_backend
@each_class
@few
@shapes
@example(batch=1, width=1, seed=0)
def test_forward_and_gradients_match_pytorch(backend, cls, batch, width, seed):
    layer, shape, rng = example_of(cls, batch, width, seed)
    result = bp.torch_check(layer, shape, rng=rng, backend=backend)
    assert result.ok, result.message


@pytest.mark.parametrize("backend", ["numpy", *BACKENDS])
def test_the_harness_catches_a_broken_layer_on_every_library(backend):
    class TransposedLinear(Linear):  # bp_param forgets the transpose: X @ grad is not even the right shape
        def bp_param(self, grad):
            return grad.T @ self.X

    result = bp.gradcheck(TransposedLinear(3, 3, rng=np.random.default_rng(0)), (3, 3), backend=backend)
    assert not result.ok and "dW" in result.message


# --- whole epochs: the same numbers on every library ---------------------------------------

def train_on(backend, net, X, y, X_test, y_test, **kwargs):
    net.to(backend)
    on = lambda A: asarray(A, backend)  # noqa: E731
    history = bp.train(net, on(X), on(y), X_test=on(X_test), y_test=on(y_test), rng=np.random.default_rng(1),
                       path="readable", **kwargs)
    return history, [to_numpy(W) for W in net.params()]


def assert_same_epochs(a, b, tol):
    (ha, Wa), (hb, Wb) = a, b
    for name in ("train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "grad_norm"):
        np.testing.assert_allclose(getattr(ha, name), getattr(hb, name), rtol=tol, atol=tol, err_msg=name)
    for W, V in zip(Wa, Wb):
        np.testing.assert_allclose(W, V, rtol=0, atol=tol)


@pytest.mark.torch
def test_one_epoch_of_the_posts_net_on_torch_equals_numpy_to_1e_9(mnist):
    """All 60,000 training images, float64: every weight and every figure of the epoch."""
    (X, y), (X_test, y_test) = mnist
    net = lambda: bp.NeuralNet((784, 32, 10), rng=np.random.default_rng(0), dtype=np.float64)  # noqa: E731
    ours = train_on("numpy", net(), X, y, X_test, y_test, epochs=1)
    theirs = train_on("torch", net(), X, y, X_test, y_test, epochs=1)
    assert_same_epochs(theirs, ours, 1e-9)
    assert ours[0].test_acc == theirs[0].test_acc


def small_cnn(rng):
    return bp.Sequential([Reshape((1, 28, 28)), Conv2d(1, 4, 3, padding=1, rng=rng, dtype=np.float64), ReLU(),
                          MaxPool2d(2), Conv2d(4, 6, 3, stride=2, rng=rng, dtype=np.float64), Tanh(), Flatten(),
                          Dropout(0.2, rng=rng), Linear(6 * 6 * 6, 10, rng=rng, dtype=np.float64)])


@each_backend
def test_a_cnn_with_dropout_and_adam_trains_to_the_numbers_of_numpy(backend, mnist_subset):
    X, y = mnist_subset
    run_on = lambda b: train_on(b, small_cnn(np.random.default_rng(0)), X[:640], y[:640], X[640:840],  # noqa: E731
                                y[640:840], epochs=2, optimizer=bp.Adam(0.002))
    assert_same_epochs(run_on(backend), run_on("numpy"), 1e-9)


OPTIMIZERS = {
    "momentum, nesterov, decay": lambda: bp.SGD(0.001, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adamw, cosine": lambda: bp.AdamW(bp.CosineDecay(0.003, 40)),
}


@each_backend
@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_optimizer_state_lives_on_the_library_and_gives_numpys_numbers(backend, make, mnist_subset):
    X, y = mnist_subset
    net = lambda: bp.NeuralNet((784, 16, 10), rng=np.random.default_rng(0), dtype=np.float64)  # noqa: E731
    seen = []
    kwargs = dict(epochs=2, optimizer=make(), on_checkpoint=lambda h, state: seen.append(state))
    theirs = train_on(backend, net(), X[:1000], y[:1000], X[1000:1200], y[1000:1200], **kwargs)
    moments = [a for value in seen[-1].values() if isinstance(value, list) for a in value]
    assert moments and all(backend_of(a) == backend for a in moments)
    kwargs["optimizer"] = make()
    assert_same_epochs(theirs, train_on("numpy", net(), X[:1000], y[:1000], X[1000:1200], y[1000:1200], **kwargs), 1e-9)


# --- moving nets and model files ----------------------------------------------------------

@each_backend
def test_to_moves_the_weights_bit_for_bit_and_back(backend):
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    before = [W.copy() for W in net.params()]
    assert net.to(backend) is net
    assert all(backend_of(W) == backend for W in net.params())
    assert net.dtype == library(backend).float32
    net.to("numpy")
    for W, V in zip(net.params(), before):
        assert W.dtype == np.float32 and W.tobytes() == V.tobytes()


@each_backend
def test_model_files_saved_on_any_library_load_on_any_other_bit_for_bit(backend, tmp_path, mnist_subset):
    X, y = mnist_subset
    net = small_cnn(np.random.default_rng(0))
    train_on(backend, net, X[:256], y[:256], X[:64], y[:64], epochs=1)  # weights that are not the initial ones
    bp.save(net, tmp_path / "model.npz")
    loaded = bp.load(tmp_path / "model.npz")
    for W, V in zip(net.params(), loaded.params()):
        assert V.dtype == np.float64 and to_numpy(W).tobytes() == V.tobytes()
    for other in ["numpy", *(b if isinstance(b, str) else b.values[0] for b in BACKENDS)]:
        again = bp.load(tmp_path / "model.npz").to(other)
        bp.save(again, tmp_path / f"{other}.npz")
        assert bp.load(tmp_path / f"{other}.npz").params()[0].tobytes() == loaded.params()[0].tobytes()
    P = to_numpy(net.predict_proba(asarray(X[:64], backend)))
    np.testing.assert_allclose(P, loaded.predict_proba(X[:64]), rtol=1e-12, atol=1e-15)


# --- what cannot work says so ---------------------------------------------------------------

@pytest.mark.torch
def test_inputs_of_another_library_than_the_nets_are_a_one_line_error(mnist_subset):
    X, y = mnist_subset
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0)).to("torch")
    with pytest.raises(ValueError, match=r"^train: X is a numpy array on cpu, but the net's weights are torch "
                                         r"arrays on cpu: move one of them") as e:
        bp.train(net, X, y, epochs=1, rng=np.random.default_rng(0))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"^train: y_test is a numpy array"):
        bp.train(net, asarray(X, "torch"), asarray(y, "torch"), X_test=asarray(X, "torch"), y_test=y, epochs=1,
                 rng=np.random.default_rng(0))


@pytest.mark.torch
def test_the_kernel_takes_numpy_only_and_auto_falls_back_to_the_readable_path(mnist_subset):
    X, y = (asarray(A, "torch") for A in mnist_subset)
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0)).to("torch")
    with pytest.raises(ValueError, match="not NumPy arrays"):
        bp.train(net, X, y, epochs=1, rng=np.random.default_rng(0), path="kernel")
    assert bp.train(net, X, y, epochs=1, rng=np.random.default_rng(0)).path == "readable"


@pytest.mark.torch
def test_torch_runs_on_the_threads_it_is_given_and_gets_its_own_back(mnist_subset):
    import torch

    X, y = (asarray(A, "torch") for A in mnist_subset)
    before, during = torch.get_num_threads(), []
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0)).to("torch")
    bp.train(net, X, y, epochs=1, rng=np.random.default_rng(0), threads=1,
             on_epoch=lambda h: during.append(torch.get_num_threads()))
    assert during == [1] and torch.get_num_threads() == before


def test_a_missing_library_or_device_says_what_to_do(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'jax': choose one of numpy, torch, cupy, array_api_strict"):
        library("jax")
    monkeypatch.setitem(sys.modules, "cupy", None)  # as on a machine without CuPy (import raises ImportError)
    with pytest.raises(ImportError, match=r"the cupy backend needs cupy: pip install 'bareprop\[cupy\]'"):
        library("cupy")
    with pytest.raises(ValueError, match="NumPy arrays live on the cpu, not on 'cuda'"):
        asarray(np.zeros(2), "numpy", "cuda")


@pytest.mark.torch
def test_cuda_without_a_gpu_is_a_one_line_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"device 'cuda': PyTorch sees no CUDA GPU on this machine"):
        asarray(np.zeros(2), "torch", "cuda")


# --- the command line: --backend and --device ---------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--backend", "numpy", "--device", "cuda"], "backend numpy runs on the cpu only, not device 'cuda'"),
    (["--backend", "cupy", "--device", "cpu"], "backend cupy runs on cuda only, not device 'cpu'"),
    (["--backend", "torch", "--path", "kernel"], "path 'kernel' trains NumPy arrays only, not backend 'torch' (use path auto or readable)"),
    (["--backend", "cupy", "--device", "cuda"], "backend cupy on cuda: the cupy backend needs cupy: "
                                                "pip install 'bareprop[cupy]'"),
])
def test_backend_flags_that_cannot_work_are_one_line_errors(flags, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["train", "--epochs", "1", "--no-plot", "--output", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert err == f"bareprop: error: {message}\n" and not (tmp_path / "run").exists()


@pytest.mark.torch
def test_train_on_torch_records_backend_and_device_and_resumes_to_the_same_bits(tmp_path, mnist_subset):
    X, y = mnist_subset
    data = X[:2000], y[:2000], X[2000:2500], y[2000:2500]
    settings = dict(epochs=3, hidden=16, plot=False, optimizer="adam", lr=0.003, backend="torch", device="cpu")
    whole = run(RunConfig(output=str(tmp_path / "whole"), **settings), data=data)
    assert backend_of(whole.net.params()[0]) == "torch"
    manifest = json.loads((whole.out / "run.json").read_text())
    assert (manifest["config"]["backend"], manifest["config"]["device"]) == ("torch", "cpu")
    import torch

    assert manifest["versions"]["torch"] == torch.__version__ and manifest["path"] == "readable"

    def stop_after_1(history):
        if len(history.epoch) == 1:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run(RunConfig(output=str(tmp_path / "cut"), **settings), data=data, on_epoch=stop_after_1)
    resume_run(tmp_path / "cut", data=data)
    assert (tmp_path / "cut" / "model.npz").read_bytes() == (whole.out / "model.npz").read_bytes()


@pytest.mark.torch
def test_the_cli_trains_on_torch_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--backend", "torch", "--device", "cpu", "--output", str(out)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("test accuracy 0.9") and "; readable path on torch (cpu), 1 thread; " in last
    assert (out / "report.html").exists() and bp.load(out / "model.npz").sizes == (784, 32, 10)


@pytest.mark.slow
@pytest.mark.torch
def test_the_posts_whole_run_on_torch_reaches_numpys_accuracy(tmp_path, capsys):
    """`bareprop train --backend torch --device cpu`: the post's 10 epochs, to NumPy's accuracy but for float32
    rounding (PyTorch's products round differently from NumPy's BLAS: a few test images of 10,000 may differ)."""
    accuracy = {}
    for name, flags in {"torch": ["--backend", "torch", "--device", "cpu"], "numpy": ["--path", "readable"]}.items():
        assert main(["train", "--no-plot", "--quiet", "--output", str(tmp_path / name), *flags]) == 0
        accuracy[name] = json.loads((tmp_path / name / "run.json").read_text())["history"]["test_acc"][-1]
    capsys.readouterr()
    assert accuracy["numpy"] >= 0.96 and abs(accuracy["torch"] - accuracy["numpy"]) <= 0.001, accuracy


# --- nothing leaves the arrays' device ------------------------------------------------------

def test_every_array_is_made_on_the_inputs_device():
    """array-api-strict has devices of its own and refuses to mix them: a net, its data and everything
    made on the way (padding, patches, ones columns, masks, one-hot rows, the epoch's order, optimizer
    state) on its 'device1' trains and predicts there, as it would on a GPU."""
    import array_api_strict as xs

    device, rng = xs.Device("device1"), np.random.default_rng(0)
    net = bp.Sequential([Reshape((1, 8, 8)), Conv2d(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
                         Flatten(), Dropout(0.2, rng=rng), Linear(3 * 4 * 4, 4, rng=rng)])
    net.to("array_api_strict", device)
    assert all(W.device == device for W in net.params())
    on = lambda A: asarray(A, "array_api_strict", device)  # noqa: E731
    X, y = on(rng.integers(0, 256, (40, 64), dtype=np.uint8)), on(rng.integers(0, 4, 40))
    for optimizer in (bp.Adam(0.01), bp.SGD(0.01, momentum=0.9)):
        history = bp.train(net, X, y, X_test=X, y_test=y, epochs=1, batch_size=16, optimizer=optimizer,
                           rng=np.random.default_rng(1))
        assert np.isfinite(history.test_loss[0])
    assert net.predict(X).device == device and net.predict_proba(X).device == device
    images = on(rng.normal(size=(2, 3, 5, 5)))
    cols = bp.im2col(images, 3, 2, 1)
    assert cols.device == device and bp.col2im(cols, (2, 3, 5, 5), 3, 2, 1).device == device


def test_im2col_and_col2im_keep_the_dtype():
    X = np.random.default_rng(0).normal(size=(2, 3, 5, 5)).astype(np.float32)
    cols = bp.im2col(X, 3, 1, 1)
    assert cols.dtype == np.float32 and bp.col2im(cols, X.shape, 3, 1, 1).dtype == np.float32


def test_numpy_is_its_own_namespace_and_lists_are_taken_as_numpy_arrays(mnist_subset):
    assert library("numpy") is np and namespace(np.zeros(1)) is np
    X, y = mnist_subset
    X = X[:64] / 255  # (64, 784) float64: as a list, floats (a list of ints would be int64, which train refuses)
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0))
    history = bp.train(net, X.tolist(), y[:64].tolist(), X_test=X[:32].tolist(), y_test=y[:32].tolist(),
                       epochs=1, rng=np.random.default_rng(0), path="readable")
    assert history.test_acc[0] == net.score(X[:32], y[:32])[0] == net.score(X[:32].tolist(), y[:32].tolist())[0]
    np.testing.assert_array_equal(net.predict(X[:5].tolist()), net.predict(X[:5]))


@pytest.mark.torch
@pytest.mark.parametrize("which", ["X", "y", "X_test", "y_test"])
def test_each_input_must_be_on_the_nets_library(which, mnist_subset):
    X, y = mnist_subset
    net = bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0)).to("torch")
    inputs = {name: asarray(A, "torch") for name, A in dict(X=X, y=y, X_test=X, y_test=y).items()}
    inputs[which] = np.asarray(inputs[which])  # this one left as NumPy
    with pytest.raises(ValueError, match=rf"^train: {which} is a numpy array on cpu, but the net's weights are torch"):
        bp.train(net, inputs.pop("X"), inputs.pop("y"), epochs=1, rng=np.random.default_rng(0), **inputs)


def test_dropout_draws_float32_uniforms_whatever_the_dtype_or_library():
    """The mask is `uniform >= p_drop` with float32 uniforms from the layer's generator: one stream, so a
    seed gives the same mask in float32 and float64 and on every library."""
    expected = (np.random.default_rng(7).random((6, 5), dtype=np.float32) >= 0.3) / 0.7
    for dtype in (np.float32, np.float64):
        for backend in ("numpy", "array_api_strict"):
            layer = Dropout(0.3, rng=np.random.default_rng(7))
            out = to_numpy(layer(asarray(np.ones((6, 5), dtype), backend)))
            np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_the_registry_checks_run_the_layers_on_the_library_asked_for(monkeypatch):
    """A layer that works on NumPy only (a method the standard lacks) passes on NumPy and fails on
    array-api-strict, in both the finite-difference and the PyTorch checks."""
    class NumPyOnlyReLU(ReLU):
        def __repr__(self):
            return "NumPyOnlyReLU()"

        def bp_input(self, grad):
            return grad.clip(0) * 0 + grad * self.mask  # .clip: a NumPy method, not the standard's

    monkeypatch.setitem(REFERENCES, NumPyOnlyReLU, bp.check.references.Reference(
        build=lambda width, rng: NumPyOnlyReLU(), torch=REFERENCES[ReLU].torch))
    from bareprop.check.gradcheck import check_registered

    def results(backend):
        found = check_registered((3, 4), rng=np.random.default_rng(0), backend=backend)
        return [r for r in found if r.layer == "NumPyOnlyReLU()"]

    assert [r.ok for r in results("numpy")] == [True, True]
    strict = results("array_api_strict")
    assert [r.ok for r in strict] == [False, False] and all("bp_input raised" in r.message for r in strict)
