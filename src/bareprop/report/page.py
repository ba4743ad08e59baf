"""report.html: one self-contained page about a training run (no script: it opens offline, at once).

The page holds five charts (plot.py draws each as SVG), each also saved as a PNG beside it: the
post's loss and accuracy per epoch; the confusion matrix on the test set; the most confidently
misclassified test images; the first layer's weights drawn as 28x28 images, one per hidden unit;
and the norm of each layer's weights and gradients per epoch.
"""

import html
import json
from pathlib import Path

import numpy as np

from ..core.conv import Conv2d
from . import plot

GALLERY = 24  # misclassified images shown
MAX_UNITS = 64  # hidden units drawn at most
CHARTS = [  # (name: the figure's id and the PNG's name, heading, caption)
    ("loss_accuracy", "Loss and accuracy", "Per epoch, numbered from 0 as in the printed table and run.json: "
     "solid lines and filled circles for the training set (averaged over the epoch's batches, as in the post), "
     "dashed lines and hollow squares for the 10,000 test images after the epoch. Each panel has its own axis."),
    ("confusion", "Confusion matrix", "Test images by true class (rows) and predicted class (columns)."),
    ("misclassified", "Most confident mistakes", "The test images the network got wrong with the highest "
     "probability on its wrong answer: #index: true \u2192 predicted, and that probability, with the "
     "decimals it takes to show how far it is from 1."),
    ("weights", "First-layer weights", "The weights into each hidden unit, drawn as the 28x28 image they "
     "respond to: red where a bright pixel raises the unit's input, blue where it lowers it."),
    ("norms", "Weight and gradient norms", "The norm of each layer's weight matrix after each epoch, and of "
     "its gradient on the epoch's first batch (per example)."),
]


class ReportError(ValueError):
    """A run folder lacks what the report needs."""


def build_report(run_dir, *, data_dir=None, download=False, progress=None):
    """Rebuild report.html and every chart's PNG from a saved run: run.json and model.npz.

    It reads the folder's run.json and model.npz, and the test set of the run's dataset from the
    cache of whoever runs it (data_dir, else $BAREPROP_DATA, else the user's cache folder), never from
    a folder the run.json names; it writes into run_dir alone. A dataset not in that cache is an
    error unless download=True (progress(file, done, total) then reports the bytes). Any problem is a
    ReportError (or DataError) of one line."""
    from ..data.datasets import DATASETS, FILES, dataset_folder, load_dataset
    from ..data.reading import check_file
    from ..experiment.config import MAX_RUN_JSON
    from ..experiment.manifest import ManifestError, read_manifest
    from ..experiment.modelfile import ModelFileError, load

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder")
    manifest_path = run_dir / "run.json"

    def fail(problem):
        return ReportError(f"{manifest_path}: {problem}")

    try:
        check_file(manifest_path, MAX_RUN_JSON, "a run.json", fail)
    except OSError:
        pass  # read_manifest says why it cannot be read
    try:
        manifest = read_manifest(manifest_path)
        net = load(run_dir / "model.npz")
    except (ManifestError, ModelFileError) as e:
        raise ReportError(str(e)) from None
    history = _history(manifest, fail)
    dataset = manifest["config"].get("dataset", "mnist")
    if dataset not in DATASETS:
        raise fail(f"its dataset {dataset!r} is not one this bareprop has ({', '.join(sorted(DATASETS))})")
    folder = dataset_folder(dataset, data_dir)
    if not (download or DATASETS[dataset].shipped) and any(not (folder / f).exists() for f in FILES["test"]):
        raise ReportError(f"the run's dataset {dataset} is not in the cache {folder}: run 'bareprop data download "
                          f"{dataset}', give the cache that holds it (--data-dir), or let report download it "
                          "(--download)")
    X_test, y_test = load_dataset(dataset, "test", data_dir=data_dir, offline=None if download else True,
                                  progress=progress)
    if net.sizes[0] != X_test.shape[1] or net.num_classes != len(DATASETS[dataset].classes):
        raise ReportError(f"{run_dir / 'model.npz'}: the model maps {net.sizes[0]} inputs to {net.num_classes} "
                          f"classes; {dataset}, the run's dataset, needs {X_test.shape[1]} to "
                          f"{len(DATASETS[dataset].classes)}")
    return write_report(run_dir, net, history, manifest, X_test, y_test)


