//! The HTTP side of the remote cache: `RemoteClient` speaks the Turborepo
//! remote-cache API v8 (`GET`/`PUT`/`HEAD /v8/artifacts/{id}`, `GET
//! /v8/artifacts/status`) with a blocking `ureq` agent (callers run it on
//! `blocking::unblock` threads), and `RemoteSession` is the per-run handle
//! that stops asking after the first failure, so a server that is down costs
//! one timeout per run, not one per task.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ureq::Agent;

use super::config::RemoteConfig;

/// A whole request (a large upload on a slow link) may take this many times
/// the connect/read timeout: 5 minutes by default.
const WHOLE_REQUEST_FACTOR: u32 = 100;

/// Why a request to the server did not give an answer vp can use. Every
/// variant is a reason to carry on without the remote cache, never to fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RemoteError {
    #[error("cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url} did not answer within {} ms", after.as_millis())]
    Timeout { url: String, after: Duration },
    #[error(
        "{url} refused the token (HTTP {status}) (hint: check `VP_REMOTE_CACHE_TOKEN` and `VP_REMOTE_CACHE_TEAM`)"
    )]
    AuthRefused { url: String, status: u16 },
    #[error("{url} answered HTTP {status} to {op}")]
    ServerError {
        url: String,
        op: &'static str,
        status: u16,
    },
    #[error("{url} sent a response vp cannot use: {detail}")]
    BadResponse { url: String, detail: String },
    #[error(
        "the artifact is {} bytes, over the limit of {limit} (hint: raise `VP_REMOTE_CACHE_MAX_ARTIFACT`)",
        size.map_or_else(|| "more than the limit".to_owned(), |s| s.to_string())
    )]
    TooLarge { size: Option<u64>, limit: u64 },
}

impl RemoteError {
    /// Whether later requests in this run would fail the same way (the
    /// server is down, slow, refuses us or is broken), so asking again only
    /// costs time. An artifact too large is about that artifact alone.
    pub(crate) fn ends_session(&self) -> bool {
        !matches!(self, Self::TooLarge { .. })
    }
}

/// A downloaded artifact: its body and its `x-artifact-tag`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Download {
    pub(crate) body: Vec<u8>,
    pub(crate) tag: Option<String>,
}

/// One configured server.
pub(crate) struct RemoteClient {
    agent: Agent,
    config: RemoteConfig,
}

impl RemoteClient {
    pub(crate) fn new(config: RemoteConfig) -> Self {
        let agent: Agent = Agent::config_builder()
            // 4xx/5xx are answers this module interprets, not transport errors.
            .http_status_as_error(false)
            .timeout_connect(Some(config.timeout))
            .timeout_resolve(Some(config.timeout))
            .timeout_send_request(Some(config.timeout))
            .timeout_recv_response(Some(config.timeout))
            .timeout_per_read(Some(config.timeout))
            .timeout_per_write(Some(config.timeout))
            // Per-read timeouts do not stop a server that drips a byte at a
            // time; a whole request gets a generous bound of its own.
            .timeout_global(Some(config.timeout.saturating_mul(WHOLE_REQUEST_FACTOR)))
            // An artifact id names one object; a redirect to a CDN (the npm
            // server's `TURBO_CACHE_READ_URL`) is followed, but not forever.
            .max_redirects(3)
            .user_agent(concat!("vp/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { agent, config }
    }

    pub(crate) fn config(&self) -> &RemoteConfig {
        &self.config
    }

    fn artifact_url(&self, id: &str) -> String {
        let (param, team) = self.config.team.query();
        format!("{}/v8/artifacts/{id}?{param}={team}", self.config.url)
    }

    /// The URL as shown in messages: no query string.
    fn shown(&self) -> String {
        self.config.url.clone()
    }

    fn with_auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.config.token {
            Some(token) => req.header("Authorization", format!("Bearer {}", token.expose())),
            None => req,
        }
    }

    fn transport(&self, err: ureq::Error) -> RemoteError {
        let url = self.shown();
        match err {
            ureq::Error::Timeout(_) => RemoteError::Timeout {
                url,
                after: self.config.timeout,
            },
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                RemoteError::Timeout {
                    url,
                    after: self.config.timeout,
                }
            }
            ureq::Error::BodyExceedsLimit(limit) => RemoteError::TooLarge { size: None, limit },
            ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Io(_)
            | ureq::Error::Tls(_)
            | ureq::Error::Rustls(_) => RemoteError::Unreachable {
                url,
                detail: err.to_string(),
            },
            other => RemoteError::BadResponse {
                url,
                detail: other.to_string(),
            },
        }
    }

    fn status_error(&self, op: &'static str, status: u16) -> RemoteError {
        match status {
            401 | 403 => RemoteError::AuthRefused {
                url: self.shown(),
                status,
            },
            _ => RemoteError::ServerError {
                url: self.shown(),
                op,
                status,
            },
        }
    }

