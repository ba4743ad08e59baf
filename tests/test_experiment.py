"""A run as a library object: RunConfig's checks, the objects it describes, bareprop.run against
`bareprop train`, run.json read back, and the examples of docs/running.md."""

import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import bareprop as bp
from bareprop.core.layers import ACTIVATIONS
from bareprop.core.train import History
from bareprop.experiment import ConfigError, RunConfig, RunResult, run
from bareprop.experiment.config import build_net, build_optimizer
from bareprop.experiment.manifest import manifest_json

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_public_api_exports_the_run():
    assert (bp.run, bp.RunConfig, bp.RunResult, bp.ConfigError) == (run, RunConfig, RunResult, ConfigError)
    assert {"run", "RunConfig", "RunResult", "ConfigError"} <= set(bp.__all__)


def test_python_run_is_the_cli_run_number_for_number(cli_run, tmp_path):
    """`bareprop train --epochs 1` (the fixture) and bareprop.run(RunConfig(epochs=1)): the same numbers, the same bits."""
    result = run(RunConfig(epochs=1, plot=False, output=tmp_path / "py"))
    assert isinstance(result, RunResult) and result.out == tmp_path / "py"
    assert {p.name for p in result.out.iterdir()} == {"model.npz", "run.json"}
    assert result.manifest == json.loads((result.out / "run.json").read_text())
    assert result.config == RunConfig(epochs=1, plot=False, output=str(tmp_path / "py")).resolved()

    cli = json.loads((cli_run.out / "run.json").read_text())
    ours = result.history.to_dict()
    for key in ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "weight_norm", "grad_norm", "path", "threads"]:
        assert ours[key] == cli["history"][key], key
    assert result.manifest["config"] == {**cli["config"], "plot": False, "output": str(tmp_path / "py")}
    for ours_W, saved, cli_W in zip(result.net.params(), bp.load(result.out / "model.npz").params(),
                                    bp.load(cli_run.out / "model.npz").params(), strict=True):
        np.testing.assert_array_equal(ours_W, saved)
        np.testing.assert_array_equal(ours_W, cli_W)


def test_run_calls_the_hooks_and_takes_loaded_data(tmp_path):
    config = RunConfig(epochs=2, hidden=8, path="readable", plot=False, output=tmp_path)
    X, y, X_test, y_test = bp.load_mnist("train", dtype=np.uint8) + bp.load_mnist("test", dtype=np.uint8)
    data = (X[:640], y[:640], X_test[:100], y_test[:100])
    epochs, batches = [], []
    result = run(config, data=data, on_epoch=lambda h: epochs.append(len(h.epoch)),
                 on_batch=lambda h, batch, n, running: batches.append((len(h.epoch), batch, n, running())))
    assert epochs == [1, 2] and [b[:3] for b in batches] == [(e, b, 10) for e in range(2) for b in range(10)]
    assert batches[-1][3] == pytest.approx((result.history.train_loss[-1], result.history.train_acc[-1]))
    assert result.history.path == "readable" and len(result.history.test_acc) == 2


def test_the_defaults_are_the_posts_net_and_plain_sgd():
    c = RunConfig()
    assert (c.hidden, c.momentum, c.weight_decay) == (None, None, None)  # "the usual value", filled in by resolved()
    assert (c.resolved().hidden, c.resolved().momentum, c.resolved().weight_decay) == (32, None, 0.0)
    net = build_net(c, np.random.default_rng(0))
    assert repr(net) == "NeuralNet(Linear(784, 32), ReLU(), Linear(32, 10), SoftmaxCrossEntropy())"
    opt = build_optimizer(c, total_steps=100)
    assert type(opt) is bp.SGD and (opt.lr, opt.momentum, opt.weight_decay) == (0.001, 0.0, 0.0)


def test_settings_map_to_layers_and_optimizers():
    c = RunConfig(layers=(784, 64, 32, 10), activation="leaky_relu", init="he", dropout=0.2, optimizer="adamw",
                  lr=0.003, schedule="cosine", warmup=20)
    net = build_net(c, np.random.default_rng(0))
    assert [type(layer) for layer in net.layers[1:3]] == [bp.LeakyReLU, bp.Dropout] and net.sizes == (784, 64, 32, 10)
    assert np.abs(net.params()[0]).max() > np.sqrt(6 / (785 + 64))  # He's bound is wider than Xavier's
    opt = build_optimizer(c, total_steps=500)
    assert type(opt) is bp.AdamW and opt.weight_decay == 0.01  # AdamW's usual default
    assert isinstance(opt.lr, bp.LinearWarmup) and isinstance(opt.lr.after, bp.CosineDecay)
    assert opt.lr(0) == pytest.approx(0.003 / 20) and opt.lr(19) == pytest.approx(bp.CosineDecay(0.003, 500)(19))

    opt = build_optimizer(RunConfig(optimizer="momentum", nesterov=True, schedule="step", weight_decay=1e-4), 90)
    assert (opt.momentum, opt.nesterov, opt.weight_decay) == (0.9, True, 1e-4)
    assert isinstance(opt.lr, bp.StepDecay) and opt.lr(29) == 0.001 and opt.lr(30) == pytest.approx(0.0001)
    for cls in ACTIVATIONS:  # every activation by its name, and nothing else
        assert type(build_net(RunConfig(activation=cls.name), np.random.default_rng(0)).layers[1]) is cls
    assert build_net(RunConfig(hidden=7), np.random.default_rng(0)).sizes == (784, 7, 10)


