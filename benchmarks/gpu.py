"""The GPU check: bareprop's readable layers on torch-CUDA and CuPy against idiomatic PyTorch, in one run.

    python benchmarks/gpu.py                              # everything on CUDA, 3 interleaved repetitions
    python benchmarks/gpu.py --json benchmarks/results/gpu.json
    python benchmarks/gpu.py --device cpu --quick --reps 1   # a check that it runs, in seconds, without a GPU
    python benchmarks/gpu.py --table benchmarks/results/gpu.json   # the README's table, from a saved run

On a lent GPU (the `device` tool): its image has PyTorch, CuPy, NumPy and threadpoolctl but not
array-api-compat, and it cannot reach a registry, so carry that one (pure Python) as a wheel. Here, once:

    echo /.whl/ >> .git/info/exclude
    python -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat==1.16.0

then one `run` with carry [".whl"] and timeout_s 420 (the command itself should take a minute or two:
three implementations' 10-epoch runs, three times each, then the wide MLP's steps):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=src:/tmp/site python3 benchmarks/gpu.py --json $OUT/gpu.json

and copy the JSON that comes back to benchmarks/results/gpu.json; the README's GPU table is made from
it (`--table`). Reference on an H200: the post's classes on CUDA tensors 3.0 s, idiomatic PyTorch 7.6 s;
PyTorch reaches 48 TFLOP/s on the wide MLP.

What it measures, each implementation from the same initial weights (drawn with NumPy, seed 0):

- The post's configuration: 784 -> 32 -> ReLU -> 10, softmax + cross-entropy summed over batches of 64,
  plain SGD at lr 0.001, 10 epochs of the 60,000 MNIST images, the same permutation every epoch for
  everyone (np.random.default_rng(0)). bareprop runs `bareprop.train(path="readable")` with its weights
  moved by `net.to("torch", device)` (and `net.to("cupy")`) and the uint8 pixels moved by
  `bareprop.core.arrays.asarray` (scaled by 1/255 in its loop, so that is timed); its time is the sum of
  History.seconds (the test set is scored after each epoch, outside that time). PyTorch runs as one
  writes it: nn.Sequential(nn.Linear, nn.ReLU, nn.Linear), CrossEntropyLoss(reduction="sum"),
  optim.SGD, eager (no CUDA graphs, no torch.compile), on float32 pixels moved to the device and scaled
  beforehand; its time is the wall time of the loop, the device synchronized before the clock stops.
  Each gives its final training accuracy (bareprop: the mean of the epoch's batch accuracies, as in the
  post; PyTorch: correct / N) and its test accuracy after training.
- The wide MLP: 784 -> 4096 -> 4096 -> 10 (ReLU), float32, one batch of 1024 MNIST images, training steps
  (bareprop: net.evaluate + net.gradient_descent, which runs backprop; PyTorch: forward,
  CrossEntropyLoss(reduction="sum"), backward, optim.SGD.step) timed after a warm-up. TFLOP/s counts
  2 x the multiply-adds of the forward pass, the weight gradients (bias row included) and the input
  gradients of every layer but the first.

The repetitions are interleaved (A B C A B C ...), each of the post's runs on a fresh copy of the initial
weights; the JSON gives the median [min-max] seconds and each one's ratio to PyTorch. A measurement that
fails (CuPy missing, out of memory) is recorded as {"error": ...} and the others go on; one that cannot
run here (CuPy without CUDA) as {"skipped": ...}. The exit code is 0 unless every measurement failed.
The JSON goes to stdout; progress and the table to stderr.

Not collected by pytest: speed is measured here, never asserted in a unit test
(tests/test_gpu_benchmark.py only checks that `--device cpu --quick` runs).
"""

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import traceback

import numpy as np

import bareprop as bp
from bareprop.core.arrays import asarray, backend_of
from bareprop.core.layers import Linear, ReLU
from bareprop.core.train import batches

