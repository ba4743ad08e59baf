"""report/metrics.py: the confusion matrix and the per-class figures, on a hand-worked example."""

import numpy as np

from bareprop.report.metrics import confusion_matrix, per_class_accuracy, precision_recall_f1

#           predicted 0  1  2  3
CONFUSION = np.array([[5, 1, 0, 0],   # true 0: 6 examples
                      [2, 3, 1, 0],   # true 1: 6 examples
                      [0, 0, 0, 4],   # true 2: 4 examples, none right
                      [0, 0, 0, 0]])  # true 3: no examples, predicted 4 times


def test_confusion_matrix_counts_true_by_predicted_pairs():
    y_true = [0, 0, 1, 2, 1, 0]
    y_pred = [0, 1, 1, 0, 2, 0]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), [[2, 1, 0],
                                                                        [0, 1, 1],
                                                                        [1, 0, 0]])


def test_precision_recall_f1_by_hand():
    precision, recall, f1, support = precision_recall_f1(CONFUSION)
    # precision = the diagonal over the column sums: 5/7, 3/4, 0/1, 0/4
    np.testing.assert_allclose(precision, [5 / 7, 3 / 4, 0.0, 0.0])
    # recall = the diagonal over the row sums: 5/6, 3/6, 0/4, 0/0 (no examples: NaN)
    np.testing.assert_allclose(recall, [5 / 6, 1 / 2, 0.0, np.nan])
    # F1 = 2 TP / (row + column): 10/13, 6/10, 0/5 (never right: 0), 0/4
    np.testing.assert_allclose(f1, [10 / 13, 3 / 5, 0.0, 0.0])
    np.testing.assert_array_equal(support, [6, 6, 4, 0])
    # class 0's F1 is the harmonic mean of its precision and recall: 2 (5/7)(5/6) / (5/7 + 5/6) = 10/13
    assert np.isclose(2 * precision[0] * recall[0] / (precision[0] + recall[0]), 10 / 13)
    np.testing.assert_array_equal(recall, per_class_accuracy(CONFUSION))  # a class's accuracy is its recall


def test_a_class_never_predicted_has_no_precision_and_f1_zero():
    precision, recall, f1, support = precision_recall_f1([[2, 0], [1, 0]])  # class 1 never predicted
    np.testing.assert_allclose(precision, [2 / 3, np.nan])
    np.testing.assert_allclose(recall, [1.0, 0.0])
    np.testing.assert_allclose(f1, [4 / 5, 0.0])  # 2*2 / (2 + 3) and 0 / (1 + 0)
    np.testing.assert_array_equal(support, [2, 1])


def test_a_class_absent_and_never_predicted_is_nan():
    precision, recall, f1, _ = precision_recall_f1([[3, 0], [0, 0]])
    assert np.isnan([precision[1], recall[1], f1[1]]).all() and f1[0] == 1.0
