"""docs/reliability.md's table of cases, run row by row: each case's exit code (the CLI's, or the
exception the library raises) and its one-line message, matched against the row's template.

In a template, `runs/x` is the run's folder, `...` and `<...>` stand for text that varies, the rest
is literal; two messages separated by `, ` are the two ways a case can go, each of which is run.
The tests run in a fresh folder (`runs/x` is then the very path given); the CLI trains on the
2,000-image subset of test_reliability.py (its load_data replaced), signals are real ones sent to
this process, and the full disk is a file-size limit on a real `bareprop train` process.
"""

import builtins
import json
import os
import re
import resource
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from test_reliability import data, release, small, strict_json  # noqa: F401 (data: the fixture)
from test_resume import stop_after

import bareprop as bp
from bareprop.cli import main
from bareprop.cli import train as cli_train
from bareprop.experiment import run, runner
from bareprop.experiment.runner import CHECKPOINT, make_output

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
RUN = "runs/x"  # the doc's name for the run's folder
TRAIN = ["train", "--epochs", "2", "--hidden", "8", "--no-plot", "--quiet"]


# ---- the table ------------------------------------------------------------------------------------

SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")  # Markdown's code span: n backticks, its text, the next run of n


def code_spans(cell):
    """The messages of a table cell: its leading code spans, separated by `, `; what follows them
    (a remark in parentheses) is not part of a message. One space inside each end is dropped."""
    messages, at = [], 0
    while m := SPAN.match(cell, at):
        text = m.group(2)
        messages.append(text[1:-1] if len(text) > 2 and text[0] == text[-1] == " " else text)
        at = m.end()
        if not cell.startswith(", `", at):
            break
        at += 2
    return messages


def docs_cases():
    """case -> (exit, [message templates]), from the table `| case | exit | message |`."""
    lines = DOCS.read_text().splitlines()
    start = lines.index("| case | exit | message |") + 2  # past the header and its |---|
    table = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        case, exit, message = re.fullmatch(r"\| (.+?) \| (.+?) \| (.+) \|", line).groups()
        table[case] = (exit.strip("`"), code_spans(message))
    return table


def template_regex(template, folder):
    """`runs/x` is `folder`; `...` and `<...>` match any text; everything else is literal."""
    parts = re.split(r"(runs/x|\.\.\.|<[^>]+>)", template)
    return "".join(re.escape(str(folder)) if part == RUN else ".+" if part == "..." or part.startswith("<")
                   else re.escape(part) for part in parts)


# ---- running the cases ----------------------------------------------------------------------------

class Case:
    """What a case needs: the subset, full MNIST, and the fixtures that catch stderr and patch."""

    def __init__(self, data, mnist, capsys, monkeypatch):
        self.data, self.mnist, self.capsys, self.monkeypatch = data, mnist, capsys, monkeypatch
        self.nets = []  # the nets the runs built, to poison one

    def cli(self, *argv, folder=RUN):
        """`bareprop ARGV` in this process: (exit code, stderr, folder)."""
        self.capsys.readouterr()
        code = main(list(argv))
        return code, self.capsys.readouterr().err, Path(folder)

    def hook(self, on_epoch=None, on_batch=None):
        """Have the CLI's run call on_epoch(history) / on_batch(history, batch, n_batches, running) too,
        after its display's, and keep the nets it builds in self.nets."""
        train = cli_train.run

        def run_with(config, **kw):
            shown_epoch, shown_batch = kw["on_epoch"], kw["on_batch"]

            def epoch(history):
                shown_epoch(history)
                if on_epoch is not None:
                    on_epoch(history)

            def batch(*args):
                if shown_batch is not None:
                    shown_batch(*args)
                if on_batch is not None:
                    on_batch(*args)
            return train(config, **{**kw, "on_epoch": epoch, "on_batch": batch})
        self.monkeypatch.setattr(cli_train, "run", run_with)
        build = runner.build_net
        self.monkeypatch.setattr(runner, "build_net", lambda config, rng: self.nets.append(build(config, rng))
                                 or self.nets[-1])

    def interrupted(self, epochs=1, **settings):
        """A run stopped (Ctrl-C) after `epochs` epochs, in runs/x."""
        with pytest.raises(bp.RunInterrupted):
            run(small(RUN, epochs=epochs + 1, **settings), data=self.data, on_epoch=stop_after(epochs))
        return Path(RUN)