    /// `PUT` an artifact. `tag` is the signature (`x-artifact-tag`).
    pub(crate) fn put(&self, id: &str, body: &[u8], tag: Option<&str>) -> Result<(), RemoteError> {
        let limit = self.config.max_artifact;
        if body.len() as u64 > limit {
            return Err(RemoteError::TooLarge {
                size: Some(body.len() as u64),
                limit,
            });
        }
        let mut req = self
            .with_auth(self.agent.put(&self.artifact_url(id)))
            .header("Content-Type", "application/octet-stream");
        if let Some(tag) = tag {
            req = req.header("x-artifact-tag", tag);
        }
        let resp = req.send(body).map_err(|e| self.transport(e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            413 => Err(RemoteError::TooLarge {
                size: Some(body.len() as u64),
                limit,
            }),
            status => Err(self.status_error("an upload", status)),
        }
    }

    /// `GET` an artifact: `Ok(None)` when the server does not have it.
    pub(crate) fn get(&self, id: &str) -> Result<Option<Download>, RemoteError> {
        let resp = self
            .with_auth(self.agent.get(&self.artifact_url(id)))
            .call()
            .map_err(|e| self.transport(e))?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(self.status_error("a download", status)),
        }
        let tag = resp
            .headers()
            .get("x-artifact-tag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limit = self.config.max_artifact;
        // Read one byte past the limit to tell "exactly at" from "over";
        // ureq's own limit would turn the excess into an error we could not
        // tell from a broken connection.
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => RemoteError::Timeout {
                    url: self.shown(),
                    after: self.config.timeout,
                },
                _ => RemoteError::Unreachable {
                    url: self.shown(),
                    detail: format!("the download broke off: {e}"),
                },
            })?;
        if body.len() as u64 > limit {
            return Err(RemoteError::TooLarge { size: None, limit });
        }
        Ok(Some(Download { body, tag }))
    }

    /// `HEAD` an artifact: whether the server has it.
    pub(crate) fn exists(&self, id: &str) -> Result<bool, RemoteError> {
        let resp = self
            .with_auth(self.agent.head(&self.artifact_url(id)))
            .call()
            .map_err(|e| self.transport(e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            status => Err(self.status_error("an existence check", status)),
        }
    }

    /// `GET /v8/artifacts/status`: the server's own word on whether caching
    /// is enabled (`"enabled"`, `"disabled"`, `"over_limit"`, `"paused"`).
    /// Also checks the token, which the status route may not: `vp cache
    /// remote-check` then `HEAD`s an artifact that does not exist.
    pub(crate) fn status(&self) -> Result<String, RemoteError> {
        let (param, team) = self.config.team.query();
        let url = format!("{}/v8/artifacts/status?{param}={team}", self.config.url);
        let resp = self
            .with_auth(self.agent.get(&url))
            .call()
            .map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(self.status_error("the status request", status));
        }
        let text = resp
            .into_body()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| RemoteError::BadResponse {
                url: self.shown(),
                detail: format!("the status is not JSON: {e}"),
            })?;
        value
            .get("status")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RemoteError::BadResponse {
                url: self.shown(),
                detail: "the status has no `status` field".to_owned(),
            })
    }
}

/// Bytes and time spent talking to the server in one run (`-v`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransferStats {
    pub(crate) downloaded: u64,
    pub(crate) uploaded: u64,
    pub(crate) requests: u64,
    pub(crate) time: Duration,
}

/// The remote cache for one run, shared by every task (`Arc`). After the
/// first error that `ends_session`, every call returns `Disabled` at once;
/// the first error is kept for the run's one notice.
pub(crate) struct RemoteSession {
    client: RemoteClient,
    disabled: AtomicBool,
    first_failure: Mutex<Option<RemoteError>>,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    requests: AtomicU64,
    nanos: AtomicU64,
    /// Results this run downloaded and refused (corrupt, wrongly signed):
    /// an upload of the same id replaces them instead of taking their
    /// presence for a result already shared.
    rejected: Mutex<BTreeSet<String>>,
}

/// A session call that did not reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// This request failed (the session is now disabled if it ends it).
    Failed(RemoteError),
    /// An earlier request failed; nothing was sent.
    Disabled,
}

impl RemoteSession {
    pub(crate) fn new(config: RemoteConfig) -> Self {
        Self::with_client(RemoteClient::new(config))
    }

    pub(crate) fn with_client(client: RemoteClient) -> Self {
        Self {
            client,
            disabled: AtomicBool::new(false),
            first_failure: Mutex::new(None),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            rejected: Mutex::new(BTreeSet::new()),
        }
    }

