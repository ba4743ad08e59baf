"""NeuralNet: the post's network, chaining layers forward and backward.

The net holds no math of its own: the layers do the forward and backward
passes, the net only calls them in order (and in reverse order).
"""

import copy

import numpy as np

from .layers import Linear, ReLU, _check_width
from .losses import SoftmaxCrossEntropy, log_softmax, softmax


def as_inputs(X, dtype):  # (B, I) -> (B, I)
    """X as the net's float dtype. uint8 arrays are taken as pixel values 0..255 and scaled
    to [0, 1], exactly as load_mnist scales them, so images can stay 1 byte per pixel until used."""
    X = np.asarray(X)
    if X.dtype == np.uint8:
        return np.divide(X, dtype.type(255), dtype=dtype)  # (B, I) in [0, 1]
    return X.astype(dtype, copy=False)  # (B, I)


def one_hot(y, num_classes, dtype=np.float32):  # (B,) -> (B, K)
    """One-hot rows: Y[b, y[b]] = 1."""
    return np.eye(num_classes, dtype=dtype)[y]  # (B, K)


class NeuralNet:
    """An MLP: Linear -> ReLU -> ... -> Linear, then fused softmax + cross-entropy.

    sizes=(784, 32, 10) is the post's network: 784 -> 32 -> ReLU -> 10.
    Gradients are summed over the batch, so lr is per example, as in the post.
    """

    def __init__(self, sizes=(784, 32, 10), lr=0.001, *, rng, dtype=np.float32):
        if len(sizes) < 2 or any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"NeuralNet: sizes must be two or more positive integers, got {sizes}")
        if not lr > 0:
            raise ValueError(f"NeuralNet: lr must be positive, got {lr}")
        self.sizes, self.lr, self.dtype = tuple(int(s) for s in sizes), lr, np.dtype(dtype)
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            if i > 0:
                self.layers.append(ReLU())
            self.layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype))
        self.loss = SoftmaxCrossEntropy()

    def __repr__(self):
        return f"NeuralNet({', '.join(map(repr, self.layers))}, {self.loss!r})"

    @property
    def num_classes(self):
        return self.sizes[-1]

    def params(self):
        """The weight matrices, in layer order: the arrays the optimizer updates in place."""
        return [layer.W for layer in self.layers if hasattr(layer, "W")]

    def _forward(self, X):  # (B, I) -> (B, K)
        for layer in self.layers:
            X = layer(X)
        return X

    def check_inputs(self, X, y):
        """Raise a ValueError naming the layer and both shapes unless X is (N, I) and y is (N,) of valid classes."""
        _check_width(self.layers[0], X, self.sizes[0])
        self._check_labels(X, y)

    def _check_labels(self, X, y):
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"{self.loss}: expected labels of shape ({len(X)},) for inputs {X.shape}, got {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(f"{self.loss}: labels must lie in 0..{self.num_classes - 1}, got {y.min()}..{y.max()}")
        return y

    def evaluate(self, X, y):
        """Forward pass with labels, keeping what backprop() needs: (probs, accuracy, loss)."""
        X = as_inputs(X, self.dtype)
        y = self._check_labels(X, y)
        logits = self._forward(X)  # (B, K)
        accuracy = (logits.argmax(axis=1) == y).mean()  # ()
        probs, loss = self.loss(logits, one_hot(y, self.num_classes, self.dtype))  # (B, K), ()
        return probs, accuracy, loss

    def backprop(self):
        """Chain bp_input backwards from the loss; each weighted layer turns its grad into dW.

        Returns the gradients in the same order as params().
        """
        grad = self.loss.bp_input(np.ones_like(self.loss.Y))  # (B, K): dLoss/dlogits = P - Y
        grads = []
        for layer in reversed(self.layers):
            if hasattr(layer, "bp_param"):
                grads.append(layer.bp_param(grad))  # W.shape
            grad = layer.bp_input(grad)  # (B, I) of this layer = (B, O) of the one below
        return grads[::-1]

    def gradient_descent(self):
        """One step of plain SGD on the gradients of the last evaluate()."""
        for W, dW in zip(self.params(), self.backprop()):
            W -= self.lr * dW  # W.shape

    def save(self, path):
        """Write the weights and a JSON spec of the architecture to `path` (.npz); bareprop.load reads it."""
        from .modelfile import save

        save(self, path)

    # --- inference: pure, touches no training state -------------------------------

    def predict_proba(self, X):  # (B, I) -> (B, K)
        """Class probabilities. Runs on shallow copies of the layers, so their caches stay as they were."""
        return softmax(self._logits(X))  # (B, K)

    def _logits(self, X):  # (B, I) -> (B, K)
        X = as_inputs(X, self.dtype)
        for layer in self.layers:
            X = copy.copy(layer)(X)  # the copy shares W but keeps its own cache
        return X

    def predict(self, X):  # (B, I) -> (B,)
        """The most probable class of each row."""
        return self.predict_proba(X).argmax(axis=1)

    def score(self, X, y, batch_size=1000):
        """(accuracy, mean cross-entropy) on a labelled set, without touching training state."""
        X = np.asarray(X)
        y = self._check_labels(X, y)
        correct, total_loss = 0, 0.0
        for start in range(0, len(X), batch_size):
            log_P = log_softmax(self._logits(X[start:start + batch_size]))  # (b, K)
            yb = y[start:start + batch_size]  # (b,)
            correct += int((log_P.argmax(axis=1) == yb).sum())
            total_loss += -float(log_P[np.arange(len(yb)), yb].sum())  # cross-entropy of the true classes
        return correct / len(X), total_loss / len(X)
