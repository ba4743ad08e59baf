"""The IDX file format (MNIST's): parsing bytes, no network (read_idx alone opens a file).

Layout (big-endian): two zero bytes, one byte for the element type, one byte for
the number of dimensions D, then D unsigned 32-bit sizes, then the data in C order.
"""

import zlib

import numpy as np

from .errors import DataError
from .reading import read_file

# element type byte -> NumPy dtype (big-endian, as the format stores them)
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
MAX_PAYLOAD = 256 * 2**20  # bytes a dataset file may hold or inflate to (MNIST's largest is 47 MB): no gzip bombs


class IDXError(DataError):
    """The bytes are not a valid IDX file (or a valid gzip of one), or not the one the caller needs."""


def decompress(data, name="<bytes>", limit=None):
    """Gunzip `data` if it starts with the gzip magic, else return it unchanged.

    limit, if given, is the most bytes the result may have: a small file that would inflate
    beyond it (a "gzip bomb") is refused without being inflated further.
    """
    if bytes(data[:2]) != GZIP_MAGIC:
        return data
    parts, size, rest = [], 0, bytes(data)
    while rest.strip(b"\0"):  # one or more gzip members; zero padding after the last is allowed
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # checks the gzip header, CRC and length
        try:
            part = member.decompress(rest, 0 if limit is None else limit - size + 1)
        except zlib.error as e:
            raise IDXError(f"{name}: corrupt gzip stream ({e})") from None
        size += len(part)
        if limit is not None and size > limit:
            raise IDXError(f"{name}: decompresses to more than {limit} bytes")
        if not member.eof:
            raise IDXError(f"{name}: truncated gzip stream (the file ends before the compressed data does)")
        parts.append(part)
        rest = member.unused_data
    return b"".join(parts)


def _type_name(code):
    return f"0x{code:02x} ({IDX_TYPES[code].newbyteorder('=').name})"


def parse_idx(data, name="<bytes>", *, dtype=None, shape=None, limit=None):
    """Parse IDX bytes (raw or gzip) into a native-endian array.

    dtype, if given, is the element type the caller needs (np.uint8 for MNIST);
    shape, if given, the dimensions it needs, None where any size will do
    ((None, 28, 28) for MNIST images). Every header field is checked, against these
    and against the length of the data, before anything is allocated; any problem
    raises IDXError naming `name`. limit bounds the size of gzip's output (see decompress).
    """
    if len(data) == 0:
        raise IDXError(f"{name}: empty file (0 bytes)")
    data = decompress(data, name, limit)
    if len(data) < 4:
        raise IDXError(f"{name}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise IDXError(f"{name}: wrong IDX magic {bytes(data[:4]).hex()} (the first two bytes must be zero)")
    if data[2] not in IDX_TYPES:
        raise IDXError(f"{name}: unknown IDX element type 0x{data[2]:02x}")
    code, ndim = data[2], data[3]
    if dtype is not None and IDX_TYPES[code] != np.dtype(dtype).newbyteorder(">"):
        wanted = {t: c for c, t in IDX_TYPES.items()}[np.dtype(dtype).newbyteorder(">")]
        raise IDXError(f"{name}: IDX element type {_type_name(code)}, expected {_type_name(wanted)}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{name}: header declares {ndim} dimensions but the file has only {len(data)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if shape is not None and (len(dims) != len(shape) or any(s is not None and s != d for s, d in zip(shape, dims))):
        wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise IDXError(f"{name}: dimensions {dims}, expected {wanted}")
    itemsize = IDX_TYPES[code].itemsize
    if 0 in dims and int(np.prod([d for d in dims if d], dtype=object)) * itemsize > np.iinfo(np.intp).max:
        # with a zero dimension the byte count below can match, but NumPy cannot shape such an array
        raise IDXError(f"{name}: dimensions {dims} are too large for an array")
    expected = header + int(np.prod(dims, dtype=object)) * itemsize  # Python ints: no overflow, no allocation
    if len(data) != expected:
        raise IDXError(
            f"{name}: dimensions {dims} of {itemsize}-byte elements need {expected} bytes, the file has {len(data)}"
        )
    array = np.frombuffer(data, dtype=IDX_TYPES[code], offset=header).reshape(dims)
    return array.astype(IDX_TYPES[code].newbyteorder("="), copy=False)  # a read-only view when no swap is needed


def read_idx(path, limit=MAX_PAYLOAD):
    """Read an IDX file (raw or gzip) from disk: a regular file of at most `limit` bytes, which
    inflates to at most `limit` bytes."""
    data = read_file(path, limit, "an IDX file", lambda problem: IDXError(f"{path}: {problem}"))
    return parse_idx(data, name=str(path), limit=limit)


def encode_idx(array):
    """The IDX bytes of `array` (the inverse of parse_idx, uncompressed)."""
    array = np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise IDXError(f"IDX cannot store arrays of dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(IDX_TYPES[code]).tobytes()
