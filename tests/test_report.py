"""report.html: what it holds, `bareprop report`, and a real browser drawing every chart."""

import base64
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import bareprop as bp
from bareprop.cli import main
from bareprop.report import plot
from bareprop.report.page import CHARTS

NAMES = [name for name, _, _ in CHARTS]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def run_dir(cli_run):
    """The folder of conftest's `bareprop train --epochs 1`: the post's net, report included (read only)."""
    return cli_run.out


def page_charts(path):
    """The SVG of each chart, as the page inlines it, as text."""
    text = Path(path).read_text(encoding="utf-8")
    return dict(re.findall(r'<figure class="chart" id="(\w+)">(<svg .*?</svg>)</figure>', text, re.S))


def parsed(svg_text):
    return ET.fromstring(svg_text)


def titles(svg):
    """The tooltip of every point, cell and picture, in order."""
    return [t.text for t in svg.iter(f"{SVG}title")]


def markers(svg):
    """Every point of a chart of lines: (x, y, tooltip, tag, fill)."""
    found = []
    for mark in list(svg.iter(f"{SVG}circle")) + list(svg.iter(f"{SVG}polygon")):
        if mark.tag.endswith("circle"):
            x, y = float(mark.get("cx")), float(mark.get("cy"))
        else:
            x, y = np.array([p.split(",") for p in mark.get("points").split()], dtype=float).mean(axis=0)
        found.append((x, y, mark.find(f"{SVG}title").text, mark.tag.removeprefix(SVG), mark.get("fill")))
    return found


def y_axis(svg, left, right):
    """The panel between x=left and x=right: its y tick labels as a linear map from pixels to values."""
    ys, values = [], []
    for t in svg.iter(f"{SVG}text"):
        if t.get("text-anchor") == "end" and left - 20 < float(t.get("x")) < right and re.fullmatch(r"[\d.]+", t.text):
            ys.append(float(t.get("y")) - 4)
            values.append(float(t.text))
    assert len(ys) >= 3, "an axis has ticks"
    slope, intercept = np.polyfit(ys, values, 1)
    np.testing.assert_allclose(np.polyval([slope, intercept], ys), values, atol=(max(values) - min(values)) / 1000)
    return lambda y: slope * y + intercept, max(values) - min(values)


def check_points(svg, figures):
    """Each point's tooltip names its epoch, series, quantity and value, and it sits at that value on
    its panel's axis. figures: {(series, quantity): values per epoch}."""
    seen = {}
    for x, y, tip, _, _ in markers(svg):
        found = re.fullmatch(r"epoch (\d+), (.+): (\w+) (-?[\d.]+)", tip)
        if found is None:
            continue  # a legend's sample
        epoch, series, quantity, value = int(found[1]), found[2], found[3], float(found[4])
        left = plot.LEFT if x < plot.LEFT + plot.PANEL_W else plot.LEFT + plot.PANEL_W + plot.GAP
        value_at, span = y_axis(svg, left, left + plot.PANEL_W)
        assert value_at(y) == pytest.approx(value, abs=span / 200), tip  # drawn where its value is
        seen.setdefault((series, quantity), []).append((epoch, value))
    assert set(seen) == set(figures)
    for key, values in figures.items():
        assert [e for e, _ in seen[key]] == list(range(len(values)))
        assert [f"{v:.4f}" for _, v in seen[key]] == [f"{v:.4f}" for v in values], key


def picture(image):
    """An <image>'s embedded PNG, back at one pixel per image pixel: (SIDE, SIDE[, 3]) uint8."""
    data = base64.b64decode(image.get("href").removeprefix("data:image/png;base64,"))
    return np.asarray(Image.open(io.BytesIO(data)))[::plot.ZOOM, ::plot.ZOOM]


def test_the_page_is_self_contained_and_the_post_chart_is_its_picture(run_dir):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text  # nothing to run: the SVGs are drawn already
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from the network
    charts = page_charts(run_dir / "report.html")
    assert list(charts) == NAMES
    assert {p.name for p in run_dir.glob("*.png")} == {"loss_accuracy.png"}  # the others: `bareprop report`
    assert text.count('<p class="png">') == 1 and '<a href="loss_accuracy.png">' in text
    svg = parsed(charts["loss_accuracy"])
    width, height = int(svg.get("width")), int(svg.get("height"))
    assert Image.open(run_dir / "loss_accuracy.png").size == (2 * width, 2 * height)  # the same SVG, at scale 2


