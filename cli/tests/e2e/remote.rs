//! The remote cache end to end: the real `vp` binary against the real
//! `turborepo-remote-cache` server from npm on 127.0.0.1, with two copies of
//! one workspace at different absolute paths standing in for two machines.

#[path = "../support/remote_cache_server.rs"]
mod remote_cache_server;

use remote_cache_server::{RemoteCacheServer, ServerOptions, free_port};

use crate::harness::{Run, Workspace, assert_same_tree, repo_root, wait_until};

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

fn keeping_tags() -> RemoteCacheServer {
    let options = ServerOptions {
        keep_tags: true,
        ..ServerOptions::default()
    };
    RemoteCacheServer::start(&repo_root(), options)
        .unwrap_or_else(|e| panic!("starting turborepo-remote-cache: {e}"))
}

fn edit_site(ws: &Workspace, marker: &str) {
    ws.edit("packages/site/src/template.html", |s| {
        format!("{s}\n<!-- {marker} -->\n")
    });
}

#[test]
fn a_branch_switch_finds_the_result_of_the_branch_it_switched_to() {
    let server = server();
    // One machine builds branch A, then branch B.
    let ci = Workspace::new("example");
    build(&ci, &server.url(), server.token())
        .output()
        .assert_success();
    edit_site(&ci, "branch B");
    build(&ci, &server.url(), server.token())
        .output()
        .assert_success();
    let b_tree = ci.tree("packages");

    // Another machine on A: every task hits A's results, not only the last upload.
    let a = Workspace::new("example");
    let out = build(&a, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 3, "{}", out.combined());

    // And one on B gets B's.
    let b = Workspace::new("example");
    edit_site(&b, "branch B");
    let out = build(&b, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 3, "{}", out.combined());
    assert_same_tree(&b_tree, &b.tree("packages"));
}

#[test]
fn tampered_artifacts_are_rejected_and_the_tasks_run() {
    let server = server();
    let first = Workspace::new("example");
    build(&first, &server.url(), server.token())
        .output()
        .assert_success();
    let built = first.tree("packages");
    let artifacts = server.artifacts(TEAM);
    assert!(!artifacts.is_empty());
    for path in &artifacts {
        let mut bytes = std::fs::read(path).expect("an artifact on the server's disk");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(path, bytes).expect("tampering");
    }
    let second = Workspace::new("example");
    let out = build(&second, &server.url(), server.token()).output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 0, "{}", out.combined());
    assert!(
        out.stderr.contains("remote artifact rejected"),
        "{}",
        out.combined()
    );
    assert_eq!(out.stderr.matches("○ cache miss").count(), 3);
    assert_same_tree(&built, &second.tree("packages"));
}

#[test]
fn signed_artifacts_hit_with_the_key_and_are_rejected_with_another_or_none() {
    let tagging = keeping_tags();
    let signed = |ws: &Workspace, key: Option<&str>| {
        let run = build(ws, &tagging.url(), tagging.token());
        match key {
            Some(k) => run.env("VP_REMOTE_CACHE_SIGNATURE_KEY", k),
            None => run,
        }
        .output()
    };
    signed(&Workspace::new("example"), Some("key-one")).assert_success();

    let same = signed(&Workspace::new("example"), Some("key-one"));
    same.assert_success();
    assert_eq!(remote_hits(&same.stderr), 3, "{}", same.combined());

    let other = signed(&Workspace::new("example"), Some("key-two"));
    other.assert_success();
    assert_eq!(remote_hits(&other.stderr), 0, "{}", other.combined());
    assert!(
        other.stderr.contains("remote artifact rejected"),
        "{}",
        other.stderr
    );

    // Unsigned uploads (no key) are refused by a client that has one.
    let unsigned_server = server();
    build(
        &Workspace::new("example"),
        &unsigned_server.url(),
        unsigned_server.token(),
    )
    .output()
    .assert_success();
    let out = build(
        &Workspace::new("example"),
        &unsigned_server.url(),
        unsigned_server.token(),
    )
    .env("VP_REMOTE_CACHE_SIGNATURE_KEY", "key-one")
    .output();
    out.assert_success();
    assert_eq!(remote_hits(&out.stderr), 0, "{}", out.combined());
    assert!(
        out.stderr.contains("remote artifact rejected"),
        "{}",
        out.stderr
    );
}

/// Prepended to the site's build script: it says it started, then waits for
/// the test to open the gate (so the server can be stopped mid-run, at a
/// known point: after utils and app were uploaded, before site's upload).
const GATE: &str = r#"(() => {
  const fs = require('node:fs');
  const path = require('node:path');
  const root = path.join(__dirname, '..', '..');
  fs.writeFileSync(path.join(root, 'site-started'), '');
  const tick = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + 60000;
  while (!fs.existsSync(path.join(root, 'gate')) && Date.now() < deadline) Atomics.wait(tick, 0, 0, 20);
})();
"#;

#[test]
fn a_server_stopped_mid_run_costs_one_line_and_every_task_succeeds() {
    let mut server = server();
    let ws = Workspace::new("example");
    ws.edit("packages/site/build.js", |s| format!("{GATE}{s}"));
    let running = build(&ws, &server.url(), server.token()).spawn();
    let started = wait_until(
        std::time::Instant::now() + std::time::Duration::from_secs(60),
        || ws.path("site-started").exists(),
    );
    assert!(started, "the site task never started");
    server.stop();
    ws.write("gate", "");
    let out = running.wait();
    out.assert_success();
    assert_eq!(
        out.stderr.matches("remote cache unavailable").count(),
        1,
        "{}",
        out.combined()
    );
    // Cached locally all the same.
    let again = ws.vp(["run", "-r", "build"]).output();
    again.assert_success();
    assert_eq!(again.stderr.matches("◉ cache hit, replaying").count(), 3);
}

/// A server that answers every request with a `200` whose body it drips one byte at a time:
/// each read makes progress, so no per-read timeout fires. Serves until the test ends.
fn dripping_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
                while stream.write_all(b"x").is_ok() {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            });
        }
    });
    port
}

/// Probe: with a server that drips its answer, a Ctrl-C or SIGTERM during the download was
/// answered by "waiting for running tasks to stop" and vp exited only when the whole-request
/// limit (100 × the timeout) ran out: minutes. A cancelled run stops waiting for the remote
/// cache at once, and runs nothing.
#[test]
fn a_signal_during_a_slow_remote_download_ends_the_run_at_once() {
    let port = dripping_server();
    let ws = Workspace::new("example");
    ws.write(
        "vite-task.json",
        r#"{ "tasks": { "touch": { "command": "node -e \"require('fs').writeFileSync('ran', '')\"" } } }"#,
    );
    let running = ws
        .vp(["run", "touch"])
        .env("VP_REMOTE_CACHE_URL", format!("http://127.0.0.1:{port}"))
        .env("VP_REMOTE_CACHE_TOKEN", "t")
        .env("VP_REMOTE_CACHE_TEAM", TEAM)
        .env("VP_REMOTE_CACHE_TIMEOUT_MS", "1000")
        .timeout(std::time::Duration::from_secs(120))
        .spawn();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let signalled = std::time::Instant::now();
    running.signal(crate::harness::Signal::SIGTERM);
    let out = running.wait();
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(10),
        "vp took {:?} to stop\n{out}",
        signalled.elapsed()
    );
    out.assert_code(143);
    assert!(
        !ws.path("ran").exists(),
        "nothing runs after the signal\n{out}"
    );
    assert!(!out.stderr.contains("cache miss"), "{out}");
}
