"""A run's settings: RunConfig, its checks, and the network and optimizer it describes.

Every setting is plain data (numbers, strings, a tuple of widths), so that run.json can record it and
RunConfig.from_run_json read it back. The strings name library objects: activation "relu" is
core.layers.ReLU (each activation's `name`), init "he" is he_uniform. A bad setting, alone or with
the others, is a ConfigError with a one-line message naming it.
"""

import math
import os
from dataclasses import asdict, dataclass, fields, replace

from ..core.init import he_uniform, xavier_uniform
from ..core.layers import ACTIVATIONS
from ..data.datasets import DATASETS, IMAGE_SIZE

INPUTS = IMAGE_SIZE * IMAGE_SIZE  # 784 pixels: every dataset of the MNIST family
HIDDEN = 32  # the post's hidden width
ACTIVATION = {cls.name: cls for cls in ACTIVATIONS}  # "relu" -> ReLU, "leaky_relu" -> LeakyReLU, ...
INIT = {"xavier": xavier_uniform, "he": he_uniform}
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
MOMENTUM = 0.9  # optimizer "momentum" without a momentum
ADAMW_DECAY = 0.01  # optimizer "adamw" without a weight decay
SCHEDULES = ("none", "step", "cosine")
PATHS = ("auto", "readable", "kernel")  # train()'s path
BACKENDS = ("numpy", "torch", "cupy")  # the array library the net trains on (core/arrays.py)
DEVICES = ("cpu", "cuda")
NETS = {"cnn": "conv:8:5,pool:2,conv:16:5,pool:2,dense:64"}  # --net presets: the README's convolutional recipe
NET_HELP = "such as conv:16:5,pool:2,dense:128 (conv:CHANNELS:KERNEL, pool:WINDOW, dense:WIDTH) or a preset: cnn"
NOT_REPEATED = ("output", "data_dir", "offline")  # where a run writes and finds its data: from_run_json drops them
SHOWN = ("quiet", "log_json")  # what the CLI showed: older run.json files record them; from_run_json ignores them


class ConfigError(ValueError):
    """A setting, or a combination of settings, that a run cannot use (a one-line message naming it)."""


