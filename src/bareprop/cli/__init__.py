"""The command line: argparse -> the library -> printing."""

from .main import main

__all__ = ["main"]
