"""Model files: a NeuralNet's weights plus a JSON spec of its architecture, in one .npz archive.

The archive holds
    spec        a 0-d unicode array: JSON {"format": "bareprop-model", "version": 1, "dtype", "lr",
                "layers": [{"type": "Linear", "in": 784, "out": 32}, {"type": "ReLU"}, ...], "loss"}
    layers.i.W  the weight matrix of layer i (i indexes "layers"), shape (in+1, out)
Loading never unpickles (allow_pickle=False) and checks everything against the spec; each problem
is a ModelFileError whose one-line message names the file.
"""

import io
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

FORMAT = "bareprop-model"
VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or not a valid bareprop model."""


def layer_spec(layer):
    """The JSON-able description of one layer; new layer types add a line here and in _build."""
    from .layers import Linear, ReLU

    if isinstance(layer, Linear):
        return {"type": "Linear", "in": layer.in_features, "out": layer.out_features}
    if isinstance(layer, ReLU):
        return {"type": "ReLU"}
    raise ValueError(f"save: cannot record layer {layer!r}: no spec for {type(layer).__name__}")


def net_spec(net):
    """The architecture of `net` as a JSON-able dict (no weights)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": net.dtype.name,
        "lr": net.lr,
        "layers": [layer_spec(layer) for layer in net.layers],
        "loss": {"type": type(net.loss).__name__},
    }


def save(net, path):
    """Write `net` to `path` (.npz): under a temporary name, renamed once complete."""
    from .files import atomic_write

    arrays = {"spec": np.array(json.dumps(net_spec(net)))}
    for i, layer in enumerate(net.layers):
        if hasattr(layer, "W"):
            arrays[f"layers.{i}.W"] = layer.W
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(Path(path), buffer.getvalue())


def load(path):
    """Read a NeuralNet written by save(); raise ModelFileError naming the file on any problem."""
    path = Path(path)

    def fail(problem):
        return ModelFileError(f"{path}: {problem}")

    arrays = _read_arrays(path, fail)
    if "spec" not in arrays:
        raise fail("no 'spec' array: not a bareprop model file")
    spec = _parse_spec(arrays.pop("spec"), fail)
    net, expected = _build(spec, fail)
    missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing:
        raise fail(f"missing array{'s' * (len(missing) > 1)} {', '.join(missing)}")
    if extra:
        raise fail(f"unexpected array{'s' * (len(extra) > 1)} {', '.join(extra)}")
    for name, layer in expected.items():
        W = arrays[name]
        if W.shape != layer.W.shape:
            raise fail(f"array {name} has shape {W.shape}, the spec says {layer.W.shape}")
        if W.dtype != net.dtype:
            raise fail(f"array {name} has dtype {W.dtype}, the spec says {net.dtype}")
        if not np.isfinite(W).all():
            raise fail(f"array {name} holds NaN or infinite values")
        layer.W = W
    return net


def _read_arrays(path, fail):
    """Every array of the archive, read eagerly so that any damage shows here."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    if not raw.startswith(b"PK"):
        raise fail("not a model file (.npz archive)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            names = list(archive.files)
            arrays = {}
            for name in names:
                try:
                    arrays[name] = archive[name]
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        raise fail(f"array {name} holds pickled objects, which bareprop never loads") from None
                    raise fail(f"array {name} is damaged ({e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise fail(f"truncated or damaged archive ({e})") from None
    return arrays


def _parse_spec(array, fail):
    if array.dtype.kind != "U" or array.shape != ():
        raise fail("the 'spec' array is not a JSON string")
    try:
        spec = json.loads(str(array))
    except json.JSONDecodeError as e:
        raise fail(f"the spec is not valid JSON ({e})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise fail(f"the spec does not say format {FORMAT!r}: not a bareprop model file")
    if spec.get("version") != VERSION:
        raise fail(f"format version {spec.get('version')!r} is not supported (this bareprop reads version {VERSION})")
    return spec


def _build(spec, fail):
    """A NeuralNet with the spec's architecture and {array name: layer} for the arrays it needs.

    The weights it is built with are placeholders, overwritten by load()."""
    from .net import NeuralNet

    layers, lr, dtype = spec.get("layers"), spec.get("lr"), spec.get("dtype")
    if dtype not in ("float32", "float64"):
        raise fail(f"the spec's dtype {dtype!r} is not float32 or float64")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise fail(f"the spec's lr {lr!r} is not a positive number")
    if spec.get("loss") != {"type": "SoftmaxCrossEntropy"}:
        raise fail(f"the spec's loss {spec.get('loss')!r} is not SoftmaxCrossEntropy")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise fail("the spec's layers are not a list of layer specs")
    linears = [layer for layer in layers if layer.get("type") == "Linear"]
    sizes = [layer.get("in") for layer in linears[:1]] + [layer.get("out") for layer in linears]
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise fail(f"the spec's layers {layers} do not give positive integer sizes")
    try:
        net = NeuralNet(sizes, lr=lr, rng=np.random.default_rng(0), dtype=dtype)
    except ValueError as e:
        raise fail(f"the spec does not describe a network this bareprop can build ({e})") from None
    if [layer_spec(layer) for layer in net.layers] != layers:
        raise fail(f"the spec's layers {layers} are not a network this bareprop can build "
                   "(Linear, then ReLU and Linear in turn)")
    expected = {f"layers.{i}.W": layer for i, layer in enumerate(net.layers) if hasattr(layer, "W")}
    return net, expected
