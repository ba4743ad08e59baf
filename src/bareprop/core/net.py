"""Sequential: any stack of layers, then a loss; NeuralNet: the post's MLP, built as one.

The net holds no math of its own: the layers do the forward and backward
passes, the net only calls them in order (and in reverse order).
"""

import copy

import numpy as np

from .arrays import as_array, asarray, namespace
from .init import xavier_uniform
from .layers import Dropout, Linear, ReLU, _check_width
from .losses import SoftmaxCrossEntropy


def as_inputs(X, dtype):  # (B, I) -> (B, I)
    """X as the net's float dtype. uint8 arrays are taken as pixel values 0..255 and scaled
    to [0, 1], exactly as load_mnist scales them, so images can stay 1 byte per pixel until used."""
    X = as_array(X)
    xp = namespace(X)  # X's array library (bareprop.core.arrays)
    if X.dtype == xp.uint8:
        X = xp.astype(X, dtype)  # (B, I), a new array of pixel values 0..255
        X /= 255  # (B, I) in [0, 1], in place
        return X
    return xp.astype(X, dtype, copy=False)  # (B, I)


def one_hot(y, num_classes, dtype=np.float32):  # (B,) -> (B, K)
    """One-hot rows: Y[b, y[b]] = 1."""
    xp = namespace(y)
    return xp.take(xp.eye(num_classes, dtype=dtype, device=y.device), y, axis=0)  # (B, K): row y[b] of the identity


def _inference_copy(layer):
    """A shallow copy that shares the weights but keeps its own cache, switched to inference
    (Dropout becomes the identity): the layer itself is left exactly as it was."""
    layer = copy.copy(layer)
    if hasattr(layer, "training"):
        layer.training = False
    return layer


def _feeds(a, b):
    """Whether weighted layer `a` can feed `b` as far as their declared widths say: a Linear's out_features
    is the next Linear's in_features, a Conv2d's out_channels the next Conv2d's in_channels (between a
    Conv2d and a Linear the width depends on the image's size: the Linear's forward checks it)."""
    for out, into in (("out_features", "in_features"), ("out_channels", "in_channels")):
        if hasattr(a, out) and hasattr(b, into):
            return getattr(a, out) == getattr(b, into), getattr(a, out), getattr(b, into)
    return True, None, None


