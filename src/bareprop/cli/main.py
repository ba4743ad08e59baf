"""The command line: argparse -> a config dataclass -> the library. No logic of its own."""

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .data.datasets import DATASETS, DataError
from .data_cli import add_data_parser, download_progress, run_data
from .progress import epoch_line  # noqa: F401  (the per-epoch line; re-exported for callers of the CLI module)

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _fraction(text):
    """A probability p with 0 <= p < 1 (the dropout rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def _non_negative(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
        if not value >= 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value
    parse.__name__ = f"non-negative {kind.__name__}"
    return parse


def _sizes(text):
    """Comma-separated layer widths, e.g. 784,256,128,10 (or, from a run.json, [784, 256, 128, 10])."""
    try:
        sizes = [int(part) for part in text.strip("[]").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths separated by commas, such as 784,256,10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected two or more positive widths, got {text!r}")
    return sizes


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.001
    hidden: int = 32
    seed: int = 0
    output: str | None = None
    plot: bool = True
    dataset: str = "mnist"
    data_dir: str | None = None
    offline: bool = False
    quiet: bool = False
    log_json: str | None = None
    # the network and its optimizer (see _add_model_flags); the defaults are the post's
    layers: str | None = None  # all widths, "784,256,128,10"; then hidden is None
    activation: str = "relu"
    init: str = "xavier"
    dropout: float = 0.0
    optimizer: str = "sgd"
    momentum: float | None = 0.9  # None unless optimizer is "momentum"
    nesterov: bool = False
    weight_decay: float = 0.0  # 0.01 for adamw unless given
    schedule: str = "none"
    warmup: int = 0


# Where this run goes, finds its data and what it shows: --config does not take these from the old run.
NOT_REPEATED = ("output", "data_dir", "offline", "quiet", "log_json")


def build_parser():
    parser = _Parser(
        prog="bareprop",
        description="Neural networks with backpropagation written out by hand, one readable layer at a time.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    d = TrainConfig()
    train = commands.add_parser(
        "train",
        help="train the post's MLP (784 -> hidden -> ReLU -> 10) on MNIST or --dataset",
        description="Train the post's MLP on MNIST (or --dataset) with minibatch SGD, show its progress (a live "
        "bar on a terminal, one line per epoch elsewhere: train accuracy and loss, test accuracy, time), and save "
        "the model, the run's manifest, the history, the chart and the report.",
    )
    train.add_argument("--epochs", type=_positive(int), default=d.epochs, help=f"passes over the training set (default {d.epochs})")
    train.add_argument("--batch-size", type=_positive(int), default=d.batch_size, help=f"examples per SGD step (default {d.batch_size})")
    train.add_argument("--lr", type=_positive(float), default=d.lr,
                       help=f"learning rate; the gradient is summed over the batch, as in the post (default {d.lr})")
    train.add_argument("--hidden", type=_positive(int), default=None, help=f"width of the hidden layer (default {d.hidden})")
    train.add_argument("--seed", type=int, default=d.seed, help=f"seed of the one generator for weights and shuffling (default {d.seed})")
    train.add_argument("--output", metavar="DIR", default=None,
                       help="folder for the model, run.json, history.json, the chart and the report "
                       "(default: runs/<date>-<time>)")
    train.add_argument("--no-plot", dest="plot", action="store_false",
                       help="skip the chart and the report (history.json, run.json and model.npz are still written; "
                       "`bareprop report` can build the report later)")
    data = train.add_argument_group("data (see docs/data.md)")
    data.add_argument("--dataset", choices=sorted(DATASETS), default=d.dataset, metavar="NAME",
                      help=f"one of {', '.join(sorted(DATASETS))}; all but mnist are downloaded on first use "
                      f"(default {d.dataset})")
    data.add_argument("--data-dir", metavar="DIR", default=None,
                      help="the dataset cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
    data.add_argument("--offline", action="store_true",
                      help="never open a connection (also BAREPROP_OFFLINE=1): a dataset not in the cache is an error")
    _add_model_flags(train)
    add_data_parser(commands)
    _add_gradcheck_parser(commands)
    shown = train.add_argument_group("what it shows while it trains")
    shown.add_argument("--quiet", action="store_true",
                       help="print only the final line (no progress bar, no per-epoch lines)")
    shown.add_argument("--log-json", metavar="FILE", default=None,
                       help="also write one JSON object per epoch to FILE (JSON Lines), as each epoch ends")
    train.add_argument("--config", metavar="RUN_JSON", dest="config_file", default=None,
                       help="repeat a run: take every setting from a run.json that `bareprop train` wrote "
                       "(flags given as well override it; the output folder is new)")
    _add_use_commands(commands)
    parser.commands = commands
    return parser


def _add_use_commands(commands):
    evaluate = commands.add_parser(
        "evaluate", help="test loss, accuracy and per-class accuracy of a saved model",
        description="Score a model.npz on the 10,000 test images of MNIST (or --dataset): loss, accuracy, "
        "and a table of the accuracy on each class.")
    evaluate.add_argument("model", metavar="MODEL", help="a model.npz written by `bareprop train`")
    evaluate.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", metavar="NAME",
                          help=f"the test set to score on, one of {', '.join(sorted(DATASETS))} (default mnist)")
    evaluate.add_argument("--data-dir", metavar="DIR", default=None,
                          help="the dataset cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
    predict = commands.add_parser(
        "predict", help="classify your own pictures of digits with a saved model",
        description="Classify PNG/JPEG pictures of single digits (any size, any colours) after MNIST's "
        "preprocessing; print one line per image: PATH: the three most probable digits (probability).")
    predict.add_argument("model", metavar="MODEL", help="a model.npz written by `bareprop train`")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="picture files of one digit each")
    report = commands.add_parser(
        "report", help="rebuild report.html (and its charts' PNGs) from a saved run",
        description="Rebuild report.html and the PNG of each of its charts in a folder written by "
        "`bareprop train`, from its run.json and model.npz.")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `bareprop train`")


# --- the network and its optimizer: flags, checks, and the mapping from strings to objects ---

INPUTS = 784  # 28 x 28 pixels: every dataset of the MNIST family
ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky_relu", "gelu"]
OPTIMIZERS = ["sgd", "momentum", "adam", "adamw"]
SCHEDULES = ["none", "step", "cosine"]
INITS = ["xavier", "he"]


def _add_model_flags(train):
    d = TrainConfig()
    group = train.add_argument_group("network and optimizer (the defaults are the post's)")
    group.add_argument("--layers", type=_sizes, metavar="784,...,10",
                       help=f"all layer widths, from {INPUTS} inputs to the dataset's 10 classes, e.g. 784,256,128,10 "
                       "(instead of --hidden)")
    group.add_argument("--activation", choices=ACTIVATIONS, default=d.activation,
                       help=f"activation after each hidden layer (default {d.activation}; leaky_relu has slope 0.01, "
                       "gelu is the tanh approximation)")
    group.add_argument("--init", choices=INITS, default=d.init,
                       help=f"weight initialisation: Xavier or He uniform (default {d.init})")
    group.add_argument("--dropout", type=_fraction, default=d.dropout, metavar="P",
                       help=f"drop each hidden unit with probability P in training, 0 <= P < 1 (default {d.dropout})")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer,
                       help=f"sgd is the post's plain step; momentum is SGD with momentum (default {d.optimizer})")
    group.add_argument("--momentum", type=_fraction, default=None, metavar="M",
                       help="momentum of --optimizer momentum, 0 <= M < 1 (default 0.9)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum, with --optimizer momentum")
    group.add_argument("--weight-decay", type=_non_negative(float), default=None, metavar="W",
                       help="L2 weight decay for sgd, momentum and adam, decoupled for adamw "
                       "(default 0, and 0.01 for adamw)")
    group.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                       help="learning rate over the run: constant, x0.1 after each third, or a cosine down to 0 "
                       f"(default {d.schedule})")
    group.add_argument("--warmup", type=_non_negative(int), default=d.warmup, metavar="N",
                       help=f"ramp the learning rate up linearly over the first N steps (batches) (default {d.warmup})")


def _model_config(args):
    """Check the network and optimizer flags together; the resolved values, for TrainConfig."""
    for name, choices in [("activation", ACTIVATIONS), ("init", INITS), ("optimizer", OPTIMIZERS),
                          ("schedule", SCHEDULES), ("dataset", sorted(DATASETS))]:
        if getattr(args, name) not in choices:  # argparse checks flags; this checks a run.json's settings too
            raise UsageError(f"{name} must be one of {', '.join(choices)}, got {getattr(args, name)!r}")
    if args.layers is not None and args.hidden is not None:
        raise UsageError("give either --hidden or --layers, not both")
    classes = len(DATASETS[args.dataset].classes)
    if args.layers is not None and (args.layers[0] != INPUTS or args.layers[-1] != classes):
        raise UsageError(f"--layers must start at {INPUTS} (the pixels) and end at {classes} (the classes), "
                         f"got {','.join(map(str, args.layers))}")
    if args.dropout and len(args.layers or [0, 0, 0]) < 3:
        raise UsageError("--dropout needs a hidden layer: --layers has none")
    if args.optimizer != "momentum" and (args.momentum is not None or args.nesterov):
        flag = "--momentum" if args.momentum is not None else "--nesterov"
        raise UsageError(f"{flag} applies only to --optimizer momentum, not {args.optimizer}")
    if args.nesterov and args.momentum == 0:
        raise UsageError("--nesterov needs a momentum above 0")
    return {
        "layers": None if args.layers is None else ",".join(map(str, args.layers)),
        "hidden": None if args.layers is not None else args.hidden if args.hidden is not None else TrainConfig.hidden,
        "momentum": (0.9 if args.momentum is None else args.momentum) if args.optimizer == "momentum" else None,
        "weight_decay": args.weight_decay if args.weight_decay is not None else (0.01 if args.optimizer == "adamw" else 0.0),
    }


def build_net(config, n_inputs, n_classes, rng):
    """The network the config describes; with the defaults, the post's NeuralNet((784, 32, 10))."""
    from .init import he_uniform, xavier_uniform
    from .layers import GELU, LeakyReLU, ReLU, Sigmoid, Tanh
    from .net import NeuralNet

    activation = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "leaky_relu": LeakyReLU, "gelu": GELU}[config.activation]
    init = {"xavier": xavier_uniform, "he": he_uniform}[config.init]
    sizes = _sizes(config.layers) if config.layers is not None else (n_inputs, config.hidden, n_classes)
    return NeuralNet(sizes, lr=config.lr, rng=rng, activation=activation, init=init, p_drop=config.dropout)


