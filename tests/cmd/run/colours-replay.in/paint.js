// Colours whatever its output is, as a tool run with `--color` does.
process.stdout.write('\x1b[32mgreen\x1b[0m and \x1b]8;;https://vite.dev\x1b\\a link\x1b]8;;\x1b\\\n');
