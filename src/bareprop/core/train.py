"""The training loop: the post's step (forward, backward, update) over shuffled minibatches. Returns a History.

Glossary: N examples, B batch size, I inputs, K classes.
"""

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from .arrays import as_array, backend_of, namespace, same_place
from .optim import SGD


@dataclass
class History:
    """Per-epoch figures. Train figures are averaged over the epoch's batches, as in the post."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    weight_norm: list = field(default_factory=list)  # per epoch: the norm of each weight matrix after the epoch
    grad_norm: list = field(default_factory=list)  # per epoch: each gradient's norm on its first batch, per example
    path: str = "readable"  # which path ran the epochs: "readable" (the loop below) or "kernel"
    threads: int = 1  # the threads that path (and BLAS) was given

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        lists = {k: list(d.get(k, [])) for k, f in cls.__dataclass_fields__.items() if f.type is list}
        return cls(**lists, path=d.get("path", "readable"), threads=d.get("threads", 1))


class TrainingDiverged(ArithmeticError):
    """The loss, a weight or a gradient stopped being a finite number at `epoch` (from 0) and `step`
    (the batch of that epoch, from 0; None when found at the epoch's end): nothing after it can be trusted."""

    def __init__(self, epoch, step, what, hint="try a lower learning rate"):
        where = f"epoch {epoch}, step {step}" if step is not None else f"the end of epoch {epoch}"
        super().__init__(f"training diverged at {where} ({what}): {hint}")
        self.epoch, self.step, self.what = epoch, step, what


def batches(order, batch_size):
    """The epoch's batches: consecutive slices of `order` (a permutation); the last may be smaller."""
    N = order.shape[0]
    return [order[i:min(i + batch_size, N)] for i in range(0, N, batch_size)]


def gradient_norms(grads, batch_size, loss):
    """The norm of each weight gradient, per example: a summed gradient (reduction="sum") is divided
    by the batch size; a loss with reduction="mean" has already divided it."""
    per_example = batch_size if getattr(loss, "reduction", "sum") == "sum" else 1
    return [float(namespace(dW).linalg.vector_norm(dW)) / per_example for dW in grads]


def run_epoch(net, X, y, order, batch_size, optimizer, state, on_step, epoch):
    """One epoch of the post's step over the permutation `order`, in batches of batch_size: (loss, accuracy,
    the gradient norms of its first batch, optimizer state), loss and accuracy averaged over the batches as
    in the post. on_step(i, running), unless None, is called after batch i; running() gives the epoch's (loss,
    accuracy) so far. `epoch` only names the epoch in a TrainingDiverged."""
    xp = namespace(X)
    n_batches = -(-X.shape[0] // batch_size)
    loss, correct = 0.0, 0.0
    for i, idx in enumerate(batches(order, batch_size)):
        Xb, yb = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)  # (B, I), (B,): the batch
        _, batch_correct, batch_loss = net.evaluate(Xb, yb)  # forward, keeping what backprop needs
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(epoch, i, f"the loss is {batch_loss}")
        grads = net.backprop()  # backward: dLoss/dW of every weighted layer
        state = optimizer.step(net.params(), grads, state)  # update: W -= lr * dW for plain SGD
        if i == 0:  # for the report: the gradients this step formed anyway
            grad_norm = gradient_norms(grads, idx.shape[0], net.loss)
        correct += batch_correct / n_batches
        loss += batch_loss / n_batches
        if on_step is not None:
            on_step(i, lambda done=(i + 1) / n_batches: (loss / done, correct / done))
    return loss, correct, grad_norm, state


def train(net, X, y, *, epochs=10, batch_size=64, rng, optimizer=None, X_test=None, y_test=None,
          on_epoch=None, on_batch=None, path="auto", threads=1, resume=None, on_checkpoint=None):
    """Train `net` on minibatches, reshuffled every epoch by `rng`, and return its History.

    X is (N, I) finite floats, or uint8 pixel values 0..255, scaled to [0, 1] batch by batch (other
    integers are refused: int64 pixel values would not be scaled).
    `optimizer` is any optimizer from bareprop.optim, stepped once per batch (a schedule counts
    batches); without one, the post's plain SGD with the net's lr. After each epoch the test set,
    if given, is scored without touching training state, and on_epoch(history), if given, is called.
    After each batch, on_batch(history, batch, n_batches, running) is called with the history of
    the epochs before and a function giving the epoch's running (loss, accuracy), computed only
    when called (on the kernel path: after every 16 batches and after the epoch's last).

    path: "readable" runs the post's loop (run_epoch) on the net's layers; "kernel" runs each epoch on a
    private compiled path (equal to that loop to rounding; see docs/speed.md): for the post's kind of net
    (Linear/ReLU layers, softmax + cross-entropy summed, plain SGD at a constant lr) the kernel, the same
    steps in C skipping zero inputs; for a convolutional net (float32, channels in multiples of 8) the
    same loop on a twin whose image layers are compiled; an error for other nets. "auto" takes the
    compiled path where it applies.
    threads: the threads the kernel and BLAS may use (1 by default: robust on a busy machine).
    The kernel gives the same numbers on any number of threads; BLAS may round differently.

    A loss, weight or gradient that is not a finite number raises TrainingDiverged: the readable loop
    checks each batch's loss, both paths every epoch's figures. on_checkpoint(history, state), if given,
    is called after each epoch, before on_epoch, with the optimizer state; resume=(history, state), as
    it got them, continues from there (with the net's weights and rng's state as they were then): the
    same numbers as if train() had never stopped. `epochs` counts the epochs of `history` too.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"train: epochs and batch_size must be positive, got {epochs} and {batch_size}")
    X, y = as_array(X), as_array(y)
    _check_place(net, X=X, y=y)
    net.check_inputs(X, y)
    _check_values("X", X)
    if X.shape[0] == 0:
        raise ValueError(f"train: no training examples (X has shape {tuple(X.shape)})")
    if X_test is not None:
        X_test, y_test = as_array(X_test), as_array(y_test)
        _check_place(net, X_test=X_test, y_test=y_test)
        net.check_inputs(X_test, y_test)
        _check_values("X_test", X_test)
    xp, N = namespace(X), X.shape[0]  # X's array library: the net's (bareprop.core.arrays)
    optimizer = optimizer if optimizer is not None else SGD(net.lr)  # the post's plain step
    fast = _fast_path(net, batch_size, optimizer, path, threads)  # None: the readable loop below
    state = optimizer.init(net.params())
    history = History(path="readable" if fast is None else fast.name, threads=threads)
    if resume is not None:
        history, state = resume  # the epochs done, and the optimizer's state after them
    with _thread_limit(threads, backend_of(X)):
        for epoch in range(len(history.epoch), epochs):
            start = time.perf_counter()
            order = xp.asarray(rng.permutation(N), device=X.device)  # (N,) the epoch's examples in a fresh random order
            n_batches = -(-N // batch_size)
            hook = None if on_batch is None else lambda i, running: on_batch(history, i, n_batches, running)
            if fast is not None:
                loss, correct, grad_norm, state = fast.epoch(X, y, order, optimizer, state, on_step=hook, epoch=epoch)
            else:
                loss, correct, grad_norm, state = run_epoch(net, X, y, order, batch_size, optimizer, state, hook, epoch)
            weight_norm = [float(xp.linalg.vector_norm(W)) for W in net.params()]  # NaN or inf if any weight is
            what = _not_finite(loss, weight_norm, grad_norm)  # the kernel's check (once an epoch) and the last step's
            if what:
                raise TrainingDiverged(epoch, None, what)
            history.seconds.append(time.perf_counter() - start)
            history.epoch.append(epoch)
            history.train_loss.append(float(loss))
            history.train_acc.append(float(correct))
            history.weight_norm.append(weight_norm)
            history.grad_norm.append(grad_norm)
            if X_test is not None:
                test_acc, test_loss = (fast or net).score(X_test, y_test)
                history.test_acc.append(test_acc)
                history.test_loss.append(test_loss)
            if on_checkpoint is not None:
                on_checkpoint(history, state)
            if on_epoch is not None:
                on_epoch(history)
    return history


def _not_finite(loss, weight_norm, grad_norm):
    """What of an epoch's figures is not a finite number ('' if all are)."""
    if not math.isfinite(loss):
        return f"the loss is {loss}"
    if not all(map(math.isfinite, weight_norm)):
        return "a weight is not a finite number"
    return "" if all(map(math.isfinite, grad_norm)) else "a gradient is not a finite number"


def _check_place(net, **arrays):
    """Raise a ValueError unless every array is of the net's array library and on its device."""
    for name, A in arrays.items():
        same_place(f"train: {name}", A, net.params()[0])


def _check_values(name, X):
    """uint8 pixels, or floats that are all finite (min and max: no copy); other integers are refused."""
    xp = namespace(X)
    if xp.isdtype(X.dtype, "integral") and X.dtype != xp.uint8:
        raise ValueError(f"train: {name} is {X.dtype}; give uint8 pixel values 0..255 (scaled to [0, 1]) "
                         f"or floats (e.g. {name}.astype(np.uint8) for 0..255 pixels)")
    if xp.isdtype(X.dtype, "real floating") and X.shape[0] and not (
            math.isfinite(xp.min(X)) and math.isfinite(xp.max(X))):
        raise ValueError(f"train: {name} holds NaN or infinite values")


def _fast_path(net, batch_size, optimizer, path, threads):
    """The compiled epoch runner for this net, or None for the readable loop: the one place where the
    core reaches outside itself, to the private fast path (which depends on the core, not the reverse)."""
    if path not in ("auto", "readable", "kernel"):
        raise ValueError(f"train: path must be 'auto', 'readable' or 'kernel', got {path!r}")
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ValueError(f"train: threads must be a positive integer, got {threads!r}")
    if path == "readable":
        return None
    from .. import fast

    return fast.runner(net, batch_size, optimizer, threads, required=path == "kernel")


@contextmanager
def _thread_limit(threads, backend):
    """At most `threads` BLAS threads for the products below (threadpoolctl), and as many of PyTorch's own
    threads when the net's arrays are PyTorch's."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads, user_api="blas"):
        if backend != "torch":
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