@dataclass
class RunConfig:
    """Everything that decides a run's numbers, and where it writes. The defaults are the post's run.

    None for hidden, momentum and weight_decay means "the usual value for the other settings":
    32 hidden units unless `layers` is given, momentum 0.9 with optimizer "momentum", weight decay
    0.01 with "adamw" and 0 otherwise. resolved() fills them in; run.json records the filled-in values.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.001  # per example: the gradient is summed over the batch, as in the post
    hidden: int | None = None  # the post's net: 784 -> hidden -> ReLU -> 10
    layers: tuple | None = None  # or every width, e.g. (784, 256, 128, 10); then no hidden
    net: str | None = None  # or a convolutional net on the 28x28 image, layer by layer (see parse_net); a preset name
    activation: str = "relu"  # after each hidden Linear: a name from core.layers.ACTIVATIONS
    init: str = "xavier"  # "xavier" or "he" (uniform)
    dropout: float = 0.0  # after each hidden activation, in training only
    optimizer: str = "sgd"  # "sgd" is the post's plain step; "momentum", "adam", "adamw"
    momentum: float | None = None
    nesterov: bool = False
    weight_decay: float | None = None  # L2 for sgd, momentum, adam; decoupled for adamw
    schedule: str = "none"  # "step": x0.1 after each third of the run; "cosine": down to 0
    warmup: int = 0  # steps (batches) of linear warm-up
    seed: int = 0  # the one generator: the weights, then the shuffling and dropout
    dataset: str = "mnist"
    path: str = "auto"  # "readable", "kernel", or "auto": the kernel where it applies (see train())
    threads: int = 1  # for the kernel and BLAS; the kernel's numbers do not depend on it
    backend: str = "numpy"  # the array library the net trains on: "numpy", "torch" or "cupy"
    device: str = "cpu"  # where its arrays live: "cpu" or "cuda" (torch or cupy)
    plot: bool = True  # the report: report.html and the post's chart, loss_accuracy.png
    output: str | None = None  # the folder it writes; None: runs/<date>-<time>
    data_dir: str | None = None  # the dataset cache; None: $BAREPROP_DATA, else the user's cache folder
    offline: bool = False  # never download (also BAREPROP_OFFLINE=1)

    def __post_init__(self):
        self.layers = _widths(self.layers)
        for name in ("lr", "dropout", "momentum", "weight_decay"):  # 1 -> 1.0: run.json records numbers as floats
            if _is_int(getattr(self, name)):
                setattr(self, name, float(getattr(self, name)))
        for name in ("output", "data_dir"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        _check(self)

    @property
    def sizes(self):
        """Every layer width: (784, hidden, classes) or `layers`."""
        return self.layers or (INPUTS, HIDDEN if self.hidden is None else self.hidden, len(DATASETS[self.dataset].classes))

    def resolved(self):
        """A checked copy with hidden, momentum and weight_decay filled in: what a run records."""
        return replace(
            self,
            hidden=None if self.layers is not None or self.net is not None else HIDDEN if self.hidden is None
            else self.hidden,
            net=NETS.get(self.net, self.net),
            momentum=(MOMENTUM if self.momentum is None else self.momentum) if self.optimizer == "momentum" else None,
            weight_decay=((ADAMW_DECAY if self.optimizer == "adamw" else 0.0) if self.weight_decay is None
                          else self.weight_decay),
        )

    def to_dict(self):
        """The settings as a JSON-able dict (layers as a list): run.json's "config"."""
        d = asdict(self)
        d["layers"] = None if self.layers is None else list(self.layers)
        return d

    @classmethod
    def from_run_json(cls, path, *, data_dir=None):
        """The settings of the run that wrote `path` (a run.json, or the run folder holding it), to
        repeat it number for number. Where it wrote and found its data (output, data_dir, offline)
        are left at their defaults. A setting the file lacks takes its default (files written before
        the setting existed); null only where RunConfig takes None (hidden, layers, momentum,
        weight_decay, output, data_dir). The dataset files it records (SHA-256s) must be the ones a
        repeat would train on, in `data_dir`'s cache where they are not built in. Any problem is a
        ConfigError naming the file: one line."""
        from pathlib import Path

        from ..data.reading import check_file
        from .manifest import ManifestError, read_manifest

        path = Path(path)
        if path.is_dir() and (path / "run.json").exists():
            path = path / "run.json"
        try:
            check_file(path, MAX_RUN_JSON, "a run.json", lambda problem: ConfigError(f"{path}: {problem}"))
        except OSError:
            pass  # read_manifest says why it cannot be read
        try:
            manifest = read_manifest(path)
        except ManifestError as e:
            raise ConfigError(str(e)) from None
        recorded = manifest["config"]
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(recorded) - known - set(SHOWN))
        if unknown:
            raise ConfigError(f"{path}: unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
        try:
            config = cls(**{k: v for k, v in recorded.items() if k in known and k not in NOT_REPEATED})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
        _check_replay_data(path, manifest.get("data"), config.dataset, data_dir)
        return config


MAX_RUN_JSON = 10 * 2**20  # the largest run.json read (10 MiB; a 100-epoch run's is about 60 kB)


def _check_replay_data(path, recorded, dataset, data_dir):
    """The run.json's "data" (dataset file -> SHA-256 of its payload) against the files a repeat would
    train on: the SHA-256s built into bareprop (mnist) or recorded by the cache when it accepted the
    files. A dataset not in the cache yet is pinned by its official MD5s when it is downloaded.
    Older run.json files record no "data": nothing to check."""
    from .manifest import dataset_sha256

    if recorded is None:
        return
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise ConfigError(f"{path}: its \"data\" is not a map of dataset files to SHA-256s")
    here = dataset_sha256(dataset, data_dir)
    for file, sha256 in sorted(recorded.items()):
        if not file.startswith(f"{dataset}/"):
            raise ConfigError(f"{path}: records the data file {file}, which is not one of {dataset}'s")
        if file in here and here[file] != sha256:
            raise ConfigError(f"{path}: the run trained on {file} with SHA-256 {sha256}, but the {file} a repeat "
                              f"would train on has SHA-256 {here[file]}")


# --- the checks: one line each, naming the setting -------------------------------------------


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value):
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


RULES = {  # setting -> (holds for a good value, what the value must be)
    "epochs": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "lr": (lambda v: _is_real(v) and v > 0, "a positive number"),
    "hidden": (lambda v: v is None or _is_int(v) and v >= 1, "a positive integer"),
    "dropout": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "momentum": (lambda v: v is None or _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "true or false"),
    "weight_decay": (lambda v: v is None or _is_real(v) and v >= 0, "a number >= 0"),
    "warmup": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "threads": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "plot": (lambda v: isinstance(v, bool), "true or false"),
    "output": (lambda v: v is None or isinstance(v, str), "a folder name"),
    "data_dir": (lambda v: v is None or isinstance(v, str), "a folder name"),
    "offline": (lambda v: isinstance(v, bool), "true or false"),
}