def test_the_charts_show_this_run(run_dir, mnist):
    charts = {name: parsed(svg) for name, svg in page_charts(run_dir / "report.html").items()}
    net = bp.load(run_dir / "model.npz")
    X_test, y_test = mnist[1]  # uint8: the net scales it as load_mnist would
    probs = net.predict_proba(X_test)
    predicted = probs.argmax(axis=1)
    history = json.loads((run_dir / "run.json").read_text())["history"]

    cells = [re.fullmatch(r"true (\d+), predicted (\d+): (\d+)", t).groups() for t in titles(charts["confusion"])]
    confusion = bp.confusion_matrix(y_test, predicted, 10)
    assert {(int(i), int(j)): int(c) for i, j, c in cells} == {
        (i, j): int(confusion[i, j]) for i in range(10) for j in range(10)}

    mistakes = charts["misclassified"].findall(f"{SVG}g")
    assert len(mistakes) == 24
    confidences = []
    for group in mistakes:
        tip = group.find(f"{SVG}title").text
        n, true, guess, p = re.fullmatch(r"test image #(\d+): a (\d), taken for a (\d) with probability ([\d.]+)", tip).groups()
        n, true, guess = int(n), int(true), int(guess)
        assert y_test[n] == true != guess == predicted[n]
        assert float(p) == pytest.approx(float(probs[n, guess]), abs=float(1 - probs[n, guess]) / 10)  # 2 figures of 1 - p
        ink = 255 - picture(group.find(f"{SVG}image")).reshape(-1)  # (784,): dark ink on white, back to MNIST's
        np.testing.assert_array_equal(ink, X_test[n])  # the raw pixels
        confidences.append(probs[n, guess])
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == probs[predicted != y_test].max()

    W = net.params()[0]  # (785, 32)
    units = charts["weights"].findall(f"{SVG}g")
    assert len(units) == 32
    for i, group in enumerate(units):
        low, high = re.fullmatch(r"unit (\d+): weights from (-?[\d.]+) to (-?[\d.]+)",
                                 group.find(f"{SVG}title").text).groups()[1:]
        assert (float(low), float(high)) == pytest.approx((W[:-1, i].min(), W[:-1, i].max()), abs=5e-5)
        rgb = picture(group.find(f"{SVG}image")).reshape(-1, 3).astype(int)  # (784, 3)
        w = W[:-1, i]
        strong = np.abs(w) > 0.2 * np.abs(W[:-1]).max()
        assert np.all((rgb[:, 0] > rgb[:, 2])[strong] == (w > 0)[strong])  # red where positive, blue where negative

    layers = ["0: Linear(784, 32)", "2: Linear(32, 10)"]
    norm_tips = [m[2] for m in markers(charts["norms"]) if m[2].startswith("epoch")]  # weights, then gradients
    expected = [f"epoch 0, {name}: norm {v:.4f}" for name, v in zip(layers, history["weight_norm"][0])]
    expected += [f"epoch 0, {name}: norm {v:.4f}" for name, v in zip(layers, history["grad_norm"][0])]
    assert sorted(norm_tips) == sorted(expected)
    assert history["weight_norm"][-1] == pytest.approx([float(np.linalg.vector_norm(W)) for W in net.params()])

    check_points(charts["loss_accuracy"], {
        ("train", "loss"): history["train_loss"], ("test", "loss"): history["test_loss"],
        ("train", "accuracy"): history["train_acc"], ("test", "accuracy"): history["test_acc"]})


def test_one_epoch_still_tells_train_from_test():
    """A single point per series: the points differ in shape and fill, not only in the line joining them."""
    h = SimpleNamespace(epoch=[0], train_loss=[0.46], test_loss=[0.29], train_acc=[0.87], test_acc=[0.91])
    svg = parsed(plot.history_chart(h))
    looks = {}
    for _, _, tip, tag, fill in markers(svg):
        looks.setdefault(tip.split(":")[0].removeprefix("epoch 0, "), set()).add((tag, fill))
    assert looks["train"].isdisjoint(looks["test"]) and len(looks["train"]) == len(looks["test"]) == 1
    assert looks["train set"] == looks["train"] and looks["test set"] == looks["test"]  # the legend's samples
    check_points(svg, {("train", "loss"): [0.46], ("test", "loss"): [0.29], ("train", "accuracy"): [0.87],
                       ("test", "accuracy"): [0.91]})


