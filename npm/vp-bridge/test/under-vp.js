'use strict';
// Run by cli/src/bridge/node_tests.rs under a real BridgeSession. Every
// call here must reach the runner; the Rust side checks the report.
const assert = require('node:assert');
const child_process = require('node:child_process');
const { Worker, isMainThread, workerData } = require('node:worker_threads');
const { importByName, exited } = require('./helpers.js');

async function main() {
  assert.ok(process.env.VP_IPC_FD, 'VP_IPC_FD is set by the runner');
  assert.notStrictEqual(process.env.VP_IPC_FD, '3', 'the broker is not on fd 3');
  assert.strictEqual(process.env.VITE_SECRET_THING, undefined, 'not in the child env');

  const bridge = require('vp-bridge');
  bridge.ignoreInput('/vp-test/main-cjs');

  const api = require(process.env.VP_RUN_NODE_CLIENT_PATH).load();
  assert.deepStrictEqual(Object.keys(api).sort(), [
    'disableCache',
    'getEnv',
    'getEnvs',
    'ignoreInput',
    'ignoreOutput',
  ]);
  api.ignoreInput('/vp-test/main-addon');

  const esm = await importByName(
    process.cwd(),
    "import bridge, { ignoreInput } from 'vp-bridge';\n" +
      "ignoreInput('/vp-test/main-esm');\n" +
      "export const same = typeof bridge.getEnvs === 'function';\n",
  );
  assert.ok(esm.same);

  // Served from vp's full environment although process.env lacks them.
  const vite = bridge.getEnvs({ prefix: 'VITE_' });
  assert.deepStrictEqual(vite, { VITE_OTHER: '2', VITE_SECRET_THING: 'from-vp' });
  assert.strictEqual(Object.getPrototypeOf(vite), Object.prototype, 'a plain object');
  assert.strictEqual(bridge.getEnv('NODE_ENV'), 'production');
  assert.strictEqual(bridge.getEnv('HOME'), '/home/test');
  assert.strictEqual(bridge.getEnv('NOT_SET_ANYWHERE'), undefined);
  assert.deepStrictEqual(bridge.getEnvs('GITHUB_*'), {}, 'untracked names are never served in a match-set');
  assert.throws(() => bridge.getEnvs('VITE_['), /^Error: vp-bridge: .*invalid env glob/);
  assert.throws(() => bridge.ignoreInput(''), TypeError);
  bridge.ignoreOutput('out-rel');

  const workers = [0, 1, 2, 3].map(
    (i) => new Worker(__filename, { workerData: i, env: { ...process.env, IN_WORKER: String(i) } }),
  );
  assert.deepStrictEqual(await Promise.all(workers.map(exited)), [0, 0, 0, 0]);

  const forked = child_process.fork(__filename, ['fork'], { stdio: 'inherit' });
  const forkMessage = new Promise((resolve) => forked.once('message', resolve));
  assert.strictEqual(await exited(forked), 0, 'fork grandchild');
  assert.strictEqual(await forkMessage, 'reported');

  const spawned = child_process.spawn(process.execPath, [__filename, 'spawn'], { stdio: 'inherit' });
  assert.strictEqual(await exited(spawned), 0, 'spawn grandchild');

  const quick = child_process.spawn(process.execPath, [__filename, 'exit-now'], { stdio: 'inherit' });
  assert.strictEqual(await exited(quick), 0, 'exit-now grandchild');

  bridge.disableCache();
  console.log('under-vp: ok');
}

function worker() {
  const bridge = require('vp-bridge');
  bridge.ignoreInput(`/vp-test/worker-${workerData}`);
  assert.strictEqual(bridge.getEnv('VITE_OTHER', { tracked: false }), '2');
  assert.strictEqual(process.env.IN_WORKER, String(workerData));
}

function grandchild(role) {
  const bridge = require('vp-bridge');
  if (role === 'fork') {
    // child_process.fork() put Node's own IPC channel on fd 3.
    assert.strictEqual(typeof process.send, 'function');
    bridge.ignoreOutput('/vp-test/fork');
    process.send('reported', () => process.disconnect());
  } else if (role === 'spawn') {
    bridge.ignoreOutput('/vp-test/spawn');
    assert.strictEqual(bridge.getEnvs('VITE_SECRET_*').VITE_SECRET_THING, 'from-vp');
  } else if (role === 'exit-now') {
    bridge.ignoreOutput('/vp-test/exit-now');
    process.exit(0);
  } else {
    throw new Error(`unknown role ${role}`);
  }
}

if (!isMainThread) {
  worker();
} else if (process.argv[2]) {
  grandchild(process.argv[2]);
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
