"""`bareprop train` end to end: what it prints, the files it writes, its flags, and bad input; and what
every command shares: `--version`, the help for `bareprop` alone, the one error format."""

import json
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli import main
from bareprop.cli.main import version as cli_version
from bareprop.fast import kernel


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bareprop", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_train_one_epoch_end_to_end(cli_run):
    first, last = cli_run.lines[0], cli_run.lines[-1]
    assert first.startswith("epoch: 0 | correct: 0.8") and " | test: 0.9" in first and first.endswith(" s")
    assert re.fullmatch(r"test accuracy 0\.9\d{3}; (kernel|readable) path, 1 thread; results in (.+)", last), last
    assert last.endswith(f"results in {cli_run.out.resolve()}") and len(cli_run.lines) == 2
    manifest = json.loads((cli_run.out / "run.json").read_text())
    assert manifest["config"]["epochs"] == 1 and manifest["history"]["test_acc"][0] >= 0.90
    assert f"test accuracy {manifest['history']['test_acc'][0]:.4f}; {manifest['path']} path" in last


def test_one_file_per_artifact(cli_run, tmp_path):
    assert {p.name for p in cli_run.out.iterdir()} == {"model.npz", "run.json", "report.html", "loss_accuracy.png",
                                                        "draw.html"}
    assert '<a href="draw.html">' in (cli_run.out / "report.html").read_text()  # the report links the draw page
    png = (cli_run.out / "loss_accuracy.png").read_bytes()  # the post's chart
    assert png.startswith(b"\x89PNG") and len(png) > 5000

    assert main(["train", "--epochs", "1", "--hidden", "8", "--no-plot", "--quiet", "--output", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"model.npz", "run.json"}


def test_same_seed_prints_the_same_lines(tmp_path):
    def lines(seed, name):
        result = run_cli("train", "--epochs", "1", "--hidden", "8", "--seed", str(seed), "--no-plot",
                         "--output", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        return [line.rsplit(" | ", 1)[0] for line in result.stdout.splitlines()[:-1]]  # times aside
    first = lines(3, "a")
    assert first == lines(3, "b")
    assert first != lines(4, "c")


def history_numbers(run_dir):
    """The per-epoch figures of a run.json, times aside."""
    history = json.loads((run_dir / "run.json").read_text())["history"]
    return {k: v for k, v in history.items() if k not in ("seconds", "path", "threads")}


def assert_same_model(a, b):
    for Wa, Wb in zip(bp.load(a / "model.npz").params(), bp.load(b / "model.npz").params(), strict=True):
        np.testing.assert_array_equal(Wa, Wb)


def test_threads_2_gives_the_numbers_of_threads_1_on_the_kernel(cli_run, tmp_path, capsys):
    assert json.loads((cli_run.out / "run.json").read_text())["path"] == "kernel"  # the fixture's run: 1 thread
    out = tmp_path / "two"
    assert main(["train", "--epochs", "1", "--threads", "2", "--no-plot", "--quiet", "--output", str(out)]) == 0
    assert "; kernel path, 2 threads; results in " in capsys.readouterr().out
    manifest = json.loads((out / "run.json").read_text())
    assert (manifest["path"], manifest["threads"], manifest["config"]["threads"]) == ("kernel", 2, 2)
    assert manifest["kernel_isa"] == kernel._kernel.ISA and manifest["history"]["threads"] == 2
    assert history_numbers(out) == history_numbers(cli_run.out)
    assert_same_model(out, cli_run.out)


def test_path_readable_is_taken_and_recorded(cli_run, tmp_path, capsys):
    out = tmp_path / "readable"
    assert main(["train", "--epochs", "1", "--path", "readable", "--no-plot", "--output", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("epoch: 0 | correct: 0.8") and "; readable path, 1 thread; " in printed[-1]
    manifest = json.loads((out / "run.json").read_text())
    assert (manifest["path"], manifest["config"]["path"], manifest["kernel_isa"]) == ("readable", "readable", None)
    readable, compiled = history_numbers(out), history_numbers(cli_run.out)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):  # the same steps, summed in another order
        np.testing.assert_allclose(readable[key], compiled[key], rtol=1e-3, err_msg=key)


def test_path_kernel_where_the_kernel_cannot_go_is_one_line(tmp_path, capsys):
    assert main(["train", "--path", "kernel", "--optimizer", "adam", "--output", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "path='kernel' cannot train NeuralNet(" in captured.err and "not plain SGD" in captured.err
    assert not (tmp_path / "run").exists()  # refused before the folder was made


@pytest.mark.parametrize("args, message", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--epochs", "0"], "--epochs: must be positive"),
    (["train", "--epochs", "two"], "--epochs: expected a positive int"),
    (["train", "--batch-size", "-5"], "--batch-size: must be positive"),
    (["train", "--lr", "0"], "--lr: must be positive"),
    (["train", "--lr", "nan"], "--lr: must be positive"),
    (["train", "--seed", "-1"], "--seed: must be >= 0, got -1"),
    (["train", "--threads", "0"], "--threads: must be positive, got 0"),
    (["train", "--threads", "1.5"], "--threads: expected a positive int, got '1.5'"),
    (["train", "--path", "fast"], "--path: invalid choice: 'fast' (choose from"),
    (["fly"], "invalid choice: 'fly'"),
    (["data"], "required: ACTION"),
    (["data", "verify", "nope"], "argument NAME: invalid choice: 'nope'"),
    (["evaluate"], "required: MODEL"),
    (["predict", "model.npz", "one.png", "--json", "--bogus"], "unrecognized arguments: --bogus"),
    (["evaluate", "absent.npz"], "absent.npz: "),  # the library's error, in the same format
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert result.stderr.startswith("bareprop: error: "), result.stderr  # one format, argparse's or ours
    assert "Traceback" not in result.stderr


def test_bareprop_alone_prints_the_help_and_exits_2():
    result = run_cli()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("usage: bareprop ")
    assert all(command in result.stderr for command in ["train", "data", "gradcheck", "evaluate", "predict", "report"])


def test_version_is_the_installed_distributions():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"bareprop {metadata.version('bareprop')}\n"
    assert re.fullmatch(r"bareprop \d+\.\d+\.\d+\S*\n", result.stdout)


def test_version_without_the_distributions_metadata_is_the_source_trees(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli_version() == bp.__version__


def test_without_pytorch_the_torch_features_name_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError, as without PyTorch
    with pytest.raises(ImportError, match=r"^torch_check needs PyTorch: pip install 'bareprop\[torch\]'$"):
        bp.torch_check(bp.ReLU(), (2, 3))
    assert main(["gradcheck", "--batch", "1", "--width", "1"]) == 0  # finite differences still run
    first = capsys.readouterr().out.splitlines()[0]
    assert first == ("PyTorch is not installed: checking against finite differences only "
                     "(pip install 'bareprop[torch]' for both)")


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", "--epochs", "1", "--output", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to output folder" in err and str(blocker) in err


def test_help_explains_every_flag():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for flag in ["--epochs", "--batch-size", "--lr", "--hidden", "--seed", "--output", "--no-plot", "--threads",
                 "--path", "--config", "--quiet", "--log-json"]:
        assert flag in result.stdout
    top = run_cli("--help")
    assert top.returncode == 0 and all(command in top.stdout for command in
                                       ["train", "data", "gradcheck", "evaluate", "predict", "report"])
