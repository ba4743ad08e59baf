"""Reading what others wrote: files read defensively (a regular file, a capped size), run.json
replays exact or refused, `bareprop report` reading someone else's run folder, and the CLI's
endings that are not errors of the input (a closed pipe, no memory left)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from test_cli_model import one_line_error as whole_error_line
from loopback import gz, like, tiny_payloads

import bareprop as bp
from bareprop.cli import main
from bareprop.data.datasets import DATASETS, FILES
from bareprop.data.reading import read_file, size_text
from bareprop.experiment.config import MAX_RUN_JSON

pytestmark = pytest.mark.usefixtures("isolated")
FIFO = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")


def one_line_error(capsys, *argv):
    """Run the CLI in this process: its one-line error (exit code 2, nothing on stdout), the message alone."""
    return whole_error_line(capsys, *argv).removeprefix("bareprop: error: ").removesuffix("\n")


def fifo(path):
    os.mkfifo(path)
    return path


def sparse(path, size):
    """A file of `size` bytes that takes no room on disk (and is never read: its size refuses it)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def in_a_thread(action, timeout=20):
    """action() in a thread that must finish within `timeout` seconds: a FIFO must never be waited on."""
    result = {}

    def run():
        try:
            result["value"] = action()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result["error"] = e
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "it waited on the FIFO"
    if "error" in result:
        raise result["error"]
    return result["value"]


# --- the reader itself ---------------------------------------------------------------------------

def fail(problem):
    return ValueError(problem)


def test_read_file_gives_the_bytes_of_a_regular_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert read_file(tmp_path / "a", 3, "a test file", fail) == b"abc"
    assert size_text(10 * 2**20) == "10 MiB" and size_text(2**30) == "1 GiB" and size_text(12) == "12 bytes"


def test_read_file_refuses_a_file_over_the_cap_before_reading_it(tmp_path):
    with pytest.raises(ValueError, match=r"^4 bytes \(4 bytes\), more than the 3 bytes bareprop reads from a test file$"):
        read_file(sparse(tmp_path / "a", 4), 3, "a test file", fail)


@FIFO
def test_read_file_refuses_a_fifo_without_waiting(tmp_path):
    with pytest.raises(ValueError, match=r"^is a named pipe \(FIFO\), expected a file$"):
        in_a_thread(lambda: read_file(fifo(tmp_path / "p"), 100, "a test file", fail))


def test_read_file_refuses_dev_zero(tmp_path):
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=r"^is a character device, expected a file$"):
        read_file(tmp_path / "zero", 100, "a test file", fail)


def test_read_file_refuses_a_folder(tmp_path):
    with pytest.raises(ValueError, match=r"^is a folder, expected a file$"):
        read_file(tmp_path, 100, "a test file", fail)


# --- model files from the CLI --------------------------------------------------------------------

def test_evaluate_dev_zero_is_one_line(capsys):
    assert one_line_error(capsys, "evaluate", "/dev/zero") == "/dev/zero: is a character device, expected a file"


@FIFO
def test_evaluate_a_fifo_is_one_line_and_does_not_hang(tmp_path, capsys):
    path = fifo(tmp_path / "model.npz")
    assert in_a_thread(lambda: one_line_error(capsys, "evaluate", str(path))) == (
        f"{path}: is a named pipe (FIFO), expected a file")


def test_evaluate_a_folder_is_one_line(tmp_path, capsys):
    assert one_line_error(capsys, "evaluate", str(tmp_path)) == f"{tmp_path}: is a folder, expected a file"


# --- run.json: read defensively, replayed exactly or refused --------------------------------------

def test_config_dev_zero_is_one_line(tmp_path, capsys):
    err = one_line_error(capsys, "train", "--config", "/dev/zero", "--output", str(tmp_path / "out"))
    assert err == "/dev/zero: is a character device, expected a file"
    assert not (tmp_path / "out").exists()


