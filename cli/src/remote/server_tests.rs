//! The remote cache against the real `turborepo-remote-cache` server from
//! npm (`fixtures/remote-cache-server`), on 127.0.0.1: the API calls, a
//! refused token, a server that is not running, and whole round trips
//! between two workspaces at different absolute paths through real stores,
//! including tampered and wrongly signed artifacts on the server's disk.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::{
    EnvView, GlobConfig, InputKind, LogChunk, LookupOutcome, LookupRequest, ObservedRun,
    RecordOutcome, RecordRequest, SpawnFingerprint, SpawnSpec, Store, Stream, TaskPaths, Timestamp,
};

use super::artifact::{self, ResultArtifact};
use super::client::{RemoteClient, RemoteError, RemoteSession, SessionError};
use super::config::{RemoteConfig, RemoteInputs, RemoteMode};
use super::transfer::{
    FetchOutcome, FetchRequest, Rejection, RemoteMiss, UploadOutcome, UploadRequest, UploadSkipped,
    check_connection, fetch_run, upload_run,
};

#[path = "../../tests/support/remote_cache_server.rs"]
mod server;

use server::{RemoteCacheServer, ServerOptions, free_port};

const TEAM: &str = "vp-tests";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        Path::to_path_buf,
    )
}

fn start(options: ServerOptions) -> RemoteCacheServer {
    RemoteCacheServer::start(&repo_root(), options).unwrap_or_else(|e| panic!("{e}"))
}

fn config(url: &str, token: &str, extra: &[(&str, &str)], mode: RemoteMode) -> RemoteConfig {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("VP_REMOTE_CACHE_URL".into(), url.into()),
        ("VP_REMOTE_CACHE_TOKEN".into(), token.into()),
        ("VP_REMOTE_CACHE_TEAM".into(), TEAM.into()),
        ("VP_REMOTE_CACHE_TIMEOUT_MS".into(), "2000".into()),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    RemoteConfig::resolve(&RemoteInputs {
        env: &env,
        file: None,
        flag: Some(mode),
    })
    .expect("valid test config")
    .expect("configured")
}

fn session(server: &RemoteCacheServer, extra: &[(&str, &str)]) -> RemoteSession {
    RemoteSession::new(config(
        &server.url(),
        server.token(),
        extra,
        RemoteMode::ReadWrite,
    ))
}

#[test]
fn remote_server_put_get_head_status() {
    let server = start(ServerOptions::default());
    let client = RemoteClient::new(config(
        &server.url(),
        server.token(),
        &[],
        RemoteMode::ReadWrite,
    ));
    assert_eq!(client.status().expect("status"), "enabled");
    let id = "ab".repeat(32);
    assert!(!client.exists(&id).expect("head"));
    assert_eq!(client.get(&id).expect("get"), None);
    client.put(&id, b"\x00binary\xffbody", None).expect("put");
    assert!(client.exists(&id).expect("head"));
    let got = client.get(&id).expect("get").expect("stored");
    assert_eq!(got.body, b"\x00binary\xffbody");
    assert!(server.artifact_path(TEAM, &id).is_file());
}

#[test]
fn remote_server_refuses_a_wrong_token_once_per_run() {
    let server = start(ServerOptions::default());
    let s = RemoteSession::new(config(&server.url(), "wrong", &[], RemoteMode::ReadWrite));
    let first = s.get(&"cd".repeat(32));
    assert!(
        matches!(
            first,
            Err(SessionError::Failed(RemoteError::AuthRefused {
                status: 401,
                ..
            }))
        ),
        "{first:?}"
    );
    let shown = s.first_failure().expect("kept").to_string();
    assert!(shown.contains("refused the token (HTTP 401)"), "{shown}");
    assert!(shown.contains("VP_REMOTE_CACHE_TOKEN"), "{shown}");
    assert_eq!(s.put("x", b"y", None), Err(SessionError::Disabled));
    assert!(check_connection(&session(&server, &[])).is_ok());
    let refused = check_connection(&RemoteSession::new(config(
        &server.url(),
        "wrong",
        &[],
        RemoteMode::Read,
    )));
    assert!(
        matches!(refused, Err(RemoteError::AuthRefused { .. })),
        "{refused:?}"
    );
}

