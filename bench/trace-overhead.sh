#!/usr/bin/env bash
# Tracer overhead: a real `vite build` with and without `vp trace`, and the
# cost of one notified system call. Prints a Markdown report on stdout.
#
# Usage: bench/trace-overhead.sh [ROUNDS]        (default 9 rounds)
# Env:   VP=path/to/vp      (default: $CARGO_TARGET_DIR or target, release/vp)
#        BENCH_DIR=dir      (default: a fresh temp dir; reused if it has node_modules)
#        VITE_VERSION=x     (default: 8)
#
# Method: the two modes run interleaved, round-robin, so machine load hits
# both alike; each result is the median of ROUNDS runs and the overhead is
# the ratio of the medians. Wall = elapsed; CPU = user+sys of vp, the
# supervisor and the whole build (bash `time` counts waited-for children).
set -euo pipefail

ROUNDS=${1:-9}
HERE=$(cd "$(dirname "$0")/.." && pwd)
VP=${VP:-${CARGO_TARGET_DIR:-$HERE/target}/release/vp}
VITE_VERSION=${VITE_VERSION:-8}
STAT_CALLS=200000

die() { echo "trace-overhead: $*" >&2; exit 1; }
[ -x "$VP" ] || die "no vp binary at $VP (hint: cargo build --release -p vp, or set VP=)"
command -v node >/dev/null || die "node is not on PATH"
command -v rustc >/dev/null || die "rustc is not on PATH (needed for the per-syscall benchmark)"

BENCH_DIR=${BENCH_DIR:-$(mktemp -d -t vp-trace-bench.XXXXXX)}
APP=$BENCH_DIR/viteapp
mkdir -p "$APP/src"

# --- a small vite app: 4 modules, JSON, CSS, a dynamic import, ESM config ---
cat > "$APP/package.json" <<'JSON'
{ "name": "viteapp", "private": true, "type": "module" }
JSON
cat > "$APP/vite.config.js" <<'JS'
export default { build: { sourcemap: true } };
JS
cat > "$APP/index.html" <<'HTML'
<!doctype html><html><body><div id="app"></div><script type="module" src="/src/main.js"></script></body></html>
HTML
cat > "$APP/src/main.js" <<'JS'
import './style.css';
import { a } from './a.js';
import { b } from './b.js';
import { c } from './c.js';
import { d } from './d.js';
import data from './data.json';
document.querySelector('#app').textContent = [a, b, c, d, data.name].join(' ');
import('./lazy.js').then((m) => m.lazy());
JS
for m in a b c d; do echo "export const $m = '$m'.repeat(3);" > "$APP/src/$m.js"; done
echo 'export const lazy = () => console.log("lazy");' > "$APP/src/lazy.js"
echo '{ "name": "viteapp" }' > "$APP/src/data.json"
echo '#app { color: rebeccapurple; }' > "$APP/src/style.css"

if [ ! -f "$APP/node_modules/vite/bin/vite.js" ]; then
  echo "installing vite@$VITE_VERSION into $APP ..." >&2
  (cd "$APP" && npm install --no-audit --no-fund --loglevel=error "vite@$VITE_VERSION" >&2) \
    || die "npm install vite failed"
fi
VITE_BUILD=(node node_modules/vite/bin/vite.js build --logLevel warn)

# --- helpers ---
TIMEFORMAT='%R %U %S'
# Runs a command in $APP, prints "wall cpu".
measure() {
  local t
  t=$( { time (cd "$APP" && "$@" >/dev/null 2>&1) ; } 2>&1 ) || die "failed: $*"
  awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' <<<"$t"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# Warm-up: page cache, vite's first-run work.
measure "${VITE_BUILD[@]}" >/dev/null
measure "$VP" trace --root "$APP" -- "${VITE_BUILD[@]}" >/dev/null

declare -a U_WALL U_CPU T_WALL T_CPU
for ((i = 0; i < ROUNDS; i++)); do
  read -r w c < <(measure "${VITE_BUILD[@]}"); U_WALL+=("$w"); U_CPU+=("$c")
  read -r w c < <(measure "$VP" trace --root "$APP" -- "${VITE_BUILD[@]}"); T_WALL+=("$w"); T_CPU+=("$c")
done
uw=$(printf '%s\n' "${U_WALL[@]}" | median); uc=$(printf '%s\n' "${U_CPU[@]}" | median)
tw=$(printf '%s\n' "${T_WALL[@]}" | median); tc=$(printf '%s\n' "${T_CPU[@]}" | median)

# Notified system calls of one traced build.
NOTIFIED=$(cd "$APP" && "$VP" trace --json --log --root "$APP" -- "${VITE_BUILD[@]}" 2>/dev/null \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).accesses.length))')