@FIFO
def test_config_a_fifo_is_one_line_and_does_not_hang(tmp_path, capsys):
    path = fifo(tmp_path / "run.json")
    err = in_a_thread(lambda: one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "o")))
    assert err == f"{path}: is a named pipe (FIFO), expected a file"


def test_config_larger_than_10_mib_is_one_line(tmp_path, capsys):
    path = sparse(tmp_path / "run.json", MAX_RUN_JSON + 1)
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"{path}: 10 MiB ({MAX_RUN_JSON + 1} bytes), more than the 10 MiB bareprop reads from a run.json"


def write_run_json(path, config, **more):
    path.write_text(json.dumps({"format": "bareprop-run", "version": 1, "config": config, **more}))
    return path


def test_config_seed_null_is_refused_not_unseeded(tmp_path, capsys):
    path = write_run_json(tmp_path / "run.json", {"epochs": 1, "seed": None})
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"{path}: seed must be an integer >= 0, got None"


def test_config_a_mistyped_setting_is_refused(tmp_path, capsys):
    path = write_run_json(tmp_path / "run.json", {"epochs": "10"})
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"{path}: epochs must be a positive integer, got '10'"


def test_config_null_where_the_usual_value_is_meant_is_that_value(tmp_path):
    path = write_run_json(tmp_path / "run.json", {"hidden": None, "weight_decay": None, "optimizer": "adamw"})
    assert bp.RunConfig.from_run_json(path).resolved() == bp.RunConfig(optimizer="adamw").resolved()


def recorded_data(cli_run):
    return json.loads((cli_run.out / "run.json").read_text())["data"]


def test_config_whose_dataset_hash_differs_is_one_line_naming_the_file(cli_run, tmp_path, capsys):
    data = recorded_data(cli_run)
    data["mnist/t10k-labels-idx1-ubyte"] = "0" * 64
    path = write_run_json(tmp_path / "run.json", {"epochs": 1}, data=data)
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == (f"{path}: the run trained on mnist/t10k-labels-idx1-ubyte with SHA-256 {'0' * 64}, but the "
                   "mnist/t10k-labels-idx1-ubyte a repeat would train on has SHA-256 "
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")
    assert not (tmp_path / "out").exists()


def test_config_whose_data_is_another_datasets_is_one_line(cli_run, tmp_path, capsys):
    path = write_run_json(tmp_path / "run.json", {"epochs": 1, "dataset": "kmnist"}, data=recorded_data(cli_run))
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"{path}: records the data file mnist/t10k-images-idx3-ubyte, which is not one of kmnist's"


def test_config_whose_data_is_not_a_map_is_one_line(tmp_path, capsys):
    path = write_run_json(tmp_path / "run.json", {"epochs": 1}, data=["mnist"])
    err = one_line_error(capsys, "train", "--config", str(path), "--output", str(tmp_path / "out"))
    assert err == f"{path}: its \"data\" is not a map of dataset files to SHA-256s"


def test_config_a_run_folder_with_its_hashes_replays(cli_run):
    """The run folder itself will do, and its recorded data passes the check."""
    assert bp.RunConfig.from_run_json(cli_run.out) == bp.RunConfig(epochs=1).resolved()


def test_config_flags_override_the_file_end_to_end(tmp_path, capsys):
    """--config adamw_run.json --optimizer sgd --layers 784,16,10: no weight decay kept, the new widths taken."""
    assert main(["train", "--epochs", "1", "--hidden", "8", "--optimizer", "adamw", "--lr", "0.002", "--no-plot",
                 "--quiet", "--output", str(tmp_path / "adamw")]) == 0
    assert main(["train", "--config", str(tmp_path / "adamw"), "--optimizer", "sgd", "--layers", "784,16,10",
                 "--quiet", "--output", str(tmp_path / "sgd")]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "sgd" / "run.json").read_text())["config"]
    assert (config["optimizer"], config["weight_decay"], config["momentum"]) == ("sgd", 0.0, None)
    assert (config["layers"], config["hidden"], config["lr"], config["plot"]) == ([784, 16, 10], None, 0.002, False)


