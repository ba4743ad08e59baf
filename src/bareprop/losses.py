"""Losses. Glossary: B batch size, K number of classes."""

import numpy as np


def log_softmax(X):  # (B, K) -> (B, K)
    """Row-wise log of the softmax, max-shifted: exp never overflows and the result is never log(0)."""
    shifted = X - X.max(axis=1, keepdims=True)  # (B, K); the largest entry of each row is 0
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (B, K) - (B, 1) = (B, K)


def softmax(X):  # (B, K) -> (B, K)
    """Row-wise softmax. Pure: keeps nothing."""
    return np.exp(log_softmax(X))  # (B, K)


class SoftmaxCrossEntropy:
    """Softmax followed by cross-entropy, fused into one layer.

    Forward:  P = softmax(X), loss = mean over the batch of -sum_k Y log P.
    Backward: dloss_b/dX_b = P_b - Y_b for each example b. The identity holds when
    every row of Y sums to 1 (one-hot labels, or any probability vector) and P is
    exactly the softmax of X. It is the gradient of each example's own loss, so over
    a batch it is *summed*, not averaged, as in the post: with lr = 0.001 and
    batches of 64 that is the same step as lr = 0.064 on the averaged gradient.
    """

    def __repr__(self):
        return "SoftmaxCrossEntropy()"

    def __call__(self, X, Y):  # logits (B, K), one-hot targets (B, K) -> probs (B, K), loss ()
        if X.shape != Y.shape:
            raise ValueError(f"{self}: logits {X.shape} and targets {Y.shape} must have the same shape")
        self.Y = Y  # (B, K), kept for bp_input
        log_P = log_softmax(X)  # (B, K), finite even for logits of +-1e4
        self.P = np.exp(log_P)  # (B, K), kept for bp_input
        loss = -(Y * log_P).sum(axis=1).mean()  # (B, K) -> (B,) -> ()
        return self.P, loss

    def bp_input(self, grad):  # (B, K) -> (B, K)
        dlogits = (self.P - self.Y) * grad  # (B, K) * (B, K) = (B, K)
        return dlogits
