'use strict';
// Shared by the Node tests: make `import 'vp-bridge'` resolve through the
// package's `exports` map (ESM ignores NODE_PATH), and wait for processes.
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

// Writes <dir>/node_modules/vp-bridge (a symlink to this package) and an
// ESM module next to it that imports the package by name.
async function importByName(dir, body) {
  const modules = path.join(dir, 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  const link = path.join(modules, 'vp-bridge');
  if (!fs.existsSync(link)) fs.symlinkSync(path.resolve(__dirname, '..'), link, 'dir');
  const file = path.join(dir, `esm-${process.pid}-${Date.now()}.mjs`);
  fs.writeFileSync(file, body);
  return import(pathToFileURL(file).href);
}

function exited(child) {
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(signal ? `signal ${signal}` : code));
  });
}

module.exports = { importByName, exited };