def raised(action, folder=RUN):
    """(the exception's class, its message, folder) of what `action` raises."""
    with pytest.raises(Exception) as e:
        action()
    return type(e.value), str(e.value), Path(folder)


def signal_self(signum):
    """Send this process `signum`, as Ctrl-C or `kill` would: Python raises in the main thread at once."""
    expected = {signal.SIGINT: "default_int_handler", signal.SIGTERM: "_terminated"}[signum]
    if signum == signal.SIGINT and signal.getsignal(signum) == signal.SIG_IGN:  # a runner that ignores Ctrl-C
        signal.signal(signum, signal.default_int_handler)  # (mutmut's workers): Python's own, as in a terminal
    handler = signal.getsignal(signum)
    assert getattr(handler, "__name__", None) == expected, f"{signum!r} is handled by {handler!r}"
    os.kill(os.getpid(), signum)


def at_epoch(k, signum):
    def on_epoch(history):
        if len(history.epoch) == k:
            signal_self(signum)
    return on_epoch


@contextmanager
def unwritable(folder):
    """`folder` cannot be written to; as root (who may write anywhere), as the user nobody for a while."""
    folder.chmod(0o555)
    root = os.geteuid() == 0
    try:
        if root:
            os.seteuid(65534)
        yield
    finally:
        if root:
            os.seteuid(0)
        folder.chmod(0o755)


def case_holds_a_run(c):
    run(small(RUN), data=c.data)
    return [c.cli(*TRAIN, "--output", RUN)]


def case_holds_other_files(c):
    Path(RUN).mkdir(parents=True)
    Path(RUN, "notes.txt").write_text("mine")
    return [c.cli(*TRAIN, "--output", RUN), c.cli(*TRAIN, "--overwrite", "--output", RUN)]


def case_overwrite_without_run_json(c):
    run(small(RUN), data=c.data)
    Path(RUN, "run.json").unlink()  # model.npz alone: someone's model, not a run
    return [c.cli(*TRAIN, "--overwrite", "--output", RUN)]


def case_in_use(c):
    claim = make_output(Path(RUN))
    try:
        return [c.cli(*TRAIN, "--output", RUN)]
    finally:
        release(claim)


def case_output_not_a_folder(c):
    Path("runs").mkdir()
    Path(RUN).write_text("a file")
    Path("locked").mkdir()
    is_a_file = c.cli(*TRAIN, "--output", RUN)
    with unwritable(Path("locked")):
        cannot_make = c.cli(*TRAIN, "--output", "locked/x", folder="locked/x")
    return [is_a_file, cannot_make]


def case_ctrl_c(c):
    c.hook(on_epoch=at_epoch(3, signal.SIGINT))
    return [c.cli(*TRAIN, "--epochs", "10", "--output", RUN)]


def case_sigterm(c):
    c.hook(on_epoch=at_epoch(3, signal.SIGTERM))
    return [c.cli(*TRAIN, "--epochs", "10", "--output", RUN)]


def case_ctrl_c_first_epoch(c):
    c.hook(on_batch=lambda history, batch, n_batches, running: signal_self(signal.SIGINT))
    return [c.cli(*TRAIN, "--output", RUN)]


