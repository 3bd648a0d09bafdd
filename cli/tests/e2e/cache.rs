//! The cache end to end: real Node tools, no cache configuration, observed
//! inputs and outputs, bridge verbs, restores and miss reasons.

use std::time::Duration;

use crate::harness::{Workspace, assert_same_tree};

fn hits(stderr: &str) -> usize {
    stderr.matches("◉ cache hit, replaying").count()
}

fn misses(stderr: &str) -> usize {
    stderr.matches("○ cache miss").count()
}

#[test]
fn second_run_replays_and_rm_dist_restores_byte_identical() {
    let ws = Workspace::new("example");
    let first = ws.vp(["run", "-r", "build"]).output();
    first.assert_success();
    assert_eq!(misses(&first.stderr), 3, "{}", first.combined());
    let built = ws.tree("packages");

    let second = ws.vp(["run", "-r", "build"]).output();
    second.assert_success();
    assert_eq!(hits(&second.stderr), 3, "{}", second.combined());
    assert_eq!(second.stdout, first.stdout, "replayed output differs");
    assert!(
        second.stderr.contains("vp run: 3/3 cache hit (100%)"),
        "{}",
        second.stderr
    );

    for pkg in ["utils", "app", "site"] {
        ws.remove(format!("packages/{pkg}/dist"));
    }
    let third = ws.vp(["run", "-r", "build"]).output();
    third.assert_success();
    assert_eq!(hits(&third.stderr), 3, "{}", third.combined());
    assert_same_tree(&built, &ws.tree("packages"));
}

#[test]
fn modified_source_misses_with_the_path() {
    let ws = Workspace::new("example");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    let src = first_source(&ws, "packages/utils/src");
    ws.edit(&src, |s| format!("{s}\n// edited\n"));
    let out = ws.vp(["run", "-r", "build"]).output();
    out.assert_success();
    let name = std::path::Path::new(&src)
        .file_name()
        .expect("a source file name")
        .to_string_lossy()
        .into_owned();
    assert!(
        out.stderr.contains(&format!("{name}' modified")),
        "{}",
        out.stderr
    );
}

