"""draw.html: one self-contained page where you draw a digit and a saved net classifies it as you draw.

The page is the template draw.html (beside this file) with the model put in place of __MODEL__:
its layers, and each Linear's (or Conv2d's) W, (I+1, O), the bias its last row, as base64 of the model's own dtype
(little-endian), so the page multiplies by exactly the file's numbers. Its JavaScript does what
`bareprop predict` does to a picture (mnist_digit of data/digits.py, Pillow's Lanczos resize
included), then the forward pass: one small function per layer kind, then softmax. No server, no
network: it opens offline.
"""

import base64
import json
from pathlib import Path

from ..core.losses import SoftmaxCrossEntropy
from ..data.digits import SIDE
from ..files import atomic_write

TEMPLATE = Path(__file__).with_name("draw.html")
KINDS = ("Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Dropout",  # the layers draw.html has a function for
         "Conv2d", "MaxPool2d", "Flatten", "Reshape")


class DrawError(ValueError):
    """A net the draw page cannot run, or a page that cannot be written."""


def page_model(net):
    """What the page embeds: {"dtype", "layers": [{"type", **layer.spec(), "W": base64 of (I+1, O)}, ...]}."""
    for layer in net.layers:
        if type(layer).__name__ not in KINDS:
            raise DrawError(f"the draw page has no function for the layer {layer!r} (it has {', '.join(KINDS)})")
    if type(net.loss) is not SoftmaxCrossEntropy:
        raise DrawError(f"the draw page ends in softmax, for SoftmaxCrossEntropy; this net's loss is {net.loss!r}")
    if net.sizes[0] != SIDE * SIDE:
        raise DrawError(f"the draw page needs a net of {SIDE * SIDE} inputs (a {SIDE}x{SIDE} image); "
                        f"this one takes {net.sizes[0]}")
    little_endian = net.dtype.newbyteorder("<")
    layers = []
    for layer in net.layers:
        entry = {"type": type(layer).__name__, **layer.spec()}
        if hasattr(layer, "W"):  # (I+1, O) row-major; a Conv2d's I is C*k*k
            entry["W"] = base64.b64encode(layer.W.astype(little_endian).tobytes()).decode("ascii")
        layers.append(entry)
    return {"dtype": net.dtype.name, "layers": layers}


def write_draw_page(net, path):
    """Write the draw page of `net` (784 inputs, softmax + cross-entropy) to `path`; return the path."""
    path = Path(path)
    data = json.dumps(page_model(net), allow_nan=False).replace("</", "<\\/")  # safe inside <script>
    page = TEMPLATE.read_text(encoding="utf-8").replace("__MODEL__", data, 1)
    try:
        atomic_write(path, page.encode("utf-8"))
    except OSError as e:
        raise DrawError(f"{path}: cannot write ({e.strerror or e})") from None
    return path
