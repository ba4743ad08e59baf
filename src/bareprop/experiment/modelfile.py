"""Model files: a net's weights plus a JSON spec of its architecture, in one .npz archive.

The archive holds
    spec        a 0-d unicode array: JSON {"format": "bareprop-model", "version": 1, "dtype",
                "layers": [{"type": "Linear", "in": 784, "out": 32}, {"type": "ReLU"}, ...], "loss",
                and "net": "Sequential" for a net that is not a NeuralNet}
    layers.i.W  the weight matrix of layer i (i indexes "layers"), shape (in+1, out)
Each layer (and the loss) is written as {"type": its class name, **its spec()} and read back as
cls(*settings), cls looked up in bareprop's LAYERS (LOSSES): the layers say what they need, not this
file. Training settings (the lr) are not part of a model; older files that recorded "lr" still load.
Loading never unpickles (allow_pickle=False) and checks everything against the spec; each problem
is a ModelFileError whose one-line message names the file.
"""

import copy
import inspect
import io
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..core.layers import LAYERS, Dropout
from ..core.losses import LOSSES
from ..core.net import NeuralNet, Sequential
from ..files import atomic_write

FORMAT = "bareprop-model"
VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or not a valid bareprop model."""


# --- writing ----------------------------------------------------------------------------

def _entry(obj, kinds, what):
    """{"type": class name, **obj.spec()} for a layer or loss whose class is one of `kinds`."""
    if type(obj) not in kinds:
        raise ValueError(f"save: cannot record {what} {obj!r}: {type(obj).__name__} is not one of bareprop's "
                         f"{what}s ({', '.join(cls.__name__ for cls in kinds)})")
    settings = obj.spec()
    bad = _bad_setting(settings)
    if bad is not None:
        raise ValueError(f"save: cannot record {what} {obj!r}: its {bad} is {settings[bad]!r}, not a finite number")
    return {"type": type(obj).__name__, **settings}


def _entries(net):
    """(the layers' entries, the loss's entry): what a model file says of the net's architecture."""
    return [_entry(layer, LAYERS, "layer") for layer in net.layers], _entry(net.loss, LOSSES, "loss")


def net_spec(net):
    """The architecture of `net` as a JSON-able dict (no weights)."""
    layers, loss = _entries(net)
    spec = {"format": FORMAT, "version": VERSION, "dtype": net.dtype.name, "layers": layers, "loss": loss}
    if type(net) is not NeuralNet:
        spec["net"] = "Sequential"
    return spec


def save(net, path):
    """Write `net` (a NeuralNet or Sequential) to `path` (.npz): under a temporary name, renamed once complete."""
    arrays = {"spec": np.array(json.dumps(net_spec(net), allow_nan=False))}
    for i, layer in enumerate(net.layers):
        if hasattr(layer, "W"):
            arrays[f"layers.{i}.W"] = layer.W
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(Path(path), buffer.getvalue())


# --- reading ----------------------------------------------------------------------------

def load(path, *, rng=None):
    """Read a NeuralNet (or Sequential) written by save(); raise ModelFileError naming the file on any problem.

    rng is the generator that Dropout layers draw their masks from if the net is trained further
    (inference never draws); default np.random.default_rng(0). The net's lr is the default: a model
    file records no training settings."""
    path = Path(path)

    def fail(problem):
        return ModelFileError(f"{path}: {problem}")

    arrays = _read_arrays(path, fail)
    if "spec" not in arrays:
        raise fail("no 'spec' array: not a bareprop model file")
    spec = _parse_spec(arrays.pop("spec"), fail)
    net = _build(spec, fail, np.random.default_rng(0) if rng is None else rng)
    expected = {f"layers.{i}.W": layer for i, layer in enumerate(net.layers) if hasattr(layer, "W")}
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


def _bad_setting(settings):
    """The name of the first setting that is not a string or a finite number, or None if all are."""
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):  # not null, a list, true/false
            return name
        if isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity: JSON that Python reads
            return name
    return None


