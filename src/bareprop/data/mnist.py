"""MNIST, shipped inside the package: loads offline and is verified on every load."""

import numpy as np

from .datasets import MNIST, load_dataset, load_folder, shipped_dir
from .errors import DataError

SHA256 = {file.removesuffix(".gz"): sha for file, sha in MNIST.sha256.items()}  # of each decompressed payload
CLASSES = list(MNIST.classes)


def load_mnist(split="train", data_dir=None, dtype=np.float32):
    """MNIST images and labels: X (N, 784) float32 in [0, 1], y (N,) int64.

    split is "train" (60,000 images) or "test" (10,000). The files come from the
    package itself unless data_dir names a folder holding the same four files
    (.gz or uncompressed), which are checked against the official SHA-256s.
    dtype=np.uint8 gives the raw pixel values 0..255 instead (a quarter of the memory;
    NeuralNet and train() scale uint8 inputs to [0, 1] batch by batch, with the same
    division, so the numbers are the same).
    """
    if data_dir is None:
        return load_dataset(MNIST, split, dtype=dtype)
    if split not in ("train", "test"):
        raise DataError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    return load_folder(MNIST, split, data_dir, dtype)


__all__ = ["CLASSES", "SHA256", "DataError", "load_mnist", "shipped_dir"]
