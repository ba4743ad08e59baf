"""The run manifest, run.json: what a training run did, enough to repeat it and get the same numbers.

    format, version   "bareprop-run", 1
    config            every training setting (the CLI's TrainConfig), the seed among them
    seed              the seed again, at the top where people look for it
    versions          Python, NumPy, bareprop
    data              the SHA-256 of each dataset file (the decompressed payload, checked on load)
    history           per-epoch metrics and timings (History.to_dict())
    seconds           wall-clock seconds of the whole run
"""

import json
import platform
from pathlib import Path

FORMAT = "bareprop-run"
VERSION = 1


class ManifestError(ValueError):
    """A run.json file is missing, unreadable, or not a bareprop run manifest."""


def dataset_sha256(name, data_dir=None):
    """{"<dataset>/<file>": SHA-256 of its decompressed payload} for the dataset a run used: the
    official values where bareprop knows them, else those its cache recorded (and checks on load)."""
    from .data.datasets import DATASETS, _read_manifest, dataset_folder

    ds = DATASETS[name]
    recorded = {file: entry["sha256"] for file, entry in _read_manifest(dataset_folder(ds, data_dir)).items()}
    return {f"{ds.name}/{file.removesuffix('.gz')}": sha for file, sha in sorted({**recorded, **ds.sha256}.items())}


def build_manifest(config, history, seconds, data):
    """The manifest of a finished run, as a JSON-able dict. `config` is a dict holding "seed";
    `data` the dataset's SHA-256s (dataset_sha256)."""
    import numpy as np

    from . import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(config),
        "seed": config["seed"],
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "bareprop": __version__},
        "data": data,
        "history": history.to_dict(),
        "seconds": seconds,
    }


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


def read_config(path, defaults):
    """The training settings recorded in a run.json, checked against `defaults` (a dict of the
    settings this bareprop knows, with their default values): same names, same types."""
    config = read_manifest(path)["config"]
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ManifestError(f"{path}: unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    for name, value in config.items():
        default = defaults[name]
        if default is None or value is None:
            ok = value is None or isinstance(value, str)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = {bool: "true or false", int: "an integer", float: "a number"}.get(type(default), "a string")
            raise ManifestError(f"{path}: setting {name} = {json.dumps(value)} is not {kind}")
    return config
