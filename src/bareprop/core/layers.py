"""Layers: the forward pass and its two backward passes, side by side.

Shape glossary, used in every comment below:
    B  batch size (always the first dimension)
    I  input width of a layer
    O  output width of a layer (an activation keeps the width: O = I)

Every layer has
    __call__(X)     forward: (B, I) -> (B, O), keeping what the backward pass needs
    bp_input(grad)  dLoss/dX: grad is dLoss/d(output), (B, O) -> (B, I)
and a layer with weights also has
    bp_param(grad)  dLoss/dW: grad is dLoss/d(output), (B, O) -> W.shape
Every layer also says how it was built, for model files (bareprop.experiment.modelfile):
    spec()          its constructor's settings as a JSON-able dict, in argument order, so that
                    type(layer)(*layer.spec().values()) builds the same layer (weights aside)
"""

import math

import numpy as np

from .arrays import namespace
from .init import xavier_uniform


def _check_width(layer, X, width):
    """Raise a ValueError naming the layer and both shapes if X is not (B, width)."""
    if X.ndim != 2 or X.shape[1] != width:
        raise ValueError(f"{layer}: expected input of shape (B, {width}), got {X.shape}")


class Linear:
    """Fully connected layer, out = [X, 1] @ W.

    The bias is folded into W as its last row: the forward appends a column of
    ones to X, so W is (I+1, O) and there is no separate bias to differentiate.
    `init` is an initialiser from bareprop.init (Xavier by default, as in the post).
    """

    def __init__(self, in_features, out_features, *, rng, dtype=np.float32, init=xavier_uniform):
        self.in_features, self.out_features = in_features, out_features
        self.W = init(rng, in_features + 1, out_features, dtype)  # (I+1, O)

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features})"

    def spec(self):
        return {"in": int(self.in_features), "out": int(self.out_features)}

    def __call__(self, X):  # (B, I) -> (B, O)
        _check_width(self, X, self.in_features)
        xp = namespace(X)  # X's array library: NumPy, PyTorch, ... (bareprop.core.arrays)
        ones = xp.ones((X.shape[0], 1), dtype=X.dtype, device=X.device)  # (B, 1)
        self.X = xp.concat([X, ones], axis=1)  # (B, I+1), kept for bp_param
        return self.X @ self.W  # (B, I+1) @ (I+1, O) = (B, O)

    def bp_input(self, grad):  # (B, O) -> (B, I)
        dX = grad @ self.W[:-1, :].T  # (B, O) @ (O, I) = (B, I); the bias row has no input
        return dX

    def bp_param(self, grad):  # (B, O) -> (I+1, O)
        dW = self.X.T @ grad  # (I+1, B) @ (B, O) = (I+1, O), summed over the batch
        return dW


class ReLU:
    """Rectified linear unit, out = max(X, 0)."""

    name = "relu"  # on the command line: --activation relu

    def __repr__(self):
        return "ReLU()"

    def spec(self):
        return {}

    def __call__(self, X):  # (B, I) -> (B, I)
        xp = namespace(X)  # X's array library (bareprop.core.arrays)
        self.mask = xp.astype(X > 0, X.dtype)  # (B, I), kept for bp_input: 1 where the unit let X through, else 0
        return xp.maximum(X, 0)  # (B, I)

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = grad * self.mask  # (B, I) * (B, I) = (B, I)
        return dX


class LeakyReLU:
    """Leaky ReLU, out = X where X > 0, else slope * X."""

    name = "leaky_relu"  # on the command line: --activation leaky_relu

    def __init__(self, slope=0.01):
        self.slope = slope

    def __repr__(self):
        return f"LeakyReLU({self.slope})"

    def spec(self):
        return {"slope": float(self.slope)}

    def __call__(self, X):  # (B, I) -> (B, I)
        self.mask = X > 0  # (B, I), kept for bp_input: where the slope is 1
        return namespace(X).where(self.mask, X, self.slope * X)  # (B, I)

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = namespace(grad).where(self.mask, grad, self.slope * grad)  # (B, I): grad times 1 or slope
        return dX


