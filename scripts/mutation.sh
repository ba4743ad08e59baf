#!/usr/bin/env bash
# Mutation testing of the core with mutmut (pinned in pyproject.toml's `mutation` extra, configured in
# its [tool.mutmut] table). Not part of CI: about 30-40 minutes on a quiet 2-core machine.
#   bash scripts/mutation.sh            # a fresh run: mutants/ is rebuilt from the working tree
#   bash scripts/mutation.sh --resume   # go on with mutants/ as it is (mutmut keeps its verdicts)
# Then: python scripts/mutation_report.py  (kill rate per module, survivors with their diffs)
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q ".[mutation,test]"
[[ "${1:-}" == "--resume" ]] || rm -rf mutants
python -m mutmut run
python scripts/mutation_report.py
