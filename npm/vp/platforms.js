// The platforms vp ships a binary for, one npm package each (the scheme esbuild, Turborepo and
// Biome use): the launcher package lists them as optionalDependencies, and npm installs only the
// one whose `os`, `cpu` and `libc` match the machine. scripts/package-npm.sh builds the ones this
// machine can build and writes their package.json from this table, so the launcher and the
// packages cannot disagree. A row is the package suffix, Node's platform, arch and (Linux) libc,
// and the Rust target the binary is built for.
'use strict';

const PLATFORMS = [
  { suffix: 'linux-x64-gnu', os: 'linux', cpu: 'x64', libc: 'glibc', target: 'x86_64-unknown-linux-gnu' },
  { suffix: 'linux-arm64-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc', target: 'aarch64-unknown-linux-gnu' },
  { suffix: 'linux-x64-musl', os: 'linux', cpu: 'x64', libc: 'musl', target: 'x86_64-unknown-linux-musl' },
  { suffix: 'linux-arm64-musl', os: 'linux', cpu: 'arm64', libc: 'musl', target: 'aarch64-unknown-linux-musl' },
];

const SCOPE = '@vp-runner';

/** The package name of a platform row. */
const packageName = (p) => `${SCOPE}/${p.suffix}`;

/** The row for the running Node, or undefined (vp traces with seccomp: Linux only). */
function current() {
  const libc = process.platform === 'linux' ? detectLibc() : undefined;
  return PLATFORMS.find((p) => p.os === process.platform && p.cpu === process.arch && p.libc === libc);
}

function detectLibc() {
  // Node reports the glibc it runs on; a musl Node (Alpine) reports none.
  const header = process.report && process.report.getReport().header;
  return header && header.glibcVersionRuntime ? 'glibc' : 'musl';
}

module.exports = { PLATFORMS, SCOPE, packageName, current };
