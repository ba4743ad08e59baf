import gzip
import shutil

import numpy as np
import pytest

from bareprop import DataError, load_mnist
from bareprop.data.mnist import shipped_dir


def test_shipped_mnist_loads_verified():
    X, y = load_mnist("test")
    assert X.shape == (10_000, 784) and X.dtype == np.float32
    assert y.shape == (10_000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # the published label counts (../shared/data/mnist/README.md)
    assert np.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_train_split_shape_and_counts():
    X, y = load_mnist("train")
    assert X.shape == (60_000, 784)
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def copy_test_files(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shipped_dir() / name, tmp_path / name)


def test_altered_payload_is_caught(tmp_path):
    copy_test_files(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[100] = (payload[100] + 1) % 10  # one label changed: a valid file, but not MNIST's
    labels.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: SHA-256 .* expected ff7bcfd4"):
        load_mnist("test", data_dir=tmp_path)


def test_truncated_file_is_caught(tmp_path):
    copy_test_files(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:5000])
    with pytest.raises(DataError, match="truncated gzip"):
        load_mnist("test", data_dir=tmp_path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: missing"):
        load_mnist("test", data_dir=tmp_path)


def test_uncompressed_files_are_accepted(tmp_path):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((shipped_dir() / f"{name}.gz").read_bytes()))
    X, y = load_mnist("test", data_dir=tmp_path)
    assert X.shape == (10_000, 784)


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")


def test_a_data_dir_gives_the_same_arrays_as_the_shipped_files(tmp_path):
    """float32 in [0, 1] by default, the raw uint8 pixels when asked: as without data_dir."""
    copy_test_files(tmp_path)
    X, y = load_mnist("test", data_dir=tmp_path)
    X_shipped, y_shipped = load_mnist("test")
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, X_shipped)
    np.testing.assert_array_equal(y, y_shipped)
    X8, _ = load_mnist("test", data_dir=tmp_path, dtype=np.uint8)
    assert X8.dtype == np.uint8 and np.array_equal(X8 / np.float32(255), X_shipped)


def test_the_training_split_is_the_default():
    X, y = load_mnist(dtype=np.uint8)  # the raw pixels: the dtype asked for reaches the shipped files too
    assert X.shape == (60_000, 784) and X.dtype == np.uint8 and y.shape == (60_000,)


def test_shipped_mnist_in_float64_is_the_pixels_over_255(mnist):
    X, _ = load_mnist("test", dtype=np.float64)
    X8 = mnist[1][0]  # the uint8 pixels, loaded once for the session
    assert X.dtype == np.float64 and X8.dtype == np.uint8
    np.testing.assert_array_equal(X, X8 / np.float64(255))


def test_a_data_dir_is_checked_for_either_split(tmp_path):
    """Each split is read from the folder given; any other split is refused, one line."""
    with pytest.raises(DataError) as e:
        load_mnist("validation", data_dir=tmp_path)
    assert str(e.value) == "load_mnist: split must be 'train' or 'test', got 'validation'"
    for split, images in (("train", "train-images-idx3-ubyte.gz"), ("test", "t10k-images-idx3-ubyte.gz")):
        with pytest.raises(DataError) as e:
            load_mnist(split, data_dir=tmp_path)
        assert str(e.value) == f"{tmp_path / images}: missing"