fn first_source(ws: &Workspace, dir: &str) -> String {
    let mut names: Vec<_> = std::fs::read_dir(ws.path(dir))
        .expect("the fixture's source dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    format!("{dir}/{}", names[0].to_string_lossy())
}

#[test]
fn tool_that_empties_dist_is_restored_after_rm_dist() {
    let ws = Workspace::new("empties-dist");
    let first = ws.vp(["run", "build"]).output();
    first.assert_success();
    let built = ws.tree("dist");
    assert!(!built.is_empty());
    let again = ws.vp(["run", "build"]).output();
    again.assert_success();
    assert_eq!(
        hits(&again.stderr),
        1,
        "a listing of dist/ must not be an input:\n{}",
        again.combined()
    );
    ws.remove("dist");
    let restored = ws.vp(["run", "build"]).output();
    restored.assert_success();
    assert_eq!(hits(&restored.stderr), 1, "{}", restored.combined());
    assert_same_tree(&built, &ws.tree("dist"));
    assert_eq!(restored.stdout, first.stdout);
}

#[test]
fn ignore_input_keeps_the_hit_when_the_ignored_dir_changes() {
    let ws = Workspace::new("bridge-verbs");
    ws.vp(["run", "ignore-input"]).output().assert_success();
    ws.write("scratch/a.txt", "changed scratch\n");
    let out = ws.vp(["run", "ignore-input"]).output();
    out.assert_success();
    assert_eq!(hits(&out.stderr), 1, "{}", out.combined());
    ws.write("src/data.txt", "changed data\n");
    let out = ws.vp(["run", "ignore-input"]).output();
    assert!(
        out.stderr.contains("'src/data.txt' modified"),
        "{}",
        out.stderr
    );
}

#[test]
fn ignore_output_allows_read_write_overlap_and_is_not_archived() {
    let ws = Workspace::new("bridge-verbs");
    let first = ws.vp(["run", "ignore-output"]).output();
    first.assert_success();
    assert!(!first.stderr.contains("not cached"), "{}", first.combined());
    // The tool's private state changes between runs; it is neither an input
    // (no miss) nor an output (a restore never puts the old state back).
    ws.write(".tool-cache/state.json", "{\"runs\":41}\n");
    ws.remove("dist");
    let out = ws.vp(["run", "ignore-output"]).output();
    out.assert_success();
    assert_eq!(hits(&out.stderr), 1, "{}", out.combined());
    assert!(ws.exists("dist/ignore-output.txt"));
    assert_eq!(
        ws.read(".tool-cache/state.json"),
        "{\"runs\":41}\n",
        "ignored output was restored"
    );
}

/// Probe: a linter-like tool that lists its sources and keeps its cache file among them,
/// declared with `ignoreOutput` (as `eslint --cache` keeps `.eslintcache` in the package), was
/// never stored: the file it made changed the listing it read, which looked like someone else's
/// change while it ran. The name is the task's own; a file someone adds there still misses.
#[test]
fn an_ignored_output_in_a_listed_directory_is_the_tasks_own() {
    let ws = Workspace::new("bridge-verbs");
    ws.write("src/a.js", "1\n");
    ws.write(
        "lint.js",
        "'use strict';\n\
         const fs = require('node:fs');\n\
         const path = require('node:path');\n\
         const bridge = require('./lib/bridge').load();\n\
         const writeOutput = require('./lib/out');\n\
         const src = path.join(__dirname, 'src');\n\
         bridge.ignoreOutput(path.join(src, '.lintcache'));\n\
         const names = fs.readdirSync(src).filter((n) => n.endsWith('.js')).sort();\n\
         fs.writeFileSync(path.join(src, '.lintcache'), JSON.stringify({ at: Date.now(), names }));\n\
         writeOutput('lint.txt', `linted ${names.join(',')}\\n`);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "lint": { "command": "node lint.js" } } }"#,
    );
    let first = ws.vp(["run", "lint"]).output();
    first.assert_success();
    assert!(!first.stderr.contains("not cached"), "{}", first.combined());
    let again = ws.vp(["run", "lint"]).output();
    assert_eq!(hits(&again.stderr), 1, "{}", again.combined());

    ws.write("src/b.js", "2\n");
    let added = ws.vp(["run", "lint"]).output();
    added.assert_success();
    assert_eq!(misses(&added.stderr), 1, "{}", added.combined());
    assert_eq!(ws.read("dist/lint.txt"), "linted a.js,b.js\n");
    assert!(!added.stderr.contains("not cached"), "{}", added.combined());
    let idle = ws.vp(["run", "lint"]).output();
    assert_eq!(hits(&idle.stderr), 1, "{}", idle.combined());
}

/// Probe: a tool that keeps a database of its own (reads a file of it, then rewrites it) and
/// speaks no bridge was never stored, even with the database excluded from the task's `input`
/// (`!state/**`): the exclusion applied to the stored inputs, after the run had already been
/// refused for modifying one. Excluded from `input`, the file is no input, so the run is stored
/// and the file is an output, one the task wrote after reading it: a hit writes it only over what
/// vp left there, so an edit of it misses. Excluded from `output` as well, it is neither, and a
/// hit leaves it as it is. Excluded from `output` only, it is still an input that the run
/// changed: never stored.
#[test]
fn a_state_file_excluded_by_the_task_does_not_keep_it_from_being_stored() {
    let ws = Workspace::new("bridge-verbs");
    ws.write("state/db.json", "{\"runs\":0}\n");
    ws.write(
        "stateful.js",
        "'use strict';\n\
         const fs = require('node:fs');\n\
         const writeOutput = require('./lib/out');\n\
         const db = JSON.parse(fs.readFileSync('state/db.json', 'utf8'));\n\
         fs.writeFileSync('state/db.json', JSON.stringify({ runs: db.runs + 1 }) + '\\n');\n\
         writeOutput('stateful.txt', fs.readFileSync('src/data.txt', 'utf8'));\n",
    );
    let configure = |input: &str, output: &str| {
        ws.write(
            "vite-task.json",
            format!(
                r#"{{ "tasks": {{ "stateful": {{ "command": "node stateful.js", "input": {input}, "output": {output} }} }} }}"#
            ),
        );
    };
    let run = || {
        let out = ws.vp(["run", "stateful"]).output();
        out.assert_success();
        out
    };
    let stored = |out: &crate::harness::Output| {
        assert!(!out.stderr.contains("not cached"), "{}", out.combined());
    };
    let auto = r#"[{ "auto": true }]"#;
    let excluded = r#"[{ "auto": true }, "!state/**"]"#;

    configure(auto, auto);
    run().assert_stderr_contains("not cached because it modified its input 'state/db.json'");

    configure(excluded, auto);
    stored(&run());
    assert_eq!(hits(&run().stderr), 1, "stored");
    ws.write("state/db.json", "{\"runs\":100}\n");
    let edited = run();
    assert_eq!(misses(&edited.stderr), 1, "{}", edited.combined());
    edited.assert_stderr_contains("output 'state/db.json' holds what vp did not leave there");
    stored(&edited);
    assert_eq!(
        ws.read("state/db.json"),
        "{\"runs\":101}\n",
        "never written over"
    );

    configure(excluded, excluded);
    stored(&run());
    ws.write("state/db.json", "{\"runs\":100}\n");
    assert_eq!(hits(&run().stderr), 1, "neither input nor output");
    assert_eq!(
        ws.read("state/db.json"),
        "{\"runs\":100}\n",
        "left as it is"
    );
    ws.edit("src/data.txt", |s| format!("{s}more\n"));
    assert_eq!(misses(&run().stderr), 1);
    assert_eq!(ws.read("state/db.json"), "{\"runs\":101}\n");

    // Every time: no output, the file is never the task's own state either.
    configure(auto, excluded);
    run().assert_stderr_contains("not cached because it modified its input 'state/db.json'");
    run().assert_stderr_contains("not cached because it modified its input 'state/db.json'");
}

/// Probe: Astro 5 on Vite 6 fills Vite's dependency optimizer cache while it builds, and Vite
/// older than 8.3 cannot tell vp that `node_modules/.vite` is a cache: the first build after the
/// cache was made was not stored (its `_metadata.json` "was modified while it ran"), and removing
/// the cache cost two more builds. The script does what the optimizer does: reads the metadata,
/// replaces a chunk and rewrites the metadata, speaking no bridge.
#[test]
fn vites_dependency_cache_is_a_tools_cache_without_the_bridge() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "optimize.js",
        "'use strict';\n\
         const fs = require('node:fs');\n\
         const writeOutput = require('./lib/out');\n\
         const deps = 'node_modules/.vite/deps';\n\
         fs.mkdirSync(deps, { recursive: true });\n\
         let meta = { browserHash: 0 };\n\
         try { meta = JSON.parse(fs.readFileSync(`${deps}/_metadata.json`, 'utf8')); } catch {}\n\
         fs.rmSync(`${deps}/chunk-${meta.browserHash}.js`, { force: true });\n\
         meta.browserHash += 1;\n\
         fs.writeFileSync(`${deps}/chunk-${meta.browserHash}.js`, 'export {}\\n');\n\
         fs.writeFileSync(`${deps}/_metadata.json`, JSON.stringify(meta));\n\
         writeOutput('optimized.txt', fs.readFileSync('src/data.txt', 'utf8'));\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "optimize": { "command": "node optimize.js" } } }"#,
    );
    let run = || {
        let out = ws.vp(["run", "optimize"]).output();
        out.assert_success();
        assert!(!out.stderr.contains("not cached"), "{}", out.combined());
        out
    };
    run();
    assert_eq!(hits(&run().stderr), 1, "stored");
    ws.remove("node_modules/.vite");
    assert_eq!(hits(&run().stderr), 1, "the cache gone is no change");
    assert!(!ws.exists("node_modules/.vite"), "nor restored by a hit");
    ws.edit("src/data.txt", |s| format!("{s}more\n"));
    assert_eq!(misses(&run().stderr), 1);
    assert!(ws.read("dist/optimized.txt").ends_with("more\n"));
    assert_eq!(hits(&run().stderr), 1, "stored after the edit");
}