def case_full_disk(c):
    """A file-size limit stands in for a full disk: the report, the largest file, cannot be written."""
    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    argv = [sys.executable, "-m", "bareprop", "train", "--epochs", "2", "--hidden", "8", "--output", RUN]  # full MNIST
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, preexec_fn=limit_files)
    assert strict_json(Path(RUN, "run.json"))["status"] == "interrupted"
    return [(result.returncode, result.stderr, Path(RUN))]


def case_too_big(c):
    outcome = c.cli("train", "--hidden", str(10**18), "--output", RUN)
    assert not Path(RUN).exists()
    return [outcome]


def poison(c, *, epoch, batch=None):
    """An on_batch hook that makes the last layer's weights NaN in `epoch`, after `batch` (None: the
    first call): every logit is then NaN, bias included, and so is the loss, dead ReLUs or not."""
    def on_batch(history, i, n_batches, running):
        if len(history.epoch) == epoch and (batch is None or i == batch):
            c.nets[0].params()[-1][...] = np.nan
    return on_batch


def case_diverged_readable(c):
    c.hook(on_batch=poison(c, epoch=2, batch=116))  # the next step, 117, finds the loss NaN
    return [c.cli(*TRAIN, "--epochs", "4", "--batch-size", "16", "--lr", "0.5", "--path", "readable",
                  "--output", RUN)]


def case_diverged_kernel(c):
    c.hook(on_batch=poison(c, epoch=2))
    return [c.cli(*TRAIN, "--epochs", "4", "--lr", "0.5", "--path", "kernel", "--output", RUN)]


def case_diverged_first_epoch(c):
    return [c.cli(*TRAIN, "--lr", "1e30", "--output", RUN)]


def case_resume_complete(c):
    run(small(RUN, epochs=10), data=c.data)
    return [c.cli("train", "--resume", RUN)]


def case_resume_diverged(c):
    with pytest.raises(bp.TrainingDiverged):
        run(small(RUN, lr=1e30), data=c.data)
    return [c.cli("train", "--resume", RUN)]


def case_resume_with_a_setting(c):
    c.interrupted()
    return [c.cli("train", "--resume", RUN, "--epochs", "5")]


def case_resume_no_run(c):
    missing = c.cli("train", "--resume", RUN)
    Path(RUN).mkdir(parents=True)
    return [missing, c.cli("train", "--resume", RUN)]


def case_resume_no_status(c):
    run(small(RUN), data=c.data)
    manifest = strict_json(Path(RUN, "run.json"))
    del manifest["status"]
    Path(RUN, "run.json").write_text(json.dumps(manifest))
    return [c.cli("train", "--resume", RUN)]


