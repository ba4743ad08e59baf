"""Model files: a net's weights plus a JSON spec of its architecture, in one .npz archive.

The archive holds
    spec        a 0-d unicode array: JSON {"format": "bareprop-model", "version": 1, "dtype",
                "layers": [{"type": "Linear", "in": 784, "out": 32}, {"type": "ReLU"}, ...], "loss",
                and "net": "Sequential" for a net that is not a NeuralNet}
    layers.i.W  the weight matrix of layer i (i indexes "layers"), shape (in+1, out)
Each layer (and the loss) is written as {"type": its class name, **its spec()} and read back as
cls(*settings), cls looked up in bareprop's LAYERS (LOSSES): the layers say what they need, not this
file. Training settings (the lr) are not part of a model; older files that recorded "lr" still load.
Loading never unpickles (allow_pickle=False) and checks everything against the spec before it reads
an array: the file (a regular file, at most MAX_FILE bytes), the members' names, then each member's
.npy header and size against the shape the spec gives it, so nothing is allocated for a spec that
the file does not back. Each problem is a ModelFileError whose one-line message names the file.
"""

import copy
import inspect
import io
import json
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..core.arrays import to_numpy
from ..core.layers import LAYERS, Dropout
from ..core.losses import LOSSES
from ..core.net import NeuralNet, Sequential
from ..data.reading import read_file, size_text
from ..files import atomic_write

FORMAT = "bareprop-model"
VERSION = 1
MAX_FILE = 2**30  # the largest model file read, and the most its arrays may take once read (1 GiB)
MAX_SPEC = 2**20  # the largest 'spec' array (1 MiB; the post's spec is 300 bytes)
MEMBER = re.compile(r"(spec|layers\.(0|[1-9][0-9]*)\.W)\.npy")  # the archive's members: spec.npy, layers.<i>.W.npy


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
    dtype = to_numpy(net.params()[0]).dtype.name  # "float32": the weights' dtype, whatever their array library
    spec = {"format": FORMAT, "version": VERSION, "dtype": dtype, "layers": layers, "loss": loss}
    if type(net) is not NeuralNet:
        spec["net"] = "Sequential"
    return spec


def save(net, path):
    """Write `net` (a NeuralNet or Sequential) to `path` (.npz): under a temporary name, renamed once complete."""
    arrays = {"spec": np.array(json.dumps(net_spec(net), allow_nan=False))}
    for i, layer in enumerate(net.layers):
        if hasattr(layer, "W"):
            arrays[f"layers.{i}.W"] = to_numpy(layer.W)  # the same bits, from any array library
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

    with _open_archive(path, fail) as archive:
        members = _members(archive, fail)  # "spec", "layers.0.W", ... -> ZipInfo
        if "spec" not in members:
            raise fail("no 'spec' array: not a bareprop model file")
        spec = _parse_spec(archive, members.pop("spec"), fail)
        net = _build(spec, fail, np.random.default_rng(0) if rng is None else rng)
        expected = {f"layers.{i}.W": layer for i, layer in enumerate(net.layers) if hasattr(layer, "W")}
        missing, extra = sorted(set(expected) - set(members)), sorted(set(members) - set(expected))
        if missing:
            raise fail(f"missing array{'s' * (len(missing) > 1)} {', '.join(missing)}")
        if extra:
            raise fail(f"unexpected array{'s' * (len(extra) > 1)} {', '.join(extra)}")
        total = sum(_check_header(archive, members[name], name, layer.W.shape, net.dtype, fail)
                    for name, layer in expected.items())  # headers only: no array read yet
        if total > MAX_FILE:
            raise fail(f"its arrays take {size_text(total)} once read, more than the {size_text(MAX_FILE)} "
                       "bareprop reads from a model file")
        for name, layer in expected.items():
            W = _read_member(archive, members[name], name, fail)
            if not np.isfinite(W).all():
                raise fail(f"array {name} holds NaN or infinite values")
            layer.W = W
    return net


