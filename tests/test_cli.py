import json
import re
import subprocess
import sys

import pytest

from bareprop.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bareprop", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_train_one_epoch_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--epochs", "1", "--output", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("epoch: 0 | correct: 0.8") and " | test: 0.9" in lines[0] and lines[0].endswith(" s")
    assert str(out.resolve()) in lines[-1]
    record = json.loads((out / "history.json").read_text())
    assert record["config"]["epochs"] == 1
    assert record["history"]["test_acc"][0] >= 0.90
    html = (out / "chart.html").read_text()
    assert "<script" in html and "vega" in html.lower()
    assert "vegaEmbed" in html and not re.search(r"<script[^>]*\bsrc=", html)  # Vega inlined: opens offline
    png = (out / "chart.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_same_seed_prints_the_same_lines(tmp_path):
    def lines(seed, name):
        result = run_cli("train", "--epochs", "1", "--hidden", "8", "--seed", str(seed), "--no-plot",
                         "--output", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        return [line.rsplit(" | ", 1)[0] for line in result.stdout.splitlines()[:-1]]  # times aside
    first = lines(3, "a")
    assert first == lines(3, "b")
    assert first != lines(4, "c")
    assert not (tmp_path / "a" / "chart.png").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--epochs", "0"], "--epochs: must be positive"),
    (["train", "--epochs", "two"], "--epochs: expected a positive int"),
    (["train", "--batch-size", "-5"], "--batch-size: must be positive"),
    (["train", "--lr", "0"], "--lr: must be positive"),
    (["train", "--lr", "nan"], "--lr: must be positive"),
    (["fly"], "invalid choice: 'fly'"),
    ([], "required: COMMAND"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["train", "--epochs", "1", "--output", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to output folder" in err and str(blocker) in err


def test_help_explains_every_flag():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for flag in ["--epochs", "--batch-size", "--lr", "--hidden", "--seed", "--output", "--no-plot"]:
        assert flag in result.stdout
    top = run_cli("--help")
    assert top.returncode == 0 and "train" in top.stdout
