//! The remote cache end to end: the real `vp` binary against the real
//! `turborepo-remote-cache` server from npm on 127.0.0.1, with two copies of
//! one workspace at different absolute paths standing in for two machines.

#[path = "../support/remote_cache_server.rs"]
mod remote_cache_server;

use remote_cache_server::{RemoteCacheServer, ServerOptions, free_port};

use crate::harness::{Run, Workspace, assert_same_tree, repo_root};

const TEAM: &str = "vp-e2e";

fn server() -> RemoteCacheServer {
    RemoteCacheServer::start(&repo_root(), ServerOptions::default())
        .unwrap_or_else(|e| panic!("starting turborepo-remote-cache: {e}"))
}

/// `vp run -r build` in `ws` with the remote cache at `url`.
fn build(ws: &Workspace, url: &str, token: &str) -> Run {
    ws.vp(["run", "-r", "build"])
        .env("VP_REMOTE_CACHE_URL", url)
        .env("VP_REMOTE_CACHE_TOKEN", token)
        .env("VP_REMOTE_CACHE_TEAM", TEAM)
        .env("VP_REMOTE_CACHE_TIMEOUT_MS", "2000")
}

fn remote_hits(stderr: &str) -> usize {
    stderr.matches("◉ cache hit (remote), replaying").count()
}

#[test]
fn a_second_copy_at_another_path_hits_remotely_and_runs_nothing() {
    let server = server();
    let first = Workspace::new("example");
    let out = build(&first, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(
        out.stderr.matches("○ cache miss").count(),
        3,
        "{}",
        out.combined()
    );
    assert!(!server.artifacts(TEAM).is_empty(), "nothing was uploaded");

    let second = Workspace::new("example");
    assert_ne!(first.root(), second.root());
    let out = build(&second, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 3, "{}", out.combined());
    assert!(
        out.stderr
            .contains("vp run: 3/3 cache hit (100%; 3 remote)"),
        "{}",
        out.stderr
    );
    assert_same_tree(&first.tree("packages"), &second.tree("packages"));

    // Now local: the next run asks the server nothing.
    let out = build(&second, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 0, "{}", out.combined());
    assert_eq!(out.stderr.matches("◉ cache hit, replaying").count(), 3);
}

#[test]
fn a_changed_source_misses_and_the_rest_hits_remotely() {
    let server = server();
    let first = Workspace::new("example");
    build(&first, &server.url(), server.token())
        .output()
        .assert_success();
    let second = Workspace::new("example");
    second.edit("packages/site/src/template.html", |s| {
        format!("{s}\n<!-- edited -->\n")
    });
    let out = build(&second, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 2, "{}", out.combined());
    assert_eq!(
        out.stderr.matches("○ cache miss").count(),
        1,
        "{}",
        out.combined()
    );
}

#[test]
fn read_only_downloads_but_uploads_nothing() {
    let server = server();
    let ws = Workspace::new("example");
    build(&ws, &server.url(), server.token())
        .arg("--remote-cache=read")
        .output()
        .assert_success();
    assert!(
        server.artifacts(TEAM).is_empty(),
        "read-only uploaded {:?}",
        server.artifacts(TEAM)
    );
    let ws = Workspace::new("example");
    build(&ws, &server.url(), server.token())
        .env("VP_REMOTE_CACHE_READ_ONLY", "1")
        .output()
        .assert_success();
    assert!(server.artifacts(TEAM).is_empty());
}

#[test]
fn a_server_that_is_not_there_costs_one_line_and_tasks_still_run() {
    let port = free_port().expect("a free port");
    let ws = Workspace::new("example");
    let out = build(&ws, &format!("http://127.0.0.1:{port}"), "t").output();
    out.assert_success();
    assert_eq!(
        out.stderr.matches("remote cache unavailable").count(),
        1,
        "{}",
        out.combined()
    );
    assert!(
        out.stderr.contains("(tasks run and are cached locally)"),
        "{}",
        out.stderr
    );
    // Cached locally all the same.
    let out = ws.vp(["run", "-r", "build"]).output();
    out.assert_success();
    assert_eq!(out.stderr.matches("◉ cache hit, replaying").count(), 3);
}

#[test]
fn a_refused_token_is_one_clear_line_and_tasks_run() {
    let server = server();
    let ws = Workspace::new("example");
    let out = build(&ws, &server.url(), "not-the-token").output();
    out.assert_success();
    let notices: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("remote cache unavailable"))
        .collect();
    assert_eq!(notices.len(), 1, "{}", out.combined());
    assert!(server.artifacts(TEAM).is_empty());
}

#[test]
fn a_malformed_setting_stops_before_anything_runs() {
    let ws = Workspace::new("example");
    let out = build(&ws, "not a url", "t").output();
    out.assert_code(1);
    assert!(out.stderr.contains("VP_REMOTE_CACHE_URL"), "{}", out.stderr);
    assert!(!out.stderr.contains("cache miss"), "{}", out.stderr);
}
