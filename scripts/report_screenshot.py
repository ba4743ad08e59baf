"""docs/report.png (the README's screenshot) and docs/report.json (the figures it shows), from a real run.

    python scripts/report_screenshot.py        # a 10-epoch run of the post's net, seed 0; then headless Chromium

The run is exactly `bareprop train --epochs 10 --seed 0` (the default run). docs/report.json records
what the screenshot shows: the settings, the charts' headings and every figure of the loss and
accuracy chart as its tooltips print them. tests/test_report.py repeats the run (without the report)
and fails when those figures no longer match: then the screenshot is stale, and this script makes a
fresh one. Needs Debian's chromium package.
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import bareprop as bp
from bareprop.report.page import CHARTS

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"epochs": 10, "seed": 0}  # the default run, as `bareprop train` makes it
WIDTH, HEIGHT = 1200, 4000  # the browser's window; the screenshot is cropped to the page


def shown(history):
    """What the screenshot shows of a History: the figures of the loss and accuracy chart (4 decimals,
    as its tooltips) and the last test accuracy (the page's headline)."""
    figures = {key: [f"{v:.4f}" for v in getattr(history, key)]
               for key in ("train_loss", "test_loss", "train_acc", "test_acc")}
    return {"config": CONFIG, "charts": [heading for _, heading, _ in CHARTS], "epochs": list(history.epoch),
            "test_accuracy": f"{history.test_acc[-1]:.4f}", **figures}


def screenshot(page, png):
    """Headless Chromium's picture of the page, cropped below its last non-white row."""
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--no-first-run", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
                        f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)
    image = Image.open(png).convert("RGB")
    inked = np.nonzero((np.asarray(image.convert("L")) < 250).any(axis=1))[0]  # rows with anything drawn
    image.crop((0, 0, WIDTH, min(HEIGHT, int(inked.max()) + 40))).save(png, optimize=True)


def main():
    with tempfile.TemporaryDirectory() as folder:
        result = bp.run(bp.RunConfig(**CONFIG, output=str(Path(folder) / "run")))
        screenshot(result.out / "report.html", ROOT / "docs" / "report.png")
    figures = shown(result.history)  # one key a line
    lines = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in figures.items())
    (ROOT / "docs" / "report.json").write_text("{\n" + lines + "\n}\n")
    print(f"docs/report.png and docs/report.json: test accuracy {result.history.test_acc[-1]:.4f}")


if __name__ == "__main__":
    main()
