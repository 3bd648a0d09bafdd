//! Rust-to-Rust tests of the whole transport: `vp_ipc::Client` against a
//! real `BridgeSession` served on its own thread (the test thread plays the
//! task's child), plus a real spawned child set up by `configure_child`.
//! Covers concurrency (threads, forks), a client exiting right after a call,
//! and every kind of bad input, none of which may hang or crash the server.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use vp_ipc::{CallError, Client, EnvQuery, PROTOCOL_VERSION, Request, Response};

use super::{BridgeContext, BridgeReport, BridgeSession};
use crate::events::NotCached;
use crate::run::admit::bridge_veto as veto;

pub(super) fn test_context() -> BridgeContext {
    let env: BTreeMap<OsString, OsString> = [
        ("NODE_ENV", "production"),
        ("HOME", "/home/test"),
        ("VITE_SECRET_THING", "from-vp"),
        ("VITE_OTHER", "2"),
        ("GITHUB_TOKEN", "hidden"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let policy = Rc::new(|name: &OsStr| {
        let name = name.to_string_lossy();
        name == "HOME" || name == "PATH" || name.ends_with("_TOKEN")
    });
    BridgeContext::new(Rc::new(env), policy, None)
}

/// A session served on its own thread; this thread holds the child end.
struct Harness {
    child_end: OwnedFd,
    token: String,
    done: smol::channel::Sender<()>,
    server: std::thread::JoinHandle<BridgeReport>,
}

impl Harness {
    fn start() -> Harness {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done, done_rx) = smol::channel::bounded::<()>(1);
        let server = std::thread::spawn(move || {
            let mut session = BridgeSession::new(test_context()).expect("bridge session");
            let end = session.take_child_end_for_test().expect("child end");
            ready_tx.send(end).expect("harness is waiting");
            smol::block_on(session.serve(async move {
                let _ = done_rx.recv().await;
            }))
        });
        let (child_end, token) = ready_rx.recv().expect("server thread started");
        Harness {
            child_end,
            token,
            done,
            server,
        }
    }

    fn fd(&self) -> RawFd {
        self.child_end.as_raw_fd()
    }

    fn client(&self, name: &str) -> Client {
        Client::from_fd(self.fd(), self.token.clone(), name).expect("valid broker")
    }

    /// Ends the "task": closes the child end, signals exit, returns the report.
    fn finish(self) -> BridgeReport {
        drop(self.child_end);
        let _ = self.done.send_blocking(());
        self.server.join().expect("server thread did not panic")
    }

    /// A raw private stream after a valid Hello, for sending bad frames.
    fn raw_stream(&self, token: &str) -> UnixStream {
        let (mine, theirs) = UnixStream::pair().expect("socketpair");
        let hello = vp_ipc::encode_frame(&Request::Hello {
            protocol: PROTOCOL_VERSION,
            token: token.into(),
            pid: std::process::id(),
            client: "raw".into(),
        })
        .expect("encodes");
        send_datagram(self.fd(), &hello, Some(theirs.as_raw_fd()));
        drop(theirs);
        mine.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        mine
    }
}

fn send_datagram(sock: RawFd, data: &[u8], fd: Option<RawFd>) {
    let fds: Vec<RawFd> = fd.into_iter().collect();
    vp_ipc::send_with_fds(sock, data, &fds).expect("sendmsg");
}

fn read_answer(stream: &mut UnixStream) -> Option<Response> {
    vp_ipc::read_frame::<Response>(stream).ok().flatten()
}

fn fork_and(f: impl FnOnce() -> bool) -> libc::pid_t {
    // SAFETY: the child only runs `f` (client calls) and `_exit`s; it never
    // returns into the test harness.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(false);
            libc::_exit(if ok { 0 } else { 1 });
        }
        pid
    }
}

fn wait_ok(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed: status {status}"
    );
}

