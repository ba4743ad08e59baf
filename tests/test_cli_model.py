"""The network and optimizer flags of `bareprop train`: the mapping to objects, a run end to end, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bareprop import GELU, SGD, load, AdamW, CosineDecay, Dropout, LeakyReLU, LinearWarmup, ReLU, StepDecay
from bareprop.cli import TrainConfig, _model_config, build_net, build_optimizer, build_parser


def config(*argv):
    args = build_parser().parse_args(["train", *argv])
    settings = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**{**settings, **_model_config(args)})


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bareprop", *args], capture_output=True, text=True, timeout=600)


def test_the_defaults_are_the_posts_net_and_plain_sgd():
    c = config()
    net = build_net(c, 784, 10, np.random.default_rng(0))
    assert repr(net) == "NeuralNet(Linear(784, 32), ReLU(), Linear(32, 10), SoftmaxCrossEntropy())"
    opt = build_optimizer(c, total_steps=100)
    assert type(opt) is SGD and (opt.lr, opt.momentum, opt.weight_decay) == (0.001, 0.0, 0.0)
    assert (c.hidden, c.momentum, c.weight_decay) == (32, None, 0.0)


def test_flags_map_to_layers_and_optimizers():
    c = config("--layers", "784,64,32,10", "--activation", "leaky_relu", "--init", "he", "--dropout", "0.2",
               "--optimizer", "adamw", "--lr", "0.003", "--schedule", "cosine", "--warmup", "20")
    net = build_net(c, 784, 10, np.random.default_rng(0))
    assert [type(layer) for layer in net.layers[1:3]] == [LeakyReLU, Dropout] and net.sizes == (784, 64, 32, 10)
    assert np.abs(net.params()[0]).max() > np.sqrt(6 / (785 + 64))  # He's bound is wider than Xavier's
    opt = build_optimizer(c, total_steps=500)
    assert type(opt) is AdamW and opt.weight_decay == 0.01  # AdamW's usual default
    assert isinstance(opt.lr, LinearWarmup) and isinstance(opt.lr.after, CosineDecay)
    assert opt.lr(0) == pytest.approx(0.003 / 20) and opt.lr(19) == pytest.approx(CosineDecay(0.003, 500)(19))

    c = config("--optimizer", "momentum", "--nesterov", "--schedule", "step", "--weight-decay", "1e-4")
    opt = build_optimizer(c, total_steps=90)
    assert (opt.momentum, opt.nesterov, opt.weight_decay) == (0.9, True, 1e-4)
    assert isinstance(opt.lr, StepDecay) and opt.lr(29) == 0.001 and opt.lr(30) == pytest.approx(0.0001)
    assert isinstance(build_net(config("--activation", "gelu"), 784, 10, np.random.default_rng(0)).layers[1], GELU)
    assert isinstance(build_net(config("--hidden", "7"), 784, 10, np.random.default_rng(0)).layers[1], ReLU)


def test_layers_equal_to_hidden_is_the_same_run(tmp_path):
    def lines(*flags):
        result = run_cli("train", "--epochs", "1", "--no-plot", "--output", str(tmp_path / flags[-1]), *flags)
        assert result.returncode == 0, result.stderr
        return [line.rsplit(" | ", 1)[0] for line in result.stdout.splitlines()[:-1]]  # times aside
    assert lines("--hidden", "8") == lines("--layers", "784,8,10")


def test_deep_net_with_adamw_cosine_warmup_and_dropout_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--epochs", "1", "--batch-size", "128", "--layers", "784,48,24,10", "--activation", "gelu",
                     "--init", "he", "--dropout", "0.1", "--optimizer", "adamw", "--lr", "0.002", "--schedule", "cosine",
                     "--warmup", "40", "--no-plot", "--output", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "history.json").read_text())
    assert record["config"]["layers"] == "784,48,24,10" and record["config"]["weight_decay"] == 0.01
    assert record["config"]["hidden"] is None
    assert record["history"]["test_acc"][0] >= 0.93
    net = load(out / "model.npz")  # the saved model records the new layers and loads back
    assert repr(net) == ("NeuralNet(Linear(784, 48), GELU(), Dropout(0.1), Linear(48, 24), GELU(), Dropout(0.1), "
                         "Linear(24, 10), SoftmaxCrossEntropy())")
    evaluated = run_cli("evaluate", str(out / "model.npz"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"accuracy {record['history']['test_acc'][0]:.4f}" in evaluated.stdout  # Dropout off, as in training's test


def test_config_repeats_a_run_with_the_new_flags(tmp_path):
    def lines(*flags):
        result = run_cli("train", "--no-plot", *flags)
        assert result.returncode == 0, result.stderr
        return [line.rsplit(" | ", 1)[0] for line in result.stdout.splitlines()[:-1]]  # times aside
    first = lines("--epochs", "1", "--layers", "784,16,12,10", "--activation", "tanh", "--dropout", "0.1",
                  "--optimizer", "momentum", "--nesterov", "--schedule", "step", "--warmup", "5",
                  "--output", str(tmp_path / "a"))
    assert first == lines("--config", str(tmp_path / "a" / "run.json"), "--output", str(tmp_path / "b"))


@pytest.mark.parametrize("args, message", [
    (["--hidden", "64", "--layers", "784,64,10"], "give either --hidden or --layers, not both"),
    (["--layers", "700,64,10"], "--layers must start at 784 (the pixels) and end at 10 (the classes), got 700,64,10"),
    (["--layers", "784,64,9"], "--layers must start at 784"),
    (["--layers", "784,sixty,10"], "--layers: expected widths separated by commas"),
    (["--layers", "784,0,10"], "--layers: expected two or more positive widths"),
    (["--layers", "784"], "--layers: expected two or more positive widths"),
    (["--dropout", "1"], "--dropout: must lie in [0, 1), got 1"),
    (["--dropout", "-0.2"], "--dropout: must lie in [0, 1)"),
    (["--dropout", "nan"], "--dropout: must lie in [0, 1)"),
    (["--layers", "784,10", "--dropout", "0.5"], "--dropout needs a hidden layer"),
    (["--weight-decay=-1e-4"], "--weight-decay: must be >= 0"),
    (["--momentum", "0.9"], "--momentum applies only to --optimizer momentum, not sgd"),
    (["--optimizer", "adam", "--nesterov"], "--nesterov applies only to --optimizer momentum, not adam"),
    (["--optimizer", "momentum", "--momentum", "1"], "--momentum: must lie in [0, 1)"),
    (["--optimizer", "momentum", "--momentum", "0", "--nesterov"], "--nesterov needs a momentum above 0"),
    (["--optimizer", "rmsprop"], "--optimizer: invalid choice: 'rmsprop'"),
    (["--activation", "swish"], "--activation: invalid choice: 'swish'"),
    (["--schedule", "linear"], "--schedule: invalid choice: 'linear'"),
    (["--init", "lecun"], "--init: invalid choice: 'lecun'"),
    (["--warmup", "-3"], "--warmup: must be >= 0"),
    (["--epochs", "1", "--warmup", "938"], "--warmup 938 is not shorter than the run (938 steps)"),
])
def test_bad_combinations_are_one_line_and_exit_2(tmp_path, args, message):
    result = run_cli("train", *args, "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    if "--warmup 938" not in message:  # the run's length is known only once the data is loaded
        assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize("setting, message", [
    ({"activation": "swish"}, "activation must be one of relu, sigmoid, tanh, leaky_relu, gelu, got 'swish'"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"dropout": 1.5}, "setting dropout: must lie in [0, 1)"),
    ({"layers": "784,x,10"}, "setting layers: expected widths separated by commas"),
    ({"layers": "784,64,10", "hidden": 64}, "give either --hidden or --layers, not both"),
])
def test_bad_new_settings_in_a_run_json_are_one_line_errors(tmp_path, capsys, setting, message):
    from bareprop.cli import main

    path = tmp_path / "run.json"
    path.write_text(json.dumps({"format": "bareprop-run", "version": 1, "config": setting}))
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
