"""Summarise a mutmut run (mutants/**/*.meta): the kill rate per module and every survivor, with why it lives.

    python scripts/mutation_report.py             # the table and every survivor with its verdict
    python scripts/mutation_report.py --diffs     # and each survivor's diff (mutmut show)
    python scripts/mutation_report.py --markdown  # the table and the survivors as docs/testing.md shows them

A timeout counts as killed (the mutant made the tests hang, so they did not pass), as mutmut counts it; a
mutant that no selected test reaches ("no tests") counts as not killed.
Each survivor is matched by its module and the line it changes to an entry of docs/mutation-verdicts.toml
(its verdict, "equivalent" or "survivor", and the reason); a survivor with no entry is "no verdict yet",
and the script then exits with status 1. So does a module with mutants the run did not reach.
"""

import argparse
import io
import json
import subprocess
import sys
import tokenize
import tomllib
from collections import Counter
from pathlib import Path

KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
OTHER = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}
VERDICTS = Path(__file__).resolve().parent.parent / "docs" / "mutation-verdicts.toml"


def results(root=Path("mutants")):
    """{module: {mutant name: result}} from mutmut's .meta files, the module as bareprop/....py."""
    out = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(root / "src"))[: -len(".meta")]
        out[module] = {name: KILLED.get(code) or OTHER.get(code, f"suspicious ({code})") for name, code in codes.items()}
    return out


def code(line):
    """A line of Python without its indentation and its comment."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[:token.start[1]].strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):  # a line that opens a bracket it does not close
        pass
    return line.strip()


def changed_lines(name):
    """(function, original line, mutated line, the diff) of a mutant, from `mutmut show`."""
    diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], capture_output=True, text=True).stdout
    lines = diff.splitlines()
    removed = [code(line[1:]) for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [code(line[1:]) for line in lines if line.startswith("+") and not line.startswith("+++")]
    return readable(name.split("__mutmut_")[0].rsplit(".", 1)[-1]), " ".join(removed), " ".join(added), diff


def readable(mangled):
    """mutmut's x_name and xǁClassǁmethod as name and Class.method."""
    if mangled.startswith("xǁ"):
        return ".".join(mangled[2:].split("ǁ", 1))
    return mangled[2:] if mangled.startswith("x_") else mangled


def load_verdicts(path=VERDICTS):
    """{(module, from, to): entry} from docs/mutation-verdicts.toml."""
    entries = tomllib.loads(path.read_text())["verdict"]
    return {(e["module"], e["from"], e["to"]): e for e in entries}


def summarise(table, verdicts):
    """The rows of the table and the survivors: [(module, counts)], [(module, name, function, from, to, verdict,
    reason, diff)]."""
    rows, survivors = [], []
    for module, by_name in table.items():
        n = Counter(by_name.values())
        for name, result in by_name.items():
            if result in ("killed", "timeout"):
                continue
            if result == "not checked":
                continue
            function, old, new, diff = changed_lines(name)
            entry = verdicts.get((module, old, new), {})
            verdict = entry.get("verdict", "no verdict yet") if result == "survived" else result
            survivors.append((module, name, function, old, new, verdict, entry.get("reason", ""), diff))
            n[verdict] += 1
        rows.append((module, n))
    return rows, survivors


def rate(n):
    """Killed (timeouts included) over the non-equivalent mutants the run reached: a mutant whose function no
    selected test reaches ("no tests") counts as not killed."""
    tested = sum(n[k] for k in ("killed", "timeout", "survived", "no tests"))
    equivalent = n["equivalent"]
    killed = n["killed"] + n["timeout"]
    return killed, tested - equivalent


def markdown(rows, survivors):
    out = ["| module | mutants | tested | killed | survived | equivalent | no tests | non-equivalent killed |",
           "|---|---|---|---|---|---|---|---|"]
    total = Counter()
    for module, n in rows + [("all", None)]:
        if n is None:
            n = total
        else:
            total.update(n)
        mutants = sum(n[k] for k in ("killed", "timeout", "survived", "no tests", "not checked"))
        tested = mutants - n["no tests"] - n["not checked"]
        killed, non_equivalent = rate(n)
        name = f"`{module}`" if module != "all" else "all"
        out.append(f"| {name} | {mutants} | {tested} | {killed} | {n['survived']} | {n['equivalent']} | "
                   f"{n['no tests']} | {killed}/{non_equivalent} = {100 * killed / max(non_equivalent, 1):.1f}% |")
    module = None
    for m, name, function, old, new, verdict, reason, _ in survivors:
        if m != module:
            out += ["", f"`{m}`:", ""]
            module = m
        number = name.rsplit("__mutmut_", 1)[-1]
        out.append(f"- `{function}` #{number} ({verdict}): `{old}` -> `{new}`" + (f": {reason}" if reason else ""))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    parser.add_argument("--markdown", action="store_true", help="print the section of docs/testing.md")
    args = parser.parse_args()
    table = results()
    rows, survivors = summarise(table, load_verdicts())
    if args.markdown:
        print(markdown(rows, survivors))
    else:
        for module, n in rows:
            killed, non_equivalent = rate(n)
            print(f"{module}: {sum(len(v) for k, v in table.items() if k == module)} mutants, "
                  f"{killed}/{non_equivalent} non-equivalent killed, {n['survived']} survived "
                  f"({n['equivalent']} equivalent), {n['no tests']} with no tests, {n['not checked']} not reached")
        for m, name, function, old, new, verdict, reason, diff in survivors:
            print(f"\n{name} ({verdict}): {old} -> {new}" + (f"\n    {reason}" if reason else ""))
            if args.diffs:
                print(diff)
    unexplained = [s for s in survivors if s[5] == "no verdict yet"]
    unreached = [module for module, n in rows if n["not checked"]]
    if unexplained or unreached:
        print(f"\n{len(unexplained)} survivors with no verdict yet; modules not fully run: {unreached or 'none'}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
