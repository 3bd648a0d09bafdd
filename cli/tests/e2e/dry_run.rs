//! `--dry-run` and `--json` on the example workspace: the plan before any
//! run (every command a miss, nothing written), after a run (every command
//! a hit), after an edit (the edited task misses with the path, what comes
//! after it is uncertain), its JSON in execution order, and the last run's
//! JSON.

use serde_json::Value;

use crate::harness::Workspace;

const ORDER: [&str; 3] = [
    "@example/utils#build",
    "@example/app#build",
    "@example/site#build",
];

fn plan(ws: &Workspace) -> Value {
    let out = ws
        .vp(["run", "-r", "build", "--dry-run", "--json"])
        .output();
    out.assert_success();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("the plan is not JSON ({e}):\n{}", out.combined()))
}

fn ids(doc: &Value) -> Vec<String> {
    doc["tasks"]
        .as_array()
        .expect("a task list")
        .iter()
        .map(|t| t["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn statuses(doc: &Value) -> Vec<String> {
    doc["tasks"]
        .as_array()
        .expect("a task list")
        .iter()
        .map(|t| t["cache"]["status"].as_str().expect("a status").to_owned())
        .collect()
}

#[test]
fn a_dry_run_predicts_without_running_or_writing() {
    let ws = Workspace::new("example");
    ws.remove("node_modules/.cache");
    let dists: Vec<bool> = ["utils", "app", "site"]
        .iter()
        .map(|p| ws.exists(format!("packages/{p}/dist")))
        .collect();

    // Before any run: all miss, nothing executed, no cache directory.
    let first = ws.vp(["run", "-r", "build", "--dry-run"]).output();
    first.assert_success();
    assert_eq!(
        first
            .stdout
            .matches("○ would miss: no previous run")
            .count(),
        3,
        "{}",
        first.combined()
    );
    assert!(
        !ws.exists("node_modules/.cache"),
        "a dry run created the cache dir"
    );
    let doc = plan(&ws);
    assert_eq!(doc["version"], 1);
    assert_eq!(ids(&doc), ORDER);
    assert_eq!(statuses(&doc), ["miss", "miss", "miss"]);
    assert_eq!(doc["tasks"][1]["dependsOn"][0], ORDER[0]);
    assert!(!ws.exists("node_modules/.cache"));
    let after: Vec<bool> = ["utils", "app", "site"]
        .iter()
        .map(|p| ws.exists(format!("packages/{p}/dist")))
        .collect();
    assert_eq!(after, dists, "a dry run ran a build");

    // After a run: all would hit, and the store is left as it was.
    ws.vp(["run", "-r", "build"]).output().assert_success();
    let last_json = ws.read("node_modules/.cache/vp/last-run.json");
    let hit = ws.vp(["run", "-r", "build", "--dry-run"]).output();
    hit.assert_success();
    assert_eq!(
        hit.stdout.matches("◉ would hit").count(),
        3,
        "{}",
        hit.combined()
    );
    assert_eq!(statuses(&plan(&ws)), ["hit", "hit", "hit"]);
    assert_eq!(
        ws.read("node_modules/.cache/vp/last-run.json"),
        last_json,
        "a dry run rewrote last-run.json"
    );

    // After an edit: the edited task would miss and names the file; what
    // comes after it might read its outputs.
    ws.edit("packages/utils/src/math.js", |s| {
        format!("{s}\n// edited\n")
    });
    let edited = ws.vp(["run", "-r", "build", "--dry-run"]).output();
    edited.assert_success();
    assert!(
        edited
            .stdout
            .contains("~/packages/utils$ node build.js ○ would miss: 'src/math.js' modified"),
        "{}",
        edited.combined()
    );
    assert!(
        edited.stdout.contains(
            "~/packages/app$ node build.js ? would hit unless @example/utils#build changes its outputs"
        ),
        "{}",
        edited.combined()
    );
    let doc = plan(&ws);
    assert_eq!(ids(&doc), ORDER);
    assert_eq!(statuses(&doc), ["miss", "unknown", "unknown"]);
    let reason = &doc["tasks"][0]["cache"]["reasons"][0];
    assert_eq!(reason["kind"], "modified");
    assert_eq!(reason["path"], "packages/utils/src/math.js");
    assert_eq!(doc["tasks"][1]["cache"]["reasons"][0]["kind"], "runsFirst");
}

#[test]
fn last_details_json_describes_the_last_run() {
    let ws = Workspace::new("example");
    ws.remove("node_modules/.cache");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    ws.vp(["run", "-r", "build"]).output().assert_success();
    let out = ws.vp(["run", "--last-details", "--json"]).output();
    out.assert_success();
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.combined()));
    assert_eq!(doc["version"], 1);
    assert_eq!(ids(&doc), ORDER);
    assert_eq!(statuses(&doc), ["hit", "hit", "hit"]);
    for t in doc["tasks"].as_array().expect("tasks") {
        assert_eq!(t["outcome"], "succeeded", "{t}");
        assert_eq!(t["exitCode"], 0, "{t}");
        assert!(t["durationMs"].is_u64(), "{t}");
        assert_eq!(t["commands"][0]["command"], "node build.js", "{t}");
    }
    let totals = &doc["totals"];
    assert_eq!(totals["tasks"], 3);
    assert_eq!(totals["cacheHits"], 3);
    assert_eq!(totals["cachedCommands"], 3);
    assert_eq!(totals["exitCode"], 0);
}

