"""Which array library the math runs on, and moving arrays between libraries.

The layers, losses and optimizers are written once against the Python Array API standard: each asks
`namespace(X)` for the functions of X's own library and writes `xp.exp(X)`, `xp.sum(X, axis=1)`,
`X @ W`. For NumPy arrays that is NumPy itself (NumPy 2 follows the standard), so NumPy stays the only
library bareprop needs; PyTorch, CuPy and array-api-strict arrays get the namespace array-api-compat
gives them (an optional extra: pip install 'bareprop[torch]', 'bareprop[cupy]' or 'bareprop[array-api]').

A net is built and its weights drawn with NumPy, so a seed means the same net everywhere;
`net.to("torch", device="cuda")` then moves its weights (see Sequential.to). Randomness drawn during
training (the epoch's order, dropout's masks) is drawn by NumPy too and moved to the arrays' device.
"""

import numpy as np

BACKENDS = ("numpy", "torch", "cupy", "array_api_strict")  # the libraries a net can move to
_EXTRA = {"torch": "torch", "cupy": "cupy", "array_api_strict": "array-api"}  # pip install 'bareprop[extra]'


def namespace(*arrays):
    """The Array API namespace of the arrays: numpy for NumPy arrays, else array-api-compat's for their library."""
    for A in arrays:
        if not isinstance(A, np.ndarray):
            break
    else:
        return np  # (a loop, not all(...): this runs in every layer, every step)
    from array_api_compat import array_namespace  # an optional extra: only arrays of another library need it

    return array_namespace(*arrays)


def as_array(A):
    """A itself if it is an array (of any library), else A as a NumPy array (a list of rows, say)."""
    return A if hasattr(A, "shape") and hasattr(A, "dtype") else np.asarray(A)


def backend_of(A):
    """The name of the library A belongs to, one of BACKENDS (or its module's name, if none of them)."""
    if isinstance(A, np.ndarray):
        return "numpy"
    return type(A).__module__.split(".")[0]


def library(backend):
    """The Array API namespace of a backend named in BACKENDS; an ImportError saying what to install if it is missing."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "numpy":
        return np
    try:
        if backend == "array_api_strict":
            import array_api_strict

            return array_api_strict
        import importlib

        importlib.import_module(backend)
        return importlib.import_module(f"array_api_compat.{backend}")
    except ImportError as e:
        raise ImportError(f"the {backend} backend needs {e.name}: pip install 'bareprop[{_EXTRA[backend]}]'") from None


def to_numpy(A):
    """A as a NumPy array (a copy when it lives elsewhere, the same array when it is one already)."""
    if isinstance(A, np.ndarray):
        return A
    backend = backend_of(A)
    if backend == "torch":
        return A.detach().cpu().numpy()
    if backend == "cupy":
        return A.get()
    return np.from_dlpack(A) if hasattr(A, "__dlpack__") else np.asarray(A)  # array-api-strict, or a scalar


def asarray(A, backend, device=None):
    """A (an array of any backend) as a new array of `backend` on `device` (None: the library's default),
    with the same dtype and the same bits: moves go through a NumPy copy."""
    xp = library(backend)
    A = np.array(to_numpy(A))  # a copy: the result never shares memory with A
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"NumPy arrays live on the cpu, not on {device!r}")
        return A
    if backend == "torch" and device is not None:
        _check_torch_device(device)
    return xp.asarray(A, device=device)


def _check_torch_device(device):
    import torch

    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r}: PyTorch sees no CUDA GPU on this machine (try device='cpu')")


def same_place(what, A, B):
    """Raise a ValueError unless arrays A and B are of one library and on one device (A names `what`)."""
    if backend_of(A) != backend_of(B) or str(A.device) != str(B.device):
        raise ValueError(f"{what} is a {backend_of(A)} array on {A.device}, but the net's weights are "
                         f"{backend_of(B)} arrays on {B.device}: move one of them (net.to(...) or "
                         f"bareprop.core.arrays.asarray(...))")
