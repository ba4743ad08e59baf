"""What `bareprop train` shows while it trains (rich, imported only here).

On a terminal: a live bar (the epoch, batches done of the run's, running loss and accuracy,
samples/s, time left) and a summary row per epoch; once the last epoch is done, the bar says what
the run is writing. Elsewhere (a pipe, a file, CI logs): one plain line per epoch, the post's line.
quiet: nothing per epoch. log_json: one JSON object per epoch, appended as each one ends.

Epochs are numbered from 0 everywhere, as in the post's table: the bar's `epoch 3 of 0-9` is the
epoch whose row will read `3`, the fourth of ten.
"""

import json
import sys
import time

HEADER = f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'test loss':>9}  {'test acc':>8}  {'time':>7}"


def epoch_line(history):
    """The post's line, plus test accuracy and the epoch's time."""
    i = len(history.epoch) - 1
    line = f"epoch: {history.epoch[i]} | correct: {history.train_acc[i]:.2f}, loss: {history.train_loss[i]:.2f}"
    if history.test_acc:
        line += f" | test: {history.test_acc[i]:.2f}"
    return line + f" | {history.seconds[i]:.1f} s"


def epoch_row(history):
    """The last epoch as a row under HEADER."""
    i = len(history.epoch) - 1
    test_loss = f"{history.test_loss[i]:9.4f}" if history.test_loss else f"{'-':>9}"
    test_acc = f"{history.test_acc[i]:8.4f}" if history.test_acc else f"{'-':>8}"
    return (f"{history.epoch[i]:>5}  {history.train_loss[i]:10.4f}  {history.train_acc[i]:9.4f}  "
            f"{test_loss}  {test_acc}  {history.seconds[i]:5.1f} s")


def epoch_record(history):
    """The last epoch as a JSON-able dict: one line of --log-json (the per-epoch lists of History)."""
    i = len(history.epoch) - 1
    return {key: values[i] for key, values in history.to_dict().items() if isinstance(values, list) and len(values) > i}


class TrainDisplay:
    """The hooks train() calls (on_batch, on_epoch), drawing on `console` (a rich Console; one on
    stdout by default). The live bar is redrawn at most every `interval` seconds of `clock`, and
    after the last batch of each epoch."""

    def __init__(self, *, epochs, examples, batch_size, quiet=False, log_json=None, console=None,
                 clock=time.perf_counter, interval=0.2, finishing=None):
        self.epochs, self.examples, self.batch_size, self.finishing = epochs, examples, batch_size, finishing
        self.quiet, self.log_json, self.clock, self.interval = quiet, log_json, clock, interval
        if console is None and not quiet:
            from rich.console import Console

            console = Console(highlight=False)
        self.live = console is not None and console.is_terminal and not console.is_dumb_terminal and not quiet
        self.console, self.progress, self.redraws = console, None, 0

    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.fields[stage]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.3f}  "
                           "{task.fields[rate]:>7,.0f} samples/s"),
                TimeRemainingColumn(),
                console=self.console, auto_refresh=False, transient=True,
            )
            self.progress.start()
            self.console.print(HEADER, style="bold")
            batches_per_epoch = -(-self.examples // self.batch_size)
            self.task = self.progress.add_task("train", total=self.epochs * batches_per_epoch, stage=self._stage(0),
                                               loss=0.0, acc=0.0, rate=0.0)
        self._start_epoch()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False

    def _stage(self, epoch):  # the epoch under way, numbered from 0 like the rows
        return f"epoch {epoch} of 0-{self.epochs - 1}"

    def _start_epoch(self):
        self.epoch_start = self.last_draw = self.clock()

    def on_batch(self, history, batch, n_batches, running):
        if not self.live:
            return
        now = self.clock()
        if now - self.last_draw < self.interval and batch != n_batches - 1:
            return
        self.last_draw = now
        done = batch + 1
        loss, acc = running()
        samples = min(done * self.batch_size, self.examples)
        self.progress.update(self.task, completed=len(history.epoch) * n_batches + done,
                             stage=self._stage(len(history.epoch)), loss=loss, acc=acc,
                             rate=samples / max(now - self.epoch_start, 1e-9))
        self.progress.refresh()
        self.redraws += 1

    def on_epoch(self, history):
        if self.log_json is not None:
            self.log_json.write(json.dumps(epoch_record(history)) + "\n")
            self.log_json.flush()
        if self.live:
            self.progress.console.print(epoch_row(history))
            if len(history.epoch) == self.epochs and self.finishing:  # training is over: say what comes next
                self.progress.update(self.task, stage=self.finishing)
                self.progress.refresh()
        elif not self.quiet:
            print(epoch_line(history), file=self.console.file if self.console else sys.stdout, flush=True)
        self._start_epoch()
