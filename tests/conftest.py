"""Fixtures shared by the tests: an isolated data cache, a loopback server, MNIST loaded once, one CLI run."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from loopback import Server

import bareprop as bp


def pytest_collection_modifyitems(config, items):
    """Under mutmut (scripts/mutation.sh), the fastest tests first: a mutant is killed by the first test
    that fails, so the mutants the tests kill take seconds, not the minutes of every test that reaches them."""
    stats = Path("mutmut-stats.json")  # written by mutmut's first pass, in the folder it runs the tests from
    if "MUTANT_UNDER_TEST" in os.environ and stats.is_file():
        durations = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No test sees the user's cache, offline setting or proxies."""
    monkeypatch.delenv("BAREPROP_OFFLINE", raising=False)
    monkeypatch.setenv("BAREPROP_DATA", str(tmp_path / "user-cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def compiled(tmp_path):
    """compiled(name, *flags): the extension bareprop/fast/<name>.c built here by gcc with `flags`
    (-D... to leave builds out), loaded beside the installed one (not put in sys.modules)."""
    import importlib.util
    import shutil
    import sysconfig

    def build(name, *flags):
        source = Path(bp.__file__).parent / "fast" / f"{name}.c"
        target = tmp_path / (name + sysconfig.get_config_var("EXT_SUFFIX"))
        compiler = shutil.which("gcc") or shutil.which("cc")
        assert compiler, "a C compiler builds the extension; this test needs one too"
        subprocess.run([compiler, "-O3", "-Wno-psabi", "-shared", "-fPIC", *flags,
                        f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(target)], check=True)
        spec = importlib.util.spec_from_file_location(f"bareprop.fast.{name}", target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return build


@pytest.fixture
def server():
    """An HTTP(S) server on 127.0.0.1 serving the files a test gives it; closed after the test."""
    s = Server()
    yield s
    s.close()


@pytest.fixture(scope="session")
def mnist():
    """MNIST as its uint8 pixels, loaded once for the session: ((X, y), (X_test, y_test)), read-only.
    train() and the net scale uint8 batch by batch exactly as load_mnist scales (bp.core.net.as_inputs)."""
    splits = bp.load_mnist("train", dtype=np.uint8), bp.load_mnist("test", dtype=np.uint8)
    for array in (*splits[0], *splits[1]):
        array.flags.writeable = False  # a test that changes the data copies it first
    return splits


@pytest.fixture(scope="session")
def mnist_subset(mnist):
    """The first 3,000 test images as uint8: 46 batches of 64 and a short last one of 56."""
    X, y = mnist[1]
    return X[:3000], y[:3000]


@dataclass
class CliRun:
    out: Path  # the folder it wrote
    argv: list  # the arguments after `bareprop`
    lines: list  # what it printed, line by line


CLI_RUN = ["train", "--epochs", "1"]  # the post's run, one epoch, seed 0, report included


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """One `bareprop train --epochs 1` in a fresh process, for the tests that only read what it wrote
    and printed (a test that changes the folder copies it first)."""
    out = tmp_path_factory.mktemp("cli-run") / "run"
    argv = [*CLI_RUN, "--output", str(out)]
    result = subprocess.run([sys.executable, "-m", "bareprop", *argv], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return CliRun(out, argv, result.stdout.splitlines())
