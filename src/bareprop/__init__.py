"""bareprop: neural networks whose backpropagation is written out by hand, one readable layer at a time.

The public API is exactly the names below; everything else is private.
"""

from .data import (DATASETS, DataError, Dataset, IDXError, download_dataset, import_dataset, load_dataset,
                   load_mnist, read_idx, verify_dataset)
from .gradcheck import GradcheckResult, TensorCheck, gradcheck, torch_check
from .init import xavier_uniform
from .layers import Linear, ReLU
from .losses import SoftmaxCrossEntropy, log_softmax, softmax
from .modelfile import ModelFileError, load
from .net import NeuralNet, one_hot
from .train import History, train

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "GradcheckResult",
    "History",
    "IDXError",
    "Linear",
    "ModelFileError",
    "NeuralNet",
    "ReLU",
    "SoftmaxCrossEntropy",
    "TensorCheck",
    "download_dataset",
    "gradcheck",
    "import_dataset",
    "load",
    "load_dataset",
    "load_mnist",
    "log_softmax",
    "one_hot",
    "read_idx",
    "softmax",
    "torch_check",
    "train",
    "verify_dataset",
    "xavier_uniform",
]