/// A workspace with one package whose build reads `src/a.js` and writes
/// `dist/out.js` (executable) and prints a log.
struct Ws {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    pkg: PathBuf,
    cache: PathBuf,
    store: Store,
}

fn no_untracked(_: &OsStr) -> bool {
    false
}

impl Ws {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Different depths as well as different names: nothing absolute
        // may leak into a key.
        let root = tmp
            .path()
            .canonicalize()
            .expect("canonical")
            .join(format!("checkout-{}", tmp.path().as_os_str().len()));
        let pkg = root.join("packages/app");
        fs::create_dir_all(pkg.join("src")).expect("mkdir");
        let cache = root.join("node_modules/.cache/vp");
        let store = crate::cache::open_for_test(&cache, Duration::from_secs(5));
        Self {
            _tmp: tmp,
            root,
            pkg,
            cache,
            store,
        }
    }

    fn paths(&self) -> TaskPaths<'_> {
        TaskPaths {
            workspace_root: &self.root,
            package_dir: &self.pkg,
            cache_dir: &self.cache,
        }
    }

    fn spawn(&self) -> SpawnFingerprint {
        let args: Vec<OsString> = vec!["build.js".into()];
        SpawnFingerprint::new(SpawnSpec {
            workspace_root: &self.root,
            package_dir: &self.pkg,
            cwd: &self.pkg,
            // Outside the workspace: the portable key hashes its content.
            program: Path::new("/usr/bin/env"),
            args: &args,
            declared_env: &[],
            untracked_env: &[],
            inputs: GlobConfig::auto(),
            outputs: GlobConfig::auto(),
        })
    }

    fn source(&self, content: &str) {
        fs::write(self.pkg.join("src/a.js"), content).expect("write");
    }

    /// A second source file (a branch that adds one); `None` removes it.
    fn extra(&self, content: Option<&str>) {
        let path = self.pkg.join("src/b.js");
        match content {
            Some(c) => fs::write(path, c).expect("write"),
            None => fs::remove_file(path).expect("rm"),
        }
    }

    /// "Runs" the build: reads the sources, writes the output, stores it.
    fn build(&self) -> crate::cache::EntryKey {
        let mut src = fs::read_to_string(self.pkg.join("src/a.js")).expect("read");
        let mut inputs = vec![(self.pkg.join("src/a.js"), InputKind::ContentRead)];
        if let Ok(extra) = fs::read_to_string(self.pkg.join("src/b.js")) {
            src.push_str(&extra);
            inputs.push((self.pkg.join("src/b.js"), InputKind::ContentRead));
        }
        let started = Timestamp::task_start();
        let out = self.pkg.join("dist/out.js");
        fs::create_dir_all(self.pkg.join("dist")).expect("mkdir");
        fs::write(&out, format!("built({src})")).expect("write");
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).expect("chmod");
        let run = ObservedRun {
            inputs,
            outputs: vec![out],
            log: vec![LogChunk {
                stream: Stream::Stdout,
                bytes: format!("built {src}\n").into_bytes(),
            }],
            started,
            duration: Duration::from_millis(1500),
            ..ObservedRun::default()
        };
        match self
            .store
            .record(&RecordRequest {
                task: "app#build",
                spawn: &self.spawn(),
                paths: self.paths(),
                run: &run,
            })
            .expect("record")
        {
            RecordOutcome::Stored(s) => s.key,
            RecordOutcome::NotStored(why) => panic!("not stored: {why}"),
        }
    }

    fn upload(&self, s: &RemoteSession, entry: crate::cache::EntryKey) -> UploadOutcome {
        upload_run(
            s,
            &self.store,
            &UploadRequest {
                spawn: &self.spawn(),
                entry,
            },
        )
        .expect("upload")
    }

    fn fetch(&self, s: &RemoteSession) -> FetchOutcome {
        let env = EnvView::new(Vec::<(OsString, OsString)>::new(), &no_untracked);
        fetch_run(
            s,
            &self.store,
            &FetchRequest {
                task: "app#build",
                spawn: &self.spawn(),
                paths: self.paths(),
                env: &env,
            },
        )
        .expect("fetch")
    }

    fn lookup(&self) -> LookupOutcome {
        let env = EnvView::new(Vec::<(OsString, OsString)>::new(), &no_untracked);
        self.store
            .lookup(&LookupRequest {
                task: "app#build",
                spawn: &self.spawn(),
                paths: self.paths(),
                env: &env,
                path_var: None,
            })
            .expect("lookup")
    }

    /// Fetch, then the runner's ordinary local path: lookup and restore.
    fn fetch_and_restore(&self, s: &RemoteSession) -> Vec<u8> {
        let fetched = self.fetch(s);
        assert!(matches!(fetched, FetchOutcome::Imported(_)), "{fetched:?}");
        let LookupOutcome::Hit(hit) = self.lookup() else {
            panic!("an imported entry is a local hit");
        };
        self.store.restore(&hit, &self.root).expect("restore");
        fs::read(self.pkg.join("dist/out.js")).expect("restored output")
    }
}

