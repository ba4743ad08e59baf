"""`bareprop gradcheck`: the table for every registered layer, exit code 1 on any failure."""

import subprocess
import re
import sys

from bareprop import ReLU
from bareprop.cli import main
from bareprop.check.references import REFERENCES, Reference


class MasklessReLU(ReLU):
    def __repr__(self):
        return "MasklessReLU()"

    def bp_input(self, grad):  # bug: the mask is missing
        return grad


def table_rows(stdout):
    """The table's rows split on runs of two or more spaces, header first."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer "))
    rows = []
    for line in lines[start:]:
        cells = re.split(r"\s{2,}", line)
        if len(cells) != 6:
            break
        rows.append(cells)
    return rows


def test_gradcheck_prints_a_passing_row_per_tensor_of_every_registered_layer():
    result = subprocess.run([sys.executable, "-m", "bareprop", "gradcheck"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    header, *rows = table_rows(result.stdout)
    assert header == ["layer", "check", "tensor", "max abs error", "max rel error", "ok"]
    names = {row[0].split("(")[0] for row in rows}
    assert names == {cls.__name__ for cls in REFERENCES}
    assert {row[1] for row in rows} == {"finite differences", "PyTorch"}
    assert ["ReLU()", "finite differences", "dX"] == next(row[:3] for row in rows if row[0] == "ReLU()")
    assert any(row[0].startswith("Linear(5, ") and row[1:3] == ["PyTorch", "dW"] for row in rows)
    assert all(row[5] == "ok" and float(row[3]) < 1e-6 for row in rows)
    assert result.stdout.splitlines()[-1] == f"all {len(rows)} checks passed"


def test_a_broken_layer_fails_the_command_with_exit_code_1(monkeypatch, capsys):
    monkeypatch.setitem(REFERENCES, MasklessReLU, Reference(build=lambda width, rng: MasklessReLU(),
                                                            torch=REFERENCES[ReLU].torch))
    assert main(["gradcheck", "--batch", "3", "--width", "4"]) == 1
    out = capsys.readouterr().out
    failing = [row for row in table_rows(out) if row[5] == "FAIL"]
    assert [row[:3] for row in failing] == [["MasklessReLU()", "finite differences", "dX"],
                                            ["MasklessReLU()", "PyTorch", "dX"]]
    assert "MasklessReLU(): dX is wrong at [" in out
    assert out.splitlines()[-1].startswith("2 of ") and out.splitlines()[-1].endswith(" checks failed")


def test_no_torch_and_shape_flags(capsys):
    assert main(["gradcheck", "--no-torch", "--batch", "1", "--width", "1", "--seed", "3"]) == 0
    header, *rows = table_rows(capsys.readouterr().out)
    assert {row[1] for row in rows} == {"finite differences"}
    assert any(row[0].startswith("Linear(1, ") for row in rows)


def test_without_pytorch_installed_it_says_so_and_checks_finite_differences(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PyTorch is not installed: checking against finite differences only")
    assert {row[1] for row in table_rows(out)[1:]} == {"finite differences"}


def test_same_seed_same_table(capsys):
    def table(seed):
        main(["gradcheck", "--no-torch", "--seed", str(seed)])
        return capsys.readouterr().out
    assert table(1) == table(1)
    assert table(1) != table(2)


def test_bad_flags_are_one_line_and_exit_2():
    for args, message in [(["--batch", "0"], "--batch: must be positive"), (["--width", "x"], "--width: expected a positive int"),
                          (["--bogus"], "unrecognized arguments: --bogus")]:
        result = subprocess.run([sys.executable, "-m", "bareprop", "gradcheck", *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_backend_runs_every_layer_on_that_library_and_catches_a_broken_one_there(monkeypatch, capsys):
    assert main(["gradcheck", "--backend", "array_api_strict", "--batch", "2", "--width", "3"]) == 0
    rows = table_rows(capsys.readouterr().out)[1:]
    assert {row[0].split("(")[0] for row in rows} == {cls.__name__ for cls in REFERENCES} and len(rows) > 30
    monkeypatch.setitem(REFERENCES, MasklessReLU, Reference(build=lambda width, rng: MasklessReLU(),
                                                            torch=REFERENCES[ReLU].torch))
    assert main(["gradcheck", "--backend", "array_api_strict", "--no-torch"]) == 1
    assert "MasklessReLU(): dX is wrong at [" in capsys.readouterr().out


def test_a_backend_that_is_not_installed_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert main(["gradcheck", "--backend", "cupy"]) == 2
    assert capsys.readouterr().err == "bareprop: error: the cupy backend needs cupy: pip install 'bareprop[cupy]'\n"
