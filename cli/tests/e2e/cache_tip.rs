//! The `--cache` tip on real projects: a `package.json` script runs uncached by default, so a
//! user of a template would never see a hit; vp ends such a run with one line suggesting
//! `--cache`, on a terminal, when nothing it saw rules caching out (docs/caching.md, "The
//! `--cache` tip"). The terminal is a pseudo-terminal from util-linux `script`.

use crate::harness::{NodeModules, Output, Workspace};

const TIP: &str = "vp: tip: scripts are not cached by default";

fn tips(text: &str) -> usize {
    text.matches(TIP).count()
}

#[track_caller]
fn on_terminal(ws: &Workspace, args: &str) -> Output {
    let out = ws.vp_on_terminal(args).output();
    out.assert_success();
    out
}

/// The react-ts template's `build` (`tsc -b && vite build`): the tip once on a terminal, never
/// with `--cache`, `--no-cache` or on a pipe; following it caches the build (the `.tsbuildinfo`
/// the uncached runs left is state from outside the cache: one run to converge).
#[test]
fn a_template_build_suggests_cache_once_and_following_it_caches() {
    let ws = Workspace::with_node_modules("react-ts", NodeModules::Link);
    let first = on_terminal(&ws, "run build");
    assert_eq!(tips(&first.stdout), 1, "{first}");

    let piped = ws.vp(["run", "build"]).output();
    piped.assert_success();
    assert_eq!(tips(&piped.combined()), 0, "not on a pipe:\n{piped}");
    let no_cache = on_terminal(&ws, "run build --no-cache");
    assert_eq!(
        tips(&no_cache.stdout),
        0,
        "not with --no-cache:\n{no_cache}"
    );

    let cached = on_terminal(&ws, "run build --cache");
    assert_eq!(tips(&cached.stdout), 0, "not with --cache:\n{cached}");
    let converging = ws.vp(["run", "build", "--cache"]).output();
    converging.assert_success();
    let after = ws.vp(["run", "build", "--cache", "-v"]).output();
    after.assert_success();
    assert!(
        after.stderr.contains("vp run: 2/2 cache hit"),
        "following the tip caches the build:\n{cached}\n{converging}\n{after}"
    );
}

/// No tip when caching is ruled out or was chosen: a tool that asks not to be cached (Vitest,
/// through Vite's dev server), `cache` set in the root vite-task.json, a vite-task.json task.
#[test]
fn no_tip_when_a_tool_objects_or_the_cache_is_configured() {
    let ws = Workspace::with_node_modules("eslint-vitest", NodeModules::Link);
    let lint = on_terminal(&ws, "run lint");
    assert_eq!(tips(&lint.stdout), 1, "{lint}");
    let test = on_terminal(&ws, "run test");
    assert_eq!(tips(&test.stdout), 0, "Vite asked not to cache:\n{test}");
    let check = on_terminal(&ws, "run check");
    assert_eq!(
        tips(&check.stdout),
        0,
        "one item of the chain objects:\n{check}"
    );

    ws.write("vite-task.json", r#"{ "cache": { "scripts": false } }"#);
    let chosen = on_terminal(&ws, "run lint");
    assert_eq!(tips(&chosen.stdout), 0, "the root chose:\n{chosen}");

    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "lint": { "cache": false } } }"#,
    );
    let task = on_terminal(&ws, "run lint");
    assert_eq!(tips(&task.stdout), 0, "a vite-task.json task:\n{task}");
}
