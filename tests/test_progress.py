"""What `bareprop train` shows: a live bar on a terminal, plain lines elsewhere, --quiet, --log-json."""

import io
import json
import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

import bareprop as bp
from bareprop.cli import main
from bareprop.cli.progress import HEADER, TrainDisplay, epoch_line


class Clock:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def small_training(display, epochs=3):
    """A small run that calls on_batch after every batch (the readable loop: the compiled path calls it
    every 16 batches, see test_kernel.py)."""
    r = np.random.default_rng(0)
    X = r.normal(size=(1000, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    net = bp.NeuralNet((6, 8, 2), lr=0.01, rng=r)
    with display:
        return bp.train(net, X, y, epochs=epochs, batch_size=10, rng=r, X_test=X[:100], y_test=y[:100],
                        on_epoch=display.on_epoch, on_batch=display.on_batch, path="readable")


def test_on_a_terminal_a_live_bar_redrawn_at_most_every_interval_and_a_row_per_epoch():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None, _environ={"TERM": "xterm"})
    display = TrainDisplay(epochs=3, examples=1000, batch_size=10, console=console, clock=Clock(0.01), interval=0.1,
                           finishing="writing model.npz and run.json...")
    history = small_training(display)
    # 100 batches an epoch, the clock moves 0.01 s a batch: a redraw every 10 batches, the last one included
    assert display.redraws == 3 * 10
    text = screen.getvalue()
    assert HEADER in text and "samples/s" in text and "300/300" in text
    # the bar numbers epochs as the rows and run.json do, from 0: "epoch 2 of 0-2" is the last one
    assert "epoch 0 of 0-2" in text and "epoch 2 of 0-2" in text and "epoch 3" not in text
    assert text.index("writing model.npz and run.json...") > text.index(f"{2:>5}  {history.train_loss[2]:10.4f}")
    for i in range(3):
        row = f"{i:>5}  {history.train_loss[i]:10.4f}  {history.train_acc[i]:9.4f}  {history.test_loss[i]:9.4f}"
        assert row in text
    assert "epoch: 0 | correct" not in text


@pytest.mark.parametrize("where", ["a pipe", "a dumb terminal"])
def test_elsewhere_the_plain_line_of_each_epoch_and_no_bar(where):
    screen = io.StringIO()
    if where == "a pipe":
        console = Console(file=screen, force_terminal=False)
    else:
        console = Console(file=screen, force_terminal=True, _environ={"TERM": "dumb"})
    display = TrainDisplay(epochs=2, examples=1000, batch_size=10, console=console, clock=Clock(0.01))
    history = small_training(display, epochs=2)
    assert display.redraws == 0
    lines = screen.getvalue().splitlines()
    assert lines[0].startswith("epoch: 0 | correct: ") and lines[1].startswith("epoch: 1 | correct: ")
    assert lines[1] == epoch_line(history) and len(lines) == 2


def test_quiet_prints_only_the_final_line_and_log_json_writes_one_object_per_epoch(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--no-plot", "--quiet", "--log-json", str(log),
                 "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("test accuracy ") and str(tmp_path / "run") in out[0]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    history = json.loads((tmp_path / "run" / "run.json").read_text())["history"]
    keys = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "weight_norm", "grad_norm"]
    assert [r["epoch"] for r in records] == [0, 1] and all(sorted(r) == sorted(keys) for r in records)
    for key in keys:
        assert [r[key] for r in records] == history[key], key


def test_an_unwritable_log_is_a_one_line_error_before_training(tmp_path, capsys):
    log = tmp_path / "no" / "such" / "dir.jsonl"
    assert main(["train", "--log-json", str(log), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the JSON log" in err and "dir.jsonl" in err
    assert not (tmp_path / "r" / "run.json").exists()


def test_a_real_terminal_shows_the_bar(tmp_path):
    """`bareprop train` on a pseudo-terminal: the bar is drawn, and the rows follow."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "150", "LINES": "40"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "bareprop", "train", "--epochs", "1", "--hidden", "8",
                                "--no-plot", "--output", str(tmp_path / "run")],
                               stdin=terminal, stdout=terminal, stderr=subprocess.PIPE, env=env)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    os.close(controller)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "samples/s" in screen and "/938" in screen and "epoch 0 of 0-0" in screen and "epoch 1" not in screen
    assert "writing model.npz and run.json..." in screen  # after the last epoch, what it is doing now
    assert "train loss" in screen
    assert re.search(r"[\r\n] +0 +0\.\d{4} +0\.\d{4} +0\.\d{4} +0\.\d{4} +\d+\.\d s\r\n", screen)
    assert re.search(r"938/938 loss 0\.\d{3}  acc 0\.\d{3} +[\d,]+ samples/s", screen)
    assert "test accuracy 0." in screen and "epoch: 0 | correct" not in screen


def test_on_batch_gets_every_batch_and_the_running_figures_of_the_epoch():
    """On the readable loop (the compiled path calls it every 16 batches, see test_kernel.py)."""
    r = np.random.default_rng(1)
    X = r.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 1] > 0).astype(int)
    seen = []

    def on_batch(history, batch, n_batches, running):
        seen.append((len(history.epoch), batch, n_batches, running()))

    rng = np.random.default_rng(2)
    net = bp.NeuralNet((6, 5, 2), lr=0.01, rng=rng)
    history = bp.train(net, X, y, epochs=2, batch_size=64, rng=rng, on_batch=on_batch, path="readable")
    assert [s[:3] for s in seen] == [(e, b, 5) for e in range(2) for b in range(5)]
    for epoch in range(2):
        loss, acc = seen[5 * epoch + 4][3]  # after the epoch's last batch
        assert (loss, acc) == pytest.approx((history.train_loss[epoch], history.train_acc[epoch]), rel=1e-12)
