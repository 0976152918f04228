#!/usr/bin/env bash
# THE demo command (README and `make run` run this).
#
#   scripts/run_demo.sh [--port N] [--receiver-port N]
#
# Runs Airflow standalone (scheduler, dag-processor, triggerer, API server/UI)
# with this repository's DAGs and plugin, against the embedded setup: a
# generated Magento demo catalog in SQLite, snapshot/state under a local
# folder, status store in SQLite, and the reference Catalog Data Ingestion API
# receiver on localhost as the target. Nothing external is needed.
#
# Everything lives under .demo/ (or $CATALOG_SYNC_DEMO_DIR); delete it, or run
# `make clean`, to start over. The AIRFLOW__* / AIRFLOW_CONN_* / AIRFLOW_VAR_*
# settings below are defaults: export your own value before running to override
# one (AIRFLOW_HOME is always <demo dir>/airflow).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PORT=8080
RECEIVER_PORT=8765
while [ $# -gt 0 ]; do
    case "$1" in
        --port) PORT="${2:?--port needs a number}"; shift 2 ;;
        --port=*) PORT="${1#--port=}"; shift ;;
        --receiver-port) RECEIVER_PORT="${2:?--receiver-port needs a number}"; shift 2 ;;
        --receiver-port=*) RECEIVER_PORT="${1#--receiver-port=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_demo.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$PORT$RECEIVER_PORT" in ''|*[!0-9]*) echo "run_demo.sh: --port and --receiver-port take numbers" >&2; exit 2 ;; esac

scripts/bootstrap_venv.sh

# `airflow standalone` starts its components as `airflow ...` by name.
export VIRTUAL_ENV="$REPO/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
PY="$VIRTUAL_ENV/bin/python"

DEMO="${CATALOG_SYNC_DEMO_DIR:-$REPO/.demo}"
mkdir -p "$DEMO"
DEMO="$(cd "$DEMO" && pwd)"
SOURCE_DB="$DEMO/magento-demo.db"
TARGET_DIR="$DEMO/target"
STATUS_DB="$DEMO/status.db"
STATE_DIR="$DEMO/state"
mkdir -p "$DEMO/airflow" "$TARGET_DIR" "$STATE_DIR"

# --- Airflow ----------------------------------------------------------------------
# Always the demo's own home, even when the shell has AIRFLOW_HOME set for another Airflow.
export AIRFLOW_HOME="$DEMO/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$REPO/dags}"
export AIRFLOW__CORE__PLUGINS_FOLDER="${AIRFLOW__CORE__PLUGINS_FOLDER:-$REPO/plugins}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
export AIRFLOW__API__PORT="$PORT"
# Local demo: listen on this machine only, and a few LocalExecutor workers
# instead of 32 (the default parallelism) on a small machine.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
# Every part shares the cores here: a worker's 5 s default wait for the execution API
# can pass while the API server is busy, and the task is retried before it begins.
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-30}"
if [ "$PORT" != 8080 ]; then
    # Tasks reach the execution API through the base URL (default localhost:8080).
    export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://localhost:$PORT}"
fi

# --- the demo catalog (generated once) --------------------------------------------
if [ ! -f "$SOURCE_DB" ]; then
    echo "[demo] generating the demo catalog (10000 products, 3 store views) in $SOURCE_DB"
    # Build it under a temporary name, so a failed run never leaves a partial
    # catalog behind that the next run would take as done.
    rm -f "$SOURCE_DB.partial"*
    "$PY" -m catalog_sync demo-catalog --db "sqlite:///$SOURCE_DB.partial" \
        --products 10000 --store-views 3 --seed 42
    mv "$SOURCE_DB.partial" "$SOURCE_DB"
fi

# --- Connections and Variables, as environment variables ---------------------------
# json_conn TYPE KEY=VALUE...  -> one connection as JSON (values are JSON-escaped;
# a value starting with '{' is taken as a JSON object, for "extra").
json_conn() {
    "$PY" - "$@" <<'EOF'
import json, sys
conn = {"conn_type": sys.argv[1]}
for arg in sys.argv[2:]:
    key, _, value = arg.partition("=")
    conn[key] = json.loads(value) if value.startswith("{") else value
print(json.dumps(conn))
EOF
}
json_str() { "$PY" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }

# Source: the Magento demo database (SQLite).
: "${AIRFLOW_CONN_CATALOG_SYNC_SOURCE:=$(json_conn sqlite "host=$SOURCE_DB")}"
# Target: the reference receiver started below (a local stand-in for the Catalog Data
# Ingestion API; its token is a demo value, not a secret). Swap this one line to point
# the demo elsewhere, e.g. files: extra={"url": "file://$TARGET_DIR"}.
RECEIVER_TENANT=demo
RECEIVER_TOKEN=demo-token
RECEIVER_URL="http://127.0.0.1:$RECEIVER_PORT"
: "${AIRFLOW_CONN_CATALOG_SYNC_TARGET:=$(json_conn generic "password=$RECEIVER_TOKEN" "extra={\"url\": $(json_str "$RECEIVER_URL/$RECEIVER_TENANT")}")}"
# Status store (SQLite).
: "${AIRFLOW_CONN_CATALOG_SYNC_STATUS:=$(json_conn sqlite "host=$STATUS_DB")}"
# Snapshot, manifest and staging.
: "${AIRFLOW_VAR_CATALOG_SYNC_STATE_URL:=$STATE_DIR}"
# Tuning (the engine's defaults, set explicitly so the task logs show no lookup misses).
: "${AIRFLOW_VAR_CATALOG_SYNC_CHUNK_SIZE:=10000}"
: "${AIRFLOW_VAR_CATALOG_SYNC_BATCH_SIZE:=100}"
export AIRFLOW_CONN_CATALOG_SYNC_SOURCE AIRFLOW_CONN_CATALOG_SYNC_TARGET \
    AIRFLOW_CONN_CATALOG_SYNC_STATUS AIRFLOW_VAR_CATALOG_SYNC_STATE_URL \
    AIRFLOW_VAR_CATALOG_SYNC_CHUNK_SIZE AIRFLOW_VAR_CATALOG_SYNC_BATCH_SIZE

PASSWORDS_FILE="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}"
cat <<EOF

================================================================================
 Catalog Sync demo
   Airflow UI : http://localhost:$PORT
   Login      : user 'admin'; the password is in
                $PASSWORDS_FILE
                (written on the first start; also printed below the first time)
   Demo data  : $DEMO
   Source     : $SOURCE_DB
   Target     : the reference receiver, $RECEIVER_URL/$RECEIVER_TENANT
                (what it accepted: $RECEIVER_URL/_receiver/products)
   Stop       : Ctrl-C
================================================================================

EOF

# --- the reference receiver (the target), stopped with the demo ---------------------
"$PY" -m catalog_sync receiver --port "$RECEIVER_PORT" --db "$DEMO/receiver.db" \
    --tenant-id "$RECEIVER_TENANT" --token "$RECEIVER_TOKEN" &
RECEIVER_PID=$!
trap 'kill "$RECEIVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "$RECEIVER_URL/_receiver/health" 2>/dev/null && break
    sleep 0.2
done

airflow standalone
