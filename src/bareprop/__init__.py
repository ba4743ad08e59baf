"""bareprop: neural networks whose backpropagation is written out by hand, one readable layer at a time.

The public API is exactly the names below; everything else is private.
"""

from .data import (DATASETS, DataError, Dataset, IDXError, download_dataset, import_dataset, load_dataset,
                   load_mnist, read_idx, verify_dataset)
from .digits import ImageError, mnist_digit, read_digit
from .gradcheck import GradcheckResult, TensorCheck, gradcheck, torch_check
from .init import he_uniform, xavier_uniform
from .layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, log_softmax, sigmoid, softmax
from .metrics import confusion_matrix, per_class_accuracy
from .modelfile import ModelFileError, load
from .net import NeuralNet, Sequential, one_hot
from .optim import SGD, Adam, AdamW, CosineDecay, LinearWarmup, StepDecay
from .report import ReportError, build_report
from .train import History, train

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "CosineDecay",
    "DATASETS",
    "DataError",
    "Dataset",
    "Dropout",
    "GELU",
    "GradcheckResult",
    "History",
    "IDXError",
    "ImageError",
    "LeakyReLU",
    "Linear",
    "LinearWarmup",
    "MSE",
    "ModelFileError",
    "NeuralNet",
    "ReLU",
    "ReportError",
    "SGD",
    "Sequential",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "TensorCheck",
    "build_report",
    "confusion_matrix",
    "download_dataset",
    "gradcheck",
    "he_uniform",
    "import_dataset",
    "load",
    "load_dataset",
    "load_mnist",
    "log_softmax",
    "mnist_digit",
    "one_hot",
    "per_class_accuracy",
    "read_digit",
    "read_idx",
    "sigmoid",
    "softmax",
    "torch_check",
    "train",
    "verify_dataset",
    "xavier_uniform",
]
