#!/usr/bin/env node
// The `vp` command of the npm package: finds the binary of this machine's platform package
// (installed by npm as an optional dependency, see platforms.js) and runs it with the same
// arguments, stdio, environment and exit status. `VP_BINARY=/path/to/vp` runs another binary.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { current, packageName, PLATFORMS } = require('../platforms.js');

function binaryPath() {
  if (process.env.VP_BINARY) return process.env.VP_BINARY;
  const platform = current();
  if (!platform) {
    const supported = PLATFORMS.map((p) => `${p.os}-${p.cpu} (${p.libc})`).join(', ');
    fail(`vp has no binary for ${process.platform}-${process.arch}; it is built for ${supported}`);
  }
  const name = packageName(platform);
  let manifest;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch {
    fail(
      `the package ${name} with vp's binary for this machine is not installed\n` +
        '(hint: reinstall without --no-optional / --omit=optional, so npm installs it)',
    );
  }
  return path.join(path.dirname(manifest), 'bin', 'vp');
}

function fail(message) {
  process.stderr.write(`vp: ${message}\n`);
  process.exit(1);
}

// vp handles Ctrl-C itself (it forwards the signal to its tasks and exits 130): the launcher
// must outlive it instead of dying first, and then report how vp ended.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => {});

const result = spawnSync(binaryPath(), process.argv.slice(2), { stdio: 'inherit' });
if (result.error) fail(`could not start ${result.error.path || 'vp'}: ${result.error.message}`);
if (result.signal) {
  process.removeAllListeners(result.signal);
  process.kill(process.pid, result.signal);
}
process.exit(result.status === null ? 1 : result.status);
