"""`bareprop train`: flags -> a RunConfig -> bareprop.run, with a progress display; prints the result.

The run itself (data, net, optimizer, training, model.npz, run.json, the report) is the library's:
experiment/runner.py. Bad settings are ConfigErrors, which main() prints as one line with exit code 2;
a run that diverged is exit code 3, one interrupted 130 (main.py).
"""

import argparse
import os
from dataclasses import fields, replace

from ..data.datasets import DATASETS
from ..experiment.config import (ACTIVATION, BACKENDS, DEVICES, HIDDEN, INIT, INPUTS, NET_HELP, NETS, OPTIMIZERS,
                                 PATHS, SCHEDULES, RunConfig)
from ..experiment.runner import load_data, resume_config, run
from .args import UsageError, fraction, non_negative, positive, widths
from .data import download_progress
from .progress import TrainDisplay

SETTINGS = {f.name for f in fields(RunConfig)}  # the flags that become settings; the others say what is shown


def add_train_parser(commands):
    d = RunConfig()
    train = commands.add_parser(
        "train",
        help="train the post's MLP (784 -> hidden -> ReLU -> 10) on MNIST or --dataset",
        description="Train the post's MLP on MNIST (or --dataset) with minibatch SGD, show its progress (a live "
        "bar on a terminal, one line per epoch elsewhere: train accuracy and loss, test accuracy, time), and save "
        "the model, the run's manifest and the report.",
        argument_default=argparse.SUPPRESS,  # a setting is in the namespace only if its flag was given
    )
    train.add_argument("--epochs", type=positive(int), help=f"passes over the training set (default {d.epochs})")
    train.add_argument("--batch-size", type=positive(int), help=f"examples per SGD step (default {d.batch_size})")
    train.add_argument("--lr", type=positive(float),
                       help=f"learning rate; the gradient is summed over the batch, as in the post (default {d.lr})")
    train.add_argument("--hidden", type=positive(int), help=f"width of the hidden layer (default {HIDDEN})")
    train.add_argument("--seed", type=non_negative(int),
                       help=f"seed of the one generator for weights and shuffling (default {d.seed})")
    train.add_argument("--output", metavar="DIR",
                       help="folder for model.npz, run.json and the report, new or empty (default: "
                       "runs/<date>-<time>, with -2, -3, ... if that exists)")
    train.add_argument("--overwrite", action="store_true", default=False,
                       help="let --output hold an earlier run: its files are deleted once the settings have "
                       "passed their checks (a folder holding anything else is still refused)")
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue the interrupted run in RUN_DIR from its last epoch, with its own settings; "
                       "it ends exactly as if it had never stopped")
    train.add_argument("--no-plot", dest="plot", action="store_false",
                       help="skip the report (run.json and model.npz are still written; `bareprop report` can "
                       "build it later)")
    speed = train.add_argument_group("how it computes (see docs/speed.md)")
    speed.add_argument("--path", choices=PATHS,
                       help="readable: the layers' own loop; kernel: the compiled kernel (an error where it cannot "
                       f"train the net); auto: the kernel where it can (default {d.path})")
    speed.add_argument("--threads", type=positive(int), metavar="N",
                       help=f"threads for the kernel and BLAS; the kernel's numbers do not depend on it (default {d.threads})")
    speed.add_argument("--backend", choices=BACKENDS,
                       help="the array library the net trains on: torch and cupy need their extra, e.g. "
                       f"pip install 'bareprop[torch]' (default {d.backend}; see docs/gpu.md)")
    speed.add_argument("--device", choices=DEVICES,
                       help=f"where the arrays live: cuda needs --backend torch or cupy and a GPU (default {d.device})")
    data = train.add_argument_group("data (see docs/data.md)")
    data.add_argument("--dataset", choices=sorted(DATASETS), metavar="NAME",
                      help=f"one of {', '.join(sorted(DATASETS))}; all but mnist are downloaded on first use "
                      f"(default {d.dataset})")
    data.add_argument("--data-dir", metavar="DIR",
                      help="the dataset cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
    data.add_argument("--offline", action="store_true",
                      help="never open a connection (also BAREPROP_OFFLINE=1): a dataset not in the cache is an error")
    _add_model_flags(train, d)
    shown = train.add_argument_group("what it shows while it trains")
    shown.add_argument("--quiet", action="store_true", default=False,
                       help="print only the final line (no progress bar, no per-epoch lines)")
    shown.add_argument("--log-json", metavar="FILE", default=None,
                       help="also write one JSON object per epoch to FILE (JSON Lines), as each epoch ends")
    train.add_argument("--config", metavar="RUN_JSON", dest="config_file", default=None,
                       help="repeat a run: take every setting from a run.json that `bareprop train` wrote "
                       "(flags given as well override it; the output folder is new)")
    return train


def _add_model_flags(train, d):
    group = train.add_argument_group("network and optimizer (the defaults are the post's)")
    group.add_argument("--layers", type=widths, metavar="784,...,10",
                       help=f"all layer widths, from {INPUTS} inputs to the dataset's 10 classes, e.g. 784,256,128,10 "
                       "(instead of --hidden)")
    group.add_argument("--net", metavar="SPEC",
                       help=f"a convolutional net instead of the MLP, layer by layer on the 28x28 image, {NET_HELP} "
                       f"({NETS['cnn']}); each conv keeps the size (padding kernel // 2) and is followed by the "
                       "activation, each dense by the activation and dropout; a Linear to the classes ends it "
                       "(instead of --hidden and --layers; see docs/running.md)")
    group.add_argument("--activation", choices=list(ACTIVATION),
                       help=f"activation after each hidden layer (default {d.activation}; leaky_relu has slope 0.01, "
                       "gelu is the tanh approximation)")
    group.add_argument("--init", choices=list(INIT), help=f"weight initialisation: Xavier or He uniform (default {d.init})")
    group.add_argument("--dropout", type=fraction, metavar="P",
                       help=f"drop each hidden unit with probability P in training, 0 <= P < 1 (default {d.dropout})")
    group.add_argument("--optimizer", choices=OPTIMIZERS,
                       help=f"sgd is the post's plain step; momentum is SGD with momentum (default {d.optimizer})")
    group.add_argument("--momentum", type=fraction, metavar="M",
                       help="momentum of --optimizer momentum, 0 <= M < 1 (default 0.9)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum, with --optimizer momentum")
    group.add_argument("--weight-decay", type=non_negative(float), metavar="W",
                       help="L2 weight decay for sgd, momentum and adam, decoupled for adamw "
                       "(default 0, and 0.01 for adamw)")
    group.add_argument("--schedule", choices=SCHEDULES,
                       help="learning rate over the run: constant, x0.1 after each third, or a cosine down to 0 "
                       f"(default {d.schedule})")
    group.add_argument("--warmup", type=non_negative(int), metavar="N",
                       help=f"ramp the learning rate up linearly over the first N steps (batches) (default {d.warmup})")


def run_config(args):
    """The flags given, over the settings of --config's run.json if given, over the defaults."""
    given = {name: value for name, value in vars(args).items() if name in SETTINGS}
    base = RunConfig.from_run_json(args.config_file) if args.config_file is not None else RunConfig()
    if {"layers", "hidden", "net"} & set(given):  # the net's shape: the flag replaces the file's, whichever it was
        base = replace(base, hidden=None, layers=None, net=None)
    if given.get("optimizer", base.optimizer) != base.optimizer:  # the old optimizer's settings no longer apply
        base = replace(base, momentum=None, nesterov=False, weight_decay=None)
    return replace(base, **given)


def resumed_config(args):
    """--resume RUN_DIR: the run's own settings; only where the data is (and what is shown) may be given."""
    given = sorted(name for name in vars(args) if name in SETTINGS and name not in ("data_dir", "offline"))
    given += [name for name in ("config_file", "overwrite") if getattr(args, name)]
    if given:
        flags = [{"config_file": "config", "plot": "no-plot"}.get(name, name).replace("_", "-") for name in given]
        raise UsageError(f"--resume continues a run with its own settings: drop --{', --'.join(flags)}")
    return resume_config(args.resume, data_dir=getattr(args, "data_dir", None), offline=getattr(args, "offline", False))


def run_train(args):
    config = resumed_config(args) if args.resume is not None else run_config(args)
    log = JsonLog(args.log_json, append=args.resume is not None)  # checked now, emptied once the run starts
    try:
        with download_progress() as progress:
            data = load_data(config, progress=progress)
        writing = "model.npz, run.json and report.html" if config.plot else "model.npz and run.json"
        display = TrainDisplay(epochs=config.epochs, examples=len(data[0]), batch_size=config.batch_size,
                               quiet=args.quiet, log_json=log if args.log_json else None,
                               finishing=f"writing {writing}...")
        with display:
            result = run(config, data=data, on_epoch=display.on_epoch,
                         on_batch=display.on_batch if display.live else None,  # no bar: no per-batch hook
                         overwrite=args.overwrite, resume=args.resume is not None)
    finally:
        log.close()
    print(final_line(result))


def final_line(result):
    """`test accuracy 0.9610; kernel path, 1 thread; results in /abs/path`."""
    h = result.history
    on = "" if result.config.backend == "numpy" else f" on {result.config.backend} ({result.config.device})"
    return (f"test accuracy {h.test_acc[-1]:.4f}; {h.path} path{on}, {h.threads} thread{'s' * (h.threads > 1)}; "
            f"results in {result.out.resolve()}")


class JsonLog:
    """The --log-json file. A path that cannot be written fails at once, before any training, but the
    file is not touched (an earlier log is not emptied) until the first epoch's line is written: by
    then every setting and the output folder have passed their checks. With --resume, lines are appended."""

    def __init__(self, path, *, append=False):
        self.path, self.mode, self.file = path, "a" if append else "w", None
        if path is not None:
            try:
                if os.path.exists(path):
                    open(path, "a", encoding="utf-8").close()  # writable? ("a" changes nothing)
                else:
                    open(path, "x", encoding="utf-8").close()
                    os.unlink(path)
            except OSError as e:
                raise UsageError(f"cannot write the JSON log {path}: {e.strerror or e}") from None

    def write(self, text):
        if self.file is None:
            try:
                self.file = open(self.path, self.mode, encoding="utf-8")
            except OSError as e:
                raise UsageError(f"cannot write the JSON log {self.path}: {e.strerror or e}") from None
        self.file.write(text)

    def flush(self):
        if self.file is not None:
            self.file.flush()

    def close(self):
        if self.file is not None:
            self.file.close()