# --- `bareprop report` on someone else's run folder ------------------------------------------------

@pytest.fixture
def their_run(cli_run, tmp_path):
    """A copy of conftest's run folder, as if someone else had sent it: run.json is theirs to edit."""
    folder = tmp_path / "their-run"
    shutil.copytree(cli_run.out, folder)
    return folder


def edit_run_json(folder, change):
    manifest = json.loads((folder / "run.json").read_text())
    change(manifest)
    (folder / "run.json").write_text(json.dumps(manifest))


def every_file(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def forbid_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("a connection was opened"))


def test_report_ignores_the_data_dir_its_run_json_names_and_writes_only_in_the_run(their_run, tmp_path, capsys,
                                                                                     monkeypatch):
    forbid_network(monkeypatch)
    edit_run_json(their_run, lambda m: m["config"].update(data_dir=str(tmp_path / "their-choice")))
    before = set(every_file(tmp_path))
    assert main(["report", str(their_run)]) == 0
    assert capsys.readouterr().out == f"report in {(their_run / 'report.html').resolve()}\n"
    new = set(every_file(tmp_path)) - before
    assert new and all(name.startswith("their-run/") for name in new), new
    assert not (tmp_path / "their-choice").exists()


def test_report_never_downloads_without_download(their_run, tmp_path, capsys, monkeypatch):
    forbid_network(monkeypatch)
    edit_run_json(their_run, lambda m: m["config"].update(dataset="fashion-mnist", data_dir=str(tmp_path / "theirs")))
    folder = Path(os.environ["BAREPROP_DATA"]) / "fashion-mnist"
    assert one_line_error(capsys, "report", str(their_run)) == (
        f"the run's dataset fashion-mnist is not in the cache {folder}: run 'bareprop data download fashion-mnist', "
        "give the cache that holds it (--data-dir), or let report download it (--download)")
    assert not (tmp_path / "theirs").exists() and not folder.exists()


def test_report_download_fetches_into_the_users_cache(their_run, tmp_path, server, capsys, monkeypatch):
    files = gz(tiny_payloads(n_train=12, n_test=20, classes=10))
    monkeypatch.setitem(DATASETS, "fashion-mnist", like(DATASETS["fashion-mnist"], files, [server.serve("/f/", files)]))
    edit_run_json(their_run, lambda m: m["config"].update(dataset="fashion-mnist", data_dir=str(tmp_path / "theirs")))
    assert main(["report", str(their_run), "--download"]) == 0
    capsys.readouterr()
    folder = Path(os.environ["BAREPROP_DATA"]) / "fashion-mnist"
    assert {f for f in FILES["test"]} <= {p.name for p in folder.iterdir()}
    assert not (tmp_path / "theirs").exists()


@pytest.mark.parametrize("change, problem", [
    (lambda m: m["history"].update(train_loss="abc"), "its history.train_loss is not a list of 1 numbers (one per epoch)"),
    (lambda m: m["history"].update(weight_norm=[[1.0, "x"]]),
     "its history.weight_norm is not a list of 1 lists of numbers (one per epoch)"),
    (lambda m: m["history"].update(epoch=["0"]), "its history.epoch is not a list of epoch numbers"),
    (lambda m: m.update(seconds="5 s"), "its \"seconds\" is '5 s', not a number"),
    (lambda m: m["versions"].pop("python"), "its \"versions\" are not the python, numpy and bareprop versions, as strings"),
    (lambda m: m["config"].update(dataset="cifar"), "its dataset 'cifar' is not one this bareprop has (fashion-mnist, "
                                                   "kmnist, mnist)"),
], ids=["history list", "norms", "epochs", "seconds", "versions", "dataset"])
def test_report_on_a_damaged_run_json_is_one_line(their_run, capsys, change, problem):
    edit_run_json(their_run, change)
    assert one_line_error(capsys, "report", str(their_run)) == f"{their_run / 'run.json'}: {problem}"


