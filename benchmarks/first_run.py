"""What a first `bareprop train` costs, start to exit: the default run (report included) beside `--no-plot`.

    python benchmarks/first_run.py                                  # 5 interleaved repetitions
    python benchmarks/first_run.py --reps 9 --json benchmarks/results/first_run.json

Each command runs in a fresh process, as a user types it, with its output to a pipe (the plain
per-epoch lines, no live bar): `bareprop train` (the post's run, 10 epochs, with report.html and
loss_accuracy.png), `bareprop train --no-plot`, and `bareprop report RUN` (the on-demand rebuild that
writes every chart's PNG). The repetitions are interleaved (A B C A B C ...) so that a busy machine
slows them alike; the table gives the median [min-max] wall time, the peak RSS of each process
(os.wait4's ru_maxrss, the child's own), and the default run's time over --no-plot's. The load
average before and after is recorded: compare the ratio, not the absolute times, on a busy machine.

Not collected by pytest: speed is measured here, never asserted in a unit test.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

BAREPROP = [sys.executable, "-m", "bareprop"]


def timed(argv):
    """(wall seconds, peak RSS in MB) of one fresh process; fails loudly if the command does."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def commands(folder, rep):
    """name -> argv; the report command rebuilds the folder this repetition's default run wrote."""
    run = folder / f"default-{rep}"
    return {
        "bareprop train": [*BAREPROP, "train", "--output", str(run)],
        "bareprop train --no-plot": [*BAREPROP, "train", "--no-plot", "--output", str(folder / f"no-plot-{rep}")],
        "bareprop report RUN (every PNG)": [*BAREPROP, "report", str(run)],
    }


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def cpu_name():
    """The CPU's model name (Linux's /proc/cpuinfo), else what platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def machine():
    versions = {name: metadata.version(name) for name in ("bareprop", "numpy", "rich", "vl-convert-python")}
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(), **versions}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each command (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    args = parser.parse_args()

    load_before = os.getloadavg()
    seen = {}
    with tempfile.TemporaryDirectory() as folder:
        timed([*BAREPROP, "train", "--epochs", "1", "--no-plot", "--output", str(Path(folder) / "warm-up")])
        for rep in range(args.reps):
            for name, argv in commands(Path(folder), rep).items():
                seconds, rss = timed(argv)
                seen.setdefault(name, {"seconds": [], "peak_rss_mb": []})
                seen[name]["seconds"].append(seconds)
                seen[name]["peak_rss_mb"].append(rss)
    load_after = os.getloadavg()

    results = {name: {"seconds": summary(v["seconds"]), "peak_rss_mb": max(v["peak_rss_mb"])} for name, v in seen.items()}
    default, bare = (statistics.median(seen[name]["seconds"]) for name in ("bareprop train", "bareprop train --no-plot"))
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "reps": args.reps,
           "load_average_1_5_15": {"before": load_before, "after": load_after},
           "commands": results, "default_over_no_plot": default / bare}

    print(f"{out['machine']['cpu']}, {out['machine']['cores']} cores; Python {out['machine']['python']}, "
          f"NumPy {out['machine']['numpy']}, vl-convert {out['machine']['vl-convert-python']}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"| command | median | min-max | peak RSS |\n|---|---|---|---|")
    for name, r in results.items():
        s = r["seconds"]
        print(f"| `{name}` | {s['median']:.2f} s | {s['min']:.2f}-{s['max']:.2f} s | {r['peak_rss_mb']:.0f} MB |")
    print(f"default run / --no-plot: {out['default_over_no_plot']:.2f}x ({args.reps} interleaved repetitions)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
