//! Real projects cache out of the box: tools that keep their own incremental state
//! (`tsc -b`'s `.tsbuildinfo`) are cached on every run, not only the first, and state that
//! existed before vp converges after one run.

use crate::harness::{NodeModules, Workspace};

fn hit(stderr: &str) -> bool {
    stderr.contains("◉ cache hit, replaying")
}

fn cached_build(ws: &Workspace) -> crate::harness::Output {
    let out = ws.vp(["run", "build", "--cache"]).output();
    out.assert_success();
    assert!(!out.stderr.contains("not cached"), "{}", out.combined());
    out
}

/// `tsc -b` reads the `.tsbuildinfo` it wrote last time and rewrites it: that is its own state,
/// not a modified input. Every run is stored, and an edit misses once and then hits again.
#[test]
fn tsc_b_is_cached_on_every_run_across_edits() {
    let ws = Workspace::with_node_modules("tsc-refs", NodeModules::Link);
    cached_build(&ws);
    assert!(hit(&cached_build(&ws).stderr), "second run hits");
    ws.remove("lib/dist");
    let restored = cached_build(&ws);
    assert!(
        hit(&restored.stderr),
        "rm -rf dist restores:\n{}",
        restored.combined()
    );
    assert!(ws.read("lib/dist/greet.js").contains("hello, "));
    ws.edit("lib/src/greet.ts", |s| s.replace("hello, ", "good day, "));
    let edited = cached_build(&ws);
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    assert!(ws.read("lib/dist/greet.js").contains("good day, "));
    let after = cached_build(&ws);
    assert!(
        hit(&after.stderr),
        "the run after an edit is cached again:\n{}",
        after.combined()
    );
    ws.edit("lib/src/greet.ts", |s| s.replace("good day, ", "hello, "));
    let reverted = cached_build(&ws);
    assert!(
        hit(&reverted.stderr),
        "back to the first sources: the first entry\n{}",
        reverted.combined()
    );
    assert!(
        ws.read("lib/dist/greet.js").contains("hello, "),
        "and its output ships"
    );
}

/// A `.tsbuildinfo` left by a `tsc -b` outside vp is not this task's: the first vp run that
/// rewrites it is not stored (vp cannot tell it from an input), the next one is.
#[test]
fn tsc_state_from_outside_vp_converges_after_one_run() {
    let ws = Workspace::with_node_modules("tsc-refs", NodeModules::Link);
    ws.run(ws.path("node_modules/.bin/tsc"))
        .arg("-b")
        .output()
        .assert_success();
    ws.edit("lib/src/greet.ts", |s| s.replace("hello, ", "good day, "));
    let first = ws.vp(["run", "build", "--cache"]).output();
    first.assert_success();
    assert!(
        first
            .stderr
            .contains("not cached because it modified its input"),
        "{}",
        first.combined()
    );
    ws.edit("lib/src/greet.ts", |s| {
        s.replace("good day, ", "good evening, ")
    });
    cached_build(&ws);
    assert!(hit(&cached_build(&ws).stderr));
}

/// Done-when of the real-projects issue, on the `create-vite` react-ts template as generated
/// (`tsc -b && vite build`, TypeScript 7): two runs give `2/2 cache hit`; an edit of
/// `src/App.tsx` misses both items and ships the new text; the next run is `2/2` again.
#[test]
fn react_ts_template_caches_both_items_across_an_edit() {
    let ws = Workspace::with_node_modules("react-ts", NodeModules::Link);
    let hits_of =
        |out: &crate::harness::Output| out.stderr.matches("◉ cache hit, replaying").count();
    let first = ws.vp(["run", "build", "--cache", "-v"]).output();
    first.assert_success();
    assert!(!first.stderr.contains("not cached"), "{}", first.combined());
    // `tsc -b` lists the package root, where the first build made `dist/`: it runs once more
    // (create_vite::first_runs), then both items hit.
    let second = ws.vp(["run", "build", "--cache", "-v"]).output();
    second.assert_success();
    assert!(
        second.stderr.contains("'dist' added in '.'")
            && second.stderr.contains("vp run: 1/2 cache hit"),
        "{}",
        second.combined()
    );
    let third = ws.vp(["run", "build", "--cache", "-v"]).output();
    third.assert_success();
    assert!(
        third.stderr.contains("vp run: 2/2 cache hit"),
        "{}",
        third.combined()
    );

    ws.edit("src/App.tsx", |s| s.replace("Count is", "Clicks:"));
    let edited = ws.vp(["run", "build", "--cache", "-v"]).output();
    edited.assert_success();
    assert_eq!(
        hits_of(&edited),
        0,
        "both items read App.tsx:\n{}",
        edited.combined()
    );
    assert!(
        !edited.stderr.contains("not cached"),
        "{}",
        edited.combined()
    );
    let shipped: String = ws
        .tree("dist")
        .files()
        .map(|f| std::fs::read_to_string(ws.path("dist").join(f)).unwrap_or_default())
        .collect();
    assert!(
        shipped.contains("Clicks:") && !shipped.contains("Count is"),
        "dist has the new text"
    );

    let after = ws.vp(["run", "build", "--cache", "-v"]).output();
    assert!(
        after.stderr.contains("vp run: 2/2 cache hit"),
        "{}",
        after.combined()
    );
    ws.remove("dist");
    let restored = ws.vp(["run", "build", "--cache", "-v"]).output();
    assert!(
        restored.stderr.contains("vp run: 2/2 cache hit"),
        "rm -rf dist restores:\n{}",
        restored.combined()
    );
}

