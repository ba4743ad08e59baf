"""The dataset layer end to end: a loopback server serves tiny datasets the tests write, so the real
download, verification and cache code runs; no test touches the internet."""

import contextlib
import errno
import gzip
import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from loopback import Server, gz, tiny_dataset, tiny_payloads, tls_context

from bareprop import DATASETS, DataError, download_dataset, import_dataset, load_dataset, verify_dataset
from bareprop.data import encode_idx
from bareprop.data.datasets import ALL_FILES, MAX_PAYLOAD, cache_root

IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"


pytestmark = pytest.mark.usefixtures("isolated")


@pytest.fixture
def root(tmp_path):
    return tmp_path / "cache"


def forbid_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was opened")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def snapshot(folder):
    """Every file and folder under `folder` with its bytes: to check that a failure changed nothing."""
    folder = Path(folder)
    if not folder.exists():
        return None
    def state(p):
        if p.is_symlink() or not p.is_file():
            return "dir" if p.is_dir() else f"-> {os.readlink(p)}" if p.is_symlink() else "special"
        return p.read_bytes() if p.stat().st_size <= 2**20 else ("bytes", p.stat().st_size)  # a sparse giant: its size
    return {str(p.relative_to(folder)): state(p) for p in folder.rglob("*")}


def altered(payload, offset=-1):
    """The payload with one byte changed: still a valid IDX file, but not the one downloaded."""
    b = bytearray(payload)
    b[offset] = (b[offset] + 1) % 3
    return bytes(b)


# ---- downloading ---------------------------------------------------------------------------------

def test_download_verify_and_reuse_without_network(server, root, monkeypatch):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    X, y = load_dataset(ds, "train", data_dir=root)
    assert X.shape == (12, 784) and X.dtype == np.float32 and y.dtype == np.int64
    images = np.frombuffer(payloads[IMAGES], np.uint8, offset=16).reshape(12, 784)
    np.testing.assert_array_equal(X, images / np.float32(255))
    assert y.tolist() == [i % 3 for i in range(12)]
    assert sorted(server.hits) == sorted(f"/a/{f}" for f in ALL_FILES)  # the whole dataset, once
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())
    for f in ALL_FILES:
        assert manifest["files"][f]["sha256"] == hashlib.sha256(payloads[f]).hexdigest()
        assert manifest["files"][f]["md5"] == ds.md5[f] and manifest["files"][f]["source"] == server.url(f"/a/{f}")
    assert sorted(p.name for p in (root / "tiny").iterdir()) == sorted([*ALL_FILES, "manifest.json"])

    forbid_network(monkeypatch)
    X_test, y_test = load_dataset(ds, "test", data_dir=root)
    assert X_test.shape == (6, 784) and y_test.tolist() == [0, 1, 2, 0, 1, 2]
    X_raw = load_dataset(ds, "train", data_dir=root, dtype=np.uint8)[0]  # raw pixels, scaled batch by batch later
    assert X_raw.dtype == np.uint8 and np.array_equal(X_raw, images)
    assert download_dataset(ds, data_dir=root) == root / "tiny"  # all there and valid: nothing fetched
    assert len(server.hits) == 4


def test_first_mirror_404_then_second_mirror(server, root):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.url("/gone/"), server.serve("/b/", files)])
    download_dataset(ds, data_dir=root)
    assert sorted(server.hits) == sorted([f"/gone/{f}" for f in ALL_FILES] + [f"/b/{f}" for f in ALL_FILES])
    assert verify_dataset(ds, data_dir=root)[LABELS]["md5"] == ds.md5[LABELS]


def test_corrupted_bytes_error_and_nothing_in_the_cache(server, root):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.url("/a/")])
    server.serve("/a/", {**files, LABELS: gzip.compress(altered(tiny_payloads()[LABELS]), mtime=0)})
    with pytest.raises(DataError, match=rf"^tiny: every mirror failed for {LABELS}: http://127\.0\.0\.1:\d+/a/{LABELS}: "
                       rf"MD5 of the \.gz is [0-9a-f]{{32}}, expected {ds.md5[LABELS]} \(the official file's\)$"):
        load_dataset(ds, "train", data_dir=root)
    assert not root.exists()  # not even the folders it made


def test_connection_dropped_mid_file_error_and_nothing_left(server, root):
    files = gz(tiny_payloads(n_train=200))
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    server.routes[f"/a/{IMAGES}"] = ("drop", files[IMAGES], 1000)
    with pytest.raises(DataError, match=rf"/a/{IMAGES}: connection closed after 1000 of {len(files[IMAGES])} bytes$"):
        download_dataset(ds, data_dir=root)
    assert not root.exists()


def test_failed_download_keeps_what_was_there(server, root):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    download_dataset(ds, data_dir=root)
    (root / "tiny" / LABELS).unlink()
    server.routes[f"/a/{LABELS}"] = 503
    before = snapshot(root)
    with pytest.raises(DataError, match="HTTP 503"):
        download_dataset(ds, data_dir=root)
    assert snapshot(root) == before


def test_every_mirror_failing_names_each(server, root):
    files = gz(tiny_payloads(n_train=200))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    server.routes[f"/drop/{IMAGES}"] = ("drop", files[IMAGES], 10)
    server.routes[f"/bad/{IMAGES}"] = files[IMAGES][:-5] + bytes(5)  # a mangled size in the gzip trailer
    mirrors = [server.url("/gone/"), f"http://127.0.0.1:{port}/x/", server.url("/drop/"), server.url("/bad/")]
    ds = tiny_dataset(files, mirrors)
    with pytest.raises(DataError) as e:
        download_dataset(ds, data_dir=root)
    message = str(e.value)
    assert message.startswith(f"tiny: every mirror failed for {IMAGES}: ") and "\n" not in message
    parts = message.split(f"{IMAGES}: ", 1)[1].split("; ")
    assert parts[0] == f"{mirrors[0]}{IMAGES}: HTTP 404 Not Found"
    assert parts[1].startswith(f"{mirrors[1]}{IMAGES}: ") and "refused" in parts[1].lower()
    assert parts[2] == f"{mirrors[2]}{IMAGES}: connection closed after 10 of {len(files[IMAGES])} bytes"
    assert re.fullmatch(rf"{re.escape(mirrors[3] + IMAGES)}: MD5 of the \.gz is [0-9a-f]{{32}}, expected "
                        rf"{ds.md5[IMAGES]} \(the official file's\)", parts[3])
    assert not root.exists()


