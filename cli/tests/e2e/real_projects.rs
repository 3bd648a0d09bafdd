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
