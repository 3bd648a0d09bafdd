const fs = require('fs');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/out.txt', fs.readFileSync('src/a.txt', 'utf8').toUpperCase());
console.log('built dist/out.txt');
