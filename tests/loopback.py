"""Test helpers for the data layer: tiny MNIST-shaped datasets written by the tests, and an HTTP(S)
server on 127.0.0.1 (a free port, in a thread) that serves them, so the real download code runs
without the internet.

Server.routes maps a URL path to what is served there:
- bytes: 200 with Content-Length;
- int: that HTTP status, empty body;
- ("redirect", location): 302 to location;
- ("drop", body, n): Content-Length of the whole body, then n bytes, then the connection closes.
"""

import gzip
import hashlib
import http.server
import ssl
import threading
from dataclasses import replace

import numpy as np

from bareprop.data import Dataset, encode_idx
from bareprop.data.datasets import FILES

CLASSES = ("cat", "dog", "eel")


def tiny_payloads(n_train=12, n_test=6, classes=len(CLASSES), seed=0):
    """file name -> uncompressed IDX bytes of a small valid dataset (28x28 uint8 images)."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = FILES[split]
        files[images] = encode_idx(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        files[labels] = encode_idx(np.arange(n, dtype=np.uint8) % classes)
    return files


def gz(payloads):
    """Gzip every payload (mtime 0, so the bytes and their MD5s are reproducible)."""
    return {f: gzip.compress(p, mtime=0) for f, p in payloads.items()}


def tiny_dataset(files, mirrors=(), name="tiny", classes=CLASSES):
    """A Dataset whose 'official' MD5s are those of `files` (file name -> .gz bytes)."""
    return Dataset(name=name, classes=classes, md5={f: hashlib.md5(b).hexdigest() for f, b in files.items()},
                   mirrors=tuple(mirrors))


def like(dataset, files, mirrors=()):
    """A real dataset (its name and classes) with the MD5s of test files and the test's mirrors."""
    return replace(dataset, md5={f: hashlib.md5(b).hexdigest() for f, b in files.items()}, mirrors=tuple(mirrors))


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path, 404)
        if isinstance(route, int):
            self.send_response(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif isinstance(route, bytes):
            self.send_response(200)
            self.send_header("Content-Length", str(len(route)))
            self.end_headers()
            self.wfile.write(route)
        elif route[0] == "redirect":
            self.send_response(302)
            self.send_header("Location", route[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif route[0] == "drop":
            _, body, n = route
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


class Server:
    """A threaded HTTP server on 127.0.0.1; `tls` (an ssl.SSLContext) makes it HTTPS."""

    def __init__(self, tls=None):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes, self.httpd.hits = {}, []
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def routes(self):
        return self.httpd.routes

    @property
    def hits(self):
        return self.httpd.hits

    def url(self, path="/"):
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, prefix, files):
        """Serve each file at prefix + name; return the mirror's base URL."""
        for name, data in files.items():
            self.routes[prefix + name] = data
        return self.url(prefix)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tls_context(ca):
    """A server-side TLS context with a certificate for 127.0.0.1 issued by the trustme CA `ca`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context