#[test]
fn eight_threads_of_a_thousand_calls_share_one_connection() {
    let harness = Harness::start();
    let client = harness.client("threads");
    std::thread::scope(|s| {
        for t in 0..8 {
            let client = &client;
            s.spawn(move || {
                for i in 0..1000 {
                    if i % 2 == 0 {
                        client
                            .ignore_input(format!("/t/{t}/{}", i % 10))
                            .expect("ignore_input answered");
                    } else {
                        let value = client.get_env("NODE_ENV", true).expect("get_env answered");
                        assert_eq!(value.as_deref(), Some(OsStr::new("production")));
                    }
                }
            });
        }
    });
    drop(client);
    let report = harness.finish();
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(report.clients.len(), 1, "one private stream per process");
    assert_eq!(report.ignored_inputs.len(), 8 * 5);
    assert!(report.ignored_inputs.contains(&PathBuf::from("/t/7/8")));
    assert_eq!(
        report.tracked_envs.get(OsStr::new("NODE_ENV")),
        Some(&Some(OsString::from("production")))
    );
}

#[test]
fn twenty_forked_children_each_open_their_own_stream() {
    let harness = Harness::start();
    let client = harness.client("forker");
    client.ignore_output("/parent/before").expect("parent call");
    let pids: Vec<_> = (0..20)
        .map(|i| {
            let client = &client;
            fork_and(move || {
                client.ignore_output(format!("/child/{i}")).is_ok()
                    && client.get_env("VITE_OTHER", false).ok().flatten() == Some("2".into())
            })
        })
        .collect();
    for pid in pids {
        wait_ok(pid);
    }
    // The parent's stream was not disturbed by its children.
    client
        .ignore_output("/parent/after")
        .expect("parent call after forks");
    drop(client);
    let report = harness.finish();
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(report.clients.len(), 21);
    assert_eq!(report.ignored_outputs.len(), 22);
    assert!(report.ignored_outputs.contains(&PathBuf::from("/child/19")));
}

#[test]
fn a_call_right_before_exit_is_recorded() {
    let harness = Harness::start();
    let (fd, token) = (harness.fd(), harness.token.clone());
    let pid = fork_and(move || {
        let client = Client::from_fd(fd, token, "quick").expect("valid broker");
        client.disable_cache().is_ok()
    });
    wait_ok(pid);
    let report = harness.finish();
    assert!(
        report
            .cache_disabled_by
            .as_deref()
            .is_some_and(|who| who.starts_with("quick (pid ")),
        "{report:?}"
    );
    assert!(matches!(veto(&report), Some(NotCached::ToolAsked { .. })));
}

#[test]
fn an_oversized_frame_closes_only_that_client() {
    let harness = Harness::start();
    let mut raw = harness.raw_stream(&harness.token);
    assert_eq!(read_answer(&mut raw), Some(Response::Ack));
    raw.write_all(&(vp_ipc::MAX_FRAME_LEN + 1).to_le_bytes())
        .expect("write header");
    match read_answer(&mut raw) {
        Some(Response::Error { message }) => assert!(message.contains("exceeds"), "{message}"),
        other => panic!("expected an error answer, got {other:?}"),
    }
    assert_eq!(
        raw.read(&mut [0u8; 1]).expect("closed"),
        0,
        "server closed the stream"
    );
    // The session still serves others.
    let client = harness.client("after");
    assert_eq!(
        client
            .get_env("NODE_ENV", false)
            .expect("served")
            .as_deref(),
        Some(OsStr::new("production"))
    );
    drop(client);
    let report = harness.finish();
    assert_eq!(
        report.protocol_errors.len(),
        1,
        "{:?}",
        report.protocol_errors
    );
    assert!(
        report.protocol_errors[0].starts_with("raw (pid "),
        "{:?}",
        report.protocol_errors
    );
    assert!(
        matches!(veto(&report), Some(NotCached::BridgeProtocol { first, .. }) if first.contains("exceeds")),
        "{report:?}"
    );
}

#[test]
fn a_truncated_frame_is_a_protocol_error() {
    let harness = Harness::start();
    let mut raw = harness.raw_stream(&harness.token);
    assert_eq!(read_answer(&mut raw), Some(Response::Ack));
    raw.write_all(&100u32.to_le_bytes()).expect("header");
    raw.write_all(&[1, 0, 0, 0, 9]).expect("part of a body");
    raw.shutdown(std::net::Shutdown::Write).expect("shutdown");
    drop(raw);
    let report = harness.finish();
    assert_eq!(report.protocol_errors.len(), 1);
    assert!(
        report.protocol_errors[0].contains("middle of a frame"),
        "{:?}",
        report.protocol_errors
    );
}

