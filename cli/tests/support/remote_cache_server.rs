//! A real Turborepo remote-cache server for tests: the npm package
//! `turborepo-remote-cache`, pinned in `fixtures/remote-cache-server/`
//! (installed by `scripts/bootstrap.sh`), started with `node` on 127.0.0.1
//! and a free port, local storage in a temp dir, and a static token. Shared
//! by the unit tests in `cli/src/remote/` (through `#[path]`) and the e2e
//! tests in `cli/tests/`: std and `tempfile` only, so both can include it.
//! The server is killed when the handle drops.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer its first request (Node
/// loads ~240 packages; a loaded CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The one token the server accepts (`TURBO_TOKEN`).
    pub token: String,
    /// Set on the server as `TURBO_REMOTE_CACHE_SIGNATURE_KEY`: with it the
    /// server stores and returns `x-artifact-tag` (it never checks tags;
    /// without it, it drops them).
    pub keep_tags: bool,
    /// Where artifacts go; a fresh temp dir when `None`. Reuse one to
    /// restart a server with the same contents.
    pub storage: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            token: "vp-test-token".to_owned(),
            keep_tags: false,
            storage: None,
        }
    }
}

pub struct RemoteCacheServer {
    child: Option<Child>,
    port: u16,
    storage: PathBuf,
    log: PathBuf,
    token: String,
    _temp: Option<tempfile::TempDir>,
}

/// `fixtures/remote-cache-server/node_modules/turborepo-remote-cache/dist/cli.js`.
pub fn server_script(repo_root: &Path) -> PathBuf {
    repo_root.join("fixtures/remote-cache-server/node_modules/turborepo-remote-cache/dist/cli.js")
}

/// A port nothing listens on right now (bound, read, released). Also what a
/// test uses for "a server that is not running".
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RemoteCacheServer {
    /// Starts the server and waits until it answers `GET
    /// /v8/artifacts/status`. `repo_root` is the vp repository.
    pub fn start(repo_root: &Path, options: ServerOptions) -> io::Result<Self> {
        let script = server_script(repo_root);
        if !script.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} is missing: run scripts/bootstrap.sh (it installs fixtures/remote-cache-server from its package-lock.json)",
                    script.display()
                ),
            ));
        }
        let (temp, storage) = match &options.storage {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::tempdir()?;
                let storage = temp.path().join("artifacts");
                (Some(temp), storage)
            }
        };
        fs::create_dir_all(&storage)?;
        let log = storage.with_extension("server.log");
        let port = free_port()?;
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .env("NODE_ENV", "production")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("STORAGE_PROVIDER", "local")
            .env("STORAGE_PATH", &storage)
            .env("STORAGE_PATH_USE_TMP_FOLDER", "false")
            .env("TURBO_TOKEN", &options.token)
            .env("LOG_LEVEL", "warn")
            .env_remove("TURBO_REMOTE_CACHE_SIGNATURE_KEY")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if options.keep_tags {
            cmd.env("TURBO_REMOTE_CACHE_SIGNATURE_KEY", "stored-not-checked");
        }
        let child = cmd.spawn()?;
        let mut server = Self {
            child: Some(child),
            port,
            storage,
            log,
            token: options.token,
            _temp: temp,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    fn wait_until_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "the remote-cache server exited with {status} before answering:\n{log}"
                )));
            }
            if self.status_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the remote-cache server did not answer on port {} within {START_TIMEOUT:?}:\n{log}",
                        self.port
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One raw HTTP/1.0 request: no client crate needed here.
    fn status_ok(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /v8/artifacts/status HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
    }

    /// `http://127.0.0.1:<port>`, for `VP_REMOTE_CACHE_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The directory the server stores artifacts in (`<team>/<id>`).
    pub fn storage(&self) -> &Path {
        &self.storage
    }

    /// Where the server keeps one artifact (its tag is `<id>.tag` beside it).
    pub fn artifact_path(&self, team: &str, id: &str) -> PathBuf {
        self.storage.join(team).join(id)
    }

    /// Every artifact file stored for `team` (tags excluded).
    pub fn artifacts(&self, team: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(self.storage.join(team))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_none_or(|x| x != "tag"))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Kills the server now (a test of "the server went away").
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RemoteCacheServer {
    fn drop(&mut self) {
        self.stop();
    }
}
