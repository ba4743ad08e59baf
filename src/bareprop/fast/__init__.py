"""The private fast path: a compiled kernel (_kernel.c) that runs the post's kind of net, tested
equal to the readable core (tests/test_kernel.py). Not public API; see docs/speed.md."""
