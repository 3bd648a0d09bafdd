// Remote-cache hit benchmark: the F2 fixture (100 packages) built once per peer against one
// local turborepo-remote-cache server, then, per round, a fresh copy at a new absolute path
// (an empty local cache, as on a new CI machine) built again: every task must come from the
// remote cache and nothing may execute. Peers run in rotated order within each round, so both
// see the same machine noise. Prints a Markdown table of medians on stdout.
//
//   node remote.mjs <server-url> <token> <rounds>
//
// Environment: PEERS (default "turbo,vprs"), PEERBENCH_ROOT, VPRS_BIN / TURBO_BIN as for bench.mjs.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { peers, ROOT } from './peers.mjs';
import { generate, EXEC_LOG } from './gen.mjs';

const [url, token, roundsArg = '5'] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node remote.mjs <server-url> <token> [rounds]');
  process.exit(2);
}
const rounds = Number(roundsArg);
const names = (process.env.PEERS || 'turbo,vprs').split(',');
const TEAM = 'bench';

// How each peer is pointed at the server (environment only: nothing in the fixture changes).
const remoteEnv = {
  turbo: { TURBO_API: url, TURBO_TOKEN: token, TURBO_TEAM: TEAM },
  vprs: { VP_REMOTE_CACHE_URL: url, VP_REMOTE_CACHE_TOKEN: token, VP_REMOTE_CACHE_TEAM: TEAM },
};

const execCount = () => {
  try {
    return fs.readFileSync(EXEC_LOG, 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

function run(peer, dir) {
  const ad = peers[peer];
  const [bin, ...args] = ad.cmd('F2build');
  const env = { ...process.env, ...ad.env, NO_COLOR: '1', CI: '', ...remoteEnv[peer] };
  const before = execCount();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(bin, args, { cwd: dir, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    throw new Error(`${peer} failed in ${dir} (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { ms, executed: execCount() - before, output: r.stdout + r.stderr };
}

/// A copy of the generated fixture at a new path, without any local cache.
function freshCopy(peer, src, n) {
  const dst = path.join(ROOT, 'remote', `${peer}-${n}`);
  fs.rmSync(dst, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  const cp = spawnSync('cp', ['-a', src, dst]);
  if (cp.status !== 0) throw new Error(`cp -a ${src} ${dst} failed`);
  for (const c of peers[peer].cacheDirs) fs.rmSync(path.join(dst, c), { recursive: true, force: true });
  fs.rmSync(path.join(dst, 'node_modules', '.cache'), { recursive: true, force: true });
  return dst;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const src = {};
for (const p of names) {
  src[p] = generate(p, 'F2');
  // Populate the server: a cold build that uploads every task.
  const first = run(p, freshCopy(p, src[p], 'seed'));
  if (first.executed !== 100) throw new Error(`${p}: seeding executed ${first.executed} of 100 tasks`);
}

const times = Object.fromEntries(names.map((p) => [p, []]));
for (let r = 0; r < rounds; r++) {
  const order = names.map((_, i) => names[(i + r) % names.length]);
  for (const p of order) {
    const dir = freshCopy(p, src[p], r);
    const got = run(p, dir);
    if (got.executed !== 0) {
      throw new Error(`${p}: a remote hit executed ${got.executed} tasks (round ${r}):\n${got.output}`);
    }
    times[p].push(got.ms);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Ratios per round (same noise for both), then their median.
const ratio = (p) =>
  names.includes('turbo') ? median(times[p].map((t, i) => t / times.turbo[i])).toFixed(2) : '—';
console.log('| runner | remote hit, F2 (100 packages), fresh copy: median wall | ratio to turbo | every round (ms) |');
console.log('|---|---|---|---|');
for (const p of names) {
  console.log(
    `| ${p === 'vprs' ? 'vp' : p} | ${median(times[p]).toFixed(0)} ms | ${ratio(p)} | ${times[p].map((t) => t.toFixed(0)).join(', ')} |`,
  );
}
