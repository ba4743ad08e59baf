"""Reading a file defensively: a regular file only, and never more than a cap.

A path may name a folder, a named pipe (FIFO: opening it to read would wait for a writer), a device
such as /dev/zero (endless bytes), or a file far larger than anything bareprop writes. Each is
refused with one line before any byte is read: the file is opened without blocking (O_NONBLOCK),
then its kind and size are asked of the open file (fstat), so what is checked is what is read.
"""

import os
import stat

KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def size_text(n):
    """Bytes for people: 10 MiB, 1 GiB, 123 bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _open(path, limit, what, fail):
    """An open descriptor of the regular file `path`, at most `limit` bytes long, and its size.
    OSError (no such file, no permission) passes through for the caller to word."""
    try:
        _check(os.stat(path), limit, what, fail)  # never blocks, even on a FIFO: refuse it before opening
    except OSError:
        pass  # let open() give the reason
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)  # the file actually opened, which may have been swapped since the stat above
        _check(st, limit, what, fail)
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _check(st, limit, what, fail):
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in KINDS if test(st.st_mode)), "a special file")
        raise fail(f"is {kind}, expected a file")
    if st.st_size > limit:
        raise fail(f"{size_text(st.st_size)} ({st.st_size} bytes), more than the {size_text(limit)} "
                   f"bareprop reads from {what}")


def check_file(path, limit, what, fail):
    """Raise fail(problem) unless `path` is a regular file of at most `limit` bytes (`what`, such as
    "a run.json", names it in the message); return its size. fail(problem) builds the caller's
    one-line error; OSError passes through."""
    fd, size = _open(path, limit, what, fail)
    os.close(fd)
    return size


def read_file(path, limit, what, fail):
    """The bytes of the regular file `path`, refused (fail(problem)) if it is anything else or holds
    more than `limit` bytes, or if it grows while it is read. OSError passes through."""
    fd, size = _open(path, limit, what, fail)
    with os.fdopen(fd, "rb") as f:
        data = f.read(size + 1)  # read(n) sets n bytes aside: the size, not the cap
    if len(data) > size:
        raise fail(f"grew while being read (from {size} bytes)")
    return data
