"""Data: the IDX format (idx.py, pure parsing) and the datasets (datasets.py: names, mirrors,
checksums, the cache; download.py: one URL into one file)."""

from .datasets import DATASETS, Dataset, download_dataset, import_dataset, load_dataset, verify_dataset
from .errors import DataError
from .idx import IDXError, encode_idx, parse_idx, read_idx
from .mnist import CLASSES, load_mnist

__all__ = ["CLASSES", "DATASETS", "DataError", "Dataset", "IDXError", "download_dataset", "encode_idx",
           "import_dataset", "load_dataset", "load_mnist", "parse_idx", "read_idx", "verify_dataset"]
