"""report.html: what it holds, `bareprop report`, and a real browser drawing every chart."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bareprop as bp
from bareprop.cli import main
from bareprop.report.page import CHARTS

NAMES = [name for name, _, _ in CHARTS]


@pytest.fixture
def run_dir(cli_run):
    """The folder of conftest's `bareprop train --epochs 1`: the post's net, report included (read only)."""
    return cli_run.out


def page_specs(path):
    """The Vega-Lite spec of each chart, as the page embeds them."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(re.search(r"const specs = (\{.*?\});\n", text).group(1).replace("<\\/", "</"))


def data_of(spec):
    return spec["data"]["values"]


def test_the_page_is_self_contained(run_dir):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "vegaEmbed" in text and not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from the network
    for name in NAMES:
        assert f'<div class="chart" id="{name}"></div>' in text
        png = (run_dir / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and Image.open(run_dir / f"{name}.png").size[0] > 300


def test_the_charts_show_this_run(run_dir):
    specs = page_specs(run_dir / "report.html")
    assert list(specs) == NAMES
    net = bp.load(run_dir / "model.npz")
    X_test, y_test = bp.load_mnist("test")
    probs = net.predict_proba(X_test)
    predicted = probs.argmax(axis=1)
    history = json.loads((run_dir / "run.json").read_text())["history"]

    cells = data_of(specs["confusion"])
    confusion = bp.confusion_matrix(y_test, predicted, 10)
    assert {(c["true"], c["predicted"]): c["count"] for c in cells} == {
        (i, j): int(confusion[i, j]) for i in range(10) for j in range(10)}

    mistakes = data_of(specs["misclassified"])
    assert len(mistakes) == 24
    confidences = []
    for item in mistakes:
        n, true, guess = map(int, re.match(r"#(\d+): (\d) \u2192 (\d)", item["label"]).groups())
        assert y_test[n] == true != guess == predicted[n]
        np.testing.assert_allclose(item["v"], X_test[n], atol=5e-4)
        confidences.append(probs[n, guess])
    assert confidences == sorted(confidences, reverse=True)
    wrong = predicted != y_test
    assert confidences[0] == probs[wrong].max()

    units = data_of(specs["weights"])
    W = net.params()[0]
    assert [u["unit"] for u in units] == list(range(32))
    np.testing.assert_allclose([u["v"] for u in units], W[:-1].T, atol=5e-5)

    norms = data_of(specs["norms"])
    weight_rows = [r["norm"] for r in norms if r["of"] == "weights"]
    assert weight_rows == [n for epoch in history["weight_norm"] for n in epoch]
    assert history["weight_norm"][-1] == pytest.approx([float(np.linalg.norm(W)) for W in net.params()])
    assert [r["norm"] for r in norms if r["of"] != "weights"] == [n for epoch in history["grad_norm"] for n in epoch]
    assert len(history["grad_norm"]) == 1 and len(history["grad_norm"][0]) == 2  # 1 epoch, 2 weight matrices

    losses = data_of(specs["loss_accuracy"])
    assert [r["loss"] for r in losses if r["set"] == "test"] == history["test_loss"]


def test_report_command_rebuilds_the_same_page(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for name in NAMES:
        (copy / f"{name}.png").unlink()
    (copy / "report.html").unlink()
    capsys.readouterr()
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out == f"report in {(copy / 'report.html').resolve()}\n"
    assert page_specs(copy / "report.html") == page_specs(run_dir / "report.html")
    assert all((copy / f"{name}.png").exists() for name in NAMES)
    assert bp.build_report(copy) == copy / "report.html"


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

# Put last in <body>: once the page says its charts are drawn, or after 20 s, writes what it sees.
REPORT_BACK = """<script>
const __start = Date.now();
(function check() {
  if (!document.body.dataset.rendered && !window.__errors.length && Date.now() - __start < 20000) {
    setTimeout(check, 100);
    return;
  }
  const charts = {};
  for (const div of document.querySelectorAll("div.chart")) {
    charts[div.id] = div.querySelectorAll("svg, canvas").length;
  }
  const out = document.createElement("pre");
  out.id = "__result";
  out.textContent = JSON.stringify({rendered: document.body.dataset.rendered || null, charts, errors: window.__errors});
  document.body.appendChild(out);
})();
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
def test_a_headless_browser_draws_every_chart_without_a_javascript_error(run_dir, tmp_path):
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    head, tail = text.rsplit("</body>", 1)  # the last one: the inlined JavaScript holds the string too
    probed.write_text(head.replace("<head>", "<head>" + CATCH_ERRORS, 1) + REPORT_BACK + "</body>" + tail,
                      encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="__result">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    seen = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert seen["errors"] == []
    assert seen["rendered"] == str(len(NAMES))
    assert seen["charts"] == {name: 1 for name in NAMES}  # one SVG drawn in each chart's place
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", result.stderr), result.stderr[-2000:]

    screenshot = tmp_path / "report.png"
    run_chromium(tmp_path, "--window-size=1200,3600", f"--screenshot={screenshot}", (run_dir / "report.html").as_uri())
    print(f"screenshot of the report: {screenshot}")
    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.int16)  # (3600, 1200, 3)
    assert pixels.shape == (3600, 1200, 3)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean(axis=1)  # per row: share of coloured pixels
    bands = np.array_split(coloured, 6)[:5]  # the top five-sixths of the page hold the five charts
    assert all(band.max() > 0.05 for band in bands), [round(float(band.max()), 3) for band in bands]