class Sigmoid:
    """Logistic sigmoid, out = 1 / (1 + exp(-X)), computed as (1 + tanh(X / 2)) / 2: never overflows."""

    name = "sigmoid"  # on the command line: --activation sigmoid

    def __repr__(self):
        return "Sigmoid()"

    def spec(self):
        return {}

    def __call__(self, X):  # (B, I) -> (B, I)
        self.out = 0.5 * (1 + namespace(X).tanh(0.5 * X))  # (B, I), kept for bp_input
        return self.out

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = grad * self.out * (1 - self.out)  # (B, I): sigmoid' = s (1 - s)
        return dX


class Tanh:
    """Hyperbolic tangent, out = tanh(X)."""

    name = "tanh"  # on the command line: --activation tanh

    def __repr__(self):
        return "Tanh()"

    def spec(self):
        return {}

    def __call__(self, X):  # (B, I) -> (B, I)
        self.out = namespace(X).tanh(X)  # (B, I), kept for bp_input
        return self.out

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = grad * (1 - self.out * self.out)  # (B, I): tanh' = 1 - tanh^2
        return dX


class GELU:
    """Gaussian error linear unit, tanh approximation (as in BERT and GPT-2):

        out = X/2 (1 + tanh(u)),  u = c (X + a X^3),  c = sqrt(2 / pi),  a = 0.044715
    """

    name = "gelu"  # on the command line: --activation gelu

    C, A = math.sqrt(2 / math.pi), 0.044715  # Python floats: they keep the input's dtype

    def __repr__(self):
        return "GELU()"

    def spec(self):
        return {}

    def __call__(self, X):  # (B, I) -> (B, I)
        self.X = X  # (B, I), kept for bp_input
        self.t = namespace(X).tanh(self.C * (X + self.A * X**3))  # (B, I), tanh(u), kept for bp_input
        return 0.5 * X * (1 + self.t)  # (B, I)

    def bp_input(self, grad):  # (B, I) -> (B, I)
        du = self.C * (1 + 3 * self.A * self.X**2)  # (B, I): du/dX
        dout = 0.5 * (1 + self.t) + 0.5 * self.X * (1 - self.t**2) * du  # (B, I): product rule, tanh' = 1 - tanh^2
        dX = grad * dout  # (B, I)
        return dX


class Dropout:
    """Inverted dropout: in training, each unit is zeroed with probability p_drop and the
    survivors are scaled by 1 / (1 - p_drop), so the expected output equals X.

    At inference (training = False, which the net sets on its inference copies) it is the
    identity. The masks are drawn from the generator `rng` passed in.
    """

    def __init__(self, p_drop, *, rng):
        if not 0 <= p_drop < 1:
            raise ValueError(f"Dropout: p_drop must lie in [0, 1), got {p_drop}")
        self.p_drop, self.rng, self.training = p_drop, rng, True

    def __repr__(self):
        return f"Dropout({self.p_drop})"

    def spec(self):
        return {"p_drop": float(self.p_drop)}

    def __call__(self, X):  # (B, I) -> (B, I)
        if not self.training:
            self.mask = None  # identity: nothing to keep
            return X
        xp = namespace(X)
        keep = self.rng.random(X.shape, dtype=np.float32) >= self.p_drop  # (B, I) bool, P(keep) = 1 - p_drop
        keep = xp.asarray(keep, device=X.device)  # (B, I): drawn by NumPy on any backend, so a seed means one mask
        self.mask = xp.astype(keep, X.dtype) / (1 - self.p_drop)  # (B, I), 0 or 1/(1-p), kept for bp_input
        return X * self.mask  # (B, I)

    def bp_input(self, grad):  # (B, I) -> (B, I)
        dX = grad if self.mask is None else grad * self.mask  # (B, I): the same mask scales the gradient
        return dX


from .conv import Conv2d, Flatten, MaxPool2d, Reshape  # noqa: E402  the next chapter: layers on images

LAYERS = (Linear, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Dropout,  # every layer bareprop has: model files, checks
          Conv2d, MaxPool2d, Flatten, Reshape)
ACTIVATIONS = (ReLU, LeakyReLU, Sigmoid, Tanh, GELU)  # what a NeuralNet (and --activation) can put between Linears