/// `vp run build --cache` in the Next.js fixture, without Next.js's telemetry notice.
fn next_build(ws: &Workspace) -> crate::harness::Output {
    let out = ws
        .vp(["run", "build", "--cache"])
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .output();
    out.assert_success();
    assert!(!out.stderr.contains("not cached"), "{}", out.combined());
    out
}

/// The page Next.js prerendered, where the fixture's greeting ends up.
fn prerendered(ws: &Workspace) -> String {
    ws.read(".next/server/app/index.html")
}

/// Issue: Next.js 16 builds with Turbopack, which keeps a database in `.next/cache` whose files
/// every build reads, deletes and replaces: no `next build` was stored once that cache existed
/// ("it modified its input '.next/cache/turbopack/…/00000004.sst'"). The cache is now neither
/// input nor output (docs/caching.md, "Tools' caches"): every build is stored, an edit misses
/// once and ships, and removing the cache is no edit and is not restored by a hit.
/// (`NodeModules::Copy`: Turbopack refuses a `next` that resolves outside the project.)
#[test]
fn next_build_with_turbopack_is_cached_across_edits() {
    let ws = Workspace::with_node_modules("next-app", NodeModules::Copy);
    next_build(&ws);
    assert!(ws.exists(".next/cache"), "Turbopack made its cache");
    assert!(prerendered(&ws).contains("Hello from the next-app fixture, v1"));
    let again = next_build(&ws);
    assert!(hit(&again.stderr), "{}", again.combined());

    ws.edit("lib/greeting.js", |s| s.replace("Hello", "Good day"));
    let edited = next_build(&ws);
    assert!(!hit(&edited.stderr), "{}", edited.combined());
    assert!(prerendered(&ws).contains("Good day from the next-app fixture, v1"));
    let after = next_build(&ws);
    assert!(
        hit(&after.stderr),
        "stored after an edit:\n{}",
        after.combined()
    );

    ws.edit("app/page.js", |s| s.replace("'v1'", "'v2'"));
    next_build(&ws);
    assert!(prerendered(&ws).contains("Good day from the next-app fixture, v2"));

    ws.remove(".next/cache");
    ws.remove(".next/server");
    let restored = next_build(&ws);
    assert!(hit(&restored.stderr), "{}", restored.combined());
    assert!(prerendered(&ws).contains("Good day from the next-app fixture, v2"));
    assert!(
        !ws.exists(".next/cache"),
        "the cache is not archived, so a hit does not bring it back"
    );
}

/// Issue: webpack 5's persistent cache (`cache: { type: 'filesystem' }`, on by default in
/// Create React App 5, Docusaurus and Storybook's webpack builder) rewrites its `*.pack` files
/// in `node_modules/.cache/webpack` after an edit, so every other build was not stored ("it
/// modified its input 'node_modules/.cache/webpack/default-production/0.pack'").
/// `node_modules/.cache` is a tool's cache (docs/caching.md, "Tools' caches").
#[test]
fn webpack_with_its_filesystem_cache_is_cached_across_edits() {
    let ws = Workspace::with_node_modules("webpack-app", NodeModules::Link);
    cached_build(&ws);
    assert!(
        ws.exists("node_modules/.cache/webpack"),
        "webpack made its cache"
    );
    let mut previous = "v1";
    for version in ["v2", "v3", "v4"] {
        ws.edit("src/index.js", |s| {
            s.replace(
                &format!("greeting('{previous}')"),
                &format!("greeting('{version}')"),
            )
        });
        previous = version;
        let edited = cached_build(&ws);
        assert!(!hit(&edited.stderr), "{}", edited.combined());
        let after = cached_build(&ws);
        assert!(
            hit(&after.stderr),
            "stored after an edit:\n{}",
            after.combined()
        );
        let shipped = ws.read("dist/main.js");
        assert!(shipped.contains(version), "{shipped}");
    }
    ws.remove("node_modules/.cache/webpack");
    ws.remove("dist");
    let restored = cached_build(&ws);
    assert!(hit(&restored.stderr), "{}", restored.combined());
    assert!(ws.read("dist/main.js").contains("v4"));
    assert!(
        !ws.exists("node_modules/.cache/webpack"),
        "the cache is not archived, so a hit does not bring it back"
    );
}
