"""A convolutional net from the command line (`--net`): flags -> RunConfig -> the net, a run end to end on a
small dataset (the report drawing the first convolution's filters), the model saved and loaded, evaluated,
asked about a picture, and the run repeated from its run.json. The convolutional recipe's accuracy on MNIST
is tests/test_recipe.py's."""

import json

import numpy as np
import pytest
from loopback import gz, like, tiny_payloads
from PIL import Image, ImageDraw

import bareprop as bp
from bareprop.cli import main
from bareprop.cli.main import build_parser
from bareprop.cli.train import run_config
from bareprop.data.datasets import DATASETS, FILES
from bareprop.experiment import ConfigError, RunConfig
from bareprop.experiment.config import NETS, build_net


def config(*argv):
    return run_config(build_parser().parse_args(["train", *argv]))


def test_net_is_a_setting_that_replaces_hidden_and_layers_and_a_preset_is_recorded_in_full():
    assert config("--net", "conv:8:3,pool:2").net == "conv:8:3,pool:2"
    assert config("--net", "cnn").resolved().net == NETS["cnn"] and config("--net", "cnn").resolved().hidden is None
    assert config("--net", "cnn").resolved().to_dict()["net"] == "conv:8:5,pool:2,conv:16:5,pool:2,dense:64"


def test_the_net_a_spec_builds_layer_by_layer():
    net = build_net(RunConfig(net="conv:4:5,pool:2,conv:6:3,pool:3,dense:12", dropout=0.25, init="he"),
                    np.random.default_rng(0))
    assert repr(net) == ("Sequential(Reshape((1, 28, 28)), Conv2d(1, 4, 5, stride=1, padding=2), ReLU(), "
                         "MaxPool2d(2, stride=2), Conv2d(4, 6, 3, stride=1, padding=1), ReLU(), MaxPool2d(3, stride=3), "
                         "Flatten(), Linear(96, 12), ReLU(), Dropout(0.25), Linear(12, 10), SoftmaxCrossEntropy())")
    assert net.predict_proba(np.zeros((2, 784), np.float32)).shape == (2, 10)  # 6 channels of 4x4 = 96 rows in


@pytest.mark.parametrize("spec, message", [
    ("conv:16", "net must be layers such as conv:16:5,pool:2,dense:128"),
    ("conv:8:3,dense:10,pool:2", "a conv or pool after a dense layer"),
    ("conv:4:3,pool:7,pool:5", "pool:5 does not fit the 4x4 images the layers before it give"),
    ("conv:0:3", "net must be layers"),
    ("unet", "got 'unet' in 'unet'"),
])
def test_a_bad_net_is_a_one_line_error_naming_it(spec, message, capsys):
    with pytest.raises(ConfigError, match=message):
        RunConfig(net=spec)
    assert main(["train", "--net", spec, "--no-plot"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message.split(" such")[0] in captured.err


@pytest.mark.parametrize("flags, message", [
    (["--hidden", "8"], "give either net or hidden and layers, not both"),
    (["--dropout", "0.2"], "dropout needs a hidden layer: net conv:4:3 has no dense layer"),
])
def test_net_refuses_what_cannot_go_with_it(flags, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(net="conv:4:3", **{"hidden": 8} if "--hidden" in flags else {"dropout": 0.2})


@pytest.fixture
def small_kmnist(tmp_path, monkeypatch):
    """kmnist as 96 training and 24 test images of noise (28x28), in a cache of its own: --data-dir."""
    files = gz(tiny_payloads(n_train=96, n_test=24, classes=10))
    monkeypatch.setitem(DATASETS, "kmnist", like(DATASETS["kmnist"], files))
    folder = tmp_path / "cache" / "kmnist"
    folder.mkdir(parents=True)
    for f in FILES["train"] + FILES["test"]:
        (folder / f).write_bytes(files[f])
    return ["--dataset", "kmnist", "--data-dir", str(tmp_path / "cache"), "--offline"]


def test_a_cnn_trains_from_the_command_line_and_its_model_is_evaluated_asked_and_repeated(small_kmnist, tmp_path,
                                                                                         capsys):
    out = tmp_path / "run"
    argv = ["train", "--net", "conv:3:5,pool:2,dense:8", "--epochs", "2", "--batch-size", "16", "--optimizer", "adam",
            "--lr", "0.001", *small_kmnist]
    assert main([*argv, "--output", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()
    assert "; readable path, 1 thread; " in first[-1]  # 3 channels: the compiled twin takes multiples of 8
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["net"] == "conv:3:5,pool:2,dense:8" and manifest["config"]["hidden"] is None
    net = bp.load(out / "model.npz")
    assert repr(net) == ("Sequential(Reshape((1, 28, 28)), Conv2d(1, 3, 5, stride=1, padding=2), ReLU(), "
                         "MaxPool2d(2, stride=2), Flatten(), Linear(588, 8), ReLU(), Linear(8, 10), SoftmaxCrossEntropy())")
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "The first convolution&#x27;s filters" in report and report.count("<title>filter ") == 3  # one picture per filter
    assert (out / "draw.html").exists()  # the draw page runs a CNN too (tests/test_draw.py)

    assert main(["evaluate", str(out / "model.npz"), *small_kmnist, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n"] == 24 and evaluated["accuracy"] == pytest.approx(manifest["history"]["test_acc"][-1])

    picture = tmp_path / "one.png"
    image = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(image).line((30, 6, 30, 54), fill=0, width=5)
    image.save(picture)
    assert main(["predict", str(out / "model.npz"), str(picture), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert sum(answer["probabilities"]) == pytest.approx(1) and len(answer["probabilities"]) == 10

    assert main(["train", "--config", str(out / "run.json"), *small_kmnist, "--output", str(tmp_path / "again")]) == 0
    again = capsys.readouterr().out.splitlines()
    assert [line.rsplit(" | ", 1)[0] for line in again[:-1]] == [line.rsplit(" | ", 1)[0] for line in first[:-1]]


def test_a_cnn_of_channels_in_eights_trains_on_the_compiled_twin_and_says_so(small_kmnist, tmp_path, capsys):
    """--net with 8 and 16 channels: the compiled twin (fast/conv.py) by default, named in the last line and
    run.json with its instructions; --path readable gives the same figures to rounding."""
    from bareprop.fast.conv import _conv

    argv = ["train", "--net", "conv:8:3,pool:2,conv:16:3,pool:2,dense:8", "--epochs", "1", "--batch-size", "16",
            "--no-plot", *small_kmnist]
    assert main([*argv, "--output", str(tmp_path / "twin")]) == 0
    assert "; kernel path, 1 thread; " in capsys.readouterr().out.splitlines()[-1]
    twin = json.loads((tmp_path / "twin" / "run.json").read_text())
    assert (twin["path"], twin["kernel_isa"]) == ("kernel", _conv.ISA)
    assert main([*argv, "--path", "readable", "--output", str(tmp_path / "readable")]) == 0
    assert "; readable path, 1 thread; " in capsys.readouterr().out.splitlines()[-1]
    readable = json.loads((tmp_path / "readable" / "run.json").read_text())
    assert readable["kernel_isa"] is None
    np.testing.assert_allclose(twin["history"]["train_loss"], readable["history"]["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(twin["history"]["test_loss"], readable["history"]["test_loss"], rtol=1e-4)
