"""`bareprop data list | verify [NAME] | download NAME | import NAME DIR`: the dataset cache from the shell.

Parsing and printing only; the work is in data/datasets.py. Errors are DataError, which the CLI's
main() prints as one line with exit code 2.
"""

import sys
from contextlib import contextmanager

from ..data.datasets import (
    ALL_FILES,
    DATASETS,
    DataError,
    dataset_folder,
    dataset_status,
    download_dataset,
    get_dataset,
    import_dataset,
    verify_dataset,
)

EXIT_DATA_ERROR = 2


def add_data_parser(commands):
    """Register `data` and its actions on the CLI's subcommands."""
    data = commands.add_parser(
        "data",
        help="list, verify, download and import datasets",
        description="The datasets and their cache folder (--data-dir, else $BAREPROP_DATA, else the user's "
        "cache folder). mnist ships inside bareprop; the others are downloaded once, verified, and "
        "checked again on every load.",
    )
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(data))
    actions.required = True
    names = sorted(DATASETS)

    def action(name, help):
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        parser.add_argument("--data-dir", metavar="DIR", default=None,
                            help="the cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
        return parser

    action("list", "name, classes, files, size, verified or not, and location of every dataset")
    action("verify", "check every file of a dataset (all datasets present if NAME is left out)").add_argument(
        "name", metavar="NAME", nargs="?", choices=names, help=f"one of {', '.join(names)}")
    action("download", "download a dataset into the cache, verified, with a progress bar").add_argument(
        "name", metavar="NAME", choices=names, help=f"one of {', '.join(names)}")
    imp = action("import", "verify manually downloaded files and copy them into the cache")
    imp.add_argument("name", metavar="NAME", choices=names, help=f"one of {', '.join(names)}")
    imp.add_argument("source", metavar="DIR", help=f"the folder holding {', '.join(ALL_FILES)}")
    return data


def run_data(args):
    """Carry out one `bareprop data` action; return the exit code."""
    return {"list": _list, "verify": _verify, "download": _download, "import": _import}[args.data_command](args)


def _size(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _list(args):
    rows, problems = [], []
    for name in sorted(DATASETS):
        folder, present, size, problem = dataset_status(name, data_dir=args.data_dir)
        status = "verified" if problem is None else "missing" if present == 0 else "NOT VERIFIED"
        if problem is not None and present:
            problems.append(f"{name}: {problem}")
        rows.append((name, str(len(DATASETS[name].classes)), f"{present}/{len(ALL_FILES)}", _size(size),
                     status, str(folder)))
    header = ("NAME", "CLASSES", "FILES", "SIZE", "STATUS", "LOCATION")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    for line in problems:
        print(line)
    return 0


def _print_verified(name, report):
    for facts in report.values():
        print(f"OK  {facts['path']}  sha256 {facts['sha256']}")
    print(f"{name}: OK, {len(report)} files verified")


def _verify(args):
    if args.name is not None:
        _print_verified(args.name, verify_dataset(args.name, data_dir=args.data_dir))
        return 0
    failed = False
    for name in sorted(DATASETS):
        folder = dataset_folder(name, args.data_dir)
        if not any((folder / f).exists() for f in ALL_FILES):
            print(f"{name}: not downloaded ({folder})")
            continue
        try:
            _print_verified(name, verify_dataset(name, data_dir=args.data_dir))
        except DataError as e:
            print(f"bareprop: error: {e}", file=sys.stderr)
            failed = True
    return EXIT_DATA_ERROR if failed else 0


def _download(args):
    if get_dataset(args.name).shipped:
        print(f"{args.name} ships inside bareprop and is verified on every load: nothing to download")
        return 0
    with download_progress() as progress:
        folder = download_dataset(args.name, data_dir=args.data_dir, progress=progress)
    _print_verified(args.name, verify_dataset(args.name, data_dir=args.data_dir))
    print(f"{args.name} is in {folder}")
    return 0


def _import(args):
    if get_dataset(args.name).shipped:
        print(f"{args.name} ships inside bareprop and is verified on every load: nothing to import")
        return 0
    folder = import_dataset(args.name, args.source, data_dir=args.data_dir)
    _print_verified(args.name, verify_dataset(args.name, data_dir=args.data_dir))
    print(f"{args.name} is in {folder}")
    return 0


class _Bar:
    """A rich progress bar per file (bytes, speed, time left), started on the first byte reported."""

    def __init__(self):
        self.progress, self.tasks = None, {}

    def __call__(self, file, done, total):
        if self.progress is None:
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.progress.start()
        if file not in self.tasks:
            self.tasks[file] = self.progress.add_task(file, total=total)
        self.progress.update(self.tasks[file], completed=done, total=total)

    def close(self):
        if self.progress is not None:
            self.progress.stop()


@contextmanager
def download_progress():
    """A progress(file, done, total) callback that draws download bars on stderr."""
    bar = _Bar()
    try:
        yield bar
    finally:
        bar.close()
