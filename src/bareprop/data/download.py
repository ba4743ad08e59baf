"""Fetching one URL into an open file, with the standard library's urllib.

A mirror fails (MirrorFailure, and the caller tries the next) when it answers an error, cannot be
reached, redirects from https to plain http, or closes the connection before Content-Length bytes.
Writing the file is the caller's business: an OSError from `out.write` passes through unchanged.
"""

import hashlib
import http.client
import urllib.error
import urllib.request

CHUNK = 1 << 16


class MirrorFailure(Exception):
    """One mirror did not deliver the file; the message says why, on one line."""


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follow redirects, except from https to anything else: integrity in transit is never given up."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if req.full_url.lower().startswith("https:") and not newurl.lower().startswith("https:"):
            raise MirrorFailure(f"refused redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def fetch(url, out, on_progress=None, timeout=30):
    """Stream `url` into the binary file `out`; return the MD5 (hex) of the bytes received.

    on_progress(bytes_done, bytes_total or None) is called as the bytes arrive.
    """
    opener = urllib.request.build_opener(_NoDowngrade())
    try:
        response = opener.open(urllib.request.Request(url, headers={"User-Agent": "bareprop"}), timeout=timeout)
    except urllib.error.HTTPError as e:
        raise MirrorFailure(f"HTTP {e.code} {_one_line(e.reason)}") from None
    except urllib.error.URLError as e:
        raise MirrorFailure(_one_line(e.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise MirrorFailure(_one_line(e)) from None
    md5, done = hashlib.md5(), 0
    with response:
        length = response.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        if on_progress:
            on_progress(done, total)
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise MirrorFailure(f"connection failed after {done} bytes ({_one_line(e)})") from None
            if not chunk:
                break
            out.write(chunk)
            md5.update(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    if total is not None and done != total:
        raise MirrorFailure(f"connection closed after {done} of {total} bytes")
    return md5.hexdigest()
