"""Installing without a working C compiler still gives a working package (without the kernel)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_builds_without_a_c_compiler_and_leaves_the_kernel_out(tmp_path):
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:  # the committed tree only: no build folders, no compiled extension
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    env = {"PATH": "/usr/bin:/bin", "CC": "false", "LDSHARED": "false", "HOME": str(tmp_path)}
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(source)], capture_output=True, text=True, env=env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    output = build.stdout + build.stderr
    assert "could not build bareprop.fast._kernel with OpenMP" in output
    assert "going on without bareprop.fast._kernel" in output and "going on without bareprop.fast._conv" in output
    [wheel] = (tmp_path / "dist").glob("bareprop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bareprop/core/train.py" in names and "bareprop/data/mnist/train-images-idx3-ubyte.gz" in names
    assert not [name for name in names if ("_kernel" in name or "_conv" in name) and name.endswith((".so", ".pyd"))]
