"""Figures of a classifier's predictions. Glossary: N examples, K classes."""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):  # (N,), (N,) -> (K, K)
    """C[i, j] = how many examples of class i were predicted as class j."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    pairs = y_true * num_classes + y_pred  # (N,): one bin per (true, predicted) pair
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)  # (K, K)


def per_class_accuracy(confusion):  # (K, K) -> (K,)
    """The fraction of each true class predicted right (NaN for a class with no examples)."""
    counts = confusion.sum(axis=1)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(confusion) / counts  # (K,)
