#!/usr/bin/env bash
# Mutation testing of the core with mutmut (pinned in pyproject.toml's `mutation` extra, configured in
# its [tool.mutmut] table). Not part of CI: about 45 minutes on this project's 2-core machine (docs/testing.md).
#   bash scripts/mutation.sh            # a fresh run: mutants/ is rebuilt from the working tree
#   bash scripts/mutation.sh --resume   # go on with mutants/ as it is (mutmut keeps its verdicts); only with
#                                       # src/ unchanged since: mutmut does not refresh the files it does not mutate
# It works in an environment of its own (.mutation-venv/): bareprop is installed there as a copy, which the
# tests that start the CLI in a subprocess use, so the source tree can be edited while mutmut runs.
# Then the report: kill rate per module, every survivor with its verdict (docs/mutation-verdicts.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.mutation-venv
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q ".[mutation,test]"
"$VENV/bin/python" setup.py -q build_ext --inplace  # the compiled kernel beside the source mutmut copies
[[ "${1:-}" == "--resume" ]] || rm -rf mutants
"$VENV/bin/python" -m mutmut run
"$VENV/bin/python" scripts/mutation_report.py
