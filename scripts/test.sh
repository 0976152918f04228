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

# The browser test drives Debian's Chromium (nothing is downloaded at test time).
if ! command -v chromium >/dev/null 2>&1; then
    echo "[test] installing Debian's chromium for the browser test" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

set +e
"$VIRTUAL_ENV/bin/python" -m pytest "$@"
rc=$?
set -e

if [ "$rc" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
