"""Side-by-side training speed: bareprop against PyTorch, a plain NumPy reference and JAX.

    python benchmarks/speed.py                 # the post's configuration, 5 interleaved repetitions
    python benchmarks/speed.py --reps 7 --json benchmarks/results/latest.json
    python benchmarks/speed.py --no-scaling    # skip the width x batch table
    python benchmarks/speed.py --loaded --json benchmarks/results/loaded.json   # on a busy machine
    python benchmarks/speed.py --quick         # a check that it runs: 1 repetition, 2 epochs, 4 cells

Every implementation trains the post's network (784 -> 32 -> ReLU -> 10, softmax + cross-entropy,
batches of 64, plain SGD with the gradient summed over the batch, lr 0.001) for 10 epochs on the
same preloaded MNIST, reshuffling every epoch: float32 pixels in [0, 1] for the others, and for
bareprop the uint8 pixels its CLI keeps (scaled by 1/255 inside its loop, so the conversion is timed).
bareprop runs on its default path (the compiled kernel on one thread), on the kernel with two
threads, and on its readable layers. Each run is a fresh process and the repetitions are interleaved
(A B C A B C ...) so that a noisy machine slows them alike; the table gives the median [min-max] of
the training loop alone and of the whole process (imports and data loading included), peak RSS,
final accuracies, and each one's ratio to bareprop. The CLI's own `bareprop train --no-plot` (start
to exit, test set scored every epoch) is timed as well. The scaling table gives samples/s and
achieved GFLOP/s of bareprop (default, and two threads) and PyTorch (its default threads) for hidden
widths {32, 256, 1024} x batch sizes {64, 256, 1024} (interleaved, median of 5), the readable path's
time over the kernel's, beside the sgemm peak measured in the same run (before and after it; the
higher is kept), and, since this machine's speed drifts by tens of percent from minute to minute,
beside an sgemm timed just before each of bareprop's repetitions (the median of the per-repetition
ratios). Every run of the table starts 0.3 s after the one before, when the threads the previous one
woke have gone back to sleep.

--loaded instead times bareprop on a machine whose every core is busy (one CPU-bound process pinned
to each core): the post's net for 10 epochs and the README's recipe (784,256,128,10, He init,
dropout 0.2, Adam lr 2e-3 with cosine decay and 50 warmup steps, batches of 256) for 3 of its 30
epochs, each with the default threads, threads=1 and threads=2, first on the idle machine, then
loaded. The goal: the default within 1.2x of one thread's time, loaded.

The JSON also gives the fast path's size (the lines of src/bareprop/fast/'s Python and C).

Not collected by pytest: speed is measured here, never asserted in a unit test.
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import bareprop as bp

EPOCHS, BATCH, LR, HIDDEN = 10, 64, 0.001, 32


# --- the implementations: each trains for `epochs` and returns (train_acc, test_acc) -------------

def run_bareprop(data, seed, epochs, hidden=HIDDEN, batch=BATCH, test=True, **options):
    """bareprop.train with `options` (path=, threads=; none: its defaults)."""
    X, y, Xt, yt = data
    rng = np.random.default_rng(seed)
    net = bp.NeuralNet((784, hidden, 10), lr=LR, rng=rng)
    start = time.perf_counter()
    h = bp.train(net, X, y, epochs=epochs, batch_size=batch, rng=rng, **options)
    seconds = time.perf_counter() - start
    return seconds, h.train_acc[-1], (net.score(Xt, yt)[0] if test else None)


def run_recipe(data, seed, epochs, **options):
    """The README's "beyond the post" recipe (its 30-epoch schedule, of which `epochs` are run)."""
    X, y, Xt, yt = data
    rng = np.random.default_rng(seed)
    net = bp.NeuralNet((784, 256, 128, 10), lr=2e-3, rng=rng, init=bp.he_uniform, p_drop=0.2)
    total_steps = 30 * -(-len(X) // 256)
    optimizer = bp.Adam(bp.LinearWarmup(bp.CosineDecay(2e-3, total_steps=total_steps), warmup_steps=50))
    start = time.perf_counter()
    h = bp.train(net, X, y, epochs=epochs, batch_size=256, rng=rng, optimizer=optimizer, **options)
    seconds = time.perf_counter() - start
    return seconds, h.train_acc[-1], net.score(Xt, yt)[0]


def run_torch(data, seed, epochs, hidden=HIDDEN, batch=BATCH, test=True):
    """Idiomatic PyTorch: nn.Sequential, autograd, optim.SGD, tensors preloaded."""
    import torch

    X, y, Xt, yt = data
    torch.manual_seed(seed)
    Xs, ys = torch.from_numpy(X), torch.from_numpy(y)
    model = torch.nn.Sequential(torch.nn.Linear(784, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")  # the post's summed gradient
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(Xs))
        correct = 0.0
        n_batches = (len(Xs) + batch - 1) // batch
        for i in range(0, len(Xs), batch):
            idx = order[i:i + batch]
            logits = model(Xs[idx])
            loss = loss_fn(logits, ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += (logits.argmax(1) == ys[idx]).float().mean().item() / n_batches
    seconds = time.perf_counter() - start
    test_acc = None
    if test:
        with torch.no_grad():
            test_acc = (model(torch.from_numpy(Xt)).argmax(1).numpy() == yt).mean()
    return seconds, correct, test_acc


def run_numpy(data, seed, epochs):
    """A plain NumPy reference of the same algorithm: separate biases, nothing preallocated."""
    X, y, Xt, yt = data
    rng = np.random.default_rng(seed)
    b1, b2 = np.sqrt(6 / (785 + HIDDEN)), np.sqrt(6 / (HIDDEN + 11))
    W1 = rng.uniform(-b1, b1, (784, HIDDEN)).astype(np.float32)
    c1 = np.zeros(HIDDEN, np.float32)
    W2 = rng.uniform(-b2, b2, (HIDDEN, 10)).astype(np.float32)
    c2 = np.zeros(10, np.float32)
    eye = np.eye(10, dtype=np.float32)
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(X))
        correct, n_batches = 0.0, (len(X) + BATCH - 1) // BATCH
        for i in range(0, len(X), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = X[idx], y[idx]
            z1 = xb @ W1 + c1
            a1 = np.maximum(z1, 0)
            z2 = a1 @ W2 + c2
            e = np.exp(z2 - z2.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
            correct += (z2.argmax(1) == yb).mean() / n_batches
            d2 = p - eye[yb]
            d1 = (d2 @ W2.T) * (z1 > 0)
            W2 -= LR * (a1.T @ d2)
            c2 -= LR * d2.sum(0)
            W1 -= LR * (xb.T @ d1)
            c1 -= LR * d1.sum(0)
    seconds = time.perf_counter() - start
    test_acc = ((np.maximum(Xt @ W1 + c1, 0) @ W2 + c2).argmax(1) == yt).mean()
    return seconds, correct, test_acc


def run_jax(data, seed, epochs):
    """JAX: one jitted lax.scan per epoch (its compile included in the time)."""
    import jax
    import jax.numpy as jnp

    X, y, Xt, yt = data
    key = jax.random.PRNGKey(seed)
    k1, k2, key = jax.random.split(key, 3)
    b1, b2 = np.sqrt(6 / (785 + HIDDEN)), np.sqrt(6 / (HIDDEN + 11))
    params = (jax.random.uniform(k1, (784, HIDDEN), jnp.float32, -b1, b1), jnp.zeros(HIDDEN),
              jax.random.uniform(k2, (HIDDEN, 10), jnp.float32, -b2, b2), jnp.zeros(10))
    n_full = len(X) // BATCH  # scan needs equal batches: the last partial batch is dropped

    def loss_fn(p, xb, yb):
        logits = jnp.maximum(xb @ p[0] + p[1], 0) @ p[2] + p[3]
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, yb[:, None], 1).sum(), logits

    def step(p, batch):
        xb, yb = batch
        (_, logits), g = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)
        p = tuple(a - LR * b for a, b in zip(p, g))
        return p, (logits.argmax(1) == yb).mean()

    @jax.jit
    def epoch(p, Xb, yb):
        p, accs = jax.lax.scan(step, p, (Xb, yb))
        return p, accs.mean()

    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    start = time.perf_counter()
    for _ in range(epochs):
        key, k = jax.random.split(key)
        order = jax.random.permutation(k, len(X))[: n_full * BATCH].reshape(n_full, BATCH)
        params, acc = epoch(params, Xj[order], yj[order])
    acc = float(acc)  # waits for the computation
    seconds = time.perf_counter() - start
    p = params
    test_acc = float(((jnp.maximum(jnp.asarray(Xt) @ p[0] + p[1], 0) @ p[2] + p[3]).argmax(1) == yt).mean())
    return seconds, acc, test_acc


IMPLS = {"bareprop": run_bareprop, "bareprop (2 threads)": lambda *a: run_bareprop(*a, threads=2),
         "bareprop (readable)": lambda *a: run_bareprop(*a, path="readable"),
         "numpy (plain)": run_numpy, "pytorch": run_torch, "jax (lax.scan)": run_jax}
LOADED = {"post": run_bareprop, "post, threads=1": lambda *a: run_bareprop(*a, threads=1),
          "post, threads=2": lambda *a: run_bareprop(*a, threads=2),
          "recipe": run_recipe, "recipe, threads=1": lambda *a: run_recipe(*a, threads=1),
          "recipe, threads=2": lambda *a: run_recipe(*a, threads=2)}
FAST_PATH_BEFORE = {"commit": "fd21338", "lines": 1746,  # _fast.py 398 + _kernel.c 696 + _kernel_body.h 615
                    "files": {"_fast.py": 398, "_kernel.c": 696, "_kernel_body.h": 615, "_kernel_types.h": 37}}


# --- the measurements -----------------------------------------------------------------------------

def machine():
    from first_run import cpu_name  # benchmarks/first_run.py, beside this script

    from bareprop.fast import kernel

    cpu = cpu_name()

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "bareprop": bp.__version__,
            "bareprop_kernel": None if kernel._kernel is None else {
                "isa": kernel._kernel.ISA, "openmp": bool(kernel._kernel.OPENMP)}}
    try:
        import threadpoolctl

        info["blas"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                        for p in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    for name in ("torch", "jax"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            pass
    return info


def peak_rss_mb():
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss, which on Linux
    starts a child at its parent's size when it forks: every child would seem as large as this script."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


# Runs the CLI as `python -m bareprop` would, then reports its own peak RSS on stderr.
CLI_WITH_RSS = ("import atexit, runpy, sys\n"
                "atexit.register(lambda: print('VmHWM_MB', __import__('speed').peak_rss_mb(), file=sys.stderr))\n"
                "sys.argv = ['bareprop', *sys.argv[1:]]\n"
                "runpy.run_module('bareprop', run_name='__main__')\n")


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def run_one(name, seed, epochs):
    """Child process: load the data, run one implementation, print its figures as JSON."""
    dtype = np.float32 if name in IMPLS and not name.startswith("bareprop") else np.uint8  # see the docstring
    X, y = bp.load_mnist("train", dtype=dtype)
    Xt, yt = bp.load_mnist("test", dtype=dtype)
    seconds, train_acc, test_acc = {**IMPLS, **LOADED}[name]((X, y, Xt, yt), seed, epochs)
    print(json.dumps({"seconds": seconds, "train_acc": float(train_acc), "test_acc": float(test_acc),
                      "rss_mb": peak_rss_mb()}))


def time_loop(runs, reps):
    """Each run ((name, epochs) in `runs`) in a fresh process, interleaved rep by rep (A B C A B C ...):
    the child times its training loop; the parent times the whole process and reads its peak RSS."""
    results = {name: {"seconds": [], "process": [], "rss_mb": [], "train_acc": [], "test_acc": []} for name, _ in runs}
    for rep in range(reps):
        for name, epochs in runs:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, __file__, "--one", name, "--seed", str(rep),
                                     "--epochs", str(epochs)], stdout=subprocess.PIPE, text=True)
            out = proc.stdout.read()
            status = proc.wait()
            wall = time.perf_counter() - start
            if status != 0:
                raise SystemExit(f"{name} failed with status {status}")
            child = json.loads(out.strip().splitlines()[-1])
            r = results[name]
            for key in ("seconds", "train_acc", "test_acc"):
                r[key].append(child[key])
            r["process"].append(wall)
            r["rss_mb"].append(child["rss_mb"])
            print(f"  rep {rep}: {name:<22} loop {child['seconds']:6.2f} s  process {wall:6.2f} s  "
                  f"train {child['train_acc']:.4f}  test {child['test_acc']:.4f}", flush=True)
    return results


def time_process(reps, epochs):
    """Wall time and peak RSS of the whole `bareprop train --no-plot` process."""
    walls, rss = [], []
    with tempfile.TemporaryDirectory() as out:
        for rep in range(reps):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CLI_WITH_RSS, "train", "--no-plot", "--epochs", str(epochs),
                                   "--output", os.path.join(out, f"run-{rep}")],  # a folder per run: one run each
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.abspath(__file__))})
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise SystemExit(f"bareprop train failed with status {proc.returncode}: {proc.stderr[-2000:]}")
            rss.append(float(proc.stderr.split("VmHWM_MB")[-1].split()[0]))
    return {"seconds": summary(walls), "peak_rss_mb": max(rss)}


