#!/usr/bin/env bash
# Builds vp and runs it on the bundled example workspace (the README's example command):
# `vp run -r build` in fixtures/example twice; the second run is served from the cache.
set -euo pipefail
VP_SCRIPT=example
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(vp_repo_root)"
cd "$ROOT"

bash scripts/bootstrap.sh
# The test build also produces target/debug/vp, and scripts/test.sh needs it next; any other
# cargo command would reuse the same RocksDB compile too (docs/development.md).
vp_say "building vp (the first build compiles RocksDB and takes ~15 minutes)"
cargo test --workspace --no-run

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VP="$TARGET_DIR/debug/vp"
[ -x "$VP" ] || vp_die "the build finished but $VP does not exist"

cd "$ROOT/fixtures/example"
# Start from a clean slate so the first run really executes every build.
rm -rf packages/*/dist
"$VP" cache clean >/dev/null 2>&1 || rm -rf node_modules/.cache/vp

cat <<'TXT'

== 1. vp run -r build (fixtures/example) ==
Three packages, utils -> app -> site, built in dependency order. Nothing is cached yet, so every
build runs; vp watches what each one reads and writes and stores the result.

TXT
"$VP" run -r build

cat <<'TXT'

== 2. vp run -r build, again ==
Nothing changed, so every task is a cache hit: vp replays each task's output instead of running it.

TXT
"$VP" run -r build

# Show the binary's real path (CARGO_TARGET_DIR may move it), relative to the example if it can.
VP_SHOWN="$(realpath --relative-to=. "$VP" 2>/dev/null || printf '%s' "$VP")"
cat <<TXT

Try next (from fixtures/example): edit packages/utils/src/math.js, or \`rm -rf packages/*/dist\`,
or set GREETING=Hi, and run \`$VP_SHOWN run -r build\` again to see the miss reasons and the
restores. fixtures/example/README.md explains the workspace.
TXT
