"""Gradient checks: every hand-written backward pass, proven against finite differences and PyTorch.

    gradcheck(layer, (B, I))     bp_input / bp_param against central finite differences, in float64
    torch_check(layer, (B, I))   the forward and both gradients against PyTorch autograd, in float64

Both draw an input X of shape (B, I) and a random upstream gradient G (never all ones, so a transposed
or mis-summed gradient cannot pass by symmetry), differentiate loss = sum(layer(X) * G), and return a
GradcheckResult: for each tensor the max absolute and relative error and `ok`; on failure its message
names the layer, the tensor and the worst element. A float32 layer (the library's default) is checked
through a float64 copy, so the layer passed in is never changed.

A loss is called as loss(X, Y) and returns (out, batch mean); its bp_input(grad) returns the gradient
of the batch *sum* of the losses, times grad elementwise (the post's convention: NeuralNet calls it
with grad = ones). So for a loss the check compares bp_input(G) with d(B * mean)/dX * G. A loss
whose `reduction` is "mean" differentiates the batch mean instead, and is compared with d(mean)/dX * G.

Which PyTorch layer is "the same layer", how to build a small example of a class and which targets a loss
takes come from the registry of reference entries, check/references.py (REFERENCES): nothing here is
specific to one layer. PyTorch is imported only by torch_check.

Glossary: B batch size, I input width, O output width, K number of classes.
"""

import copy
from dataclasses import dataclass

import numpy as np

from ..core.arrays import asarray, to_numpy
from .references import REFERENCES, input_shape


# --- results --------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorCheck:
    """One tensor of one check: the layer's value against the reference's, element by element.

    An element passes when |got - expected| <= atol + rtol * max(|got|, |expected|); `worst` is the
    index of the element furthest outside that bound (or, when all pass, closest to it).
    """

    tensor: str  # "dX", "dW" (gradients), "out", "loss" (values)
    max_abs: float  # max |got - expected|
    max_rel: float  # max |got - expected| / max(|got|, |expected|), 0 where both are 0
    ok: bool
    worst: tuple = ()  # index of the worst element
    got: float = float("nan")  # the layer's value there
    expected: float = float("nan")  # the reference's value there
    problem: str = ""  # set when no element-wise comparison was possible (wrong shape, an exception)


@dataclass(frozen=True)
class GradcheckResult:
    """What gradcheck / torch_check found for one layer: one TensorCheck per tensor."""

    layer: str  # repr of the layer checked
    reference: str  # "finite differences" or "PyTorch"
    checks: tuple

    @property
    def ok(self):
        return all(c.ok for c in self.checks)

    @property
    def failures(self):
        return [c for c in self.checks if not c.ok]

    @property
    def message(self):
        """One line per failing tensor naming the layer, the tensor and the worst element; '' if ok."""
        got, expected = ("analytic", "numeric") if self.reference == "finite differences" else ("bareprop", "PyTorch")
        lines = []
        for c in self.failures:
            if c.problem:
                lines.append(f"{self.layer}: {c.tensor} against {self.reference}: {c.problem}")
            else:
                index = ", ".join(str(int(i)) for i in c.worst)
                lines.append(f"{self.layer}: {c.tensor} is wrong at [{index}]: {got} {c.got:.8g} vs {expected} "
                             f"{c.expected:.8g} (max abs error {c.max_abs:.3g}, max rel error {c.max_rel:.3g})")
        return "\n".join(lines)

    def __str__(self):
        if self.ok:
            return f"{self.layer}: {', '.join(c.tensor for c in self.checks)} agree with {self.reference}"
        return self.message


def _compare(tensor, got, expected, rtol, atol):
    """A TensorCheck of got against expected (both float64 arrays of the same shape, or a shape problem)."""
    got, expected = np.asarray(got), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return TensorCheck(tensor, float("inf"), float("inf"), False,
                           problem=f"shape {got.shape}, expected {expected.shape}")
    if got.size == 0:
        return TensorCheck(tensor, 0.0, 0.0, True)
    got = got.astype(np.float64)
    err = np.abs(got - expected)  # same shape as the tensor
    size = np.maximum(np.abs(got), np.abs(expected))
    rel = np.divide(err, size, out=np.zeros_like(err), where=size > 0)
    with np.errstate(invalid="ignore"):  # 0 / 0 where both sides are 0 and atol = 0: equal, so they pass
        excess = np.where(err == 0, 0.0, err / (atol + rtol * size))  # > 1 outside the bound; NaN for a NaN
    worst = np.unravel_index(np.argmax(excess), excess.shape)  # argmax picks a NaN first
    ok = bool(np.all(excess <= 1))  # False for any NaN
    return TensorCheck(tensor, float(err.max()), float(rel.max()), ok,  # max() of anything NaN is NaN
                       tuple(int(i) for i in worst), float(got[worst]), float(expected[worst]))