/// Review: a tool that rewrites a file in place after reading it (`sed -i`, `eslint --fix`),
/// after you edited it, leaves a result that keeps your edit. That result is not the task's to
/// overwrite, however many runs rewrite it, failed ones included: a hit on the entry from before
/// your edit must miss, not restore the old file over it.
#[test]
fn a_state_file_rewritten_from_your_edit_is_never_written_over() {
    let ws = Workspace::new("bridge-verbs");
    ws.write("notes.txt", "base\n");
    ws.write(
        "stamp.js",
        "'use strict';\n\
         const fs = require('node:fs');\n\
         const writeOutput = require('./lib/out');\n\
         const text = fs.readFileSync('notes.txt', 'utf8');\n\
         fs.writeFileSync('notes.txt', text.includes('stamped') ? text : text + 'stamped\\n');\n\
         const data = fs.readFileSync('src/data.txt', 'utf8');\n\
         if (data.includes('fail')) process.exit(1);\n\
         writeOutput('stamp.txt', data);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "stamp": { "command": "node stamp.js" } } }"#,
    );
    let run = || ws.vp(["run", "stamp"]).output();
    // The file is the user's at first: not stored; then it is the task's own: stored.
    run().assert_stderr_contains("not cached because it modified its input 'notes.txt'");
    let stored = run();
    assert!(
        !stored.stderr.contains("not cached"),
        "{}",
        stored.combined()
    );
    assert_eq!(hits(&run().stderr), 1);
    // Your edit; the task rewrites it, keeping it, and that run is not stored.
    ws.write("notes.txt", "base\nstamped\nmine\n");
    let edited = run();
    assert_eq!(misses(&edited.stderr), 1, "{}", edited.combined());
    assert!(
        edited.stderr.contains("not cached"),
        "{}",
        edited.combined()
    );
    // A failed run rewrites it once more (from content the task's last run left, which it
    // counts as its own state).
    let data = ws.read("src/data.txt");
    ws.write("src/data.txt", "fail\n");
    assert!(!run().success());
    ws.write("src/data.txt", &data);
    // The entry from before the edit would restore "base\nstamped\n": it must not.
    let reverted = run();
    assert_eq!(misses(&reverted.stderr), 1, "{}", reverted.combined());
    assert_eq!(ws.read("notes.txt"), "base\nstamped\nmine\n");
    assert_eq!(hits(&run().stderr), 1, "stored, with your edit");
    assert_eq!(ws.read("notes.txt"), "base\nstamped\nmine\n");
}

