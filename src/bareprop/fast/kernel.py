"""The private fast path: the compiled kernel (_kernel.c) as an epoch runner for train(). Not public API.

train(path="auto") calls `runner` once, before its loop: it returns a KernelSGD where the kernel is
built and takes the net (Linear, (ReLU, Linear)*, softmax + cross-entropy with the summed gradient,
plain SGD at a constant lr, float32 or float64 weights), else None and train() runs its readable loop.
The kernel does the readable layers' steps but skips the zeros of each layer's input (about 80% of
MNIST's pixels, half of a ReLU's outputs) and sums in its own order: it agrees with them to rounding
(tests/test_kernel.py), and gives the same bits on any number of threads. See docs/speed.md.

Glossary as in core/layers.py: B batch, I in, O out, K classes, N examples.
"""

import sys

import numpy as np
from threadpoolctl import ThreadpoolController

try:
    from . import _kernel
except ImportError:  # the package was installed without its compiled extension
    _kernel = None

from ..core.layers import Linear, ReLU
from ..core.losses import SoftmaxCrossEntropy
from ..core.optim import SGD
from ..core.train import gradient_norms

MAX_LAYERS = 64  # _kernel.c's MAX_LAYERS: Linear layers at most
MAX_THREADS = 64  # _kernel.c's MAX_THREADS


