"""draw.html: `bareprop draw`, what the page embeds, and a real browser drawing a digit on it."""

import base64
import json
import re

import numpy as np
import pytest
from test_report import CATCH_ERRORS, run_chromium

import bareprop as bp
from bareprop.cli import main
from bareprop.cli.models import prediction_line
from bareprop.core.layers import LAYERS
from bareprop.report.draw import KINDS, TEMPLATE, DrawError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The post's net after one epoch on 6,000 MNIST images, saved as a run folder's model.npz (read only)."""
    X, y = bp.load_mnist("train")
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((784, 32, 10), rng=rng)
    bp.train(net, X[:6000], y[:6000], epochs=1, rng=rng)
    path = tmp_path_factory.mktemp("run") / "model.npz"
    bp.save(net, path)
    return path


@pytest.fixture(scope="module")
def every_kind(tmp_path_factory):
    """A float64 net with every layer kind bareprop has, its weights random (read only)."""
    rng = np.random.default_rng(1)
    layers = [bp.Reshape((1, 28, 28)), bp.Conv2d(1, 3, 5, stride=2, padding=1, rng=rng, dtype=np.float64),  # (3, 13, 13)
              bp.ReLU(), bp.MaxPool2d(3, stride=2), bp.Conv2d(3, 2, 2, rng=rng, dtype=np.float64),  # (3, 6, 6), (2, 5, 5)
              bp.Flatten(), bp.Linear(50, 24, rng=rng, dtype=np.float64), bp.LeakyReLU(0.1), bp.Dropout(0.5, rng=rng),
              bp.Linear(24, 16, rng=rng, dtype=np.float64), bp.Sigmoid(),
              bp.Linear(16, 14, rng=rng, dtype=np.float64), bp.Tanh(),
              bp.Linear(14, 12, rng=rng, dtype=np.float64), bp.GELU(),
              bp.Linear(12, 12, rng=rng, dtype=np.float64), bp.ReLU(),
              bp.Linear(12, 10, rng=rng, dtype=np.float64)]
    for W in (layer.W for layer in layers if hasattr(layer, "W")):
        W *= 4  # larger weights, so that every activation works outside its linear part
    path = tmp_path_factory.mktemp("every-kind") / "model.npz"
    bp.save(bp.Sequential(layers), path)
    return path


def embedded_model(text):
    """The model as the page embeds it, each W decoded to an array."""
    found = re.search(r'<script type="application/json" id="model">(.*?)</script>', text, re.S)
    model = json.loads(found.group(1))
    for layer in model["layers"]:
        if "W" in layer:
            raw = np.frombuffer(base64.b64decode(layer["W"]), dtype=np.dtype(model["dtype"]).newbyteorder("<"))
            outputs = layer.get("out", layer.get("out_channels"))  # a Linear's or a Conv2d's columns
            layer["W"] = raw.reshape(-1, outputs)
    return model


# --- the page ----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["trained", "every_kind"])
def test_the_page_embeds_the_models_layers_and_exact_weights(model, request, tmp_path):
    net = bp.load(request.getfixturevalue(model))
    page = bp.write_draw_page(net, tmp_path / "page.html")
    assert page == tmp_path / "page.html"
    embedded = embedded_model(page.read_text(encoding="utf-8"))
    assert embedded["dtype"] == net.dtype.name
    assert [{k: v for k, v in layer.items() if k != "W"} for layer in embedded["layers"]] == [
        {"type": type(layer).__name__, **layer.spec()} for layer in net.layers]
    weights = [layer["W"] for layer in embedded["layers"] if "W" in layer]
    assert len(weights) == len(net.params())
    for W_page, W in zip(weights, net.params()):
        assert W_page.dtype == W.dtype and np.array_equal(W_page, W)  # bit for bit


def test_the_page_is_self_contained(trained, tmp_path):
    text = bp.write_draw_page(bp.load(trained), tmp_path / "page.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link" not in text and "@import" not in text
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", text)  # nothing fetched from the network
    assert 'id="pad"' in text and 'id="seen"' in text and ">Clear</button>" in text
    assert "__MODEL__" not in text


def test_the_page_has_a_function_for_every_layer_bareprop_has():
    assert sorted(KINDS) == sorted(cls.__name__ for cls in LAYERS)
    table = re.search(r"const LAYERS = \{(.*?)\};", TEMPLATE.read_text(encoding="utf-8"), re.S).group(1)
    assert sorted(re.findall(r"(\w+):", table)) == sorted(KINDS)


class Square:
    """A layer the page has no function for."""

    def spec(self):
        return {}


def test_nets_the_page_cannot_run_are_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(0)
    cases = [
        (bp.Sequential([bp.Linear(784, 10, rng=rng), Square()]), "no function for the layer"),
        (bp.Sequential([bp.Linear(784, 10, rng=rng)], bp.MSE()), "this net's loss is MSE"),
        (bp.NeuralNet((10, 4, 3), rng=rng), "needs a net of 784 inputs (a 28x28 image); this one takes 10"),
    ]
    for net, message in cases:
        with pytest.raises(DrawError, match=re.escape(message)) as error:
            bp.write_draw_page(net, tmp_path / "page.html")
        assert "\n" not in str(error.value)
    assert not (tmp_path / "page.html").exists()


# --- the command -------------------------------------------------------------------------

def test_draw_writes_the_page_beside_the_model_or_where_asked(trained, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.npz").write_bytes(trained.read_bytes())
    assert main(["draw", str(run_dir / "model.npz")]) == 0
    assert capsys.readouterr().out == f"page in {(run_dir / 'draw.html').resolve()}\n"
    first = (run_dir / "draw.html").read_text(encoding="utf-8")
    (run_dir / "draw.html").unlink()
    assert main(["draw", str(run_dir)]) == 0  # a run folder: its model.npz
    assert capsys.readouterr().out == f"page in {(run_dir / 'draw.html').resolve()}\n"
    assert (run_dir / "draw.html").read_text(encoding="utf-8") == first
    assert main(["draw", str(trained), "--output", str(tmp_path / "mine.html")]) == 0
    assert capsys.readouterr().out == f"page in {(tmp_path / 'mine.html').resolve()}\n"
    assert (tmp_path / "mine.html").read_text(encoding="utf-8") == first


def test_draw_with_a_bad_model_or_output_is_one_line_and_exit_2(trained, tmp_path, capsys):
    small = tmp_path / "small.npz"
    bp.save(bp.NeuralNet((10, 4, 3), rng=np.random.default_rng(0)), small)
    (tmp_path / "junk.npz").write_text("not a model")
    cases = [
        ([str(tmp_path / "absent.npz")], f"{tmp_path / 'absent.npz'}: cannot read (No such file or directory)"),
        ([str(tmp_path)], f"{tmp_path / 'model.npz'}: cannot read (No such file or directory)"),
        ([str(tmp_path / "junk.npz")], f"{tmp_path / 'junk.npz'}: not a model file (.npz archive)"),
        ([str(small)], "the draw page needs a net of 784 inputs (a 28x28 image); this one takes 10"),
        ([str(trained), "--output", str(tmp_path / "absent" / "page.html")],
         f"{tmp_path / 'absent' / 'page.html'}: cannot write (No such file or directory)"),
    ]
    for argv, message in cases:
        assert main(["draw", *argv]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == f"bareprop: error: {message}\n", argv


# --- a real browser ----------------------------------------------------------------------

SEVEN = [[(60, 60), (215, 55)], [(215, 55), (170, 140), (125, 235)]]  # two strokes, in the pad's pixels


def pointer_path(strokes, step=8):
    """Each stroke as the points a pointer passes through, about `step` pixels apart."""
    paths = []
    for corners in strokes:
        points = [corners[0]]
        for (x0, y0), (x1, y1) in zip(corners, corners[1:]):
            n = max(1, round(np.hypot(x1 - x0, y1 - y0) / step))
            points += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
        paths.append(points)
    return paths


# Put last in <body>: draws `strokes` with pointer events, then writes what the page computed.
DRAW = """<script>
(function () {
  const pad = document.getElementById("pad"), box = pad.getBoundingClientRect();
  const fire = (type, [x, y]) => pad.dispatchEvent(new PointerEvent(type, {
    pointerId: 7, pointerType: "touch", isPrimary: true, bubbles: true, cancelable: true,
    clientX: box.left + x * box.width / pad.width, clientY: box.top + y * box.height / pad.height}));
  const float32 = (a) => {  // base64 of the float32 bytes: exact, and short
    const bytes = new Uint8Array(Float32Array.from(a).buffer);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  };
  const blank = window.bareprop.probabilities;
  const live = [];  // the best guess after each pointer event, as it changes
  for (const stroke of STROKES) {
    fire("pointerdown", stroke[0]);
    for (const point of stroke.slice(1)) {
      fire("pointermove", point);
      live.push(window.bareprop.probabilities.indexOf(Math.max(...window.bareprop.probabilities)));
    }
    fire("pointerup", stroke.at(-1));
  }
  const b = window.bareprop;
  const seen = {
    blank, live, errors: window.__errors,
    grey: float32(b.grey), height: pad.height, width: pad.width, input28: float32(b.input28),
    probabilities: Array.from(b.probabilities), png: pad.toDataURL("image/png"),
    shown: [...document.querySelectorAll("#probabilities .p")].map((p) => p.textContent),
    best: [...document.querySelectorAll("#probabilities .best")].map((row) => row.firstChild.textContent),
  };
  document.getElementById("clear").click();
  seen.cleared = {input28: b.input28, probabilities: b.probabilities,
                  shown: [...document.querySelectorAll("#probabilities .p")].map((p) => p.textContent)};
  const out = document.createElement("pre");
  out.id = "__result";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
})();
</script>"""


def float32s(text):
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


@pytest.mark.browser
@pytest.mark.parametrize("model", ["trained", "every_kind"])
def test_a_headless_browser_classifies_a_drawn_digit_as_predict_does(model, request, tmp_path, capsys):
    model_path = request.getfixturevalue(model)
    net = bp.load(model_path)
    text = bp.write_draw_page(net, tmp_path / "draw.html").read_text(encoding="utf-8")
    head, tail = text.rsplit("</body>", 1)
    probed = tmp_path / "probed.html"
    probed.write_text(head.replace("<head>", "<head>" + CATCH_ERRORS, 1)
                      + DRAW.replace("STROKES", json.dumps(pointer_path(SEVEN))) + "</body>" + tail, encoding="utf-8")
    result = run_chromium(tmp_path, "--window-size=1000,800", "--dump-dom", probed.as_uri())
    found = re.search(r'<pre id="__result">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stderr[-2000:]
    seen = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert seen["errors"] == []
    assert not re.search(r"CONSOLE.*(Uncaught|Error)", result.stderr), result.stderr[-2000:]

    # the preprocessing: bareprop.mnist_digit of the very greyscale image the page read from its pad
    grey = float32s(seen["grey"]).reshape(seen["height"], seen["width"])  # (280, 280)
    assert grey.min() < 1 and np.median(grey) > 254  # black ink on white
    x = float32s(seen["input28"])  # (784,): the page's input to the network
    np.testing.assert_allclose(x, bp.mnist_digit(grey), rtol=0, atol=1e-5)
    # ... and `bareprop predict`'s read_digit of the pad saved as a PNG
    png = tmp_path / "pad.png"
    png.write_bytes(base64.b64decode(seen["png"].split(",", 1)[1]))
    np.testing.assert_allclose(x, bp.read_digit(png), rtol=0, atol=1e-5)

    # the forward pass: the Python net's probabilities on the page's input
    probs = net.predict_proba(x[np.newaxis])[0]  # (10,)
    np.testing.assert_allclose(seen["probabilities"], probs, rtol=0, atol=1e-5)
    assert main(["predict", str(model_path), str(png)]) == 0  # the command itself, on the pad's PNG
    assert capsys.readouterr().out == prediction_line(png, seen["probabilities"]) + "\n"
    assert seen["shown"] == [f"{p:.3f}" for p in seen["probabilities"]]
    assert seen["best"] == [str(int(np.argmax(seen["probabilities"])))]

    assert seen["blank"] is None  # nothing drawn yet: no probabilities
    assert len(seen["live"]) == sum(len(stroke) - 1 for stroke in pointer_path(SEVEN))  # one per pointermove
    assert seen["cleared"] == {"input28": None, "probabilities": None, "shown": ["-"] * 10}
    if model == "trained":
        assert seen["live"][-1] == 7  # even one epoch on 6,000 images knows a 7