def _history(manifest, fail):
    """The History of run.json's "history", after checking everything the page shows: a damaged
    run.json is a one-line error, not a traceback."""
    from ..core.train import History

    missing = [key for key in ("seed", "versions", "history", "seconds") if key not in manifest]
    h = manifest.get("history")
    if missing or not isinstance(h, dict) or not isinstance(h.get("epoch"), list):
        raise fail(f"the manifest has no {', '.join(missing) or 'history of epochs'}")
    versions = manifest["versions"]
    if not (isinstance(versions, dict)
            and all(isinstance(versions.get(k), str) for k in ("python", "numpy", "bareprop"))):
        raise fail("its \"versions\" are not the python, numpy and bareprop versions, as strings")
    if not _is_number(manifest["seconds"]):
        raise fail(f"its \"seconds\" is {manifest['seconds']!r}, not a number")
    n = len(h["epoch"])
    if not all(isinstance(e, int) and not isinstance(e, bool) for e in h["epoch"]):
        raise fail("its history.epoch is not a list of epoch numbers")
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds", "weight_norm", "grad_norm"):
        values = h.get(key, [])
        per_layer = key in ("weight_norm", "grad_norm")  # a list of numbers per epoch
        ok = isinstance(values, list) and len(values) in (0, n) and all(
            isinstance(v, list) and all(_is_number(x) or x is None for x in v) if per_layer
            else _is_number(v) or v is None for v in values)
        if not ok:
            raise fail(f"its history.{key} is not a list of {n} {'lists of numbers' if per_layer else 'numbers'} "
                       "(one per epoch)")
    return History.from_dict(h)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_report(out, net, history, manifest, X_test, y_test, *, pngs=None):
    """Write report.html, and a PNG of each chart named in `pngs` (None: all), into the folder `out`;
    return the page's path.

    Each chart is drawn once, as SVG: the page inlines it, and its PNG is that SVG rasterised by
    vl-convert (resvg: no browser, no JavaScript; about 0.05 s for the post's chart, 0.3 s for all five)."""
    from ..core.net import as_inputs
    from ..files import atomic_write
    from .metrics import confusion_matrix

    out = Path(out)
    if X_test.dtype == np.uint8:  # pixel values 0..255, scaled as the net and load_dataset scale them
        X_test = as_inputs(X_test, np.dtype(np.float32))  # (N, I) in [0, 1]
    probs = net.predict_proba(X_test)  # (N, K)
    predicted = probs.argmax(axis=1)  # (N,)
    layers = [f"{i}: {layer!r}" for i, layer in enumerate(net.layers) if hasattr(layer, "W")]
    charts = {
        "loss_accuracy": plot.history_chart(history),
        "confusion": plot.confusion_chart(confusion_matrix(y_test, predicted, net.num_classes)),
        "misclassified": plot.mistakes_chart(X_test, y_test, probs, count=GALLERY),
        "weights": _weights_chart(net),
        "norms": plot.norms_chart(history, layers),
    }
    pngs = list(charts) if pngs is None else list(pngs)
    if pngs:
        import vl_convert as vlc

        for name in pngs:
            atomic_write(out / f"{name}.png", vlc.svg_to_png(charts[name], scale=2))
    drawn = _draw_page(net, out / "draw.html")  # a page to try the model on your own digit, if it can run there
    page = _page(charts, manifest, accuracy=float((predicted == y_test).mean()), pngs=pngs, draw=drawn,
                 captions={"weights": FILTERS} if isinstance(_first_weighted(net), Conv2d) else {})
    atomic_write(out / "report.html", page.encode("utf-8"))
    return out / "report.html"


FILTERS = ("The first convolution's filters: each output channel's k x k weights (its input channels side by "
           "side), the pattern it responds to: red where a bright pixel raises its output, blue where it lowers it.")


def _first_weighted(net):
    return next(layer for layer in net.layers if hasattr(layer, "W"))


def _weights_chart(net):
    """The first layer's weights as pictures: a Linear's rows as 28x28 images, a Conv2d's filters as k x k."""
    first = _first_weighted(net)
    if not isinstance(first, Conv2d):
        return plot.weights_chart(first.W, max_units=MAX_UNITS)
    C, k = first.in_channels, first.kernel_size
    side_by_side = lambda w: w.reshape(C, k, k).transpose(1, 0, 2).reshape(k, C * k)  # noqa: E731  (F,) -> (k, C*k)
    return plot.weights_chart(first.W, max_units=MAX_UNITS, picture=side_by_side, unit="filter")


def _draw_page(net, path):
    """draw.html beside the report (True), or False for a net the draw page cannot run (a loss other
    than softmax + cross-entropy, inputs that are not 28x28): the report then has no link to it."""
    from .draw import DrawError, write_draw_page

    try:
        write_draw_page(net, path)
    except DrawError:
        return False
    return True


# --- the page ------------------------------------------------------------------------------


def _page(charts, manifest, *, accuracy, pngs, draw=False, captions=None):
    config, versions = manifest["config"], manifest["versions"]
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                       for k, v in config.items())
    sections = "".join(
        f'<section><h2>{html.escape(heading)}</h2><p>{html.escape((captions or {}).get(name, caption))}</p>'
        f'<figure class="chart" id="{name}">{charts[name]}</figure>'
        + (f'<p class="png"><a href="{name}.png">{name}.png</a></p>' if name in pngs else "") + "</section>"
        for name, heading, caption in CHARTS
    )
    epochs = len(manifest["history"]["epoch"])
    run = html.escape(f"{epochs} epoch{'s' * (epochs != 1)}, seed {manifest['seed']}, "
                      f"{manifest['seconds']:.1f} s; Python {versions['python']}, NumPy {versions['numpy']}, "
                      f"bareprop {versions['bareprop']}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bareprop report: test accuracy {accuracy:.4f}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ margin-top: 1.8em; border-bottom: 1px solid #ddd; }}
.summary {{ color: #555; }} .accuracy {{ font-size: 2em; font-weight: 600; color: #57A44C; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} th, td {{ text-align: left; padding: 0.15em 1em 0.15em 0; }}
figure {{ margin: 0; }} figure svg {{ max-width: 100%; height: auto; }} .png {{ font-size: 0.85em; }}
</style>
</head>
<body>
<h1>bareprop training run</h1>
<p class="summary">test accuracy <span class="accuracy">{accuracy:.4f}</span></p>
<p class="summary">{run}</p>
{'<p class="summary"><a href="draw.html">Draw a digit</a> and watch this model read it (draw.html).</p>' if draw else ''}
<details><summary>settings</summary><table>{settings}</table></details>
{sections}
</body>
</html>
"""
