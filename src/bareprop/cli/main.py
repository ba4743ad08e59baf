"""The command line: argparse -> the library -> printing. No logic of its own.

    train      cli/train.py     a run (experiment/runner.py)
    data       cli/data.py      the dataset cache (data/datasets.py)
    gradcheck  cli/gradcheck.py the backward passes (check/)
    evaluate, predict, report   cli/models.py: a saved model or run folder
    draw       cli/draw.py      a page to draw a digit on (report/draw.py)

Every error the user can cause is one line on stderr, `bareprop: error: ...`, and exit code 2, whether
argparse, a command or the library found it. `bareprop` alone prints the help on stderr (exit code 2).
"""

import sys
from importlib import metadata

from ..data.errors import DataError
from ..experiment.config import ConfigError
from ..experiment.modelfile import ModelFileError
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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args) or 0
    except ERRORS as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bareprop: interrupted", file=sys.stderr)
        return 130
