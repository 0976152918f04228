#!/usr/bin/env bash
# Create or refresh ./.venv for Catalog Sync.
#
#   scripts/bootstrap_venv.sh          (works from any directory)
#
# - creates .venv with Python 3.11 when it is missing (or broken),
# - installs requirements.txt + requirements-test.txt under constraints.txt,
# - installs this package in editable mode (no dependencies),
# - skips all of that when nothing changed: a stamp file in .venv holds a hash
#   of requirements*.txt, constraints.txt, pyproject.toml and the Python version.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3.11, else python3)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

VENV="$REPO/.venv"
STAMP="$VENV/.catalog-sync-bootstrap.stamp"

say() { echo "[bootstrap] $*"; }
die() { echo "[bootstrap] error: $*" >&2; exit 1; }

# --- pick the interpreter -------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then
        PYTHON=python3.11
    else
        PYTHON=python3
    fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python 3.11 or set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "$("$PYTHON" -V 2>&1) is too old; Catalog Sync needs Python 3.11 (set PYTHON=/path/to/python3.11)"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    say "warning: constraints.txt was resolved on Python 3.11; using $("$PYTHON" -V 2>&1)"
fi

# --- create the venv if missing or broken ------------------------------------------
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    :
else
    if [ -e "$VENV" ]; then
        say "existing .venv is broken; recreating it"
        rm -rf "$VENV"
    fi
    say "creating .venv with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV" || die "could not create .venv (on Debian/Ubuntu: apt-get install python3.11-venv)"
fi
VPY="$VENV/bin/python"

# --- compare the stamp ---------------------------------------------------------------
inputs=(requirements*.txt constraints.txt pyproject.toml)
for f in "${inputs[@]}"; do
    [ -f "$f" ] || die "missing $f in $REPO"
done
want="$(
    {
        "$VPY" -c 'import sys; print(sys.version)'
        for f in "${inputs[@]}"; do
            echo "== $f"
            cat "$f"
        done
    } | sha256sum | cut -d' ' -f1
)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    say ".venv is up to date (stamp matches); nothing to install"
    exit 0
fi

# --- install ---------------------------------------------------------------------------
rm -f "$STAMP"
export PIP_DISABLE_PIP_VERSION_CHECK=1
say "upgrading pip"
"$VPY" -m pip install --quiet --upgrade pip
say "installing requirements.txt + requirements-test.txt (constraints.txt)"
"$VPY" -m pip install --quiet -r requirements.txt -r requirements-test.txt -c constraints.txt
say "installing catalog_sync (editable, no deps)"
"$VPY" -m pip install --quiet --no-deps -e .
echo "$want" >"$STAMP"
say "done: $VENV"