def _placeholder(rng, fan_in, fan_out, dtype):
    """Zero weights, drawing nothing from rng: load() replaces them with the file's."""
    return np.zeros((fan_in, fan_out), dtype)  # (fan_in, fan_out)


def _from_spec(spec, kinds, what, fail, **available):
    """The layer (or loss) one spec describes, built as cls(*settings, **what its constructor takes of
    `available`: rng, dtype, init); it must give back exactly this spec, so no setting is lost or guessed."""
    by_name = {cls.__name__: cls for cls in kinds}
    if not isinstance(spec, dict) or spec.get("type") not in by_name:
        raise fail(f"the spec's {what} {spec!r} is not one this bareprop has (no such {what}; it has "
                   f"{', '.join(by_name)})")
    cls, settings = by_name[spec["type"]], {k: v for k, v in spec.items() if k != "type"}
    bad = _bad_setting(settings)
    if bad is not None:
        raise fail(f"the spec's {what} {spec!r} has {bad} {settings[bad]!r}, not a finite number")
    takes = inspect.signature(cls).parameters
    try:
        built = cls(*settings.values(), **{k: v for k, v in available.items() if k in takes})
    except (TypeError, ValueError, OverflowError, MemoryError) as e:
        raise fail(f"the spec's {what} {spec!r} does not build a {cls.__name__} ({_one_line(e)})") from None
    if built.spec() != settings:
        raise fail(f"the spec's {what} {spec!r} is not a {cls.__name__} as bareprop writes one "
                   f"(such as {_entry(built, kinds, what)})")
    return built


def _one_line(error):
    return (str(error).splitlines() or [type(error).__name__])[0]


def _as_neural_net(net, rng):
    """The NeuralNet with exactly the layers and loss of the Sequential `net`, or None if no NeuralNet has them."""
    p_drop = next((layer.p_drop for layer in net.layers if type(layer) is Dropout), 0.0)
    like = NeuralNet(net.sizes, rng=rng, dtype=net.dtype, init=_placeholder, p_drop=p_drop,
                     activation=lambda: copy.copy(net.layers[1]))  # a fresh layer like the one after the first Linear
    return like if _entries(like) == _entries(net) else None


def _build(spec, fail, rng):
    """The NeuralNet (or Sequential) the spec describes, its weights placeholders that load() overwrites.
    An "lr" in the spec (version-1 files before bareprop stopped recording it) is ignored."""
    dtype, layers, kind = spec.get("dtype"), spec.get("layers"), spec.get("net", "NeuralNet")
    if dtype not in ("float32", "float64"):
        raise fail(f"the spec's dtype {dtype!r} is not float32 or float64")
    if not isinstance(layers, list):
        raise fail("the spec's layers are not a list of layer specs")
    if kind not in ("NeuralNet", "Sequential"):
        raise fail(f"the spec's net {kind!r} is not NeuralNet or Sequential")
    built = [_from_spec(layer, LAYERS, "layer", fail, rng=rng, dtype=np.dtype(dtype), init=_placeholder)
             for layer in layers]
    loss = _from_spec(spec.get("loss"), LOSSES, "loss", fail)
    try:
        net = Sequential(built, loss)
    except ValueError as e:
        raise fail(f"the spec does not describe a network this bareprop can build ({_one_line(e)})") from None
    if not all(size > 0 for size in net.sizes):
        raise fail(f"the spec's layers {layers} do not give positive integer sizes")
    if kind == "NeuralNet":
        net = _as_neural_net(net, rng)
        if net is None:
            raise fail(f"the spec's layers {layers} and loss {spec['loss']} are not a network this bareprop can "
                       "build as a NeuralNet (Linear, then an activation, maybe Dropout, and Linear in turn; "
                       "SoftmaxCrossEntropy)")
    return net
