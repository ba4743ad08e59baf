import gzip

import numpy as np
import pytest

from bareprop import IDXError, read_idx
from bareprop.data import encode_idx, parse_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, dtype, compress):
    a = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    data = encode_idx(a)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(data) if compress else data)
    b = read_idx(path)
    assert b.shape == (2, 3, 4) and b.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, b)


def test_hand_written_label_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))  # magic 0x00000801, N = 3, then 7 2 1
    np.testing.assert_array_equal(read_idx(path), [7, 2, 1])


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (bytes([0, 0, 8]), "too short"),
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]), "magic"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 5]), "element type"),
    (bytes([0, 0, 8, 3, 0, 0]), "dimensions"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2]), r"need 11 bytes, the file has 10"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1, 0]), r"need 11 bytes, the file has 12"),
    (bytes([0, 0, 8, 3]) + bytes([0xFF] * 12) + bytes(100), "need"),  # a huge header is refused, not allocated
    (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))[:-6], "truncated gzip"),
    (b"\x1f\x8b" + bytes(30), "corrupt gzip"),
])
def test_bad_files_raise_idx_error(data, message):
    with pytest.raises(IDXError, match=message):
        parse_idx(data, name="f")