def build_optimizer(config, total_steps):
    """The optimizer and its learning-rate schedule; with the defaults, the post's plain SGD."""
    from .optim import SGD, Adam, AdamW, CosineDecay, LinearWarmup, StepDecay

    if config.warmup >= total_steps:
        raise UsageError(f"--warmup {config.warmup} is not shorter than the run ({total_steps} steps)")
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


def _with_config(parser, argv, path):
    """Parse argv again with the settings of a run.json as the train command's defaults,
    so that the file overrides the built-in defaults and explicit flags override the file."""
    from .manifest import ManifestError, read_config

    train = parser.commands.choices["train"]
    try:
        config = read_config(path, asdict(TrainConfig()))
    except ManifestError as e:
        raise UsageError(str(e)) from None
    for action in train._actions:  # the same checks as on the command line
        value = config.get(action.dest)
        if action.type is not None and value is not None:
            try:
                action.type(str(value))
            except argparse.ArgumentTypeError as e:
                raise UsageError(f"{path}: setting {action.dest}: {e}") from None
    train.set_defaults(**{k: v for k, v in config.items() if k not in NOT_REPEATED})
    return parser.parse_args(argv)


def _prepare_output(path):
    """Create the output folder and make sure it can be written, before any training."""
    out = Path(path) if path else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".bareprop-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    return out