def test_report_on_run_json_that_is_dev_zero_is_one_line(their_run, capsys):
    (their_run / "run.json").unlink()
    (their_run / "run.json").symlink_to("/dev/zero")
    assert one_line_error(capsys, "report", str(their_run)) == (
        f"{their_run / 'run.json'}: is a character device, expected a file")


def test_report_on_a_model_for_another_dataset_shape_is_one_line(their_run, capsys):
    bp.save(bp.NeuralNet((784, 8, 3), rng=np.random.default_rng(0)), their_run / "model.npz")
    assert one_line_error(capsys, "report", str(their_run)) == (
        f"{their_run / 'model.npz'}: the model maps 784 inputs to 3 classes; mnist, the run's dataset, needs 784 to 10")


# --- endings that are not errors of the input ------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    bp.save(bp.NeuralNet((784, 8, 10), rng=np.random.default_rng(0)), path)
    return path


@pytest.mark.parametrize("argv", [["gradcheck"], ["evaluate", "MODEL"]], ids=["gradcheck", "evaluate"])
def test_a_closed_pipe_ends_quietly_with_141(argv, model_file):
    """The reader is gone before anything is written: every write fails, and bareprop says nothing."""
    argv = [str(model_file) if a == "MODEL" else a for a in argv]
    p = subprocess.Popen([sys.executable, "-m", "bareprop", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=600) == 141 and err == b""


def test_head_dash_1_takes_the_first_line_and_nothing_is_said(model_file):
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m bareprop evaluate {model_file} | head -1"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 141) and result.stderr == ""  # 0 when it had written everything before head left
    assert result.stdout.startswith("test loss ") and result.stdout.count("\n") == 1


def test_out_of_memory_is_one_line_with_the_size_asked_for(tmp_path, capsys, monkeypatch):
    """Where the machine's memory is unknown (so no net is refused up front), the allocation that fails
    is still one line with its size; where it is known, too big a net is refused first."""
    args = ["train", "--hidden", "100000000000", "--epochs", "1", "--no-plot", "--output", str(tmp_path / "out")]
    assert "the weights alone need " in one_line_error(capsys, *args)
    monkeypatch.setattr("bareprop.experiment.config._physical_memory", lambda: None)
    err = one_line_error(capsys, *args)
    assert err.startswith("out of memory: Unable to allocate ") and "TiB" in err, err
    assert not (tmp_path / "out").exists()


def test_sigterm_during_a_download_leaves_no_part_file(tmp_path):
    """A mirror that sends the first bytes of a file, then stalls: SIGTERM mid-file stops the download
    and removes its temporary file (and the folder it made); the cache is as it was."""
    import signal
    import time

    stalled = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve():
        conn, _ = stalled.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"\x1f\x8b" + b"\0" * 4000)
        done.wait(60)
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{stalled.getsockname()[1]}/"
    root = tmp_path / "cache"
    child = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
             "from loopback import gz, like, tiny_payloads\n"
             "from bareprop.data.datasets import DATASETS\n"
             f"DATASETS['kmnist'] = like(DATASETS['kmnist'], gz(tiny_payloads(classes=10)), [{url!r}])\n"
             "from bareprop.cli import main\n"
             f"sys.exit(main(['data', 'download', 'kmnist', '--data-dir', {str(root)!r}]))\n")
    p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(root.glob("kmnist/.*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(root.glob("kmnist/.*.part")), "the download never started"
        time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        done.set()
        stalled.close()
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130 and err.decode().splitlines()[-1] == "bareprop: terminated (SIGTERM)", err
    assert not root.exists()  # the .part file, then the folders the download made: all gone