class Sequential:
    """Layers applied in order, then a loss (fused softmax + cross-entropy unless given).

    The net takes flat rows (B, I): its first layer with an `in_features` (a Linear, or a Reshape that
    turns rows into images for convolutions) comes before any other layer with weights, and gives I.
    The layers with weights (those with a `W`) must chain: a Linear's out_features is the next Linear's
    in_features (a Conv2d's out_channels the next one's in_channels); the last is a Linear, whose
    out_features are the classes.
    `lr` is the post's sugar for its plain SGD: the step of gradient_descent(), and of the SGD
    that train() uses when it is given no optimizer. An optimizer passed to train() owns its own lr.
    """

    def __init__(self, layers, loss=None, lr=0.001):
        layers = list(layers)
        weighted = [layer for layer in layers if hasattr(layer, "W")]
        if not weighted:
            raise ValueError(f"{type(self).__name__}: needs at least one layer with weights, got {layers}")
        for a, b in zip(weighted, weighted[1:]):
            fits, out, into = _feeds(a, b)
            if not fits:
                raise ValueError(f"{type(self).__name__}: {a!r} cannot feed {b!r}: {out} != {into}")
        first = next((layer for layer in layers if hasattr(layer, "in_features")), None)  # where the rows go in
        if first is None or layers.index(first) > layers.index(weighted[0]) or not hasattr(weighted[-1], "out_features"):
            raise ValueError(f"{type(self).__name__}: needs a Linear or a Reshape before any other layer with weights, "
                             f"and a Linear as the last, got {layers}")
        dtypes = {layer.W.dtype for layer in weighted}
        if len(dtypes) > 1:
            raise ValueError(f"{type(self).__name__}: all weights must share one dtype, got {sorted(map(str, dtypes))}")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.layers, self.lr = layers, lr
        self.loss = loss if loss is not None else SoftmaxCrossEntropy()
        self.sizes = (first.in_features, *(layer.out_features for layer in weighted if hasattr(layer, "out_features")))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(map(repr, self.layers))}, {self.loss!r})"

    @property
    def num_classes(self):
        return self.sizes[-1]

    @property
    def dtype(self):
        """The weights' dtype (of their array library: numpy.float32, torch.float32, ...)."""
        return self.params()[0].dtype

    def to(self, backend, device=None):
        """Move the weights to another array library, one of bareprop.core.arrays.BACKENDS ("numpy",
        "torch", "cupy", "array_api_strict"), and device ("cpu", "cuda", ...; None: the library's default).
        Returns the net itself, its weights the same numbers in the same dtype. Its inputs must then be
        arrays of that library on that device; run evaluate() again before backprop()."""
        for layer in self.layers:
            if hasattr(layer, "W"):
                layer.W = asarray(layer.W, backend, device)  # (I+1, O): the same bits, now there
        return self

    def params(self):
        """The weight matrices, in layer order: the arrays the optimizer updates in place."""
        return [layer.W for layer in self.layers if hasattr(layer, "W")]

    def _forward(self, X):  # (B, I) -> (B, K)
        for layer in self.layers:
            X = layer(X)
        return X

    def check_inputs(self, X, y):
        """Raise a ValueError naming the layer and both shapes unless X is (N, I) and y is (N,) of valid classes."""
        first = next(layer for layer in self.layers if hasattr(layer, "in_features"))
        _check_width(first, X, self.sizes[0])
        self._check_labels(X, y)

    def _check_labels(self, X, y):
        y = as_array(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{self.loss}: expected labels of shape ({X.shape[0]},) for inputs {tuple(X.shape)}, "
                             f"got {tuple(y.shape)}")
        xp = namespace(y)
        if y.shape[0]:  # no labels, none out of range
            low, high = int(xp.min(y)), int(xp.max(y))  # read once: on a GPU each is a wait for the device
            if low < 0 or high >= self.num_classes:
                raise ValueError(f"{self.loss}: labels must lie in 0..{self.num_classes - 1}, got {low}..{high}")
        return y

    def evaluate(self, X, y):
        """Forward pass with labels (Dropout active), keeping what backprop() needs: (probs, accuracy, loss)."""
        X = as_inputs(X, self.dtype)
        y = self._check_labels(X, y)
        xp = namespace(X)
        logits = self._forward(X)  # (B, K)
        accuracy = xp.mean(xp.astype(xp.argmax(logits, axis=1) == y, xp.float64))  # (): the share of right guesses
        probs, loss = self.loss(logits, one_hot(y, self.num_classes, self.dtype))  # (B, K), ()
        return probs, accuracy, loss

    def backprop(self):
        """Chain bp_input backwards from the loss; each weighted layer turns its grad into dW.

        Returns the gradients in the same order as params().
        """
        grad = self.loss.bp_input(namespace(self.loss.Y).ones_like(self.loss.Y))  # (B, K): dLoss/dlogits, P - Y for softmax + CE
        grads = []
        first = next(layer for layer in self.layers if hasattr(layer, "bp_param"))
        for layer in reversed(self.layers):
            if hasattr(layer, "bp_param"):
                grads.append(layer.bp_param(grad))  # W.shape
            if layer is first:
                break  # no weights below: the gradient with respect to the inputs is never used, skip it
            grad = layer.bp_input(grad)  # (B, I) of this layer = (B, O) of the one below
        return grads[::-1]

    def gradient_descent(self):
        """One step of plain SGD on the gradients of the last evaluate()."""
        for W, dW in zip(self.params(), self.backprop()):
            W -= self.lr * dW  # W.shape

    # --- inference: pure, touches no training state; Dropout is the identity -------

    def predict_proba(self, X):  # (B, I) -> (B, K)
        """What the loss makes of the outputs at inference: class probabilities for softmax + CE.
        Runs on inference copies of the layers, so their caches stay as they were."""
        return self.loss.output(self._logits(X))  # (B, K)

    def _logits(self, X):  # (B, I) -> (B, K)
        X = as_inputs(X, self.dtype)
        for layer in self.layers:
            X = _inference_copy(layer)(X)
        return X

    def predict(self, X):  # (B, I) -> (B,)
        """The most probable class of each row."""
        P = self.predict_proba(X)  # (B, K)
        return namespace(P).argmax(P, axis=1)  # (B,)

    def score(self, X, y, batch_size=1000):
        """(accuracy, mean loss per example) on a labelled set, without touching training state.
        For softmax + cross-entropy the loss is the mean cross-entropy."""
        X = as_array(X)
        y = self._check_labels(X, y)
        xp = namespace(X)
        N, correct, total_loss = X.shape[0], 0, 0.0
        for start in range(0, N, batch_size):
            stop = min(start + batch_size, N)
            logits = self._logits(X[start:stop, ...])  # (b, K)
            yb = y[start:stop]  # (b,)
            correct += int(xp.count_nonzero(xp.argmax(logits, axis=1) == yb))
            total_loss += float(xp.sum(self.loss.per_example(logits, one_hot(yb, self.num_classes, self.dtype))))
        return correct / N, total_loss / N


class NeuralNet(Sequential):
    """An MLP: Linear -> activation -> [Dropout] -> ... -> Linear, then fused softmax + cross-entropy.

    sizes=(784, 32, 10) is the post's network: 784 -> 32 -> ReLU -> 10, Xavier-initialised.
    Deeper nets list more sizes: (784, 256, 128, 10). `activation` makes each hidden
    activation layer (a class such as ReLU or GELU, or a function returning a layer);
    `init` is the initialiser of every Linear; p_drop > 0 puts Dropout(p_drop, rng=rng)
    after each hidden activation. Gradients are summed over the batch, so lr is per example,
    as in the post.
    """

    def __init__(self, sizes=(784, 32, 10), lr=0.001, *, rng, dtype=np.float32, activation=ReLU,
                 init=xavier_uniform, p_drop=0.0):
        if len(sizes) < 2 or any(int(s) != s or s < 1 for s in sizes):
            raise ValueError(f"NeuralNet: sizes must be two or more positive integers, got {sizes}")
        if not lr > 0:
            raise ValueError(f"NeuralNet: lr must be positive, got {lr}")
        sizes = tuple(int(s) for s in sizes)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(activation())
                if p_drop > 0:
                    layers.append(Dropout(p_drop, rng=rng))
            layers.append(Linear(n_in, n_out, rng=rng, dtype=dtype, init=init))
        super().__init__(layers, SoftmaxCrossEntropy(), lr)
