"""Layers: the forward pass and its two backward passes, side by side.

Shape glossary, used in every comment below:
    B  batch size (always the first dimension)
    I  input width of a layer
    O  output width of a layer

Every layer has
    __call__(X)     forward: (B, I) -> (B, O), keeping what the backward pass needs
    bp_input(grad)  dLoss/dX: grad is dLoss/d(output), (B, O) -> (B, I)
and a layer with weights also has
    bp_param(grad)  dLoss/dW: grad is dLoss/d(output), (B, O) -> W.shape
"""

import numpy as np

from .init import xavier_uniform


def _check_width(layer, X, width):
    """Raise a ValueError naming the layer and both shapes if X is not (B, width)."""
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"{layer}: expected input of shape (B, {width}), got {X.shape}")


class Linear:
    """Fully connected layer, out = [X, 1] @ W.

    The bias is folded into W as its last row: the forward appends a column of
    ones to X, so W is (I+1, O) and there is no separate bias to differentiate.
    """

    def __init__(self, in_features, out_features, *, rng, dtype=np.float32):
        self.in_features, self.out_features = in_features, out_features
        self.W = xavier_uniform(rng, in_features + 1, out_features, dtype)  # (I+1, O)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"

    def __call__(self, X):  # (B, I) -> (B, O)
        _check_width(self, X, self.in_features)
        ones = np.ones((X.shape[0], 1), dtype=X.dtype)  # (B, 1)
        self.X = np.concatenate([X, ones], axis=1)  # (B, I+1), kept for bp_param
        return self.X @ self.W  # (B, I+1) @ (I+1, O) = (B, O)

    def bp_input(self, grad):  # (B, O) -> (B, I)
        dX = grad @ self.W[:-1].T  # (B, O) @ (O, I) = (B, I); the bias row has no input
        return dX

    def bp_param(self, grad):  # (B, O) -> (I+1, O)
        dW = self.X.T @ grad  # (I+1, B) @ (B, O) = (I+1, O), summed over the batch
        return dW


class ReLU:
    """Rectified linear unit, out = max(X, 0)."""

    def __repr__(self):
        return "ReLU()"

    def __call__(self, X):  # (B, I) -> (B, I)
        self.mask = X > 0  # (B, I), kept for bp_input: where the unit let X through
        return np.maximum(X, 0)  # (B, I)

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = grad * self.mask  # (B, I) * (B, I) = (B, I)
        return dX
