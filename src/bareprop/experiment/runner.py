"""A training run as a library object: RunConfig -> data, net, optimizer -> train() -> the output folder.

    result = bareprop.run(bareprop.RunConfig(epochs=1, plot=False))

does what `bareprop train --epochs 1 --no-plot` does, number for number, without printing. The
folder holds one run, and one file per artifact: model.npz (bareprop.load reads it back), run.json
(the manifest, see manifest.py) and, unless plot=False, report.html and loss_accuracy.png (the post's
chart; `bareprop report` / build_report writes a PNG of every chart of the report). While the run
trains it also holds checkpoint.npz, everything needed to continue it (resume_run), rewritten with
model.npz and run.json after every epoch; a complete run removes it. See docs/reliability.md.
"""

import copy
import io
import json
import os
import re
import time
import zipfile
from dataclasses import dataclass, replace
from itertools import count
from pathlib import Path

import numpy as np

from ..core.arrays import asarray, backend_of, to_numpy
from ..core.train import History, TrainingDiverged, train
from ..data import load_dataset
from ..files import atomic_write
from .config import NOT_REPEATED, ConfigError, RunConfig, build_net, build_optimizer

CHECKPOINT = "checkpoint.npz"
CHECKPOINT_FORMAT = "bareprop-checkpoint"
RESUMABLE = ("running", "interrupted")  # run.json's "status" of a run that --resume continues


@dataclass
class RunResult:
    """What a run made: its folder, its settings (filled in), the trained net, its History, its manifest."""

    out: Path
    config: RunConfig
    net: object
    history: History
    manifest: dict


class OutputError(ConfigError):
    """A file of the run's folder could not be written while it ran (a full disk, a file-size limit):
    one line naming the file and the reason, and what the folder keeps."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or what the caller raised as KeyboardInterrupt) during a run: its folder `out` keeps
    the `epochs_done` epochs finished, and run.json says "status": "interrupted"."""

    def __init__(self, out, epochs_done, epochs, why="interrupted"):
        super().__init__(f"{why} after {epochs_done} of {epochs} epochs; {out} keeps them" if epochs_done else
                         f"{why} before its first epoch ended; {out} holds its settings")
        self.out, self.epochs_done, self.epochs = out, epochs_done, epochs


def load_data(config, *, progress=None):
    """(X, y, X_test, y_test): the dataset's train and test splits as uint8 pixels, which train()
    scales batch by batch (a quarter of the memory, the same numbers). progress(file, done, total)
    is called while a dataset downloads."""
    where = dict(data_dir=config.data_dir, offline=config.offline or None, progress=progress, dtype=np.uint8)
    X, y = load_dataset(config.dataset, "train", **where)  # (N, 784) uint8, (N,) int64
    X_test, y_test = load_dataset(config.dataset, "test", **where)
    return X, y, X_test, y_test


