"""Small file helpers shared by the edges of the package (CLI, plots)."""

import os
import tempfile
from pathlib import Path


def atomic_write(path, data):
    """Write bytes to `path` through a temporary file in the same folder, renamed when complete:
    a reader never sees a half-written file, and a failure leaves any old file as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            e.filename = str(path)  # a failed write names no file: name the one being written
        raise