def test_http_redirect_is_followed(server, root):
    files = gz(tiny_payloads())
    server.serve("/real/", files)
    for f in ALL_FILES:
        server.routes[f"/moved/{f}"] = ("redirect", server.url(f"/real/{f}"))
    download_dataset(tiny_dataset(files, [server.url("/moved/")]), data_dir=root)
    assert sorted(p.name for p in (root / "tiny").glob("*.gz")) == sorted(ALL_FILES)


@pytest.fixture
def https(tmp_path, monkeypatch):
    """An HTTPS server on 127.0.0.1 whose certificate the download code trusts through SSL_CERT_FILE."""
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    s = Server(tls=tls_context(ca))
    yield s
    s.close()


def test_https_to_http_redirect_is_refused(https, server, root):
    files = gz(tiny_payloads())
    plain = server.serve("/plain/", files)
    for f in ALL_FILES:
        https.routes[f"/down/{f}"] = ("redirect", plain + f)
    good = https.serve("/tls/", files)
    ds = tiny_dataset(files, [https.url("/down/"), good])
    download_dataset(ds, data_dir=root)  # the redirecting mirror is skipped; the https one serves
    assert server.hits == []  # the plain-http URL was never opened
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())
    assert all(e["source"].startswith(good) for e in manifest["files"].values())

    only_redirect = tiny_dataset(files, [https.url("/down/")], name="other")
    with pytest.raises(DataError, match=rf"^other: every mirror failed for {IMAGES}: https://127\.0\.0\.1:\d+/down/"
                       rf"{IMAGES}: refused redirect from https to {re.escape(plain + IMAGES)}$"):
        download_dataset(only_redirect, data_dir=root)
    assert server.hits == [] and not (root / "other").exists()


# ---- offline, the cache folder, files put there by hand ---------------------------------------------

def test_offline_never_opens_a_connection(root, monkeypatch):
    forbid_network(monkeypatch)
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, ["http://127.0.0.1:9/never/"])
    with pytest.raises(DataError, match=rf"^tiny is not in the cache and downloads are off .* put {IMAGES}, .* into "
                       rf"{re.escape(str(root / 'tiny'))} .*'bareprop data import tiny DIR'"):
        load_dataset(ds, "train", data_dir=root, offline=True)
    monkeypatch.setenv("BAREPROP_OFFLINE", "1")
    with pytest.raises(DataError, match="downloads are off"):
        load_dataset(ds, "test", data_dir=root)
    with pytest.raises(DataError, match="downloads are off"):
        download_dataset(ds, data_dir=root)
    monkeypatch.setenv("BAREPROP_OFFLINE", "maybe")
    with pytest.raises(DataError, match="BAREPROP_OFFLINE must be 1 or 0, got 'maybe'"):
        load_dataset(ds, "test", data_dir=root)
    assert not root.exists()


def test_files_put_in_the_cache_by_hand_are_checked_then_recorded(root, monkeypatch):
    forbid_network(monkeypatch)
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files)
    (root / "tiny").mkdir(parents=True)
    for f, data in files.items():
        (root / "tiny" / f).write_bytes(data)
    assert load_dataset(ds, "test", data_dir=root, offline=True)[0].shape == (6, 784)
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())["files"]
    assert manifest["t10k-labels-idx1-ubyte.gz"]["sha256"] == hashlib.sha256(payloads["t10k-labels-idx1-ubyte.gz"]).hexdigest()
    (root / "tiny" / IMAGES).write_bytes(gzip.compress(altered(payloads[IMAGES])))
    with pytest.raises(DataError, match=rf"{IMAGES}: MD5 of the \.gz is .*, expected {ds.md5[IMAGES]}"):
        load_dataset(ds, "train", data_dir=root, offline=True)


def test_cache_folder_choice(tmp_path, monkeypatch):
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root() == tmp_path / "user-cache"  # $BAREPROP_DATA, set by the fixture
    monkeypatch.delenv("BAREPROP_DATA")
    import platformdirs

    assert cache_root() == Path(platformdirs.user_cache_dir("bareprop"))


