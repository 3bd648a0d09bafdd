//! `eslint --cache` and `vitest run` on `fixtures/eslint-vitest` (ESLint 9 flat config, Vitest 4
//! on Vite 8.4): ESLint's `.eslintcache` is its own state, cached on every run and converging
//! when it was left by a run outside vp; `vitest run` is never stored, because Vite's dev server,
//! which Vitest starts, asks vp not to cache (docs/caching.md, "Tools that ask not to be cached").

use crate::harness::{NodeModules, Output, Workspace};

const HIT: &str = "◉ cache hit, replaying";
const MISS: &str = "○ cache miss";
/// What ESLint prints for the variable the scenarios add to `src/greet.js`.
const WARNING: &str = "'unused' is assigned a value but never used";

fn lint(ws: &Workspace) -> Output {
    let out = ws.vp(["run", "lint", "--cache"]).output();
    out.assert_success();
    out
}

#[track_caller]
fn assert_stored(out: &Output) {
    assert!(!out.stderr.contains("not cached"), "{out}");
}

#[track_caller]
fn assert_hit(out: &Output, what: &str) {
    assert!(out.stderr.contains(HIT), "{what}:\n{out}");
}

fn add_unused_variable(ws: &Workspace) {
    ws.edit("src/greet.js", |s| format!("{s}const unused = 1;\n"));
}

/// ESLint reads the `.eslintcache` it wrote last time and rewrites it: its own state, so every
/// run is stored. An edit misses and shows the new warning; the next run replays it.
#[test]
fn eslint_cache_is_cached_across_edits() {
    let ws = Workspace::with_node_modules("eslint-vitest", NodeModules::Link);
    let first = lint(&ws);
    assert!(first.stderr.contains(MISS), "{first}");
    assert_stored(&first);
    assert_hit(&lint(&ws), "the second run hits");
    assert!(ws.exists(".eslintcache"));

    ws.remove(".eslintcache");
    assert_hit(
        &lint(&ws),
        "the state file is an output: removing it restores it",
    );
    assert!(ws.exists(".eslintcache"));

    add_unused_variable(&ws);
    let edited = lint(&ws);
    assert!(
        edited.stderr.contains("'src/greet.js' modified"),
        "{edited}"
    );
    assert!(edited.stdout.contains(WARNING), "{edited}");
    assert_stored(&edited);
    let after = lint(&ws);
    assert_hit(&after, "the run after an edit hits");
    assert!(after.stdout.contains(WARNING), "the replay has the warning");

    // The config ignores `test/`: an edit there is no input of ESLint's.
    ws.edit("test/greet.test.js", |s| s.replace("greets", "says hello"));
    assert_hit(&lint(&ws), "ESLint does not read the tests");
}

/// An `.eslintcache` from `eslint --cache` run outside vp is not this task's: the first vp run
/// that rewrites it may not be stored, the next one is, and the one after that hits.
#[test]
fn eslint_cache_from_outside_vp_converges_after_one_run() {
    let ws = Workspace::with_node_modules("eslint-vitest", NodeModules::Link);
    ws.run(ws.path("node_modules/.bin/eslint"))
        .args(["--cache", "."])
        .output()
        .assert_success();
    assert!(ws.exists(".eslintcache"));
    add_unused_variable(&ws);
    let first = lint(&ws);
    assert!(first.stdout.contains(WARNING), "{first}");
    let second = lint(&ws);
    if !second.stderr.contains(HIT) {
        assert_stored(&second);
        assert_hit(&lint(&ws), "converged");
    }
}

/// `vitest run` works under vp and is never stored: Vitest starts Vite's dev server, and Vite's
/// `createServer` calls `disableCache()`. vp says so, runs it every time (no stale hit: an edit
/// that breaks a test fails the run), and Vitest keeps its results cache.
#[test]
fn vitest_run_is_not_cached_because_vite_asks() {
    let ws = Workspace::with_node_modules("eslint-vitest", NodeModules::Link);
    let asked = "not cached because node vitest";
    for _ in 0..2 {
        let out = ws.vp(["run", "test", "--cache"]).output();
        out.assert_success();
        assert!(out.stderr.contains(MISS), "{out}");
        assert!(out.stderr.contains(asked), "{out}");
        assert!(out.stderr.contains("asked not to cache this run"), "{out}");
        assert!(out.stdout.contains("3 passed"), "{out}");
    }
    let results = ws.tree("node_modules/.vite/vitest");
    assert!(
        results.files().any(|f| f.ends_with("results.json")),
        "Vitest wrote its results cache"
    );

    ws.edit("test/greet.test.js", |s| {
        s.replace("hello, vp", "goodbye, vp")
    });
    let failing = ws.vp(["run", "test", "--cache"]).output();
    assert!(
        !failing.success(),
        "the edited test runs and fails\n{failing}"
    );
    assert!(failing.stdout.contains("1 failed"), "{failing}");
}

/// `eslint --cache . && vitest run` is two items, each cached on its own: an edit of a test file
/// misses only Vitest's (ESLint ignores `test/`), which runs, is not stored, and fails.
#[test]
fn a_test_edit_misses_only_the_vitest_item_of_a_chain() {
    let ws = Workspace::with_node_modules("eslint-vitest", NodeModules::Link);
    let check = |ws: &Workspace| ws.vp(["run", "check", "--cache"]).output();
    check(&ws).assert_success();
    let second = check(&ws);
    second.assert_success();
    let header = |out: &Output, command: &str| {
        out.stderr
            .lines()
            .find(|l| l.starts_with(&format!("$ {command} ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no header for `{command}`\n{out}"))
    };
    assert!(
        header(&second, "eslint --cache .").contains(HIT),
        "{second}"
    );
    assert!(header(&second, "vitest run").contains(MISS), "{second}");

    ws.edit("test/greet.test.js", |s| {
        s.replace("hello, vp", "goodbye, vp")
    });
    let edited = check(&ws);
    assert!(!edited.success(), "{edited}");
    assert!(
        header(&edited, "eslint --cache .").contains(HIT),
        "{edited}"
    );
    assert!(edited.stdout.contains("1 failed"), "{edited}");
}
