"""What every command shares: one-line errors (exit code 2) and the argument types."""

import argparse

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def error_line(message):
    """The one format of every error the user can cause, whichever command or library part found it."""
    return f"bareprop: error: {message}"


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line in the CLI's one format (no usage dump) and exit with code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, error_line(message) + "\n")


def _number(kind, ok, expected, must):
    """An argument type: `kind` of the text, refused unless ok(value) (and finite)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value) or value == float("inf"):  # nan fails every comparison
            raise argparse.ArgumentTypeError(f"must {must}, got {text}")
        return value
    return parse


def positive(kind):
    return _number(kind, lambda v: v > 0, f"a positive {kind.__name__}", "be positive")


def non_negative(kind):
    return _number(kind, lambda v: v >= 0, "a number >= 0", "be >= 0")


fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)", "lie in [0, 1)")  # a dropout rate, a momentum


def widths(text):
    """Comma-separated layer widths, e.g. 784,256,128,10."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths separated by commas, such as 784,256,10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected two or more positive widths, got {text!r}")
    return tuple(sizes)