def why_not(net, optimizer):
    """Why the kernel cannot train `net` with `optimizer` ('' if it can)."""
    layers, loss = getattr(net, "layers", ()), getattr(net, "loss", None)
    if type(loss) is not SoftmaxCrossEntropy or loss.reduction != "sum":
        return "its loss is not SoftmaxCrossEntropy with the summed gradient"
    kinds = [type(layer) for layer in layers]
    if kinds != [Linear] + [ReLU, Linear] * ((len(kinds) - 1) // 2):
        return "its layers are not Linear, then ReLU and Linear in turn"
    if len(kinds) // 2 + 1 > MAX_LAYERS:
        return f"it has more than {MAX_LAYERS} Linear layers"
    if not (type(optimizer) is SGD and optimizer.momentum == 0 and optimizer.weight_decay == 0
            and not callable(optimizer.lr)):
        return "its optimizer is not plain SGD at a constant lr"
    Ws = net.params()
    if not all(isinstance(W, np.ndarray) for W in Ws):
        return "its weights are not NumPy arrays (the kernel runs on NumPy's; others take the readable path)"
    if Ws[0].dtype not in (np.float32, np.float64) or any(W.dtype != Ws[0].dtype for W in Ws):
        return f"its weights are {', '.join(sorted({str(W.dtype) for W in Ws}))}, not all float32 or all float64"
    if not all(W.flags.c_contiguous and W.flags.writeable for W in Ws):
        return "its weights are not contiguous, writable arrays"
    return ""


_warned = False  # set once the missing extension has been reported (fast.chosen)


def runner(net, batch_size, optimizer, threads, *, required):
    """A KernelSGD for this net, or None (the readable loop). With required (path="kernel"), a
    ValueError saying why instead of None. A kernel that was not built is reported once, by a warning."""
    from . import chosen

    reason = why_not(net, optimizer)
    if not reason and threads > MAX_THREADS:
        reason = f"it runs at most {MAX_THREADS} threads, not {threads}"
    return chosen(sys.modules[__name__], reason, _kernel, "kernel", net, required,
                  lambda: KernelSGD(net, batch_size, optimizer.lr, threads))


class KernelSGD:
    """Runs train()'s epochs on the compiled kernel.

    Each epoch's first step runs through the readable layers (net.evaluate, net.backprop, the SGD
    step), which form the gradients that History.grad_norm records, with BLAS on one thread so that
    the epoch gives the same bits whatever `threads` is; the kernel runs the rest. The
    data goes to the kernel once per train() as sparse rows (27 MB for MNIST's training set as uint8
    pixels, 72 MB as float32).
    """

    name = "kernel"
    CHUNK = 16  # batches per kernel call when a per-batch hook (a progress bar) must be called
    MAX_EXAMPLES = 16384  # examples per call otherwise: Ctrl-C waits for the call running

    def __init__(self, net, batch_size, lr, threads=1):
        self.net, self.batch_size, self.lr, self.threads = net, batch_size, lr, threads
        self.Ws = tuple(net.params())  # the net's own arrays: updated in place
        self.dtype = self.Ws[0].dtype
        self.sizes = (self.Ws[0].shape[0] - 1, *(W.shape[1] for W in self.Ws))  # (I, O_1, ..., K)
        self._data = {}  # (id(X), id(y)) -> (X, y, X's SparseRows, y as int64): kept for the whole run
        self.workspace = _kernel.Workspace()  # the kernel's scratch memory for training, kept between calls
        self.score_workspace = _kernel.Workspace()  # and for scoring (another layout)
        self.blas = ThreadpoolController()  # the BLAS libraries loaded, found once (a search of the process's maps)

    def _prepare(self, X, y):
        """X as SparseRows and y as int64, made once per array and reused every epoch."""
        key = (id(X), id(y))
        if key not in self._data:
            pixels = X.dtype == np.uint8
            Xc = np.ascontiguousarray(X if pixels else X.astype(self.dtype, copy=False))  # (N, I)
            rows = _kernel.SparseRows(Xc, pixels, Xc.shape[0], Xc.shape[1], self.dtype == np.float64, self.threads)
            self._data[key] = (X, y, rows, np.ascontiguousarray(y, dtype=np.int64))  # X, y kept: ids stay theirs
        return self._data[key][2:]

    def epoch(self, X, y, order, optimizer, state, on_step=None, epoch=0):
        """One epoch over the permutation `order` in batches of batch_size: (loss, accuracy, gradient
        norms, optimizer state), the figures averaged over batches as train()'s loop averages them.
        on_step(i, running), if given, is called after the first batch, every CHUNK batches and the last;
        running() gives the epoch's (loss, accuracy) so far. (`epoch`, for the readable loop's errors, is not used.)"""
        rows, y64 = self._prepare(X, y)
        net, B, N = self.net, self.batch_size, len(order)
        n_batches = -(-N // B)
        first = order[:B]
        with self.blas.limit(limits=1, user_api="blas"):  # BLAS on one thread: the same bits for any `threads`
            _, first_correct, first_loss = net.evaluate(X[first], y[first])  # the readable step
            grads = net.backprop()
            state = optimizer.step(net.params(), grads, state)
        grad_norm = gradient_norms(grads, len(first), net.loss)
        order64 = order.astype(np.int64, copy=False)  # (N,)
        picked = np.empty(N, self.dtype)  # (N,) log P(true class) of each example after the first batch
        predicted = np.empty(N, np.int64)  # (N,)
        labels = y64[order64]  # (N,) in batch order

        def figures(stop):  # the epoch's (loss, accuracy) over its batches up to example `stop`
            losses = np.append(first_loss, -_batch_means(picked[B:stop], B))  # each batch's, as evaluate() gives it
            accs = np.append(first_correct, _batch_means(predicted[B:stop] == labels[B:stop], B))
            done = len(losses) / n_batches
            return _added_in_turn(losses / n_batches) / done, _added_in_turn(accs / n_batches) / done

        if on_step is not None:
            on_step(0, lambda: figures(len(first)))
        chunk = max(1, self.MAX_EXAMPLES // B) if on_step is None else self.CHUNK
        for start_batch in range(1, n_batches, chunk):
            end_batch = min(start_batch + chunk, n_batches)  # batches start_batch..end_batch-1 in this call
            start, stop = start_batch * B, min(end_batch * B, N)
            _kernel.sgd_steps(self.Ws, self.sizes, self.dtype == np.float64, rows, y64, order64, start, stop,
                              B, self.lr, picked, predicted, self.threads, self.workspace)
            if on_step is not None:
                on_step(end_batch - 1, lambda stop=stop: figures(stop))
        state = {**state, "step": state["step"] + n_batches - 1}  # the kernel's steps, counted as SGD counts them
        loss, correct = figures(N)
        return loss, correct, grad_norm, state

    def score(self, X, y):
        """(accuracy, mean cross-entropy) on a labelled set, as net.score gives them (to rounding)."""
        rows, y64 = self._prepare(X, y)
        picked = np.empty(len(y64), self.dtype)  # (N,)
        predicted = np.empty(len(y64), np.int64)  # (N,)
        _kernel.score(self.Ws, self.sizes, self.dtype == np.float64, rows, y64, picked, predicted, self.threads,
                      self.score_workspace)
        return float((predicted == y64).mean()), -float(picked.sum(dtype=np.float64)) / len(y64)


def _added_in_turn(values):  # (M,) -> ()
    """The sum of values added one after the other in their own dtype, as train()'s loop adds its batches'
    figures (np.cumsum adds in turn; np.sum would add in pairs and round differently)."""
    return np.cumsum(values)[-1]


def _batch_means(values, B):  # (M,) -> (ceil(M / B),)
    """The mean of each consecutive batch of B values (the last may hold fewer), as its own .mean() gives it."""
    full = len(values) // B * B
    means = values[:full].reshape(-1, B).mean(axis=1)  # (M // B,)
    if full < len(values):
        means = np.append(means, values[full:].mean())
    return means
