#!/usr/bin/env bash
# Builds vp's npm packages into target/npm/*.tgz: the launcher `@vp-runner/vp` (its `bin` is
# `vp`, a few lines of JS that run the platform binary) and one platform package per target this
# machine can build (here: linux-x64-gnu), versions in lockstep with the crate. Install them
# without a registry: `npm install target/npm/*.tgz`.
#
#   bash scripts/package-npm.sh
#
# Environment:
#   VP_BIN         package this binary instead of building the release binary
#                  (the e2e test packages the dev build it already has)
#
# On a -linux-gnu host the packaged binary is the release build linked statically (static-pie:
# `cargo rustc --release -p vp --bin vp -- -C target-feature=+crt-static`, which relinks only vp
# itself): no shared library to load and relocate at each start, so a cache hit is about a tenth
# quicker and its peak RSS smaller (docs/benchmarks.md), and it runs whatever the C library.
#   VP_NPM_OUT     where the tarballs go (default: <target dir>/npm)
set -euo pipefail
VP_SCRIPT=package-npm
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(vp_repo_root)"
cd "$ROOT"
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || vp_die "\`$tool\` is not on PATH; install Node.js 20+"
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
HOST_TARGET="$(rustc -vV | sed -n 's/^host: //p')"
OUT="${VP_NPM_OUT:-$TARGET_DIR/npm}"
if [ -z "${VP_BIN:-}" ]; then
  vp_say "building the release binary (the first release build compiles RocksDB: see docs/development.md)"
  case "$HOST_TARGET" in
    *-linux-gnu) cargo rustc --release -p vp --bin vp -- -C target-feature=+crt-static ;;
    *) cargo build --release -p vp ;;
  esac
  VP_BIN="$TARGET_DIR/release/vp"
fi
[ -x "$VP_BIN" ] || vp_die "$VP_BIN is not an executable vp binary"

# One version for the crate and every package.
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$VERSION" ] || vp_die "no version in Cargo.toml's [workspace.package]"
BIN_VERSION="$("$VP_BIN" --version | awk '{print $2}')"
[ "$BIN_VERSION" = "$VERSION" ] || vp_die "$VP_BIN is vp $BIN_VERSION, but Cargo.toml says $VERSION: rebuild it"

STAGE="$OUT/stage"
rm -rf "$STAGE"
mkdir -p "$STAGE" "$OUT"
rm -f "$OUT"/*.tgz

# The platform package of this machine, from the table in npm/vp/platforms.js.
node - "$ROOT/npm/vp/platforms.js" "$HOST_TARGET" "$VERSION" "$STAGE/platform" >/dev/null <<'JS'
const [platformsJs, target, version, dir] = process.argv.slice(2);
const fs = require('node:fs');
const path = require('node:path');
const { PLATFORMS, packageName } = require(platformsJs);
const p = PLATFORMS.find((row) => row.target === target);
if (!p) {
  console.error(`package-npm: error: no npm platform package is defined for ${target} (npm/vp/platforms.js)`);
  process.exit(1);
}
fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
const manifest = {
  name: packageName(p),
  version,
  description: `vp's binary for ${p.os}-${p.cpu} (${p.libc}); installed by @vp-runner/vp`,
  license: 'MIT',
  os: [p.os],
  cpu: [p.cpu],
  ...(p.libc ? { libc: [p.libc] } : {}),
  files: ['bin/vp'],
  preferUnplugged: true,
};
fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
fs.writeFileSync(path.join(dir, 'README.md'), `The \`vp\` binary for ${p.os}-${p.cpu} (${p.libc}). Install \`@vp-runner/vp\` instead.\n`);
JS
install -m 0755 "$VP_BIN" "$STAGE/platform/bin/vp"

# The launcher: its optionalDependencies name exactly the platform packages built here.
cp -r "$ROOT/npm/vp" "$STAGE/launcher"
node - "$STAGE/launcher/package.json" "$VERSION" "$STAGE/platform/package.json" <<'JS'
const [launcher, version, platform] = process.argv.slice(2);
const fs = require('node:fs');
const j = JSON.parse(fs.readFileSync(launcher, 'utf8'));
const p = JSON.parse(fs.readFileSync(platform, 'utf8'));
j.version = version;
j.optionalDependencies = { [p.name]: version };
fs.writeFileSync(launcher, JSON.stringify(j, null, 2) + '\n');
JS
cp "$ROOT/README.md" "$STAGE/launcher/README.md"

for pkg in platform launcher; do
  (cd "$STAGE/$pkg" && npm pack --silent --pack-destination "$OUT" >/dev/null) \
    || vp_die "npm pack failed in $STAGE/$pkg"
done
rm -rf "$STAGE"
vp_say "wrote $(cd "$OUT" && ls -1 ./*.tgz | tr '\n' ' ')to $OUT"
vp_say "install with: npm install $OUT/*.tgz"
