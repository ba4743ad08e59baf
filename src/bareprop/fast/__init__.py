"""The private fast paths, each tested equal to the readable core; not public API (docs/speed.md):
kernel.py drives a compiled kernel (_kernel.c) for the post's kind of net (tests/test_kernel.py), conv.py
a compiled twin (_conv.c) of a convolutional net's image layers (tests/test_fast_conv.py)."""

import warnings


def runner(net, batch_size, optimizer, threads, *, required):
    """The epoch runner train() hands its epochs to, chosen once before its loop: conv.py's for a net with a
    Conv2d, kernel.py's otherwise; None where it does not apply (the readable loop), a ValueError saying
    why when `required` (path="kernel")."""
    from . import conv, kernel

    if conv.is_convolutional(net):
        return conv.runner(net, batch_size, threads, required=required)
    return kernel.runner(net, batch_size, optimizer, threads, required=required)


def chosen(module, reason, extension, what, net, required, make):
    """What a fast path's runner returns: make() where `reason` is '' and its compiled extension was built;
    otherwise None (the readable loop), or with `required` (path="kernel") a ValueError saying why. An
    extension that was not built is reported once per process and path, by a warning at train()'s caller."""
    if not reason and extension is None:
        reason = f"the compiled {what} was not built (reinstall bareprop with a C compiler)"
        if not required and not module._warned:
            warnings.warn(f"bareprop: {reason}; training on the readable path", RuntimeWarning, stacklevel=6)
            module._warned = True
    if reason:
        if required:
            raise ValueError(f"train: path='kernel' cannot train {net!r}: {reason}")
        return None
    return make()
