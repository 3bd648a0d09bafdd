//! `vp build` on a real Vite app from npm: zero configuration, correct cache.

use crate::harness::{NodeModules, Workspace, assert_same_tree};

fn hit(stderr: &str) -> bool {
    stderr.contains("◉ cache hit, replaying")
}

fn dist_text(ws: &Workspace) -> String {
    let mut all = String::new();
    for f in ws.tree("dist").files() {
        all.push_str(&std::fs::read_to_string(ws.path("dist").join(f)).unwrap_or_default());
    }
    all
}

#[test]
fn second_build_hits_and_rm_dist_restores() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    let first = ws.vp(["build"]).output();
    first.assert_success();
    assert!(
        first.stderr.contains("○ cache miss"),
        "{}",
        first.combined()
    );
    assert!(!first.stderr.contains("not cached"), "{}", first.combined());
    let built = ws.tree("dist");
    let second = ws.vp(["build"]).output();
    second.assert_success();
    assert!(hit(&second.stderr), "{}", second.combined());
    assert_eq!(second.stdout, first.stdout);
    ws.remove("dist");
    let restored = ws.vp(["build"]).output();
    assert!(hit(&restored.stderr), "{}", restored.combined());
    assert_same_tree(&built, &ws.tree("dist"));
}

#[test]
fn source_env_file_config_and_mode_changes_miss() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.vp(["build"]).output().assert_success();
    ws.edit("src/format.js", |s| {
        format!("{s}\nexport const edited = 1;\n")
    });
    let out = ws.vp(["build"]).output();
    assert!(
        out.stderr.contains("'src/format.js' modified"),
        "{}",
        out.stderr
    );
    ws.edit(".env", |s| format!("{s}VITE_EXTRA=1\n"));
    let out = ws.vp(["build"]).output();
    assert!(out.stderr.contains("'.env' modified"), "{}", out.stderr);
    ws.edit("vite.config.js", |s| format!("{s}\n// touched\n"));
    let out = ws.vp(["build"]).output();
    assert!(
        out.stderr.contains("'vite.config.js' modified"),
        "{}",
        out.stderr
    );
    let out = ws.vp(["build", "--mode", "staging"]).output();
    assert!(out.stderr.contains("args changed"), "{}", out.stderr);
}

#[test]
fn vite_env_change_misses_and_ships_the_new_value() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.vp(["build"])
        .env("VITE_API_URL", "https://a.example")
        .output()
        .assert_success();
    assert!(dist_text(&ws).contains("https://a.example"));
    let unrelated = ws
        .vp(["build"])
        .env("VITE_API_URL", "https://a.example")
        .env("SOMETHING_ELSE", "1")
        .output();
    assert!(hit(&unrelated.stderr), "{}", unrelated.combined());
    let out = ws
        .vp(["build"])
        .env("VITE_API_URL", "https://b.example")
        .output();
    out.assert_success();
    assert!(
        out.stderr.contains("env 'VITE_API_URL' changed"),
        "{}",
        out.stderr
    );
    let text = dist_text(&ws);
    assert!(text.contains("https://b.example") && !text.contains("https://a.example"));
}

#[test]
fn node_env_reaches_vite_and_is_tracked() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.vp(["build"])
        .env("NODE_ENV", "production")
        .output()
        .assert_success();
    let out = ws.vp(["build"]).env("NODE_ENV", "development").output();
    out.assert_success();
    assert!(
        out.stderr.contains("env 'NODE_ENV' changed"),
        "{}",
        out.stderr
    );
}

#[test]
fn vite_private_dirs_are_never_inputs_or_outputs() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Copy);
    ws.vp(["build"]).output().assert_success();
    let out = ws.vp(["build", "-v"]).output();
    assert!(hit(&out.stderr), "{}", out.combined());
    // A leftover bundled-config temp file or dep cache must not invalidate.
    ws.write("node_modules/.vite-temp/leftover.mjs", "export {}\n");
    ws.write("node_modules/.vite/deps/_metadata.json", "{}\n");
    let out = ws.vp(["build"]).output();
    assert!(hit(&out.stderr), "{}", out.combined());
}

#[test]
fn vite7_without_a_bridge_client_is_cached_by_tracing() {
    let ws = Workspace::with_node_modules("vite7-app", NodeModules::Link);
    ws.vp(["build"]).output().assert_success();
    let built = ws.tree("dist");
    ws.remove("dist");
    let out = ws.vp(["build"]).output();
    assert!(hit(&out.stderr), "{}", out.combined());
    assert_same_tree(&built, &ws.tree("dist"));
}

#[test]
fn helpful_error_without_vite() {
    let ws = Workspace::new("example");
    let out = ws.vp(["build"]).output();
    out.assert_code(1);
    assert!(
        out.stderr.contains("`vite` is not installed"),
        "{}",
        out.stderr
    );
}

#[test]
fn env_prefix_in_the_config_is_tracked_with_zero_vp_config() {
    let ws = Workspace::with_node_modules("vite-app", NodeModules::Link);
    ws.edit("vite.config.js", |s| {
        s.replace(
            "export default defineConfig({",
            "export default defineConfig({\n  envPrefix: 'APP_',",
        )
    });
    ws.edit("src/main.js", |s| {
        format!("{s}\nconsole.log(import.meta.env.APP_FLAVOR);\n")
    });
    ws.vp(["build"])
        .env("APP_FLAVOR", "vanilla")
        .output()
        .assert_success();
    assert!(dist_text(&ws).contains("vanilla"));
    let out = ws.vp(["build"]).env("APP_FLAVOR", "chocolate").output();
    out.assert_success();
    assert!(out.stderr.contains("○ cache miss"), "{}", out.combined());
    assert!(dist_text(&ws).contains("chocolate"));
}
