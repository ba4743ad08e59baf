"""An interrupted run keeps its epochs, and --resume ends it bit for bit where the uninterrupted run ends.

Each run trains on the first 2,000 MNIST images (hidden 16, 4 epochs): an on_epoch hook raising
KeyboardInterrupt after epoch k stands for Ctrl-C; resume_run continues from the folder alone.
"""

import json
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

import bareprop as bp
from bareprop.cli import main
from bareprop.experiment import ConfigError, RunConfig, run
from bareprop.experiment.runner import CHECKPOINT, resume_config

EPOCHS = 4
SETTINGS = {  # every optimizer state and schedule there is, on both paths
    "sgd, kernel": dict(path="kernel"),
    "sgd, kernel, 2 threads": dict(path="kernel", threads=2),
    "sgd, readable": dict(path="readable"),
    "momentum": dict(optimizer="momentum", nesterov=True, weight_decay=1e-4),
    "adam, cosine, warmup": dict(optimizer="adam", lr=0.003, schedule="cosine", warmup=10),
    "dropout, step": dict(dropout=0.2, schedule="step", optimizer="momentum"),  # the rng draws inside epochs
    "cnn on the compiled twin, adam": dict(net="conv:8:3,pool:2,conv:16:3,pool:2,dense:16", optimizer="adam"),
}


@pytest.fixture(scope="module")
def data():
    X, y = bp.load_mnist("train", dtype=np.uint8)
    X_test, y_test = bp.load_mnist("test", dtype=np.uint8)
    return X[:2000], y[:2000], X_test[:500], y_test[:500]


def config(out, **settings):
    width = {} if "net" in settings else {"hidden": 16}  # a --net ends in dense:16
    return RunConfig(epochs=EPOCHS, plot=False, output=str(out), **width, **settings)


def stop_after(k):
    def on_epoch(history):
        if len(history.epoch) == k:
            raise KeyboardInterrupt
    return on_epoch


def manifest_of(out):
    return json.loads((out / "run.json").read_text())


def assert_same_run(a, b):
    """Two folders hold the same run: model.npz byte for byte, run.json's history but for the times."""
    assert (a / "model.npz").read_bytes() == (b / "model.npz").read_bytes()
    ha, hb = manifest_of(a)["history"], manifest_of(b)["history"]
    assert {k: v for k, v in ha.items() if k != "seconds"} == {k: v for k, v in hb.items() if k != "seconds"}


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    """name -> the folder of each setting's run, start to end."""
    root = tmp_path_factory.mktemp("whole")
    return {name: run(config(root / str(i), **s), data=data).out for i, (name, s) in enumerate(SETTINGS.items())}


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("k", [1, 2, 3])
def test_an_interrupted_run_resumes_to_the_same_bits(data, uninterrupted, tmp_path, name, k):
    out = tmp_path / "run"
    with pytest.raises(bp.RunInterrupted, match=f"interrupted after {k} of {EPOCHS} epochs; {out} keeps them") as e:
        run(config(out, **SETTINGS[name]), data=data, on_epoch=stop_after(k))
    assert isinstance(e.value, KeyboardInterrupt) and (e.value.out, e.value.epochs_done) == (out, k)
    m = manifest_of(out)
    assert (m["status"], m["epochs_done"], m["history"]["epoch"]) == ("interrupted", k, list(range(k)))
    assert (out / CHECKPOINT).exists() and bp.load(out / "model.npz").sizes == (784, 16, 10)

    result = bp.resume_run(out, data=data)
    assert result.out == out and result.manifest["status"] == "complete" and result.manifest["epochs_done"] == EPOCHS
    assert_same_run(out, uninterrupted[name])
    assert not (out / CHECKPOINT).exists()  # a complete run has nothing to continue
    assert m["history"]["train_loss"] == manifest_of(uninterrupted[name])["history"]["train_loss"][:k]


def test_the_settings_cover_both_compiled_paths(uninterrupted):
    paths = {name: manifest_of(out)["path"] for name, out in uninterrupted.items()}
    assert paths["sgd, kernel"] == paths["cnn on the compiled twin, adam"] == "kernel" and paths["momentum"] == "readable"


def test_a_run_interrupted_twice_resumes_to_the_same_bits(data, uninterrupted, tmp_path):
    out, settings = tmp_path / "run", SETTINGS["adam, cosine, warmup"]
    with pytest.raises(KeyboardInterrupt):
        run(config(out, **settings), data=data, on_epoch=stop_after(1))
    with pytest.raises(KeyboardInterrupt):
        bp.resume_run(out, data=data, on_epoch=stop_after(3))
    assert manifest_of(out)["epochs_done"] == 3
    bp.resume_run(out, data=data)
    assert_same_run(out, uninterrupted["adam, cosine, warmup"])


def test_an_error_after_an_epoch_leaves_an_interrupted_run_that_resumes(data, uninterrupted, tmp_path):
    def fail(history):
        if len(history.epoch) == 2:
            raise OSError("disk full")
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        run(config(out, path="readable"), data=data, on_epoch=fail)
    assert (manifest_of(out)["status"], manifest_of(out)["epochs_done"]) == ("interrupted", 2)
    bp.resume_run(out, data=data)
    assert_same_run(out, uninterrupted["sgd, readable"])