def run(config, *, data=None, on_epoch=None, on_batch=None, progress=None, overwrite=False, resume=False):
    """Train the net `config` describes and write its folder; return a RunResult.

    on_epoch and on_batch are train()'s hooks (a progress display); progress is load_data's.
    data, if given, is what load_data(config) returned (to load once, e.g. to size a progress bar).
    Bad settings, and an output folder that cannot be written or already holds something, raise
    ConfigError before any training; the folder is made only once the settings have passed every
    check. overwrite: a folder holding an earlier run (and nothing else) is emptied of it, once the
    checks have passed. resume: continue the run in config.output from its last checkpoint (config:
    resume_config(folder)), ending bit for bit where the uninterrupted run would have.

    After each epoch the folder holds model.npz, checkpoint.npz and run.json ("status": "running").
    KeyboardInterrupt becomes RunInterrupted, any other error is raised as it is, and run.json then
    says "interrupted"; TrainingDiverged (a loss or weight not finite) leaves "diverged". Either way
    model.npz and checkpoint.npz hold the last epoch done.
    """
    config = config.resolved()  # checked again, with hidden, momentum and weight_decay filled in
    X, y, X_test, y_test = data if data is not None else load_data(config, progress=progress)
    optimizer = build_optimizer(config, total_steps=config.epochs * -(-len(X) // config.batch_size))
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)  # the one generator: the weights, then shuffling and dropout
    net = build_net(config, rng)  # drawn with NumPy on every backend: a seed means one net
    on = _backend(config)  # arrays -> arrays of config.backend on config.device (a ConfigError if it cannot)
    net.to(config.backend, config.device)
    _check_kernel(config, net, optimizer)
    out, lock = claim_run(config) if resume else make_output(config.output, overwrite=overwrite)  # checks passed
    try:
        folder = _Folder(out, config, net, rng, start, len(X))
        saved = read_checkpoint(out, net, optimizer, rng, len(X)) if resume else None  # None: from epoch 0
        folder.begin(saved)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a run diverging: TrainingDiverged says so, once
                history = train(net, on(X), on(y), epochs=config.epochs, batch_size=config.batch_size, rng=rng,
                                optimizer=optimizer, X_test=on(X_test), y_test=on(y_test), on_epoch=on_epoch,
                                on_batch=on_batch, path=config.path, threads=config.threads,
                                resume=None if saved is None else saved[:2], on_checkpoint=folder.checkpoint)
        except TrainingDiverged as e:
            folder.stop("diverged", diverged={"epoch": e.epoch, "step": e.step, "what": e.what})
            hint = f"try a lower lr than {config.lr:g}; {folder.kept()}"
            raise TrainingDiverged(e.epoch, e.step, e.what, hint=hint) from None
        except KeyboardInterrupt as e:
            folder.stop("interrupted")
            raise RunInterrupted(out, folder.epochs_done, config.epochs, str(e) or "interrupted") from None
        except BaseException:
            _stop_quietly(folder)
            raise
        try:
            result = write_run(out, config, net, history, folder.seconds(), X_test, y_test)
        except OSError as e:
            _stop_quietly(folder)
            raise folder.write_error(e) from None
        (out / CHECKPOINT).unlink(missing_ok=True)  # a complete run is not continued
        return result
    finally:
        _unlock(lock)


def _stop_quietly(folder):
    """Mark the run interrupted if the disk still lets us: the error that stopped it is what matters."""
    try:
        folder.stop("interrupted")
    except OSError:
        pass


def resume_run(run_dir, *, data=None, on_epoch=None, on_batch=None, progress=None, data_dir=None, offline=False):
    """Continue the interrupted run in the folder `run_dir` from its last checkpoint: run() with the
    run's own settings (resume_config) and resume=True. Returns the RunResult of the whole run."""
    config = resume_config(run_dir, data_dir=data_dir, offline=offline)
    return run(config, data=data, on_epoch=on_epoch, on_batch=on_batch, progress=progress, resume=True)


def resume_config(run_dir, *, data_dir=None, offline=False):
    """The settings of the run in the folder `run_dir`, to continue it: those of its run.json, output
    the folder, data_dir and offline as given (else as it recorded them). A folder whose run cannot be
    continued (complete, diverged, not a run) is a ConfigError naming it."""
    from .manifest import ManifestError, read_manifest

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: not a run folder")
    try:
        manifest = read_manifest(run_dir / "run.json")
    except ManifestError as e:
        raise ConfigError(str(e)) from None
    _check_resumable(run_dir, manifest)
    recorded = manifest["config"]
    data_dir = data_dir if data_dir is not None else recorded.get("data_dir")
    config = RunConfig.from_run_json(run_dir / "run.json", data_dir=data_dir)
    return replace(config, output=str(run_dir), data_dir=data_dir, offline=bool(offline or recorded.get("offline")))


def write_run(out, config, net, history, seconds, X_test, y_test):
    """model.npz, run.json ("status": "complete") and (unless config.plot is False) the report, into
    the folder `out`."""
    from .manifest import build_manifest, dataset_sha256, manifest_json
    from .modelfile import save

    save(net, out / "model.npz")
    shown = net if backend_of(net.params()[0]) == "numpy" else copy.deepcopy(net).to("numpy")  # the report's: NumPy
    manifest = build_manifest(config.to_dict(), history, seconds, dataset_sha256(config.dataset, config.data_dir),
                              kernel_isa=_kernel_isa(net) if history.path == "kernel" else None)
    atomic_write(out / "run.json", manifest_json(manifest))
    if config.plot:
        from ..report.page import write_report

        write_report(out, shown, history, manifest, X_test, y_test, pngs=["loss_accuracy"])  # the other PNGs: build_report
    return RunResult(out, config, net, history, manifest)


# --- one run per folder ------------------------------------------------------------------------


def make_output(path, *, overwrite=False):
    """The output folder, claimed for one run: (its Path, a lock held until _unlock(lock)).

    None: a new runs/<date>-<time>, or -2, -3, ... after it if that exists. A folder given is made
    if missing; one that exists must be empty, or hold a run (and nothing else) that overwrite=True
    lets go: its files are deleted here (run.json last). os.mkdir and the lock (flock, released by
    the system if the process dies) make it one run's: of two runs racing for a folder, one gets it
    and the other a ConfigError. Every problem is a one-line ConfigError."""
    if path is None:
        return _new_default_folder()
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(out)  # exclusive: of two runs making it, one does
            created = True
        except FileExistsError:
            created = False
    except OSError as e:
        raise ConfigError(f"cannot write to output folder {out}: {e.strerror or e}") from None
    if not out.is_dir():
        raise ConfigError(f"output folder {out} is a file, not a folder")
    lock = _lock(out)
    try:
        if not created:
            _let_go(out, overwrite)
    except BaseException:
        _unlock(lock)
        raise
    return out, lock


def claim_run(config):
    """The folder of the run to continue, config.output, locked as make_output locks it; a
    ConfigError unless its run can be continued with these very settings."""
    from .manifest import ManifestError, read_manifest

    out = Path(config.output)
    if not out.is_dir():
        raise ConfigError(f"{out}: not a run folder")
    lock = _lock(out)
    try:
        manifest = read_manifest(out / "run.json")
        _check_resumable(out, manifest)
        recorded = RunConfig.from_run_json(out / "run.json", data_dir=config.data_dir).resolved().to_dict()
        ours = config.to_dict()
        differ = [name for name in recorded if name not in NOT_REPEATED and recorded[name] != ours[name]]
        if differ:
            raise ConfigError(f"{out}: resuming needs the run's own settings; these differ: {', '.join(differ)}")
    except ManifestError as e:
        _unlock(lock)
        raise ConfigError(str(e)) from None
    except BaseException:
        _unlock(lock)
        raise
    return out, lock


def _check_resumable(out, manifest):
    status = manifest.get("status")
    if status == "complete":
        raise ConfigError(f"{out}: the run is complete ({manifest.get('epochs_done')} epochs): nothing to resume")
    if status == "diverged":
        raise ConfigError(f"{out}: the run diverged; resuming would diverge again: start a new run with a lower lr")
    if status not in RESUMABLE:
        raise ConfigError(f"{out / 'run.json'}: no \"status\" a run can resume from (not written by a run that "
                          "stopped part-way)")


def run_files():
    """The names of the files a run's folder may hold: deleted by overwrite, and nothing else is."""
    from ..report.page import CHARTS

    return {"model.npz", "run.json", CHECKPOINT, "report.html", "draw.html", *(f"{c[0]}.png" for c in CHARTS)}


def _is_leftover(name, names):
    """atomic_write's temporary file for one of a run's files: left by a process killed mid-write."""
    temporary = re.fullmatch(r"\.(.+)\.[^.]+\.tmp", name)
    return temporary is not None and temporary.group(1) in names


def _let_go(out, overwrite):
    """An existing output folder: fine if empty (but for leftovers, deleted); with overwrite, a run's
    folder is emptied; else ConfigError."""
    names = run_files()
    entries = sorted(os.listdir(out))
    unknown = [name for name in entries if not (name in names or _is_leftover(name, names)) or (out / name).is_dir()]
    if not unknown and all(_is_leftover(name, names) for name in entries):  # empty, or as good as
        for name in entries:
            (out / name).unlink()
        return
    if unknown:
        listed = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise ConfigError(f"output folder {out} holds files that are not a bareprop run's ({listed}): choose "
                          "another folder")
    if not overwrite:
        raise ConfigError(f"output folder {out} already holds a run: choose another folder, or overwrite it "
                          "(--overwrite)")
    from .manifest import ManifestError, read_manifest

    try:
        read_manifest(out / "run.json")
    except ManifestError as e:
        raise ConfigError(f"output folder {out} is not a bareprop run's, so it is not overwritten ({e})") from None
    for name in sorted(entries, key=lambda name: name == "run.json"):  # run.json last: until then, still a run
        (out / name).unlink()


def _new_default_folder():
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write to output folder {base}: {e.strerror or e}") from None
    for n in count(1):
        out = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            os.mkdir(out)
        except FileExistsError:
            continue
        except OSError as e:
            raise ConfigError(f"cannot write to output folder {out}: {e.strerror or e}") from None
        return out, _lock(out)


def _lock(out):
    """An exclusive lock on the folder (flock on it; None where the system has no flock)."""
    try:
        import fcntl
    except ImportError:  # Windows: os.mkdir alone keeps new folders apart
        return None
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError as e:
        raise ConfigError(f"cannot open output folder {out}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(f"output folder {out} is in use by another bareprop run") from None
    return fd


def _unlock(lock):
    if lock is not None:
        os.close(lock)  # closing it releases the flock


# --- the folder while it trains: run.json's status, and a checkpoint after each epoch ----------


class _Folder:
    """Writes the run's folder as it trains: run.json at the start, then after each epoch
    checkpoint.npz, run.json and model.npz (in that order: after a kill, each is as new as the one
    after it, or one epoch newer); run.json once more if it stops early."""

    def __init__(self, out, config, net, rng, start, examples):
        from .manifest import dataset_sha256

        self.out, self.config, self.net, self.rng, self.start = out, config, net, rng, start
        self.examples = examples  # len(X): a checkpoint continues only on the same training set
        self.data = dataset_sha256(config.dataset, config.data_dir)
        self.before = 0.0  # seconds spent before this process resumed the run
        self.last = History(path=None, threads=config.threads).to_dict()  # the figures of the epochs in model.npz
        self.last_seconds = 0.0

    @property
    def epochs_done(self):
        return len(self.last["epoch"])

    def seconds(self):
        return self.before + time.perf_counter() - self.start

    def begin(self, saved):
        """The first run.json: a run of this folder, "running" (a folder that cannot be written fails here)."""
        if saved is not None:
            history, _, self.before = saved
            self.last, self.last_seconds = history.to_dict(), self.before
        try:
            self._manifest("running", self.last, self.last_seconds)
        except OSError as e:
            raise ConfigError(f"cannot write to output folder {self.out}: {e.strerror or e}") from None

    def checkpoint(self, history, state):  # train()'s on_checkpoint: the net's weights are the epoch's
        from .modelfile import save

        seconds, figures = self.seconds(), history.to_dict()  # a copy: train() goes on appending
        try:
            write_checkpoint(self.out / CHECKPOINT, self.net, state, self.rng, history, seconds, self.examples)
            self._manifest("running", figures, seconds)
            save(self.net, self.out / "model.npz")  # last: never a model beside a run.json of no epoch
        except OSError as e:
            raise self.write_error(e) from None
        self.last, self.last_seconds = figures, seconds  # what model.npz holds: what stop() records

    def write_error(self, e):
        """The one-line OutputError for the OSError `e` raised while writing the folder."""
        return OutputError(f"cannot write {e.filename or self.out}: {e.strerror or e}; {self.kept()}")

    def stop(self, status, **extra):
        """run.json says why the run stopped, with the history of the epochs model.npz holds."""
        self._manifest(status, self.last, self.last_seconds, **extra)

    def kept(self):
        """What the folder keeps, for the message of a run that stopped."""
        k = self.epochs_done
        if k == 0:
            return f"{self.out} holds no finished epoch"
        return f"{self.out} keeps epoch {k - 1}" if k == 1 else f"{self.out} keeps epochs 0-{k - 1}"

    def _manifest(self, status, figures, seconds, **extra):
        from .manifest import build_manifest, manifest_json

        history = History.from_dict(figures)
        manifest = build_manifest(self.config.to_dict(), history, seconds, self.data,
                                  kernel_isa=_kernel_isa(self.net) if history.path == "kernel" else None, status=status)
        atomic_write(self.out / "run.json", manifest_json({**manifest, **extra}))


def write_checkpoint(path, net, state, rng, history, seconds, examples):
    """checkpoint.npz: the net's weights, the optimizer's state, the generator's state, the History,
    the seconds so far and the number of training examples: all that a run needs to go on as if it
    had never stopped. `meta` is JSON; the arrays are W.<i> (net.params()) and state.<key>.<i>."""
    from .manifest import _finite

    arrays, kinds = {}, {}
    for key, value in state.items():  # {"step": int, "velocity": [arrays] or None, "m": [...], ...}
        if isinstance(value, list):
            kinds[key] = {"arrays": len(value)}
            arrays.update({f"state.{key}.{i}": a for i, a in enumerate(value)})
        else:
            kinds[key] = value
    meta = {"format": CHECKPOINT_FORMAT, "version": 1, "epochs_done": len(history.epoch), "seconds": seconds,
            "examples": examples, "state": kinds, "rng": rng.bit_generator.state, "history": _finite(history.to_dict())}
    arrays.update({f"W.{i}": W for i, W in enumerate(net.params())})
    arrays = {name: to_numpy(A) for name, A in arrays.items()}  # from the net's array library, if not NumPy
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta, allow_nan=False)), **arrays)
    atomic_write(path, buffer.getvalue())