/// A dependency's deleted outputs, which its hit would restore first, do
/// not make the tasks after it a certain miss.
#[test]
fn deleted_outputs_of_a_hit_are_not_a_certain_miss() {
    let ws = Workspace::new("example");
    ws.remove("node_modules/.cache");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    ws.remove("packages/utils/dist");
    let doc = plan(&ws);
    assert_eq!(statuses(&doc), ["hit", "unknown", "unknown"]);
    assert_eq!(
        doc["tasks"][1]["cache"]["reasons"][0]["kind"],
        "writtenFirst"
    );
    assert_eq!(doc["tasks"][1]["cache"]["reasons"][0]["task"], ORDER[0]);
    // And indeed: the real run hits everything.
    let run = ws.vp(["run", "-r", "build"]).output();
    run.assert_success();
    assert!(run.stderr.contains("3/3 cache hit"), "{}", run.combined());
}

/// Probe (a Turborepo-shaped workspace): a dependency that would hit an older entry restores
/// that entry's outputs, which the tasks after it read. The dry run took such a hit for one that
/// changes nothing and said "would hit" for a task that then missed. It is unknown now.
#[test]
fn a_hit_that_restores_other_outputs_makes_what_follows_unknown() {
    let ws = Workspace::new("example");
    ws.remove("node_modules/.cache");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    let math = ws.read("packages/utils/src/math.js");
    ws.write(
        "packages/utils/src/math.js",
        math.replace("total + n", "n + total"),
    );
    ws.vp(["run", "-r", "build"]).output().assert_success();
    ws.edit("packages/app/src/pages.txt", |s| format!("{s}Contact\n"));
    ws.vp(["run", "-r", "build"]).output().assert_success();
    // Back to the first utils: its hit restores the first build's dist.
    ws.write("packages/utils/src/math.js", &math);
    let doc = plan(&ws);
    assert_eq!(statuses(&doc)[..2], ["hit", "unknown"], "{doc:#}");
    assert_eq!(doc["tasks"][1]["cache"]["reasons"][0]["kind"], "runsFirst");
    // And indeed: app's inputs change under it, and it runs.
    let run = ws.vp(["run", "-r", "build"]).output();
    run.assert_success();
    assert!(
        run.stderr
            .contains("~/packages/app$ node build.js ○ cache miss"),
        "{}",
        run.combined()
    );
}

/// While another vp holds the cache, a dry run does not wait for it, and reads it as a real
/// run does: what hits is `hit`. (It said `unknown` for every command while a real run waited
/// for the lock; a real run now serves hits from a store another vp holds.)
#[test]
fn a_held_cache_is_read_without_waiting() {
    use std::time::{Duration, Instant};

    use crate::harness::wait_until;

    let ws = Workspace::new("example");
    ws.remove("node_modules/.cache");
    ws.vp(["run", "-r", "build"]).output().assert_success();
    ws.write(
        "packages/utils/vite-task.json",
        r#"{ "tasks": { "build": { "command": "node build.js" },
             "slow": { "command": "node -e \"setTimeout(() => {}, 20000)\"" } } }"#,
    );
    let holder = ws.vp(["run", "@example/utils#slow"]).spawn();
    let pid_file = ws.path("node_modules/.cache/vp/db/vp.pid");
    let pid = holder.pid().to_string();
    assert!(
        wait_until(Instant::now() + Duration::from_secs(10), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid)
        }),
        "the slow run never took the cache"
    );
    let started = Instant::now();
    let doc = plan(&ws);
    let took = started.elapsed();
    holder.signal(crate::harness::Signal::SIGTERM);
    let _ = holder.wait();
    assert!(took < Duration::from_secs(5), "the dry run waited {took:?}");
    assert_eq!(statuses(&doc), ["hit", "hit", "hit"], "{doc}");
}

/// `vp build --dry-run` plans the project's own `vite build` the same way.
#[test]
fn vp_build_dry_run_plans_vite_build() {
    use crate::harness::NodeModules;

    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.remove("dist");
    let cache_dir = ws.path("vp-cache");
    let dir = cache_dir.to_str().expect("a UTF-8 temp path");
    let before = ws.vp(["build", "--dry-run", "--cache-dir", dir]).output();
    before.assert_success();
    assert!(
        before
            .stdout
            .contains("$ vp build ○ would miss: no previous run"),
        "{}",
        before.combined()
    );
    assert!(!ws.exists("dist") && !cache_dir.exists(), "a dry run built");
    ws.vp(["build", "--cache-dir", dir])
        .output()
        .assert_success();
    let out = ws
        .vp(["build", "--dry-run", "--json", "--cache-dir", dir])
        .output();
    out.assert_success();
    let doc: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.combined()));
    assert_eq!(doc["tasks"][0]["task"], "vp build", "{doc}");
    assert_eq!(doc["tasks"][0]["command"], "vp build", "{doc}");
    assert_eq!(statuses(&doc), ["hit"]);
}
