#!/usr/bin/env bash
# The cost of a miss for a task that reads many small files, phase by phase.
#
#   bash bench/miss-cost.sh [ROUNDS] [FILES]     (defaults: 5 rounds, 50000 files)
#   VP=<binary>                                  (default: target/release/vp)
#
# A `node` script reads FILES small files (directories of 500) and writes one output. Each round
# runs, interleaved so machine noise hits every mode alike:
#
#   bare        node read.mjs                      the task itself
#   untraced    vp run --no-cache read             + vp's process, spawn and wait, no tracer
#   notified    VP_TRACE_IN_PROCESS=0 vp run read  a miss with every file system call notified
#   miss        vp cache clean; vp run -v read     + tracer, end-of-run work, fingerprint, store
#
# and takes the phases of each miss from its `vp: miss cost:` line (`vp run -v`). One extra traced
# run counts the recorded accesses by kind. Prints a markdown report: medians, and ratios to bare.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${1:-5}"
FILES="${2:-50000}"
VP="${VP:-${CARGO_TARGET_DIR:-$ROOT/target}/release/vp}"
die() { echo "miss-cost: $*" >&2; exit 1; }
[ -x "$VP" ] || die "no vp binary at $VP (hint: cargo build --release -p vp, or set VP=)"
command -v node >/dev/null || die "node is not on PATH"

WORK="$(mktemp -d -t vp-miss-cost.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo '{ "name": "miss-cost", "private": true }' > package.json
echo '{ "tasks": { "read": { "command": "node read.mjs", "cache": true } } }' > vite-task.json
cat > gen.mjs <<'JS'
import fs from 'node:fs';
const files = +process.argv[2];
for (let i = 0; i < files; i++) {
  const dir = `data/d${Math.floor(i / 500)}`;
  if (i % 500 === 0) fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(`${dir}/f${i % 500}.txt`, `file ${i}\n`);
}
JS
cat > read.mjs <<'JS'
import fs from 'node:fs';
let bytes = 0;
for (const dir of fs.readdirSync('data').sort()) {
  for (const name of fs.readdirSync(`data/${dir}`).sort()) bytes += fs.readFileSync(`data/${dir}/${name}`).length;
}
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/bytes.txt', `${bytes}\n`);
JS
node gen.mjs "$FILES"

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
# "1.8s" / "225ms" / "950µs" → milliseconds
to_ms() { awk '{ v = $1; if (v ~ /µs$/) { sub(/µs$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%d\n", v }' <<<"$1"; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Warm-up: page cache, node's compile cache, the store's first creation.
ms node read.mjs >/dev/null
"$VP" run read >/dev/null 2>&1 || die "vp run read failed"

bare=(); untraced=(); miss=(); notified_miss=(); ran=(); resolved=(); classified=(); stored=()
for _ in $(seq "$ROUNDS"); do
  bare+=("$(ms node read.mjs)")
  untraced+=("$(ms "$VP" run --no-cache read)")
  # The same miss with the in-process tracer off: every call notified.
  "$VP" cache clean >/dev/null 2>&1 || die "vp cache clean failed"
  notified_miss+=("$(VP_TRACE_IN_PROCESS=0 ms "$VP" run read)")
  "$VP" cache clean >/dev/null 2>&1 || die "vp cache clean failed"
  t0=$(date +%s%N)
  line=$("$VP" run -v read 2>&1 | grep -m1 '^vp: miss cost:') || die "no 'miss cost' line from vp run -v"
  t1=$(date +%s%N)
  miss+=("$(( (t1 - t0) / 1000000 ))")
  # vp: miss cost: ran 480ms traced (436 calls notified, 50013 recorded in-process, 50001 files hashed meanwhile); then resolving paths 216ms, classifying 186ms, storing 218ms
  read -r r n i h p c s < <(sed -E 's/.*ran ([^ ]+) traced \(([0-9]+) calls notified, ([0-9]+) recorded in-process, ([0-9]+) files hashed meanwhile\); then resolving paths ([^,]+), classifying ([^,]+), storing (.+)$/\1 \2 \3 \4 \5 \6 \7/' <<<"$line")
  ran+=("$(to_ms "$r")"); resolved+=("$(to_ms "$p")"); classified+=("$(to_ms "$c")"); stored+=("$(to_ms "$s")")
  calls="$n notified, $i recorded in-process, $h files hashed while it ran"
done

kinds=$("$VP" trace --json --log --root . -- node read.mjs 2>/dev/null | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const by = {}; for (const a of JSON.parse(s).accesses) by[a.op] = (by[a.op] || 0) + 1;
    console.log(Object.entries(by).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", "));
  });')

mb=$(median "${bare[@]}"); mu=$(median "${untraced[@]}"); mm=$(median "${miss[@]}"); mn=$(median "${notified_miss[@]}")
mr=$(median "${ran[@]}"); mp=$(median "${resolved[@]}"); mc=$(median "${classified[@]}"); ms_=$(median "${stored[@]}")
cat <<MD
Measured $(date -u +%Y-%m-%d) on $(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
vp \`$VP\` (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)), Node $(node --version).
A script reading $FILES small files; $ROUNDS interleaved rounds, medians. One traced run records: $kinds.

| mode | wall median | ratio to bare |
|---|---|---|
| \`node read.mjs\` (bare) | $mb ms | 1.00 |
| \`vp run --no-cache read\` (untraced) | $mu ms | $(ratio "$mu" "$mb") |
| \`vp run read\`, miss, in-process tracer off (every call notified) | $mn ms | $(ratio "$mn" "$mb") |
| \`vp run read\`, miss (traced, stored; calls: $calls) | $mm ms | $(ratio "$mm" "$mb") |

| phase of the miss (\`vp run -v\`) | median |
|---|---|
| ran, traced (spawn to the main process's exit) | $mr ms |
| resolving paths (rest of the tree, symlinks and kinds) | $mp ms |
| classifying into inputs and outputs | $mc ms |
| storing (fingerprint inputs, archive outputs, write) | $ms_ ms |

Raw (bare / untraced / miss notified / miss, ms): ${bare[*]} / ${untraced[*]} / ${notified_miss[*]} / ${miss[*]}
MD
