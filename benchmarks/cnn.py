"""Side-by-side training speed of a small CNN: bareprop (its compiled twin, and its readable layers) against
idiomatic PyTorch.

    python benchmarks/cnn.py                          # the cnn preset, one epoch of MNIST, 3 interleaved repetitions
    python benchmarks/cnn.py --examples 6400 --reps 5 --json benchmarks/results/cnn.json
    python benchmarks/cnn.py --net conv:8:5,pool:2,dense:64 --threads 2
    python benchmarks/cnn.py --loaded --no-readable --examples 12800 --json benchmarks/results/cnn_loaded.json

Both train the same net (`bareprop train --net SPEC`: Reshape, Conv2d padded to keep the size, ReLU,
MaxPool2d, ..., Linear), from the same initial weights, on the same float32 MNIST rows in the same
batches of 64, with plain SGD on the batch-summed cross-entropy: bareprop through `bareprop.train`, by
default (path="auto": the compiled twin of fast/conv.py, a direct convolution on channels-last images)
and on path="readable" (its readable layers: im2col, BLAS, col2im), PyTorch as one writes it (nn.Conv2d,
nn.MaxPool2d, autograd, optim.SGD). The repetitions are interleaved (A B C A B C ...), each on a fresh copy of the
initial weights; each implementation gets the same number of threads (`--threads`, default 1: the
default of both CLIs on a shared machine is what matters here). The table gives the median [min-max]
training time of the examples, per-epoch time scaled to 60,000 examples, the ratio to PyTorch, and the
GFLOP/s each reaches (the multiply-adds of the forward pass, the weight gradients and the input
gradients below the first weighted layer, times 2). --loaded times them all with a CPU-bound process
pinned to every core (speed.py's busy_cores), as on a shared machine.

Not collected by pytest: speed is measured here, never asserted in a unit test.
"""

import argparse
import contextlib
import copy
import json
import platform
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info

import bareprop as bp
from bareprop.core.conv import Conv2d, Flatten, MaxPool2d, Reshape
from bareprop.core.layers import Linear, ReLU
from bareprop.experiment.config import NETS, RunConfig, build_net

LR, BATCH = 0.001, 64


def flops_per_example(net):
    """2 x the multiply-adds of one example's forward pass, weight gradients and input gradients (not
    below the first weighted layer, which neither implementation computes)."""
    shape, total, first = (784,), 0, True
    for layer in net.layers:
        if isinstance(layer, Reshape):
            shape = layer.shape
        elif isinstance(layer, Conv2d):
            k, s, p = layer.kernel_size, layer.stride, layer.padding
            side = (shape[1] + 2 * p - k) // s + 1
            macs = side * side * layer.W.size  # every output pixel: (F+1) x O
            total += macs * (2 if first else 3)  # forward, dW, and dX unless first
            shape, first = (layer.out_channels, side, side), False
        elif isinstance(layer, MaxPool2d):
            side = (shape[1] - layer.kernel_size) // layer.stride + 1
            shape = (shape[0], side, side)
        elif isinstance(layer, Flatten):
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, Linear):
            total += layer.W.size * (2 if first else 3)
            shape, first = (layer.out_features,), False
    return 2 * total


def torch_model(net):
    """The same net in PyTorch, its weights copied from bareprop's W ([weight as rows; bias])."""
    import torch

    modules = []
    for layer in net.layers:
        if isinstance(layer, Reshape):
            modules.append(torch.nn.Unflatten(1, layer.shape))
        elif isinstance(layer, Conv2d):
            conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                                   padding=layer.padding)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(layer.W[:-1].T.reshape(conv.weight.shape)))
                conv.bias.copy_(torch.from_numpy(layer.W[-1]))
            modules.append(conv)
        elif isinstance(layer, ReLU):
            modules.append(torch.nn.ReLU())
        elif isinstance(layer, MaxPool2d):
            modules.append(torch.nn.MaxPool2d(layer.kernel_size, layer.stride))
        elif isinstance(layer, Flatten):
            modules.append(torch.nn.Flatten())
        elif isinstance(layer, Linear):
            linear = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.W[:-1].T))
                linear.bias.copy_(torch.from_numpy(layer.W[-1]))
            modules.append(linear)
        else:
            raise ValueError(f"no PyTorch module for {layer!r} here")
    return torch.nn.Sequential(*modules)


