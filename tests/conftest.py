"""Fixtures shared by the tests: an isolated data cache, a loopback server, and one CLI run."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from loopback import Server


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No test sees the user's cache, offline setting or proxies."""
    monkeypatch.delenv("BAREPROP_OFFLINE", raising=False)
    monkeypatch.setenv("BAREPROP_DATA", str(tmp_path / "user-cache"))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    """An HTTP(S) server on 127.0.0.1 serving the files a test gives it; closed after the test."""
    s = Server()
    yield s
    s.close()


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