@pytest.mark.parametrize("epochs", [1, 2, 10, 11, 12, 100, 1000])
def test_epoch_labels_never_crowd(epochs):
    h = SimpleNamespace(epoch=list(range(epochs)), train_loss=list(np.linspace(0.5, 0.1, epochs)),
                        test_loss=[], train_acc=list(np.linspace(0.87, 0.97, epochs)), test_acc=[])
    svg = parsed(plot.history_chart(h))
    labels = [(float(t.get("x")), t.text) for t in svg.iter(f"{SVG}text")
              if t.get("text-anchor") == "middle" and re.fullmatch(r"\d+", t.text)]
    left = sorted(x for x, _ in labels if x < plot.LEFT + plot.PANEL_W)
    assert 1 <= len(left) <= 11 and labels[0][1] == "0"
    assert all(b - a >= 8 * max(len(text) for _, text in labels) for a, b in zip(left, left[1:]))
    assert len([m for m in markers(svg) if m[2].startswith("epoch")]) == 2 * epochs  # a point per epoch, each panel


def test_the_y_axes_hold_their_own_range():
    """Loss from 0; accuracy on its own axis from just below its lowest value, not beside the loss's 0."""
    h = SimpleNamespace(epoch=list(range(10)), train_loss=list(np.linspace(0.46, 0.12, 10)), test_loss=[],
                        train_acc=list(np.linspace(0.87, 0.97, 10)), test_acc=[])
    svg = parsed(plot.history_chart(h))
    loss_at, _ = y_axis(svg, plot.LEFT, plot.LEFT + plot.PANEL_W)
    acc_at, _ = y_axis(svg, plot.LEFT + plot.PANEL_W + plot.GAP, 2 * plot.PANEL_W + plot.LEFT + plot.GAP)
    bottom, top = plot.TOP + 24 + plot.PANEL_H, plot.TOP + 24
    assert loss_at(bottom) == pytest.approx(0) and 0.46 <= loss_at(top) <= 0.5
    assert 0.85 <= acc_at(bottom) <= 0.87 and 0.97 <= acc_at(top) <= 1.0
    assert [t.text for t in svg.iter(f"{SVG}text") if t.get("font-weight") == "bold"] == ["loss", "accuracy"]


@pytest.mark.parametrize("p, shown", [(0.5, "0.50"), (0.97, "0.970"), (0.9987, "0.9987"), (0.99991, "0.999910"),
                                      (0.99997, "0.999970"), (1.0, "1 (to float precision)")])
def test_probabilities_show_the_digits_that_tell_them_apart(p, shown):
    assert plot.probability(p) == shown


