"""The files `bareprop train` keeps: model.npz, run.json, and `--config run.json` repeating a run."""

import json
import platform
import re

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli import main
from bareprop.data.mnist import SHA256
from bareprop.experiment import RunConfig
from bareprop.fast import kernel


def manifest_of(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_train_saves_a_model_that_loads_and_scores_as_trained(cli_run):
    net = bp.load(cli_run.out / "model.npz")
    assert net.sizes == (784, 32, 10)
    manifest = manifest_of(cli_run.out)
    X_test, y_test = bp.load_mnist("test")
    acc, loss = net.score(X_test, y_test)
    assert acc == manifest["history"]["test_acc"][-1]
    assert loss == pytest.approx(manifest["history"]["test_loss"][-1], rel=1e-5)  # the kernel sums in its own order


def test_the_manifest_records_config_seed_path_versions_data_and_metrics(cli_run):
    text = (cli_run.out / "run.json").read_text()
    m = json.loads(text, parse_constant=lambda name: pytest.fail(f"run.json holds {name}: not strict JSON"))
    assert m["format"] == "bareprop-run" and m["version"] == 1
    assert m["config"] == RunConfig(epochs=1, output=str(cli_run.out)).resolved().to_dict()
    assert m["config"]["hidden"] == 32 and m["config"]["threads"] == 1 and m["config"]["path"] == "auto"
    assert m["seed"] == m["config"]["seed"] == 0
    assert (m["path"], m["threads"]) == (m["history"]["path"], m["history"]["threads"]) == ("kernel", 1)
    assert m["kernel_isa"] == kernel._kernel.ISA  # the kernel ran: what it was built for ("avx2+fma", ...)
    assert m["versions"] == {"python": platform.python_version(), "numpy": np.__version__, "bareprop": bp.__version__}
    assert m["data"] == {f"mnist/{k}": v for k, v in SHA256.items()}
    h = m["history"]
    assert h["epoch"] == [0] and len(h["train_loss"]) == len(h["test_acc"]) == len(h["seconds"]) == 1
    assert [len(row) for row in h["weight_norm"]] == [2] and [len(row) for row in h["grad_norm"]] == [2]
    assert m["seconds"] >= sum(h["seconds"])


def test_the_table_run_json_and_the_charts_number_epochs_alike(cli_run):
    """One numbering, the post's (from 0), in what it prints, run.json's history and the report's charts
    (the live bar's `epoch 0 of 0-0`: test_progress.py)."""
    printed = [int(re.match(r"epoch: (\d+) \| ", line).group(1)) for line in cli_run.lines[:-1]]
    page = (cli_run.out / "report.html").read_text(encoding="utf-8")
    charted = sorted({int(epoch) for epoch in re.findall(r"<title>epoch (\d+), ", page)})
    assert printed == manifest_of(cli_run.out)["history"]["epoch"] == charted == [0]


def test_config_repeats_the_run_with_the_same_numbers(cli_run, tmp_path, capsys):
    again = tmp_path / "again"
    assert main(["train", "--config", str(cli_run.out / "run.json"), "--no-plot", "--output", str(again)]) == 0
    assert capsys.readouterr().out.splitlines()[0].rsplit(" | ", 1)[0] == cli_run.lines[0].rsplit(" | ", 1)[0]
    first, second = manifest_of(cli_run.out), manifest_of(again)
    assert second["config"] == {**first["config"], "output": str(again), "plot": False}
    for key in ["train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "grad_norm"]:
        assert second["history"][key] == first["history"][key], key
    for a, b in zip(bp.load(cli_run.out / "model.npz").params(), bp.load(again / "model.npz").params(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert {p.name for p in again.iterdir()} == {"model.npz", "run.json"}

    repeat = tmp_path / "repeat"  # and a setting from the file: --no-plot comes from the second run's run.json
    assert main(["train", "--config", str(again / "run.json"), "--quiet", "--output", str(repeat)]) == 0
    assert manifest_of(repeat)["config"]["plot"] is False and not (repeat / "report.html").exists()


def test_flags_override_the_config(cli_run, tmp_path):
    assert main(["train", "--config", str(cli_run.out / "run.json"), "--hidden", "8", "--seed", "5", "--no-plot",
                 "--quiet", "--output", str(tmp_path / "other")]) == 0
    m = manifest_of(tmp_path / "other")
    assert (m["config"]["epochs"], m["config"]["hidden"], m["config"]["seed"]) == (1, 8, 5)
    assert bp.load(tmp_path / "other" / "model.npz").sizes == (784, 8, 10)


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
     "epochs must be a positive integer, got 'ten'"),
    ("zero.json", {"format": "bareprop-run", "version": 1, "config": {"epochs": 0}},
     "epochs must be a positive integer, got 0"),
    ("threads.json", {"format": "bareprop-run", "version": 1, "config": {"threads": 0}},
     "threads must be a positive integer, got 0"),
    ("path.json", {"format": "bareprop-run", "version": 1, "config": {"path": "fast"}},
     "path must be one of auto, readable, kernel, got 'fast'"),
])
def test_a_bad_config_is_a_one_line_error_naming_the_file(tmp_path, capsys, name, content, message):
    path = bad_config(tmp_path, name, content)
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert str(path) in captured.err and message in captured.err, captured.err
    assert not (tmp_path / "out").exists()


def test_a_missing_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.json: cannot read (No such file or directory)" in err


def test_evaluate_prints_loss_accuracy_and_a_row_per_class(cli_run, capsys):
    assert main(["evaluate", str(cli_run.out / "model.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    h = manifest_of(cli_run.out)["history"]
    assert lines[0].startswith(f"test loss {h['test_loss'][-1]:.4f} | accuracy {h['test_acc'][-1]:.4f} "
                               f"({round(h['test_acc'][-1] * 10000)} of 10000)")
    assert lines[1].split() == ["class", "examples", "correct", "precision", "recall", "f1"]
    rows = [line.split() for line in lines[2:]]
    _, y_test = bp.load_mnist("test")
    assert [int(r[0]) for r in rows] == list(range(10))
    assert [int(r[1]) for r in rows] == list(np.bincount(y_test))
    assert sum(int(r[2]) for r in rows) == round(h["test_acc"][-1] * 10000)
    assert all(float(r[4]) == pytest.approx(int(r[2]) / int(r[1]), abs=5e-4) for r in rows)  # recall: the class's accuracy


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
    bp.save(bp.NeuralNet((6, 4, 3), rng=np.random.default_rng(0)), model)
    images = [str(tmp_path / "digit.png")] if command == "predict" else []
    assert main([command, str(model), *images]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"bareprop: error: {model}: {message}\n"


def test_an_output_folder_holding_a_run_is_refused_unless_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--epochs", "1", "--hidden", "8", "--no-plot", "--quiet", "--output", str(out)]
    assert main(argv) == 0
    first = (out / "model.npz").read_bytes()
    assert main([*argv, "--seed", "1"]) == 2
    assert capsys.readouterr().err == (f"bareprop: error: output folder {out} already holds a run: choose another "
                                       "folder, or overwrite it (--overwrite)\n")
    assert (out / "model.npz").read_bytes() == first
    assert main([*argv, "--seed", "1", "--overwrite"]) == 0
    assert manifest_of(out)["seed"] == 1 and manifest_of(out)["status"] == "complete"
    assert (out / "model.npz").read_bytes() != first
