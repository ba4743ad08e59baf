"""Private fast path for training the post's kind of net. Not public API.

It runs exactly the arithmetic of the readable layers -- the same matrix products
on the same operands, in the same order, in the same dtype -- so it gives the same
numbers bit for bit (tests/test_fast.py checks this). What it removes is Python and
allocation overhead, which is nearly all the time at the post's sizes:

- every array a step needs is allocated once, before the first step, and written
  in place (`out=`) afterwards: no per-step allocation;
- the ones column of each Linear input is written once into its buffer; the batch
  is gathered straight into the columns before it (no concatenate per step);
- images may be kept as uint8 (1 byte per pixel, 47 MB for MNIST instead of 188 MB
  of float32): each batch is converted as it is gathered, with the same division
  by 255 that `load_mnist` applies to the whole array;
- the per-example loss and prediction go into per-epoch arrays; the post's
  per-epoch averages are formed from them once per epoch;
- (train() runs both paths with the same number of BLAS threads, one at the post's
  sizes, where a second thread costs more than it saves: the bits depend on it.)

Glossary as in layers.py: B batch, I in, O out, K classes, N examples.
"""

import contextlib

import numpy as np

from .layers import Linear, ReLU
from .losses import SoftmaxCrossEntropy
from .optim import SGD


def blas_threads(n):
    """A context limiting BLAS to n threads (threadpoolctl), or doing nothing if it is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas")


# Below this many multiply-adds in a step's largest product, a second BLAS thread costs
# more than it saves on this kind of machine (see benchmarks/speed.py's scaling table).
ONE_THREAD_BELOW = 1 << 23


def blas_threads_for(net, batch_size):
    """One BLAS thread for small products (the post's sizes), the library's default otherwise."""
    largest = max(batch_size * W.shape[0] * W.shape[1] for W in net.params())
    return blas_threads(1) if largest < ONE_THREAD_BELOW else contextlib.nullcontext()


def supports(net, optimizer=None):
    """True if `net` is Linear, (ReLU, Linear)*, SoftmaxCrossEntropy with the summed gradient, trained
    with plain SGD: its own gradient_descent (optimizer None), or an optim.SGD with no momentum, no
    weight decay and a constant lr."""
    layers = getattr(net, "layers", None)
    loss = getattr(net, "loss", None)
    if not layers or type(loss) is not SoftmaxCrossEntropy or loss.reduction != "sum":
        return False
    kinds = [type(layer) for layer in layers]
    expected = [Linear] + [ReLU, Linear] * ((len(kinds) - 1) // 2)
    if optimizer is None:
        plain = type(net).gradient_descent is _plain_sgd_of(net)
    else:
        plain = (type(optimizer) is SGD and optimizer.momentum == 0 and optimizer.weight_decay == 0
                 and not callable(optimizer.lr))
    return kinds == expected and plain


def _plain_sgd_of(net):
    from .net import Sequential

    return Sequential.gradient_descent if isinstance(net, Sequential) else None


class FastSGD:
    """Preallocated buffers and an in-place SGD step for a net that `supports` accepts."""

    def __init__(self, net, batch_size, optimizer=None):
        self.net = net
        self.lr = net.lr if optimizer is None else optimizer.lr  # the step size of every update
        self.Ws = net.params()  # the net's own arrays: updated in place
        dtype = self.Ws[0].dtype
        B = batch_size
        self.A = []  # A[l]: (B, I_l + 1) input of Linear l, last column all ones
        self.Z = []  # Z[l]: (B, O_l) output of Linear l
        for W in self.Ws:
            A = np.empty((B, W.shape[0]), dtype)
            A[:, -1] = 1  # the ones column, written once
            self.A.append(A)
            self.Z.append(np.empty((B, W.shape[1]), dtype))
        self.masks = [np.empty(Z.shape, bool) for Z in self.Z[:-1]]  # ReLU masks, (B, O_l)
        self.G = [np.empty(Z.shape, dtype) for Z in self.Z]  # G[l]: dloss/dZ[l], (B, O_l)
        self.dW = [np.empty_like(W) for W in self.Ws]  # (I_l + 1, O_l)
        K = self.Ws[-1].shape[1]
        self.log_P = np.empty((B, K), dtype)  # (B, K)
        self.row_sum = np.empty((B, 1), dtype)  # (B, 1)

        self._views = {}

    def views(self, b):
        """The buffers cut to a batch of b rows (made once per batch size, then reused)."""
        if b not in self._views:
            self._views[b] = (
                [A[:b] for A in self.A],  # (b, I+1) each
                [A[:b, :-1] for A in self.A],  # (b, I) each: where a layer's input is written
                [Z[:b] for Z in self.Z],  # (b, O) each
                [m[:b] for m in self.masks],  # (b, O) each
                [G[:b] for G in self.G],  # (b, O) each
                self.log_P[:b],  # (b, K)
                self.row_sum[:b],  # (b, 1)
                self.G[-1][:b].reshape(-1),  # (b*K,): the last G, flat, to subtract Y at the labels
            )
        return self._views[b]

    def step(self, X, idx, flat, picked, predicted):
        """One SGD step on the batch X[idx]. flat: (b,) index of each example's true class in the
        flattened (b, K) logits. Writes each example's log P(true class) into `picked` and its
        predicted class into `predicted` ((b,) views of per-epoch arrays)."""
        A, A_in, Z, masks, G, log_P, row_sum, P_flat = self.views(len(idx))
        Ws, dW, last = self.Ws, self.dW, len(self.Ws) - 1
        if X.dtype == np.uint8:  # pixel values: scaled as load_mnist scales them
            np.divide(X[idx], A_in[0].dtype.type(255), out=A_in[0], dtype=A_in[0].dtype)  # (b, I)
        else:
            np.take(X, idx, axis=0, out=A_in[0])  # (b, I)
        # forward: the same products as Linear.__call__ and ReLU.__call__
        for l, W in enumerate(Ws):
            np.matmul(A[l], W, out=Z[l])  # (b, I+1) @ (I+1, O) = (b, O)
            if l < last:
                np.greater(Z[l], 0, out=masks[l])  # (b, O), kept for the backward
                np.maximum(Z[l], 0, out=A_in[l + 1])  # (b, O), the next layer's input
        # softmax + cross-entropy: the same operations as losses.log_softmax
        logits = Z[last]
        np.argmax(logits, axis=1, out=predicted)  # (b,)
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=log_P)  # (b, K) shifted
        np.exp(log_P, out=G[last])  # (b, K) exp(shifted), G as scratch
        np.sum(G[last], axis=1, keepdims=True, out=row_sum)  # (b, 1)
        np.log(row_sum, out=row_sum)  # (b, 1)
        np.subtract(log_P, row_sum, out=log_P)  # (b, K) log P
        np.exp(log_P, out=G[last])  # (b, K) P
        np.take(log_P, flat, out=picked)  # (b,) log P of the true class
        P_flat[flat] -= 1  # (b, K): P - Y, the fused gradient
        # backward: the same products as bp_param and bp_input, top layer first
        for l in range(last, -1, -1):
            np.matmul(A[l].T, G[l], out=dW[l])  # (I+1, b) @ (b, O) = (I+1, O)
            if l > 0:
                np.matmul(G[l], Ws[l][:-1].T, out=G[l - 1])  # (b, O) @ (O, I) = (b, I)
                np.multiply(G[l - 1], masks[l - 1], out=G[l - 1])  # (b, I), the ReLU mask
        # update: W -= lr * dW, as NeuralNet.gradient_descent and optim.SGD without momentum
        lr = self.lr
        for W, dW_l in zip(Ws, dW):
            np.multiply(dW_l, lr, out=dW_l)  # (I+1, O)
            np.subtract(W, dW_l, out=W)  # (I+1, O)

    def score(self, X, y, chunk=1000):
        """(accuracy, mean cross-entropy), the same numbers as NeuralNet.score (whose chunks of
        1000 rows it follows), but through buffers kept from one call to the next."""
        if getattr(self, "_eval", None) is None:
            self._eval = FastSGD(self.net, chunk)  # its buffers, for inference only
        ev = self._eval
        correct, total_loss = 0, 0.0
        for start in range(0, len(X), chunk):
            Xc, yc = X[start:start + chunk], y[start:start + chunk]
            A, A_in, Z, _, G, log_P, row_sum, _ = ev.views(len(Xc))
            if Xc.dtype == np.uint8:
                np.divide(Xc, A_in[0].dtype.type(255), out=A_in[0], dtype=A_in[0].dtype)  # (c, I)
            else:
                A_in[0][...] = Xc  # (c, I)
            for l, W in enumerate(ev.Ws):
                np.matmul(A[l], W, out=Z[l])  # (c, I+1) @ (I+1, O) = (c, O)
                if l < len(ev.Ws) - 1:
                    np.maximum(Z[l], 0, out=A_in[l + 1])  # (c, O)
            logits = Z[-1]
            np.subtract(logits, logits.max(axis=1, keepdims=True), out=log_P)  # (c, K) shifted
            np.exp(log_P, out=G[-1])  # (c, K)
            np.sum(G[-1], axis=1, keepdims=True, out=row_sum)  # (c, 1)
            np.log(row_sum, out=row_sum)  # (c, 1)
            np.subtract(log_P, row_sum, out=log_P)  # (c, K) log P
            correct += int((log_P.argmax(axis=1) == yc).sum())
            total_loss += -float(log_P[np.arange(len(yc)), yc].sum())  # cross-entropy of the true classes
        return correct / len(X), total_loss / len(X)

    def epoch(self, X, y, epoch_batches, on_step=None):
        """Run one epoch; return (loss, accuracy) averaged over batches exactly as train() does.
        on_step(i, running), if given, is called after each step; running() gives the epoch's
        (loss, accuracy) so far, over its examples, computed only when called."""
        K = self.Ws[-1].shape[1]
        sizes = [len(idx) for idx in epoch_batches]
        ends = np.cumsum(sizes)  # (n_batches,)
        starts = ends - sizes  # (n_batches,)
        labels = y[np.concatenate(epoch_batches)]  # (N,) in batch order
        row_in_batch = np.arange(len(labels)) - np.repeat(starts, sizes)  # (N,)
        flat = row_in_batch * K + labels  # (N,) index of the true class in each batch's flat logits
        picked = np.empty(len(labels), self.Ws[0].dtype)  # (N,) log P(true class), in batch order
        predicted = np.empty(len(labels), np.intp)  # (N,)
        for i, (idx, s, e) in enumerate(zip(epoch_batches, starts.tolist(), ends.tolist())):
            self.step(X, idx, flat[s:e], picked[s:e], predicted[s:e])
            if on_step is not None:
                on_step(i, lambda e=e: (-float(picked[:e].mean()), float((predicted[:e] == labels[:e]).mean())))
        batch_losses = -_batch_means(picked, sizes)  # (n_batches,) float, as evaluate() gives them
        batch_accs = _batch_means(predicted == labels, sizes)  # (n_batches,) float64
        loss, correct = 0.0, 0.0
        for batch_loss, batch_acc in zip(batch_losses, batch_accs):  # summed as train() sums them
            loss += batch_loss / len(epoch_batches)
            correct += batch_acc / len(epoch_batches)
        return loss, correct


def _batch_means(values, sizes):
    """The mean of each batch's slice of `values` (in batch order), each as its own .mean() gives it:
    equal batches as the rows of one 2-D array (one call instead of one per batch), the rest one by one."""
    n_equal = next((i for i, size in enumerate(sizes) if size != sizes[0]), len(sizes))
    head = values[: n_equal * sizes[0]].reshape(n_equal, sizes[0]).mean(axis=1)  # (n_equal,)
    tail, start = [], n_equal * sizes[0]
    for size in sizes[n_equal:]:
        tail.append(values[start:start + size].mean())
        start += size
    return np.concatenate([head, np.asarray(tail, head.dtype)])  # (n_batches,)