def test_altered_file_is_caught_and_download_repairs_it(server, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    download_dataset(ds, data_dir=root)
    (root / "tiny" / LABELS).write_bytes(gzip.compress(altered(payloads[LABELS])))
    with pytest.raises(DataError, match="SHA-256 of the decompressed data"):
        load_dataset(ds, "train", data_dir=root)
    download_dataset(ds, data_dir=root)
    assert server.hits.count(f"/a/{LABELS}") == 2 and len(server.hits) == 5  # only the bad file again
    assert load_dataset(ds, "train", data_dir=root)[1].tolist() == [i % 3 for i in range(12)]


def test_import_copies_verified_files(tmp_path, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    source = tmp_path / "downloads"
    source.mkdir()
    for f, data in files.items():
        (source / f).write_bytes(data)
    ds = tiny_dataset(files)
    assert import_dataset(ds, source, data_dir=root) == root / "tiny"
    assert all((root / "tiny" / f).read_bytes() == files[f] for f in ALL_FILES)
    assert "imported from" in json.loads((root / "tiny" / "manifest.json").read_text())["files"][LABELS]["source"]
    assert load_dataset(ds, "train", data_dir=root, offline=True)[0].shape == (12, 784)


def test_real_datasets_carry_their_classes_and_official_checksums():
    assert DATASETS["mnist"].classes == tuple("0123456789") and DATASETS["mnist"].shipped
    assert DATASETS["fashion-mnist"].classes[0] == "T-shirt/top" and DATASETS["fashion-mnist"].classes[9] == "Ankle boot"
    assert len(DATASETS["kmnist"].classes) == 10
    assert DATASETS["fashion-mnist"].md5[IMAGES] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    assert DATASETS["kmnist"].md5["t10k-labels-idx1-ubyte.gz"] == "7320c461ea6c1c855c0b718fb2a4b134"
    for ds in DATASETS.values():
        assert sorted(ds.md5 or ds.sha256) == sorted(ALL_FILES)


def test_shipped_mnist_verifies():
    report = verify_dataset("mnist")
    assert report["t10k-labels-idx1-ubyte.gz"]["sha256"].startswith("ff7bcfd4")


# ---- every bad-input case, with the exact message docs/data.md gives it ------------------------------

class Context:
    """Where a case runs. A case whose message names a file sets `files`: what each of the docs'
    placeholders `<file>`, `<images file>`, `<labels file>` must be (a path or a URL)."""

    def __init__(self, tmp_path, server, https):
        self.tmp, self.server, self.https, self.root = tmp_path, server, https, tmp_path / "cache"
        self.known = {}

    def name_files(self, where, bad):
        """The file `bad` at fault, in the folder or URL `where`, and the other file of its split."""
        images, labels = (bad.replace("labels-idx1", "images-idx3"), bad) if "labels" in bad else (
            bad, bad.replace("images-idx3", "labels-idx1"))
        self.known = {"<file>": f"{where}{bad}", "<images file>": f"{where}{images}", "<labels file>": f"{where}{labels}"}

    def download(self, payloads, bad=None, name="tiny"):
        """An action downloading a dataset whose official files are `payloads` (gzipped) from the loopback;
        the file `bad` is the one at fault."""
        files = gz(payloads)
        url = self.server.serve(f"/{name}/", files)
        if bad:
            self.name_files(url, bad)
        ds = tiny_dataset(files, [url], name=name)
        return lambda: download_dataset(ds, data_dir=self.root)

    def cached(self, change, bad=None):
        """An action loading a downloaded dataset after change(folder, payloads) altered its cache (its
        file `bad`, the images by default)."""
        payloads = tiny_payloads()
        files = gz(payloads)
        ds = tiny_dataset(files, [self.server.serve("/c/", files)])
        download_dataset(ds, data_dir=self.root)
        change(self.root / "tiny", payloads)
        self.name_files(f"{self.root / 'tiny'}{os.sep}", bad or IMAGES)
        return lambda: load_dataset(ds, "train", data_dir=self.root)

    def importing(self, files, bad, ds=None):
        """An action importing `files` from a folder; the file `bad` is the one at fault."""
        source = self.tmp / "downloads"
        source.mkdir(exist_ok=True)
        for f, data in files.items():
            (source / f).write_bytes(data)
        self.name_files(f"{source}{os.sep}", bad)
        ds = ds or tiny_dataset(files)
        return lambda: import_dataset(ds, source, data_dir=self.root)


def download_with(ctx, name, payload):
    """An action downloading the tiny dataset with its file `name` replaced by `payload`."""
    return ctx.download({**tiny_payloads(), name: payload}, bad=name)


def labels_file(values):
    return encode_idx(np.asarray(values, dtype=np.uint8))


def case_md5(ctx):
    files = gz(tiny_payloads())
    return ctx.importing({**files, LABELS: gzip.compress(altered(tiny_payloads()[LABELS]))}, LABELS, tiny_dataset(files))


def case_payload_sha(ctx):
    return ctx.cached(lambda d, p: (d / IMAGES).write_bytes(gzip.compress(altered(p[IMAGES], 500))))


def case_truncated(ctx):
    return ctx.cached(lambda d, p: (d / IMAGES).write_bytes((d / IMAGES).read_bytes()[:-100]))


def case_corrupt(ctx):
    def change(d, p):
        data = bytearray((d / IMAGES).read_bytes())
        data[-8] ^= 0xFF  # the CRC of the payload
        (d / IMAGES).write_bytes(bytes(data))
    return ctx.cached(change)


def case_unwritable_cache(ctx):
    ctx.root = ctx.tmp / "blocker"
    ctx.root.write_text("a file, not a folder")
    return ctx.download(tiny_payloads())


def case_every_mirror(ctx):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [ctx.server.url("/gone/"), ctx.server.url("/also-gone/")])
    return lambda: download_dataset(ds, data_dir=ctx.root)


def case_https_to_http(ctx):
    ds = tiny_dataset(gz(tiny_payloads()), [ctx.https.url("/down/")])
    for f in ALL_FILES:
        ctx.https.routes[f"/down/{f}"] = ("redirect", ctx.server.url(f"/plain/{f}"))
    return lambda: download_dataset(ds, data_dir=ctx.root)


def case_offline(ctx):
    ds = tiny_dataset(gz(tiny_payloads()), ["http://127.0.0.1:9/"])
    return lambda: load_dataset(ds, "train", data_dir=ctx.root, offline=True)


def case_import_missing(ctx):
    files = gz(tiny_payloads())
    return ctx.importing({f: b for f, b in files.items() if f != LABELS}, LABELS, tiny_dataset(files))


def case_verify_missing(ctx):
    ds = tiny_dataset(gz(tiny_payloads()))
    return lambda: verify_dataset(ds, data_dir=ctx.root)


def case_device(ctx):
    def change(d, p):
        (d / IMAGES).unlink()
        (d / IMAGES).symlink_to("/dev/zero")  # endless bytes: refused by what it is, never read
    return ctx.cached(change)


def case_unreadable(ctx):
    files = gz(tiny_payloads())
    action = ctx.importing(files, LABELS, tiny_dataset(files))
    real_open = os.open

    def disk_error(path, *args, **kwargs):  # the labels' disk failing: open() raises EIO
        if str(path).endswith(LABELS):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real_open(path, *args, **kwargs)

    ctx.known["<the system's reason>"] = os.strerror(errno.EIO)

    def run():
        with mock.patch("bareprop.data.reading.os.open", disk_error):
            action()
    return run


def case_too_large(ctx):
    def change(d, p):
        with open(d / IMAGES, "r+b") as f:
            f.truncate(MAX_PAYLOAD + 1)  # sparse: no room on disk, and never read
    return ctx.cached(change)


BAD_INPUT = {
    "`.gz` MD5 mismatch": case_md5,
    "payload SHA-256 mismatch": case_payload_sha,
    "truncated `.gz`": case_truncated,
    "corrupt gzip stream": case_corrupt,
    "wrong IDX magic": lambda ctx: download_with(ctx, IMAGES, b"\x01" + tiny_payloads()[IMAGES][1:]),
    "wrong element type": lambda ctx: download_with(ctx, IMAGES, encode_idx(np.zeros((12, 28, 28), dtype=np.int16))),
    "dimensions that disagree with the file's length": lambda ctx: download_with(
        ctx, IMAGES, tiny_payloads()[IMAGES][:-784]),
    "image and label counts that differ": lambda ctx: download_with(ctx, LABELS, labels_file([0, 1, 2] * 3)),
    "a label outside the dataset's classes": lambda ctx: download_with(
        ctx, LABELS, labels_file([0, 1, 2, 0, 1, 2, 0, 7, 2, 0, 1, 2])),
    "images that are not 28×28": lambda ctx: download_with(
        ctx, IMAGES, encode_idx(np.zeros((12, 32, 32), dtype=np.uint8))),
    "an empty file": lambda ctx: ctx.importing({**gz(tiny_payloads()), LABELS: b""}, LABELS),
    "a folder where a file should be": lambda ctx: ctx.cached(lambda d, p: ((d / IMAGES).unlink(), (d / IMAGES).mkdir())),
    "a named pipe or a device (such as /dev/zero) where a file should be": case_device,
    "a file larger than bareprop reads (256 MiB)": case_too_large,
    "a file that cannot be read": case_unreadable,
    "a cache folder that cannot be written": case_unwritable_cache,
    "every mirror failing": case_every_mirror,
    "a redirect from https to plain http": case_https_to_http,
    "a dataset missing, offline": case_offline,
    "a file missing from the folder given to `data import`": case_import_missing,
    "a dataset file missing at `data verify`": case_verify_missing,
    "an unknown dataset name": lambda ctx: lambda: load_dataset("cifar-10", data_dir=ctx.root),
    "a split with no images": lambda ctx: ctx.download(tiny_payloads(n_test=0), bad="t10k-images-idx3-ubyte.gz"),
}


def docs_messages():
    """case -> message template, from the table in docs/data.md."""
    table = {}
    for line in DOCS.read_text().splitlines():
        m = re.fullmatch(r"\| (.+?) \| `(.+)` \|", line)
        if m:
            table[m.group(1)] = m.group(2)
    return table


def template_regex(template, known=None):
    """`<anything>` in the docs stands for text that varies; everything else is literal. A placeholder in
    `known` ({placeholder: text}) stands for that text."""
    def part_regex(part):
        if part in (known or {}):
            return re.escape(known[part])
        return ".+" if part.startswith("<") else re.escape(part)
    return "".join(part_regex(part) for part in re.split(r"(<[^>]+>)", template))


def test_docs_table_lists_exactly_the_tested_cases():
    assert sorted(docs_messages()) == sorted(BAD_INPUT)


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_gets_the_documented_one_line_error_and_changes_nothing(case, tmp_path, server, https):
    ctx = Context(tmp_path, server, https)
    action = BAD_INPUT[case](ctx)
    before = snapshot(ctx.root)
    with pytest.raises(DataError) as e:
        action()
    message = str(e.value)
    assert "\n" not in message
    template = docs_messages()[case]
    named = set(re.findall(r"<(?:\w+ )?file>", template))
    assert named <= set(ctx.known) and bool(named) == any(k.endswith("file>") for k in ctx.known)  # and which
    assert re.fullmatch(template_regex(template, ctx.known), message), message
    assert snapshot(ctx.root) == before


def test_wrong_or_unreadable_manifest(server, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    download_dataset(ds, data_dir=root)
    manifest = root / "tiny" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["files"][LABELS]["sha256"] = "0" * 64  # a manifest that disagrees with a good file
    manifest.write_text(json.dumps(record))
    with pytest.raises(DataError, match=f"{LABELS}: SHA-256 of the decompressed data is .*, expected 0{{64}}$"):
        load_dataset(ds, "train", data_dir=root)
    download_dataset(ds, data_dir=root)  # the file is fetched again, checked by its MD5, and recorded anew
    assert json.loads(manifest.read_text())["files"][LABELS]["sha256"] == hashlib.sha256(payloads[LABELS]).hexdigest()
    manifest.write_text("{not json")  # unreadable: every file is checked against its official MD5 instead
    assert load_dataset(ds, "train", data_dir=root, offline=True)[0].shape == (12, 784)
    assert json.loads(manifest.read_text())["files"][IMAGES]["source"] == "found in the cache"


@pytest.mark.parametrize("entry", ["a string", ["a", "list"], {"md5": "no sha256"}, {"sha256": 64}],
                         ids=["string", "list", "no sha256", "sha256 not a string"])
def test_a_manifest_entry_that_is_not_a_files_record_is_ignored(entry, server, root):
    """An entry of the manifest's "files" that is not an object holding a sha256 string is no record: the
    file is checked against its official MD5 instead, and recorded anew."""
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/m/", files)])
    download_dataset(ds, data_dir=root)
    manifest = root / "tiny" / "manifest.json"
    record = json.loads(manifest.read_text())
    record["files"][LABELS] = entry
    manifest.write_text(json.dumps(record))
    assert load_dataset(ds, "train", data_dir=root, offline=True)[1].tolist() == [i % 3 for i in range(12)]
    recorded = json.loads(manifest.read_text())["files"][LABELS]
    assert recorded["sha256"] == hashlib.sha256(payloads[LABELS]).hexdigest() and recorded["source"] == "found in the cache"


def test_https_certificates_are_checked(https, root, monkeypatch):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [https.serve("/tls/", files)])
    monkeypatch.delenv("SSL_CERT_FILE")  # the test CA is no longer trusted
    with pytest.raises(DataError, match=r"^tiny: every mirror failed for .*: .*CERTIFICATE_VERIFY_FAILED"):
        download_dataset(ds, data_dir=root)
    assert not root.exists()


def test_interrupted_download_leaves_nothing(server, root):
    files = gz(tiny_payloads(n_train=300))
    ds = tiny_dataset(files, [server.serve("/a/", files)])

    def interrupt(file, done, total):
        if file == LABELS and done > 0:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second file
    with pytest.raises(KeyboardInterrupt):
        download_dataset(ds, data_dir=root, progress=interrupt)
    assert not root.exists()
    (root / "tiny").mkdir(parents=True)  # and with the folder already there: it stays, empty
    with pytest.raises(KeyboardInterrupt):
        download_dataset(ds, data_dir=root, progress=interrupt)
    assert list((root / "tiny").iterdir()) == []


# ---- the checks on what a file holds, each at its boundary ---------------------------------------

def import_with(tmp_path, root, split, labels, classes):
    """Import a tiny dataset of `classes` whose `split` labels file holds `labels`, then load that split."""
    payloads = {**tiny_payloads(classes=len(classes)), FILES_OF[split][1]: labels_file(labels)}
    files = gz(payloads)
    source = tmp_path / "downloads"
    source.mkdir(parents=True, exist_ok=True)
    for f, data in files.items():
        (source / f).write_bytes(data)
    ds = tiny_dataset(files, classes=classes)
    import_dataset(ds, source, data_dir=root)
    return load_dataset(ds, split, data_dir=root, offline=True)


FILES_OF = {"train": (IMAGES, LABELS), "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
SPLIT_SIZE = {"train": 12, "test": 6}  # tiny_payloads' images per split


@pytest.mark.parametrize("classes", [("cat", "dog", "eel"), tuple("abcdefghij"), ("only",)])
@pytest.mark.parametrize("split", ["train", "test"])
def test_the_last_class_is_a_label_and_the_number_of_classes_is_not(tmp_path, root, split, classes):
    """Labels run 0 .. K-1: K-1 (the largest, at the last index) loads, K is refused, on each split."""
    K, n = len(classes), SPLIT_SIZE[split]
    top = [0] * (n - 1) + [K - 1]
    _, y = import_with(tmp_path, root, split, top, classes)
    assert y.max() == K - 1 and y[-1] == K - 1
    with pytest.raises(DataError, match=rf"label {K} at index {n - 1} is outside the {K} classes"):
        import_with(tmp_path / "again", tmp_path / "again-cache", split, [0] * (n - 1) + [K], classes)


@pytest.mark.parametrize("extra", [-1, 1])
def test_one_label_more_or_fewer_than_the_images_is_refused(tmp_path, root, extra):
    n = SPLIT_SIZE["train"]
    with pytest.raises(DataError, match=rf"{n + extra} labels for the {n} images"):
        import_with(tmp_path, root, "train", [0] * (n + extra), ("cat", "dog", "eel"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_manifest_that_is_a_fifo_is_no_manifest_and_never_waited_on(server, root):
    """The files are then checked against their official MD5s, as with no manifest."""
    import threading

    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/m/", files)])
    download_dataset(ds, data_dir=root)
    (root / "tiny" / "manifest.json").unlink()
    os.mkfifo(root / "tiny" / "manifest.json")
    loaded = []
    thread = threading.Thread(target=lambda: loaded.append(load_dataset(ds, "train", data_dir=root, offline=True)),
                              daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive() and loaded[0][0].shape == (12, 784)


# ---- import: each refusal names the path, the cache unchanged; a re-import replaces ------------------

def write_folder(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for f, data in files.items():
        (folder / f).write_bytes(data)
    return folder


def refused(action, root):
    """The one-line message of the DataError `action` raises; the cache must be as it was."""
    before = snapshot(root)
    with pytest.raises(DataError) as e:
        action()
    assert snapshot(root) == before
    return str(e.value)


def test_import_errors_name_the_path_and_what_is_wrong(tmp_path, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files)
    source = write_folder(tmp_path / "downloads", files)
    bad = tmp_path / "bad"

    def importing(folder):
        return lambda: import_dataset(ds, folder, data_dir=root)

    assert refused(importing(tmp_path / "nowhere"), root) == f"{tmp_path / 'nowhere'}: not a folder"
    assert refused(importing(source / IMAGES), root) == f"{source / IMAGES}: not a folder"

    write_folder(bad, files)
    (bad / LABELS).unlink()
    (bad / LABELS).mkdir()
    assert refused(importing(bad), root) == f"{bad / LABELS}: is a folder, expected a file"

    (bad / LABELS).rmdir()
    write_folder(bad, {**files, IMAGES: files[IMAGES][:-100]})
    assert refused(importing(bad), root) == (
        f"{bad / IMAGES}: truncated gzip stream (the file ends before the compressed data does)")

    other = gzip.compress(altered(payloads[LABELS]), mtime=0)  # a valid gzip of a file that is not the official one
    write_folder(bad, {**files, LABELS: other})
    assert refused(importing(bad), root) == (
        f"{bad / LABELS}: MD5 of the .gz is {hashlib.md5(other).hexdigest()}, expected {ds.md5[LABELS]} "
        "(the official file's)")


def test_import_names_the_source_file_whose_contents_are_refused(tmp_path, root):
    """A file with the official MD5 whose labels do not fit the classes: the file named is the one the user gave."""
    files = gz({**tiny_payloads(), LABELS: labels_file([0, 1, 2, 0, 1, 2, 0, 7, 2, 0, 1, 2])})
    source = write_folder(tmp_path / "downloads", files)
    message = refused(lambda: import_dataset(tiny_dataset(files), source, data_dir=root), root)
    assert message == f"{source / LABELS}: label 7 at index 7 is outside the 3 classes of tiny (0-2)"


def test_import_refuses_a_gzip_bomb_by_what_it_would_inflate_to(tmp_path, root, monkeypatch):
    """A small .gz that inflates past the cap is refused as such (unread beyond it), not inflated whole
    and then found to have the wrong MD5. The 256 MiB cap is made 1 MiB here, so the bomb is small."""
    import bareprop.data.datasets as datasets

    monkeypatch.setattr(datasets, "MAX_PAYLOAD", 2**20)
    files = gz(tiny_payloads())
    source = write_folder(tmp_path / "downloads", {**files, IMAGES: gzip.compress(bytes(2**21))})  # 2 MiB in 2 kB
    message = refused(lambda: import_dataset(tiny_dataset(files), source, data_dir=root), root)
    assert message == f"{source / IMAGES}: decompresses to more than 1048576 bytes"


def test_a_gzip_bomb_from_a_mirror_is_refused_by_what_it_would_inflate_to(server, root, monkeypatch):
    """The same cap on a downloaded file, whose MD5 is the official one (a mirror serving a bomb as the
    dataset): refused, unread beyond the cap, and nothing put in the cache."""
    import bareprop.data.datasets as datasets

    monkeypatch.setattr(datasets, "MAX_PAYLOAD", 2**20)
    files = {**gz(tiny_payloads()), IMAGES: gzip.compress(bytes(2**21))}  # 2 MiB in 2 kB
    url = server.serve("/bomb/", files)
    message = refused(lambda: download_dataset(tiny_dataset(files, [url]), data_dir=root), root)
    assert message == f"{url}{IMAGES}: decompresses to more than 1048576 bytes"


def test_an_empty_file_from_a_mirror_is_refused_as_empty(server, root):
    files = {**gz(tiny_payloads()), LABELS: b""}
    url = server.serve("/empty/", files)
    message = refused(lambda: download_dataset(tiny_dataset(files, [url]), data_dir=root), root)
    assert message == f"{url}{LABELS}: empty file (0 bytes)"


@contextlib.contextmanager
def file_size_limit(n):
    """The disk filling up, as a file size limit (RLIMIT_FSIZE): a write past `n` bytes fails (EFBIG)."""
    import resource
    import signal

    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no signal
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


POSIX_LIMITS = pytest.mark.skipif(not hasattr(__import__("signal"), "SIGXFSZ"), reason="file size limits are POSIX")


@POSIX_LIMITS
def test_import_into_a_full_cache_is_one_line_with_the_os_reason(tmp_path, root):
    """The disk filling up while a file is copied in (here: a 1000-byte file size limit)."""
    files = gz(tiny_payloads())
    source = write_folder(tmp_path / "downloads", files)
    (root / "tiny").mkdir(parents=True)
    before = snapshot(root)
    with file_size_limit(1000), pytest.raises(DataError) as e:
        import_dataset(tiny_dataset(files), source, data_dir=root)
    assert str(e.value) == f"cannot write to the cache folder {root / 'tiny'}: File too large"
    assert snapshot(root) == before


def test_import_replaces_the_files_the_cache_holds(tmp_path, root):
    """The publisher's files changed (new official MD5s) while the cache's manifest vouches for the old
    ones: importing the new files replaces the old, which a download would keep as valid."""
    old, new = gz(tiny_payloads(seed=0)), gz(tiny_payloads(seed=1))
    import_dataset(tiny_dataset(old), write_folder(tmp_path / "old", old), data_dir=root)
    ds = tiny_dataset(new)
    source = write_folder(tmp_path / "new", new)
    import_dataset(ds, source, data_dir=root)
    assert all((root / "tiny" / f).read_bytes() == new[f] for f in ALL_FILES)
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())["files"]
    assert all(manifest[f]["source"] == f"imported from {(source / f).resolve()}" for f in ALL_FILES)
    X, _ = load_dataset(ds, "train", data_dir=root, offline=True)
    images = np.frombuffer(gzip.decompress(new[IMAGES]), np.uint8, offset=16).reshape(12, 784)
    np.testing.assert_array_equal(X, images / np.float32(255))


def test_offline_error_says_where_the_files_come_from(root):
    """The first mirror, or the publisher when bareprop knows no mirror."""
    files = gz(tiny_payloads())
    for mirrors, origin in [(["http://127.0.0.1:9/first/", "http://127.0.0.1:9/second/"], "http://127.0.0.1:9/first/"),
                            ([], "its publisher")]:
        ds = tiny_dataset(files, mirrors)
        assert refused(lambda: load_dataset(ds, "train", data_dir=root, offline=True), root) == (
            "tiny is not in the cache and downloads are off (--offline or BAREPROP_OFFLINE=1): "
            f"put {', '.join(ALL_FILES)} into {root / 'tiny'} (from {origin}), "
            "or run 'bareprop data import tiny DIR' on a folder that holds them")


def test_load_folder_checks_a_datasets_files_against_their_official_md5(tmp_path):
    """load_folder on a dataset with no SHA-256 known in advance (not mnist): the MD5s of the .gz decide."""
    from bareprop.data.datasets import load_folder

    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files)
    folder = write_folder(tmp_path / "files", files)
    X, y = load_folder(ds, "train", folder)
    assert X.dtype == np.float32 and X.shape == (12, 784) and y.tolist() == [i % 3 for i in range(12)]
    other = gzip.compress(altered(payloads[LABELS]), mtime=0)
    (folder / LABELS).write_bytes(other)
    with pytest.raises(DataError) as e:
        load_folder(ds, "train", folder)
    assert str(e.value) == (f"{folder / LABELS}: MD5 of the .gz is {hashlib.md5(other).hexdigest()}, "
                            f"expected {ds.md5[LABELS]} (the official file's)")


# ---- $BAREPROP_OFFLINE, and offline= over it ----------------------------------------------------------

NO_MIRRORS = f"tiny: every mirror failed for {IMAGES}: no mirrors"  # a download tried, with nowhere to go


def spellings(value):
    """A value as a user may type it: any case, spaces around it."""
    return [value, value.upper(), value.title(), f" {value} "]


@pytest.mark.parametrize("value, offline", [*[(v, False) for v in ("", "0", "false", "no", "off")],
                                            *[(v, True) for v in ("1", "true", "yes", "on")]])
def test_bareprop_offline_accepts_each_spelling_in_any_case(value, offline, root, monkeypatch):
    """Offline: the download is refused before it starts. Not offline: it is tried (and here finds no mirror)."""
    forbid_network(monkeypatch)
    ds = tiny_dataset(gz(tiny_payloads()))
    for spelling in spellings(value):
        monkeypatch.setenv("BAREPROP_OFFLINE", spelling)
        message = refused(lambda: download_dataset(ds, data_dir=root), root)
        assert message.startswith("tiny is not in the cache and downloads are off") if offline else message == NO_MIRRORS
    assert not root.exists()


def test_an_unknown_bareprop_offline_is_one_line_naming_it(root, monkeypatch):
    monkeypatch.setenv("BAREPROP_OFFLINE", "2")
    ds = tiny_dataset(gz(tiny_payloads()))
    assert refused(lambda: download_dataset(ds, data_dir=root), root) == "BAREPROP_OFFLINE must be 1 or 0, got '2'"


def test_offline_argument_overrides_bareprop_offline(server, root, monkeypatch):
    """offline=False downloads even with BAREPROP_OFFLINE=1; offline=True refuses even without it."""
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    monkeypatch.setenv("BAREPROP_OFFLINE", "1")
    assert load_dataset(ds, "test", data_dir=root, offline=False)[0].shape == (6, 784)
    assert len(server.hits) == 4
    other = tiny_dataset(files, [server.url("/a/")], name="other")
    assert download_dataset(other, data_dir=root, offline=False) == root / "other"
    assert len(server.hits) == 8
    monkeypatch.delenv("BAREPROP_OFFLINE")
    third = tiny_dataset(files, [server.url("/a/")], name="third")
    for action in (lambda: download_dataset(third, data_dir=root, offline=True),
                   lambda: load_dataset(third, "train", data_dir=root, offline=True)):
        assert refused(action, root).startswith("third is not in the cache and downloads are off")
    assert len(server.hits) == 8


# ---- downloading: mirrors, timeouts, the cache folder ---------------------------------------------------

def test_a_corrupted_mirror_is_skipped_for_the_next(server, root):
    """An MD5 mismatch on the first mirror: the second is tried, and its files are the ones kept."""
    payloads = tiny_payloads()
    files = gz(payloads)
    bad = {f: gzip.compress(altered(p), mtime=0) for f, p in payloads.items()}
    ds = tiny_dataset(files, [server.serve("/bad/", bad), server.serve("/good/", files)])
    download_dataset(ds, data_dir=root)
    assert all((root / "tiny" / f).read_bytes() == files[f] for f in ALL_FILES)
    manifest = json.loads((root / "tiny" / "manifest.json").read_text())["files"]
    assert all(manifest[f]["source"] == server.url(f"/good/{f}") for f in ALL_FILES)


def test_a_dataset_with_no_mirrors_says_so(root):
    assert refused(lambda: download_dataset(tiny_dataset(gz(tiny_payloads())), data_dir=root), root) == NO_MIRRORS
    assert not root.exists()


@contextlib.contextmanager
def stalling_mirror(hold=3.0):
    """A server on 127.0.0.1 that accepts a connection and never answers (until `hold` seconds, a backstop)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(hold)
    done = threading.Event()

    def serve():
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            done.wait(hold)
            conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow/"
    finally:
        done.set()
        listener.close()


def test_the_timeout_given_reaches_each_request(root):
    """A mirror that stalls fails after `timeout` seconds, named with its reason; the default is 30 s."""
    with stalling_mirror() as mirror:
        ds = tiny_dataset(gz(tiny_payloads()), [mirror])
        start = time.monotonic()
        message = refused(lambda: download_dataset(ds, data_dir=root, timeout=0.3), root)
        assert time.monotonic() - start < 2
    assert message == f"tiny: every mirror failed for {IMAGES}: {mirror}{IMAGES}: timed out"
    assert not root.exists()


def test_a_download_waits_30_seconds_for_a_mirror_by_default(server, root, monkeypatch):
    """What each request is given when no timeout is: 30 s (seen at the request, not in the signature)."""
    import bareprop.data.datasets as datasets

    given = []
    real_fetch = datasets.fetch
    monkeypatch.setattr(datasets, "fetch", lambda url, out, progress, timeout: given.append(timeout) or real_fetch(
        url, out, progress, timeout))
    files = gz(tiny_payloads())
    download_dataset(tiny_dataset(files, [server.serve("/t/", files)]), data_dir=root)
    assert given == [30] * len(files)


@POSIX_LIMITS
def test_download_into_a_full_cache_is_one_line_with_the_os_reason(server, root):
    """The disk filling up while a file is downloaded: not a mirror's fault, so no other mirror is tried."""
    files = gz(tiny_payloads(n_train=300))  # a .gz larger than the write buffer: the write itself fails
    ds = tiny_dataset(files, [server.serve("/a/", files), server.serve("/b/", files)])
    (root / "tiny").mkdir(parents=True)
    before = snapshot(root)
    with file_size_limit(1000), pytest.raises(DataError) as e:
        download_dataset(ds, data_dir=root)
    assert str(e.value) == f"cannot write to the cache folder {root / 'tiny'}: File too large"
    assert snapshot(root) == before and server.hits == [f"/a/{IMAGES}"]


def test_a_cache_folder_that_is_a_file_is_refused(server, root):
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    root.mkdir()
    (root / "tiny").write_text("not a folder")
    assert refused(lambda: download_dataset(ds, data_dir=root), root) == (
        f"cannot write to the cache folder {root / 'tiny'}: it is a file")
    (root / "tiny").unlink()
    root.rmdir()
    root.write_text("not a folder either")  # the folder cannot be made: the OS's reason
    assert refused(lambda: download_dataset(ds, data_dir=root), root) == (
        f"cannot write to the cache folder {root / 'tiny'}: Not a directory")
    assert server.hits == []


def test_new_files_are_written_as_part_files_in_the_dataset_folder(server, root, monkeypatch):
    """docs/data.md: `.NAME.XXXX.part` in the dataset's folder, renamed once all pass. Nothing is written
    to the system's temporary folder (here one that does not exist); load_dataset reports progress."""
    files = gz(tiny_payloads())
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    monkeypatch.setattr(tempfile, "tempdir", str(root.parent / "no-system-temp"))
    seen = {}

    def progress(file, done, total):
        seen.setdefault(file, set()).update(p.name for p in (root / "tiny").iterdir())
    assert load_dataset(ds, "test", data_dir=root, progress=progress)[0].shape == (6, 784)
    assert sorted(seen) == sorted(ALL_FILES)
    for file in ALL_FILES:
        assert any(re.fullmatch(rf"\.{re.escape(file)}\.[a-z0-9_]+\.part", name) for name in seen[file]), seen[file]
    assert sorted(p.name for p in (root / "tiny").iterdir()) == sorted([*ALL_FILES, "manifest.json"])


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_installed_files_get_the_usual_permissions(tmp_path, root, umask):
    """As any new file: 0o666 less the umask (not the private 0o600 of a temporary file)."""
    files = gz(tiny_payloads())
    source = write_folder(tmp_path / "downloads", files)
    old = os.umask(umask)
    try:
        import_dataset(tiny_dataset(files), source, data_dir=root)
    finally:
        os.umask(old)
    assert {f: (root / "tiny" / f).stat().st_mode & 0o777 for f in ALL_FILES} == dict.fromkeys(ALL_FILES, 0o666 & ~umask)


def test_a_manifest_that_cannot_be_written_is_one_line_and_leaves_no_part_files(tmp_path, root):
    """manifest.json is a folder: found once the files are verified, before any is moved in, so the
    cache is exactly as it was."""
    files = gz(tiny_payloads())
    source = write_folder(tmp_path / "downloads", files)
    (root / "tiny" / "manifest.json").mkdir(parents=True)
    before = snapshot(root)
    with pytest.raises(DataError) as e:
        import_dataset(tiny_dataset(files), source, data_dir=root)
    assert str(e.value) == f"cannot write to the cache folder {root / 'tiny'}: manifest.json is a folder"
    assert snapshot(root) == before


# ---- what the cache holds, and what load and verify give back ------------------------------------------

def test_the_manifest_is_sorted_indented_json(server, root):
    """manifest.json: {"dataset": NAME, "files": {file: {md5, sha256, bytes, source}}}, the files in name
    order, indented by 2, ending in a newline: readable, and the same bytes for the same files."""
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    download_dataset(ds, data_dir=root)
    text = (root / "tiny" / "manifest.json").read_text()
    record = json.loads(text)
    assert list(record) == ["dataset", "files"] and record["dataset"] == "tiny"
    assert list(record["files"]) == sorted(ALL_FILES)
    assert record["files"][LABELS] == {"md5": ds.md5[LABELS], "sha256": hashlib.sha256(payloads[LABELS]).hexdigest(),
                                       "bytes": len(files[LABELS]), "source": server.url(f"/a/{LABELS}")}
    assert text == json.dumps(record, indent=2) + "\n"


def test_load_defaults_to_the_training_split_and_scales_in_the_dtype_asked(tmp_path, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files)
    import_dataset(ds, write_folder(tmp_path / "downloads", files), data_dir=root)
    images = np.frombuffer(payloads[IMAGES], np.uint8, offset=16).reshape(12, 784)
    X, y = load_dataset(ds, data_dir=root)
    assert X.shape == (12, 784) and X.dtype == np.float32 and y.tolist() == [i % 3 for i in range(12)]
    np.testing.assert_array_equal(X, images / np.float32(255))
    X64, _ = load_dataset(ds, data_dir=root, dtype=np.float64)
    assert X64.shape == (12, 784) and X64.dtype == np.float64
    np.testing.assert_array_equal(X64, images / np.float64(255))


def test_verify_reports_each_files_path_and_names_every_missing_file(server, root):
    payloads = tiny_payloads()
    files = gz(payloads)
    ds = tiny_dataset(files, [server.serve("/a/", files)])
    download_dataset(ds, data_dir=root)
    report = verify_dataset(ds, data_dir=root)
    assert report == {f: {"path": str(root / "tiny" / f), "md5": ds.md5[f],
                          "sha256": hashlib.sha256(payloads[f]).hexdigest(), "bytes": len(files[f])} for f in ALL_FILES}
    for f in (LABELS, "t10k-labels-idx1-ubyte.gz"):
        (root / "tiny" / f).unlink()
    assert refused(lambda: verify_dataset(ds, data_dir=root), root) == (
        f"tiny: {LABELS}, t10k-labels-idx1-ubyte.gz missing from {root / 'tiny'}; run 'bareprop data download tiny'")



def test_a_failure_among_the_renames_is_one_line_and_leaves_a_valid_cache(tmp_path, root, monkeypatch):
    """An I/O error while the verified files are renamed into place (here: on the second rename): one
    line naming the folder and the reason, no .part file left behind, and what was renamed is an
    official, verified file, so the cache still loads."""
    import errno

    files = gz(tiny_payloads())
    source = write_folder(tmp_path / "downloads", files)
    ds = tiny_dataset(files)
    real_replace, calls = os.replace, []

    def failing_replace(a, b):
        calls.append(b)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(a, b)

    monkeypatch.setattr("bareprop.data.datasets.os.replace", failing_replace)
    with pytest.raises(DataError) as e:
        import_dataset(ds, source, data_dir=root)
    assert str(e.value) == f"cannot write to the cache folder {root / 'tiny'}: Input/output error"
    assert not [p.name for p in (root / "tiny").iterdir() if p.name.endswith(".part")]
    monkeypatch.setattr("bareprop.data.datasets.os.replace", real_replace)
    import_dataset(ds, source, data_dir=root)
    assert load_dataset(ds, "train", data_dir=root)[0].shape == (12, 784)
