"""Data: the IDX format and the datasets."""

from .idx import IDXError, encode_idx, parse_idx, read_idx
from .mnist import CLASSES, DataError, load_mnist

__all__ = ["CLASSES", "DataError", "IDXError", "encode_idx", "load_mnist", "parse_idx", "read_idx"]