def test_replace_keeps_the_usual_values_open():
    """None means "the usual value for the other settings", so changing one setting does not clash
    with a default filled in for another."""
    c = replace(RunConfig(), layers=[784, 64, 10], optimizer="adamw")
    assert c.layers == (784, 64, 10)
    assert (c.resolved().hidden, c.resolved().weight_decay) == (None, 0.01)
    assert RunConfig(layers="784,64,10").layers == (784, 64, 10)  # as older run.json files hold them
    assert RunConfig(lr=1).lr == 1.0 and isinstance(RunConfig(lr=1).lr, float)
    assert RunConfig(output=Path("a/b")).output == "a/b"


@pytest.mark.parametrize("settings, message", [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"epochs": 2.0}, "epochs must be a positive integer, got 2.0"),
    ({"batch_size": True}, "batch_size must be a positive integer, got True"),
    ({"lr": float("nan")}, "lr must be a positive number, got nan"),
    ({"lr": math.inf}, "lr must be a positive number, got inf"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ({"threads": 0}, "threads must be a positive integer, got 0"),
    ({"path": "fast"}, "path must be one of auto, readable, kernel, got 'fast'"),
    ({"dataset": "cifar"}, "dataset must be one of fashion-mnist, kmnist, mnist, got 'cifar'"),
    ({"activation": "ReLU"}, "activation must be one of relu, leaky_relu, sigmoid, tanh, gelu, got 'ReLU'"),
    ({"plot": "no"}, "plot must be true or false, got 'no'"),
    ({"layers": (784,)}, "layers must be two or more positive widths, such as 784,256,10, got (784,)"),
    ({"layers": (784, 32, 9)}, "layers must start at 784 (the pixels) and end at 10 (the classes of mnist), got 784,32,9"),
    ({"hidden": 8, "layers": (784, 8, 10)}, "give either hidden or layers, not both"),
    ({"momentum": 0.5}, "momentum applies only to optimizer 'momentum', not 'sgd'"),
])
def test_a_bad_setting_is_a_one_line_config_error(settings, message):
    with pytest.raises(ConfigError) as caught:
        RunConfig(**settings)
    assert str(caught.value) == message and isinstance(caught.value, ValueError)


def test_a_bad_setting_made_after_construction_is_caught_by_run(tmp_path):
    config = RunConfig(epochs=1, output=tmp_path / "run")
    config.threads = 0
    with pytest.raises(ConfigError, match="threads must be a positive integer, got 0"):
        run(config)
    assert not (tmp_path / "run").exists()


def test_path_kernel_where_the_kernel_cannot_go_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"path='kernel' cannot train NeuralNet\(.*\): its layers are not"):
        run(RunConfig(epochs=1, activation="tanh", path="kernel", output=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_from_run_json_gives_the_settings_that_repeat_the_run(cli_run, tmp_path):
    config = RunConfig.from_run_json(cli_run.out / "run.json")
    assert config == RunConfig(epochs=1).resolved()  # output, data_dir and offline are this run's to choose
    older = {"epochs": 2, "batch_size": 64, "lr": 0.001, "hidden": None, "seed": 7, "output": "runs/x", "plot": True,
             "dataset": "mnist", "data_dir": "/somewhere", "offline": True, "quiet": True, "log_json": "log.jsonl",
             "layers": "784,16,10", "activation": "relu", "init": "xavier", "dropout": 0.0, "optimizer": "sgd",
             "momentum": None, "nesterov": False, "weight_decay": 0.0, "schedule": "none", "warmup": 0}
    path = tmp_path / "run.json"  # as the CLI wrote it before RunConfig: layers a string, what it showed recorded
    path.write_text(json.dumps({"format": "bareprop-run", "version": 1, "config": older}))
    assert RunConfig.from_run_json(path) == RunConfig(epochs=2, seed=7, layers=(784, 16, 10), weight_decay=0.0)


def test_run_json_is_strict_json():
    history = History(epoch=[0, 1], train_loss=[0.5, float("nan")], test_loss=[float("inf"), 0.1])
    manifest = {"config": {"seed": 0}, "history": history.to_dict(), "seconds": 1.5}
    text = manifest_json(manifest).decode()
    back = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert back["history"]["train_loss"] == [0.5, None] and back["history"]["test_loss"] == [None, 0.1]
    assert back["seconds"] == 1.5 and back["config"] == {"seed": 0}


def test_the_examples_of_docs_running_md_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "running.md").read_text(), re.S)
    assert blocks
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"test accuracy 0\.9\d+ on the (kernel|readable) path", result.stdout), result.stdout


def test_config_flags_replace_the_files_settings_that_no_longer_apply(tmp_path):
    """--config adamw_run.json --optimizer sgd --layers ...: the file's weight decay and hidden width go."""
    from bareprop.cli.main import build_parser
    from bareprop.cli.train import run_config

    old = tmp_path / "run.json"
    manifest = {"format": "bareprop-run", "version": 1,
                "config": {**RunConfig(optimizer="adamw").resolved().__dict__, "layers": None}}
    old.write_text(json.dumps(manifest, default=list))
    args = build_parser().parse_args(["train", "--config", str(old), "--optimizer", "sgd", "--layers", "784,64,10"])
    config = run_config(args).resolved()
    assert config.optimizer == "sgd" and config.weight_decay == 0.0 and config.momentum is None
    assert tuple(config.layers) == (784, 64, 10) and config.hidden is None
    kept = run_config(build_parser().parse_args(["train", "--config", str(old), "--epochs", "2"])).resolved()
    assert kept.optimizer == "adamw" and kept.weight_decay == 0.01 and kept.epochs == 2