#[test]
fn garbage_on_a_stream_and_on_the_broker_are_protocol_errors() {
    let harness = Harness::start();
    let mut raw = harness.raw_stream(&harness.token);
    assert_eq!(read_answer(&mut raw), Some(Response::Ack));
    raw.write_all(&8u32.to_le_bytes()).expect("header");
    raw.write_all(b"garbage!").expect("body");
    assert!(matches!(
        read_answer(&mut raw),
        Some(Response::Error { .. })
    ));
    // A datagram without a stream, and one that is not a frame at all.
    send_datagram(harness.fd(), b"\x02\x00\x00\x00hi", None);
    let (_mine, theirs) = UnixStream::pair().expect("socketpair");
    send_datagram(harness.fd(), b"nonsense", Some(theirs.as_raw_fd()));
    let client = harness.client("still-works");
    client.ignore_input("/ok").expect("served after garbage");
    drop(client);
    let report = harness.finish();
    assert_eq!(
        report.protocol_errors.len(),
        3,
        "{:?}",
        report.protocol_errors
    );
    assert!(report.ignored_inputs.contains(&PathBuf::from("/ok")));
}

#[test]
fn a_wrong_token_is_refused_with_a_clear_error() {
    let harness = Harness::start();
    let client = Client::from_fd(harness.fd(), "not-the-token", "intruder").expect("valid broker");
    match client.ignore_input("/x") {
        Err(CallError::Rejected(message)) => {
            assert!(message.contains("wrong task token"), "{message}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    drop(client);
    let report = harness.finish();
    assert!(report.ignored_inputs.is_empty());
    assert_eq!(report.protocol_errors.len(), 1);
    assert!(
        report.protocol_errors[0].contains("intruder"),
        "{:?}",
        report.protocol_errors
    );
}

/// Sends a raw Hello for `protocol` with the current pid and returns the
/// stream's first answer.
fn raw_hello(harness: &Harness, protocol: u32, token: &str) -> Option<Response> {
    let (mut mine, theirs) = UnixStream::pair().expect("socketpair");
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let hello = vp_ipc::encode_frame(&Request::Hello {
        protocol,
        token: token.into(),
        pid: std::process::id(),
        client: "future".into(),
    })
    .expect("encodes");
    send_datagram(harness.fd(), &hello, Some(theirs.as_raw_fd()));
    drop(theirs);
    read_answer(&mut mine)
}

#[test]
fn a_refused_version_then_a_retry_with_the_current_one_keeps_the_run_cacheable() {
    let harness = Harness::start();
    // docs/protocol.md section 7: offer the highest version, and after an
    // Error naming the runner's versions retry on a new stream.
    let message = match raw_hello(&harness, 99, &harness.token) {
        Some(Response::Error { message }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(
        message.starts_with("unsupported protocol version 99 from future (pid "),
        "{message}"
    );
    assert_eq!(
        vp_ipc::refused_version_list(&message),
        Some(vec![PROTOCOL_VERSION]),
        "{message}"
    );
    let retry = Client::from_fd(harness.fd(), harness.token.clone(), "future").expect("broker");
    retry
        .ignore_input("/negotiated")
        .expect("served after the retry");
    drop(retry);
    let report = harness.finish();
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(veto(&report), None, "{report:?}");
    assert_eq!(report.version_refusals.len(), 1, "{report:?}");
    assert!(
        report
            .ignored_inputs
            .contains(&PathBuf::from("/negotiated"))
    );
}

#[test]
fn the_rust_client_negotiates_down_to_a_version_the_runner_speaks() {
    let harness = Harness::start();
    let client = Client::from_fd(harness.fd(), harness.token.clone(), "newer")
        .expect("broker")
        .offering_versions_for_test(&[PROTOCOL_VERSION, 99, 7]);
    assert_eq!(
        client
            .get_env("NODE_ENV", false)
            .expect("served")
            .as_deref(),
        Some(OsStr::new("production"))
    );
    // A forked child connects again, starting with the version that worked.
    let pid = fork_and(|| client.ignore_output("/from-child").is_ok());
    wait_ok(pid);
    drop(client);
    let report = harness.finish();
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(veto(&report), None, "{report:?}");
    assert_eq!(
        report.version_refusals.len(),
        1,
        "99 is offered once, 7 is skipped (the runner listed its versions): {:?}",
        report.version_refusals
    );
    assert_eq!(report.clients.len(), 2);
}

#[test]
fn a_client_that_never_finds_a_common_version_makes_the_run_uncacheable() {
    let harness = Harness::start();
    let client = Client::from_fd(harness.fd(), harness.token.clone(), "alien")
        .expect("broker")
        .offering_versions_for_test(&[99]);
    match client.disable_cache() {
        Err(CallError::NoCommonVersion { offered, message }) => {
            assert_eq!(offered, [99]);
            assert!(message.contains("this vp speaks versions: 1"), "{message}");
        }
        other => panic!("expected no common version, got {other:?}"),
    }
    drop(client);
    let report = harness.finish();
    assert!(report.protocol_errors.is_empty(), "{report:?}");
    let Some(NotCached::BridgeVersion { first, .. }) = veto(&report) else {
        panic!("expected a version mismatch: {report:?}");
    };
    assert!(
        first.contains("alien (pid ") && first.contains("asked for protocol version 99"),
        "{first}"
    );
}

#[test]
fn a_wrong_token_with_an_unknown_version_is_still_a_protocol_error() {
    let harness = Harness::start();
    match raw_hello(&harness, 99, "not-the-token") {
        Some(Response::Error { message }) => {
            assert!(message.contains("wrong task token"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let report = harness.finish();
    assert_eq!(report.protocol_errors.len(), 1, "{report:?}");
    assert!(report.version_refusals.is_empty(), "{report:?}");
}

fn status_flags(fd: RawFd) -> i32 {
    // SAFETY: F_GETFL on an fd we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "fcntl: {}", std::io::Error::last_os_error());
    flags
}

#[test]
fn a_file_or_pipe_sent_as_the_stream_is_refused_untouched() {
    let harness = Harness::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("not-a-socket");
    let file = std::fs::File::create(&path).expect("create");
    let (mut pipe_read, pipe_write) = std::io::pipe().expect("pipe");
    let hello = vp_ipc::encode_frame(&Request::Hello {
        protocol: PROTOCOL_VERSION,
        token: harness.token.clone(),
        pid: std::process::id(),
        client: "confused".into(),
    })
    .expect("encodes");
    let before = (
        status_flags(file.as_raw_fd()),
        status_flags(pipe_write.as_raw_fd()),
    );
    send_datagram(harness.fd(), &hello, Some(file.as_raw_fd()));
    send_datagram(harness.fd(), &hello, Some(pipe_write.as_raw_fd()));
    // Served in order: once this client is answered, both bad Hellos were handled.
    let client = harness.client("after");
    client.ignore_input("/ok").expect("served");
    drop(client);
    assert_eq!(
        (
            status_flags(file.as_raw_fd()),
            status_flags(pipe_write.as_raw_fd())
        ),
        before,
        "O_NONBLOCK (or another flag) was set on the client's shared file descriptions"
    );
    drop(pipe_write);
    let report = harness.finish();
    assert_eq!(
        std::fs::read(&path).expect("read back"),
        b"",
        "vp wrote into the file"
    );
    let mut in_pipe = Vec::new();
    pipe_read.read_to_end(&mut in_pipe).expect("read pipe");
    assert!(in_pipe.is_empty(), "vp wrote into the pipe: {in_pipe:?}");
    assert_eq!(report.protocol_errors.len(), 2, "{report:?}");
    assert!(
        report.protocol_errors[0].contains("sent a regular file as its private stream"),
        "{:?}",
        report.protocol_errors
    );
    assert!(
        report.protocol_errors[1].contains("sent a pipe as its private stream"),
        "{:?}",
        report.protocol_errors
    );
}

#[test]
fn a_client_outliving_the_session_gets_an_error_not_a_hang() {
    let harness = Harness::start();
    let client = harness.client("late");
    client.ignore_input("/early").expect("served");
    // Keep our copy of the child end open like a daemonized grandchild would.
    // SAFETY: dup of an fd we own, wrapped immediately.
    let kept = unsafe { OwnedFd::from_raw_fd(libc::dup(harness.fd())) };
    let started = Instant::now();
    let report = harness.finish();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the drain is bounded"
    );
    assert_eq!(report.lingering_clients.len(), 1, "{report:?}");
    let err = client.ignore_input("/late").expect_err("session is over");
    assert!(
        matches!(err, CallError::Closed | CallError::Frame(_)),
        "{err}"
    );
    let fresh = Client::from_fd(kept.as_raw_fd(), "x", "fresh").expect("still a socket");
    assert!(
        fresh.disable_cache().is_err(),
        "no server behind the broker any more"
    );
}

#[test]
fn env_answers_come_from_the_full_environment_and_respect_config() {
    let harness = Harness::start();
    let client = harness.client("env");
    let vite = client
        .get_envs(EnvQuery::Prefix(b"VITE_".to_vec()), true)
        .expect("served");
    assert_eq!(
        vite.get(OsStr::new("VITE_SECRET_THING"))
            .map(OsString::as_os_str),
        Some(OsStr::new("from-vp"))
    );
    let all = client
        .get_envs(EnvQuery::Glob(b"*".to_vec()), true)
        .expect("served");
    assert!(
        !all.contains_key(OsStr::new("GITHUB_TOKEN")),
        "untracked names are never in a match-set"
    );
    assert!(!all.contains_key(OsStr::new("HOME")));
    assert_eq!(
        client.get_env("HOME", true).expect("served").as_deref(),
        Some(OsStr::new("/home/test"))
    );
    match client.get_envs(EnvQuery::Glob(b"[".to_vec()), true) {
        Err(CallError::Rejected(message)) => {
            assert!(message.contains("invalid env glob"), "{message}")
        }
        other => panic!("expected a rejected glob, got {other:?}"),
    }
    // A refused request does not close the connection.
    client.ignore_output("/still").expect("served");
    drop(client);
    let report = harness.finish();
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert_eq!(report.env_queries.len(), 2);
    assert!(
        report.tracked_envs.is_empty(),
        "HOME is untracked by config"
    );
    assert!(report.untracked_env_reads.contains(OsStr::new("HOME")));
}

#[test]
fn round_trip_latency() {
    let harness = Harness::start();
    let client = harness.client("bench");
    client.get_env("NODE_ENV", false).expect("warm up");
    const CALLS: u32 = 5000;
    let started = Instant::now();
    for _ in 0..CALLS {
        client.get_env("NODE_ENV", false).expect("served");
    }
    let per_call = started.elapsed() / CALLS;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "bridge round trip (Rust client, {build} build): {per_call:?} per call over {CALLS} calls"
    );
    drop(client);
    let report = harness.finish();
    assert!(report.untracked_env_reads.contains(OsStr::new("NODE_ENV")));
}

#[test]
fn configure_child_hands_a_real_child_the_broker() {
    let mut ctx = test_context();
    // A long drain timeout: the test proves serve returns because the
    // broker reached EOF, not because the timeout fired.
    ctx.drain_timeout = Duration::from_secs(30);
    let started = Instant::now();
    let (output, report) = smol::block_on(async {
        let mut session = BridgeSession::new(ctx).expect("bridge session");
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args([
            "-c",
            "readlink /proc/self/fd/$VP_IPC_FD; echo \"fd=$VP_IPC_FD token=${#VP_IPC_TOKEN}\"",
        ]);
        session.configure_child(&mut cmd);
        // async_process ignores the std Command's stdio settings.
        let mut cmd = async_process::Command::from(cmd);
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        drop(cmd);
        session.serve_with(child.output()).await
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "serve waited for the drain timeout"
    );
    let output = output.expect("sh ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("socket:["),
        "broker not installed: {stdout}"
    );
    assert!(
        stdout.contains(&format!("fd={}", super::broker::child_fd_number())),
        "{stdout}"
    );
    assert!(stdout.contains("token=32"), "{stdout}");
    assert_eq!(report, BridgeReport::default());
}