def run_bareprop(net, X, y, order_seed, threads, path="auto"):
    net = copy.deepcopy(net)
    start = time.perf_counter()
    bp.train(net, X, y, epochs=1, batch_size=BATCH, rng=np.random.default_rng(order_seed), threads=threads, path=path)
    return time.perf_counter() - start


def run_torch(net, X, y, order_seed, threads):
    import torch
    import torch.nn.functional as F

    from bareprop.core.train import batches

    torch.set_num_threads(threads)
    model = torch_model(net)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    for idx in batches(np.random.default_rng(order_seed).permutation(len(X)), BATCH):
        optimizer.zero_grad()
        F.cross_entropy(model(Xt[idx]), yt[idx], reduction="sum").backward()
        optimizer.step()
    return time.perf_counter() - start


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="cnn", help=f"a --net spec or preset (default cnn: {NETS['cnn']})")
    parser.add_argument("--examples", type=int, default=60000, help="training examples timed (default: the epoch)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--no-readable", action="store_true", help="leave out the readable layers (the slowest row)")
    parser.add_argument("--loaded", action="store_true", help="with a CPU-bound process pinned to every core")
    args = parser.parse_args()
    import torch

    X, y = bp.load_mnist("train")
    X, y = X[:args.examples], y[:args.examples]
    net = build_net(RunConfig(net=args.net), np.random.default_rng(0))
    flops = flops_per_example(net) * len(X)
    times = {"bareprop": [], "bareprop, readable layers": [], "pytorch": []}
    run_torch(net, X[:BATCH * 4], y[:BATCH * 4], 0, args.threads)  # warm up: PyTorch's first steps choose kernels
    from speed import busy_cores  # benchmarks/speed.py, beside this script

    with busy_cores() if args.loaded else contextlib.nullcontext(0) as n_busy:
        for rep in range(args.reps):
            times["bareprop"].append(run_bareprop(net, X, y, rep, args.threads))
            if not args.no_readable:
                times["bareprop, readable layers"].append(run_bareprop(net, X, y, rep, args.threads, path="readable"))
            times["pytorch"].append(run_torch(net, X, y, rep, args.threads))
    times = {name: t for name, t in times.items() if t}
    from bareprop.fast import conv

    path = "readable" if conv.why_not(net) or conv._conv is None else f"kernel ({conv._conv.ISA})"
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "numpy": np.__version__, "torch": torch.__version__, "bareprop": bp.__version__,
                    "blas": [{k: v for k, v in info.items() if k in ("internal_api", "version", "architecture")}
                             for info in threadpool_info()]},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "net": RunConfig(net=args.net).resolved().net,
        "layers": repr(net), "path": path, "examples": len(X), "batch": BATCH, "threads": args.threads,
        "reps": args.reps, "busy_processes": n_busy,
        "gflop": flops / 1e9,
        "results": {name: {"seconds": summary(t), "epoch_seconds": statistics.median(t) * 60000 / len(X),
                           "gflops": flops / statistics.median(t) / 1e9} for name, t in times.items()},
    }
    torch_median = statistics.median(times["pytorch"])
    for name, r in result["results"].items():
        r["over_pytorch"] = statistics.median(times[name]) / torch_median
    result["bareprop_over_pytorch"] = result["results"]["bareprop"]["over_pytorch"]
    print(f"{result['layers']}\n{len(X)} examples, batches of {BATCH}, {args.threads} thread(s), median of {args.reps}, "
          f"{flops / 1e9:.1f} GFLOP; bareprop's default path: {path}"
          + (f"; {n_busy} busy processes, one pinned to each core" if n_busy else ""))
    print("| implementation | time | per epoch (60,000) | GFLOP/s | time / PyTorch's |\n|---|---|---|---|---|")
    for name, r in result["results"].items():
        s = r["seconds"]
        print(f"| {name} | {s['median']:.2f} s [{s['min']:.2f}-{s['max']:.2f}] | {r['epoch_seconds']:.1f} s | "
              f"{r['gflops']:.1f} | {r['over_pytorch']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
