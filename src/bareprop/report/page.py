"""report.html: one self-contained page about a training run (Altair and vl-convert, imported only here).

The page holds five charts, each also saved as a PNG beside it: the post's loss and accuracy per
epoch; the confusion matrix on the test set; the most confidently misclassified test images; the
first layer's weights drawn as 28x28 images, one per hidden unit; and the norm of each layer's
weights and gradients per epoch. Vega, Vega-Lite and vega-embed are inlined: it opens offline.
"""

import html
import json
from pathlib import Path

import numpy as np

from .plot import history_chart

SIDE = 28  # MNIST images are SIDE x SIDE
GALLERY = 24  # misclassified images shown
MAX_UNITS = 64  # hidden units drawn at most
CHARTS = [  # (name: the div id and the PNG's name, heading, caption)
    ("loss_accuracy", "Loss and accuracy", "Per epoch, as in the post: solid lines for the training set "
     "(averaged over the epoch's batches), dashed for the 10,000 test images after the epoch."),
    ("confusion", "Confusion matrix", "Test images by true class (rows) and predicted class (columns)."),
    ("misclassified", "Most confident mistakes", "The test images the network got wrong with the highest "
     "probability on its wrong answer."),
    ("weights", "First-layer weights", "The weights into each hidden unit, drawn as the 28x28 image they "
     "respond to: red where a bright pixel raises the unit's input, blue where it lowers it."),
    ("norms", "Weight and gradient norms", "The norm of each layer's weight matrix after each epoch, and of "
     "its gradient on the epoch's first batch (per example)."),
]


class ReportError(ValueError):
    """A run folder lacks what the report needs."""


def build_report(run_dir):
    """Rebuild report.html (and the charts' PNGs) from a saved run: run.json and model.npz."""
    from ..data import load_dataset
    from ..experiment.manifest import ManifestError, read_manifest
    from ..experiment.modelfile import ModelFileError, load
    from ..core.train import History

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder")
    try:
        manifest = read_manifest(run_dir / "run.json")
        net = load(run_dir / "model.npz")
    except (ManifestError, ModelFileError) as e:
        raise ReportError(str(e)) from None
    missing = [key for key in ("seed", "versions", "history", "seconds") if key not in manifest]
    if missing or not isinstance(manifest["history"], dict) or "epoch" not in manifest["history"]:
        raise ReportError(f"{run_dir / 'run.json'}: the manifest has no {', '.join(missing) or 'history of epochs'}")
    config = manifest["config"]
    X_test, y_test = load_dataset(config.get("dataset", "mnist"), "test", data_dir=config.get("data_dir"))
    return write_report(run_dir, net, History.from_dict(manifest["history"]), manifest, X_test, y_test)


def write_report(out, net, history, manifest, X_test, y_test):
    """Write report.html and one PNG per chart into the folder `out`; return the page's path."""
    import vl_convert as vlc

    from ..files import atomic_write
    from .metrics import confusion_matrix

    out = Path(out)
    if X_test.dtype == np.uint8:  # pixel values 0..255, scaled as load_dataset scales them
        X_test = np.divide(X_test, np.float32(255), dtype=np.float32)  # (N, I) in [0, 1]
    probs = net.predict_proba(X_test)  # (N, K)
    predicted = probs.argmax(axis=1)  # (N,)
    charts = {
        "loss_accuracy": history_chart(history),
        "confusion": confusion_chart(confusion_matrix(y_test, predicted, net.num_classes)),
        "misclassified": mistakes_chart(X_test, y_test, probs),
        "weights": weights_chart(net.params()[0]),
        "norms": norms_chart(history, [f"{i}: {layer!r}" for i, layer in enumerate(net.layers) if hasattr(layer, "W")]),
    }
    specs = {name: chart.to_dict() for name, chart in charts.items()}
    for name, spec in specs.items():
        atomic_write(out / f"{name}.png", vlc.vegalite_to_png(spec, scale=2))
    page = _page(specs, manifest, accuracy=float((predicted == y_test).mean()), bundle=vlc.javascript_bundle())
    atomic_write(out / "report.html", page.encode("utf-8"))
    return out / "report.html"


# --- the charts ----------------------------------------------------------------------------


def confusion_chart(confusion):  # (K, K) counts
    import altair as alt

    K = len(confusion)
    rows = [{"true": i, "predicted": j, "count": int(confusion[i, j])} for i in range(K) for j in range(K)]
    base = alt.Chart(alt.Data(values=rows)).encode(
        alt.X("predicted:O", title="predicted class", axis=alt.Axis(labelAngle=0)),
        alt.Y("true:O", title="true class"),
    )
    cells = base.mark_rect().encode(
        alt.Color("count:Q", scale=alt.Scale(scheme="blues", type="symlog"), legend=None),
        tooltip=["true:O", "predicted:O", "count:Q"],
    )
    threshold = confusion.max() / 4
    counts = base.mark_text(fontSize=11).encode(
        alt.Text("count:Q"),
        color=alt.condition(f"datum.count > {threshold}", alt.value("white"), alt.value("#333")),
    )
    return (cells + counts).properties(width=360, height=360, title="test set: true class vs predicted")