def test_killed_before_its_first_epoch_a_run_starts_over(data, uninterrupted, tmp_path):
    """run.json says "running" with no epoch and there is no checkpoint: resume starts at epoch 0."""
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(config(out, path="readable"), data=data, on_epoch=stop_after(1))
    (out / CHECKPOINT).unlink()
    (out / "model.npz").unlink()
    m = manifest_of(out)
    m.update(status="running", epochs_done=0, history={**m["history"], **{k: [] for k in m["history"] if
                                                                          isinstance(m["history"][k], list)}})
    (out / "run.json").write_text(json.dumps(m))
    bp.resume_run(out, data=data)
    assert_same_run(out, uninterrupted["sgd, readable"])


def test_what_cannot_be_resumed_is_a_one_line_config_error(data, uninterrupted, tmp_path):
    done = uninterrupted["sgd, readable"]
    with pytest.raises(ConfigError, match=rf"^{done}: the run is complete \(4 epochs\): nothing to resume$"):
        bp.resume_run(done, data=data)
    with pytest.raises(ConfigError, match="not a run folder"):
        bp.resume_run(tmp_path / "nowhere", data=data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="run.json: cannot read"):
        bp.resume_run(tmp_path / "empty", data=data)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(config(out, path="readable"), data=data, on_epoch=stop_after(2))
    with pytest.raises(ConfigError, match=r"resuming needs the run's own settings; these differ: epochs, lr$"):
        run(replace(resume_config(out), epochs=5, lr=0.01), data=data, resume=True)
    with pytest.raises(ConfigError, match="the run trained on 2000 examples, not the 1000 given"):
        bp.resume_run(out, data=(data[0][:1000], data[1][:1000], *data[2:]))
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ConfigError) as e:
        bp.resume_run(out, data=data)
    assert str(e.value).startswith(f"{out / CHECKPOINT}: damaged or not this run's checkpoint (")
    assert "\n" not in str(e.value)
    (out / CHECKPOINT).unlink()  # gone, though run.json records 2 epochs
    with pytest.raises(ConfigError, match="missing, though run.json records finished epochs"):
        bp.resume_run(out, data=data)


def test_a_checkpoint_of_another_net_is_refused(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out, settings in [(a, {}), (b, dict(optimizer="momentum"))]:
        with pytest.raises(KeyboardInterrupt):
            run(config(out, path="readable", **settings), data=data, on_epoch=stop_after(1))
    (a / CHECKPOINT).write_bytes((b / CHECKPOINT).read_bytes())  # momentum's velocity: not plain SGD's state
    with pytest.raises(ConfigError, match=r"damaged or not this run's checkpoint \(its optimizer state velocity"):
        bp.resume_run(a, data=data)


# --- the command line: --resume, SIGTERM ------------------------------------------------------------


def test_resume_takes_no_settings_and_refuses_a_complete_run(uninterrupted, tmp_path, capsys):
    done = uninterrupted["sgd, readable"]
    assert main(["train", "--resume", str(done), "--epochs", "5", "--batch-size", "8", "--no-plot"]) == 2
    assert capsys.readouterr().err == ("bareprop: error: --resume continues a run with its own settings: drop "
                                       "--batch-size, --epochs, --no-plot\n")
    assert main(["train", "--resume", str(done), "--overwrite"]) == 2
    assert "drop --overwrite" in capsys.readouterr().err
    assert main(["train", "--resume", str(done)]) == 2
    assert capsys.readouterr().err == f"bareprop: error: {done}: the run is complete (4 epochs): nothing to resume\n"
    assert main(["train", "--resume", str(tmp_path)]) == 2  # killed before run.json: nothing to resume
    err = capsys.readouterr().err
    assert err.startswith("bareprop: error: ") and err.count("\n") == 1 and "run.json" in err


def test_sigterm_interrupts_the_cli_run_and_resume_ends_it_as_the_whole_run_would(tmp_path):
    """A real process: SIGTERM after its first epoch's line, exit code 130, then `--resume`. Twenty epochs
    of a small net (about a second) leave the signal ample time to arrive before the run could end."""
    epochs = 20
    argv = [sys.executable, "-m", "bareprop", "train", "--epochs", str(epochs), "--hidden", "8", "--no-plot"]
    whole = subprocess.run([*argv, "--output", str(tmp_path / "whole")], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "cut"
    process = subprocess.Popen([*argv, "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("epoch: 0 |")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    m = manifest_of(out)
    assert process.returncode == 130, err
    k = m["epochs_done"]
    assert m["status"] == "interrupted" and 1 <= k < epochs
    assert err == (f"bareprop: terminated (SIGTERM) after {k} of {epochs} epochs; {out} keeps them; "
                   f"`bareprop train --resume {out}` continues the run\n")

    resumed = subprocess.run([sys.executable, "-m", "bareprop", "train", "--resume", str(out)], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [line.split(" | ")[0] for line in resumed.stdout.splitlines()[:-1]] == [f"epoch: {e}" for e in range(k, epochs)]
    assert_same_run(out, tmp_path / "whole")
