"""Test helpers: one per kind of check, so each layer's test is one line.

- numeric_grads: central finite differences in float64 of loss = sum(layer(X) * G).
- torch_grads:  the same loss through PyTorch autograd, float64.
G is a random upstream gradient, never all ones, so a transposed or mis-summed
gradient cannot pass by symmetry.
"""

import copy

import numpy as np


def as_float64(layer):
    """A deep copy of the layer with its weights in float64."""
    layer = copy.deepcopy(layer)
    if hasattr(layer, "W"):
        layer.W = layer.W.astype(np.float64)
    return layer


def analytic_grads(layer, X, G):
    """(dX, dW or None) from the layer's own bp_input / bp_param."""
    layer(X)
    dX = layer.bp_input(G)
    dW = layer.bp_param(G) if hasattr(layer, "bp_param") else None
    return dX, dW


def numeric_grad(f, A, eps=1e-6):
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


def numeric_grads(layer, X, G):
    """(dX, dW or None) by central differences of sum(layer(X) * G)."""
    dX = numeric_grad(lambda: float((layer(X) * G).sum()), X)
    dW = numeric_grad(lambda: float((layer(X) * G).sum()), layer.W) if hasattr(layer, "W") else None
    return dX, dW


def torch_grads(torch_forward, X, W, G):
    """(out, dX, dW or None) from PyTorch autograd of sum(torch_forward(X, W) * G), float64."""
    import torch

    Xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True) if W is not None else None
    out = torch_forward(Xt, Wt)
    (out * torch.tensor(G, dtype=torch.float64)).sum().backward()
    return out.detach().numpy(), Xt.grad.numpy(), (Wt.grad.numpy() if Wt is not None else None)
