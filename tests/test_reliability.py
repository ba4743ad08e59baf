"""Nothing lost, nothing silent: one run per output folder, the --log-json file untouched by a run that
is refused, numbers checked (divergence: exit code 3), strict JSON, and folders that stay usable
whenever a run stops, SIGKILL included (the slow fault-injection test). See docs/reliability.md."""

import json
import re
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli import main
from bareprop.core.train import TrainingDiverged
from bareprop.experiment import ConfigError, RunConfig, run
from bareprop.experiment import runner
from bareprop.experiment.runner import CHECKPOINT, make_output


@pytest.fixture(scope="module")
def data(mnist):
    (X, y), (X_test, y_test) = mnist  # the session's uint8 MNIST (conftest.py)
    return X[:2000], y[:2000], X_test[:500], y_test[:500]


def small(out, **settings):
    return RunConfig(**{"epochs": 2, "hidden": 8, "plot": False, "output": str(out), **settings})


def strict_json(path):
    return json.loads(Path(path).read_text(), parse_constant=lambda name: pytest.fail(f"{path} holds {name}"))


def release(*claims):
    for _, lock in claims:
        runner._unlock(lock)


# --- one run per folder ---------------------------------------------------------------------------


def test_a_new_or_empty_folder_is_claimed_and_one_that_holds_anything_is_refused(tmp_path):
    release(make_output(tmp_path / "new" / "deeper"))
    (tmp_path / "empty").mkdir()
    release(make_output(tmp_path / "empty"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        make_output(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"^output folder .*mine holds files that are not a bareprop run's "
                                              r"\(notes.txt\): choose another folder$"):
            make_output(tmp_path / "mine", overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_folder_holding_a_run_is_refused_unless_overwritten(data, tmp_path):
    out = run(small(tmp_path / "run", plot=True), data=data).out
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match=r"^output folder .*run already holds a run: choose another folder, or "
                                          r"overwrite it \(--overwrite\)$"):
        run(small(out, seed=1), data=data)
    with pytest.raises(ConfigError, match="warmup 1000 is not shorter than the run"):  # checks first, then the folder
        run(small(out, seed=1, warmup=1000), data=data, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    again = run(small(out, seed=1), data=data, overwrite=True)  # the old run's files go, all of them
    assert {p.name for p in out.iterdir()} == {"model.npz", "run.json"} and again.manifest["seed"] == 1
    assert (out / "model.npz").read_bytes() != before["model.npz"]


def test_overwrite_deletes_only_a_runs_files(data, tmp_path):
    out = run(small(tmp_path / "run"), data=data).out
    (out / "draw.html").write_text("<html>")  # bareprop draw's page: a run's file
    (out / ".model.npz.abc123.tmp").write_bytes(b"half")  # left by a process killed while writing
    (out / "my-digit.png").write_bytes(b"\x89PNG")  # the user's
    with pytest.raises(ConfigError, match=r"not a bareprop run's \(my-digit.png\)"):
        run(small(out), data=data, overwrite=True)
    (out / "my-digit.png").unlink()
    (out / "sub").mkdir()
    with pytest.raises(ConfigError, match=r"not a bareprop run's \(sub\)"):
        run(small(out), data=data, overwrite=True)
    (out / "sub").rmdir()
    run(small(out), data=data, overwrite=True)
    assert {p.name for p in out.iterdir()} == {"model.npz", "run.json"}

    lone = tmp_path / "lone"  # a model.npz without run.json: someone's model, not a run
    lone.mkdir()
    shutil.copy(out / "model.npz", lone / "model.npz")
    with pytest.raises(ConfigError, match="is not a bareprop run's, so it is not overwritten"):
        make_output(lone, overwrite=True)
    assert (lone / "model.npz").exists()


def test_a_folder_holding_only_leftover_temporary_files_counts_as_empty(tmp_path):
    (tmp_path / ".run.json.x1y2.tmp").write_text("{")
    release(make_output(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_default_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-120000")  # three runs in the same second
    (tmp_path / "runs" / "20260101-120000-2").mkdir(parents=True)  # taken, though empty
    claims = [make_output(None) for _ in range(3)]
    assert [str(out) for out, _ in claims] == ["runs/20260101-120000", "runs/20260101-120000-3",
                                               "runs/20260101-120000-4"]
    release(*claims)


@pytest.mark.parametrize("exists", [False, True])
def test_of_threads_racing_for_a_folder_exactly_one_gets_it(tmp_path, exists):
    out = tmp_path / "race"
    if exists:
        out.mkdir()  # empty: fine for one run, and only one
    barrier, results = threading.Barrier(8), []

    def claim():
        barrier.wait()
        try:
            results.append(make_output(out))
        except ConfigError as e:
            results.append(e)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if not isinstance(r, ConfigError)]
    assert len(won) == 1, results
    assert all(str(r) == f"output folder {out} is in use by another bareprop run" for r in results if r not in won)
    release(*won)
    release(make_output(out))  # released: an empty folder again


def test_of_two_processes_training_into_one_folder_exactly_one_runs(tmp_path):
    out = tmp_path / "race"
    argv = [sys.executable, "-m", "bareprop", "train", "--epochs", "1", "--hidden", "8", "--no-plot", "--quiet",
            "--output", str(out)]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in processes)
    assert [code for code, _ in results] == [0, 2], results
    assert results[1][1] in (f"bareprop: error: output folder {out} is in use by another bareprop run\n",
                             f"bareprop: error: output folder {out} already holds a run: choose another folder, "
                             "or overwrite it (--overwrite)\n")
    assert strict_json(out / "run.json")["status"] == "complete"


# --- the folder while it trains, and when it stops ------------------------------------------------


def test_after_every_epoch_the_folder_holds_the_run_so_far(data, tmp_path):
    seen = []

    def look(history):
        m = strict_json(tmp_path / "run" / "run.json")
        net = bp.load(tmp_path / "run" / "model.npz")
        seen.append((m["status"], m["epochs_done"], (tmp_path / "run" / CHECKPOINT).exists(),
                     float(np.linalg.vector_norm(net.params()[0])) == history.weight_norm[-1][0]))
    result = run(small(tmp_path / "run", epochs=3), data=data, on_epoch=look)
    assert seen == [("running", 1, True, True), ("running", 2, True, True), ("running", 3, True, True)]
    assert result.manifest["status"] == "complete" and result.manifest["epochs_done"] == 3


def test_an_interrupted_folder_can_be_evaluated_and_reported(data, tmp_path, capsys):
    def stop(history):
        raise KeyboardInterrupt
    out = tmp_path / "run"
    with pytest.raises(bp.RunInterrupted):
        run(small(out, plot=True), data=data, on_epoch=stop)
    assert {p.name for p in out.iterdir()} == {"model.npz", "run.json", CHECKPOINT}  # no report: skipped
    assert strict_json(out / "run.json")["status"] == "interrupted"
    assert main(["evaluate", str(out / "model.npz")]) == 0
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()
    capsys.readouterr()


# --- --log-json is not touched by a run that is refused ------------------------------------------


@pytest.mark.parametrize("problem", ["folder", "warmup"])
def test_a_refused_run_leaves_the_json_log_as_it_was(data, tmp_path, capsys, problem):
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 0}\n')
    taken = run(small(tmp_path / "taken"), data=data).out
    argv = ["train", "--epochs", "1", "--hidden", "8", "--no-plot", "--quiet", "--log-json", str(log)]
    argv += ["--output", str(taken)] if problem == "folder" else ["--warmup", "100000", "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert log.read_text() == '{"epoch": 0}\n'
    assert main(["train", "--log-json", str(tmp_path / "no" / "such" / "log.jsonl")]) == 2
    assert "cannot write the JSON log" in capsys.readouterr().err


def test_the_json_log_is_written_once_the_run_starts(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    log.write_text("old\n")
    assert main(["train", "--epochs", "2", "--hidden", "8", "--no-plot", "--quiet", "--log-json", str(log),
                 "--output", str(tmp_path / "o")]) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [0, 1]
    capsys.readouterr()


# --- numbers are checked -------------------------------------------------------------------------


@pytest.mark.parametrize("path, where", [("readable", "epoch 0, step "), ("kernel", "the end of epoch 0")])
def test_a_diverging_run_stops_with_exit_code_3_and_one_line(tmp_path, capsys, path, where):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "2", "--lr", "1e30", "--path", path, "--no-plot", "--quiet",
                 "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1, err
    assert err.startswith(f"bareprop: error: training diverged at {where}") and err.endswith(
        f"(the loss is nan): try a lower lr than 1e+30; {out} holds no finished epoch\n"), err
    m = strict_json(out / "run.json")
    assert (m["status"], m["epochs_done"], m["diverged"]["epoch"]) == ("diverged", 0, 0)
    assert not (out / "model.npz").exists()  # no model presented as a result
    assert main(["train", "--resume", str(out)]) == 2
    assert "the run diverged; resuming would diverge again" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["readable", "kernel"])
def test_a_run_that_diverges_later_keeps_its_last_finite_epoch(data, tmp_path, monkeypatch, path):
    nets = []
    monkeypatch.setattr(runner, "build_net", lambda config, rng: nets.append(bp.NeuralNet(
        config.sizes, lr=config.lr, rng=rng)) or nets[-1])

    def poison(history, batch, n_batches, running):  # a weight goes bad in epoch 2, after its first step
        if len(history.epoch) == 2 and batch == 0:
            nets[0].params()[1][0, 0] = np.inf
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as caught:
        run(small(out, epochs=4, path=path), data=data, on_batch=poison)
    e = caught.value
    assert (e.epoch, e.step) == ((2, 1) if path == "readable" else (2, None))
    assert str(e).endswith(f"try a lower lr than 0.001; {out} keeps epochs 0-1")
    m = strict_json(out / "run.json")
    assert (m["status"], m["epochs_done"], len(m["history"]["epoch"])) == ("diverged", 2, 2)
    assert m["diverged"] == {"epoch": 2, "step": e.step, "what": e.what}
    kept = bp.load(out / "model.npz")  # epoch 1's weights, finite, as the checkpoint holds them
    with np.load(out / CHECKPOINT) as checkpoint:
        for i, W in enumerate(kept.params()):
            np.testing.assert_array_equal(W, checkpoint[f"W.{i}"])
    assert [float(np.linalg.vector_norm(W)) for W in kept.params()] == m["history"]["weight_norm"][-1]


def test_train_refuses_inputs_that_are_not_finite_or_unscaled_integers():
    rng = np.random.default_rng(0)
    net = bp.NeuralNet((6, 4, 3), rng=rng)
    X, y = rng.random((20, 6)), rng.integers(0, 3, 20)
    for bad, message in [(np.where(np.eye(20, 6) > 0, np.nan, X), "train: X holds NaN or infinite values"),
                         (np.full((20, 6), -np.inf), "train: X holds NaN or infinite values"),
                         ((X * 255).astype(np.int64), "train: X is int64; give uint8 pixel values 0..255")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            bp.train(net, bad, y, epochs=1, rng=rng)
    with pytest.raises(ValueError, match="train: X_test holds NaN or infinite values"):
        bp.train(net, X, y, epochs=1, rng=rng, X_test=np.full((2, 6), np.inf), y_test=y[:2])
    bp.train(net, (X * 255).astype(np.uint8), y, epochs=1, rng=rng)  # pixels: scaled
    bp.train(net, X.astype(np.float32), y, epochs=1, rng=rng)


def test_training_diverged_is_an_arithmetic_error_naming_epoch_and_step():
    e = TrainingDiverged(3, 17, "the loss is nan")
    assert isinstance(e, ArithmeticError) and (e.epoch, e.step) == (3, 17)
    assert str(e) == "training diverged at epoch 3, step 17 (the loss is nan): try a lower learning rate"
    assert bp.TrainingDiverged is TrainingDiverged


# --- SIGKILL at random moments: never a folder that cannot be used, never two runs mixed ---------


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_broken_or_mixed_folder(tmp_path):
    """20 runs killed at moments drawn from a fixed seed, each over an earlier run (--overwrite): the
    folder always holds one run's files, usable by evaluate, report and --resume, and --resume ends
    at the uninterrupted run's very weights."""
    def cli(*args, **kw):
        return subprocess.run([sys.executable, "-m", "bareprop", *args], capture_output=True, text=True,
                              timeout=300, **kw)

    settings = ["--epochs", "3", "--hidden", "8"]
    old = tmp_path / "old"  # the run each killed one replaces: seed 1, one epoch, with its report
    made = cli("train", "--epochs", "1", "--hidden", "8", "--seed", "1", "--quiet", "--output", str(old))
    assert made.returncode == 0, made.stderr
    old_weights = [W.copy() for W in bp.load(old / "model.npz").params()]

    reference = []  # the new run's weights after each epoch, read from its checkpoint as it goes
    def keep(history):
        with np.load(tmp_path / "ref" / CHECKPOINT) as c:
            reference.append([c["W.0"].copy(), c["W.1"].copy()])
    run(RunConfig(epochs=3, hidden=8, plot=False, output=str(tmp_path / "ref")), on_epoch=keep)

    start = time.perf_counter()
    whole = cli("train", *settings, "--quiet", "--output", str(tmp_path / "whole"))
    span = time.perf_counter() - start
    assert whole.returncode == 0, whole.stderr
    assert all(np.array_equal(a, b) for a, b in zip(bp.load(tmp_path / "whole" / "model.npz").params(), reference[-1]))

    def same(net, weights):
        return all(np.array_equal(a, b) for a, b in zip(net.params(), weights))

    moments = np.random.default_rng(14).uniform(0.3, 1.05, size=20) * span  # most of them while it trains
    seen = set()
    for i, moment in enumerate(moments):
        out = tmp_path / f"kill{i}"
        shutil.copytree(old, out)
        process = subprocess.Popen([sys.executable, "-m", "bareprop", "train", *settings, "--quiet", "--overwrite",
                                    "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(moment)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

        names = sorted(os.listdir(out))
        files = [n for n in names if not n.startswith(".")]  # .run.json.*.tmp: a write the kill cut short
        assert set(files) <= runner.run_files(), names
        if "run.json" not in files:  # between the old run's last file going and the new run.json: empty
            assert files == []
            seen.add("empty")
            resumed = cli("train", "--resume", str(out))
            assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1, resumed.stderr
            continue
        m = strict_json(out / "run.json")
        model = bp.load(out / "model.npz") if "model.npz" in files else None
        if m["seed"] == 1:  # still the old run, or what is left of it: never the new run's files
            seen.add("old")
            assert m["status"] == "complete" and CHECKPOINT not in files
            assert model is None or same(model, old_weights)
        else:
            k = m["epochs_done"]
            seen.add(m["status"])
            assert m["status"] in ("running", "complete") and m["history"]["epoch"] == list(range(k))
            assert model is None or any(same(model, reference[e]) for e in (k - 1, k - 2) if e >= 0)
        if model is not None:
            assert cli("evaluate", str(out / "model.npz")).returncode == 0
            assert cli("report", str(out)).returncode == 0, "report"
        resumed = cli("train", "--resume", str(out), "--quiet")
        if m["status"] == "running":
            assert resumed.returncode == 0, resumed.stderr
            assert same(bp.load(out / "model.npz"), reference[-1])
            assert strict_json(out / "run.json")["status"] == "complete"
        else:
            assert resumed.returncode == 2 and resumed.stderr.count("\n") == 1, resumed.stderr
    assert "running" in seen, seen  # the moments did catch it training


def test_a_net_too_big_for_this_machine_is_one_line_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--hidden", str(10**18), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"bareprop: error: layers 784,{10**18},10: the weights alone need ") and "\n" not in err
    assert err.endswith(" GiB") and "more than this machine's" in err and not out.exists()


def test_a_full_disk_while_saving_is_one_line_and_the_run_resumes(tmp_path):
    """A file-size limit stands in for a full disk: the report (the largest file) cannot be written once
    training is done. One line, exit 2, the trained model kept, and --resume writes what was missing."""
    import resource

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "bareprop", "train", "--epochs", "2", "--hidden", "8", "--output", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, preexec_fn=limit_files)
    assert result.returncode == 2, result.stderr
    assert re.fullmatch(f"bareprop: error: cannot write {re.escape(str(out))}/[a-z_.]+: File too large; "
                        f"{re.escape(str(out))} keeps epochs 0-1\n", result.stderr), result.stderr
    assert strict_json(out / "run.json")["status"] == "interrupted" and (out / "model.npz").exists()
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert strict_json(out / "run.json")["status"] == "complete" and (out / "report.html").exists()