def _open_log(path):
    """Open the --log-json file before any training, so a bad path fails at once (a context manager)."""
    if path is None:
        return contextlib.nullcontext()
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write the JSON log {path}: {e.strerror or e}") from None


def run_train(config):
    import numpy as np

    from .data import load_dataset
    from .files import atomic_write
    from .manifest import build_manifest, dataset_sha256
    from .progress import TrainDisplay
    from .train import train

    out = _prepare_output(config.output)
    with _open_log(config.log_json) as log:
        where = dict(data_dir=config.data_dir, offline=config.offline or None, dtype=np.uint8)  # scaled batch by batch
        with download_progress() as progress:
            X, y = load_dataset(config.dataset, "train", progress=progress, **where)
            X_test, y_test = load_dataset(config.dataset, "test", progress=progress, **where)
        classes = DATASETS[config.dataset].classes
        optimizer = build_optimizer(config, total_steps=config.epochs * -(-len(X) // config.batch_size))
        start = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        net = build_net(config, X.shape[1], len(classes), rng)
        display = TrainDisplay(epochs=config.epochs, examples=len(X), batch_size=config.batch_size,
                               quiet=config.quiet, log_json=log)
        with display:
            history = train(net, X, y, epochs=config.epochs, batch_size=config.batch_size, rng=rng, optimizer=optimizer,
                            X_test=X_test, y_test=y_test, on_epoch=display.on_epoch,
                            on_batch=display.on_batch if display.live else None)  # no bar: no per-batch hook
    seconds = time.perf_counter() - start
    net.save(out / "model.npz")
    record = {"config": asdict(config), "classes": list(classes), "history": history.to_dict()}
    atomic_write(out / "history.json", json.dumps(record, indent=2).encode())
    manifest = build_manifest(asdict(config), history, seconds, dataset_sha256(config.dataset, config.data_dir))
    atomic_write(out / "run.json", json.dumps(manifest, indent=2).encode())
    if config.plot:
        from .plot import history_chart, save_chart
        from .report import write_report

        save_chart(history_chart(history), out / "chart.html", out / "chart.png")
        write_report(out, net, history, manifest, X_test, y_test)
    print(f"test accuracy {history.test_acc[-1]:.4f}; results in {out.resolve()}")


def _load_model(path):
    from .modelfile import ModelFileError, load

    try:
        return load(path)
    except ModelFileError as e:
        raise UsageError(str(e)) from None


def run_evaluate(args):
    from .data import load_dataset
    from .metrics import confusion_matrix, per_class_accuracy

    net = _load_model(args.model)
    classes = DATASETS[args.dataset].classes
    with download_progress() as progress:
        X_test, y_test = load_dataset(args.dataset, "test", data_dir=args.data_dir, progress=progress)
    if net.sizes[0] != X_test.shape[1] or net.num_classes != len(classes):
        raise UsageError(f"{args.model}: the model maps {net.sizes[0]} inputs to {net.num_classes} classes; "
                         f"{args.dataset} needs {X_test.shape[1]} to {len(classes)}")
    accuracy, loss = net.score(X_test, y_test)
    confusion = confusion_matrix(y_test, net.predict(X_test), net.num_classes)
    print(f"test loss {loss:.4f} | accuracy {accuracy:.4f} ({confusion.trace()} of {len(y_test)})")
    named = list(classes) != [str(k) for k in range(len(classes))]  # fashion-mnist's classes have names
    print("class  examples  correct  accuracy" + ("  name" if named else ""))
    for k, acc in enumerate(per_class_accuracy(confusion)):
        name = f"  {classes[k]}" if named else ""
        print(f"{k:>5}  {confusion[k].sum():>8}  {confusion[k, k]:>7}  {acc:>8.3f}{name}")


def prediction_line(path, probs, top=3):
    """`PATH: 7 (0.981)  2 (0.012)  3 (0.004)`: the most probable classes, best first."""
    best = sorted(range(len(probs)), key=lambda k: -probs[k])[:top]
    return f"{path}: " + "  ".join(f"{k} ({probs[k]:.3f})" for k in best)


def run_predict(args):
    """Print a line per readable image; report each unreadable one on stderr; exit 2 if any was."""
    import numpy as np

    from .digits import SIDE, ImageError, read_digit

    net = _load_model(args.model)
    if net.sizes[0] != SIDE * SIDE:
        raise UsageError(f"{args.model}: the model takes {net.sizes[0]} inputs, not a {SIDE}x{SIDE} image")
    failures = 0
    for path in args.images:
        try:
            x = read_digit(path)  # (784,)
        except ImageError as e:
            print(f"bareprop: error: {e}", file=sys.stderr, flush=True)
            failures += 1
            continue
        probs = net.predict_proba(x[np.newaxis])[0]  # (K,)
        print(prediction_line(path, probs), flush=True)
    return EXIT_USAGE if failures else 0


def run_report(args):
    from .report import ReportError, build_report

    try:
        page = build_report(args.run_dir)
    except ReportError as e:
        raise UsageError(str(e)) from None
    print(f"report in {page.resolve()}")


# --- bareprop gradcheck -----------------------------------------------------------------

@dataclass
class GradcheckConfig:
    batch: int = 4
    width: int = 5
    seed: int = 0
    torch: bool = True


def _add_gradcheck_parser(commands):
    d = GradcheckConfig()
    check = commands.add_parser(
        "gradcheck",
        help="check every layer's backward pass against finite differences and PyTorch",
        description="Check bp_input and bp_param of a small example of every registered layer and loss against "
        "central finite differences in float64 and, if PyTorch is installed, against PyTorch autograd; print a "
        "table of the errors. Exit code 1 if any check fails.",
    )
    check.add_argument("--batch", type=_positive(int), default=d.batch, help=f"rows of the random input (default {d.batch})")
    check.add_argument("--width", type=_positive(int), default=d.width, help=f"columns of the random input (default {d.width})")
    check.add_argument("--seed", type=int, default=d.seed, help=f"seed for the weights, inputs and upstream gradients (default {d.seed})")
    check.add_argument("--no-torch", dest="torch", action="store_false", help="finite differences only; skip PyTorch")


def gradcheck_table(results):
    """One row per checked tensor: layer, check, tensor, max abs error, max rel error, ok."""
    rows = [("layer", "check", "tensor", "max abs error", "max rel error", "ok")]
    for result in results:
        for c in result.checks:
            rows.append((result.layer, result.reference, c.tensor, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}",
                         "ok" if c.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def run_gradcheck(config):
    """Print the table for every registered layer; return 1 if any check failed, else 0."""
    import numpy as np

    from .gradcheck import check_registered

    with_torch = config.torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch = False
            print("PyTorch is not installed: checking against finite differences only (pip install torch for both)")
    results = check_registered((config.batch, config.width), rng=np.random.default_rng(config.seed), with_torch=with_torch)
    print(gradcheck_table(results))
    failed = [r for r in results if not r.ok]
    for result in failed:
        print(result.message)
    checks = sum(len(r.checks) for r in results)
    failures = sum(len(r.failures) for r in results)
    print(f"{failures} of {checks} checks failed" if failures else f"all {checks} checks passed")
    return 1 if failures else 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            if args.config_file is not None:
                args = _with_config(parser, argv, args.config_file)
            settings = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
            config = TrainConfig(**{**settings, **_model_config(args)})
            run_train(config)
        elif args.command == "data":
            return run_data(args)
        elif args.command == "gradcheck":
            return run_gradcheck(GradcheckConfig(**{k: v for k, v in vars(args).items() if k != "command"}))
        elif args.command == "evaluate":
            run_evaluate(args)
        elif args.command == "predict":
            return run_predict(args)
        elif args.command == "report":
            run_report(args)
    except (UsageError, DataError) as e:
        print(f"bareprop: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bareprop: interrupted", file=sys.stderr)
        return 130
    return 0
