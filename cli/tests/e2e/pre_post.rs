//! npm's `pre`/`post` scripts under `vp run`, with real Node: `prebuild`,
//! `build` and `postbuild` run in that order, arguments after `--` reach only
//! `build`, and with `--cache` each of the three is its own cache entry.

use crate::harness::Workspace;

/// Each step records itself (exec log), prints its arguments, and writes
/// `dist/<name>.txt` from the previous step's file, so a step that ran too
/// early would fail instead of passing by luck.
const STEP_JS: &str = r"'use strict';
const fs = require('node:fs');
const [name, after, ...args] = process.argv.slice(2);
require('./lib/record')(name);
const before = after === '-' ? '' : fs.readFileSync(`dist/${after}.txt`, 'utf8');
const line = [name, ...args].join(' ');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync(`dist/${name}.txt`, `${before}${line}\n`);
console.log(line);
";

fn hooked(ws: &Workspace) {
    ws.write("step.js", STEP_JS);
    ws.write(
        "package.json",
        r#"{
  "name": "bridge-verbs",
  "private": true,
  "scripts": {
    "prebuild": "node step.js prebuild -",
    "build": "node step.js build prebuild",
    "postbuild": "node step.js postbuild build"
  }
}
"#,
    );
}

fn hits(stderr: &str) -> usize {
    stderr.matches("◉ cache hit, replaying").count()
}

fn misses(stderr: &str) -> usize {
    stderr.matches("○ cache miss").count()
}

#[test]
fn prebuild_build_postbuild_run_in_order_and_only_build_gets_the_arguments() {
    let ws = Workspace::new("bridge-verbs");
    hooked(&ws);
    let out = ws.vp(["run", "build", "--", "--mode", "x"]).output();
    out.assert_success();
    assert_eq!(ws.take_executions(), ["prebuild", "build", "postbuild"]);
    assert_eq!(out.stdout, "prebuild\nbuild --mode x\npostbuild\n");
    assert_eq!(
        ws.read("dist/postbuild.txt"),
        "prebuild\nbuild --mode x\npostbuild\n"
    );
}

#[test]
fn with_cache_each_script_is_its_own_entry_and_the_second_run_hits_all_three() {
    let ws = Workspace::new("bridge-verbs");
    hooked(&ws);
    let first = ws.vp(["run", "build", "--cache"]).output();
    first.assert_success();
    assert_eq!(misses(&first.stderr), 3, "{}", first.combined());
    assert!(!first.stderr.contains("not cached"), "{}", first.combined());
    assert_eq!(ws.take_executions(), ["prebuild", "build", "postbuild"]);

    let second = ws.vp(["run", "build", "--cache"]).output();
    second.assert_success();
    assert_eq!(hits(&second.stderr), 3, "{}", second.combined());
    assert_eq!(second.stdout, first.stdout, "replayed output differs");
    assert!(ws.take_executions().is_empty(), "a hit ran a script");

    // Arguments reach only `build`: its pre script still hits, `build`
    // misses, and `postbuild` misses because the file it reads changed.
    let third = ws.vp(["run", "build", "--cache", "--", "--v2"]).output();
    third.assert_success();
    assert_eq!(hits(&third.stderr), 1, "{}", third.combined());
    assert!(
        third
            .stderr
            .contains("build prebuild --v2 ○ cache miss: args changed"),
        "{}",
        third.stderr
    );
    assert_eq!(ws.take_executions(), ["build", "postbuild"]);
}