def read_checkpoint(out, net, optimizer, rng, examples):
    """Restore the net's weights and rng's state from out/checkpoint.npz; return (History, optimizer
    state, seconds), or None where no epoch was finished (no checkpoint, run.json's epochs_done 0).
    A checkpoint that does not fit the net and optimizer is a ConfigError naming it."""
    from .manifest import read_manifest

    path = out / CHECKPOINT
    if not path.exists():
        if read_manifest(out / "run.json").get("epochs_done"):
            raise ConfigError(f"{path}: missing, though run.json records finished epochs: cannot resume")
        return None  # killed before its first epoch ended: it starts again, the same numbers
    params = [to_numpy(W) for W in net.params()]
    template = optimizer.init(params)
    try:
        if not zipfile.is_zipfile(path):  # np.load would guess at other formats (a pickle, a .npy)
            raise ValueError("not an .npz archive")
        with np.load(path, allow_pickle=False) as archive:
            files = {name: archive[name] for name in archive.files}
        meta = json.loads(str(files.pop("meta")))
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != 1:
            raise ValueError(f"not a {CHECKPOINT_FORMAT} version 1")
        state = {}
        for key, kind in meta["state"].items():
            if isinstance(kind, dict):
                state[key] = [files.pop(f"state.{key}.{i}") for i in range(kind["arrays"])]
            else:
                state[key] = kind
        weights = [files.pop(f"W.{i}") for i in range(len(net.params()))]
        _check_like("optimizer state", state, template)
        _check_like("weights", weights, params)
        if files:
            raise ValueError(f"unexpected arrays {', '.join(sorted(files))}")
        history = History.from_dict(meta["history"])
        if len(history.epoch) != meta["epochs_done"]:
            raise ValueError("its history and epochs_done disagree")
        seconds = float(meta["seconds"])
        rng.bit_generator.state = meta["rng"]
    except Exception as e:  # a damaged zip, JSON, key or shape: all one line naming the file
        problem = f"no {e.args[0]!r}" if isinstance(e, KeyError) else _one_line(e)
        raise ConfigError(f"{path}: damaged or not this run's checkpoint ({problem})") from None
    if meta.get("examples") != examples:
        raise ConfigError(f"{path}: the run trained on {meta.get('examples')} examples, not the {examples} given")
    backend, device = backend_of(net.params()[0]), net.params()[0].device
    for W, saved in zip(net.params(), weights):
        W[...] = asarray(saved, backend, device)  # in place: the net's own arrays
    state = {key: [asarray(a, backend, device) for a in value] if isinstance(value, list) else value
             for key, value in state.items()}  # on the net's array library and device
    return history, state, seconds


