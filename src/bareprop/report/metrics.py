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


def precision_recall_f1(confusion):  # (K, K) -> (K,), (K,), (K,), (K,)
    """Per class: precision, recall, F1 and support (its true examples), from C[true, predicted].

    precision = TP / predicted as the class (column sum), recall = TP / support (row sum), and
    F1 = 2 TP / (support + predicted), which is 2 P R / (P + R) wherever both are defined and 0 for a
    class never predicted. A ratio with nothing to divide by (a class never predicted, or absent) is NaN.
    """
    confusion = np.asarray(confusion)
    tp = np.diag(confusion)  # (K,)
    support = confusion.sum(axis=1)  # (K,)
    predicted = confusion.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / predicted, tp / support, 2 * tp / (support + predicted), support  # (K,) each