def _choices():  # setting -> the names it may take (DATASETS is read now: tests add datasets)
    return {"activation": tuple(ACTIVATION), "init": tuple(INIT), "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES, "dataset": tuple(sorted(DATASETS)), "path": PATHS, "backend": BACKENDS,
            "device": DEVICES}


def _widths(value):
    """layers as a tuple of ints; also from "784,256,10" (older run.json files) or a list (JSON)."""
    if value is None:
        return None
    widths = value
    if isinstance(value, str):
        try:
            widths = [int(part) for part in value.strip("[]()").split(",")]
        except ValueError:
            widths = None
    if not (isinstance(widths, (list, tuple)) and len(widths) >= 2 and all(_is_int(w) and w >= 1 for w in widths)):
        raise ConfigError(f"layers must be two or more positive widths, such as 784,256,10, got {value!r}")
    return tuple(widths)


def _check(c):
    for name, (ok, what) in RULES.items():
        if not ok(getattr(c, name)):
            raise ConfigError(f"{name} must be {what}, got {getattr(c, name)!r}")
    for name, names in _choices().items():
        if getattr(c, name) not in names:
            raise ConfigError(f"{name} must be one of {', '.join(names)}, got {getattr(c, name)!r}")
    if c.layers is not None and c.hidden is not None:
        raise ConfigError("give either hidden or layers, not both")
    if c.net is not None and (c.layers is not None or c.hidden is not None):
        raise ConfigError("give either net or hidden and layers, not both")
    classes = len(DATASETS[c.dataset].classes)
    if c.layers is not None and (c.layers[0] != INPUTS or c.layers[-1] != classes):
        raise ConfigError(f"layers must start at {INPUTS} (the pixels) and end at {classes} (the classes of "
                          f"{c.dataset}), got {','.join(map(str, c.layers))}")
    if c.net is not None:
        _net_shapes(c.net)  # every window fits
        if c.dropout and "dense" not in [kind for kind, *_ in parse_net(c.net)]:
            raise ConfigError(f"dropout needs a hidden layer: net {c.net} has no dense layer")
    elif c.dropout and len(c.sizes) < 3:
        raise ConfigError(f"dropout needs a hidden layer: layers {','.join(map(str, c.sizes))} has none")
    for name, given in [("momentum", c.momentum is not None), ("nesterov", c.nesterov)]:
        if given and c.optimizer != "momentum":
            raise ConfigError(f"{name} applies only to optimizer 'momentum', not {c.optimizer!r}")
    if c.nesterov and c.momentum == 0:
        raise ConfigError("nesterov needs a momentum above 0")
    if (c.backend, c.device) in (("numpy", "cuda"), ("cupy", "cpu")):
        raise ConfigError(f"backend {c.backend} runs on {'the cpu' if c.backend == 'numpy' else 'cuda'} only, "
                          f"not device {c.device!r}")
    if c.backend != "numpy" and c.path == "kernel":
        raise ConfigError(f"path 'kernel' trains NumPy arrays only, not backend {c.backend!r} (use path auto or readable)")


# --- the objects a config describes ------------------------------------------------------------


def parse_net(spec):
    """A --net spec as its layers: "conv:16:5,pool:2,dense:128" -> [("conv", 16, 5), ("pool", 2), ("dense", 128)];
    a preset name (NETS) as its spec. A ConfigError says what is wrong."""
    if not isinstance(spec, str):
        raise ConfigError(f"net must be a string, {NET_HELP}; got {spec!r}")
    layers, arity = [], {"conv": 2, "pool": 1, "dense": 1}
    for token in NETS.get(spec, spec).split(","):
        kind, *numbers = token.strip().split(":")
        if kind not in arity or len(numbers) != arity[kind] or not all(n.isdigit() and int(n) >= 1 for n in numbers):
            raise ConfigError(f"net must be layers {NET_HELP}; got {token.strip()!r} in {spec!r}")
        layers.append((kind, *map(int, numbers)))
    kinds = [kind for kind, *_ in layers]
    if "dense" in kinds and set(kinds[kinds.index("dense"):]) != {"dense"}:
        raise ConfigError(f"net {spec!r}: a conv or pool after a dense layer (the dense layers come last)")
    return layers