def case_resume_other_checkpoint(c):
    c.interrupted(optimizer="momentum").rename("runs/momentum")
    c.interrupted()
    checkpoint = Path(RUN, CHECKPOINT)
    ours = checkpoint.read_bytes()
    checkpoint.write_bytes(ours[:len(ours) // 2])  # damaged: cut in half
    damaged = c.cli("train", "--resume", RUN)
    checkpoint.write_bytes(Path("runs/momentum", CHECKPOINT).read_bytes())  # momentum's velocity: not plain SGD's
    return [damaged, c.cli("train", "--resume", RUN)]


def case_resume_checkpoint_deleted(c):
    c.interrupted(epochs=2)
    Path(RUN, CHECKPOINT).unlink()
    return [c.cli("train", "--resume", RUN)]


def case_resume_other_data(c):
    c.interrupted()
    (X, y), (X_test, y_test) = c.mnist
    return [raised(lambda: bp.resume_run(RUN, data=(X, y, X_test, y_test)))]


def tiny_train(X, **kw):
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((6, 4, 3), rng=rng)
    y = rng.integers(0, 3, len(X))
    return lambda: bp.train(net, X, y, epochs=1, rng=rng, **kw)


def case_not_finite_inputs(c):
    X = np.random.default_rng(0).random((20, 6))
    bad = np.where(np.eye(20, 6) > 0, np.nan, X)
    return [raised(tiny_train(bad)), raised(tiny_train(X, X_test=np.full((2, 6), np.inf), y_test=np.zeros(2, int)))]


def case_int64_pixels(c):
    return [raised(tiny_train((np.random.default_rng(0).random((20, 6)) * 255).astype(np.int64)))]


CASES = {
    "`--output` holds a run": case_holds_a_run,
    "`--output` holds other files (with or without `--overwrite`)": case_holds_other_files,
    "`--overwrite` on run files with no `run.json`": case_overwrite_without_run_json,
    "another run holds the folder": case_in_use,
    "`--output` is a file, or cannot be made": case_output_not_a_folder,
    "`--log-json` cannot be written": lambda c: [c.cli(*TRAIN, "--log-json", "out/log.jsonl", "--output", RUN)],
    "Ctrl-C": case_ctrl_c,
    "SIGTERM": case_sigterm,
    "Ctrl-C in the first epoch": case_ctrl_c_first_epoch,
    "a full disk (or file-size limit) while the run writes its folder": case_full_disk,
    "a net whose weights alone exceed this machine's memory": case_too_big,
    "divergence, readable path": case_diverged_readable,
    "divergence, kernel": case_diverged_kernel,
    "divergence in the first epoch": case_diverged_first_epoch,
    "`--resume` a complete run": case_resume_complete,
    "`--resume` a diverged run": case_resume_diverged,
    "`--resume` with a setting": case_resume_with_a_setting,
    "`--resume` a folder with no run": case_resume_no_run,
    "`--resume` a run.json without a status (older bareprop)": case_resume_no_status,
    "`--resume`, checkpoint damaged or another run's": case_resume_other_checkpoint,
    "`--resume`, checkpoint deleted": case_resume_checkpoint_deleted,
    "`resume_run(..., data=...)` on other data": case_resume_other_data,
    "`bp.train` on NaN or infinite inputs": case_not_finite_inputs,
    "`bp.train` on `int64` pixels": case_int64_pixels,
}


def test_docs_table_lists_exactly_the_tested_cases():
    assert sorted(docs_cases()) == sorted(CASES)


def test_the_table_is_read_as_written():
    """The parser itself: alternatives, a remark after the message, a span holding backticks."""
    assert code_spans("`a, b`, `c` (`d`)") == ["a, b", "c"]
    assert code_spans("`` x `y` z `` (or `w`)") == ["x `y` z"]
    assert re.fullmatch(template_regex("at runs/x: <n> of ... (x)", "/t/r"), "at /t/r: 3 of 10 y (x)")
    assert not re.fullmatch(template_regex("runs/x keeps 0-1", "/t/r"), "/t/r keeps 011")


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_exits_and_says_what_the_doc_says(case, data, mnist, capsys, monkeypatch, tmp_path):
    """The exit code (or exception) of the row, and each outcome's one line matching its message:
    the outcome i of a row of several messages matches the i-th."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_train, "load_data", lambda config, progress=None: data)
    exit, templates = docs_cases()[case]
    outcomes = CASES[case](Case(data, mnist, capsys, monkeypatch))
    assert len(templates) == 1 or len(outcomes) == len(templates), (templates, outcomes)
    for i, (got, said, folder) in enumerate(outcomes):
        template = templates[0] if len(templates) == 1 else templates[i]
        if exit.isdigit():  # the CLI: one line on stderr
            assert got == int(exit), said
            assert said.endswith("\n") and said.count("\n") == 1, said
            line = said[:-1]
            if not template.startswith("bareprop: "):  # an error, not an interruption
                assert line.startswith("bareprop: error: "), line
                line = line.removeprefix("bareprop: error: ")
        else:  # the library: an exception of that class
            assert issubclass(got, getattr(bp, exit, None) or getattr(builtins, exit)), (got, said)
            line = said
            assert "\n" not in line, line
        assert re.fullmatch(template_regex(template, folder), line), f"\n{line}\n{template}"
