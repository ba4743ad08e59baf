"""`bareprop data ...` and `bareprop train --dataset/--data-dir/--offline`, run in-process against tiny
datasets served on 127.0.0.1 (the real datasets' definitions are never pointed anywhere else, except
the one test that swaps fashion-mnist's checksums for its own files', through monkeypatch)."""

import gzip
import json
import socket
import subprocess
import sys

import pytest
from loopback import CLASSES, gz, like, tiny_dataset, tiny_payloads

from bareprop import load
from bareprop.cli import main
from bareprop.data.datasets import ALL_FILES, DATASETS

LABELS = "train-labels-idx1-ubyte.gz"


pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def tiny(server, monkeypatch):
    """A dataset `tiny` (3 classes) registered for the CLI, served by the loopback server."""
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/tiny/", files)])
    monkeypatch.setitem(DATASETS, "tiny", ds)
    return ds


def one_line_error(capsys, code, *args):
    assert main(list(args)) == code
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("bareprop: error: ") and "Traceback" not in err
    return last


def test_verify_shipped_mnist_prints_ok_with_checksums():
    result = subprocess.run([sys.executable, "-m", "bareprop", "data", "verify", "mnist"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "mnist: OK, 4 files verified"
    assert any(line.startswith("OK  ") and line.endswith(
        "t10k-labels-idx1-ubyte.gz  sha256 ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")
        for line in lines)
    assert sum(line.startswith("OK  ") for line in lines) == 4


def test_download_list_verify(tiny, server, tmp_path, capsys):
    root = tmp_path / "cache"
    assert main(["data", "download", "tiny", "--data-dir", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[-2:] == ["tiny: OK, 4 files verified", f"tiny is in {root / 'tiny'}"]
    bars = {line.split()[0]: line for line in err.splitlines()}  # the progress bar: each file, its bytes
    assert sorted(bars) == sorted(ALL_FILES) and "32/32 bytes" in bars[LABELS] and "0:00:00" in bars[LABELS]
    assert main(["data", "list", "--data-dir", str(root)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["tiny"][1:3] == ["3", "4/4"] and rows["tiny"][5] == "verified" and rows["tiny"][6] == str(root / "tiny")
    assert rows["fashion-mnist"][2] == "0/4" and rows["fashion-mnist"][5] == "missing"
    assert rows["mnist"][5] == "verified"
    assert main(["data", "verify", "tiny", "--data-dir", str(root)]) == 0
    assert capsys.readouterr().out.count("\nOK  ") == 3  # 4 lines, the first at the start
    assert main(["data", "download", "tiny", "--data-dir", str(root)]) == 0  # already there: no request
    assert len(server.hits) == 4


def test_verify_catches_an_altered_file(tiny, tmp_path, capsys):
    root = tmp_path / "cache"
    assert main(["data", "download", "tiny", "--data-dir", str(root)]) == 0
    path = root / "tiny" / LABELS
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 3
    path.write_bytes(gzip.compress(bytes(payload)))
    capsys.readouterr()
    line = one_line_error(capsys, 2, "data", "verify", "tiny", "--data-dir", str(root))
    assert f"{path}: SHA-256 of the decompressed data is" in line
    assert main(["data", "list", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "NOT VERIFIED" in out and f"tiny: {path}: SHA-256" in out
    assert main(["data", "verify", "--data-dir", str(root)]) == 2  # all datasets: mnist OK, tiny not
    out, err = capsys.readouterr()
    assert "mnist: OK, 4 files verified" in out and "fashion-mnist: not downloaded" in out
    assert err == f"bareprop: error: {path}: SHA-256" + err.split("SHA-256", 1)[1] and err.count("\n") == 1


def test_failed_download_exit_2_and_cache_untouched(tiny, server, tmp_path, capsys):
    server.routes.clear()
    line = one_line_error(capsys, 2, "data", "download", "tiny", "--data-dir", str(tmp_path / "cache"))
    assert line.startswith("bareprop: error: tiny: every mirror failed for train-images-idx3-ubyte.gz: ")
    assert "HTTP 404 Not Found" in line and not (tmp_path / "cache").exists()


def test_import(tiny, tmp_path, capsys, monkeypatch):
    source = tmp_path / "downloads"
    source.mkdir()
    for f, data in gz(tiny_payloads()).items():
        (source / f).write_bytes(data)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("a connection was opened"))
    assert main(["data", "import", "tiny", str(source), "--data-dir", str(tmp_path / "cache")]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "tiny: OK, 4 files verified"
    (source / LABELS).write_bytes(b"not the file")
    line = one_line_error(capsys, 2, "data", "import", "tiny", str(source), "--data-dir", str(tmp_path / "other"))
    assert f"{source / LABELS}: MD5 of the .gz is" in line and not (tmp_path / "other").exists()


def test_mnist_ships(capsys):
    assert main(["data", "download", "mnist"]) == 0
    assert "ships inside bareprop" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["data"], "required: ACTION"),
    (["data", "verify", "cifar"], "argument NAME: invalid choice: 'cifar'"),
    (["data", "download"], "required: NAME"),
    (["data", "import", "kmnist"], "required: DIR"),
    (["train", "--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
])
def test_bad_arguments(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_train_offline_without_the_dataset_names_files_and_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bareprop", "train", "--dataset", "kmnist", "--offline",
                             "--data-dir", str(tmp_path), "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "kmnist is not in the cache and downloads are off" in result.stderr
    assert all(f in result.stderr for f in ALL_FILES) and str(tmp_path / "kmnist") in result.stderr


def test_train_on_fashion_mnist_end_to_end(server, tmp_path, capsys, monkeypatch):
    """fashion-mnist with its own name and classes; its files (and so its MD5s) are the test's."""
    files = gz(tiny_payloads(n_train=40, n_test=20, classes=10))
    monkeypatch.setitem(DATASETS, "fashion-mnist", like(DATASETS["fashion-mnist"], files,
                                                        [server.serve("/f/", files)]))
    root, out = tmp_path / "cache", tmp_path / "run"
    args = ["train", "--dataset", "fashion-mnist", "--data-dir", str(root), "--epochs", "2", "--hidden", "8",
            "--no-plot", "--output", str(out)]
    assert main(args) == 0  # downloads on first use
    assert len(server.hits) == 4
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["dataset"] == "fashion-mnist" and len(record["history"]["test_acc"]) == 2
    assert set(record["data"]) == {f"fashion-mnist/{f.removesuffix('.gz')}" for f in ALL_FILES}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("epoch: 0 | correct: ") and str(out.resolve()) in printed[-1]

    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("a connection was opened"))
    assert main([*args, "--offline", "--overwrite"]) == 0  # from the cache, verified, no network
    assert len(server.hits) == 4


def test_train_uses_the_datasets_classes(tiny, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tmp_path / "c"), "--epochs", "1", "--no-plot",
                 "--output", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["dataset"] == "tiny"
    assert load(out / "model.npz").sizes == (784, 32, len(CLASSES))  # the output layer: one unit per class