def _net_shapes(spec):
    """The (channels, side) of the image after each conv and pool layer of a --net spec, from the
    (1, 28) of MNIST's: a convolution is padded by kernel // 2, so an odd kernel keeps the side. A
    window that does not fit is a ConfigError."""
    channels, side, shapes = 1, IMAGE_SIZE, []
    for kind, *n in parse_net(spec):
        if kind == "dense":
            break
        k = n[-1]
        if k > side + (2 * (k // 2) if kind == "conv" else 0):
            raise ConfigError(f"net {spec!r}: {kind}:{':'.join(map(str, n))} does not fit the {side}x{side} images "
                              "the layers before it give")
        channels, side = (n[0], side + 2 * (k // 2) - k + 1) if kind == "conv" else (channels, side // k)
        shapes.append((channels, side))
    return shapes or [(1, IMAGE_SIZE)]


def _convolutional(config, rng):
    """The --net the config gives: Reshape to (1, 28, 28), each conv (then the activation), pool and dense
    (then the activation and dropout) in turn, a Linear to the classes."""
    from ..core.conv import Conv2d, Flatten, MaxPool2d, Reshape
    from ..core.layers import Dropout, Linear
    from ..core.net import Sequential

    activation, init = ACTIVATION[config.activation], INIT[config.init]
    (channels, side), width = _net_shapes(config.net)[-1], None
    layers, before = [Reshape((1, IMAGE_SIZE, IMAGE_SIZE))], 1
    for kind, *n in parse_net(config.net):
        if kind == "conv":
            layers += [Conv2d(before, n[0], n[1], padding=n[1] // 2, rng=rng, init=init), activation()]
            before = n[0]
        elif kind == "pool":
            layers.append(MaxPool2d(n[0]))
        else:
            if width is None:
                layers.append(Flatten())
                width = channels * side * side
            layers += [Linear(width, n[0], rng=rng, init=init), activation()]
            layers += [Dropout(config.dropout, rng=rng)] if config.dropout else []
            width = n[0]
    if width is None:
        layers.append(Flatten())
        width = channels * side * side
    layers.append(Linear(width, len(DATASETS[config.dataset].classes), rng=rng, init=init))
    return Sequential(layers, lr=config.lr)


def build_net(config, rng):
    """The network `config` describes; with the defaults, the post's NeuralNet((784, 32, 10)); with a
    `net`, the convolutional Sequential it gives. A net whose float32 weights alone would not fit in
    this machine's memory is a ConfigError."""
    from ..core.net import NeuralNet

    if config.net is not None:
        return _convolutional(config, rng)

    weights = 4 * sum((i + 1) * o for i, o in zip(config.sizes, config.sizes[1:]))  # bytes, bias rows included
    memory = _physical_memory()
    if memory and weights > memory:
        raise ConfigError(f"layers {','.join(map(str, config.sizes))}: the weights alone need {weights / 2**30:,.1f} GiB, "
                          f"more than this machine's {memory / 2**30:,.1f} GiB")
    return NeuralNet(config.sizes, lr=config.lr, rng=rng, activation=ACTIVATION[config.activation],
                     init=INIT[config.init], p_drop=config.dropout)


def _physical_memory():
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def build_optimizer(config, total_steps):
    """The optimizer and its learning-rate schedule over a run of `total_steps` batches; with the
    defaults, the post's plain SGD."""
    from ..core.optim import SGD, Adam, AdamW, CosineDecay, LinearWarmup, StepDecay

    config = config.resolved()
    if config.warmup >= total_steps:
        raise ConfigError(f"warmup {config.warmup} is not shorter than the run ({total_steps} steps)")
    lr = config.lr
    if config.schedule == "step":
        lr = StepDecay(lr, step_size=max(1, -(-total_steps // 3)), gamma=0.1)
    elif config.schedule == "cosine":
        lr = CosineDecay(lr, total_steps=total_steps)
    if config.warmup:
        lr = LinearWarmup(lr, warmup_steps=config.warmup)
    if config.optimizer == "adam":
        return Adam(lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return AdamW(lr, weight_decay=config.weight_decay)
    return SGD(lr, momentum=config.momentum or 0.0, nesterov=config.nesterov, weight_decay=config.weight_decay)