def sgemm_peak(n=2048, reps=5):
    A = np.random.default_rng(0).random((n, n), dtype=np.float32)
    best = min(timeit(lambda: A @ A) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def timeit(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_sample(hidden):
    """The dense products' flops per example: forward, weight gradients and input gradients (all but
    the first layer's), 2 flops a multiply-add. PyTorch and BLAS do all of them; bareprop's kernel skips
    the zero inputs, so for it GFLOP/s computed from this is an effective rate, not a count."""
    return 2 * (785 * hidden + (hidden + 1) * 10) * 2 + 2 * hidden * 10


def settle(seconds=0.3):
    """Let the threads of the run before go to sleep: after a product, OpenBLAS's threads (and PyTorch's)
    keep spinning for a while, and a run started at once shares the cores with them (the kernel's two
    threads, waiting for each other, then ran two to three times slower)."""
    time.sleep(seconds)


def scaling(data, data_u8, reps, samples=16384, hiddens=(32, 256, 1024), batches=(64, 256, 1024)):
    X, y, Xt, yt = data
    sub = (X[:samples], y[:samples], Xt, yt)
    sub_u8 = (data_u8[0][:samples], data_u8[1][:samples], Xt, yt)
    runs = {"bareprop": lambda h, b, rep: run_bareprop(sub_u8, rep, 1, hidden=h, batch=b, test=False),
            "bareprop_2_threads": lambda h, b, rep: run_bareprop(sub_u8, rep, 1, hidden=h, batch=b, test=False,
                                                                 threads=2),
            "torch": lambda h, b, rep: run_torch(sub, rep, 1, hidden=h, batch=b, test=False),
            "bareprop_readable": lambda h, b, rep: run_bareprop(sub_u8, rep, 1, hidden=h, batch=b, test=False,
                                                                path="readable")}
    rows = []
    for hidden in hiddens:
        for batch in batches:
            row = {"hidden": hidden, "batch": batch}
            secs = {name: [] for name in runs}
            beside = []  # sgemm GFLOP/s measured just before each bareprop run: the same minute's peak
            for rep in range(reps):  # interleaved, as the main table: a slow minute slows all
                settle()
                beside.append(sgemm_peak(reps=2))
                for name, run in runs.items():
                    settle()
                    secs[name].append(run(hidden, batch, rep)[0])
            for name, values in secs.items():
                t = statistics.median(values)
                row[name] = {"samples_per_s": samples / t, "gflops": samples * flops_per_sample(hidden) / t / 1e9}
            row["sgemm_beside_gflops"] = statistics.median(beside)
            row["percent_of_sgemm_beside"] = statistics.median(  # per repetition, bareprop's rate over the sgemm's
                100 * samples * flops_per_sample(hidden) / t / 1e9 / g for t, g in zip(secs["bareprop"], beside))
            rows.append(row)
            print(f"  hidden {hidden:5d} batch {batch:5d}: bareprop {row['bareprop']['gflops']:6.1f} GFLOP/s, "
                  f"2 threads {row['bareprop_2_threads']['gflops']:6.1f}, torch {row['torch']['gflops']:6.1f}, "
                  f"readable {row['bareprop_readable']['gflops']:6.1f}", flush=True)
    return rows


def fast_path_lines():
    """The lines of the fast path's Python and C (src/bareprop/fast/), now and at FAST_PATH_BEFORE."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "bareprop", "fast")
    files = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith((".py", ".c", ".h")):
            with open(os.path.join(folder, name)) as f:
                files[name] = sum(1 for _ in f)
    return {"lines": sum(files.values()), "files": files, "before": FAST_PATH_BEFORE}


def print_table(loop, base_name):
    """The loop and process times of each run, and each one's ratio to `base_name`'s; returns the rows."""
    rows = []
    base = statistics.median(loop[base_name]["seconds"])
    base_process = statistics.median(loop[base_name]["process"])
    print(f"{'run':<23}{'loop median [min-max] s':>25}{'x':>7}{'process median [min-max] s':>29}{'x':>7}"
          f"{'peak RSS':>10}{'train':>8}{'test':>8}")
    for name, r in loop.items():
        s, p = summary(r["seconds"]), summary(r["process"])
        rows.append({"name": name, "loop_seconds": s, "process_seconds": p, "peak_rss_mb": max(r["rss_mb"]),
                     "train_acc": statistics.median(r["train_acc"]), "test_acc": statistics.median(r["test_acc"]),
                     "loop_ratio": s["median"] / base, "process_ratio": p["median"] / base_process})
        print(f"{name:<23}{s['median']:>9.3f} [{s['min']:.3f}-{s['max']:.3f}]{s['median'] / base:>6.2f}x"
              f"{p['median']:>13.2f} [{p['min']:.2f}-{p['max']:.2f}]{p['median'] / base_process:>6.2f}x"
              f"{max(r['rss_mb']):>7.0f} MB{rows[-1]['train_acc']:>8.4f}{rows[-1]['test_acc']:>8.4f}")
    return rows


@contextlib.contextmanager
def busy_cores():
    """One CPU-bound process pinned to each core of this machine, for the duration."""
    code = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(core)]) for core in sorted(os.sched_getaffinity(0))]
    try:
        time.sleep(0.5)  # let them start spinning
        yield len(procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def loaded(reps, post_epochs, recipe_epochs):
    """The post's net and the recipe with the default threads, threads=1 and threads=2: idle, then loaded."""
    runs = [(name, post_epochs if name.startswith("post") else recipe_epochs) for name in LOADED]
    result = {"post_epochs": post_epochs, "recipe_epochs": recipe_epochs, "reps": reps}
    for state in ("idle", "loaded"):
        with (busy_cores() if state == "loaded" else contextlib.nullcontext(0)) as n_busy:
            print(f"\n{state}{f' ({n_busy} busy processes, one pinned to each core)' if n_busy else ''}: "
                  f"the post's net {post_epochs} epochs, the recipe {recipe_epochs}, {reps} interleaved repetitions")
            loop = time_loop(runs, reps)
        result[state] = {}
        for net in ("post", "recipe"):
            print(f"\n{state}, {net}: ratio to threads=1")
            result[state][net] = print_table({name: loop[name] for name in LOADED if name.startswith(net)},
                                             f"{net}, threads=1")
    print("\nloaded / idle, and the default against threads=1 loaded (goal: <= 1.2x):")
    for net in ("post", "recipe"):
        idle = {row["name"]: row["loop_seconds"]["median"] for row in result["idle"][net]}
        busy = {row["name"]: row["loop_seconds"]["median"] for row in result["loaded"][net]}
        slowdowns = "  ".join(f"{name}: {busy[name] / idle[name]:.2f}x" for name in busy)
        print(f"  {net:<7} default / threads=1 loaded: {busy[net] / busy[f'{net}, threads=1']:.2f}x;  "
              f"loaded / idle: {slowdowns}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=None, help="repetitions (5; --loaded 3; --quick 1)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs of the post's net ({EPOCHS}; --quick 2)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-readable", action="store_true", help="skip bareprop's (slower) readable path")
    parser.add_argument("--loaded", action="store_true", help="only the busy-machine comparison (see above)")
    parser.add_argument("--recipe-epochs", type=int, default=None, help="--loaded: the recipe's epochs (3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="a check that it runs: few repetitions and cells")
    parser.add_argument("--one", choices=[*IMPLS, *LOADED], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one, args.seed, args.epochs)
    reps = args.reps or (1 if args.quick else 3 if args.loaded else 5)
    epochs = args.epochs or (2 if args.quick else EPOCHS)
    info = machine()
    print(json.dumps(info))
    lines = fast_path_lines()
    print(f"fast path: {lines['lines']} lines ({', '.join(f'{k} {v}' for k, v in lines['files'].items())}); "
          f"{lines['before']['lines']} at {lines['before']['commit']}")
    result = {"machine": info, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "epochs": epochs, "reps": reps,
              "quick": args.quick, "fast_path": lines}
    if args.loaded:
        result["loaded"] = loaded(reps, epochs, args.recipe_epochs or (1 if args.quick else 3))
        return write(result, args.json)

    names = [name for name in IMPLS if not (args.no_readable and name == "bareprop (readable)")]
    for module, name in (("torch", "pytorch"), ("jax", "jax (lax.scan)")):
        try:
            __import__(module)
        except ImportError:
            print(f"{module} is not installed: {name} skipped")
            names.remove(name)
    print(f"training, {epochs} epochs, {reps} interleaved repetitions, each in a fresh process:")
    loop = time_loop([(name, epochs) for name in names], reps)
    print(f"whole process, bareprop train --no-plot ({epochs} epochs, test set scored every epoch):")
    cli = time_process(reps, epochs)
    peak = sgemm_peak()  # measured again after the scaling table: the higher one is kept
    print()
    result["loop"] = print_table(loop, "bareprop")
    result["cli_process"] = cli
    ps = cli["seconds"]
    print(f"\nbareprop train --no-plot, whole process: {ps['median']:.2f} s [{ps['min']:.2f}-{ps['max']:.2f}], "
          f"peak RSS {cli['peak_rss_mb']:.0f} MB")
    print(f"sgemm peak (2048^3 float32, default threads): {peak:.0f} GFLOP/s")
    if not args.no_scaling:
        X, y = bp.load_mnist("train")
        Xt, yt = bp.load_mnist("test")
        X_u8, y_u8 = bp.load_mnist("train", dtype=np.uint8)
        cells = dict(samples=4096, hiddens=(32, 1024), batches=(64, 1024)) if args.quick else {}
        cell_reps = 1 if args.quick else 5
        print(f"\nscaling, 1 epoch of {cells.get('samples', 16384)} samples, median of {cell_reps}, interleaved:")
        scale = scaling((X, y, Xt, yt), (X_u8, y_u8), cell_reps, **cells)
        settle()
        peak = max(peak, sgemm_peak())
        print(f"sgemm peak, the higher of before and after the scaling table: {peak:.0f} GFLOP/s")
        print(f"\n{'hidden':>7}{'batch':>7}{'samples/s':>11}{'GFLOP/s':>9}{'2 threads':>11}{'torch samples/s':>17}"
              f"{'GFLOP/s':>9}{'bareprop/torch':>16}{'2 threads/torch':>17}{'% of peak':>11}"
              f"{'% of sgemm beside':>19}{'readable/kernel':>17}")
        for row in scale:
            b, b2, t, o = row["bareprop"], row["bareprop_2_threads"], row["torch"], row["bareprop_readable"]
            print(f"{row['hidden']:>7}{row['batch']:>7}{b['samples_per_s']:>11.0f}{b['gflops']:>9.1f}"
                  f"{b2['samples_per_s']:>11.0f}{t['samples_per_s']:>17.0f}{t['gflops']:>9.1f}"
                  f"{b['samples_per_s'] / t['samples_per_s']:>15.2f}x{b2['samples_per_s'] / t['samples_per_s']:>16.2f}x"
                  f"{100 * b['gflops'] / peak:>10.1f}%{row['percent_of_sgemm_beside']:>18.1f}%"
                  f"{b['samples_per_s'] / o['samples_per_s']:>16.2f}x")
        print("(bareprop: the default, the kernel on one thread; 2 threads: threads=2; torch: its default threads. "
              "GFLOP/s: the dense products' flops over the time; the kernel skips zero inputs, so for it an "
              "effective rate. % of peak: the default's median over the table's highest sgemm; % of sgemm beside: "
              "the median, over the repetitions, of each against an sgemm timed just before it; readable/kernel: "
              "the readable path's time over the default's)")
        result["scaling"] = scale
    result["sgemm_peak_gflops"] = peak
    write(result, args.json)


def write(result, path):
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
