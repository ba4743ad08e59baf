"""`bareprop evaluate | predict | report`: use a saved model or run folder. Parsing and printing only.

A bad model file is a ModelFileError, a bad run folder a ReportError: main() prints either as one
line with exit code 2. --json prints strict JSON on stdout (a figure that is not a number is null).
"""

import json
import math
import sys

from ..data.datasets import DATASETS
from .args import EXIT_USAGE, UsageError, error_line
from .data import download_progress


def add_model_parsers(commands):
    """Register `evaluate`, `predict` and `report` on the CLI's subcommands."""
    evaluate = commands.add_parser(
        "evaluate", help="test loss, accuracy and per-class precision, recall and F1 of a saved model",
        description="Score a model.npz on the 10,000 test images of MNIST (or --dataset): loss, accuracy, "
        "and a table of the precision, recall (the class's accuracy) and F1 of each class.")
    evaluate.add_argument("model", metavar="MODEL", help="a model.npz written by `bareprop train`")
    evaluate.add_argument("--dataset", choices=sorted(DATASETS), default="mnist", metavar="NAME",
                          help=f"the test set to score on, one of {', '.join(sorted(DATASETS))} (default mnist)")
    evaluate.add_argument("--data-dir", metavar="DIR", default=None,
                          help="the dataset cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
    evaluate.add_argument("--offline", action="store_true",
                          help="never open a connection (also BAREPROP_OFFLINE=1): a test set not in the cache is an error")
    evaluate.add_argument("--json", action="store_true",
                          help="print one JSON object instead: accuracy, loss, n, per-class precision, recall, F1 "
                          "and support, and the confusion matrix")
    predict = commands.add_parser(
        "predict", help="classify your own pictures of digits with a saved model",
        description="Classify PNG/JPEG pictures of single digits (any size, any colours) after MNIST's "
        "preprocessing; print one line per image: PATH: the three most probable digits (probability).")
    predict.add_argument("model", metavar="MODEL", help="a model.npz written by `bareprop train`")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="picture files of one digit each")
    predict.add_argument("--json", action="store_true",
                         help="print one JSON object per image instead (JSON Lines): file, predicted, probabilities")
    report = commands.add_parser(
        "report", help="rebuild report.html (and its charts' PNGs) from a saved run",
        description="Rebuild report.html and the PNG of each of its charts in a folder written by "
        "`bareprop train`, from its run.json and model.npz, and the test set from your own dataset cache "
        "(never a folder the run.json names). It writes into RUN_DIR alone and downloads nothing unless "
        "--download is given.")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `bareprop train`")
    report.add_argument("--data-dir", metavar="DIR", default=None,
                        help="the dataset cache folder (default: $BAREPROP_DATA, else the user's cache folder)")
    report.add_argument("--download", action="store_true",
                        help="download the run's dataset into the cache if it is not there (default: an error)")


def _number(x):
    """A float for JSON, or None (null) for NaN and infinities."""
    return float(x) if math.isfinite(x) else None


def evaluation_json(model, dataset, accuracy, loss, confusion):
    """`bareprop evaluate --json`'s object: the figures of the whole test set, of each class, and C[true, predicted]."""
    from ..report.metrics import precision_recall_f1

    precision, recall, f1, support = precision_recall_f1(confusion)  # (K,) each
    classes = [{"class": k, "name": name, "support": int(support[k]), "correct": int(confusion[k, k]),
                "precision": _number(precision[k]), "recall": _number(recall[k]), "f1": _number(f1[k])}
               for k, name in enumerate(DATASETS[dataset].classes)]
    return {"model": str(model), "dataset": dataset, "n": int(confusion.sum()), "correct": int(confusion.trace()),
            "accuracy": _number(accuracy), "loss": _number(loss), "classes": classes,
            "confusion": confusion.tolist()}


def run_evaluate(args):
    from ..data import load_dataset
    from ..experiment.modelfile import load
    from ..report.metrics import confusion_matrix, precision_recall_f1

    net = load(args.model)
    classes = DATASETS[args.dataset].classes
    with download_progress() as progress:
        X_test, y_test = load_dataset(args.dataset, "test", data_dir=args.data_dir, progress=progress,
                                      offline=True if args.offline else None)  # None: $BAREPROP_OFFLINE decides
    if net.sizes[0] != X_test.shape[1] or net.num_classes != len(classes):
        raise UsageError(f"{args.model}: the model maps {net.sizes[0]} inputs to {net.num_classes} classes; "
                         f"{args.dataset} needs {X_test.shape[1]} to {len(classes)}")
    accuracy, loss = net.score(X_test, y_test)
    confusion = confusion_matrix(y_test, net.predict(X_test), net.num_classes)  # (K, K)
    if args.json:
        print(json.dumps(evaluation_json(args.model, args.dataset, accuracy, loss, confusion), allow_nan=False))
        return
    print(f"test loss {loss:.4f} | accuracy {accuracy:.4f} ({confusion.trace()} of {len(y_test)})")
    named = list(classes) != [str(k) for k in range(len(classes))]  # fashion-mnist's classes have names
    print("class  examples  correct  precision  recall     f1" + ("  name" if named else ""))
    for k, (p, r, f, n) in enumerate(zip(*precision_recall_f1(confusion))):
        name = f"  {classes[k]}" if named else ""
        print(f"{k:>5}  {n:>8}  {confusion[k, k]:>7}  {p:>9.3f}  {r:>6.3f}  {f:>5.3f}{name}")


def prediction_line(path, probs, top=3):
    """`PATH: 7 (0.981)  2 (0.012)  3 (0.004)`: the most probable classes, best first."""
    best = sorted(range(len(probs)), key=lambda k: -probs[k])[:top]
    return f"{path}: " + "  ".join(f"{k} ({probs[k]:.3f})" for k in best)


def run_predict(args):
    """Print a line per readable image (a JSON object with --json); report each unreadable one on stderr;
    exit 2 if any was."""
    import numpy as np

    from ..data.digits import SIDE, ImageError, read_digit
    from ..experiment.modelfile import load

    net = load(args.model)
    if net.sizes[0] != SIDE * SIDE:
        raise UsageError(f"{args.model}: the model takes {net.sizes[0]} inputs, not a {SIDE}x{SIDE} image")
    failures = 0
    for path in args.images:
        try:
            x = read_digit(path)  # (784,)
        except ImageError as e:
            print(error_line(e), file=sys.stderr, flush=True)
            failures += 1
            continue
        probs = net.predict_proba(x[np.newaxis])[0]  # (K,)
        if args.json:
            line = json.dumps({"file": path, "predicted": int(probs.argmax()), "probabilities": probs.tolist()})
        else:
            line = prediction_line(path, probs)
        print(line, flush=True)
    return EXIT_USAGE if failures else 0


def run_report(args):
    from ..report.page import build_report

    with download_progress() as progress:
        page = build_report(args.run_dir, data_dir=args.data_dir, download=args.download, progress=progress)
    print(f"report in {page.resolve()}")
