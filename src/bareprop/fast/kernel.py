"""Private fast paths for training the post's kind of net. Not public API.

There are two. `KernelSGD` runs the compiled kernel (_kernel.c), used when the extension was
built, for batch sizes and widths up to KERNEL_LIMITS; `FastSGD` is NumPy only, used when the
extension was not built and beyond those limits. Both train the nets `supports` accepts, and
`fast_path` picks one. See docs/speed.md.

FastSGD runs exactly the arithmetic of the readable layers -- the same matrix products
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
import os
import time

import numpy as np

try:
    from . import _kernel
except ImportError:  # the package was installed without its compiled extension
    _kernel = None

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


def blas_threads_for(net, batch_size, path=None):
    """One BLAS thread for small products (the post's sizes), the library's default otherwise; and one
    when the epoch runs on the compiled kernel (`path` a KernelSGD), which calls no BLAS: a second BLAS
    thread, woken for the one readable batch train() runs per epoch, keeps spinning for about a tenth
    of a second and takes a core from the kernel's threads."""
    if isinstance(path, KernelSGD):
        return blas_threads(1)
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

    records_gradient_norms = True  # train() takes the epoch's gradient norms from its first step

    def step(self, X, idx, flat, picked, predicted, record_norms=False):
        """One SGD step on the batch X[idx]. flat: (b,) index of each example's true class in the
        flattened (b, K) logits. Writes each example's log P(true class) into `picked` and its
        predicted class into `predicted` ((b,) views of per-epoch arrays). With record_norms, also
        sets first_gradient_norms: each weight gradient's norm divided by b, as train.gradient_norms
        gives it for this batch (the same gradients, bit for bit)."""
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
        if record_norms:
            self.first_gradient_norms = [float(np.linalg.norm(dW_l)) / len(idx) for dW_l in dW]
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
        """Run one epoch; return (loss, accuracy) averaged over batches exactly as train() does, and
        set first_gradient_norms (see step). on_step(i, running), if given, is called after each step;
        running() gives the epoch's (loss, accuracy) so far, over its examples, computed only when called."""
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
            self.step(X, idx, flat[s:e], picked[s:e], predicted[s:e], record_norms=i == 0)
            if on_step is not None:
                on_step(i, lambda e=e: (-float(picked[:e].mean()), float((predicted[:e] == labels[:e]).mean())))
        return _epoch_figures(picked, predicted, labels, sizes)


def _epoch_figures(picked, predicted, labels, sizes):
    """The epoch's (loss, accuracy) from each example's log P(true class), prediction and label (in
    batch order): averaged per batch, then over the batches, exactly as train() sums them."""
    batch_losses = -_batch_means(picked, sizes)  # (n_batches,) float, as evaluate() gives them
    batch_accs = _batch_means(predicted == labels, sizes)  # (n_batches,) float64
    loss, correct = 0.0, 0.0
    for batch_loss, batch_acc in zip(batch_losses, batch_accs):
        loss += batch_loss / len(sizes)
        correct += batch_acc / len(sizes)
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


# --- the compiled path ------------------------------------------------------------------------

def kernel_threads():
    """The most threads for the compiled kernel: two where this process may use two cores or more. A
    step at the post's sizes is tens of microseconds of work; more threads would wait on each other
    more than they save (benchmarks/speed.py measures one against two). ThreadChooser picks one or
    this many, call by call."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


class ThreadChooser:
    """Which thread count each kernel call gets: `most` or one, whichever trained faster lately.

    Two threads go in lock step, waiting for each other twice a step: when the other core is busy
    (another process, a virtual machine's neighbours) they can be slower than one. The kernel gives
    the same numbers on any number of threads, so the choice changes only the speed. The first call
    warms up and is not counted; the next two try `most` and one; then the faster per batch (a moving
    average) runs, and every PROBE_EVERY-th call tries the other again."""

    PROBE_EVERY = 16

    def __init__(self, most):
        self.most, self.calls, self.per_batch = most, 0, {}

    def pick(self):
        if self.most == 1:
            return 1
        n, self.calls = self.calls, self.calls + 1
        if n <= 1:
            return self.most
        if n == 2:
            return 1
        best = min(self.per_batch, key=self.per_batch.get)
        if n % self.PROBE_EVERY == 0:
            return 1 if best == self.most else self.most
        return best

    def record(self, threads, seconds, batches):
        """A call with `threads` threads ran `batches` batches in `seconds`."""
        if self.calls <= 1:  # the warm-up call
            return
        rate = seconds / max(batches, 1)  # seconds per batch
        old = self.per_batch.get(threads)
        self.per_batch[threads] = rate if old is None else (old + rate) / 2


# Where the kernel beats the NumPy path (measured with benchmarks/speed.py's scaling table, which times
# both, and in interleaved repetitions of shapes up to batches of 16,384 and widths of 4096; docs/speed.md):
# (largest batch, largest batch size x widest layer) pairs, the kernel taking a net that any pair admits.
# Batches up to 2048 with batch x width up to 4M (width 2048 with batches of 2048: 1.5x the NumPy path);
# batches up to 16,384 with batch x width up to 2M (width 256 with batches of 8192: 1.2x). Beyond, the
# NumPy path was as fast (width 1024 with batches of 4096 or 8192) and takes less memory.
KERNEL_LIMITS = ((2048, 1 << 22), (16384, 1 << 21))


def fast_path(net, batch_size, optimizer=None):
    """The fastest path for training `net`: KernelSGD where the extension is built and the net is one
    it takes, else FastSGD for the nets `supports` accepts, else None (the readable loop)."""
    if not supports(net, optimizer):
        return None
    if KernelSGD.takes(net, batch_size):
        return KernelSGD(net, batch_size, optimizer)
    return FastSGD(net, batch_size, optimizer)


class KernelSGD:
    """The compiled kernel (_kernel.c) with FastSGD's interface (epoch, score).

    The kernel does what the readable layers do, step by step, but skips the zeros of each layer's
    input (about 80% of MNIST's pixels, half of a ReLU's outputs) and sums in its own order, so it
    agrees with them to rounding, not bit for bit (tests/test_kernel.py). The data goes to the kernel
    once per train() as sparse rows (27 MB for MNIST's training set as uint8 pixels, 72 MB as float32).
    """

    CHUNK = 16  # batches per kernel call when a per-batch hook (a progress bar) must be called
    MAX_EXAMPLES = 16384  # examples per call otherwise (256 batches of 64): Ctrl-C waits for the call running

    @staticmethod
    def takes(net, batch_size):
        """True if the kernel is built, can train `net` (which `supports` accepts: float32 or float64
        weights, contiguous and writable) and is the faster path for it (KERNEL_LIMITS)."""
        if _kernel is None:
            return False
        Ws = net.params()
        return (Ws[0].dtype in (np.float32, np.float64)
                and all(W.flags.c_contiguous and W.flags.writeable for W in Ws)
                and any(batch_size <= most and batch_size * max(W.shape[1] for W in Ws) <= most_x_width
                        for most, most_x_width in KERNEL_LIMITS))

    def __init__(self, net, batch_size, optimizer=None, threads=None):
        self.net = net
        self.lr = net.lr if optimizer is None else optimizer.lr  # the step size of every update
        self.batch_size = batch_size
        self.threads = kernel_threads() if threads is None else threads  # at most; see ThreadChooser
        self.chooser = ThreadChooser(self.threads)
        self.Ws = tuple(net.params())  # the net's own arrays: updated in place
        self.dtype = self.Ws[0].dtype
        self.sizes = (self.Ws[0].shape[0] - 1, *(W.shape[1] for W in self.Ws))  # (I, O_1, ..., K)
        self._data = {}  # id(X) -> (X, its SparseRows, y as int64): kept for the whole run
        self.workspace = _kernel.Workspace()  # the kernel's scratch memory for training, kept between calls
        self.score_workspace = _kernel.Workspace()  # and for scoring (another layout)

    def _prepare(self, X, y):
        """X as SparseRows and y as int64, made once per array and reused every epoch."""
        key = (id(X), id(y))
        if key not in self._data:
            pixels = X.dtype == np.uint8
            Xc = np.ascontiguousarray(X if pixels else X.astype(self.dtype, copy=False))  # (N, I)
            rows = _kernel.SparseRows(Xc, pixels, Xc.shape[0], Xc.shape[1], self.dtype == np.float64, self.threads)
            self._data[key] = (X, y, rows, np.ascontiguousarray(y, dtype=np.int64))  # X, y kept: ids stay theirs
        return self._data[key][2:]

    def epoch(self, X, y, epoch_batches, on_step=None):
        """Run one epoch; return (loss, accuracy) averaged over batches exactly as train() does.
        on_step(i, running), if given, is called after every CHUNK batches and after the last;
        running() gives the epoch's (loss, accuracy) so far, over its examples."""
        rows, y64 = self._prepare(X, y)
        sizes = [len(idx) for idx in epoch_batches]
        if any(size != self.batch_size for size in sizes[:-1]) or sizes[-1] > self.batch_size:
            raise ValueError(f"KernelSGD: batches must hold {self.batch_size} examples (the last may hold fewer)")
        order = np.concatenate(epoch_batches).astype(np.int64, copy=False)  # (N,) the epoch's examples in order
        picked = np.empty(len(order), self.dtype)  # (N,) log P(true class), in batch order
        predicted = np.empty(len(order), np.int64)  # (N,)
        labels = y64[order]  # (N,) in batch order
        chunk = max(1, self.MAX_EXAMPLES // self.batch_size) if on_step is None else self.CHUNK
        for first in range(0, len(epoch_batches), chunk):
            last = min(first + chunk, len(epoch_batches))  # batches first..last-1 in this call
            start, stop = first * self.batch_size, min(last * self.batch_size, len(order))
            threads = self.chooser.pick()
            began = time.perf_counter()
            _kernel.sgd_steps(self.Ws, self.sizes, self.dtype == np.float64, rows, y64, order, start, stop,
                              self.batch_size, self.lr, picked, predicted, threads, self.workspace)
            self.chooser.record(threads, time.perf_counter() - began, last - first)
            if on_step is not None:
                on_step(last - 1, lambda e=stop: (-float(picked[:e].mean()), float((predicted[:e] == labels[:e]).mean())))
        return _epoch_figures(picked, predicted, labels, sizes)

    def score(self, X, y):
        """(accuracy, mean cross-entropy) on a labelled set, as NeuralNet.score gives them (to rounding)."""
        rows, y64 = self._prepare(X, y)
        picked = np.empty(len(y64), self.dtype)  # (N,)
        predicted = np.empty(len(y64), np.int64)  # (N,)
        _kernel.score(self.Ws, self.sizes, self.dtype == np.float64, rows, y64, picked, predicted, self.threads,
                      self.score_workspace)
        return float((predicted == y64).mean()), -float(picked.sum(dtype=np.float64)) / len(y64)
