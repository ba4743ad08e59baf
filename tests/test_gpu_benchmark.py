"""benchmarks/gpu.py, the GPU check, runs end to end on the CPU: `--device cpu --quick` measures the same
things as on CUDA (small), writes its JSON, and records CuPy as skipped rather than leaving it out.
Its timings are not checked: speed is measured on a GPU, never asserted here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.torch
def test_gpu_benchmark_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, "benchmarks/gpu.py", "--device", "cpu", "--quick", "--reps", "1",
                             "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert json.loads(result.stdout) == report  # the same one object on stdout

    assert report["machine"]["device"] == "cpu" and report["machine"]["name"]
    versions = report["versions"]
    for name in ("python", "numpy", "torch", "array_api_compat", "bareprop"):
        assert versions[name], name
    assert "cupy" in versions  # None when it is not installed

    post = report["post_net"]
    for name in ("bareprop_torch", "pytorch"):
        entry = post[name]
        assert "error" not in entry, entry
        assert entry["seconds"]["median"] > 0 and entry["seconds"]["min"] <= entry["seconds"]["max"]
        assert 0 <= entry["train_acc"] <= 1 and 0 <= entry["test_acc"] <= 1
    assert abs(post["bareprop_torch"]["test_acc"] - post["pytorch"]["test_acc"]) < 0.05  # the same training
    assert post["bareprop_torch_over_pytorch"] > 0
    assert "no torch.compile" in post["pytorch"]["variant"]

    wide = report["wide_mlp"]
    for name in ("bareprop_torch", "pytorch"):
        assert wide[name]["tflops"] > 0, wide[name]
    assert wide["bareprop_torch_over_pytorch_tflops"] > 0
    assert wide["bareprop_torch"]["final_loss"] == pytest.approx(wide["pytorch"]["final_loss"], rel=1e-3)

    for part in (post, wide):  # never silently left out
        assert set(part["bareprop_cupy"]) == {"skipped"} and "CUDA" in part["bareprop_cupy"]["skipped"]

    table = subprocess.run([sys.executable, "benchmarks/gpu.py", "--table", str(out)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
    assert table.returncode == 0, table.stderr
    assert "| bareprop, torch tensors |" in table.stdout and "| bareprop, CuPy | skipped |" in table.stdout
