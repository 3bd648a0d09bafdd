#!/usr/bin/env bash
# Cold-miss overhead of `vp build` against plain `vite build` on fixtures/vite-app, interleaved
# (one of each per round, so both see the same machine noise), medians of N rounds.
#
#   bash bench/vp-build-overhead.sh [N]      (default N=9; VP=<binary> to measure another vp)
#
# "vp build (cold)" clears vp's cache before every run, so each run is a traced miss that also
# archives the outputs; "notified" is the same with VP_TRACE_IN_PROCESS=0 (every file system
# call a seccomp notification, no in-process recording); "vp build (hit)" is the replay. Prints a
# markdown table: medians, and the median of each round's ratio to that round's plain build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-9}"
VP="${VP:-${CARGO_TARGET_DIR:-$ROOT/target}/release/vp}"
[ -x "$VP" ] || { echo "vp-build-overhead: $VP not found (run: cargo build --release -p vp)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$ROOT/fixtures/vite-app" "$WORK/app"
[ -d "$WORK/app/node_modules" ] || { echo "vp-build-overhead: run scripts/bootstrap.sh first" >&2; exit 1; }
cd "$WORK/app"
ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
plain=(); cold=(); notified=(); hit=(); r_cold=(); r_notified=()
for _ in $(seq "$N"); do
  p=$(ms node node_modules/vite/bin/vite.js build); plain+=("$p")
  "$VP" cache clean >/dev/null 2>&1 || true
  n=$(VP_TRACE_IN_PROCESS=0 ms "$VP" build); notified+=("$n")
  "$VP" cache clean >/dev/null 2>&1 || true
  c=$(ms "$VP" build); cold+=("$c")
  hit+=("$(ms "$VP" build)")
  r_cold+=("$(awk -v a="$c" -v b="$p" 'BEGIN { printf "%.3f", a / b }')")
  r_notified+=("$(awk -v a="$n" -v b="$p" 'BEGIN { printf "%.3f", a / b }')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mp=$(median "${plain[@]}"); mc=$(median "${cold[@]}"); mh=$(median "${hit[@]}"); mn=$(median "${notified[@]}")
rc=$(median "${r_cold[@]}"); rn=$(median "${r_notified[@]}")
echo "| command | median wall (ms, N=$N) | ratio of medians | median of per-round ratios |"
echo "|---|---|---|---|"
echo "| \`node node_modules/vite/bin/vite.js build\` | $mp | 1.00 | 1.00 |"
awk -v c="$mn" -v p="$mp" -v r="$rn" 'BEGIN { printf "| `vp build`, cold miss, every call notified (`VP_TRACE_IN_PROCESS=0`) | %d | %.2f | %s |\n", c, c/p, r }'
awk -v c="$mc" -v p="$mp" -v r="$rc" 'BEGIN { printf "| `vp build`, cold miss (traced, stored) | %d | %.2f | %s |\n", c, c/p, r }'
awk -v h="$mh" -v p="$mp" 'BEGIN { printf "| `vp build`, cache hit (restore + replay) | %d | %.2f | |\n", h, h/p }'
