"""bareprop: neural networks whose backpropagation is written out by hand, one readable layer at a time.

The public API is exactly the names below; everything else is private.
"""

from .core.init import he_uniform, xavier_uniform
from .core.layers import GELU, Dropout, LeakyReLU, Linear, ReLU, Sigmoid, Tanh
from .core.conv import Conv2d, Flatten, MaxPool2d, Reshape, col2im, im2col
from .core.losses import MSE, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, log_softmax, sigmoid, softmax
from .core.net import NeuralNet, Sequential, one_hot
from .core.optim import SGD, Adam, AdamW, CosineDecay, LinearWarmup, StepDecay
from .core.train import History, TrainingDiverged, train
from .check.gradcheck import GradcheckResult, TensorCheck, gradcheck, torch_check
from .data import (DATASETS, DataError, Dataset, IDXError, download_dataset, import_dataset, load_dataset,
                   load_mnist, read_idx, verify_dataset)
from .data.digits import ImageError, mnist_digit, read_digit
from .experiment import ConfigError, RunConfig, RunResult, run
from .experiment.runner import RunInterrupted, resume_run
from .experiment.modelfile import ModelFileError, load, save
from .report.metrics import confusion_matrix, per_class_accuracy
from .report.draw import write_draw_page
from .report.page import ReportError, build_report

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "ConfigError",
    "Conv2d",
    "CosineDecay",
    "DATASETS",
    "DataError",
    "Dataset",
    "Dropout",
    "Flatten",
    "GELU",
    "GradcheckResult",
    "History",
    "IDXError",
    "ImageError",
    "LeakyReLU",
    "Linear",
    "LinearWarmup",
    "MSE",
    "MaxPool2d",
    "ModelFileError",
    "NeuralNet",
    "ReLU",
    "ReportError",
    "Reshape",
    "RunConfig",
    "RunInterrupted",
    "RunResult",
    "SGD",
    "Sequential",
    "Sigmoid",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "StepDecay",
    "Tanh",
    "TensorCheck",
    "TrainingDiverged",
    "build_report",
    "col2im",
    "confusion_matrix",
    "download_dataset",
    "gradcheck",
    "he_uniform",
    "im2col",
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
    "resume_run",
    "run",
    "save",
    "sigmoid",
    "softmax",
    "torch_check",
    "train",
    "verify_dataset",
    "write_draw_page",
    "xavier_uniform",
]
