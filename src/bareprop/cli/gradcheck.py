"""`bareprop gradcheck`: every registered layer's backward pass against finite differences (and
PyTorch, if installed), as a table. Parsing and printing only; the checks are check/'s."""

from ..core.arrays import BACKENDS
from .args import UsageError, positive

BATCH, WIDTH = 4, 5  # the default shape of the random input


def add_gradcheck_parser(commands):
    check = commands.add_parser(
        "gradcheck",
        help="check every layer's backward pass against finite differences and PyTorch",
        description="Check bp_input and bp_param of a small example of every registered layer and loss against "
        "central finite differences in float64 and, if PyTorch is installed, against PyTorch autograd; print a "
        "table of the errors. Exit code 1 if any check fails.",
    )
    check.add_argument("--batch", type=positive(int), default=BATCH, help=f"rows of the random input (default {BATCH})")
    check.add_argument("--width", type=positive(int), default=WIDTH, help=f"columns of the random input (default {WIDTH})")
    check.add_argument("--seed", type=int, default=0, help="seed for the weights, inputs and upstream gradients (default 0)")
    check.add_argument("--no-torch", dest="torch", action="store_false", help="finite differences only; skip PyTorch")
    check.add_argument("--backend", choices=BACKENDS, default="numpy",
                       help="run the layers on this array library's arrays, on its default device (default numpy; see docs/gpu.md)")


def gradcheck_table(results):
    """One row per checked tensor: layer, check, tensor, max abs error, max rel error, ok."""
    rows = [("layer", "check", "tensor", "max abs error", "max rel error", "ok")]
    for result in results:
        for c in result.checks:
            rows.append((result.layer, result.reference, c.tensor, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}",
                         "ok" if c.ok else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def run_gradcheck(args):
    """Print the table for every registered layer; return 1 if any check failed, else 0."""
    import numpy as np

    from ..check.gradcheck import check_registered
    from ..core.arrays import library

    with_torch = args.torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch = False
            print("PyTorch is not installed: checking against finite differences only "
                  "(pip install 'bareprop[torch]' for both)")
    try:
        library(args.backend)
    except ImportError as e:
        raise UsageError(str(e)) from None
    results = check_registered((args.batch, args.width), rng=np.random.default_rng(args.seed), with_torch=with_torch,
                               backend=args.backend)
    print(gradcheck_table(results))
    for result in results:
        if not result.ok:
            print(result.message)
    checks = sum(len(r.checks) for r in results)
    failures = sum(len(r.failures) for r in results)
    print(f"{failures} of {checks} checks failed" if failures else f"all {checks} checks passed")
    return 1 if failures else 0
