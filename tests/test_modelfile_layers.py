"""Model files record the layers and losses beyond the post, and load them back bit for bit."""

import json

import numpy as np
import pytest

import bareprop as bp
from bareprop.experiment.modelfile import net_spec


def data(r, n=40, d=6, k=3):
    return r.normal(size=(n, d)).astype(np.float32), r.integers(0, k, size=n)


def round_trip(net, tmp_path, X):
    bp.save(net, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    assert type(loaded) is type(net) and repr(loaded) == repr(net)
    assert loaded.dtype == net.dtype and loaded.sizes == net.sizes
    for a, b in zip(net.params(), loaded.params()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded.score(X, np.zeros(len(X), int)) == net.score(X, np.zeros(len(X), int))
    return loaded


@pytest.mark.parametrize("activation", [bp.GELU, bp.Tanh, bp.Sigmoid, lambda: bp.LeakyReLU(0.2)])
def test_neural_net_with_new_activations_and_dropout_round_trips(tmp_path, activation):
    r = np.random.default_rng(0)
    X, y = data(r)
    net = bp.NeuralNet((6, 8, 5, 3), lr=0.01, rng=r, activation=activation, init=bp.he_uniform, p_drop=0.25)
    bp.train(net, X, y, epochs=2, batch_size=8, rng=r, optimizer=bp.Adam(0.01))
    loaded = round_trip(net, tmp_path, X)
    assert "net" not in net_spec(net)  # a NeuralNet, as the post's files say
    assert [layer["type"] for layer in net_spec(net)["layers"]][:3] == ["Linear", type(net.layers[1]).__name__,
                                                                        "Dropout"]
    bp.train(loaded, X, y, epochs=1, batch_size=8, rng=r)  # and it trains on


@pytest.mark.parametrize("loss", [bp.MSE("mean"), bp.SigmoidBinaryCrossEntropy(), bp.SoftmaxCrossEntropy("mean")])
def test_sequential_with_any_loss_round_trips(tmp_path, loss):
    r = np.random.default_rng(1)
    X, y = data(r)
    net = bp.Sequential([bp.Linear(6, 7, rng=r), bp.LeakyReLU(0.05), bp.Dropout(0.1, rng=r), bp.Linear(7, 4, rng=r),
                         bp.Sigmoid(), bp.Linear(4, 3, rng=r)], loss=loss, lr=0.02)
    bp.train(net, X, y, epochs=1, batch_size=8, rng=r, optimizer=bp.SGD(0.001))
    loaded = round_trip(net, tmp_path, X)
    spec = net_spec(net)
    assert spec["net"] == "Sequential" and spec["loss"]["type"] == type(loss).__name__
    assert loaded.loss.reduction == loss.reduction
    assert spec["layers"][1:3] == [{"type": "LeakyReLU", "slope": 0.05}, {"type": "Dropout", "p_drop": 0.1}]


def write_spec(tmp_path, net, change):
    bp.save(net, tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    spec = json.loads(str(arrays.pop("spec")))
    change(spec)
    np.savez(tmp_path / "bad.npz", spec=np.array(json.dumps(spec)), **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("change, problem", [
    (lambda s: s["layers"].__setitem__(1, {"type": "Softplus"}),
     "the spec's layer {'type': 'Softplus'} is not one this bareprop has (no such layer; it has Linear, ReLU, "),
    (lambda s: s["layers"].__setitem__(2, {"type": "Dropout", "p_drop": 1.5}),
     "does not build a Dropout (Dropout: p_drop must lie in [0, 1), got 1.5)"),
    (lambda s: s["layers"].__setitem__(1, {"type": "LeakyReLU"}), "is not a LeakyReLU as bareprop writes one"),
    (lambda s: s["layers"].__setitem__(1, {"type": "LeakyReLU", "slope": float("inf")}),
     "has slope inf, not a finite number"),
    (lambda s: s.__setitem__("loss", {"type": "SoftmaxCrossEntropy", "reduction": "avg"}), "the spec's loss"),
    (lambda s: s.__setitem__("loss", {"type": "Hinge"}), "the spec's loss {'type': 'Hinge'} is not one this"),
    (lambda s: s.__setitem__("loss", {"type": "MSE", "reduction": float("nan")}), "has reduction nan"),
    (lambda s: s.pop("loss"), "the spec's loss None is not one this bareprop has"),
    (lambda s: s.__setitem__("net", "ResNet"), "the spec's net 'ResNet'"),
    (lambda s: s.pop("net"), "as a NeuralNet"),
])
def test_a_bad_spec_of_the_new_layers_is_a_one_line_error(tmp_path, change, problem):
    r = np.random.default_rng(2)
    net = bp.Sequential([bp.Linear(6, 7, rng=r), bp.GELU(), bp.Dropout(0.1, rng=r), bp.Linear(7, 3, rng=r),
                         bp.Tanh(), bp.Linear(3, 3, rng=r)])
    path = write_spec(tmp_path, net, change)
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_save_refuses_a_loss_it_cannot_describe(tmp_path):
    class Hinge(bp.MSE):
        pass
    net = bp.Sequential([bp.Linear(3, 2, rng=np.random.default_rng(0))], loss=Hinge())
    with pytest.raises(ValueError, match="cannot record loss"):
        bp.save(net, tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())
