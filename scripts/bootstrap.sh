#!/usr/bin/env bash
# Prepares this machine to build and test vp. Safe to run any number of times; when everything
# is already present it only checks and takes about a second.
#
#   1. libclang-dev (apt): RocksDB's bindgen needs libclang to build the `rocksdb` crate.
#   2. just (pip package rust-just; cargo install as a fallback): the justfile's runner.
#   3. npm dependencies of every fixture whose package.json declares some (the real Vite apps),
#      installed from their committed package-lock.json when node_modules is missing or stale.
#
# Needs (and checks for) cargo, node and npm. Uses only apt, PyPI/crates.io and the npm registry.
set -euo pipefail
VP_SCRIPT=bootstrap
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT="$(vp_repo_root)"
cd "$ROOT"

for tool in cargo node npm; do
  command -v "$tool" >/dev/null 2>&1 \
    || vp_die "\`$tool\` is not on PATH; install Rust (cargo) and Node.js 20+ (node, npm) first"
done

# ---------------------------------------------------------------- libclang-dev
install_libclang() {
  if dpkg -s libclang-dev >/dev/null 2>&1; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 \
    || vp_die "libclang-dev is missing and there is no apt-get: install libclang (for RocksDB's bindgen) with your package manager"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || vp_die "libclang-dev is missing and installing it needs root: run \`apt-get install -y libclang-dev\` as root"
    sudo=(sudo)
  fi
  vp_say "installing libclang-dev (RocksDB's bindgen needs it)"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have empty package lists: update only when the first try fails.
  if ! "${sudo[@]}" apt-get install -y -q libclang-dev >/dev/null; then
    vp_say "apt-get install failed; updating the package lists and retrying"
    "${sudo[@]}" apt-get update -q >/dev/null \
      || vp_die "\`apt-get update\` failed: check the network or the apt sources"
    "${sudo[@]}" apt-get install -y -q libclang-dev >/dev/null \
      || vp_die "\`apt-get install -y libclang-dev\` failed (see the messages above)"
  fi
}

# ---------------------------------------------------------------- just
install_just() {
  local just
  if just="$(vp_find_just)"; then
    vp_say "just: $just ($("$just" --version))"
    return 0
  fi
  vp_say "installing just (pip install rust-just)"
  if ! { command -v python3 >/dev/null 2>&1 \
    && python3 -m pip install --quiet --disable-pip-version-check rust-just; }; then
    # Debian's system Python refuses pip installs (PEP 668); cargo always works here.
    vp_say "pip could not install rust-just; building it with \`cargo install just --locked\` (a few minutes)"
    cargo install just --locked --quiet \
      || vp_die "could not install just with pip or cargo; install it by hand (https://just.systems) and rerun"
  fi
  # pyenv's shims only learn about new scripts after a rehash.
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash >/dev/null 2>&1 || true; fi
  just="$(vp_find_just)" \
    || vp_die "just was installed but no working \`just\` binary was found on PATH, in Python's scripts dir, ~/.local/bin or ~/.cargo/bin"
  vp_say "just: $just ($("$just" --version))"
  case ":$PATH:" in
    *":$(dirname "$just"):"*) ;;
    *) vp_say "note: $(dirname "$just") is not on your PATH; scripts/test.sh and scripts/example.sh add it themselves" ;;
  esac
}

# ---------------------------------------------------------------- fixture npm dependencies
# True when package.json declares any dependencies (workspace:* links of the example do not need
# an install, so only fixtures with registry dependencies count).
has_registry_deps() {
  node -e '
    const pkg = require(process.argv[1]);
    const all = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
    const registry = Object.values(all).filter((v) => !String(v).startsWith("workspace:"));
    process.exit(registry.length > 0 ? 0 : 1);
  ' "$1"
}

install_fixture_deps() {
  local pkg dir stamp
  for pkg in fixtures/*/package.json; do
    [ -f "$pkg" ] || continue
    dir="$(dirname "$pkg")"
    has_registry_deps "$ROOT/$pkg" || continue
    # npm writes node_modules/.package-lock.json on every install: it is our "installed at" stamp.
    stamp="$dir/node_modules/.package-lock.json"
    if [ -f "$stamp" ] && [ ! "$dir/package.json" -nt "$stamp" ] \
      && { [ ! -f "$dir/package-lock.json" ] || [ ! "$dir/package-lock.json" -nt "$stamp" ]; }; then
      continue
    fi
    if [ -f "$dir/package-lock.json" ]; then
      vp_say "$dir: npm ci"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
        || vp_die "\`npm ci\` failed in $dir: check that the npm registry is reachable and that package-lock.json matches package.json (\`npm install\` there updates it)"
    else
      vp_say "$dir: npm install (no package-lock.json)"
      (cd "$dir" && npm install --no-audit --no-fund --loglevel=error) \
        || vp_die "\`npm install\` failed in $dir: check that the npm registry is reachable"
    fi
    # npm ci may keep the lockfile's old mtime; make the stamp strictly newer.
    touch "$stamp"
  done
}

install_libclang
install_just
install_fixture_deps
vp_say "ready"