def _check_like(what, ours, template):
    """`ours` has the structure, shapes and dtypes of `template` (an optimizer state, a list of arrays)."""
    if isinstance(template, dict):
        if not isinstance(ours, dict) or set(ours) != set(template):
            raise ValueError(f"its {what} has keys {sorted(ours)}, not {sorted(template)}")
        for key in template:
            _check_like(f"{what} {key}", ours[key], template[key])
    elif isinstance(template, list):
        if not isinstance(ours, list) or len(ours) != len(template):
            raise ValueError(f"its {what} is not {len(template)} arrays")
        for a, b in zip(ours, template):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise ValueError(f"its {what} holds a {a.dtype} array of shape {a.shape}, not {b.dtype} {b.shape}")
    elif type(ours) is not type(template):
        raise ValueError(f"its {what} is {ours!r}")


def _one_line(error):
    return (str(error).splitlines() or [type(error).__name__])[0]


def _backend(config):
    """A function moving NumPy arrays to config.backend on config.device; a ConfigError (one line) where the
    library or the device is missing."""
    if config.backend == "numpy":
        return lambda A: A
    try:
        asarray(np.zeros(1), config.backend, config.device)  # the library imports, the device is there
    except (ImportError, RuntimeError) as e:
        raise ConfigError(f"backend {config.backend} on {config.device}: {_one_line(e)}") from None
    return lambda A: asarray(A, config.backend, config.device)


def _check_kernel(config, net, optimizer):
    """path="kernel" on a net the fast paths cannot train: a ConfigError now, rather than train()'s ValueError."""
    if config.path != "kernel":
        return
    from .. import fast

    try:
        fast.runner(net, config.batch_size, optimizer, config.threads, required=True)
    except ValueError as e:
        raise ConfigError(str(e).removeprefix("train: ")) from None


def _kernel_isa(net):
    """The instructions of the compiled code that trained `net`: conv.py's for a convolutional net, else kernel.py's."""
    from ..fast import conv, kernel

    return conv._conv.ISA if conv.is_convolutional(net) else kernel._kernel.ISA
