"""Losses. Glossary: B batch size, K number of classes (or outputs).

Every loss has
    __call__(X, Y)   forward on the net's outputs X (B, K) and targets Y (B, K):
                     returns (what the net outputs at inference (B, K), the reported loss ())
    bp_input(grad)   dLoss/dX, (B, K) -> (B, K); grad scales each element (the net passes ones)
    per_example(X, Y) pure: each example's own loss, (B, K) -> (B,)
    output(X)        pure: what the net outputs at inference (softmax probabilities, ...)
    spec()           the constructor's settings as a JSON-able dict, for model files: {} for the
                     default reduction "sum", else {"reduction": "mean"}; type(loss)(*spec.values())
                     builds the same loss

What `reduction` means, for every loss here:
    "sum"   bp_input returns the gradient of the batch SUM of the per-example losses: each
            example's own gradient, summed over the batch by bp_param. This is the post's
            choice; lr is then a per-example step (lr 0.001 at batch 64 = lr 0.064 on a mean).
    "mean"  bp_input returns the gradient of the batch MEAN: the "sum" gradient divided by B,
            as in PyTorch's default reduction; lr is then independent of the batch size.
The reported loss is the batch mean of the per-example losses with either reduction, as in the
post, so it reads the same whatever the batch size or reduction.
"""

from .arrays import namespace


def log_softmax(X):  # (B, K) -> (B, K)
    """Row-wise log of the softmax, max-shifted: exp never overflows and the result is never log(0)."""
    xp = namespace(X)  # X's array library (bareprop.core.arrays)
    shifted = X - xp.max(X, axis=1, keepdims=True)  # (B, K); the largest entry of each row is 0
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))  # (B, K) - (B, 1) = (B, K)


def softmax(X):  # (B, K) -> (B, K)
    """Row-wise softmax. Pure: keeps nothing."""
    return namespace(X).exp(log_softmax(X))  # (B, K)


def sigmoid(X):  # (B, K) -> (B, K)
    """Elementwise logistic sigmoid as (1 + tanh(X / 2)) / 2: never overflows. Pure."""
    return 0.5 * (1 + namespace(X).tanh(0.5 * X))  # (B, K)


class _Loss:
    """What every loss shares: the reduction, the shape check, the batch scale of the gradient."""

    def __init__(self, reduction="sum"):
        if reduction not in ("sum", "mean"):
            raise ValueError(f"{type(self).__name__}: reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction

    def __repr__(self):
        arg = "" if self.reduction == "sum" else f"reduction={self.reduction!r}"
        return f"{type(self).__name__}({arg})"

    def spec(self):
        return {} if self.reduction == "sum" else {"reduction": self.reduction}

    def _start(self, X, Y):
        """Check shapes, keep Y and the gradient's batch scale (1 for "sum", 1/B for "mean")."""
        if X.shape != Y.shape:
            raise ValueError(f"{self}: outputs {X.shape} and targets {Y.shape} must have the same shape")
        self.Y = Y  # (B, K), kept for bp_input
        self.scale = 1.0 if self.reduction == "sum" else 1.0 / X.shape[0]  # (), kept for bp_input


class SoftmaxCrossEntropy(_Loss):
    """Softmax followed by cross-entropy, fused into one layer.

    Forward:  P = softmax(X), loss_b = -sum_k Y_bk log P_bk; reported: the batch mean.
    Backward: dloss_b/dX_b = P_b - Y_b for each example b. The identity holds when
    every row of Y sums to 1 (one-hot labels, or any probability vector) and P is
    exactly the softmax of X. With reduction="sum" (the default, the post's) this is
    returned as is, so over a batch it is *summed*, not averaged: with lr = 0.001 and
    batches of 64 that is the same step as lr = 0.064 on the averaged gradient.
    With reduction="mean" it is divided by B.
    """

    def __call__(self, X, Y):  # logits (B, K), one-hot targets (B, K) -> probs (B, K), loss ()
        self._start(X, Y)
        xp = namespace(X)
        log_P = log_softmax(X)  # (B, K), finite even for logits of +-1e4
        self.P = xp.exp(log_P)  # (B, K), kept for bp_input
        loss = -xp.mean(xp.sum(Y * log_P, axis=1))  # (B, K) -> (B,) -> ()
        return self.P, loss

    def bp_input(self, grad):  # (B, K) -> (B, K)
        dlogits = (self.P - self.Y) * grad * self.scale  # (B, K) * (B, K) * () = (B, K)
        return dlogits

    def per_example(self, X, Y):  # (B, K), (B, K) -> (B,)
        return -namespace(X).sum(Y * log_softmax(X), axis=1)  # (B,)

    def output(self, X):  # (B, K) -> (B, K)
        return softmax(X)  # (B, K)


class MSE(_Loss):
    """Squared error, loss_b = sum_k (X_bk - Y_bk)^2; reported: the batch mean.

    Backward: dloss_b/dX_b = 2 (X_b - Y_b), summed ("sum") or averaged ("mean") over the batch.
    Note "mean" averages over the batch only, not over the K outputs as PyTorch's mse_loss does.
    At inference the net outputs X itself.
    """

    def __call__(self, X, Y):  # outputs (B, K), targets (B, K) -> outputs (B, K), loss ()
        self._start(X, Y)
        xp = namespace(X)
        self.D = X - Y  # (B, K), kept for bp_input
        loss = xp.mean(xp.sum(self.D * self.D, axis=1))  # (B, K) -> (B,) -> ()
        return X, loss

    def bp_input(self, grad):  # (B, K) -> (B, K)
        dX = 2 * self.D * grad * self.scale  # (B, K) * (B, K) * () = (B, K)
        return dX

    def per_example(self, X, Y):  # (B, K), (B, K) -> (B,)
        return namespace(X).sum((X - Y) ** 2, axis=1)  # (B,)

    def output(self, X):  # (B, K) -> (B, K)
        return X  # (B, K)


class SigmoidBinaryCrossEntropy(_Loss):
    """Sigmoid on each output followed by binary cross-entropy, fused into one layer.

    Forward:  P = sigmoid(X), loss_b = -sum_k [Y log P + (1 - Y) log(1 - P)], computed as
              sum_k [max(X, 0) - X Y + log(1 + exp(-|X|))] so it never overflows or takes log(0).
    Backward: dloss_b/dX_b = P_b - Y_b. The identity holds for any targets Y in [0, 1] (no row
    needs to sum to 1: each output is its own yes/no question) when P is exactly sigmoid(X).
    """

    def __call__(self, X, Y):  # logits (B, K), targets in [0, 1] (B, K) -> probs (B, K), loss ()
        self._start(X, Y)
        self.P = sigmoid(X)  # (B, K), kept for bp_input
        loss = namespace(X).mean(self.per_example(X, Y))  # (B,) -> ()
        return self.P, loss

    def bp_input(self, grad):  # (B, K) -> (B, K)
        dlogits = (self.P - self.Y) * grad * self.scale  # (B, K) * (B, K) * () = (B, K)
        return dlogits

    def per_example(self, X, Y):  # (B, K), (B, K) -> (B,)
        xp = namespace(X)
        return xp.sum(xp.maximum(X, 0) - X * Y + xp.log1p(xp.exp(-xp.abs(X))), axis=1)  # (B, K) -> (B,)

    def output(self, X):  # (B, K) -> (B, K)
        return sigmoid(X)  # (B, K)


LOSSES = (SoftmaxCrossEntropy, MSE, SigmoidBinaryCrossEntropy)  # every loss bareprop has: model files, checks
