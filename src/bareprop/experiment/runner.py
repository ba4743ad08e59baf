"""A training run as a library object: RunConfig -> data, net, optimizer -> train() -> the output folder.

    result = bareprop.run(bareprop.RunConfig(epochs=1, plot=False))

does what `bareprop train --epochs 1 --no-plot` does, number for number, without printing. The
folder holds one file per artifact: model.npz (bareprop.load reads it back), run.json (the manifest,
see manifest.py) and, unless plot=False, report.html and loss_accuracy.png (the post's chart;
`bareprop report` / build_report writes a PNG of every chart of the report).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.train import History, train
from ..data import load_dataset
from .config import ConfigError, RunConfig, build_net, build_optimizer


@dataclass
class RunResult:
    """What a run made: its folder, its settings (filled in), the trained net, its History, its manifest."""

    out: Path
    config: RunConfig
    net: object
    history: History
    manifest: dict


def load_data(config, *, progress=None):
    """(X, y, X_test, y_test): the dataset's train and test splits as uint8 pixels, which train()
    scales batch by batch (a quarter of the memory, the same numbers). progress(file, done, total)
    is called while a dataset downloads."""
    where = dict(data_dir=config.data_dir, offline=config.offline or None, progress=progress, dtype=np.uint8)
    X, y = load_dataset(config.dataset, "train", **where)  # (N, 784) uint8, (N,) int64
    X_test, y_test = load_dataset(config.dataset, "test", **where)
    return X, y, X_test, y_test


def run(config, *, data=None, on_epoch=None, on_batch=None, progress=None):
    """Train the net `config` describes and write its folder; return a RunResult.

    on_epoch and on_batch are train()'s hooks (a progress display); progress is load_data's.
    data, if given, is what load_data(config) returned (to load once, e.g. to size a progress bar).
    Bad settings, and an output folder that cannot be written, raise ConfigError before any training;
    the folder is made only once the settings have passed every check.
    """
    config = config.resolved()  # checked again, with hidden, momentum and weight_decay filled in
    X, y, X_test, y_test = data if data is not None else load_data(config, progress=progress)
    optimizer = build_optimizer(config, total_steps=config.epochs * -(-len(X) // config.batch_size))
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)  # the one generator: the weights, then shuffling and dropout
    net = build_net(config, rng)
    _check_kernel(config, net, optimizer)
    out = make_output(config.output)  # every check passed: now the folder
    history = train(net, X, y, epochs=config.epochs, batch_size=config.batch_size, rng=rng, optimizer=optimizer,
                    X_test=X_test, y_test=y_test, on_epoch=on_epoch, on_batch=on_batch, path=config.path,
                    threads=config.threads)
    seconds = time.perf_counter() - start
    return write_run(out, config, net, history, seconds, X_test, y_test)


def write_run(out, config, net, history, seconds, X_test, y_test):
    """model.npz, run.json and (unless config.plot is False) the report, into the folder `out`."""
    from ..files import atomic_write
    from .manifest import build_manifest, dataset_sha256, manifest_json
    from .modelfile import save

    save(net, out / "model.npz")
    manifest = build_manifest(config.to_dict(), history, seconds, dataset_sha256(config.dataset, config.data_dir),
                              kernel_isa=_kernel_isa() if history.path == "kernel" else None)
    atomic_write(out / "run.json", manifest_json(manifest))
    if config.plot:
        from ..report.page import write_report

        write_report(out, net, history, manifest, X_test, y_test, pngs=["loss_accuracy"])  # the other PNGs: build_report
    return RunResult(out, config, net, history, manifest)


def make_output(path):
    """The output folder (None: runs/<date>-<time>), created and checked writable; ConfigError if it is not."""
    out = Path(path) if path is not None else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".bareprop-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    return out


def _check_kernel(config, net, optimizer):
    """path="kernel" on a net the kernel cannot train: a ConfigError now, rather than train()'s ValueError."""
    if config.path != "kernel":
        return
    from ..fast import kernel

    try:
        kernel.runner(net, config.batch_size, optimizer, config.threads, required=True)
    except ValueError as e:
        raise ConfigError(str(e).removeprefix("train: ")) from None


def _kernel_isa():
    from ..fast import kernel

    return kernel._kernel.ISA
