#!/usr/bin/env bash
# Runs the peer benchmark (bench/peerbench, copied from the shared harness, plus the `vprs`
# adapter for the vp built in this repository) and writes the tables into docs/benchmarks.md.
#
#   bash bench/run-peers.sh                # vp against running the commands directly (raw); offline
#   bash bench/run-peers.sh --with-peers   # also Turborepo, Nx, wireit and vite-plus from npm
#
# Environment:
#   PEERBENCH_ROOT   where fixtures, installed peers and logs go (default: $TMPDIR/peerbench)
#   VPRS_BIN         the vp binary to measure (default: <target dir>/release/vp, built here first
#                    with `cargo build --release -p vp`: what users install and what the
#                    numbers in docs/benchmarks.md are measured with)
#   N1 N2 N3         iterations of the F1/F3, F2 hit and F2 cold scenarios (default 7, 5, 3)
#   DOC              the markdown file to update (default: docs/benchmarks.md)
#
# Scenarios (see bench/peerbench/bench.mjs): F1 one package with 200 inputs (cold, hit, hit after
# `rm -rf dist`, miss after an edit), F2 100 packages (cold, full hit, one leaf changed),
# F3 `echo hi` uncached and cached (the runner's own overhead). Every peer runs in the same
# iteration in rotated order, so all of them see the same machine noise.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export PEERBENCH_ROOT="${PEERBENCH_ROOT:-${TMPDIR:-/tmp}/peerbench}"
export npm_config_loglevel=error
DOC="${DOC:-$ROOT/docs/benchmarks.md}"

with_peers=""
for arg in "$@"; do
  case "$arg" in
    --with-peers) with_peers=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run-peers: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

# bench.mjs measures peak RSS with GNU time.
[ -x /usr/bin/time ] || { echo "run-peers: /usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }

if [ -z "${VPRS_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release -p vp)
  VPRS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/vp"
  export VPRS_BIN
fi
[ -x "$VPRS_BIN" ] || { echo "run-peers: $VPRS_BIN is not an executable vp binary" >&2; exit 1; }

PEERS="raw,vprs"
REF="raw"
if [ -n "$with_peers" ]; then
  # The versions the shared benchmark was calibrated with.
  declare -A PKG=([turbo]=turbo@2.11.11 [nx]=nx@24.0.6 [wireit]=wireit@0.14.13 [vp]=vite-plus@1.6.0)
  for p in turbo nx wireit vp; do
    d="$PEERBENCH_ROOT/peers/$p"
    mkdir -p "$d"
    [ -f "$d/package.json" ] || (cd "$d" && npm init -y >/dev/null)
    (cd "$d" && npm install --no-audit --no-fund "${PKG[$p]}") \
      || { echo "run-peers: installing ${PKG[$p]} from npm failed" >&2; exit 1; }
  done
  PEERS="raw,turbo,nx,wireit,vp,vprs"
  REF="turbo"
fi
export PEERS REF

cd "$HERE/peerbench"
for p in ${PEERS//,/ }; do node gen.mjs "$p" all >/dev/null; done

out="$(mktemp -d)"
N="${N1:-7}" SCEN=F1a,F1b,F1c,F1d,F3a,F3b node bench.mjs >"$out/f1f3.md"
N="${N2:-5}" SCEN=F2b,F2c node bench.mjs >"$out/f2.md"
N="${N3:-3}" WARMUP=0 SCEN=F2a node bench.mjs >"$out/f2cold.md"

node "$HERE/update-doc.mjs" "$DOC" peers "$PEERS" "$REF" "$out/f1f3.md" "$out/f2.md" "$out/f2cold.md"
echo "run-peers: updated $DOC (raw results in $HERE/peerbench/results/)"
