"""The network and optimizer flags of `bareprop train`: flags -> RunConfig, a run end to end, bad input;
and a saved model's `evaluate` and `predict`, for people and (--json) for programs.
(RunConfig -> layers and optimizers is tests/test_experiment.py's.)"""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
from loopback import gz, like, tiny_payloads
from PIL import Image, ImageDraw

import bareprop as bp
from bareprop import load
from bareprop.cli import main
from bareprop.data.datasets import DATASETS, FILES
from bareprop.cli.main import build_parser
from bareprop.cli.train import run_config
from bareprop.experiment import RunConfig


def config(*argv):
    return run_config(build_parser().parse_args(["train", *argv]))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *args], capture_output=True, text=True, timeout=600)


def test_no_flags_is_the_default_config():
    assert config() == RunConfig()
    assert config().resolved() == RunConfig(hidden=32, weight_decay=0.0)


def test_every_flag_sets_its_setting():
    c = config("--epochs", "3", "--batch-size", "128", "--lr", "0.003", "--seed", "9", "--layers", "784,64,32,10",
               "--activation", "leaky_relu", "--init", "he", "--dropout", "0.2", "--optimizer", "momentum",
               "--momentum", "0.8", "--nesterov", "--weight-decay", "1e-4", "--schedule", "cosine", "--warmup", "20",
               "--path", "readable", "--threads", "2", "--no-plot", "--output", "out", "--dataset", "kmnist",
               "--data-dir", "cache", "--offline", "--quiet", "--log-json", "log.jsonl")
    assert c == RunConfig(epochs=3, batch_size=128, lr=0.003, seed=9, layers=(784, 64, 32, 10), activation="leaky_relu",
                          init="he", dropout=0.2, optimizer="momentum", momentum=0.8, nesterov=True, weight_decay=1e-4,
                          schedule="cosine", warmup=20, path="readable", threads=2, plot=False, output="out",
                          dataset="kmnist", data_dir="cache", offline=True)
    assert config("--hidden", "7").hidden == 7 and config("--optimizer", "adamw").resolved().weight_decay == 0.01


def lines(*argv, capsys):
    assert main(["train", "--epochs", "1", "--no-plot", *argv]) == 0
    return [line.rsplit(" | ", 1)[0] for line in capsys.readouterr().out.splitlines()[:-1]]  # times aside


def test_layers_equal_to_hidden_is_the_same_run(tmp_path, capsys):
    assert (lines("--hidden", "8", "--output", str(tmp_path / "a"), capsys=capsys)
            == lines("--layers", "784,8,10", "--output", str(tmp_path / "b"), capsys=capsys))


