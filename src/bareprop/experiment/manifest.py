"""The run manifest, run.json: what a training run did, enough to repeat it and get the same numbers.

    format, version   "bareprop-run", 1
    config            every setting (RunConfig.to_dict(), filled in), the seed and threads among them
    seed              the seed again, at the top where people look for it
    path, threads     the path train() took ("readable" or "kernel") and the threads it was given
    kernel_isa        the instructions of the compiled path that ran ("avx512f", "avx2+fma", "generic");
                      null on the readable path
    versions          Python, NumPy, bareprop, and the library of config's backend if it is not NumPy
    data              the SHA-256 of each dataset file (the decompressed payload, checked on load)
    history           per-epoch metrics and timings (History.to_dict())
    seconds           wall-clock seconds of the run: building the net and training
    status            "complete"; while it trains "running"; "interrupted" (Ctrl-C, SIGTERM, an error) or
                      "diverged" (a loss or weight not finite; with "diverged": {"epoch", "step", "what"})
                      if it stopped early; such a folder's history, model.npz and checkpoint.npz hold
                      the epochs done (see runner.py and docs/reliability.md)
    epochs_done       the epochs in history

It is strict JSON: a figure that is not finite (a loss that diverged) is written as null.
"""

import json
import math
import platform
from pathlib import Path

FORMAT = "bareprop-run"
VERSION = 1


class ManifestError(ValueError):
    """A run.json file is missing, unreadable, or not a bareprop run manifest."""


def dataset_sha256(name, data_dir=None):
    """{"<dataset>/<file>": SHA-256 of its decompressed payload} for the dataset a run used: the
    official values where bareprop knows them, else those its cache recorded (and checks on load)."""
    from ..data.datasets import DATASETS, _read_manifest, dataset_folder

    ds = DATASETS[name]
    recorded = {file: entry["sha256"] for file, entry in _read_manifest(dataset_folder(ds, data_dir)).items()}
    return {f"{ds.name}/{file.removesuffix('.gz')}": sha for file, sha in sorted({**recorded, **ds.sha256}.items())}


def _versions(backend, numpy_version, bareprop_version):
    """Python's, NumPy's and bareprop's versions, and the backend's library's if it is another (torch, cupy)."""
    versions = {"python": platform.python_version(), "numpy": numpy_version, "bareprop": bareprop_version}
    if backend != "numpy":
        import importlib

        versions[backend] = importlib.import_module(backend).__version__
    return versions


def build_manifest(config, history, seconds, data, kernel_isa=None, status="complete"):
    """The manifest of a run (finished unless `status` says otherwise), as a JSON-able dict. `config`
    is a dict holding "seed"; `data` the dataset's SHA-256s (dataset_sha256); kernel_isa that of the
    kernel, if it ran."""
    import numpy as np

    from .. import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(config),
        "seed": config["seed"],
        "path": history.path,
        "threads": history.threads,
        "kernel_isa": kernel_isa,
        "versions": _versions(config.get("backend", "numpy"), np.__version__, __version__),
        "data": data,
        "history": history.to_dict(),
        "seconds": seconds,
        "status": status,
        "epochs_done": len(history.epoch),
    }


def manifest_json(manifest):
    """The manifest as strict JSON bytes: NaN and infinities (a diverged loss) become null."""
    return json.dumps(_finite(manifest), indent=2, allow_nan=False).encode()


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def read_manifest(path):
    """The manifest dict of a run.json; ManifestError naming the file on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"{path}: not a bareprop run manifest (no \"format\": \"{FORMAT}\")")
    if manifest.get("version") != VERSION:
        raise ManifestError(f"{path}: manifest version {manifest.get('version')!r} is not supported "
                            f"(this bareprop reads version {VERSION})")
    if not isinstance(manifest.get("config"), dict):
        raise ManifestError(f"{path}: the manifest has no \"config\" object")
    return manifest
