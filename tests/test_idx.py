import gzip
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bareprop import IDXError, read_idx
from bareprop.data import encode_idx, parse_idx
from bareprop.data.idx import IDX_TYPES, decompress


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
    # found by Hypothesis: a zero dimension makes the byte count match, the others overflow reshape
    (b"\x00\x00\x08\x04\x00\x00\x00\x00\x00\x00\x00\x02O\x00\x00\x00\xcfdt\xa9", "too large"),
    (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]), mtime=0)[:-6], "truncated gzip"),  # mtime 0: the same test id each run
    (b"\x1f\x8b" + bytes(30), "corrupt gzip"),
])
def test_bad_files_raise_idx_error(data, message):
    with pytest.raises(IDXError, match=message):
        parse_idx(data, name="f")


# ---- what the datasets need: element type and shape, checked from the header ------------------------

def test_expected_dtype_and_shape():
    images = encode_idx(np.zeros((3, 28, 28), dtype=np.uint8))
    assert parse_idx(images, "f", dtype=np.uint8, shape=(None, 28, 28)).shape == (3, 28, 28)
    with pytest.raises(IDXError, match=r"^f: IDX element type 0x08 \(uint8\), expected 0x0b \(int16\)$"):
        parse_idx(images, "f", dtype=np.int16)
    with pytest.raises(IDXError, match=r"^f: dimensions \(3, 28, 28\), expected \(N, 32, 32\)$"):
        parse_idx(images, "f", shape=(None, 32, 32))
    with pytest.raises(IDXError, match=r"^f: dimensions \(3, 28, 28\), expected \(N,\)$"):
        parse_idx(images, "f", shape=(None,))


def test_huge_header_is_refused_before_allocating():
    header = bytes([0, 0, 8, 3]) + np.asarray([10**9, 28, 28], dtype=">u4").tobytes()
    for data in (header + bytes(1024), gzip.compress(header + bytes(1024))):
        tracemalloc.start()
        with pytest.raises(IDXError, match=r"need 784000000016 bytes, the file has 1040"):
            parse_idx(data, "f")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1_000_000  # nothing near 784 GB, nor even 1 MB


# ---- fuzzing: a valid array or IDXError, nothing else, and never more than the data holds ----------------

def parse_or_refuse(data, **expect):
    """parse_idx's only two outcomes: an array exactly as large as the data says, or IDXError."""
    try:
        array = parse_idx(data, "fuzz", **expect)
    except IDXError as e:
        assert str(e).startswith("fuzz: ") and "\n" not in str(e)
        return None
    payload = decompress(data)
    assert 4 + 4 * array.ndim + array.nbytes == len(payload)
    if expect.get("dtype") is not None:
        assert array.dtype == np.dtype(expect["dtype"])
    return array


@st.composite
def idx_files(draw):
    """Valid IDX bytes (sometimes gzipped), of any element type and a small shape."""
    code = draw(st.sampled_from(sorted(IDX_TYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    n = int(np.prod(shape, dtype=np.int64)) * IDX_TYPES[code].itemsize
    data = encode_idx(np.frombuffer(draw(st.binary(min_size=n, max_size=n)), dtype=IDX_TYPES[code]).reshape(shape))
    return gzip.compress(data, mtime=0) if draw(st.booleans()) else data


@st.composite
def mutated(draw):
    """A valid file, then a few of: bytes overwritten, cut, inserted, appended."""
    data = bytearray(draw(idx_files()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "cut", "insert", "append"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    parse_or_refuse(data)
    parse_or_refuse(b"\x1f\x8b" + data)  # gzip's magic, then anything


@FUZZ
@given(st.binary(min_size=4, max_size=4).map(lambda h: b"\0\0" + h[2:]), st.lists(st.integers(0, 2**32 - 1), max_size=4),
       st.binary(max_size=64))
def test_fuzz_headers(head, dims, body):
    data = head[:3] + bytes([len(dims)]) + np.asarray(dims, dtype=">u4").tobytes() + body
    parse_or_refuse(data)


@FUZZ
@given(idx_files())
def test_valid_files_round_trip(data):
    assert parse_or_refuse(data) is not None


@FUZZ
@given(mutated(), st.sampled_from([{}, {"dtype": np.uint8}, {"dtype": np.uint8, "shape": (None, 2, 3)}]))
def test_fuzz_mutated_files(data, expect):
    parse_or_refuse(data, **expect)


def test_gzip_members_padding_and_bombs():
    a = encode_idx(np.arange(3, dtype=np.uint8))
    two_members = gzip.compress(a[:6], mtime=0) + gzip.compress(a[6:], mtime=0) + bytes(8)
    np.testing.assert_array_equal(parse_idx(two_members, "f"), [0, 1, 2])  # as gzip itself reads it
    with pytest.raises(IDXError, match=r"^f: corrupt gzip stream \(.*\)$"):
        parse_idx(gzip.compress(a) + b"junk", "f")
    bomb = gzip.compress(bytes(10_000_000))  # 10 kB that inflate to 10 MB
    tracemalloc.start()
    with pytest.raises(IDXError, match=r"^f: decompresses to more than 100000 bytes$"):
        parse_idx(bomb, "f", limit=100_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000
    assert len(decompress(bomb, "f", limit=10_000_000)) == 10_000_000


def test_read_idx_names_the_file_in_each_error(tmp_path):
    """What is wrong with the bytes is said of the file that holds them, one line."""
    (tmp_path / "magic.idx").write_bytes(bytes([1, 0, 8, 1, 0, 0, 0, 1, 5]))
    (tmp_path / "short.idx.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1]))[:-6])
    (tmp_path / "long.idx").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1, 0]))
    for name, problem in [
        ("magic.idx", "wrong IDX magic 01000801 (the first two bytes must be zero)"),
        ("short.idx.gz", "truncated gzip stream (the file ends before the compressed data does)"),
        ("long.idx", "dimensions (3,) of 1-byte elements need 11 bytes, the file has 12"),
    ]:
        with pytest.raises(IDXError) as caught:
            read_idx(tmp_path / name)
        assert str(caught.value) == f"{tmp_path / name}: {problem}"


def test_read_idx_refuses_what_is_not_a_small_regular_file_in_one_line(tmp_path):
    """A folder, or a file over the cap, is refused naming the path before a byte is read; a small file
    that would inflate past the cap is refused too (the same cap bounds gzip's output)."""
    (tmp_path / "folder.idx").mkdir()
    big = gzip.compress(encode_idx(np.zeros(5000, np.uint8)))  # 5,008 bytes inflated, far fewer on disk
    (tmp_path / "bomb.idx.gz").write_bytes(big)
    (tmp_path / "plain.idx").write_bytes(encode_idx(np.zeros(5000, np.uint8)))
    for name, limit, problem in [
        ("folder.idx", 10**6, "is a folder, expected a file"),
        ("plain.idx", 1000, "4.89 KiB (5008 bytes), more than the 1000 bytes bareprop reads from an IDX file"),
        ("bomb.idx.gz", 1000, "decompresses to more than 1000 bytes"),
    ]:
        with pytest.raises(IDXError) as caught:
            read_idx(tmp_path / name, limit=limit)
        assert str(caught.value) == f"{tmp_path / name}: {problem}"
    assert read_idx(tmp_path / "bomb.idx.gz", limit=6000).shape == (5000,)


def test_encode_idx_refuses_a_dtype_idx_cannot_store_in_one_line():
    with pytest.raises(IDXError, match=r"^IDX cannot store arrays of dtype complex64$"):
        encode_idx(np.zeros(3, np.complex64))