/// Found by fuzzing `next build`: a failed build left chunks of its own in
/// `.next`, and after the revert a hit restored the earlier build beside
/// them: files no entry records and a real build removes. Whatever way a
/// run ends unstored (failed after rewriting its state, failed with a
/// chunk it looked at first, refused with exit 0), the revert must run.
#[test]
fn a_run_that_was_not_stored_leaves_nothing_a_hit_would_keep() {
    // Each script empties `out/` and writes `out/page.js`; on `bad` input
    // it leaves a chunk there and is not stored.
    let prologue = "'use strict';\n\
         const fs = require('node:fs');\n\
         const src = fs.readFileSync('src/data.txt', 'utf8');\n";
    let scripts = [
        // Rewrites its state, leaves a chunk, fails (next build).
        "try { fs.readFileSync('.state/last.txt', 'utf8'); } catch {}\n\
         fs.mkdirSync('.state', { recursive: true });\n\
         fs.writeFileSync('.state/last.txt', src);\n\
         fs.rmSync('out', { recursive: true, force: true });\n\
         fs.mkdirSync('out');\n\
         if (src.includes('bad')) { fs.writeFileSync('out/chunk.js', src); process.exit(1); }\n\
         fs.writeFileSync('out/page.js', src);\n",
        // Looks at the chunk before writing it (write-if-changed), fails.
        "fs.rmSync('out', { recursive: true, force: true });\n\
         fs.mkdirSync('out');\n\
         if (src.includes('bad')) {\n\
           fs.statSync('out/chunk.js', { throwIfNoEntry: false });\n\
           fs.writeFileSync('out/chunk.js', src);\n\
           process.exit(1);\n\
         }\n\
         fs.writeFileSync('out/page.js', src);\n",
        // Exits 0 but is not stored: it writes beside the workspace.
        "fs.rmSync('out', { recursive: true, force: true });\n\
         fs.mkdirSync('out');\n\
         if (src.includes('bad')) {\n\
           fs.writeFileSync('../beside.txt', src);\n\
           fs.writeFileSync('out/chunk.js', src);\n\
           process.exit(0);\n\
         }\n\
         fs.writeFileSync('out/page.js', src);\n",
    ];
    for body in scripts {
        let ws = Workspace::new("bridge-verbs");
        ws.write("build.js", format!("{prologue}{body}"));
        ws.write(
            "vite-task.json",
            r#"{ "tasks": { "build": { "command": "node build.js" } } }"#,
        );
        let run = || ws.vp(["run", "build"]).output();
        ws.write("src/data.txt", "one\n");
        run().assert_success();
        ws.write("src/data.txt", "two\n");
        run().assert_success();
        ws.write("src/data.txt", "bad\n");
        let bad = run();
        assert!(
            !bad.success() || bad.stderr.contains("not cached"),
            "{}",
            bad.combined()
        );
        assert!(ws.exists("out/chunk.js"), "{body}");
        ws.write("src/data.txt", "two\n");
        let reverted = run();
        reverted.assert_success();
        assert!(
            reverted
                .stderr
                .contains("'out/chunk.js' was left by a run that was not stored"),
            "{body}\n{}",
            reverted.combined()
        );
        assert!(
            !ws.exists("out/chunk.js"),
            "{body}\n{}",
            reverted.combined()
        );
        assert_eq!(ws.read("out/page.js"), "two\n");
        // What it stored hits, and so does the entry before it.
        assert_eq!(hits(&run().stderr), 1, "{body}");
        ws.write("src/data.txt", "one\n");
        assert_eq!(hits(&run().stderr), 1, "{body}");
        assert_eq!(ws.read("out/page.js"), "one\n");
    }
}

