"""Fixtures shared by the data tests: an isolated cache and a loopback server."""

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
