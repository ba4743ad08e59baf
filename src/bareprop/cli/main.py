"""The command line: argparse -> the library -> printing. No logic of its own.

    train      cli/train.py     a run (experiment/runner.py)
    data       cli/data.py      the dataset cache (data/datasets.py)
    gradcheck  cli/gradcheck.py the backward passes (check/)
    evaluate, predict, report   cli/models.py: a saved model or run folder
    draw       cli/draw.py      a page to draw a digit on (report/draw.py)

Every error the user can cause is one line on stderr, `bareprop: error: ...`, and exit code 2, whether
argparse, a command or the library found it (running out of memory too: NumPy's line, with the size
asked for). `bareprop` alone prints the help on stderr (exit code 2). Output piped into a reader that
stops early (`| head -1`) ends quietly, exit code 141. A run that diverged (TrainingDiverged) is
one such line and exit code 3; Ctrl-C, and SIGTERM, which is turned into the same KeyboardInterrupt,
print `bareprop: interrupted ...` and exit with 130. See docs/reliability.md.
"""

import os
import signal
import sys
import threading
from importlib import metadata

from ..core.train import TrainingDiverged
from ..data.errors import DataError
from ..experiment.config import ConfigError
from ..experiment.modelfile import ModelFileError
from ..experiment.runner import RunInterrupted
from ..report.draw import DrawError
from ..report.page import ReportError
from .args import EXIT_USAGE, Parser, UsageError, error_line
from .data import add_data_parser, run_data
from .draw import add_draw_parser, run_draw
from .gradcheck import add_gradcheck_parser, run_gradcheck
from .models import add_model_parsers, run_evaluate, run_predict, run_report
from .train import add_train_parser, run_train

COMMANDS = {"train": run_train, "data": run_data, "gradcheck": run_gradcheck, "evaluate": run_evaluate,
            "predict": run_predict, "report": run_report, "draw": run_draw}  # each returns its exit code, or None for 0
ERRORS = (UsageError, ConfigError, DataError, ModelFileError, ReportError, DrawError)  # one line, exit code 2
EXIT_DIVERGED, EXIT_INTERRUPTED = 3, 130
EXIT_PIPE = 141  # stdout closed by its reader: 128 + SIGPIPE


def version():
    """The installed distribution's version; a source tree that is not installed gives bareprop.__version__."""
    try:
        return metadata.version("bareprop")
    except metadata.PackageNotFoundError:
        from .. import __version__
        return __version__


def build_parser():
    parser = Parser(
        prog="bareprop",
        description="Neural networks with backpropagation written out by hand, one readable layer at a time.",
    )
    parser.add_argument("--version", action="version", version=f"bareprop {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)  # none: the help
    add_train_parser(commands)
    add_data_parser(commands)
    add_gradcheck_parser(commands)
    add_model_parsers(commands)
    add_draw_parser(commands)
    return parser


def closed_pipe():
    """stdout's reader went away (`bareprop evaluate | head -1`): stop quietly, as the Python docs
    recommend (library/signal.html, "Note on SIGPIPE"): stdout now goes to devnull, so the flush at
    exit cannot fail again. Exit code 141 (128 + SIGPIPE), as the shell's own tools end."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass
    return EXIT_PIPE


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        with _sigterm_as_interrupt():
            code = COMMANDS[args.command](args) or 0
        sys.stdout.flush()  # a reader that went away (`| head -1`) shows here, not at exit
        return code
    except ERRORS as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return closed_pipe()
    except MemoryError as e:  # NumPy's message gives the size asked for: "Unable to allocate 292. TiB for ..."
        print(error_line(f"out of memory: {e}" if str(e) else "out of memory"), file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt as e:
        print(f"bareprop: {str(e) or 'interrupted'}" + (f"; `bareprop train --resume {e.out}` continues the run"
                                                        if isinstance(e, RunInterrupted) else ""), file=sys.stderr)
        return EXIT_INTERRUPTED


class _sigterm_as_interrupt:
    """SIGTERM (kill, a job scheduler) raises KeyboardInterrupt, as Ctrl-C does: a run stops cleanly,
    its folder marked interrupted. Only in the main thread, where Python delivers signals."""

    def __enter__(self):
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGTERM, _terminated)

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)
        return False


def _terminated(signum, frame):
    raise KeyboardInterrupt("terminated (SIGTERM)")