def test_deep_net_with_adamw_cosine_warmup_and_dropout_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--epochs", "1", "--batch-size", "128", "--layers", "784,48,24,10", "--activation", "gelu",
                     "--init", "he", "--dropout", "0.1", "--optimizer", "adamw", "--lr", "0.002", "--schedule", "cosine",
                     "--warmup", "40", "--no-plot", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "; readable path, 1 thread; " in result.stdout.splitlines()[-1]  # the kernel takes plain SGD only
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["layers"] == [784, 48, 24, 10] and manifest["config"]["weight_decay"] == 0.01
    assert manifest["config"]["hidden"] is None and manifest["path"] == "readable"
    assert manifest["history"]["test_acc"][0] >= 0.93
    net = load(out / "model.npz")  # the saved model records the new layers and loads back
    assert repr(net) == ("NeuralNet(Linear(784, 48), GELU(), Dropout(0.1), Linear(48, 24), GELU(), Dropout(0.1), "
                         "Linear(24, 10), SoftmaxCrossEntropy())")
    evaluated = run_cli("evaluate", str(out / "model.npz"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"accuracy {manifest['history']['test_acc'][0]:.4f}" in evaluated.stdout  # Dropout off, as in training's test


def test_config_repeats_a_run_with_the_new_flags(tmp_path, capsys):
    first = lines("--layers", "784,16,12,10", "--activation", "tanh", "--dropout", "0.1", "--optimizer", "momentum",
                  "--nesterov", "--schedule", "step", "--warmup", "5", "--output", str(tmp_path / "a"), capsys=capsys)
    assert first == lines("--config", str(tmp_path / "a" / "run.json"), "--output", str(tmp_path / "b"), capsys=capsys)


def one_line_error(capsys, *argv):
    """Run the CLI in this process; its error: one line on stderr, nothing on stdout, exit code 2."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's errors
        code = e.code
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and captured.err.count("\n") == 1, captured
    return captured.err


@pytest.mark.parametrize("args, message", [
    (["--hidden", "64", "--layers", "784,64,10"], "give either hidden or layers, not both"),
    (["--layers", "700,64,10"], "layers must start at 784 (the pixels) and end at 10 (the classes of mnist), got 700,64,10"),
    (["--layers", "784,64,9"], "layers must start at 784"),
    (["--layers", "784,sixty,10"], "--layers: expected widths separated by commas"),
    (["--layers", "784,0,10"], "--layers: expected two or more positive widths"),
    (["--layers", "784"], "--layers: expected two or more positive widths"),
    (["--dropout", "1"], "--dropout: must lie in [0, 1), got 1"),
    (["--dropout", "-0.2"], "--dropout: must lie in [0, 1)"),
    (["--dropout", "nan"], "--dropout: must lie in [0, 1)"),
    (["--layers", "784,10", "--dropout", "0.5"], "dropout needs a hidden layer: layers 784,10 has none"),
    (["--weight-decay=-1e-4"], "--weight-decay: must be >= 0"),
    (["--momentum", "0.9"], "momentum applies only to optimizer 'momentum', not 'sgd'"),
    (["--optimizer", "adam", "--nesterov"], "nesterov applies only to optimizer 'momentum', not 'adam'"),
    (["--optimizer", "momentum", "--momentum", "1"], "--momentum: must lie in [0, 1)"),
    (["--optimizer", "momentum", "--momentum", "0", "--nesterov"], "nesterov needs a momentum above 0"),
    (["--optimizer", "rmsprop"], "--optimizer: invalid choice: 'rmsprop'"),
    (["--activation", "swish"], "--activation: invalid choice: 'swish'"),
    (["--schedule", "linear"], "--schedule: invalid choice: 'linear'"),
    (["--init", "lecun"], "--init: invalid choice: 'lecun'"),
    (["--warmup", "-3"], "--warmup: must be >= 0"),
    (["--epochs", "1", "--warmup", "938"], "warmup 938 is not shorter than the run (938 steps)"),
])
def test_bad_combinations_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    err = one_line_error(capsys, "train", *args, "--output", str(tmp_path / "run"))
    assert err.startswith("bareprop") and message in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("setting, message", [
    ({"activation": "swish"}, "activation must be one of relu, leaky_relu, sigmoid, tanh, gelu, got 'swish'"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum, adam, adamw, got 'rmsprop'"),
    ({"dropout": 1.5}, "dropout must be a number in [0, 1), got 1.5"),
    ({"layers": "784,x,10"}, "layers must be two or more positive widths, such as 784,256,10, got '784,x,10'"),
    ({"layers": [784, 64, 10], "hidden": 64}, "give either hidden or layers, not both"),
])
def test_bad_new_settings_in_a_run_json_are_one_line_errors(tmp_path, capsys, setting, message):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"format": "bareprop-run", "version": 1, "config": setting}))
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"bareprop: error: {path}: {message}\n"


def strict_json(text):
    """Parsed JSON, refusing NaN and Infinity (not JSON, though Python writes them)."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))


@pytest.fixture
def always_three(tmp_path):
    """A model that answers 3 for every image: its last layer's weights are 0 but for class 3's column, whose
    logit is then the ones column's 1 plus the hidden activations (>= 0), more than the others' 0."""
    net = bp.NeuralNet((784, 4, 10), rng=np.random.default_rng(0))
    W = net.params()[-1]  # (4+1, 10)
    W[:] = 0
    W[:, 3] = 1
    path = tmp_path / "three.npz"
    bp.save(net, path)
    return path


def test_evaluate_prints_precision_recall_and_f1_of_each_class(always_three, capsys):
    assert main(["evaluate", str(always_three)]) == 0
    head, header, *rows = capsys.readouterr().out.splitlines()
    _, y_test = bp.load_mnist("test")
    support = np.bincount(y_test)  # (10,): 980, 1135, 1032, 1010, ...
    assert head.endswith(f"| accuracy 0.1010 ({support[3]} of 10000)")
    assert header.split() == ["class", "examples", "correct", "precision", "recall", "f1"]
    # every image is called a 3: class 3 has precision 1010/10000, recall 1, F1 2*1010 / (1010 + 10000);
    # the others were never predicted (no precision: nan) and never right (recall 0, F1 0)
    assert rows[3].split() == ["3", "1010", "1010", "0.101", "1.000", f"{2 * 1010 / 11010:.3f}"]
    for k in (0, 1, 2, 4, 5, 6, 7, 8, 9):
        assert rows[k].split() == [str(k), str(support[k]), "0", "nan", "0.000", "0.000"]


def test_evaluate_json_has_every_figure_and_nan_is_null(always_three, capsys):
    assert main(["evaluate", str(always_three), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one object, on one line
    result = strict_json(out)
    _, y_test = bp.load_mnist("test")
    support = np.bincount(y_test)  # (10,)
    accuracy, loss = bp.load(always_three).score(*bp.load_mnist("test"))
    assert {k: result[k] for k in ("model", "dataset", "n", "correct", "accuracy")} == {
        "model": str(always_three), "dataset": "mnist", "n": 10000, "correct": 1010, "accuracy": 0.101}
    assert result["loss"] == pytest.approx(loss) and accuracy == 0.101
    assert result["confusion"] == [[0, 0, 0, int(n), 0, 0, 0, 0, 0, 0] for n in support]  # C[true][predicted]
    assert result["classes"][3] == {"class": 3, "name": "3", "support": 1010, "correct": 1010,
                                    "precision": 0.101, "recall": 1.0, "f1": pytest.approx(2020 / 11010)}
    assert result["classes"][0] == {"class": 0, "name": "0", "support": 980, "correct": 0,
                                    "precision": None, "recall": 0.0, "f1": 0.0}
    assert [c["support"] for c in result["classes"]] == support.tolist()


def test_evaluate_reads_only_the_test_split_and_takes_offline(always_three, tmp_path, capsys, monkeypatch, isolated):
    """kmnist (here with the test's files) scored from a cache holding only its two test files."""
    files = gz(tiny_payloads(n_train=12, n_test=20, classes=10))
    monkeypatch.setitem(DATASETS, "kmnist", like(DATASETS["kmnist"], files))
    folder = tmp_path / "cache" / "kmnist"
    folder.mkdir(parents=True)
    for f in FILES["test"]:
        (folder / f).write_bytes(files[f])
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("a connection was opened"))
    args = ["evaluate", str(always_three), "--dataset", "kmnist", "--data-dir", str(tmp_path / "cache"), "--offline"]
    assert main([*args, "--json"]) == 0
    result = strict_json(capsys.readouterr().out)
    assert (result["n"], result["correct"], result["classes"][3]["name"]) == (20, 2, "tsu (つ)")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES["test"], "manifest.json"])

    assert main([*args[:-3], "--data-dir", str(tmp_path / "empty"), "--offline"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("bareprop: error: kmnist is not in the cache and downloads are off (--offline")


def digit_one(path):
    image = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(image).line((30, 6, 30, 54), fill=0, width=5)
    image.save(path)
    return str(path)


def test_predict_json_is_one_object_per_image(always_three, tmp_path, capsys):
    one, two = digit_one(tmp_path / "one.png"), digit_one(tmp_path / "two.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    assert main(["predict", str(always_three), one, str(tmp_path / "notes.txt"), two, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"bareprop: error: {tmp_path / 'notes.txt'}: not an image Pillow can read (PNG, JPEG, ...)\n"
    first, second = (strict_json(line) for line in captured.out.splitlines())  # JSON Lines: the readable ones
    assert set(first) == {"file", "predicted", "probabilities"}
    assert (first["file"], first["predicted"], second["file"]) == (one, 3, two)
    expected = bp.load(always_three).predict_proba(bp.read_digit(one)[np.newaxis])[0]  # (10,)
    assert first["probabilities"] == expected.tolist() and len(first["probabilities"]) == 10
