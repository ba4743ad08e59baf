"""`bareprop draw MODEL [--output FILE]`: a page where you draw a digit and the model classifies it live.

Parsing and printing only; the page is report/draw.py's. A bad model file is a ModelFileError, a net
the page cannot run or a page that cannot be written a DrawError: main() prints either as one line
with exit code 2.
"""

from pathlib import Path


def add_draw_parser(commands):
    """Register `draw` on the CLI's subcommands."""
    draw = commands.add_parser(
        "draw", help="write a page where you draw a digit and a saved model classifies it as you draw",
        description="Write one self-contained HTML page (it opens offline, no server): draw a digit with the "
        "mouse or a finger and see the 28x28 input the network gets after `bareprop predict`'s "
        "preprocessing, and its ten probabilities, as you draw.")
    draw.add_argument("model", metavar="MODEL", help="a model.npz written by `bareprop train`, or its run folder")
    draw.add_argument("--output", metavar="FILE", default=None,
                      help="the page to write (default: draw.html beside the model)")


def run_draw(args):
    from ..experiment.modelfile import load
    from ..report.draw import write_draw_page

    model = Path(args.model)
    if model.is_dir():
        model = model / "model.npz"
    output = model.parent / "draw.html" if args.output is None else args.output
    print(f"page in {write_draw_page(load(model), output).resolve()}")