LR, BATCH, SEED = 0.001, 64, 0  # the post's step, batch size, and the seed of the weights and the order
POST_SIZES = (784, 32, 10)
WIDE_LR = 1e-5  # the wide MLP steps on one batch again and again: a small step keeps its loss finite
SETTINGS = {  # --quick shrinks every measurement, for a smoke run on a CPU
    "full": {"examples": 60000, "test_examples": 10000, "epochs": 10, "warmup_examples": 640,
             "wide_sizes": (784, 4096, 4096, 10), "wide_batch": 1024, "wide_steps": 100, "wide_warmup": 10},
    "quick": {"examples": 2000, "test_examples": 1000, "epochs": 1, "warmup_examples": 256,
              "wide_sizes": (784, 256, 256, 10), "wide_batch": 128, "wide_steps": 5, "wide_warmup": 2},
}
CUPY, PYTORCH = "bareprop_cupy", "pytorch"
PYTORCH_VARIANT = ("eager nn.Sequential(Linear, ReLU, ...) + CrossEntropyLoss(reduction='sum') + optim.SGD; "
                   "no CUDA graphs, no torch.compile; train accuracy and loss summed on the device, read once an epoch")


class Skipped(Exception):
    """A measurement that cannot run in this setting (not a failure): recorded as {"skipped": reason}."""


def log(message):
    print(message, file=sys.stderr, flush=True)


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


# --- the machine -------------------------------------------------------------------------------------

def versions():
    """The versions of everything that ran (None for what is not installed)."""
    import torch

    found = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
             "torch_cuda": torch.version.cuda, "bareprop": bp.__version__}
    for name in ("array_api_compat", "cupy"):
        try:
            found[name] = __import__(name).__version__
        except Exception:  # not installed, or (CuPy) installed without a usable CUDA
            found[name] = None
    return found


def machine(device):
    import torch

    info = {"device": device, "cpu": platform.processor() or platform.machine()}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["name"] = torch.cuda.get_device_name(device)
        info["float32_matmul_precision"] = torch.get_float32_matmul_precision()  # "highest": no TF32
    else:
        info["name"] = info["cpu"]
    return info


def synchronize(A):
    """Wait until the device has finished the work queued on A's device (nothing to do on a CPU)."""
    backend = backend_of(A)
    if backend == "torch" and A.device.type == "cuda":
        import torch

        torch.cuda.synchronize(A.device)
    elif backend == "cupy":
        A.device.synchronize()


def require_cupy(device):
    """CuPy's module; Skipped when the run is not on CUDA, an error (recorded as such) when CuPy is missing."""
    if not device.startswith("cuda"):
        raise Skipped(f"CuPy runs on CUDA only, and this run's device is {device!r}")
    try:
        import cupy
    except Exception as e:
        raise RuntimeError(f"cupy is not importable: {type(e).__name__}: {e}") from None
    return cupy


# --- interleaved repetitions -------------------------------------------------------------------------

def interleave(preparers, reps):
    """Run every implementation `reps` times, interleaved. preparers: {name: prepare}, where prepare()
    warms up and returns run(rep) -> {"seconds": ..., ...}. Returns {name: [results] | {"error"|"skipped"}}."""
    runs, results = {}, {}
    for name, prepare in preparers.items():
        try:
            runs[name], results[name] = prepare(), []
        except Exception as e:
            results[name] = failure(name, e)
    for rep in range(reps):
        for name, run in list(runs.items()):
            try:
                results[name].append(run(rep))
                log(f"  {name} rep {rep + 1}/{reps}: {results[name][-1]['seconds']:.3f} s")
            except Exception as e:
                results[name] = failure(name, e)
                del runs[name]  # one failure is enough: the other implementations go on
    return results


def failure(name, e):
    if isinstance(e, Skipped):
        log(f"  {name}: skipped ({e})")
        return {"skipped": str(e)}
    log(f"  {name} failed:\n{traceback.format_exc()}")
    return {"error": f"{type(e).__name__}: {e}"}


def ratio(entries, name, of="seconds"):
    """entries[name]'s figure over PyTorch's: median seconds, or TFLOP/s (None unless both ran)."""
    a, b = entries.get(name, {}), entries.get(PYTORCH, {})
    if of not in a or of not in b:
        return None
    return a[of]["median"] / b[of]["median"] if of == "seconds" else a[of] / b[of]


# --- the post's configuration ------------------------------------------------------------------------

