'use strict';
// Outside vp: the package (and the addon, when loaded without a runner) must
// be a silent no-op for ignore/disable and read process.env for envs. Run by
// cli/src/bridge/node_tests.rs and by `npm test` in this package.
const assert = require('node:assert');
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const child_process = require('node:child_process');
const { Worker, isMainThread } = require('node:worker_threads');
const { importByName, exited } = require('./helpers.js');

const pkg = path.resolve(__dirname, '..');

function checkEnvFunctions(b) {
  process.env.VITE_LOCAL = 'here';
  process.env.VITE_LOCAL_2 = 'two';
  assert.strictEqual(b.getEnv('VITE_LOCAL'), 'here');
  assert.strictEqual(b.getEnv('VP_BRIDGE_NOT_SET'), undefined);
  assert.deepStrictEqual(b.getEnvs('VITE_LOCAL*'), { VITE_LOCAL: 'here', VITE_LOCAL_2: 'two' });
  assert.deepStrictEqual(b.getEnvs({ prefix: 'VITE_LOCAL_' }, { tracked: false }), { VITE_LOCAL_2: 'two' });
  assert.deepStrictEqual(Object.keys(b.getEnvs('{VITE,NOPE}_LOC?L')), ['VITE_LOCAL']);
  assert.deepStrictEqual(Object.keys(b.getEnvs('[UV]ITE_LOCAL')), ['VITE_LOCAL']);
  assert.deepStrictEqual(b.getEnvs('VITE_LOCA'), {}, 'a glob matches the whole name');
  process.env.VITE_LOCAL = 'changed';
  assert.strictEqual(b.getEnv('VITE_LOCAL'), 'changed', 'reads process.env live');
}

async function main() {
  assert.strictEqual(process.env.VP_IPC_FD, undefined);
  assert.strictEqual(process.env.VP_RUN_NODE_CLIENT_PATH, undefined);

  const b = require(pkg);
  assert.strictEqual(b.ignoreInput('/x'), undefined);
  assert.strictEqual(b.ignoreOutput('relative/dir'), undefined);
  assert.strictEqual(b.disableCache(), undefined);
  checkEnvFunctions(b);
  assert.throws(() => b.getEnvs(42), TypeError);
  assert.throws(() => b.getEnvs('[z-a]'), /^Error: vp-bridge: invalid env glob/);
  assert.throws(() => b.getEnv('A', { tracked: 'yes' }), TypeError);
  assert.throws(() => b.ignoreInput(undefined), TypeError);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-bridge-test-'));
  const esm = await importByName(
    dir,
    "import bridge, { getEnv, disableCache } from 'vp-bridge';\n" +
      'disableCache();\n' +
      "export const value = getEnv('VITE_LOCAL');\n" +
      'export const shared = bridge;\n',
  );
  assert.strictEqual(esm.value, 'changed');
  assert.strictEqual(esm.shared, b, 'ESM and CJS entries share one module');

  const addonPath = process.env.VP_BRIDGE_TEST_ADDON;
  if (addonPath) {
    // The runner's addon without a runner: still no exception.
    const api = require(addonPath).load();
    assert.strictEqual(api.ignoreInput('/x'), undefined);
    assert.strictEqual(api.disableCache(), undefined);
    checkEnvFunctions(api);
    const worker = new Worker(__filename, { argv: ['worker'] });
    assert.strictEqual(await exited(worker), 0, 'addon in a worker reads the worker env');

    // VP_IPC_FD pointing at something that is not a broker: a no-op.
    const bad = child_process.spawnSync(
      process.execPath,
      ['-e', "require(process.env.VP_RUN_NODE_CLIENT_PATH).load().ignoreInput('/x'); require(process.env.VP_RUN_NODE_CLIENT_PATH).disableCache()"],
      { env: { ...process.env, VP_RUN_NODE_CLIENT_PATH: addonPath, VP_IPC_FD: '1', VP_IPC_TOKEN: 't' } },
    );
    assert.strictEqual(bad.status, 0, `invalid fd must be a no-op: ${bad.stderr}`);
  }

  // Under vp with a broken addon path: a clear error, not silence.
  const broken = child_process.spawnSync(
    process.execPath,
    ['-e', `require(${JSON.stringify(pkg)}).ignoreInput('/x')`],
    { env: { ...process.env, VP_RUN_NODE_CLIENT_PATH: '/nonexistent/vp-bridge.node' }, encoding: 'utf8' },
  );
  assert.notStrictEqual(broken.status, 0);
  assert.match(broken.stderr, /vp-bridge: cannot load the vp runner's addon/);

  fs.rmSync(dir, { recursive: true, force: true });
  console.log('outside-vp: ok');
}

if (!isMainThread) {
  // A worker's process.env is its own copy: the addon must read that one.
  process.env.WORKER_ONLY = 'yes';
  const api = require(process.env.VP_BRIDGE_TEST_ADDON).load();
  assert.strictEqual(api.getEnv('WORKER_ONLY'), 'yes');
} else {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
