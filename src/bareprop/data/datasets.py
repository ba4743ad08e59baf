"""Datasets by name: the MNIST family, shipped or downloaded into a verified cache.

A dataset is four gzipped IDX files. Trust rests on two checksums:
- the MD5 of each official .gz, checked before a downloaded or imported file is accepted;
- the SHA-256 of each decompressed payload: known in advance for MNIST, recorded in the
  dataset folder's manifest.json when a file is accepted, and checked again on every load,
  so a file truncated or altered later is caught.
New files reach the cache under a temporary name and are renamed only once all of them are
verified: a failed or interrupted download leaves the cache exactly as it was.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ..files import atomic_write
from .download import MirrorFailure, fetch
from .errors import DataError
from .idx import MAX_PAYLOAD, IDXError, decompress, parse_idx
from .reading import read_file

SPLITS = ("train", "test")
FILES = {  # split -> (images file, labels file), the same names across the family
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = FILES["train"] + FILES["test"]
IMAGE_SIZE = 28
MANIFEST = "manifest.json"
MAX_MANIFEST = 2**20  # bytes of a dataset folder's manifest.json (it holds four entries)


@dataclass(frozen=True)
class Dataset:
    """What bareprop knows about a dataset before touching a file."""

    name: str
    classes: tuple  # class names, index = label
    md5: dict = field(default_factory=dict)  # file name -> MD5 of the official .gz
    sha256: dict = field(default_factory=dict)  # file name -> SHA-256 of the payload, where known in advance
    mirrors: tuple = ()  # base URLs ending in "/", tried in order
    shipped: bool = False  # the files are inside the package: never downloaded
    about: str = ""


MNIST = Dataset(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    sha256={  # the official payloads (src/bareprop/data/mnist/README.md)
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    shipped=True,
    about="handwritten digits 0-9 (LeCun, Cortes, Burges), ships inside bareprop",
)
FASHION_MNIST = Dataset(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    about="Zalando's clothing images, 10 classes (Xiao, Rasul, Vollgraf), MIT licence",
)
KMNIST = Dataset(
    name="kmnist",
    classes=("o (お)", "ki (き)", "su (す)", "tsu (つ)", "na (な)",
             "ha (は)", "ma (ま)", "ya (や)", "re (れ)", "wo (を)"),
    md5={
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    },
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    about="Kuzushiji-MNIST, cursive Japanese hiragana (ROIS-DS CODH), CC BY-SA 4.0",
)
DATASETS = {d.name: d for d in (MNIST, FASHION_MNIST, KMNIST)}


# ---- where the files are ---------------------------------------------------------------------

def get_dataset(name):
    """The Dataset called `name` (a Dataset passes through unchanged)."""
    if isinstance(name, Dataset):
        return name
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def shipped_dir():
    """The folder inside the installed package that holds the four MNIST .gz files."""
    return Path(str(resources.files("bareprop.data") / "mnist"))


def cache_root(data_dir=None):
    """The cache folder: data_dir, else $BAREPROP_DATA, else the user's cache folder."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get("BAREPROP_DATA"):
        return Path(os.environ["BAREPROP_DATA"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("bareprop"))


def offline_default():
    """True when $BAREPROP_OFFLINE says so (1, true, yes, on)."""
    value = os.environ.get("BAREPROP_OFFLINE", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise DataError(f"BAREPROP_OFFLINE must be 1 or 0, got {value!r}")


def dataset_folder(name, data_dir=None):
    """The folder that holds (or will hold) the dataset's files."""
    ds = get_dataset(name)
    return shipped_dir() if ds.shipped else cache_root(data_dir) / ds.name


def _read_manifest(folder):
    """file name -> {"md5", "sha256", "bytes", "source"}; empty when there is no usable manifest
    (the files are then checked against their official MD5s instead)."""
    try:
        raw = read_file(folder / MANIFEST, MAX_MANIFEST, "a dataset manifest", DataError)
        files = json.loads(raw).get("files", {})
    except (OSError, ValueError, AttributeError):  # DataError is a ValueError: a FIFO, a device, too large
        return {}
    if not isinstance(files, dict):
        return {}
    return {f: e for f, e in files.items() if isinstance(e, dict) and isinstance(e.get("sha256"), str)}


def _write_manifest(folder, ds, entries):
    files = {**_read_manifest(folder), **entries}
    record = {"dataset": ds.name, "files": {k: files[k] for k in sorted(files)}}
    atomic_write(folder / MANIFEST, (json.dumps(record, indent=2) + "\n").encode())


# ---- checking files ---------------------------------------------------------------------------

def _read_bytes(path):
    """A dataset file's bytes: a regular file (not a folder, a FIFO, /dev/zero) of at most MAX_PAYLOAD bytes."""
    path = Path(path)
    try:
        return read_file(path, MAX_PAYLOAD, "a dataset file", lambda problem: DataError(f"{path}: {problem}"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _md5_error(name, digest, expected):
    return DataError(f"{name}: MD5 of the .gz is {digest}, expected {expected} (the official file's)")


def _payload(ds, file, raw, name, manifest):
    """Decompress one file's bytes and check the payload's SHA-256 against what is known of it:
    the SHA-256 known in advance, else the one in the manifest, else (first sight of the file)
    the official MD5 of the .gz. Returns (payload, sha256)."""
    if not raw:
        raise IDXError(f"{name}: empty file (0 bytes)")
    payload = decompress(raw, name, MAX_PAYLOAD)
    expected = ds.sha256.get(file) or manifest.get(file, {}).get("sha256")
    if expected is None:
        digest = hashlib.md5(raw).hexdigest()
        if digest != ds.md5.get(file):
            raise _md5_error(name, digest, ds.md5.get(file))
    digest = hashlib.sha256(payload).hexdigest()
    if expected is not None and digest != expected:
        raise DataError(f"{name}: SHA-256 of the decompressed data is {digest}, expected {expected}")
    return payload, digest


def _split_arrays(ds, split, sources, manifest):
    """Read and check one split: images (N, 28, 28) uint8, labels (N,) uint8 within the classes.

    sources maps file name -> (path to read, name for messages). Returns (images, labels, facts)
    where facts maps each file name to its manifest entry."""
    arrays, facts = [], {}
    for file, shape in zip(FILES[split], [(None, IMAGE_SIZE, IMAGE_SIZE), (None,)]):
        path, name = sources[file]
        raw = _read_bytes(path)
        payload, sha256 = _payload(ds, file, raw, name, manifest)
        arrays.append(parse_idx(payload, name, dtype=np.uint8, shape=shape))
        facts[file] = {"md5": hashlib.md5(raw).hexdigest(), "sha256": sha256, "bytes": len(raw)}
    images, labels = arrays
    (_, images_name), (_, labels_name) = (sources[f] for f in FILES[split])
    if len(images) == 0:
        raise DataError(f"{images_name}: holds no images")
    if len(images) != len(labels):
        raise DataError(f"{labels_name}: {len(labels)} labels for the {len(images)} images of {images_name}")
    if len(labels) and labels.max() >= len(ds.classes):
        i = int(np.argmax(labels >= len(ds.classes)))
        raise DataError(f"{labels_name}: label {labels[i]} at index {i} is outside the {len(ds.classes)} "
                        f"classes of {ds.name} (0-{len(ds.classes) - 1})")
    return images, labels, facts


def _missing(folder):
    return [f for f in ALL_FILES if not (folder / f).exists()]


def _in_place(folder):
    return {f: (folder / f, str(folder / f)) for f in ALL_FILES}


# ---- loading ------------------------------------------------------------------------------------

def load_dataset(name, split="train", *, data_dir=None, offline=None, progress=None, dtype=np.float32):
    """A split of a dataset: X (N, 784) float32 in [0, 1], y (N,) int64.

    mnist loads from the package; the others from the cache folder (data_dir, else
    $BAREPROP_DATA, else the user's cache folder), downloaded there on first use unless
    offline (default: $BAREPROP_OFFLINE). Every load checks every file's SHA-256.
    progress(file, bytes_done, bytes_total) is called while downloading. dtype=np.uint8 gives
    the raw pixels 0..255 instead (a quarter of the memory; NeuralNet and train() scale uint8
    inputs batch by batch, with the same division, so the numbers are the same).
    """
    ds = get_dataset(name)
    if split not in SPLITS:
        raise DataError(f"{ds.name}: split must be 'train' or 'test', got {split!r}")
    folder = dataset_folder(ds, data_dir)
    if not ds.shipped and any(not (folder / f).exists() for f in FILES[split]):
        if offline_default() if offline is None else offline:
            raise _offline_error(ds, folder)
        download_dataset(ds, data_dir=data_dir, progress=progress, offline=False)
    manifest = _read_manifest(folder)
    images, labels, facts = _split_arrays(ds, split, _in_place(folder), manifest)
    if not ds.shipped and any(f not in manifest for f in facts):
        try:  # first sight of files put here by hand: record their SHA-256 for later loads
            _write_manifest(folder, ds, {f: {**facts[f], "source": "found in the cache"} for f in facts})
        except OSError:
            pass  # a read-only cache still loads; the MD5s are checked again next time
    return _as_training_arrays(images, labels, dtype)


def _as_training_arrays(images, labels, dtype):
    X = images.reshape(len(images), -1)  # (N, 784) uint8
    if np.dtype(dtype) != np.uint8:
        X = np.divide(X, np.dtype(dtype).type(255), dtype=dtype)  # (N, 784) in [0, 1]
    y = labels.astype(np.int64)  # (N,)
    return X, y


def load_folder(name, split, folder, dtype=np.float32):
    """A split read from a folder that holds the dataset's files (.gz or uncompressed), checked
    against the SHA-256s known in advance (mnist) or the official MD5s of the .gz files."""
    ds, folder = get_dataset(name), Path(folder)
    sources = {}
    for file in FILES[split]:
        path = folder / file
        if not path.exists() and (folder / file.removesuffix(".gz")).exists():
            path = folder / file.removesuffix(".gz")
        sources[file] = (path, str(path))
    images, labels, _ = _split_arrays(ds, split, sources, {})
    return _as_training_arrays(images, labels, dtype)


def _offline_error(ds, folder):
    return DataError(
        f"{ds.name} is not in the cache and downloads are off (--offline or BAREPROP_OFFLINE=1): "
        f"put {', '.join(_missing(folder))} into {folder} (from {ds.mirrors[0] if ds.mirrors else 'its publisher'}), "
        f"or run 'bareprop data import {ds.name} DIR' on a folder that holds them"
    )


# ---- verifying -------------------------------------------------------------------------------

def verify_dataset(name, *, data_dir=None):
    """Check every file of a dataset; return {file: {"path", "md5", "sha256", "bytes"}}.
    Raises DataError for the first problem, or when the dataset is not there."""
    ds = get_dataset(name)
    folder = dataset_folder(ds, data_dir)
    missing = _missing(folder)
    if missing:
        raise DataError(f"{ds.name}: {', '.join(missing)} missing from {folder}; "
                        f"run 'bareprop data download {ds.name}'")
    manifest = _read_manifest(folder)
    report = {}
    for split in SPLITS:
        _, _, facts = _split_arrays(ds, split, _in_place(folder), manifest)
        report.update({f: {"path": str(folder / f), **facts[f]} for f in facts})
    return report


def dataset_status(name, *, data_dir=None):
    """(folder, files present, bytes on disk, problem or None): for `bareprop data list`."""
    ds = get_dataset(name)
    folder = dataset_folder(ds, data_dir)
    present = [f for f in ALL_FILES if (folder / f).is_file()]
    size = sum((folder / f).stat().st_size for f in present)
    try:
        verify_dataset(ds, data_dir=data_dir)
        problem = None
    except DataError as e:
        problem = str(e)
    return folder, len(present), size, problem


# ---- downloading and importing -----------------------------------------------------------------

def _make_folder(folder):
    """Create `folder` and its missing parents; return those created, deepest first (to undo)."""
    created, p = [], folder
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    if folder.exists() and not folder.is_dir():
        raise DataError(f"cannot write to the cache folder {folder}: it is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        _remove_empty(created)
        raise DataError(f"cannot write to the cache folder {folder}: {e.strerror or e}") from None
    return created


def _remove_empty(folders):
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def _install(ds, folder, stage, *, replace=False):
    """Stage the files that need it, verify the whole dataset, then rename into place.

    stage(file, tmp_file) fills the open temporary file and returns (name for messages, source);
    it raises DataError when it cannot. Files already present and valid are kept unless `replace`.
    On any failure, every temporary file (and every folder this call created) is removed: the cache
    is exactly as it was, unless the failure came among the renames (an I/O error), which leaves the
    files already renamed in place: each an official file, verified, so the cache stays valid.
    """
    created = _make_folder(folder)
    manifest = _read_manifest(folder)
    staged = {}  # file -> (tmp path, name for messages, source)
    keep = [] if replace else _valid_files(ds, folder, manifest)
    try:
        for file in ALL_FILES:
            if file in keep:
                continue
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{file}.", suffix=".part")
            staged[file] = (Path(tmp), str(folder / file), None)
            with os.fdopen(fd, "wb") as out:
                name, source = stage(file, out)
            staged[file] = (Path(tmp), name, source)
        sources = {**_in_place(folder), **{f: (tmp, name) for f, (tmp, name, _) in staged.items()}}
        known = {f: e for f, e in manifest.items() if f not in staged}  # new files: their MD5 decides
        facts = {}
        for split in SPLITS:
            facts.update(_split_arrays(ds, split, sources, known)[2])
        for target in [*staged, MANIFEST]:  # what cannot be replaced is found before anything is
            if (folder / target).is_dir():
                raise DataError(f"cannot write to the cache folder {folder}: {target} is a folder")
        umask = os.umask(0)
        os.umask(umask)
        for file, (tmp, _, _) in staged.items():
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
            os.replace(tmp, folder / file)
        if staged:
            _write_manifest(folder, ds, {f: {**facts[f], "source": src} for f, (_, _, src) in staged.items()})
    except BaseException as e:
        for tmp, _, _ in staged.values():
            tmp.unlink(missing_ok=True)
        _remove_empty(created)
        if isinstance(e, OSError):
            raise DataError(f"cannot write to the cache folder {folder}: {e.strerror or e}") from None
        raise
    return folder


def _valid_files(ds, folder, manifest):
    """The files already in `folder` whose payload matches what is known of it."""
    valid = []
    for file in ALL_FILES:
        path = folder / file
        if path.is_file():
            try:
                _payload(ds, file, _read_bytes(path), str(path), manifest)
                valid.append(file)
            except DataError:
                pass
    return valid


def download_dataset(name, *, data_dir=None, progress=None, offline=None, timeout=30):
    """Download the dataset's missing (or invalid) files into the cache and verify them; return the folder.

    Each file: the mirrors are tried in order; a mirror whose answer is an error, is cut short, or
    does not match the official MD5 is skipped for the next. progress(file, done, total) reports bytes.
    offline (default: $BAREPROP_OFFLINE) refuses before any connection is opened.
    """
    ds = get_dataset(name)
    if ds.shipped:
        return shipped_dir()
    folder = dataset_folder(ds, data_dir)
    if (offline_default() if offline is None else offline) and _missing(folder):
        raise _offline_error(ds, folder)

    def stage(file, out):
        failures = []
        for base in ds.mirrors:
            url = base + file
            out.seek(0)
            out.truncate()
            try:
                digest = fetch(url, out, lambda done, total: progress and progress(file, done, total), timeout)
            except MirrorFailure as e:
                failures.append(f"{url}: {e}")
                continue
            except OSError as e:
                raise DataError(f"cannot write to the cache folder {folder}: {e.strerror or e}") from None
            if digest != ds.md5[file]:
                failures.append(f"{url}: MD5 of the .gz is {digest}, expected {ds.md5[file]} (the official file's)")
                continue
            return url, url
        raise DataError(f"{ds.name}: every mirror failed for {file}: " + "; ".join(failures or ["no mirrors"]))

    return _install(ds, folder, stage)


def import_dataset(name, source_dir, *, data_dir=None):
    """Copy manually downloaded files from source_dir into the cache, after verifying them."""
    ds = get_dataset(name)
    if ds.shipped:
        return shipped_dir()
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DataError(f"{source_dir}: not a folder")
    for file in ALL_FILES:  # check the sources are there before touching the cache
        if (source_dir / file).is_dir():
            raise DataError(f"{source_dir / file}: is a folder, expected a file")
        if not (source_dir / file).exists():
            raise DataError(f"{source_dir / file}: missing (import needs {', '.join(ALL_FILES)})")
    folder = dataset_folder(ds, data_dir)

    def stage(file, out):
        path = source_dir / file
        raw = _read_bytes(path)
        if not raw:
            raise IDXError(f"{path}: empty file (0 bytes)")
        decompress(raw, str(path), MAX_PAYLOAD)  # a truncated or corrupt stream is named as such, not just as a wrong MD5
        digest = hashlib.md5(raw).hexdigest()
        if digest != ds.md5[file]:
            raise _md5_error(str(path), digest, ds.md5[file])
        try:
            out.write(raw)
        except OSError as e:
            raise DataError(f"cannot write to the cache folder {folder}: {e.strerror or e}") from None
        return str(path), f"imported from {path.resolve()}"

    return _install(ds, folder, stage, replace=True)


__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "IDXError",
    "cache_root",
    "dataset_folder",
    "dataset_status",
    "download_dataset",
    "get_dataset",
    "import_dataset",
    "load_dataset",
    "load_folder",
    "verify_dataset",
]
