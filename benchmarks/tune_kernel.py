"""Re-measure the kernel's machine-tuned constants on this CPU, side by side in one process.

The constants marked "tuned" in src/bareprop/fast/_kernel.c can be overridden with -D. This script
compiles the kernel once per setting (gcc, the flags setup.py uses, plus -DNAME=VALUE) into a
temporary folder, loads every build into this process, and times one kernel epoch (sgd_steps over
the examples, nothing else) with each, the settings interleaved, `--reps` times. It prints each
setting's median time relative to the current one: below 1.00 is faster. Nothing is installed.

    python benchmarks/tune_kernel.py                 # every knob, the widths where it matters
    python benchmarks/tune_kernel.py --knob spread --widths 512 1024 --reps 7
    python benchmarks/tune_kernel.py --knob by_column --define NO_AVX512_VARIANT=1   # an AVX2 CPU's build

Knobs (see docs/speed.md, "Re-tuning on another CPU"):
  tile       TILE_BYTES: bytes of a weight row the first layer does for the whole batch before the next
  by_column  BY_COLUMN_MIN_ROW_BYTES: from which first-layer row size the update runs by column (0: never)
  spread     SPREAD_BYTES: a row stride that is a multiple of this gets one cache line more (0: never)
  avx2       NO_AVX2_VARIANT: 1 drops the functions' builds for CPUs with AVX2 and FMA, and with AVX-512 (x86-64, GCC)
  avx512     NO_AVX512_VARIANT: 1 drops the build for CPUs with AVX-512 (64-byte vectors): such a CPU runs the AVX2 one

To adopt a winner, change the #define in _kernel.c and rebuild (pip install -e .). The numbers the
kernel computes do not depend on these constants' values beyond rounding order: tests/test_kernel.py
must pass with the new ones.
"""

import argparse
import importlib.util
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "bareprop" / "fast" / "_kernel.c"
sys.path.insert(0, str(ROOT / "src"))

from bareprop import NeuralNet, load_mnist  # noqa: E402

# knob -> (the define, the settings to compare (the first is _kernel.c's), the widths where it matters)
KNOBS = {
    "tile": ("TILE_BYTES", [512, 256, 1024, 1 << 30], [256, 1024]),
    "by_column": ("BY_COLUMN_MIN_ROW_BYTES", [512, 0, 128, 2048], [32, 64, 128, 1024]),
    "spread": ("SPREAD_BYTES", [2048, 0], [256, 512, 1024]),
    "avx2": ("NO_AVX2_VARIANT", [0, 1], [32, 256]),  # 1: only the generic x86-64 build of each function
    "avx512": ("NO_AVX512_VARIANT", [0, 1], [32, 256, 1024]),  # 1: the AVX2 build is the widest
}


def build(defines, folder):
    """The kernel compiled with `defines` ({name: value}) into `folder`; returns the loaded module."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = Path(folder) / f"_kernel{suffix}"
    flags = [f"-D{name}={value}" for name, value in defines.items()
             if not (name.startswith("NO_") and str(value) == "0")]  # NO_..._VARIANT=0: left undefined
    subprocess.run(["gcc", "-O3", "-Wno-psabi", "-fopenmp", "-fPIC", "-shared", *flags,
                    f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(target)], check=True)
    spec = importlib.util.spec_from_file_location("bareprop.fast._kernel", target)
    module = importlib.util.module_from_spec(spec)  # not put in sys.modules: several builds side by side
    spec.loader.exec_module(module)
    return module


def epoch_seconds(module, X, y, width, batch_size, threads, dtype):
    """One kernel epoch over X (uint8 pixels) for a fresh (784, width, 10) net: its seconds."""
    sizes = (X.shape[1], width, 10)
    net = NeuralNet(sizes, rng=np.random.default_rng(0), dtype=dtype)
    is_double = dtype == np.float64
    rows = module.SparseRows(X, True, *X.shape, is_double, threads)
    order = np.random.default_rng(1).permutation(len(X)).astype(np.int64)
    picked, predicted = np.empty(len(X), dtype), np.empty(len(X), np.int64)
    workspace = module.Workspace()
    start = time.perf_counter()
    module.sgd_steps(tuple(net.params()), sizes, is_double, rows, y, order, 0, len(X), batch_size, 0.001,
                     picked, predicted, threads, workspace)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--knob", choices=sorted(KNOBS), action="append", help="the knobs to measure (all)")
    parser.add_argument("--widths", type=int, nargs="+", help="hidden widths (the knob's own list)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--threads", type=int, default=1, help="the kernel's threads (train()'s default: 1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--examples", type=int, default=12000, help="examples per timed epoch")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--define", action="append", default=[], metavar="NAME=VALUE",
                        help="also -DNAME=VALUE in every build (e.g. NO_AVX512_VARIANT=1: the AVX2 build)")
    args = parser.parse_args(argv)
    X, y = load_mnist("train", dtype=np.uint8)
    X, y = X[:args.examples], y[:args.examples].astype(np.int64)
    dtype = np.dtype(args.dtype).type
    with tempfile.TemporaryDirectory() as folder:
        for knob in args.knob or sorted(KNOBS):
            name, values, widths = KNOBS[knob]
            builds = {}
            for value in values:
                (Path(folder) / f"{name}{value}").mkdir()
                builds[value] = build({**dict(d.split("=", 1) for d in args.define), name: value},
                                      Path(folder) / f"{name}{value}")
            print(f"\n{knob}: {name} = {values[0]} (as in _kernel.c) against {values[1:]}; "
                  f"{args.dtype}, {args.threads} thread(s), median of {args.reps}, times relative to {values[0]}")
            for width in args.widths or widths:
                for batch_size in args.batch_sizes:
                    ratios = {value: [] for value in values[1:]}
                    base = []
                    for value, module in builds.items():  # warm-up: page in the code, the data, the workspace
                        epoch_seconds(module, X[:2000], y[:2000], width, batch_size, args.threads, dtype)
                    for _ in range(args.reps):
                        seconds = {value: epoch_seconds(module, X, y, width, batch_size, args.threads, dtype)
                                   for value, module in builds.items()}  # interleaved: noise hits them alike
                        base.append(seconds[values[0]])
                        for value in values[1:]:
                            ratios[value].append(seconds[value] / seconds[values[0]])
                    medians = {value: statistics.median(r) for value, r in ratios.items()}
                    best = min(medians, key=medians.get)
                    verdict = values[0] if medians[best] > 0.97 else best  # within 3%: keep what is there
                    cells = "  ".join(f"{value}: {m:.2f}x" for value, m in medians.items())
                    print(f"  width {width:5} batch {batch_size:5}  {values[0]}: {statistics.median(base):.3f}s  "
                          f"{cells}  -> {name}={verdict}")


if __name__ == "__main__":
    main()
