"""The Python examples in the docs run, as written, each page in a fresh interpreter."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def python_blocks(page):
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize("page", ["adding-a-layer.md"])
def test_examples_run(page):
    blocks = python_blocks(page)
    assert len(blocks) >= 4  # the page still has its examples
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Softplus(): dX agree with finite differences" in result.stdout
    assert "Softplus(): dX is wrong at [" in result.stdout


def test_derivations_link_to_files_that_exist():
    text = (DOCS / "derivations.md").read_text() + (DOCS / "adding-a-layer.md").read_text()
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", text) if not link.startswith("https://")]
    assert any(link.startswith("../src/bareprop/") for link in links)
    for link in links:
        assert (DOCS / link).exists(), link


def test_every_registered_layer_has_its_derivation():
    from bareprop.check.references import REFERENCES

    headings = set(re.findall(r"^## (\w+)$", (DOCS / "derivations.md").read_text(), re.M))
    missing = [cls.__name__ for cls in REFERENCES if cls.__name__ not in headings]
    assert not missing, f"docs/derivations.md has no '## Name' section for {missing} (see docs/adding-a-layer.md)"


ROOT = DOCS.parent


def test_the_readmes_links_go_to_files_that_exist():
    links = [link for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
             if not link.startswith("https://")]
    assert len(links) >= 10
    for link in links:
        assert (ROOT / link).exists(), link


def test_the_readmes_step_and_layer_are_the_codes_lines():
    """The README's three-line step and Linear's math, line for line in core/train.py and core/layers.py."""
    readme = (ROOT / "README.md").read_text()
    step, layer = re.findall(r"```python\n(.*?)```", readme, re.S)[1], re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    train_lines = {line.strip() for line in (ROOT / "src/bareprop/core/train.py").read_text().splitlines()}
    assert all(line.strip() in train_lines for line in step.splitlines() if line.strip())
    layers = (ROOT / "src/bareprop/core/layers.py").read_text()
    math = [line.strip() for line in layer.splitlines() if "#" in line and "def " not in line]
    assert len(math) == 6
    for line in math:
        code = line.split("#")[0].strip().removeprefix("return ")
        assert code in layers, line


def test_the_readmes_fast_path_line_counts_are_the_files():
    """The README's speed section gives the fast paths' size (issue 13 asks for it); it must be the files' now."""
    readme = " ".join((ROOT / "README.md").read_text().split())  # its lines joined: a sentence may wrap
    found = re.search(r"The fast paths are ([\d,]+) lines: the MLP kernel's ([\d,]+) \(.*?\), the CNN twin's ([\d,]+) "
                      r"and the (\d+) of `fast/__init__.py`", readme)
    assert found, "the README's speed section no longer gives the fast paths' lines"
    total, mlp, cnn, init = (int(n.replace(",", "")) for n in found.groups())
    fast = ROOT / "src" / "bareprop" / "fast"

    def lines(*names):
        return sum(len((fast / name).read_text().splitlines()) for name in names)

    assert mlp == lines("kernel.py", "_kernel.c", *(p.name for p in fast.glob("_kernel_*.h")))
    assert cnn == lines("conv.py", "_conv.c", "_conv_body.h")
    assert init == lines("__init__.py")
    assert total == mlp + cnn + init == lines(*(p.name for p in fast.iterdir() if p.suffix in (".py", ".c", ".h")))
