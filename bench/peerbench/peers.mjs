// Peer adapters for the task-runner benchmark.
// Copied from the shared peer benchmark; the only change is the `vprs` adapter (this
// repository's vp) and the REPO constant it uses. gen.mjs, bench.mjs and probe.mjs are unchanged.
//
// Each adapter describes ONE runner:
//   env            extra environment for every invocation (telemetry/daemon off ...)
//   setup(dir, fx) writes the runner-specific config into a generated fixture dir
//                  (fx = 'F1' | 'F2' | 'F3'); may return extra root package.json fields
//   cmd(scenario)  argv (array) to run from the fixture root:
//                  'F1build' | 'F2build' | 'F3noop' (cache disabled) | 'F3noopc' (cached)
//   cacheDirs      paths (relative to fixture root) holding the runner's cache/state;
//                  deleted before every cold run and measured with du after F2
//
// To point the harness at another runner, add an adapter here (or override the
// binary of an existing one with the *_BIN environment variables below), then run
//   PEERS=mypeer node bench.mjs
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';

export const ROOT = process.env.PEERBENCH_ROOT || path.join(os.tmpdir(), 'peerbench');
// This repository (bench/peerbench/../..): the `vprs` peer runs the vp built here.
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const P = (peer, ...rest) => path.join(ROOT, 'peers', peer, 'node_modules', ...rest);

const common = {
  DO_NOT_TRACK: '1',
  NO_COLOR: '1',
  CI: '', // CI=1 changes wireit's cache default and turbo/nx UI; keep it unset
};

const w = (dir, rel, data) => {
  const f = path.join(dir, rel);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, typeof data === 'string' ? data : JSON.stringify(data, null, 2) + '\n');
};
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));
const editJson = (f, fn) => { const j = readJson(f); fn(j); fs.writeFileSync(f, JSON.stringify(j, null, 2) + '\n'); };

// package dirs of a fixture (root for F1/F3, packages/* for F2)
export function pkgDirs(dir, fx) {
  if (fx !== 'F2') return [dir];
  return fs.readdirSync(path.join(dir, 'packages')).sort().map((d) => path.join(dir, 'packages', d));
}

