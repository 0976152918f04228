#!/usr/bin/env bash
# THE test command (README, `make test` and CI all run this).
#
#   scripts/test.sh [pytest args...]      e.g. scripts/test.sh -k diff -x
#
# Builds/refreshes .venv, then runs pytest from the repository root with the
# arguments passed through. Exits with pytest's code, except that "no tests
# collected" (pytest exit code 5) counts as a failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

scripts/bootstrap_venv.sh

# Behave like an activated venv, so tests that start `airflow` or `catalog-sync`
# by name get the ones from .venv.
export VIRTUAL_ENV="$REPO/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"

set +e
"$VIRTUAL_ENV/bin/python" -m pytest "$@"
rc=$?
set -e

if [ "$rc" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
