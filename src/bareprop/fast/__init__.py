"""The private fast paths, each tested equal to the readable core; not public API (docs/speed.md):
kernel.py drives a compiled kernel (_kernel.c) for the post's kind of net (tests/test_kernel.py), conv.py
a compiled twin (_conv.c) of a convolutional net's image layers (tests/test_fast_conv.py)."""


def runner(net, batch_size, optimizer, threads, *, required):
    """The epoch runner train() hands its epochs to, chosen once before its loop: conv.py's for a net with a
    Conv2d, kernel.py's otherwise; None where it does not apply (the readable loop), a ValueError saying
    why when `required` (path="kernel")."""
    from . import conv, kernel

    if conv.is_convolutional(net):
        return conv.runner(net, batch_size, threads, required=required)
    return kernel.runner(net, batch_size, optimizer, threads, required=required)
