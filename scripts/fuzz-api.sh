#!/usr/bin/env bash
# Fuzzes every operation of docs/openapi.json with schemathesis against a live jobline
# (debug build, SQLite in a temporary directory, a valid token, rate limit off), bounded in
# time. Fails on any 5xx, any answer the document does not describe, or a crash.
#
#   scripts/fuzz-api.sh                 # uses target/debug/jobline (builds it if missing)
#   JOBLINE_BIN=... VENV=... MAX_EXAMPLES=... FUZZ_SECONDS=... scripts/fuzz-api.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-/opt/jobline-venv}
bin=${JOBLINE_BIN:-target/debug/jobline}
# The server reads every JOBLINE_* variable as a setting and refuses one it does not know.
unset JOBLINE_BIN
max_examples=${MAX_EXAMPLES:-25}
seconds=${FUZZ_SECONDS:-300}

if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
[ -x "$bin" ] || cargo build --locked --bin jobline

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export JOBLINE_DATABASE_URL="sqlite://$work/jobline.db"
export JOBLINE_BIND="127.0.0.1:$port"
export JOBLINE_RATE_LIMIT_CAPACITY=0
export JOBLINE_ALLOW_PRIVATE_TARGETS=false
unset JOBLINE_CONFIG
token=$("$bin" eshop add 1 --name fuzz | tail -n 1)
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; echo "jobline did not start" >&2; exit 1; }
  sleep 0.2
done

status=0
timeout --signal=INT "$seconds" "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$max_examples" \
  --workers 1 \
  --seed 1 \
  || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "jobline crashed during the fuzzing:" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi
if [ "$status" -eq 124 ]; then
  echo "schemathesis did not finish within ${seconds}s" >&2
fi
exit "$status"