def _open_archive(path, fail):
    """The model file as a zipfile.ZipFile: a regular file of at most MAX_FILE bytes that is a zip archive."""
    try:
        raw = read_file(path, MAX_FILE, "a model file", fail)
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    if not raw.startswith(b"PK"):
        raise fail("not a model file (.npz archive)")
    try:
        return zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise fail(f"truncated or damaged archive ({e})") from None


def _members(archive, fail):
    """Array name -> ZipInfo; only the names bareprop writes (spec.npy, layers.<i>.W.npy), each once."""
    members = {}
    for info in archive.infolist():
        if not MEMBER.fullmatch(info.filename):
            raise fail(f"the archive holds {info.filename!r}, which is not an array bareprop writes "
                       "(spec, layers.<i>.W)")
        name = info.filename.removesuffix(".npy")
        if name in members:
            raise fail(f"the archive holds {info.filename!r} twice")
        members[name] = info
    return members


def _header(archive, info, name, fail):
    """(shape, dtype, the member's size that they imply) from a .npy member's header; no data is read."""
    try:
        with archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise fail(f"array {name} is in .npy format version {version}, which bareprop does not read")
            shape, _, dtype = read[version](f)
            size = f.tell() + math.prod(shape) * dtype.itemsize  # Python ints: no overflow, no allocation
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise fail(f"array {name} is damaged ({_one_line(e)})") from None
    return shape, dtype, size


def _check_header(archive, info, name, shape, dtype, fail):
    """Check a weight member's header and size against the shape and dtype the spec gives it; return its bytes."""
    found, found_dtype, size = _header(archive, info, name, fail)
    if found_dtype.hasobject:
        raise fail(f"array {name} holds pickled objects, which bareprop never loads")
    if found != shape:
        raise fail(f"array {name} has shape {found}, the spec says {shape}")
    if found_dtype != dtype:
        raise fail(f"array {name} has dtype {found_dtype}, the spec says {dtype}")
    if info.file_size != size:  # a zip bomb, or a damaged member
        raise fail(f"array {name} takes {info.file_size} bytes in the archive; its header says {size}")
    return size


def _read_member(archive, info, name, fail):
    try:
        with archive.open(info) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise fail(f"array {name} is damaged ({_one_line(e)})") from None


def _parse_spec(archive, info, fail):
    """The spec: a 0-d unicode array of at most MAX_SPEC bytes holding a JSON object of this format and version."""
    shape, dtype, size = _header(archive, info, "spec", fail)
    if dtype.kind != "U" or shape != ():
        raise fail("the 'spec' array is not a JSON string")
    if info.file_size > MAX_SPEC:
        raise fail(f"the 'spec' array takes {info.file_size} bytes in the archive; a spec has at most {MAX_SPEC}")
    if info.file_size != size:
        raise fail(f"the 'spec' array takes {info.file_size} bytes in the archive; its header says {size}")
    text = str(_read_member(archive, info, "spec", fail))
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, too many digits, nested too deeply
        raise fail(f"the spec is not valid JSON ({_one_line(e)})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise fail(f"the spec does not say format {FORMAT!r}: not a bareprop model file")
    if spec.get("version") != VERSION:
        raise fail(f"format version {spec.get('version')!r} is not supported (this bareprop reads version {VERSION})")
    return spec


def _bad_setting(settings):
    """The name of the first setting that is not a string, a finite number or a list of finite numbers
    (Reshape's shape), or None if all are."""
    def bad(value, inner=False):
        if isinstance(value, list) and not inner:
            return any(bad(v, True) or isinstance(v, str) for v in value)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):  # not null, a dict, true/false
            return True
        return isinstance(value, float) and not math.isfinite(value)  # NaN, Infinity: JSON that Python reads
    return next((name for name, value in settings.items() if bad(value)), None)


def _placeholder(rng, fan_in, fan_out, dtype):
    """Zero weights that take no memory (one zero, broadcast) and draw nothing from rng: load()
    replaces them with the file's, once their shapes are checked against the file."""
    return np.broadcast_to(np.zeros((), dtype), (fan_in, fan_out))  # (fan_in, fan_out), read-only


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