def _image_grid(rows, facet, color, columns, title, drop_zeros=False):
    """Small SIDE x SIDE heatmaps, one per row of `rows`; each row's "v" holds its SIDE*SIDE pixels.

    The pixels travel as one list per image and are unpacked in the browser (flatten, then the
    pixel's index gives its row and column): a tenth of the page a row per pixel would take."""
    import altair as alt

    axis = dict(axis=None, scale=alt.Scale(domain=list(range(SIDE))))
    chart = (
        alt.Chart(alt.Data(values=rows))
        .transform_flatten(["v"])
        .transform_window(p="row_number()", groupby=[facet.shorthand.split(":")[0]])
        .transform_calculate(r=f"floor((datum.p - 1) / {SIDE})", c=f"(datum.p - 1) % {SIDE}")
    )
    if drop_zeros:
        chart = chart.transform_filter("datum.v > 0")
    return (
        chart.mark_rect()
        .encode(alt.X("c:O", **axis), alt.Y("r:O", **axis), color)
        .properties(width=3 * SIDE, height=3 * SIDE)
        .facet(facet, columns=columns, title=title)
        .configure_view(stroke="#ccc")
        .configure_header(labelFontSize=11)
    )


def _rounded(values, digits):  # (M, SIDE*SIDE) -> a list of lists of Python floats
    return np.round(values.astype(np.float64), digits).tolist()


def mistakes_chart(X, y, probs, count=GALLERY):  # (N, SIDE*SIDE), (N,), (N, K)
    """The `count` misclassified images with the highest probability on their (wrong) answer."""
    import altair as alt

    predicted = probs.argmax(axis=1)  # (N,)
    wrong = np.nonzero(predicted != y)[0]
    worst = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:count]
    labels = [f"#{n}: {y[n]} \u2192 {predicted[n]} ({probs[n, predicted[n]]:.2f})" for n in worst]
    rows = [{"label": label, "v": pixels} for label, pixels in zip(labels, _rounded(X[worst], 3))]
    color = alt.Color("v:Q", scale=alt.Scale(scheme="greys", domain=[0, 1]), legend=None)
    facet = alt.Facet("label:N", title=None, sort=labels)
    return _image_grid(rows, facet, color, columns=8, drop_zeros=True,
                       title=f"the {len(worst)} most confident mistakes on the test set: "
                       "#index: true \u2192 predicted (probability)")


def weights_chart(W, max_units=MAX_UNITS):  # (SIDE*SIDE+1, H): the first Linear's weights, bias row last
    import altair as alt

    units = W[:-1, :max_units].T  # (H', SIDE*SIDE): the input weights of each hidden unit
    bound = float(np.abs(units).max()) or 1.0
    rows = [{"unit": i, "v": pixels} for i, pixels in enumerate(_rounded(units, 4))]
    color = alt.Color("v:Q", scale=alt.Scale(scheme="redblue", reverse=True, domain=[-bound, bound]),
                      legend=alt.Legend(title="weight"))
    shown = f"the first {len(units)} of {W.shape[1]}" if W.shape[1] > len(units) else f"all {len(units)}"
    return _image_grid(rows, alt.Facet("unit:O", title=None), color, columns=8,
                       title=f"first-layer weights of {shown} hidden units")


def norms_chart(history, layer_names):
    import altair as alt

    rows = []
    for kind, per_epoch in [("weights", history.weight_norm), ("gradient (per example)", history.grad_norm)]:
        for epoch, norms in zip(history.epoch, per_epoch):
            for name, norm in zip(layer_names, norms):
                rows.append({"epoch": epoch, "layer": name, "norm": norm, "of": kind})
    return (
        alt.Chart(alt.Data(values=rows))
        .mark_line(point=True)
        .encode(alt.X("epoch:O", axis=alt.Axis(labelAngle=0)), alt.Y("norm:Q", title="norm"),
                alt.Color("layer:N", title="layer (index: layer)"), tooltip=["epoch:Q", "layer:N", "norm:Q"])
        .properties(width=320, height=220)
        .facet(column=alt.Column("of:N", title=None, sort=["weights", "gradient (per example)"]))
        .resolve_scale(y="independent")
        .properties(title="norms per epoch")
    )


# --- the page ------------------------------------------------------------------------------


def _script_json(value):
    """JSON that is safe inside <script>: no '</' can close the tag early."""
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def _page(specs, manifest, *, accuracy, bundle):
    config, versions = manifest["config"], manifest["versions"]
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(json.dumps(v))}</td></tr>"
                       for k, v in config.items())
    sections = "".join(
        f'<section><h2>{html.escape(heading)}</h2><p>{html.escape(caption)}</p>'
        f'<div class="chart" id="{name}"></div><p class="png"><a href="{name}.png">{name}.png</a></p></section>'
        for name, heading, caption in CHARTS
    )
    run = html.escape(f"{len(manifest['history']['epoch'])} epochs, seed {manifest['seed']}, "
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
.png {{ font-size: 0.85em; }} .failed {{ color: #b00; font-weight: 600; }}
</style>
<script>{bundle}</script>
</head>
<body>
<h1>bareprop training run</h1>
<p class="summary">test accuracy <span class="accuracy">{accuracy:.4f}</span></p>
<p class="summary">{run}</p>
<details><summary>settings</summary><table>{settings}</table></details>
{sections}
<script>
const specs = {_script_json(specs)};
Promise.all(Object.entries(specs).map(([name, spec]) =>
  vegaEmbed("#" + name, spec, {{renderer: "svg", actions: false}}).catch((error) => {{
    const div = document.getElementById(name);
    div.className = "chart failed";
    div.textContent = "This chart could not be drawn: " + error;
    throw error;
  }})
)).then(() => {{ document.body.dataset.rendered = Object.keys(specs).length; }},
        (error) => {{ console.error(error); }});
</script>
</body>
</html>
"""