def test_report_command_rebuilds_the_same_page_with_every_png(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "loss_accuracy.png").unlink()
    (copy / "report.html").unlink()
    capsys.readouterr()
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out == f"report in {(copy / 'report.html').resolve()}\n"
    assert page_charts(copy / "report.html") == page_charts(run_dir / "report.html")
    charts = page_charts(copy / "report.html")
    for name in NAMES:  # each PNG is its chart's SVG, rasterised at scale 2
        svg = parsed(charts[name])
        assert Image.open(copy / f"{name}.png").size == (2 * int(svg.get("width")), 2 * int(svg.get("height")))
    assert (copy / "report.html").read_text().count('<p class="png">') == len(NAMES)
    assert bp.build_report(copy) == copy / "report.html"


ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_screenshot_shows_what_the_default_run_makes_now(tmp_path):
    """docs/report.png is stale once docs/report.json, the figures it shows, no longer matches a fresh
    run of the same settings (or the report's charts change): then `python scripts/report_screenshot.py`."""
    spec = importlib.util.spec_from_file_location("report_screenshot", ROOT / "scripts" / "report_screenshot.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = bp.run(bp.RunConfig(**script.CONFIG, plot=False, output=str(tmp_path / "run")))
    recorded = json.loads((ROOT / "docs" / "report.json").read_text())
    assert script.shown(result.history) == recorded, "stale: run python scripts/report_screenshot.py"
    assert Image.open(ROOT / "docs" / "report.png").size[0] == script.WIDTH


def test_report_on_a_folder_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"bareprop: error: {tmp_path / 'run.json'}: cannot read (No such file or directory)\n"
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err == f"bareprop: error: {tmp_path / 'absent'}: not a folder\n"


def test_report_on_a_manifest_without_history_is_one_line(run_dir, tmp_path, capsys):
    shutil.copy(run_dir / "model.npz", tmp_path / "model.npz")
    manifest = json.loads((run_dir / "run.json").read_text())
    del manifest["history"]
    (tmp_path / "run.json").write_text(json.dumps(manifest))
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"bareprop: error: {tmp_path / 'run.json'}: the manifest has no history\n"


# --- a real browser -------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

# Put first in <head>: records every error the page raises or logs.
CATCH_ERRORS = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => window.__errors.push("rejection: " + e.reason));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push("console.error: " + args.join(" ")); __consoleError(...args); };
</script>"""

# Put last in <body>: once the page has loaded (its images decoded), writes what it sees.
REPORT_BACK = """<script>
window.addEventListener("load", () => {
  const charts = {};
  for (const figure of document.querySelectorAll("figure.chart")) {
    charts[figure.id] = [...figure.querySelectorAll(":scope > svg")].map((svg) => Math.round(svg.getBoundingClientRect().width));
  }
  const images = [...document.querySelectorAll("image")].filter((image) => image.getBBox().width > 0).length;
  const out = document.createElement("pre");
  out.id = "__result";
  out.textContent = JSON.stringify({charts, images, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Chromium is needed for this test: apt-get install chromium (.ci/run installs it)"
    return path


def run_chromium(tmp_path, *args):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a fresh profile each time
    result = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
                             "--v=0", "--virtual-time-budget=30000", *args],
                            capture_output=True, text=True, timeout=180, env={**os.environ, "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.browser
def test_a_headless_browser_draws_every_chart_without_an_error(run_dir, tmp_path):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    head, tail = text.rsplit("</body>", 1)
    probed.write_text(head.replace("<head>", "<head>" + CATCH_ERRORS, 1) + REPORT_BACK + "</body>" + tail,
                      encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="__result">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    seen = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert seen["errors"] == []
    assert list(seen["charts"]) == NAMES and all(len(widths) == 1 and widths[0] > 300 for widths in seen["charts"].values())
    assert seen["images"] == 24 + 32 + 1  # the mistakes, the units' weights, the weights' colour scale
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", result.stderr), result.stderr[-2000:]

    screenshot = tmp_path / "report.png"
    run_chromium(tmp_path, "--window-size=1200,3600", f"--screenshot={screenshot}", (run_dir / "report.html").as_uri())
    print(f"screenshot of the report: {screenshot}")
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)  # (3600, 1200, 3)
    assert pixels.shape == (3600, 1200, 3)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean(axis=1)  # per row: share of coloured pixels
    bands = np.array_split(coloured[:2800], 5)  # the page's first 2800 rows hold the five charts
    assert all(band.max() > 0.05 for band in bands), [round(float(band.max()), 3) for band in bands]


def test_the_report_links_a_draw_page_only_for_a_net_the_page_can_run(tmp_path):
    """A softmax net on 28x28 inputs gets draw.html beside its report, linked; an MSE net gets neither."""
    from bareprop.core.train import History
    from bareprop.report.page import write_report

    r = np.random.default_rng(0)
    X, y = r.integers(0, 256, size=(40, 784), dtype=np.uint8), r.integers(0, 10, size=40)
    for loss, drawable in [(bp.SoftmaxCrossEntropy(), True), (bp.MSE(), False)]:
        out = tmp_path / type(loss).__name__
        out.mkdir()
        net = bp.Sequential([bp.Linear(784, 10, rng=r)], loss=loss)
        history = History(epoch=[0], train_loss=[1.0], train_acc=[0.5], test_loss=[1.0], test_acc=[0.5],
                          seconds=[0.1], weight_norm=[[1.0]], grad_norm=[[1.0]])  # one epoch's figures
        manifest = {"config": {}, "versions": {"python": "3", "numpy": "2", "bareprop": "0"}, "seed": 0,
                    "seconds": 0.1, "history": history.to_dict()}
        write_report(out, net, history, manifest, X, y, pngs=[])
        assert (out / "draw.html").exists() == drawable
        assert ('<a href="draw.html">' in (out / "report.html").read_text()) == drawable