def torch_model(net, device):
    """The same MLP in PyTorch on `device`, its weights copied from bareprop's W: weight W[:-1].T, bias W[-1]."""
    import torch

    modules = []
    for layer in net.layers:
        if isinstance(layer, Linear):
            linear = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.W[:-1].T))  # (O, I)
                linear.bias.copy_(torch.from_numpy(layer.W[-1]))  # (O,)
            modules.append(linear)
        elif isinstance(layer, ReLU):
            modules.append(torch.nn.ReLU())
        else:
            raise ValueError(f"no PyTorch module for {layer!r} here")
    return torch.nn.Sequential(*modules).to(device)


def bareprop_post(net, data, backend, device, s, threads):
    """prepare() for bareprop on `backend`: the data moved once; each run trains a fresh copy of the net."""
    X, y, X_test, y_test = (asarray(A, backend, device) for A in data)  # uint8 pixels, int64 labels

    def train(epochs, n, test):
        model = copy.deepcopy(net).to(backend, device)
        kwargs = {"X_test": X_test, "y_test": y_test} if test else {}
        history = bp.train(model, X[:n, ...], y[:n], epochs=epochs, batch_size=BATCH,
                           rng=np.random.default_rng(SEED), path="readable", threads=threads, **kwargs)
        return {"seconds": sum(history.seconds), "epoch_seconds": history.seconds, "train_acc": history.train_acc[-1],
                "train_loss": history.train_loss[-1], "test_acc": history.test_acc[-1] if test else None}

    train(1, s["warmup_examples"], test=False)  # warm up: the library's first calls load and choose kernels
    return lambda rep: train(s["epochs"], s["examples"], test=True)


