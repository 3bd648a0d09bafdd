// Like a bundler: start from an empty out/, write chunks, fail on bad source.
import fs from 'node:fs';
const src = fs.readFileSync('src.txt', 'utf8');
fs.rmSync('out', { recursive: true, force: true });
fs.mkdirSync('out');
if (src === 'broken') {
  fs.writeFileSync('out/chunk-1.js', 'half a build');
  console.error('build failed: src.txt is broken');
  process.exit(1);
}
fs.writeFileSync('out/page.js', src);
console.log('built out/page.js');
