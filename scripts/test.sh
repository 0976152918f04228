#!/usr/bin/env bash
# THE test command (README, `make test` and CI all run this).
#
#   scripts/test.sh [pytest args...]      e.g. scripts/test.sh -k diff -x
#
# Builds/refreshes .venv, checks the code with ruff, then runs pytest from the
# repository root with the arguments passed through. Exits with pytest's code, except that "no tests
# collected" (pytest exit code 5) counts as a failure.
#
# Then it runs the tests marked `dates` (same arguments) again under libfaketime,
# with the machine's clock moved to each day of CATALOG_SYNC_FAKE_DATES (default:
# three days around a month end, a year end and a leap-year February), so a test
# that depends on the calendar fails here and not next week. CATALOG_SYNC_FAKE_DATES=""
# skips those runs (for quick local iterations; CI always runs them).
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

# libfaketime (Debian's faketime package) moves the clock for the `dates` runs below.
FAKE_DATES="${CATALOG_SYNC_FAKE_DATES-2026-12-01 2027-02-28 2027-12-31}"
LIBFAKETIME=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -n "$FAKE_DATES" ] && [ ! -e "$LIBFAKETIME" ]; then
    echo "[test] installing Debian's faketime for the date runs" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime >/dev/null
    LIBFAKETIME="$(dpkg -L libfaketime | grep '/libfaketime\.so\.1$' | head -n 1)"
fi

# Lint first (ruff, configured in pyproject.toml): a second, not a pytest run, to learn of it.
"$VIRTUAL_ENV/bin/ruff" check include tests dags plugins benchmarks

set +e
"$VIRTUAL_ENV/bin/python" -m pytest "$@"
rc=$?
set -e

if [ "$rc" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
[ "$rc" -eq 0 ] || exit "$rc"

for day in $FAKE_DATES; do
    # An offset, not a start time: every process (and subprocess) then reads the same moved clock.
    # 23:30 UTC: late enough that a day judged in UTC differs from most shops' local day.
    offset=$(( $(date -u -d "$day 23:30:00" +%s) - $(date -u +%s) ))
    [ "$offset" -ge 0 ] && offset="+$offset"
    echo "[test] the tests marked 'dates' again, with the clock at $day 23:30 UTC (libfaketime, FAKETIME=$offset)" >&2
    set +e
    LD_PRELOAD="$LIBFAKETIME" FAKETIME="$offset" \
        "$VIRTUAL_ENV/bin/python" -m pytest -m dates -p no:cacheprovider "$@"
    rc=$?
    set -e
    # 5: the arguments selected no `dates` test; the main run above already ran what they chose.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
        echo "scripts/test.sh: the 'dates' tests failed with the clock at $day" >&2
        exit "$rc"
    fi
done
exit 0
