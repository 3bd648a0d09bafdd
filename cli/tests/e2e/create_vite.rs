//! The `create-vite` templates as generated (`fixtures/vue-ts`, `fixtures/vanilla-ts`), each with
//! its own `build` script of two items, a type-checker then `vite build`: cached out of the box
//! with `--cache`. Every scenario of the real-projects issue on each: from the third build on,
//! all hits (the checker lists the package root, so the `dist/` that first build made costs it
//! one run more: see `first_runs`), `rm -rf dist` restores, an edit misses only the items that read
//! the file and ships the new content, and the run after an edit is all hits again. (`react-ts` is
//! in `real_projects`.)

use crate::harness::{NodeModules, Output, Workspace, assert_same_tree};

const HIT: &str = "◉ cache hit, replaying";
const MISS: &str = "○ cache miss";

/// One template and the files its scenario edits.
struct Template {
    fixture: &'static str,
    /// The first item of its `build` script, as its header shows it.
    checker: &'static str,
    /// A source both items read (the type-checker and the bundle), with an edit of it.
    source: Edit,
    /// A file only `vite build` reads (`index.html`: `tsc` lists the package root but never
    /// opens it), with an edit of it.
    page: Edit,
}

struct Edit {
    path: &'static str,
    from: &'static str,
    to: &'static str,
}

/// `vp run build --cache`, which must succeed and store (or hit) every item.
fn build(ws: &Workspace) -> Output {
    let out = ws.vp(["run", "build", "--cache"]).output();
    out.assert_success();
    assert!(!out.stderr.contains("not cached"), "{out}");
    out
}

/// The cache status on the header of the item that runs `command`.
fn status<'a>(out: &'a Output, command: &str) -> &'a str {
    let prefix = format!("$ {command} ");
    out.stderr
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no header for `{command}`\n{out}"))
}

#[track_caller]
fn assert_items(out: &Output, checker: &str, checker_hits: bool, vite_hits: bool) {
    for (command, hits) in [(checker, checker_hits), ("vite build", vite_hits)] {
        let expected = if hits { HIT } else { MISS };
        assert!(
            status(out, command).starts_with(expected),
            "`{command}` should be a {}\n{out}",
            if hits { "hit" } else { "miss" }
        );
    }
}

/// Both items replayed from the cache (the summary line, `2/2 cache hit`, needs `-v`).
#[track_caller]
fn assert_all_hit(out: &Output, checker: &str, what: &str) {
    assert!(
        status(out, checker).starts_with(HIT) && status(out, "vite build").starts_with(HIT),
        "{what}:\n{out}"
    );
}

/// Everything `vite build` wrote to `dist/`, as one string (to look for a text in the bundle).
fn shipped(ws: &Workspace) -> String {
    ws.tree("dist")
        .files()
        .map(|f| std::fs::read_to_string(ws.path("dist").join(f)).unwrap_or_default())
        .collect()
}

/// The first two builds of a fresh checkout, which has no `dist/`. The checker lists the
/// package root: on the second build `dist/` is a name it never saw, made by `vite build`, and
/// what it would read there is unknown (a linter that does not ignore `dist/` reads it), so it
/// runs once more; `vite build` hits.
fn first_runs(ws: &Workspace, checker: &str) {
    let first = build(ws);
    assert_items(&first, checker, false, false);
    let second = build(ws);
    assert_items(&second, checker, false, true);
    assert!(
        status(&second, checker).contains("'dist' added in '.'"),
        "{second}"
    );
}

fn caches_across_edits(t: &Template) {
    let ws = Workspace::with_node_modules(t.fixture, NodeModules::Link);
    first_runs(&ws, t.checker);
    assert_all_hit(&build(&ws), t.checker, "the third run hits");

    let built = ws.tree("dist");
    ws.remove("dist");
    assert_all_hit(&build(&ws), t.checker, "rm -rf dist restores");
    assert_same_tree(&built, &ws.tree("dist"));

    ws.edit(t.page.path, |s| s.replace(t.page.from, t.page.to));
    let page = build(&ws);
    assert_items(&page, t.checker, true, false);
    assert!(shipped(&ws).contains(t.page.to), "dist has the new page");

    ws.edit(t.source.path, |s| s.replace(t.source.from, t.source.to));
    let edited = build(&ws);
    assert_items(&edited, t.checker, false, false);
    let bundle = shipped(&ws);
    assert!(
        bundle.contains(t.source.to) && !bundle.contains(t.source.from),
        "dist has the new text"
    );
    assert_all_hit(
        &build(&ws),
        t.checker,
        "the run after an edit is cached again",
    );
}

/// `vue-tsc -b && vite build` (TypeScript 6, vue-tsc 3, Vite 8.4).
#[test]
fn vue_ts_template_caches_both_items_across_edits() {
    caches_across_edits(&Template {
        fixture: "vue-ts",
        checker: "vue-tsc -b",
        source: Edit {
            path: "src/components/HelloWorld.vue",
            from: "Count is",
            to: "Clicks:",
        },
        page: Edit {
            path: "index.html",
            from: "<title>vue-ts</title>",
            to: "<title>Counting</title>",
        },
    });
}

/// Probe (create-vue): a type error makes `vue-tsc -b` fail after it rewrote its build info in
/// `node_modules/.tmp`, and the fix that reverts the source missed ("output
/// 'node_modules/.tmp/tsconfig.app.tsbuildinfo' holds what vp did not leave there"). What the
/// task's own failed run left in its state file, untouched since, is its own: the revert hits
/// both items.
#[test]
fn reverting_after_a_failed_type_check_hits() {
    let ws = Workspace::with_node_modules("vue-ts", NodeModules::Link);
    first_runs(&ws, "vue-tsc -b");
    let good = ws.read("src/main.ts");
    ws.write(
        "src/main.ts",
        format!("{good}export const broken: number = 'text'\n"),
    );
    let failed = ws.vp(["run", "build", "--cache"]).output();
    assert!(
        !failed.success(),
        "the type error fails the build\n{failed}"
    );
    ws.write("src/main.ts", &good);
    assert_all_hit(&build(&ws), "vue-tsc -b", "the revert hits");
}

/// `tsc && vite build` (TypeScript 7 without `-b`: `noEmit`, no build info; Vite 8.4).
#[test]
fn vanilla_ts_template_caches_both_items_across_edits() {
    caches_across_edits(&Template {
        fixture: "vanilla-ts",
        checker: "tsc",
        source: Edit {
            path: "src/counter.ts",
            from: "Count is",
            to: "Clicks:",
        },
        page: Edit {
            path: "index.html",
            from: "<title>vanilla-ts</title>",
            to: "<title>Counting</title>",
        },
    });
}
