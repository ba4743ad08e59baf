"""Model files: a NeuralNet's weights plus a JSON spec of its architecture, in one .npz archive.

The archive holds
    spec        a 0-d unicode array: JSON {"format": "bareprop-model", "version": 1, "dtype", "lr",
                "layers": [{"type": "Linear", "in": 784, "out": 32}, {"type": "ReLU"}, ...], "loss",
                and "net": "Sequential" for a net that is not a NeuralNet}
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
    """The JSON-able description of one layer; new layer types add a line here and in _layer."""
    from .layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh

    if type(layer) is Linear:
        return {"type": "Linear", "in": layer.in_features, "out": layer.out_features}
    if type(layer) is LeakyReLU:
        return {"type": "LeakyReLU", "slope": layer.slope}
    if type(layer) is Dropout:
        return {"type": "Dropout", "p_drop": layer.p_drop}
    if type(layer) in (ReLU, Sigmoid, Tanh, GELU):
        return {"type": type(layer).__name__}
    raise ValueError(f"save: cannot record layer {layer!r}: no spec for {type(layer).__name__}")


def loss_spec(loss):
    """The JSON-able description of the loss: its type, and its reduction unless it is the default "sum"."""
    from .losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy

    if type(loss) not in (SoftmaxCrossEntropy, MSE, SigmoidBinaryCrossEntropy):
        raise ValueError(f"save: cannot record loss {loss!r}: no spec for {type(loss).__name__}")
    return {"type": type(loss).__name__, **({"reduction": loss.reduction} if loss.reduction != "sum" else {})}


def net_spec(net):
    """The architecture of `net` as a JSON-able dict (no weights)."""
    from .net import NeuralNet

    spec = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": net.dtype.name,
        "lr": net.lr,
        "layers": [layer_spec(layer) for layer in net.layers],
        "loss": loss_spec(net.loss),
    }
    if type(net) is not NeuralNet:
        spec["net"] = "Sequential"
    return spec


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


def load(path, *, rng=None):
    """Read a NeuralNet (or Sequential) written by save(); raise ModelFileError naming the file on any problem.

    rng is the generator that Dropout layers draw their masks from if the net is trained further
    (inference never draws); default np.random.default_rng(0)."""
    path = Path(path)

    def fail(problem):
        return ModelFileError(f"{path}: {problem}")

    arrays = _read_arrays(path, fail)
    if "spec" not in arrays:
        raise fail("no 'spec' array: not a bareprop model file")
    spec = _parse_spec(arrays.pop("spec"), fail)
    net, expected = _build(spec, fail, np.random.default_rng(0) if rng is None else rng)
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


def _layer(spec, dtype, rng):
    """The layer one layer spec describes (a Linear with placeholder weights), or None if unknown."""
    from .layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh

    kind, args = spec.get("type"), {k: v for k, v in spec.items() if k != "type"}
    number = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    if kind == "Linear" and set(args) == {"in", "out"}:
        return Linear(args["in"], args["out"], rng=rng, dtype=dtype)
    if kind == "LeakyReLU" and set(args) == {"slope"} and number(args["slope"]):
        return LeakyReLU(args["slope"])
    if kind == "Dropout" and set(args) == {"p_drop"} and number(args["p_drop"]) and 0 <= args["p_drop"] < 1:
        return Dropout(args["p_drop"], rng=rng)
    plain = {"ReLU": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "GELU": GELU}
    if kind in plain and not args:
        return plain[kind]()
    return None


def _loss(spec, fail):
    from .losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy

    kinds = {cls.__name__: cls for cls in (SoftmaxCrossEntropy, MSE, SigmoidBinaryCrossEntropy)}
    reduction = spec.get("reduction", "sum") if isinstance(spec, dict) else None
    if (not isinstance(spec, dict) or spec.get("type") not in kinds or set(spec) - {"type", "reduction"}
            or reduction not in ("sum", "mean")):
        raise fail(f"the spec's loss {spec!r} is not SoftmaxCrossEntropy, MSE or SigmoidBinaryCrossEntropy")
    return kinds[spec["type"]](reduction)


def _as_neural_net(layers, loss, lr, dtype, rng):
    """The NeuralNet whose layers have exactly these specs, or None if no NeuralNet does."""
    from .losses import SoftmaxCrossEntropy
    from .net import NeuralNet

    if type(loss) is not SoftmaxCrossEntropy or loss.reduction != "sum":
        return None
    linears = [spec for spec in layers if spec.get("type") == "Linear"]
    sizes = [spec["in"] for spec in linears[:1]] + [spec["out"] for spec in linears]
    activation = layers[1] if len(layers) > 1 else {"type": "ReLU"}
    p_drop = next((spec["p_drop"] for spec in layers if spec.get("type") == "Dropout"), 0.0)
    try:
        net = NeuralNet(sizes, lr=lr, rng=rng, dtype=dtype, activation=lambda: _layer(activation, dtype, rng),
                        p_drop=p_drop)
        return net if [layer_spec(layer) for layer in net.layers] == layers else None
    except (ValueError, TypeError, AttributeError, KeyError):  # no NeuralNet has these layers
        return None


def _build(spec, fail, rng):
    """A NeuralNet (or Sequential) with the spec's architecture and {array name: layer} for the
    arrays it needs. The weights it is built with are placeholders, overwritten by load()."""
    from .net import Sequential

    layers, lr, dtype = spec.get("layers"), spec.get("lr"), spec.get("dtype")
    if dtype not in ("float32", "float64"):
        raise fail(f"the spec's dtype {dtype!r} is not float32 or float64")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise fail(f"the spec's lr {lr!r} is not a positive number")
    loss = _loss(spec.get("loss"), fail)
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise fail("the spec's layers are not a list of layer specs")
    linears = [layer for layer in layers if layer.get("type") == "Linear"]
    sizes = [layer.get("in") for layer in linears[:1]] + [layer.get("out") for layer in linears]
    if len(sizes) < 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise fail(f"the spec's layers {layers} do not give positive integer sizes")
    if spec.get("net", "NeuralNet") not in ("NeuralNet", "Sequential"):
        raise fail(f"the spec's net {spec.get('net')!r} is not NeuralNet or Sequential")
    net = _as_neural_net(layers, loss, lr, dtype, rng) if spec.get("net", "NeuralNet") == "NeuralNet" else None
    if net is None:
        built = [_layer(layer, dtype, rng) for layer in layers]
        unknown = [layer for layer, made in zip(layers, built) if made is None]
        if unknown:
            raise fail(f"the spec's layers {layers} are not a network this bareprop can build "
                       f"(no such layer: {unknown[0]})")
        try:
            net = Sequential(built, loss, lr)
        except ValueError as e:
            raise fail(f"the spec does not describe a network this bareprop can build ({e})") from None
        if spec.get("net", "NeuralNet") == "NeuralNet":
            raise fail(f"the spec's layers {layers} are not a network this bareprop can build as a NeuralNet "
                       "(Linear, then an activation, maybe Dropout, and Linear in turn)")
    expected = {f"layers.{i}.W": layer for i, layer in enumerate(net.layers) if hasattr(layer, "W")}
    return net, expected
