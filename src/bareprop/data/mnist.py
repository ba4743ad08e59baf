"""MNIST, shipped inside the package: loads offline and is verified on every load."""

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from .idx import IDXError, decompress, parse_idx

# SHA-256 of each decompressed payload (byte-identical to the official release).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
SPLITS = {"train": "train", "test": "t10k"}
CLASSES = [str(d) for d in range(10)]


class DataError(ValueError):
    """A data file is missing, unreadable, or not what it should be."""


def shipped_dir():
    """The folder inside the installed package that holds the four MNIST .gz files."""
    return Path(str(resources.files("bareprop.data") / "mnist"))


def load_payload(path, sha256):
    """Read a .gz (or raw) file, decompress it and check the payload's SHA-256."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        payload = decompress(raw, str(path))
    except IDXError as e:
        raise DataError(str(e)) from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != sha256:
        raise DataError(f"{path}: SHA-256 of the decompressed data is {digest}, expected {sha256}")
    return payload


def load_mnist(split="train", data_dir=None, dtype=np.float32):
    """MNIST images and labels: X (N, 784) float32 in [0, 1], y (N,) int64.

    split is "train" (60,000 images) or "test" (10,000). The files come from the
    package itself unless data_dir names a folder holding the same four files.
    dtype=np.uint8 gives the raw pixel values 0..255 instead (a quarter of the memory;
    NeuralNet and train() scale uint8 inputs to [0, 1] batch by batch, with the same
    division, so the numbers are the same).
    """
    if split not in SPLITS:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    folder = Path(data_dir) if data_dir is not None else shipped_dir()
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        stem = f"{SPLITS[split]}-{kind}-ubyte"
        path = folder / f"{stem}.gz"
        if not path.exists() and (folder / stem).exists():
            path = folder / stem
        payload = load_payload(path, SHA256[stem])
        try:
            arrays.append(parse_idx(payload, str(path)))
        except IDXError as e:
            raise DataError(str(e)) from None
    images, labels = arrays
    X = images.reshape(len(images), -1)  # (N, 784) uint8
    if np.dtype(dtype) != np.uint8:
        X = np.divide(X, np.dtype(dtype).type(255), dtype=dtype)  # (N, 784) in [0, 1]
    y = labels.astype(np.int64)  # (N,)
    return X, y