# --- per-syscall cost: N x stat() in one thread ---
STATLOOP=$BENCH_DIR/statloop
cat > "$STATLOOP.rs" <<'RS'
fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let mut ok = 0u32;
    for _ in 0..n {
        if std::fs::metadata("/etc/hostname").is_ok() { ok += 1; }
    }
    std::process::exit(if ok == n { 0 } else { 1 });
}
RS
rustc -O -o "$STATLOOP" "$STATLOOP.rs"
per_call() { # mode → µs per stat (median of 3)
  local runs=() t
  for _ in 1 2 3; do
    case "$1" in
      traced) t=$(measure "$VP" trace --root "$APP" -- "$STATLOOP" $STAT_CALLS) ;;
      notified) t=$(VP_TRACE_IN_PROCESS=0 measure "$VP" trace --root "$APP" -- "$STATLOOP" $STAT_CALLS) ;;
      *) t=$(measure "$STATLOOP" $STAT_CALLS) ;;
    esac
    runs+=("$(awk -v n=$STAT_CALLS '{ printf "%.2f", $1 * 1e6 / n }' <<<"$t")")
  done
  printf '%s\n' "${runs[@]}" | median
}
su=$(per_call untraced); st=$(per_call traced); sn=$(per_call notified)

# --- the floor: a supervisor that does nothing but answer (bench/notify-floor.rs) ---
FLOOR=$BENCH_DIR/notify-floor
rustc -O -o "$FLOOR" "$HERE/bench/notify-floor.rs"
floor() { # mode → µs per notified stat (median of 3)
  local runs=()
  for _ in 1 2 3; do runs+=("$("$FLOOR" "$1" $STAT_CALLS 2>&1 | awk '{ print $2 }')"); done
  printf '%s\n' "${runs[@]}" | median
}
fb=$(floor bare); fr=$(floor read); fm=$(floor mem)

cat <<MD
Measured $(date -u +%Y-%m-%d) on $(uname -r), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end.
vp: \`$VP\`; vite $(node -p "require('$APP/node_modules/vite/package.json').version"), Node $(node --version).
Command: \`${VITE_BUILD[*]}\` in a 4-module app (JSON, CSS, dynamic import, ESM config, sourcemaps);
$ROUNDS interleaved rounds, medians; one traced build records $NOTIFIED file accesses.

| mode | wall median | CPU (user+sys) median |
|---|---|---|
| untraced | ${uw} s | ${uc} s |
| \`vp trace\` | ${tw} s | ${tc} s |
| **ratio** | **$(ratio "$tw" "$uw")** | **$(ratio "$tc" "$uc")** |

Per-syscall cost: $STAT_CALLS × \`stat("/etc/hostname")\` (statx) in one thread, median of 3:
untraced ${su} µs per call; traced, recorded in-process (the default) ${st} µs per call;
traced with \`VP_TRACE_IN_PROCESS=0\` (every call notified) ${sn} µs per call.

The same loop under a minimal supervisor (\`bench/notify-floor.rs\`, median of 3): answering
only ${fb} µs per call; reading the path (\`process_vm_readv\`) and checking the id, as vp does,
${fr} µs; the same through an open \`/proc/<pid>/mem\` ${fm} µs.

Raw wall (untraced / traced): ${U_WALL[*]} / ${T_WALL[*]}
Raw CPU (untraced / traced): ${U_CPU[*]} / ${T_CPU[*]}
MD