fn miss(o: FetchOutcome) -> RemoteMiss {
    match o {
        FetchOutcome::Miss(m) => m,
        FetchOutcome::Imported(f) => panic!("expected a miss, imported {f:?}"),
    }
}

#[test]
fn remote_round_trip_between_workspaces_at_different_paths() {
    let server = start(ServerOptions::default());
    let s = session(&server, &[]);
    let one = Ws::new();
    let two = Ws::new();
    assert_ne!(one.root, two.root);
    one.source("v1");
    two.source("v1");
    assert_eq!(miss(two.fetch(&s)), RemoteMiss::NoManifest);
    let entry = one.build();
    let up = one.upload(&s, entry);
    assert!(
        matches!(
            up,
            UploadOutcome::Uploaded {
                result_existed: false,
                ..
            }
        ),
        "{up:?}"
    );
    assert_eq!(server.artifacts(TEAM).len(), 2, "manifest and result");

    let restored = two.fetch_and_restore(&s);
    assert_eq!(restored, b"built(v1)");
    let mode = fs::metadata(two.pkg.join("dist/out.js"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the mode travels with the output");
    assert!(s.stats().downloaded > 0 && s.stats().uploaded > 0);

    // A second upload of the same result only refreshes the manifest.
    let again = one.upload(&s, entry);
    assert!(
        matches!(
            again,
            UploadOutcome::Uploaded {
                result_existed: true,
                ..
            }
        ),
        "{again:?}"
    );
}

#[test]
fn remote_changed_source_misses_and_branch_switch_finds_each_result() {
    let server = start(ServerOptions::default());
    let s = session(&server, &[]);
    let ci = Ws::new();
    let dev = Ws::new();
    // CI builds branch A, then branch B, which also adds a source file:
    // the two runs read different sets of files.
    ci.source("branch A");
    let a = ci.build();
    ci.upload(&s, a);
    ci.source("branch B");
    ci.extra(Some("+b"));
    let b = ci.build();
    ci.upload(&s, b);

    dev.source("uncommitted edit");
    assert_eq!(miss(dev.fetch(&s)), RemoteMiss::NoResult);
    dev.source("branch A");
    assert_eq!(dev.fetch_and_restore(&s), b"built(branch A)");
    dev.source("branch B");
    dev.extra(Some("+b"));
    assert_eq!(dev.fetch_and_restore(&s), b"built(branch B+b)");
    dev.source("branch A");
    dev.extra(None);
    assert_eq!(
        dev.fetch_and_restore(&s),
        b"built(branch A)",
        "A again, although B was uploaded last"
    );
}

/// Rewrites every artifact file of the team on the server's disk.
fn tamper(server: &RemoteCacheServer, mut edit: impl FnMut(&Path, Vec<u8>) -> Option<Vec<u8>>) {
    for path in server.artifacts(TEAM) {
        let bytes = fs::read(&path).expect("read artifact");
        if let Some(new) = edit(&path, bytes) {
            fs::write(&path, new).expect("write artifact");
        }
    }
}

#[test]
fn remote_tampered_artifacts_are_rejected_and_nothing_is_restored() {
    let server = start(ServerOptions::default());
    let s = session(&server, &[]);
    let one = Ws::new();
    let two = Ws::new();
    one.source("v1");
    two.source("v1");
    let entry = one.build();
    one.upload(&s, entry);

    // 1. A blob's content replaced, the archive re-encoded so that it
    //    decodes: the content hash catches it.
    tamper(&server, |_, bytes| {
        let mut result: ResultArtifact = artifact::decode_result(&bytes, 1 << 30).ok()?;
        for (_, blob) in &mut result.blobs {
            if blob.starts_with(b"built(") {
                *blob = b"evil()".to_vec();
            }
        }
        Some(artifact::encode_result(&result, 1 << 30).expect("encodes"))
    });
    let got = miss(two.fetch(&s));
    assert!(
        matches!(got, RemoteMiss::Rejected(Rejection::BlobMismatch(_))),
        "{got:?}"
    );
    assert!(
        got.to_string().starts_with("remote artifact rejected: "),
        "{got}"
    );
    assert!(
        !two.pkg.join("dist").exists(),
        "nothing reached the workspace"
    );
    assert!(
        matches!(two.lookup(), LookupOutcome::Miss(_)),
        "nothing reached the store"
    );

    // 2. Bytes flipped in the middle of every artifact: never a panic,
    //    never an import.
    tamper(&server, |_, mut bytes| {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        Some(bytes)
    });
    let got = miss(two.fetch(&s));
    assert!(matches!(got, RemoteMiss::Rejected(_)), "{got:?}");

    // 3. Garbage instead of an artifact.
    tamper(&server, |_, _| {
        Some(b"<html>502 Bad Gateway</html>".to_vec())
    });
    let got = miss(two.fetch(&s));
    assert!(
        matches!(got, RemoteMiss::Rejected(Rejection::Format(..))),
        "{got:?}"
    );
    assert!(!s.is_disabled(), "a bad artifact does not end the session");
}

/// Probe: a corrupt result on the server was never replaced. Each machine
/// refused it, ran the task, and skipped the upload because the server
/// already had that result, so every machine missed for those inputs. A
/// result this run refused is uploaded again.
#[test]
fn remote_a_refused_result_is_replaced_by_the_run_that_refused_it() {
    let server = start(ServerOptions::default());
    let one = Ws::new();
    let two = Ws::new();
    let three = Ws::new();
    for ws in [&one, &two, &three] {
        ws.source("v1");
    }
    let entry = one.build();
    one.upload(&session(&server, &[]), entry);
    tamper(&server, |_, mut bytes| {
        artifact::decode_result(&bytes, 1 << 30).ok()?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        Some(bytes)
    });

    let s = session(&server, &[]);
    let got = miss(two.fetch(&s));
    assert!(matches!(got, RemoteMiss::Rejected(_)), "{got:?}");
    let entry = two.build();
    let up = two.upload(&s, entry);
    assert!(
        matches!(
            up,
            UploadOutcome::Uploaded {
                result_existed: false,
                ..
            }
        ),
        "the refused result is sent again: {up:?}"
    );
    assert_eq!(
        three.fetch_and_restore(&session(&server, &[])),
        b"built(v1)"
    );
}

#[test]
fn remote_signed_artifacts_hit_with_the_key_and_are_rejected_otherwise() {
    let server = start(ServerOptions {
        keep_tags: true,
        ..ServerOptions::default()
    });
    let key = [("VP_REMOTE_CACHE_SIGNATURE_KEY", "shared-secret")];
    let signed = session(&server, &key);
    let one = Ws::new();
    one.source("v1");
    let entry = one.build();
    one.upload(&signed, entry);
    assert!(
        server
            .artifact_path(
                TEAM,
                &server.artifacts(TEAM)[0]
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
            )
            .with_extension("tag")
            .is_file(),
        "the server stored the tag"
    );

    let same_key = Ws::new();
    same_key.source("v1");
    assert_eq!(
        same_key.fetch_and_restore(&session(&server, &key)),
        b"built(v1)"
    );

    let other_key = Ws::new();
    other_key.source("v1");
    let got = miss(other_key.fetch(&session(
        &server,
        &[("VP_REMOTE_CACHE_SIGNATURE_KEY", "another-secret")],
    )));
    assert!(
        matches!(got, RemoteMiss::Rejected(Rejection::Signature(..))),
        "{got:?}"
    );
    assert!(got.to_string().contains("does not verify"), "{got}");
}

#[test]
fn remote_unsigned_artifacts_are_rejected_when_a_key_is_configured() {
    let server = start(ServerOptions::default());
    let one = Ws::new();
    one.source("v1");
    let entry = one.build();
    one.upload(&session(&server, &[]), entry);
    let two = Ws::new();
    two.source("v1");
    let got = miss(two.fetch(&session(
        &server,
        &[("VP_REMOTE_CACHE_SIGNATURE_KEY", "shared-secret")],
    )));
    assert!(
        matches!(got, RemoteMiss::Rejected(Rejection::Signature(..))),
        "{got:?}"
    );
    assert!(got.to_string().contains("is not signed"), "{got}");
}

#[test]
fn remote_read_only_uploads_nothing() {
    let server = start(ServerOptions::default());
    let s = RemoteSession::new(config(&server.url(), server.token(), &[], RemoteMode::Read));
    let one = Ws::new();
    one.source("v1");
    let entry = one.build();
    assert_eq!(
        one.upload(&s, entry),
        UploadOutcome::Skipped(UploadSkipped::ReadOnly)
    );
    assert!(server.artifacts(TEAM).is_empty());
    assert_eq!(s.stats().requests, 0);
}

#[test]
fn remote_server_not_running_costs_one_fast_failure_per_run() {
    let port = free_port().expect("port");
    let s = RemoteSession::new(config(
        &format!("http://127.0.0.1:{port}"),
        "t",
        &[],
        RemoteMode::ReadWrite,
    ));
    let ws = Ws::new();
    ws.source("v1");
    let entry = ws.build();
    let start = Instant::now();
    let first = miss(ws.fetch(&s));
    assert!(
        matches!(
            first,
            RemoteMiss::Unavailable(SessionError::Failed(RemoteError::Unreachable { .. }))
        ),
        "{first:?}"
    );
    assert!(
        first
            .to_string()
            .starts_with("remote cache unavailable: cannot reach"),
        "{first}"
    );
    for _ in 0..5 {
        assert_eq!(
            miss(ws.fetch(&s)),
            RemoteMiss::Unavailable(SessionError::Disabled)
        );
    }
    assert_eq!(
        ws.upload(&s, entry),
        UploadOutcome::Skipped(UploadSkipped::Unavailable(SessionError::Disabled))
    );
    assert_eq!(s.stats().requests, 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn remote_server_stopped_mid_run_disables_the_session() {
    let mut server = start(ServerOptions::default());
    let s = session(&server, &[]);
    let one = Ws::new();
    one.source("v1");
    let entry = one.build();
    assert!(matches!(
        one.upload(&s, entry),
        UploadOutcome::Uploaded { .. }
    ));
    server.stop();
    let two = Ws::new();
    two.source("v1");
    let got = miss(two.fetch(&s));
    assert!(
        matches!(got, RemoteMiss::Unavailable(SessionError::Failed(_))),
        "{got:?}"
    );
    assert!(s.is_disabled());
}

#[test]
fn remote_program_hash_is_memoised() {
    let ws = Ws::new();
    let a = ws
        .store
        .program_digest(Path::new("/usr/bin/env"))
        .expect("hash");
    let b = ws
        .store
        .program_digest(Path::new("/usr/bin/env"))
        .expect("memo");
    assert_eq!(a, b);
    let (direct, _) = {
        let bytes = fs::read("/usr/bin/env").expect("read");
        (crate::cache::Digest::of_content(&bytes), bytes.len())
    };
    assert_eq!(a, direct);
}