def _failed(tensor, problem):
    return TensorCheck(tensor, float("inf"), float("inf"), False, problem=problem)


# --- the checks -----------------------------------------------------------------------

def _float64_copy(layer):
    """A deep copy of the layer with every floating-point array it holds (W among them) cast to float64."""
    layer = copy.deepcopy(layer)
    for name, value in list(vars(layer).items()):
        if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            setattr(layer, name, value.astype(np.float64))
    return layer


def _input(inputs, rng):  # a shape (B, I) or (B, C, H, W), or an array -> float64, that shape
    if np.ndim(inputs) == 1:  # a shape: layers take 2-D or 4-D inputs, so a flat sequence can only be one
        X = rng.normal(size=inputs)  # (B, I)
        X[np.abs(X) < 1e-3] = 0.5  # keep every element off a kink at 0 (ReLU) by far more than the step
        return X
    return np.array(inputs, dtype=np.float64)  # a copy: the caller's array is never changed


def _reference(layer):
    """The registry entry of the layer's class or, failing that, of the nearest registered base class."""
    return next((REFERENCES[cls] for cls in type(layer).__mro__ if cls in REFERENCES), None)


def _targets(layer, X, targets, rng):
    """Float64 targets if `layer` is a loss (targets given, or a registered loss), else None."""
    if targets is None:
        reference = _reference(layer)
        if reference is None or reference.targets is None:
            return None
        targets = reference.targets(X.shape, rng)
    return np.array(targets, dtype=np.float64)


def _objective_scale(loss, B):
    """What turns a loss's reported batch mean into the objective its bp_input differentiates:
    B for the batch sum (the post's convention), 1 for a loss with reduction="mean"."""
    return 1.0 if getattr(loss, "reduction", "sum") == "mean" else float(B)


def _forward(template, X, Y, backend="numpy"):
    """Run the forward pass on a fresh copy of `template`, moved to `backend` with X and Y: every pass starts
    from the same state, so a layer that draws randomness (dropout) draws the same numbers each time.
    -> (the copy, its output as NumPy arrays)"""
    layer = copy.deepcopy(template)
    if backend != "numpy":  # the layer's weights and the inputs as arrays of another library (bareprop.core.arrays)
        for name, value in list(vars(layer).items()):
            if isinstance(value, np.ndarray):
                setattr(layer, name, asarray(value, backend))
        X, Y = asarray(X, backend), None if Y is None else asarray(Y, backend)
    out = layer(X) if Y is None else layer(X, Y)
    return layer, (to_numpy(out) if Y is None else tuple(map(to_numpy, out)))


