// Where the time of a cache hit goes, phase by phase, from commands that each do one phase more
// than the one before (medians of interleaved rounds, so machine noise hits every step alike):
//
//   sh -c 'echo hi'          the command itself
//   vp --version             vp's process: exec, dynamic linking, page faults, exit
//   vp run                   + workspace discovery and config (lists the tasks)
//   vp run --dry-run hi      + task graph, store opened read-only, lookup
//   vp run hi                + restore, log replay, hit journal, last-run files: the hit
//   vp run --no-cache hi     the task run without the cache (spawn, wait)
//
//   node bench/hit-breakdown.mjs [ROUNDS]     (VP=<binary>, default target/release/vp)
//
// Prints a markdown table: wall-clock medians, each vp step's difference to the step before,
// and the peak RSS (from /usr/bin/time).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const REPO = path.resolve(HERE, '..');
const ROUNDS = +(process.argv[2] || 30);
const VP = process.env.VP
  || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'release', 'vp');
if (!fs.existsSync(VP)) {
  console.error(`hit-breakdown: no vp binary at ${VP} (hint: cargo build --release -p vp, or set VP=)`);
  process.exit(1);
}
if (!fs.existsSync('/usr/bin/time')) {
  console.error('hit-breakdown: /usr/bin/time is missing (apt-get install -y time)');
  process.exit(1);
}

const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-hit-breakdown-'));
fs.writeFileSync(path.join(ws, 'package.json'), '{ "name": "hit", "private": true }\n');
fs.writeFileSync(path.join(ws, 'vite-task.json'), '{ "tasks": { "hi": { "command": "echo hi" } } }\n');

const steps = [
  ['`sh -c \'echo hi\'`', 'sh', ['-c', 'echo hi']],
  ['`vp --version`', VP, ['--version']],
  ['`vp run` (list)', VP, ['run']],
  ['`vp run --dry-run hi`', VP, ['run', '--dry-run', 'hi']],
  ['`vp run hi` (hit)', VP, ['run', 'hi']],
  ['`vp run --no-cache hi`', VP, ['run', '--no-cache', 'hi']],
];

const env = { ...process.env, NO_COLOR: '1', CI: '' };
function timed(cmd, args) {
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { cwd: ws, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return { rss: Number(r.stderr.trim().split('\n').pop()) };
}
// /usr/bin/time's times have 10 ms resolution: time the wall clock here instead (it includes
// starting /usr/bin/time, the same for every step).
function run(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = timed(cmd, args);
  r.wall = Number(process.hrtime.bigint() - t0) / 1e6;
  return r;
}

// Warm up: the store exists and holds the hit.
run(VP, ['run', 'hi']);
run(VP, ['run', 'hi']);
const samples = steps.map(() => []);
for (let i = 0; i < ROUNDS; i++) {
  // Rotate the order so no step always follows another.
  for (let k = 0; k < steps.length; k++) {
    const j = (k + i) % steps.length;
    samples[j].push(run(steps[j][1], steps[j][2]));
  }
}
fs.rmSync(ws, { recursive: true, force: true });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const rows = steps.map(([label], j) => ({
  label,
  wall: median(samples[j].map((s) => s.wall)),
  rss: median(samples[j].map((s) => s.rss)),
}));
console.log('| step | wall median (ms) | − previous step | peak RSS (MB) |');
console.log('|---|---|---|---|');
rows.forEach((r, j) => {
  const prev = j >= 2 && j <= 4 ? rows[j - 1] : null;
  const diff = prev ? `+${(r.wall - prev.wall).toFixed(1)}` : '';
  console.log(`| ${r.label} | ${r.wall.toFixed(1)} | ${diff} | ${(r.rss / 1024).toFixed(1)} |`);
});
console.log(`\n${ROUNDS} interleaved rounds; vp: ${VP}.`);
