"""The README's deep-MLP recipe, run exactly as the README shows it, still reaches 98.3% on MNIST."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def recipe_command():
    """The first bash block of the README's section on going beyond the post, as an argument list."""
    section = re.split(r"^## .*beyond the post.*$", README.read_text(), maxsplit=1, flags=re.M | re.I)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    args = shlex.split(block.replace("\\\n", " "))
    assert args[:2] == ["bareprop", "train"] and "--layers" in args
    return args[1:]


@pytest.mark.slow
def test_readme_recipe_reaches_98_3_percent(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bareprop", *recipe_command(), "--no-plot",
                             "--output", str(tmp_path / "run")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr
    accuracy = float(re.search(r"^test accuracy (\d\.\d+);", result.stdout, re.M).group(1))
    assert accuracy >= 0.983, result.stdout