/// What a run that was not stored left is remembered for the workspace,
/// not for its task: another task with the same command shares the
/// entries. And a directory it left that the entry makes again (a build
/// that emptied `out/` and failed leaves `out`) is not in the way.
#[test]
fn leftovers_count_for_every_task_with_the_command_and_an_emptied_directory_does_not() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "build.js",
        "'use strict';\n\
         const fs = require('node:fs');\n\
         const src = fs.readFileSync('src/data.txt', 'utf8');\n\
         fs.rmSync('out', { recursive: true, force: true });\n\
         fs.mkdirSync('out');\n\
         if (src.includes('empty')) process.exit(1);\n\
         if (src.includes('bad')) { fs.writeFileSync('out/chunk.js', src); process.exit(1); }\n\
         fs.writeFileSync('out/page.js', src);\n",
    );
    ws.write(
        "vite-task.json",
        r#"{ "tasks": {
            "build": { "command": "node build.js" },
            "again": { "command": "node build.js" }
        } }"#,
    );
    let run = |task: &str| ws.vp(["run", task]).output();
    ws.write("src/data.txt", "one\n");
    run("build").assert_success();
    // Failed with nothing but the emptied `out`: the revert hits.
    ws.write("src/data.txt", "empty\n");
    assert!(!run("build").success());
    ws.write("src/data.txt", "one\n");
    assert_eq!(hits(&run("build").stderr), 1);
    assert_eq!(ws.read("out/page.js"), "one\n");
    // Failed with a chunk: the other task, same command, does not hit beside it.
    ws.write("src/data.txt", "bad\n");
    assert!(!run("build").success());
    ws.write("src/data.txt", "one\n");
    let other = run("again");
    other.assert_success();
    assert!(
        other
            .stderr
            .contains("'out/chunk.js' was left by a run that was not stored"),
        "{}",
        other.combined()
    );
    assert!(!ws.exists("out/chunk.js"));
    assert_eq!(hits(&run("build").stderr), 1);
}

#[test]
fn get_env_tracked_invalidates_untracked_does_not() {
    let ws = Workspace::new("bridge-verbs");
    let run = |t: &str, u: &str| {
        ws.vp(["run", "get-env"])
            .env("VERB_TRACKED", t)
            .env("VERB_UNTRACKED", u)
            .output()
    };
    run("a", "x").assert_success();
    let same = run("a", "y");
    assert_eq!(
        hits(&same.stderr),
        1,
        "untracked change must hit:\n{}",
        same.combined()
    );
    let changed = run("b", "y");
    assert!(
        changed.stderr.contains("env 'VERB_TRACKED' changed"),
        "{}",
        changed.stderr
    );
    assert!(ws.read("dist/get-env.txt").contains('b'));
}

