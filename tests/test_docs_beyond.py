"""The runnable examples of docs/beyond-the-post.md are run, so the page cannot drift from the code."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "beyond-the-post.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_has_examples():
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("code", BLOCKS)
def test_example_runs(code):
    exec(compile(code, str(PAGE), "exec"), {})