    /// Notes that the artifact `id` was downloaded and refused.
    pub(crate) fn note_rejected(&self, id: &str) {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned());
    }

    /// Whether this run downloaded the artifact `id` and refused it.
    pub(crate) fn was_rejected(&self, id: &str) -> bool {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id)
    }

    pub(crate) fn config(&self) -> &RemoteConfig {
        self.client.config()
    }

    /// Whether an earlier failure stopped the remote cache for this run.
    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }

    /// The failure that disabled the session. (The runner reports it when
    /// the failing call returns `SessionError::Failed`.)
    #[cfg(test)]
    pub(crate) fn first_failure(&self) -> Option<RemoteError> {
        self.first_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn stats(&self) -> TransferStats {
        TransferStats {
            downloaded: self.downloaded.load(Ordering::Relaxed),
            uploaded: self.uploaded.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            time: Duration::from_nanos(self.nanos.load(Ordering::Relaxed)),
        }
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&RemoteClient) -> Result<T, RemoteError>,
    ) -> Result<T, SessionError> {
        if self.is_disabled() {
            return Err(SessionError::Disabled);
        }
        let start = Instant::now();
        let result = f(&self.client);
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(spent, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        result.map_err(|err| {
            if !err.ends_session() {
                return SessionError::Failed(err);
            }
            // Only the call that ends the session reports the failure:
            // requests already in flight on other threads when the server
            // went away see `Disabled`, so the run says it once.
            if self.disabled.swap(true, Ordering::AcqRel) {
                return SessionError::Disabled;
            }
            let mut first = self
                .first_failure
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            first.get_or_insert_with(|| err.clone());
            SessionError::Failed(err)
        })
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Download>, SessionError> {
        let got = self.call(|c| c.get(id))?;
        if let Some(d) = &got {
            self.downloaded
                .fetch_add(d.body.len() as u64, Ordering::Relaxed);
        }
        Ok(got)
    }

    pub(crate) fn put(&self, id: &str, body: &[u8], tag: Option<&str>) -> Result<(), SessionError> {
        self.call(|c| c.put(id, body, tag))?;
        self.uploaded
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn exists(&self, id: &str) -> Result<bool, SessionError> {
        self.call(|c| c.exists(id))
    }

    pub(crate) fn status(&self) -> Result<String, SessionError> {
        self.call(RemoteClient::status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::config::{RemoteInputs, RemoteMode};
    use std::ffi::OsString;

    pub(crate) fn config_for(url: &str, extra: &[(&str, &str)]) -> RemoteConfig {
        let mut env: Vec<(OsString, OsString)> = vec![("VP_REMOTE_CACHE_URL".into(), url.into())];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        RemoteConfig::resolve(&RemoteInputs {
            env: &env,
            file: None,
            flag: Some(RemoteMode::ReadWrite),
        })
        .expect("valid test config")
        .expect("configured")
    }

    #[test]
    fn a_session_can_be_shared_by_blocking_threads() {
        fn check<T: Send + Sync>() {}
        check::<RemoteSession>();
    }

    #[test]
    fn a_refused_connection_fails_fast_and_disables_the_session() {
        // A port nothing listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let session = RemoteSession::new(config_for(&format!("http://127.0.0.1:{port}"), &[]));
        let start = Instant::now();
        let first = session.get("abc");
        assert!(
            matches!(
                first,
                Err(SessionError::Failed(RemoteError::Unreachable { .. }))
            ),
            "{first:?}"
        );
        assert!(session.is_disabled());
        assert_eq!(session.get("def"), Err(SessionError::Disabled));
        assert_eq!(session.put("def", b"x", None), Err(SessionError::Disabled));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(session.stats().requests, 1);
        let notice = session.first_failure().expect("kept").to_string();
        assert!(
            notice.starts_with("cannot reach http://127.0.0.1:"),
            "{notice}"
        );
    }

    #[test]
    fn a_silent_server_times_out_once() {
        // Accepts connections, never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let session = RemoteSession::new(config_for(
            &format!("http://127.0.0.1:{port}"),
            &[("VP_REMOTE_CACHE_TIMEOUT_MS", "200")],
        ));
        let start = Instant::now();
        let first = session.get("abc");
        assert!(
            matches!(
                first,
                Err(SessionError::Failed(RemoteError::Timeout { .. }))
            ),
            "{first:?}"
        );
        assert_eq!(session.exists("abc"), Err(SessionError::Disabled));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        drop(listener);
    }

    #[test]
    fn oversize_upload_is_refused_locally_and_keeps_the_session() {
        let session = RemoteSession::new(config_for(
            "http://127.0.0.1:9",
            &[("VP_REMOTE_CACHE_MAX_ARTIFACT", "4")],
        ));
        let got = session.put("abc", b"12345", None);
        assert!(
            matches!(got, Err(SessionError::Failed(RemoteError::TooLarge { .. }))),
            "{got:?}"
        );
        assert!(!session.is_disabled());
    }
}
