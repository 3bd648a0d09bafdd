#!/usr/bin/env bash
# Remote-cache hit, side by side: vp (release build) and Turborepo against the same local
# turborepo-remote-cache server on 127.0.0.1, on the 100-package F2 fixture. Each round builds a
# fresh copy at a new path (empty local cache, like a new CI machine) that must be served entirely
# by the remote cache; the medians go into the `remote` section of docs/benchmarks.md.
#
#   bash bench/remote-hit.sh [ROUNDS]     # default 7
#
# Environment: VPRS_BIN (default: <target dir>/release/vp, built here first), PEERBENCH_ROOT,
# DOC (default docs/benchmarks.md). Needs the npm server of fixtures/remote-cache-server
# (scripts/bootstrap.sh installs it) and installs turbo@2.11.11 from npm like run-peers.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS="${1:-7}"
export PEERBENCH_ROOT="${PEERBENCH_ROOT:-${TMPDIR:-/tmp}/peerbench}"
export npm_config_loglevel=error
DOC="${DOC:-$ROOT/docs/benchmarks.md}"

if [ -z "${VPRS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p vp)
  VPRS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/vp"
fi
export VPRS_BIN
[ -x "$VPRS_BIN" ] || { echo "remote-hit: $VPRS_BIN is not an executable vp binary" >&2; exit 1; }

server="$ROOT/fixtures/remote-cache-server/node_modules/turborepo-remote-cache/dist/cli.js"
[ -f "$server" ] || { echo "remote-hit: $server is missing: run scripts/bootstrap.sh" >&2; exit 1; }

d="$PEERBENCH_ROOT/peers/turbo"
mkdir -p "$d"
[ -f "$d/package.json" ] || (cd "$d" && npm init -y >/dev/null)
[ -x "$d/node_modules/.bin/turbo" ] || (cd "$d" && npm install --no-audit --no-fund turbo@2.11.11) \
  || { echo "remote-hit: installing turbo@2.11.11 from npm failed" >&2; exit 1; }

storage="$(mktemp -d)"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
token="bench-token"
TURBO_TOKEN="$token" STORAGE_PROVIDER=local STORAGE_PATH="$storage" STORAGE_PATH_USE_TMP_FOLDER=false \
  HOST=127.0.0.1 PORT="$port" LOG_LEVEL=error node "$server" >"$storage.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$storage" "$storage.log"' EXIT
for _ in $(seq 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/v8/artifacts/status"; then break; fi
  sleep 0.1
done

out="$(mktemp)"
# The fixture generator's npm output goes to the terminal; only the table goes into the doc.
(cd "$HERE/peerbench" && PEERS=turbo,vprs node remote.mjs "http://127.0.0.1:$port" "$token" "$ROUNDS") \
  | tee /dev/stderr | grep '^|' >"$out"
BENCH_CELLS="Cells: median wall time of a build served entirely by the remote cache (asserted: nothing executed)." \
  node "$HERE/update-doc.mjs" "$DOC" remote "turbo,vprs" turbo "$out"
echo "remote-hit: updated $DOC"
