// Replaces one generated section of a markdown file (creating the file or the section when
// missing) with benchmark tables, so re-running a benchmark updates docs/benchmarks.md in place
// and leaves the hand-written text around it alone.
//
//   node update-doc.mjs <doc.md> <section> <peers> <ref> <table.md>...
//
// The section is delimited by `<!-- bench:<section>:start -->` and `<!-- bench:<section>:end -->`.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const [doc, section, peers, ref, ...tables] = process.argv.slice(2);
if (!doc || !section || !peers || !ref || tables.length === 0) {
  console.error('usage: node update-doc.mjs <doc.md> <section> <peers> <ref> <table.md>...');
  process.exit(2);
}

const git = (...args) => {
  try {
    return execFileSync('git', args, { cwd: path.dirname(new URL(import.meta.url).pathname), encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

const start = `<!-- bench:${section}:start -->`;
const end = `<!-- bench:${section}:end -->`;
const body = [
  start,
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}),`,
  `Node ${process.version}, vp at commit ${git('rev-parse', '--short', 'HEAD')}; peers: ${peers}; ratios are medians of`,
  `per-iteration ratios against \`${ref}\`. ${process.env.BENCH_CELLS || 'Cells: median wall time / median peak RSS.'}`,
  '',
  ...tables.map((t) => fs.readFileSync(t, 'utf8').trim() + '\n'),
  end,
].join('\n');

let text = fs.existsSync(doc) ? fs.readFileSync(doc, 'utf8') : '# Benchmarks\n';
const i = text.indexOf(start);
const j = text.indexOf(end);
if (i >= 0 && j > i) {
  text = text.slice(0, i) + body + text.slice(j + end.length);
} else {
  text = `${text.trimEnd()}\n\n## Peer benchmark (\`bash bench/run-peers.sh\`)\n\n${body}\n`;
}
fs.mkdirSync(path.dirname(doc), { recursive: true });
fs.writeFileSync(doc, text);