def _numeric_grad(f, A, eps):
    """Central differences of the scalar f() with respect to each element of A (changed in place, restored)."""
    grad = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        old = A[i]
        A[i] = old + eps
        up = f()
        A[i] = old - eps
        down = f()
        A[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def _analytic(tensor, method, G, backend="numpy"):
    """(gradient, None) from the layer's own bp_input / bp_param, or (None, a failed TensorCheck) if it raised."""
    try:
        return to_numpy(method(asarray(G, backend))), None
    except Exception as e:  # a broken backward pass is a failed check, reported like any other
        return None, _failed(tensor, f"{method.__name__} raised {type(e).__name__}: {e}")


def gradcheck(layer, inputs, *, targets=None, rng=None, eps=1e-6, rtol=1e-5, atol=1e-6, backend="numpy"):
    """Check a layer's bp_input (and bp_param) against central finite differences, in float64.

    layer:   any object with __call__ and bp_input (and, if it has weights W, bp_param); float32 is fine,
             a float64 copy is checked and `layer` itself is left as it was.
    inputs:  a shape (B, I) — X is then drawn from rng, every element kept at least 1e-3 from 0 — or an array.
    targets: for a loss, called as layer(X, Y): the targets Y. A registered loss (or a subclass of one)
             draws its own if omitted.
    rng:     the generator for X, the upstream gradient G and targets; default np.random.default_rng(0).
    backend: the array library the layer runs on (bareprop.core.arrays.BACKENDS): its weights, X, Y and G
             are moved there, and what it returns is compared here in NumPy.

    Returns a GradcheckResult with one TensorCheck for dX (and one for dW).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    template = _float64_copy(layer)
    X = _input(inputs, rng)  # (B, I)
    Y = _targets(layer, X, targets, rng)  # (B, K) for a loss, else None
    probe, out = _forward(template, X, Y, backend)
    if Y is None:  # loss = sum(out * G)
        G = rng.normal(size=np.shape(out))  # (B, O), a random upstream gradient
        scale = 1.0
        def f():
            return float((_forward(template, X, None, backend)[1] * G).sum())
    else:  # loss = the batch sum (or mean) of the losses; bp_input(G) scales its gradient by G elementwise
        G = rng.normal(size=X.shape)  # (B, K)
        scale = G
        objective = _objective_scale(layer, len(X))
        def f():
            return float(_forward(template, X, Y, backend)[1][1]) * objective  # the mean, times B for the sum
    dX, failed = _analytic("dX", probe.bp_input, G, backend)
    checks = [failed or _compare("dX", dX, _numeric_grad(f, X, eps) * scale, rtol, atol)]
    if hasattr(probe, "bp_param"):
        dW, failed = _analytic("dW", probe.bp_param, G, backend)
        checks.append(failed or _compare("dW", dW, _numeric_grad(f, template.W, eps), rtol, atol))
    return GradcheckResult(repr(layer), "finite differences", tuple(checks))


def torch_check(layer, inputs, *, targets=None, torch_forward=None, rng=None,
                rtol_values=1e-12, atol_values=1e-12, rtol_grads=1e-10, atol_grads=1e-12, backend="numpy"):
    """Check a layer's forward, bp_input (and bp_param) against the same layer in PyTorch, in float64.

    torch_forward: the PyTorch version, called as in the registry (see check/references.py):
                   torch_forward(layer, X, W) -> out, or for a loss torch_forward(loss, X, Y) -> (out, sum).
                   Defaults to the registry's entry for the layer's class (or its nearest registered base).
    Values (out, loss) are compared with rtol_values / atol_values, gradients (dX, dW) with
    rtol_grads / atol_grads. The other arguments are as for gradcheck.
    """
    try:
        import torch
    except ImportError:
        raise ImportError("torch_check needs PyTorch: pip install 'bareprop[torch]'") from None

    reference = _reference(layer)
    if torch_forward is None:
        if reference is None:
            raise ValueError(f"{layer!r}: no PyTorch reference for {type(layer).__name__}: pass torch_forward= "
                             "or add it to bareprop.check.references.REFERENCES")
        torch_forward = reference.torch
    rng = np.random.default_rng(0) if rng is None else rng
    X = _input(inputs, rng)  # (B, I)
    Y = _targets(layer, X, targets, rng)  # (B, K) for a loss, else None
    probe, out = _forward(_float64_copy(layer), X, Y, backend)
    Xt = torch.tensor(X, requires_grad=True)
    values, grads = dict(rtol=rtol_values, atol=atol_values), dict(rtol=rtol_grads, atol=atol_grads)
    if Y is None:
        has_W = hasattr(probe, "bp_param")
        Wt = torch.tensor(to_numpy(probe.W), requires_grad=True) if has_W else None
        out_t = torch_forward(probe, Xt, Wt)
        G = rng.normal(size=tuple(out_t.shape))  # (B, O), a random upstream gradient
        (out_t * torch.from_numpy(G)).sum().backward()
        checks = [_compare("out", out, out_t.detach().numpy(), **values)]
        dX, failed = _analytic("dX", probe.bp_input, G, backend)
        checks.append(failed or _compare("dX", dX, Xt.grad.numpy(), **grads))
        if has_W:
            dW, failed = _analytic("dW", probe.bp_param, G, backend)
            checks.append(failed or _compare("dW", dW, Wt.grad.numpy(), **grads))
    else:
        (out, loss), (out_t, loss_sum_t) = out, torch_forward(probe, Xt, torch.from_numpy(Y))
        loss_sum_t.backward()
        G = rng.normal(size=X.shape)  # (B, K)
        checks = [_compare("out", out, out_t.detach().numpy(), **values),
                  _compare("loss", np.float64(loss) * len(X), loss_sum_t.item(), **values)]  # mean * B = sum
        dX, failed = _analytic("dX", probe.bp_input, G, backend)
        expected = Xt.grad.numpy() * G * (_objective_scale(probe, len(X)) / len(X))  # d(sum) -> d(sum) or d(mean)
        checks.append(failed or _compare("dX", dX, expected, **grads))
    return GradcheckResult(repr(layer), "PyTorch", tuple(checks))


def check_registered(shape, *, rng, with_torch=True, backend="numpy"):
    """gradcheck (and torch_check) of a small example of every class in REFERENCES, run on `backend`'s
    arrays -> [GradcheckResult]."""
    results = []
    for reference in REFERENCES.values():
        layer = reference.build(shape[1], rng)
        inputs = input_shape(layer, *shape, rng)  # (B, I), or (B, C, H, W) for a layer on images
        results.append(gradcheck(layer, inputs, rng=rng, backend=backend))
        if with_torch:
            results.append(torch_check(layer, inputs, rng=rng, backend=backend))
    return results
