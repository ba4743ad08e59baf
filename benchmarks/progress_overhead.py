"""What the live progress bar costs: the post's training with and without the bar's hooks.

    python benchmarks/progress_overhead.py [--epochs 2] [--repeats 5]

Runs alternate (none, plain lines, live bar on a forced terminal writing to /dev/null) so that a
busy machine slows all three alike; the best time of each is compared. On a shared machine those
wall times are noisy, so the time spent inside the live bar's hooks is also measured directly and
given as a share of its run.
"""

import argparse
import os
import time

import numpy as np
from rich.console import Console

import bareprop as bp
from bareprop.cli.progress import TrainDisplay


class Timed:
    """A display whose hooks count the seconds spent in them."""

    def __init__(self, display):
        self.display, self.seconds = display, 0.0

    def __enter__(self):
        self.display.__enter__()
        return self

    def __exit__(self, *exc):
        return self.display.__exit__(*exc)

    def on_batch(self, *args):
        start = time.perf_counter()
        self.display.on_batch(*args)
        self.seconds += time.perf_counter() - start

    def on_epoch(self, *args):
        start = time.perf_counter()
        self.display.on_epoch(*args)
        self.seconds += time.perf_counter() - start


def run(X, y, epochs, display):
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((784, 32, 10), rng=rng)
    start = time.perf_counter()
    if display is None:
        bp.train(net, X, y, epochs=epochs, rng=rng)
    else:
        with display:
            bp.train(net, X, y, epochs=epochs, rng=rng, on_epoch=display.on_epoch, on_batch=display.on_batch)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    X, y = bp.load_mnist("train", dtype=np.uint8)  # as `bareprop train` keeps them
    best = {"none": [], "plain": [], "live": []}
    shares = []
    with open(os.devnull, "w") as null:
        for _ in range(args.repeats):
            best["none"].append(run(X, y, args.epochs, None))
            best["plain"].append(run(X, y, args.epochs, TrainDisplay(
                epochs=args.epochs, examples=len(X), batch_size=64, console=Console(file=null, force_terminal=False))))
            live = TrainDisplay(epochs=args.epochs, examples=len(X), batch_size=64,
                                console=Console(file=null, force_terminal=True, width=120))
            best["live"].append(run(X, y, args.epochs, live))
        for _ in range(args.repeats):  # apart: timing the hooks costs a little itself
            timed = Timed(TrainDisplay(epochs=args.epochs, examples=len(X), batch_size=64,
                                       console=Console(file=null, force_terminal=True, width=120)))
            seconds = run(X, y, args.epochs, timed)
            shares.append(timed.seconds / seconds)
    base = min(best["none"])
    for name, times in best.items():
        print(f"{name:>5}: best {min(times):.3f} s of {len(times)}  ({(min(times) / base - 1) * 100:+.1f}%)")
    print(f"live bar: {live.redraws} redraws for {args.epochs * -(-len(X) // 64)} batches; "
          f"time inside its hooks: {min(shares) * 100:.2f}% to {max(shares) * 100:.2f}% of each run")


if __name__ == "__main__":
    main()