export const peers = {
  // ---------------------------------------------------------------- raw
  // No runner: runs the task command directly. Yardstick for runner overhead.
  raw: {
    env: {},
    setup() {},
    cmd: (s) => ({
      F1build: ['node', 'build.js'],
      F3noop: ['sh', '-c', 'echo hi'],
      F3noopc: ['sh', '-c', 'echo hi'],
      F2build: ['sh', '-c', 'for d in packages/*/; do (cd $d && node build.js) || exit 1; done'],
    })[s],
    cacheDirs: [],
  },

  // ---------------------------------------------------------------- turbo
  turbo: {
    env: { TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1', TURBO_UI: 'false', TURBO_PRINT_VERSION_DISABLED: '1' },
    bin: process.env.TURBO_BIN || P('turbo', '.bin', 'turbo'),
    setup(dir, fx) {
      const tasks = fx === 'F3'
        ? { noop: { cache: false }, noopc: { outputs: [] } }
        : { build: { dependsOn: ['^build'], outputs: ['dist/**'] } };
      w(dir, 'turbo.json', { $schema: 'https://turbo.build/schema.json', ui: 'stream', tasks });
    },
    cmd(s) {
      const b = this.bin;
      return ({
        F1build: [b, 'run', 'build', '--concurrency=4'],
        F2build: [b, 'run', 'build', '--concurrency=4'],
        F3noop: [b, 'run', 'noop'],
        F3noopc: [b, 'run', 'noopc'],
      })[s];
    },
    cacheDirs: ['.turbo'],
  },

  // ---------------------------------------------------------------- nx
  nx: {
    env: { NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false', NX_SKIP_NX_CACHE: '', NX_INTERACTIVE: 'false', NX_VERBOSE_LOGGING: 'false', NX_ADD_PLUGINS: 'false' },
    bin: process.env.NX_BIN || P('nx', '.bin', 'nx'),
    setup(dir, fx) {
      w(dir, 'nx.json', {
        $schema: './node_modules/nx/schemas/nx-schema.json',
        useDaemonProcess: false,
        neverConnectToCloud: true,
        // Nx 24 default is ~/.nx/<workspace-hash>/cache (outside the repo); keep it in the repo so
        // every peer's cache is on the same disk and can be wiped/measured per fixture
        cacheDirectory: '.nx/cache',
        tui: { enabled: false },
        targetDefaults: {
          build: { cache: true, dependsOn: ['^build'], outputs: ['{projectRoot}/dist'] },
          noop: { cache: false },
          noopc: { cache: true, outputs: [] },
        },
      });
      // a root package.json is only an Nx project when it has an "nx" field
      if (fx !== 'F2') editJson(path.join(dir, 'package.json'), (j) => { j.nx = {}; });
    },
    cmd(s) {
      const b = this.bin;
      return ({
        F1build: [b, 'run', 'f1:build', '--outputStyle=static'],
        F2build: [b, 'run-many', '-t', 'build', '--parallel=4', '--outputStyle=static'],
        F3noop: [b, 'run', 'f3:noop', '--outputStyle=static'],
        F3noopc: [b, 'run', 'f3:noopc', '--outputStyle=static'],
      })[s];
    },
    cacheDirs: ['.nx'],
  },

  // ---------------------------------------------------------------- wireit
  // wireit is always entered through `npm run <script>` (that is how it is used).
  wireit: {
    env: { WIREIT_PARALLEL: '4', WIREIT_CACHE: 'local', WIREIT_LOGGER: 'simple' },
    setup(dir, fx) {
      const files = ['src/**/*.js', 'build.js'];
      if (fx === 'F3') {
        editJson(path.join(dir, 'package.json'), (j) => {
          j.scripts = { noop: 'wireit', noopc: 'wireit' };
          j.wireit = { noop: { command: 'echo hi' }, noopc: { command: 'echo hi', files: [], output: [] } };
        });
        return;
      }
      for (const pd of pkgDirs(dir, fx)) {
        editJson(path.join(pd, 'package.json'), (j) => {
          j.scripts = { build: 'wireit' };
          const deps = Object.keys(j.dependencies || {}).map((d) => `../${d}:build`);
          j.wireit = { build: { command: 'node build.js', files, output: ['dist/**'], ...(deps.length ? { dependencies: deps } : {}) } };
        });
      }
      if (fx === 'F2') {
        editJson(path.join(dir, 'package.json'), (j) => {
          j.scripts = { build: 'wireit' };
          j.wireit = { build: { dependencies: pkgDirs(dir, fx).map((pd) => `./packages/${path.basename(pd)}:build`) } };
        });
      }
    },
    cmd: (s) => ({
      F1build: ['npm', 'run', '--silent', 'build'],
      F2build: ['npm', 'run', '--silent', 'build'],
      F3noop: ['npm', 'run', '--silent', 'noop'],
      F3noopc: ['npm', 'run', '--silent', 'noopc'],
    })[s],
    cacheDirs: ['.wireit', 'packages/*/.wireit'],
  },

  // ---------------------------------------------------------------- vp (vite-plus / vite-task)
  // Tasks defined in vite.config.ts (cached by default), explicit output dist/**, inputs auto-tracked.
  vp: {
    env: { VP_TELEMETRY_DISABLED: '1' },
    bin: process.env.VP_BIN || P('vp', '.bin', 'vp'),
    setup(dir, fx) {
      if (fx === 'F3') {
        w(dir, 'vite.config.ts', `export default {\n  run: {\n    tasks: {\n      noop: { command: 'echo hi', cache: false },\n      noopc: { command: 'echo hi' },\n    },\n  },\n};\n`);
        return;
      }
      for (const pd of pkgDirs(dir, fx)) {
        w(pd, 'vite.config.ts', `export default {\n  run: {\n    tasks: {\n      build: { command: 'node build.js', cache: { output: ['dist/**'] } },\n    },\n  },\n};\n`);
      }
    },
    cmd(s) {
      const b = this.bin;
      return ({
        F1build: [b, 'run', 'build'],
        F2build: [b, 'run', '-r', '--concurrency-limit', '4', 'build'],
        F3noop: [b, 'run', 'noop'],
        F3noopc: [b, 'run', 'noopc'],
      })[s];
    },
    cacheDirs: ['node_modules/.vite'],
  },
};

// ---------------------------------------------------------------- vprs (this repository's vp)
// Zero cache configuration: one vite-task.json task per package with only a command, so inputs
// and outputs are what vp observes (no declared globs); F3noop opts out of caching. The package
// graph comes from the npm `workspaces` of the F2 root, `-r` runs dependencies first.
// Binary: VPRS_BIN, else <CARGO_TARGET_DIR or repo/target>/release/vp (bench/run-peers.sh builds it).
peers.vprs = {
  env: {},
  bin: process.env.VPRS_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release', 'vp'),
  setup(dir, fx) {
    // A task name should be a vite-task.json task or a package.json script, not both.
    const dropScripts = (pd) => editJson(path.join(pd, 'package.json'), (j) => { delete j.scripts; });
    if (fx === 'F3') {
      w(dir, 'vite-task.json', { tasks: { noop: { command: 'echo hi', cache: false }, noopc: { command: 'echo hi' } } });
      dropScripts(dir);
      return;
    }
    for (const pd of pkgDirs(dir, fx)) {
      w(pd, 'vite-task.json', { tasks: { build: { command: 'node build.js' } } });
      dropScripts(pd);
    }
  },
  cmd(s) {
    const b = this.bin;
    return ({
      F1build: [b, 'run', 'build'],
      F2build: [b, 'run', '-r', '--concurrency-limit', '4', 'build'],
      F3noop: [b, 'run', 'noop'],
      F3noopc: [b, 'run', 'noopc'],
    })[s];
  },
  // vp's default cache location (`vp cache path`)
  cacheDirs: ['node_modules/.cache/vp'],
};

// Allow ad-hoc peers from the environment, e.g.
//   EXTRA_PEER_NAME=vpnew EXTRA_PEER_BASE=vp EXTRA_PEER_BIN=/path/to/vp node bench.mjs
// clones the `vp` adapter (config + argv shape) but runs another binary.
if (process.env.EXTRA_PEER_NAME) {
  const base = peers[process.env.EXTRA_PEER_BASE || 'vp'];
  peers[process.env.EXTRA_PEER_NAME] = { ...base, bin: process.env.EXTRA_PEER_BIN || base.bin, nodeModulesFrom: process.env.EXTRA_PEER_BASE || 'vp' };
}

export function peerEnv(name) {
  const e = { ...process.env, ...common, ...peers[name].env };
  for (const [k, v] of Object.entries(e)) if (v === '') delete e[k];
  return e;
}
