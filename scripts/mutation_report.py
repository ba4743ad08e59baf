"""Summarise a mutmut run (mutants/**/*.meta): the kill rate per module and every survivor's diff.

    python scripts/mutation_report.py            # the table and the survivors' names
    python scripts/mutation_report.py --diffs    # and each survivor's diff (mutmut show)

A timeout counts as killed (the mutant made the tests hang, so they did not pass), as mutmut counts it.
The survivors and why each lives are listed in docs/testing.md.
"""

import argparse
import json
import subprocess
from collections import Counter
from pathlib import Path

KILLED = {1: "killed", 3: "killed", 36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}
OTHER = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked"}


def verdicts(root=Path("mutants")):
    """{module file: {mutant name: verdict}} from mutmut's .meta files."""
    out = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(root))[: -len(".meta")]
        out[module] = {name: KILLED.get(code) or OTHER.get(code, f"suspicious ({code})") for name, code in codes.items()}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffs", action="store_true", help="print each survivor's diff")
    args = parser.parse_args()
    table, survivors, total = verdicts(), [], Counter()
    print(f"| module | mutants | killed | timeout | survived | no tests | killed % |")
    print("|---|---|---|---|---|---|---|")
    for module, by_name in table.items():
        n = Counter(by_name.values())
        total.update(n)
        tested = sum(n.values()) - n["no tests"] - n["not checked"]
        rate = 100 * (n["killed"] + n["timeout"]) / tested if tested else float("nan")
        print(f"| {module} | {sum(n.values())} | {n['killed']} | {n['timeout']} | {n['survived']} | "
              f"{n['no tests']} | {rate:.1f} |")
        survivors += [name for name, v in by_name.items() if v not in ("killed", "timeout")]
    tested = sum(total.values()) - total["no tests"] - total["not checked"]
    print(f"| all | {sum(total.values())} | {total['killed']} | {total['timeout']} | {total['survived']} | "
          f"{total['no tests']} | {100 * (total['killed'] + total['timeout']) / tested:.1f} |")
    print(f"\n{len(survivors)} not killed:")
    for name in survivors:
        print(name)
        if args.diffs:
            print(subprocess.run(["mutmut", "show", name], capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
