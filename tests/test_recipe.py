"""The README's recipes, run exactly as the README shows them: the deep MLP still reaches 98.3% on MNIST, the
convolutional net 99.0%."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def recipe_command(heading=r"beyond the post", flag="--layers"):
    """The first bash block of the README's section whose heading matches `heading`, as an argument list."""
    section = re.split(rf"^## .*{heading}.*$", README.read_text(), maxsplit=1, flags=re.M | re.I)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    args = shlex.split(block.replace("\\\n", " "))
    assert args[:2] == ["bareprop", "train"] and flag in args
    return args[1:]


def trained_accuracy(args, tmp_path):
    result = subprocess.run([sys.executable, "-m", "bareprop", *args, "--no-plot", "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    return float(re.search(r"^test accuracy (\d\.\d+);", result.stdout, re.M).group(1)), result.stdout


@pytest.mark.slow
def test_readme_recipe_reaches_98_3_percent(tmp_path):
    accuracy, out = trained_accuracy(recipe_command(), tmp_path)
    assert accuracy >= 0.983, out


@pytest.mark.slow
def test_readme_convolutional_recipe_reaches_99_percent(tmp_path):
    accuracy, out = trained_accuracy(recipe_command("convolutions", "--net"), tmp_path)
    assert accuracy >= 0.990, out
