"""The files `bareprop train` keeps: model.npz, run.json, and `--config run.json` repeating a run."""

import json
import platform

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli import main
from bareprop.data.mnist import SHA256


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "first"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--seed", "7", "--no-plot", "--output", str(out)]) == 0
    return out


def test_train_saves_a_model_that_loads_and_scores_as_trained(small_run):
    net = bp.load(small_run / "model.npz")
    assert net.sizes == (784, 8, 10) and net.lr == 0.001
    manifest = json.loads((small_run / "run.json").read_text())
    X_test, y_test = bp.load_mnist("test")
    acc, loss = net.score(X_test, y_test)
    assert acc == manifest["history"]["test_acc"][-1]
    assert loss == pytest.approx(manifest["history"]["test_loss"][-1], rel=1e-6)  # BLAS threads: another sum order


def test_the_manifest_records_config_seed_versions_data_and_metrics(small_run):
    m = json.loads((small_run / "run.json").read_text())
    assert m["format"] == "bareprop-run" and m["version"] == 1
    assert m["config"]["epochs"] == 2 and m["config"]["hidden"] == 8 and m["config"]["plot"] is False
    assert m["seed"] == m["config"]["seed"] == 7
    assert m["versions"] == {"python": platform.python_version(), "numpy": np.__version__, "bareprop": bp.__version__}
    assert m["data"] == {f"mnist/{k}": v for k, v in SHA256.items()}
    h = m["history"]
    assert h["epoch"] == [0, 1] and len(h["train_loss"]) == len(h["test_acc"]) == len(h["seconds"]) == 2
    assert [len(row) for row in h["weight_norm"]] == [2, 2] and [len(row) for row in h["grad_norm"]] == [2, 2]
    assert m["seconds"] >= sum(h["seconds"])


def test_config_repeats_the_run_with_the_same_numbers(small_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "--config", str(small_run / "run.json"), "--output", str(tmp_path / "again")]) == 0
    first = json.loads((small_run / "run.json").read_text())
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    assert again["config"] == {**first["config"], "output": str(tmp_path / "again")}
    for key in ["train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "grad_norm"]:
        assert again["history"][key] == first["history"][key], key
    for a, b in zip(bp.load(small_run / "model.npz").params(), bp.load(tmp_path / "again" / "model.npz").params()):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "again" / "chart.png").exists()  # --no-plot came from the file too


def test_flags_override_the_config(small_run, tmp_path):
    assert main(["train", "--config", str(small_run / "run.json"), "--epochs", "1",
                 "--output", str(tmp_path / "short")]) == 0
    m = json.loads((tmp_path / "short" / "run.json").read_text())
    assert m["config"]["epochs"] == 1 and m["config"]["hidden"] == 8 and m["config"]["seed"] == 7


def bad_config(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize("name, content, message", [
    ("text.json", "{not json", "not valid JSON"),
    ("other.json", {"format": "something"}, "not a bareprop run manifest"),
    ("v9.json", {"format": "bareprop-run", "version": 9, "config": {}}, "manifest version 9 is not supported"),
    ("noconfig.json", {"format": "bareprop-run", "version": 1}, "no \"config\" object"),
    ("unknown.json", {"format": "bareprop-run", "version": 1, "config": {"bogus": 0.9}}, "unknown setting bogus"),
    ("type.json", {"format": "bareprop-run", "version": 1, "config": {"epochs": "ten"}},
     "setting epochs = \"ten\" is not an integer"),
    ("zero.json", {"format": "bareprop-run", "version": 1, "config": {"epochs": 0}},
     "setting epochs: must be positive"),
])
def test_a_bad_config_is_a_one_line_error_naming_the_file(tmp_path, capsys, name, content, message):
    path = bad_config(tmp_path, name, content)
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert str(path) in captured.err and message in captured.err, captured.err


def test_a_missing_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json: cannot read (No such file or directory)" in err


def test_evaluate_prints_loss_accuracy_and_a_row_per_class(small_run, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(small_run / "model.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    h = json.loads((small_run / "run.json").read_text())["history"]
    assert lines[0] == (f"test loss {h['test_loss'][-1]:.4f} | accuracy {h['test_acc'][-1]:.4f} "
                        f"({round(h['test_acc'][-1] * 10000)} of 10000)")
    assert lines[1].split() == ["class", "examples", "correct", "accuracy"]
    rows = [line.split() for line in lines[2:]]
    _, y_test = bp.load_mnist("test")
    assert [int(r[0]) for r in rows] == list(range(10))
    assert [int(r[1]) for r in rows] == list(np.bincount(y_test))
    assert sum(int(r[2]) for r in rows) == round(h["test_acc"][-1] * 10000)
    assert all(float(r[3]) == pytest.approx(int(r[2]) / int(r[1]), abs=5e-4) for r in rows)


def test_evaluate_a_bad_model_is_one_line(tmp_path, capsys):
    (tmp_path / "m.npz").write_text("nonsense")
    assert main(["evaluate", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err == f"bareprop: error: {tmp_path / 'm.npz'}: not a model file (.npz archive)\n"


@pytest.mark.parametrize("command, message", [
    ("evaluate", "the model maps 6 inputs to 3 classes; mnist needs 784 to 10"),
    ("predict", "the model takes 6 inputs, not a 28x28 image"),
])
def test_a_model_of_the_wrong_shape_is_a_one_line_error(tmp_path, capsys, command, message):
    model = tmp_path / "small.npz"
    bp.NeuralNet((6, 4, 3), rng=np.random.default_rng(0)).save(model)
    images = [str(tmp_path / "digit.png")] if command == "predict" else []
    assert main([command, str(model), *images]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"bareprop: error: {model}: {message}\n"
