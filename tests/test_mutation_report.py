"""scripts/mutation_report.py and docs/mutation-verdicts.toml: the verdicts stay well formed and about lines
the source still has, and a survivor is matched to its verdict by its code, comments aside."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("mutation_report", ROOT / "scripts" / "mutation_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def test_code_is_the_line_without_its_indentation_and_comment():
    assert report.code('        X[np.abs(X) < 1e-3] = 0.5  # keep every element off a kink') == "X[np.abs(X) < 1e-3] = 0.5"
    assert report.code('    name = "a # in a string"  # the comment') == 'name = "a # in a string"'
    assert report.code("    f(a,  # an argument's comment") == "f(a,"  # a bracket the line does not close


def test_mutmuts_names_are_read_as_the_functions_they_mutate():
    assert report.readable("xǁSequentialǁscore") == "Sequential.score" and report.readable("x__compare") == "_compare"


@pytest.mark.parametrize("entry", report.load_verdicts().values(), ids=lambda e: f"{e['function']}: {e['to'][:40]}")
def test_each_verdict_is_complete_and_about_a_line_the_source_still_has(entry):
    assert entry["verdict"] in ("equivalent", "survivor") and entry["reason"] and entry["from"] != entry["to"]
    source = (ROOT / "src" / entry["module"]).read_text()
    assert entry["from"] in [report.code(line) for line in source.splitlines()], "the line changed: check the verdict"
