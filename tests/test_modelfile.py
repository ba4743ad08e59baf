import io
import json
import os

import numpy as np
import pytest

import bareprop as bp
from bareprop.check.references import REFERENCES, input_shape
from bareprop.core.layers import LAYERS
from bareprop.core.losses import LOSSES
from bareprop.experiment.modelfile import net_spec


def trained_net(dtype=np.float32, sizes=(6, 5, 4, 3)):
    r = np.random.default_rng(0)
    net = bp.NeuralNet(sizes, lr=0.0125, rng=r, dtype=dtype)
    X = r.normal(size=(40, sizes[0])).astype(dtype)
    y = r.integers(0, sizes[-1], size=40)
    bp.train(net, X, y, epochs=2, batch_size=8, rng=r)
    return net, X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_save_then_load_round_trips_bit_for_bit(tmp_path, dtype):
    net, X = trained_net(dtype)
    path = tmp_path / "model.npz"
    bp.save(net, path)
    loaded = bp.load(path)
    assert type(loaded) is bp.NeuralNet and loaded.sizes == net.sizes and loaded.dtype == net.dtype
    assert loaded.lr == 0.001  # a training setting, not part of the model: the default, not net's 0.0125
    assert repr(loaded) == repr(net)
    for a, b in zip(net.params(), loaded.params()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(net.predict_proba(X), loaded.predict_proba(X))
    assert [f for f in os.listdir(tmp_path)] == ["model.npz"]  # no temporary file left behind


def test_the_spec_is_a_list_of_layer_specs(tmp_path):
    net, _ = trained_net()
    bp.save(net, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        spec = json.loads(str(archive["spec"]))
        assert sorted(archive.files) == ["layers.0.W", "layers.2.W", "layers.4.W", "spec"]
    assert spec == net_spec(net)
    assert spec["format"] == "bareprop-model" and spec["version"] == 1
    assert sorted(spec) == ["dtype", "format", "layers", "loss", "version"]  # no "lr": the model, not its training
    assert spec["layers"] == [{"type": "Linear", "in": 6, "out": 5}, {"type": "ReLU"},
                              {"type": "Linear", "in": 5, "out": 4}, {"type": "ReLU"},
                              {"type": "Linear", "in": 4, "out": 3}]


def write_npz(path, arrays, spec_changes=None, spec=None):
    """An .npz file like save() writes, from the given arrays and an edited spec."""
    if spec is None:
        net, _ = trained_net()
        spec = net_spec(net)
        spec.update(spec_changes or {})
    buffer = io.BytesIO()
    np.savez(buffer, spec=np.array(json.dumps(spec)), **arrays)
    path.write_bytes(buffer.getvalue())
    return path


def good_arrays():
    net, _ = trained_net()
    return {f"layers.{i}.W": layer.W for i, layer in enumerate(net.layers) if hasattr(layer, "W")}


def test_the_control_file_loads(tmp_path):
    """The helper above writes a valid file: every case below fails because of its one change."""
    assert bp.load(write_npz(tmp_path / "ok.npz", good_arrays())).sizes == (6, 5, 4, 3)


def bad_cases(tmp_path):
    arrays = good_arrays()
    yield "pickled", "array layers.0.W holds pickled objects", write_npz(
        tmp_path / "pickled.npz", {**arrays, "layers.0.W": np.array([{"a": 1}, None], dtype=object)})
    yield "version", "format version 2 is not supported", write_npz(tmp_path / "v2.npz", arrays, {"version": 2})
    yield "format", "not a bareprop model file", write_npz(tmp_path / "fmt.npz", arrays, {"format": "other"})
    del_one = dict(arrays)
    del del_one["layers.2.W"]
    yield "missing", "missing array layers.2.W", write_npz(tmp_path / "missing.npz", del_one)
    yield "extra", "unexpected array layers.9.W", write_npz(
        tmp_path / "extra.npz", {**arrays, "layers.9.W": np.zeros((2, 2), np.float32)})
    yield "shape", "array layers.2.W has shape (5, 4), the spec says (6, 4)", write_npz(
        tmp_path / "shape.npz", {**arrays, "layers.2.W": arrays["layers.2.W"][:-1]})
    yield "dtype", "array layers.0.W has dtype float64, the spec says float32", write_npz(
        tmp_path / "dtype.npz", {**arrays, "layers.0.W": arrays["layers.0.W"].astype(np.float64)})
    for name, value in [("nan", np.nan), ("inf", -np.inf)]:
        W = arrays["layers.4.W"].copy()
        W[1, 2] = value
        yield name, "array layers.4.W holds NaN or infinite values", write_npz(
            tmp_path / f"{name}.npz", {**arrays, "layers.4.W": W})
    np.savez(tmp_path / "nospec.npz", **arrays)
    yield "no spec", "no 'spec' array", tmp_path / "nospec.npz"
    np.savez(tmp_path / "json.npz", spec=np.array("{not json"), **arrays)
    yield "bad json", "the spec is not valid JSON", tmp_path / "json.npz"
    yield "layer type", "not a network this bareprop can build as a NeuralNet", write_npz(
        tmp_path / "type.npz", arrays, {"layers": [{"type": "Linear", "in": 6, "out": 5}, {"type": "Tanh"},
                                                   {"type": "Linear", "in": 5, "out": 4}, {"type": "ReLU"},
                                                   {"type": "Linear", "in": 4, "out": 3}]})
    yield "sizes", "does not build a Linear", write_npz(
        tmp_path / "sizes.npz", arrays, {"layers": [{"type": "Linear", "in": "six", "out": 5}]})
    yield "size 0", "do not give positive integer sizes", write_npz(
        tmp_path / "size0.npz", arrays, {"layers": [{"type": "Linear", "in": 0, "out": 3}]})
    yield "NaN in spec", "has slope nan, not a finite number", write_npz(
        tmp_path / "nanspec.npz", arrays, {"layers": [{"type": "LeakyReLU", "slope": float("nan")}]})
    good = write_npz(tmp_path / "good.npz", arrays).read_bytes()
    for cut in [len(good) // 3, len(good) - 10]:
        (tmp_path / f"cut{cut}.npz").write_bytes(good[:cut])
        yield f"truncated at {cut}", "truncated or damaged archive", tmp_path / f"cut{cut}.npz"
    (tmp_path / "text.npz").write_text("hello")
    yield "not zip", "not a model file (.npz archive)", tmp_path / "text.npz"
    yield "absent", "cannot read (No such file or directory)", tmp_path / "absent.npz"


def test_every_bad_file_is_a_one_line_error_naming_file_and_problem(tmp_path):
    cases = list(bad_cases(tmp_path))
    assert len(cases) == 19
    for name, problem, path in cases:
        with pytest.raises(bp.ModelFileError) as caught:
            bp.load(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and problem in message and "\n" not in message, (name, message)


def test_save_refuses_a_layer_it_cannot_describe(tmp_path):
    net, _ = trained_net()
    net.layers.append(object())
    with pytest.raises(ValueError, match="cannot record layer"):
        bp.save(net, tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_a_failed_save_leaves_the_old_file(tmp_path):
    net, _ = trained_net()
    path = tmp_path / "m.npz"
    bp.save(net, path)
    before = path.read_bytes()
    net.layers.append(object())
    with pytest.raises(ValueError):
        bp.save(net, path)
    assert path.read_bytes() == before


# --- every layer and loss comes back from its spec -------------------------------------------

def in_a_net(example, rng):
    """A Sequential taking rows of 4 numbers that holds `example` (a layer of width 4, a layer on images
    or a loss), and the index of the example's layer."""
    if example.__class__ in LOSSES:
        return bp.Sequential([bp.Linear(4, 3, rng=rng)], loss=example), None
    if isinstance(example, bp.Reshape):  # rows of any width into images, then back into rows
        return bp.Sequential([example, bp.Flatten(), bp.Linear(example.in_features, 3, rng=rng)]), 0
    shape = input_shape(example, 1, 4, rng)
    if len(shape) == 4:  # a layer on images: between rows made images and images made rows
        width = example(np.zeros(shape, np.float32)).size  # what it gives one example
        rows_in = bp.Reshape(shape[1:])
        layers = [rows_in, example] + ([] if isinstance(example, bp.Flatten) else [bp.Flatten()])
        return bp.Sequential([*layers, bp.Linear(width, 3, rng=rng)]), 1
    if hasattr(example, "W"):
        return bp.Sequential([example]), 0
    return bp.Sequential([bp.Linear(4, 4, rng=rng), example, bp.Linear(4, 3, rng=rng)]), 1


@pytest.mark.parametrize("cls", LAYERS + LOSSES, ids=lambda cls: cls.__name__)
def test_every_layer_and_loss_round_trips_through_its_spec(tmp_path, cls):
    rng = np.random.default_rng(3)
    example = REFERENCES[cls].build(4, rng)
    net, i = in_a_net(example, rng)
    bp.save(net, tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    back = loaded.loss if i is None else loaded.layers[i]
    assert type(back) is cls and back.spec() == example.spec() and repr(back) == repr(example)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        spec = json.loads(str(archive["spec"]))
    assert (spec["loss"] if i is None else spec["layers"][i]) == {"type": cls.__name__, **example.spec()}
    X = rng.normal(size=(5, net.sizes[0])).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))


def refused_layer(tmp_path, layer):
    """(path, message): a good model file whose second layer's spec is `layer`, and load's refusal of it."""
    spec = net_spec(trained_net()[0])
    spec["layers"][1] = layer
    path = write_npz(tmp_path / "m.npz", good_arrays(), spec=spec)
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    return path, str(caught.value)


@pytest.mark.parametrize("bad", [
    {"type": "LeakyReLU", "slope": float("nan")},
    {"type": "LeakyReLU", "slope": float("inf")},
    {"type": "Dropout", "p_drop": float("-inf")},
    {"type": "Linear", "in": 6, "out": float("nan")},
    {"type": "Reshape", "shape": [1, float("nan"), 3]},
    {"type": "Reshape", "shape": [1, "2", 3]},
])
def test_a_nan_or_infinite_number_in_a_spec_is_refused(tmp_path, bad):
    path, message = refused_layer(tmp_path, bad)
    assert message.startswith(f"{path}: the spec's layer ") and "not a finite number" in message
    assert "\n" not in message


def test_save_refuses_a_setting_json_cannot_hold(tmp_path):
    rng = np.random.default_rng(0)
    net = bp.Sequential([bp.Linear(3, 4, rng=rng), bp.LeakyReLU(float("nan")), bp.Linear(4, 2, rng=rng)])
    with pytest.raises(ValueError, match=r"cannot record layer LeakyReLU\(nan\): its slope is nan"):
        bp.save(net, tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad, problem", [
    ({"type": "Linear", "in": 6, "out": 5, "bias": True}, "has bias True, not a finite number"),
    ({"type": "Linear", "in": 6, "out": 5, "bias": 1}, "does not build a Linear"),
    ({"type": "Linear", "in": 6}, "does not build a Linear"),
    ({"type": "Linear", "in": 6.0, "out": 5}, "does not build a Linear"),
    ({"type": "Linear", "width": 6, "out": 5}, "is not a Linear as bareprop writes one (such as {'type': 'Linear', "
                                               "'in': 6, 'out': 5})"),
    ({"type": "ReLU", "slope": 0.1}, "does not build a ReLU"),
    ({"type": "LeakyReLU"}, "is not a LeakyReLU as bareprop writes one (such as {'type': 'LeakyReLU', 'slope': 0.01})"),
    ({"type": "Dropout", "p_drop": 1.0}, "does not build a Dropout (Dropout: p_drop must lie in [0, 1), got 1.0)"),
    ({"type": "Dropout", "p": 0.1}, "is not a Dropout as bareprop writes one"),
    ({"type": "relu"}, "is not one this bareprop has (no such layer; it has Linear, ReLU,"),
    ("ReLU", "is not one this bareprop has"),
])
def test_a_layer_spec_must_hold_exactly_the_layers_settings(tmp_path, bad, problem):
    path, message = refused_layer(tmp_path, bad)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message, message


def test_an_old_file_that_recorded_lr_still_loads(tmp_path):
    """Version-1 files written before the model file stopped recording the lr: it is read and ignored."""
    net, X = trained_net()
    new = net_spec(net)
    old = {"format": new["format"], "version": 1, "dtype": new["dtype"], "lr": 0.0125, "layers": new["layers"],
           "loss": new["loss"]}  # exactly what bareprop wrote then
    loaded = bp.load(write_npz(tmp_path / "old.npz", good_arrays(), spec=old))
    assert type(loaded) is bp.NeuralNet and repr(loaded) == repr(net) and loaded.lr == 0.001
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert bp.load(write_npz(tmp_path / "odd.npz", good_arrays(), spec={**old, "lr": "fast"})).sizes == net.sizes


def test_load_draws_nothing_from_its_generator(tmp_path):
    """Loading builds placeholder weights without drawing: a loaded net's Dropout draws from rng as given."""
    bp.save(bp.NeuralNet((6, 5, 3), rng=np.random.default_rng(0), p_drop=0.5), tmp_path / "m.npz")
    rng = np.random.default_rng(11)
    loaded = bp.load(tmp_path / "m.npz", rng=rng)
    assert loaded.layers[2].rng is rng
    assert rng.random() == np.random.default_rng(11).random()


# --- a file that does not back its spec is refused before anything is read or allocated -------------

def zip_of(path, members):
    """A zip archive of the given member names -> bytes, written as np.savez would (stored)."""
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of a duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def with_central_size(data, member, size):
    """The archive's bytes with the uncompressed size of `member` in the central directory set to `size`."""
    import struct

    data = bytearray(data)
    at = data.find(b"PK\x01\x02")  # each central directory entry: name length at +28, name at +46, size at +24
    while at != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, at + 24, size)
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def test_a_spec_far_larger_than_its_arrays_is_refused_at_once(tmp_path):
    """A 100 kB file whose spec says Linear(784, 10**6): refused from the headers, nothing allocated."""
    import time
    import tracemalloc

    net = bp.NeuralNet((784, 32, 10), rng=np.random.default_rng(0))
    spec = net_spec(net)
    spec["layers"] = [{"type": "Linear", "in": 784, "out": 10**6}, {"type": "ReLU"},
                      {"type": "Linear", "in": 10**6, "out": 10}]
    path = write_npz(tmp_path / "m.npz", {f"layers.{i}.W": net.layers[i].W for i in (0, 2)}, spec=spec)
    assert path.stat().st_size < 120_000
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    seconds, (_, peak) = time.perf_counter() - start, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(caught.value) == f"{path}: array layers.0.W has shape (785, 32), the spec says (785, 1000000)"
    assert seconds < 1 and peak < 5 * 2**20, (seconds, peak)


def test_a_member_whose_size_is_not_its_headers_is_refused(tmp_path):
    """A zip bomb, or a damaged member: the size the archive declares must be what the array needs."""
    good = write_npz(tmp_path / "good.npz", good_arrays()).read_bytes()
    path = tmp_path / "bomb.npz"
    path.write_bytes(with_central_size(good, "layers.0.W.npy", 10**9))
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == f"{path}: array layers.0.W takes 1000000000 bytes in the archive; its header says 268"


def test_arrays_that_would_take_more_than_the_cap_once_read_are_refused(tmp_path, monkeypatch):
    """Compressed arrays that honestly inflate past MAX_FILE (here lowered to 4 kB) are not inflated."""
    from bareprop.experiment import modelfile

    net = bp.NeuralNet((6, 200, 3), rng=np.random.default_rng(0))
    arrays = {f"layers.{i}.W": np.zeros_like(net.layers[i].W) for i in (0, 2)}
    path = tmp_path / "m.npz"
    np.savez_compressed(path, spec=np.array(json.dumps(net_spec(net))), **arrays)
    monkeypatch.setattr(modelfile, "MAX_FILE", 4096)
    assert path.stat().st_size < 4096
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == f"{path}: its arrays take 8.07 KiB once read, more than the 4 KiB bareprop reads from a model file"


def test_a_member_with_an_odd_name_is_refused(tmp_path):
    members = [("spec.npy", npy(np.array(json.dumps(net_spec(trained_net()[0]))))), ("../notes.txt", b"hello")]
    path = zip_of(tmp_path / "m.npz", members)
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == (f"{path}: the archive holds '../notes.txt', which is not an array bareprop writes "
                                 "(spec, layers.<i>.W)")


def test_a_member_held_twice_is_refused(tmp_path):
    spec = npy(np.array(json.dumps(net_spec(trained_net()[0]))))
    path = zip_of(tmp_path / "m.npz", [("spec.npy", spec), ("spec.npy", spec)])
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == f"{path}: the archive holds 'spec.npy' twice"


def test_a_spec_over_1_mib_is_refused(tmp_path):
    path = zip_of(tmp_path / "m.npz", [("spec.npy", npy(np.array("x" * 300_000)))])
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == f"{path}: the 'spec' array takes 1200128 bytes in the archive; a spec has at most 1048576"


def test_a_spec_nested_too_deeply_is_one_line(tmp_path):
    path = zip_of(tmp_path / "m.npz", [("spec.npy", npy(np.array("[" * 100_000 + "]" * 100_000)))])
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the spec is not valid JSON (maximum recursion depth") and "\n" not in message


def test_a_model_file_over_1_gib_is_refused_unread(tmp_path):
    path = tmp_path / "m.npz"
    with open(path, "wb") as f:
        f.truncate(2**30 + 1)  # sparse: no room on disk, and never read
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load(path)
    assert str(caught.value) == f"{path}: 1 GiB (1073741825 bytes), more than the 1 GiB bareprop reads from a model file"


def test_dev_zero_as_a_model_file_is_refused(tmp_path):
    with pytest.raises(bp.ModelFileError) as caught:
        bp.load("/dev/zero")
    assert str(caught.value) == "/dev/zero: is a character device, expected a file"