#[test]
fn get_envs_glob_and_prefix_invalidate_on_added_removed_changed() {
    let ws = Workspace::new("bridge-verbs");
    let run = |vars: &[(&str, &str)]| {
        let mut r = ws.vp(["run", "get-envs"]);
        for (k, v) in vars {
            r = r.env(k, v);
        }
        r.output()
    };
    run(&[("VERB_GLOB_A", "1"), ("VERB_PREFIX_X", "1")]).assert_success();
    let unrelated = run(&[
        ("VERB_GLOB_A", "1"),
        ("VERB_PREFIX_X", "1"),
        ("UNRELATED", "2"),
    ]);
    assert_eq!(hits(&unrelated.stderr), 1, "{}", unrelated.combined());
    let added = run(&[
        ("VERB_GLOB_A", "1"),
        ("VERB_GLOB_B", "2"),
        ("VERB_PREFIX_X", "1"),
    ]);
    assert_eq!(misses(&added.stderr), 1, "{}", added.combined());
    let changed = run(&[
        ("VERB_GLOB_A", "1"),
        ("VERB_GLOB_B", "2"),
        ("VERB_PREFIX_X", "9"),
    ]);
    assert_eq!(misses(&changed.stderr), 1, "{}", changed.combined());
    let removed = run(&[("VERB_GLOB_B", "2"), ("VERB_PREFIX_X", "9")]);
    assert_eq!(misses(&removed.stderr), 1, "{}", removed.combined());
    assert!(!ws.read("dist/get-envs.json").contains("VERB_GLOB_A"));
}

#[test]
fn disable_cache_forces_execution() {
    let ws = Workspace::new("bridge-verbs");
    ws.vp(["run", "disable-cache"]).output().assert_success();
    let out = ws.vp(["run", "disable-cache"]).output();
    out.assert_success();
    assert_eq!(hits(&out.stderr), 0, "{}", out.combined());
    assert!(
        out.stderr.contains("asked not to cache this run"),
        "{}",
        out.stderr
    );
}

#[test]
fn file_edited_during_the_run_never_gives_a_false_hit() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "slow": { "command": "node slow.js" } } }"#,
    );
    ws.write(
        "slow.js",
        "const fs = require('fs');\n\
         const text = fs.readFileSync('src/data.txt', 'utf8');\n\
         fs.writeFileSync('started', '');\n\
         setTimeout(() => { fs.mkdirSync('dist', { recursive: true }); fs.writeFileSync('dist/slow.txt', text); }, 1500);\n",
    );
    let vp = ws.vp(["run", "slow"]);
    let handle = std::thread::spawn(move || vp.output());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ws.exists("started") {
        assert!(
            std::time::Instant::now() < deadline,
            "the task never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    ws.write("src/data.txt", "edited while the task ran\n");
    let first = handle.join().expect("the vp thread panicked");
    first.assert_success();
    assert!(first.stderr.contains("not cached"), "{}", first.combined());
    let second = ws.vp(["run", "slow"]).output();
    second.assert_success();
    assert_eq!(
        hits(&second.stderr),
        0,
        "false hit after an edit during the run:\n{}",
        second.combined()
    );
    assert_eq!(ws.read("dist/slow.txt"), "edited while the task ran\n");
}

#[test]
fn miss_reasons_for_env_args_and_added_files() {
    let ws = Workspace::new("bridge-verbs");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "list": { "command": "node list.js", "env": ["LIST_MODE"] } } }"#,
    );
    ws.write(
        "list.js",
        "const fs = require('fs');\n\
         const names = fs.readdirSync('src').sort();\n\
         fs.mkdirSync('dist', { recursive: true });\n\
         fs.writeFileSync('dist/list.txt', names.join('\\n') + process.argv.slice(2).join(' ') + (process.env.LIST_MODE ?? ''));\n",
    );
    ws.vp(["run", "list"]).output().assert_success();
    ws.write("src/new.txt", "new\n");
    let added = ws.vp(["run", "list"]).output();
    assert!(
        added.stderr.contains("'new.txt' added in 'src'"),
        "{}",
        added.stderr
    );
    let env = ws.vp(["run", "list"]).env("LIST_MODE", "fast").output();
    assert!(
        env.stderr.contains("env 'LIST_MODE' added"),
        "{}",
        env.stderr
    );
    let args = ws
        .vp(["run", "list", "--", "--flag"])
        .env("LIST_MODE", "fast")
        .output();
    assert!(args.stderr.contains("args changed"), "{}", args.stderr);
    ws.remove("src/new.txt");
    let removed = ws
        .vp(["run", "list", "--", "--flag"])
        .env("LIST_MODE", "fast")
        .output();
    assert!(
        removed.stderr.contains("'new.txt' removed from 'src'"),
        "{}",
        removed.stderr
    );
}

#[test]
fn no_cache_flag_runs_without_the_cache() {
    let ws = Workspace::new("bridge-verbs");
    ws.vp(["run", "ignore-input"]).output().assert_success();
    let out = ws.vp(["run", "ignore-input", "--no-cache"]).output();
    out.assert_success();
    assert!(out.stderr.contains("⊘ cache disabled"), "{}", out.stderr);
}
