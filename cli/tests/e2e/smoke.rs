//! Smoke tests: the binary starts, and every fixture does what the scenario tests will rely on
//! when run with plain Node (no vp): builds are deterministic, dependency order matters, the
//! bridge-verb scripts fall back cleanly outside vp, and real Vite 8 and 7 build the apps with
//! linked and with copied `node_modules`.

use crate::harness::{Entry, NodeModules, Run, Workspace, assert_same_tree, normalize, vp_bin};

const EXAMPLE_PACKAGES: [&str; 3] = ["utils", "app", "site"];

#[test]
fn vp_reports_its_version() {
    let ws = Workspace::new("example");
    let out = ws.vp(["--version"]).output();
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        format!("vp {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(vp_bin().is_file());
}

/// Builds the example's packages with plain `node build.js`, dependencies first.
fn build_example(ws: &Workspace) {
    for pkg in EXAMPLE_PACKAGES {
        ws.node(["build.js"])
            .cwd(format!("packages/{pkg}"))
            .output()
            .assert_success();
    }
}

#[test]
fn example_builds_in_dependency_order() {
    let ws = Workspace::new("example");
    build_example(&ws);
    assert_eq!(
        ws.take_executions(),
        [
            "@example/utils#build",
            "@example/app#build",
            "@example/site#build"
        ]
    );
    assert_eq!(ws.tree("packages/utils/dist").files().count(), 1);
    let report = ws.read("packages/app/dist/report.txt");
    assert!(report.starts_with("Hello from @example/app\n"), "{report}");
    assert!(report.contains("/task-graph  Task graph"), "{report}");
    assert!(report.contains("sum 29, mean 7.25"), "{report}");
    let html = ws.read("packages/site/dist/index.html");
    assert!(
        html.contains(r#"<li><a href="/caching-rules">Caching rules</a></li>"#),
        "{html}"
    );

    let app = ws.node(["dist/app.js"]).cwd("packages/app").output();
    app.assert_success();
    assert_eq!(
        app.stdout,
        "Hello: 3 routes\n/getting-started\n/task-graph\n/caching-rules\n"
    );
}

#[test]
fn example_build_order_is_a_real_dependency() {
    let ws = Workspace::new("example");
    let out = ws.node(["build.js"]).cwd("packages/app").output();
    out.assert_code(1);
    let text = normalize(&out.stderr, ws.root());
    assert!(
        text.contains("<root>/packages/utils/dist/index.js is missing: build @example/utils first"),
        "{out}"
    );
    let out = ws.node(["build.js"]).cwd("packages/site").output();
    out.assert_code(1)
        .assert_stderr_contains("build @example/app first");
}

#[test]
fn example_builds_are_deterministic_and_depend_on_inputs() {
    let (a, b) = (Workspace::new("example"), Workspace::new("example"));
    build_example(&a);
    build_example(&b);
    for pkg in EXAMPLE_PACKAGES {
        let dist = format!("packages/{pkg}/dist");
        assert_same_tree(&a.tree(&dist), &b.tree(&dist));
    }
    // A changed utils source and a changed GREETING both reach the outputs: a cache that
    // ignored either would serve stale files.
    b.edit("packages/utils/src/strings.js", |s| s.replace("'-'", "'_'"));
    for pkg in EXAMPLE_PACKAGES {
        b.node(["build.js"])
            .cwd(format!("packages/{pkg}"))
            .env("GREETING", "Hi")
            .output()
            .assert_success();
    }
    let report = b.read("packages/app/dist/report.txt");
    assert!(
        report.starts_with("Hi from @example/app\n") && report.contains("/task_graph"),
        "{report}"
    );
    assert!(
        b.read("packages/site/dist/index.html")
            .contains("/getting_started")
    );
}

#[test]
fn example_test_and_lint_tasks_check_something() {
    let ws = Workspace::new("example");
    build_example(&ws);
    ws.node(["test.js"])
        .cwd("packages/utils")
        .output()
        .assert_success()
        .assert_stdout_contains("5 assertions passed");
    ws.node(["lint.js"])
        .cwd("packages/utils")
        .output()
        .assert_success();

    ws.edit("packages/utils/src/math.js", |s| {
        s.replacen("return", "var x = 1; return", 1)
    });
    let out = ws.node(["lint.js"]).cwd("packages/utils").output();
    out.assert_code(1)
        .assert_stderr_contains("src/math.js:2: use let or const instead of var");

    ws.edit("packages/utils/src/math.js", |s| {
        s.replace("total + n", "total - n")
    });
    ws.node(["build.js"])
        .cwd("packages/utils")
        .output()
        .assert_success();
    let out = ws.node(["test.js"]).cwd("packages/utils").output();
    out.assert_code(1).assert_stderr_contains("AssertionError");
}

#[test]
fn bridge_verb_scripts_fall_back_outside_vp() {
    let ws = Workspace::new("bridge-verbs");
    let tasks = [
        "ignore-input",
        "ignore-output",
        "ignore-output",
        "get-env",
        "get-envs",
        "disable-cache",
    ];
    for task in tasks {
        ws.node([format!("{task}.js")])
            .env("VERB_TRACKED", "t1")
            .env("VERB_UNTRACKED", "u1")
            .env("VERB_GLOB_B", "gb")
            .env("VERB_GLOB_A", "ga")
            .env("VERB_GLOBAL", "not-a-match")
            .env("VERB_PREFIX_X", "px")
            .output()
            .assert_success()
            .assert_stdout_contains("wrote dist/");
    }
    assert_eq!(ws.take_executions(), tasks);
    let data = "data: the tracked input of every verb task\n";
    assert_eq!(ws.read("dist/ignore-input.txt"), data);
    assert_eq!(ws.read("dist/ignore-output.txt"), data);
    assert_eq!(ws.read("dist/disable-cache.txt"), data);
    assert_eq!(ws.read(".tool-cache/state.json"), "{\"runs\":2}\n");
    assert_eq!(
        ws.read("dist/get-env.txt"),
        "VERB_TRACKED=t1\nVERB_UNTRACKED=u1\n"
    );
    let envs: serde_json::Value =
        serde_json::from_str(&ws.read("dist/get-envs.json")).expect("get-envs.json is JSON");
    assert_eq!(
        envs,
        serde_json::json!({ "glob": { "VERB_GLOB_A": "ga", "VERB_GLOB_B": "gb" }, "prefix": { "VERB_PREFIX_X": "px" } })
    );
}

#[test]
fn bridge_verb_scripts_fail_loudly_on_a_broken_client() {
    let ws = Workspace::new("bridge-verbs");
    let missing = ws.path("no-such-addon.node");
    let out = ws
        .node(["get-env.js"])
        .env("VP_RUN_NODE_CLIENT_PATH", &missing)
        .output();
    out.assert_code(1)
        .assert_stderr_contains("no-such-addon.node");
    assert!(!ws.exists("dist/get-env.txt"));
}

#[test]
fn empties_dist_replaces_every_old_output() {
    let ws = Workspace::new("empties-dist");
    ws.node(["tool.js"])
        .output()
        .assert_success()
        .assert_stdout_contains("removed 0 old files");
    let first = ws.tree("dist");
    assert_eq!(
        first.get("home.html"),
        Some(&Entry::Symlink {
            target: "index.html".into()
        })
    );
    assert!(
        matches!(first.get("bin/serve.sh"), Some(Entry::File { mode, .. }) if mode & 0o111 != 0)
    );

    ws.write("dist/stale.txt", "from an older build");
    ws.write("dist/old/deep/file.txt", "from an older build");
    ws.node(["tool.js"])
        .output()
        .assert_success()
        .assert_stdout_contains("removed 8 old files");
    assert_same_tree(&first, &ws.tree("dist"));
    assert_eq!(ws.take_executions(), ["build", "build"]);
}

/// `vite build` with the app's own Vite (no vp), as `vp build` will start it.
fn vite_build(ws: &Workspace, args: &[&str]) -> Run {
    ws.node(["node_modules/vite/bin/vite.js", "build"])
        .args(args)
}

fn check_vite_app(fixture: &str, vite_major: &str) {
    let linked = Workspace::with_node_modules(fixture, NodeModules::Link);
    let copied = Workspace::with_node_modules(fixture, NodeModules::Copy);
    for ws in [&linked, &copied] {
        let out = vite_build(ws, &[]).output();
        out.assert_success()
            .assert_stdout_contains(&format!("vite v{vite_major}."));
    }
    // Where node_modules lives must not change a single output byte.
    let dist = linked.tree("dist");
    assert_same_tree(&dist, &copied.tree("dist"));

    let files: Vec<String> = dist.files().map(|p| p.display().to_string()).collect();
    for expected in ["index.html", "favicon.svg", "robots.txt"] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} missing from {files:?}"
        );
    }
    let count = |prefix: &str, ext: &str| {
        files
            .iter()
            .filter(|f| f.starts_with(prefix) && f.ends_with(ext))
            .count()
    };
    assert_eq!(count("assets/index-", ".js"), 1, "{files:?}");
    assert_eq!(
        count("assets/details-", ".js"),
        1,
        "dynamic import chunk: {files:?}"
    );
    assert_eq!(count("assets/index-", ".css"), 1, "{files:?}");
    assert_eq!(count("assets/logo-", ".svg"), 1, "emitted asset: {files:?}");

    let bundle = |ws: &Workspace| -> String {
        let tree = ws.tree("dist");
        let main = tree
            .files()
            .find(|p| {
                p.starts_with("assets")
                    && p.to_string_lossy().ends_with(".js")
                    && p.to_string_lossy().contains("index-")
            })
            .map(|p| p.to_path_buf())
            .expect("main chunk");
        ws.read(std::path::Path::new("dist").join(main))
    };
    let js = bundle(&linked);
    assert!(
        js.contains("vp fixture app"),
        ".env value missing from the bundle"
    );
    assert!(js.contains("http://localhost:3000") && !js.contains("never-in-the-bundle"));
    assert!(
        !linked.exists("node_modules/.vite-temp")
            || linked.tree("node_modules/.vite-temp").is_empty()
    );

    // Env and mode reach the bundle: the inputs a cache must key on.
    vite_build(&linked, &["--mode", "staging"])
        .env("VITE_API_URL", "https://api.example")
        .output()
        .assert_success();
    let js = bundle(&linked);
    assert!(
        js.contains("vp fixture app (staging)"),
        "--mode staging did not load .env.staging"
    );
    assert!(js.contains("https://api.example") && !js.contains("http://localhost:3000"));
}

#[test]
fn vite8_app_builds_with_linked_and_copied_node_modules() {
    check_vite_app("vite-app", "8");
}

#[test]
fn vite7_app_builds_with_linked_and_copied_node_modules() {
    check_vite_app("vite7-app", "7");
}