def pytorch_post(net, data, device, s):
    """prepare() for idiomatic PyTorch: float32 pixels scaled once on the device; each run trains a fresh model."""
    import torch

    X, y, X_test, y_test = (torch.from_numpy(np.array(A)).to(device) for A in data)  # (copies: MNIST is read-only)
    X, X_test = X.float() / 255, X_test.float() / 255  # (N, 784) float32 in [0, 1]

    def train(epochs, n, test):
        model = torch_model(net, device)
        loss_fn, optimizer = torch.nn.CrossEntropyLoss(reduction="sum"), torch.optim.SGD(model.parameters(), lr=LR)
        rng, seconds = np.random.default_rng(SEED), 0.0
        for _ in range(epochs):
            start = time.perf_counter()
            order = torch.as_tensor(rng.permutation(n), device=device)  # the epoch's order, as bareprop draws it
            correct = total = torch.zeros((), device=device)
            for idx in batches(order, BATCH):  # the same batches as bareprop's loop
                logits = model(X[idx])
                loss = loss_fn(logits, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                correct = correct + (logits.argmax(1) == y[idx]).sum()
                total = total + loss.detach()
            train_acc, train_loss = correct.item() / n, total.item() / n  # the epoch's one synchronization
            seconds += time.perf_counter() - start
        with torch.no_grad():
            test_acc = (model(X_test).argmax(1) == y_test).sum().item() / len(y_test) if test else None
        return {"seconds": seconds, "train_acc": train_acc, "train_loss": train_loss, "test_acc": test_acc}

    train(1, s["warmup_examples"], test=False)  # warm up: cuBLAS's handles, the kernels' first launches
    return lambda rep: train(s["epochs"], s["examples"], test=True)


def post_net(data, args, s):
    net = bp.NeuralNet(POST_SIZES, lr=LR, rng=np.random.default_rng(SEED))  # the initial weights, in NumPy

    def cupy_prepare():
        require_cupy(args.device)
        return bareprop_post(net, data, "cupy", None, s, args.threads)

    results = interleave({"bareprop_torch": lambda: bareprop_post(net, data, "torch", args.device, s, args.threads),
                          CUPY: cupy_prepare,
                          PYTORCH: lambda: pytorch_post(net, data, args.device, s)}, args.reps)
    entries = {}
    for name, runs in results.items():
        if isinstance(runs, dict):  # error or skipped
            entries[name] = runs
            continue
        last = runs[-1]  # every repetition does the same work (same weights, same order): accuracies agree
        entries[name] = {"seconds": summary([r["seconds"] for r in runs]), "train_acc": last["train_acc"],
                         "test_acc": last["test_acc"], "train_loss": last["train_loss"],
                         "test_acc_runs": [r["test_acc"] for r in runs]}
        if "epoch_seconds" in last:
            entries[name]["epoch_seconds"] = last["epoch_seconds"]
    entries[PYTORCH]["variant"] = PYTORCH_VARIANT
    entries["bareprop_torch_over_pytorch"] = ratio(entries, "bareprop_torch")
    entries["bareprop_cupy_over_pytorch"] = ratio(entries, CUPY)
    return entries


# --- the wide MLP --------------------------------------------------------------------------------------

def step_flops(sizes, batch):
    """2 x the multiply-adds of one training step: forward and weight gradient of every layer (bias row
    included), and the input gradient of every layer but the first (neither implementation computes it)."""
    macs = 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        macs += batch * (n_in + 1) * n_out * (2 if i == 0 else 3)
    return 2 * macs


def timed_steps(step, sync, steps, warmup):
    """prepare()'s result for a step function: after `warmup` steps, each run times `steps` more."""
    for _ in range(warmup):
        step()
    sync()

    def run(rep):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        sync()
        return {"seconds": time.perf_counter() - start, "loss": float(loss)}

    return run


def bareprop_wide(net, X, y, backend, device, s):
    net = copy.deepcopy(net).to(backend, device)
    X, y = asarray(X, backend, device), asarray(y, backend, device)

    def step():
        _, _, loss = net.evaluate(X, y)  # forward, keeping what backprop needs
        net.gradient_descent()  # backprop, then W -= lr * dW
        return loss

    return timed_steps(step, lambda: synchronize(net.params()[0]), s["wide_steps"], s["wide_warmup"])


def pytorch_wide(net, X, y, device, s):
    import torch

    model = torch_model(net, device)
    X, y = torch.from_numpy(np.array(X)).to(device), torch.from_numpy(np.array(y)).to(device)
    loss_fn, optimizer = torch.nn.CrossEntropyLoss(reduction="sum"), torch.optim.SGD(model.parameters(), lr=WIDE_LR)

    def step():
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach() / X.shape[0]  # the batch mean, as bareprop reports it

    sync = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" else (lambda: None)
    return timed_steps(step, sync, s["wide_steps"], s["wide_warmup"])


def wide_mlp(data, args, s):
    sizes, B = s["wide_sizes"], s["wide_batch"]
    X, y = (data[0][:B] / np.float32(255)).astype(np.float32), data[1][:B]  # (B, 784) float32, (B,) int64
    net = bp.NeuralNet(sizes, lr=WIDE_LR, rng=np.random.default_rng(SEED))
    flop = step_flops(sizes, B) * s["wide_steps"]

    def cupy_prepare():
        require_cupy(args.device)
        return bareprop_wide(net, X, y, "cupy", None, s)

    results = interleave({"bareprop_torch": lambda: bareprop_wide(net, X, y, "torch", args.device, s),
                          CUPY: cupy_prepare,
                          PYTORCH: lambda: pytorch_wide(net, X, y, args.device, s)}, args.reps)
    entries = {"sizes": list(sizes), "batch": B, "steps": s["wide_steps"], "warmup_steps": s["wide_warmup"],
               "lr": WIDE_LR, "gflop_per_step": step_flops(sizes, B) / 1e9}
    for name, runs in results.items():
        if isinstance(runs, dict):
            entries[name] = runs
            continue
        seconds = summary([r["seconds"] for r in runs])
        entries[name] = {"seconds": seconds, "tflops": flop / seconds["median"] / 1e12,
                         "tflops_best": flop / seconds["min"] / 1e12,
                         "final_loss": runs[-1]["loss"]}  # the same steps on the same batch: close for all
    entries["bareprop_torch_over_pytorch_tflops"] = ratio(entries, "bareprop_torch", of="tflops")
    entries["bareprop_cupy_over_pytorch_tflops"] = ratio(entries, CUPY, of="tflops")
    return entries


# --- the report ----------------------------------------------------------------------------------------

def goals(result):
    """The issue's two goals, True/False (None where a measurement is missing)."""
    time_ratio = result["post_net"]["bareprop_torch_over_pytorch"]  # goal: below 1
    tflops_ratio = result["wide_mlp"]["bareprop_torch_over_pytorch_tflops"]  # goal: 0.9 or more
    return {"post_net_bareprop_torch_faster_than_pytorch": None if time_ratio is None else time_ratio < 1,
            "wide_mlp_bareprop_torch_at_least_90pct_of_pytorch_tflops":
                None if tflops_ratio is None else tflops_ratio >= 0.9}


def table(result):
    """The README's markdown table, from a result (a run's JSON)."""
    post, wide = result["post_net"], result["wide_mlp"]
    s = result["settings"]
    lines = [f"{result['machine']['name']}: the post's net, {s['epochs']} epochs of {s['examples']} examples; "
             f"the wide MLP {'-'.join(map(str, s['wide_sizes']))}, batch {s['wide_batch']}; "
             f"median of {s['reps']} [min-max]", "",
             "| implementation | post's net, training loop | vs PyTorch | test accuracy "
             "| wide MLP TFLOP/s | vs PyTorch |", "|---|---|---|---|---|---|"]
    for name, label in (("bareprop_torch", "bareprop, torch tensors"), (CUPY, "bareprop, CuPy"),
                        (PYTORCH, "PyTorch, eager")):
        p, w = post.get(name, {}), wide.get(name, {})
        if "seconds" in p:
            t = p["seconds"]
            cells = [f"{t['median']:.2f} s [{t['min']:.2f}-{t['max']:.2f}]",
                     "1" if name == PYTORCH else f"{post.get(f'{name}_over_pytorch') or float('nan'):.2f}",
                     f"{p['test_acc']:.4f}"]
        else:
            cells = [p.get("skipped") and "skipped" or "failed", "", ""]
        if "tflops" in w:
            cells += [f"{w['tflops']:.3g}",
                      "1" if name == PYTORCH else f"{wide.get(f'{name}_over_pytorch_tflops') or float('nan'):.2f}"]
        else:
            cells += [w.get("skipped") and "skipped" or "failed", ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measured(result):
    """How many measurements ran (had seconds)."""
    return sum("seconds" in entry for part in ("post_net", "wide_mlp") for entry in result[part].values()
               if isinstance(entry, dict))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="the torch device: cuda (default), cuda:1, cpu")
    parser.add_argument("--quick", action="store_true", help="a smoke run: small data, 1 epoch, a small wide MLP")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for bareprop and PyTorch (default 1)")
    parser.add_argument("--json", help="also write the JSON to this file")
    parser.add_argument("--table", metavar="JSON", help="print the README's table of a saved run, and exit")
    args = parser.parse_args(argv)
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return 0
    import torch

    torch.set_num_threads(args.threads)  # bareprop.train sets the same number during its own loop
    s = SETTINGS["quick" if args.quick else "full"]
    log(f"loading MNIST; device {args.device}")
    X, y = bp.load_dataset("mnist", "train", dtype=np.uint8)
    X_test, y_test = bp.load_dataset("mnist", "test", dtype=np.uint8)
    data = (X[:s["examples"]], y[:s["examples"]], X_test[:s["test_examples"]], y_test[:s["test_examples"]])
    result = {"machine": machine(args.device), "versions": versions(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "settings": {**s, "wide_sizes": list(s["wide_sizes"]), "quick": args.quick, "reps": args.reps,
                           "threads": args.threads, "batch": BATCH, "lr": LR, "seed": SEED, "sizes": list(POST_SIZES),
                           "path": "readable"}}
    log(f"the post's net, {s['epochs']} epoch(s) of {s['examples']} examples")
    result["post_net"] = post_net(data, args, s)
    log(f"the wide MLP {s['wide_sizes']}, batch {s['wide_batch']}, {s['wide_steps']} steps")
    result["wide_mlp"] = wide_mlp(data, args, s)
    result["goals"] = goals(result)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    log(table(result))
    return 0 if measured(result) else 1


if __name__ == "__main__":
    sys.exit(main())
