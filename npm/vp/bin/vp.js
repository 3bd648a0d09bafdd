#!/usr/bin/env node
// The `vp` command of the npm package: finds the binary of this machine's platform package
// (installed by npm as an optional dependency, see platforms.js) and runs it with the same
// arguments, stdio, environment and exit status. `VP_BINARY=/path/to/vp` runs another binary.
'use strict';

const { spawn } = require('node:child_process');
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

// vp handles signals itself (it forwards them to its tasks and exits 128 + n). The launcher
// passes every signal it gets on to vp (a terminal's Ctrl-C reaches both; `kill`, `timeout` or a
// CI cancel reach only the launcher), outlives it, and then ends the way vp ended.
const child = spawn(binaryPath(), process.argv.slice(2), { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}
child.on('error', (e) => fail(`could not start ${e.path || 'vp'}: ${e.message}`));
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code === null ? 1 : code);
});
