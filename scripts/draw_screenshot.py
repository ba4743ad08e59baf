"""docs/draw.png: the page of `bareprop draw` with a digit drawn on it, as headless Chromium shows it.

    python scripts/draw_screenshot.py [MODEL] [--output docs/draw.png]

Without MODEL it first trains the post's net (784 -> 32 -> ReLU -> 10) for one epoch, seed 0 (a few
seconds). The digit is drawn by pointer events, as a hand would; needs Debian's chromium package.
"""

import argparse
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import bareprop as bp

ROOT = Path(__file__).resolve().parent.parent


def two():
    """A hand-drawn 2, one stroke, in the pad's pixels (280 x 280): an arc, a diagonal, a base."""
    arc = [(140 + 55 * math.cos(a), 100 + 50 * math.sin(a)) for a in np.linspace(-2.7, 0.6, 24)]
    x, y = arc[-1]
    diagonal = [(x + (80 - x) * t, y + (225 - y) * t) for t in np.linspace(0, 1, 12)]
    base = [(80 + 130 * t, 225 + 5 * t) for t in np.linspace(0, 1, 12)]
    return [arc + diagonal[1:] + base[1:]]


# Put last in <body>: draws the strokes with pointer events on the pad.
DRAW = """<script>
(function () {
  const pad = document.getElementById("pad"), box = pad.getBoundingClientRect();
  const fire = (type, [x, y]) => pad.dispatchEvent(new PointerEvent(type, {pointerId: 1, bubbles: true,
    clientX: box.left + x * box.width / pad.width, clientY: box.top + y * box.height / pad.height}));
  for (const stroke of STROKES) {
    fire("pointerdown", stroke[0]);
    for (const point of stroke.slice(1)) fire("pointermove", point);
    fire("pointerup", stroke.at(-1));
  }
})();
</script>"""


def trained_net():
    X, y = bp.load_mnist("train")
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((784, 32, 10), rng=rng)
    bp.train(net, X, y, epochs=1, rng=rng)
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="a model.npz (default: train the post's net for one epoch)")
    parser.add_argument("--output", default=ROOT / "docs" / "draw.png", type=Path, help="the PNG to write")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("draw_screenshot: needs Chromium (apt-get install chromium)")
    net = bp.load(args.model) if args.model else trained_net()
    with tempfile.TemporaryDirectory() as tmp:
        page = bp.write_draw_page(net, Path(tmp) / "draw.html")
        head, tail = page.read_text(encoding="utf-8").rsplit("</body>", 1)
        page.write_text(head + DRAW.replace("STROKES", json.dumps(two())) + "</body>" + tail, encoding="utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--hide-scrollbars", f"--user-data-dir={Path(tmp) / 'profile'}", "--virtual-time-budget=5000",
                        "--window-size=960,480", f"--screenshot={Path(args.output).resolve()}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"screenshot in {args.output}")


if __name__ == "__main__":
    main()
