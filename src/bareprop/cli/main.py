"""The command line: argparse -> the library -> printing. No logic of its own.

    train      cli/train.py     a run (experiment/runner.py)
    data       cli/data.py      the dataset cache (data/datasets.py)
    gradcheck  cli/gradcheck.py the backward passes (check/)
    evaluate, predict, report   cli/models.py: a saved model or run folder

Every error the user can cause is one line on stderr and exit code 2.
"""

import sys

from ..data.errors import DataError
from ..experiment.config import ConfigError
from ..experiment.modelfile import ModelFileError
from ..report.page import ReportError
from .args import EXIT_USAGE, Parser, UsageError
from .data import add_data_parser, run_data
from .gradcheck import add_gradcheck_parser, run_gradcheck
from .models import add_model_parsers, run_evaluate, run_predict, run_report
from .train import add_train_parser, run_train

COMMANDS = {"train": run_train, "data": run_data, "gradcheck": run_gradcheck, "evaluate": run_evaluate,
            "predict": run_predict, "report": run_report}  # each returns its exit code, or None for 0
ERRORS = (UsageError, ConfigError, DataError, ModelFileError, ReportError)  # one line, exit code 2


def build_parser():
    parser = Parser(
        prog="bareprop",
        description="Neural networks with backpropagation written out by hand, one readable layer at a time.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    add_train_parser(commands)
    add_data_parser(commands)
    add_gradcheck_parser(commands)
    add_model_parsers(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except ERRORS as e:
        print(f"bareprop: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("bareprop: interrupted", file=sys.stderr)
        return 130
