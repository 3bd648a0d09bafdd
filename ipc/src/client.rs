//! The blocking client: finds the runner's broker fd from the environment,
//! checks it, opens a private stream per process and sends requests on it.
//! Used by Rust tools directly and by the Node addon (`bridge-neon`).
//!
//! Concurrency model: one private stream per *process*, guarded by a mutex
//! (calls from several threads are serialized; each is a few µs). The
//! stream is tagged with the pid that opened it: after `fork` the child sees
//! a different pid and opens its own stream instead of writing into its
//! parent's, which would interleave frames.
//!
//! Version negotiation (docs/protocol.md section 7): the first Hello offers
//! the highest version this crate speaks; when the runner refuses it as
//! unsupported, the client retries on a new stream with the highest lower
//! version both sides speak, and later connections of the process start
//! with the version that was accepted.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};

use crate::frame::{self, FrameError};
use crate::message::{EnvQuery, PROTOCOL_VERSIONS, Request, Response, refused_version_list};
use crate::sys::{self, FdCheck};

/// Environment variable holding the broker fd number (decimal).
pub const ENV_FD: &str = "VP_IPC_FD";
/// Environment variable holding the per-task token.
pub const ENV_TOKEN: &str = "VP_IPC_TOKEN";
/// Environment variable holding the path of the runner's Node addon.
pub const ENV_NODE_CLIENT_PATH: &str = "VP_RUN_NODE_CLIENT_PATH";

/// Why there is no channel to a runner. Tools treat every variant as "not
/// under vp" and carry on; the message says which check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// `VP_IPC_FD` is not set: the process was not started by vp.
    #[error("not running under vp (`{ENV_FD}` is not set)")]
    NotUnderVp,
    /// A variable is set but its value is unusable.
    #[error("`{var}` has an unusable value {value:?}")]
    BadEnv {
        /// The variable name.
        var: &'static str,
        /// Its value, lossily decoded.
        value: String,
    },
    /// The announced fd is not open in this process (a parent closed it).
    #[error("inherited fd {fd} from `{ENV_FD}` is not open in this process")]
    FdClosed {
        /// The fd number.
        fd: RawFd,
    },
    /// The announced fd is open but is not a unix socket.
    #[error("inherited fd {fd} from `{ENV_FD}` is not a unix socket")]
    NotASocket {
        /// The fd number.
        fd: RawFd,
    },
    /// The announced fd is a socket of another type than `SOCK_SEQPACKET`.
    #[error("inherited fd {fd} from `{ENV_FD}` is a socket of type {found}, not SOCK_SEQPACKET")]
    WrongSocketType {
        /// The fd number.
        fd: RawFd,
        /// The `SO_TYPE` found.
        found: i32,
    },
}

/// Why one call failed. The runner is reachable but something went wrong;
/// tools should surface these (the Node addon throws them).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Opening the private stream failed.
    #[error("cannot connect to the vp runner: {0}")]
    Connect(#[source] io::Error),
    /// The runner answered with an error (bad token, bad glob...).
    #[error("the vp runner refused the request: {0}")]
    Rejected(String),
    /// The runner speaks none of the protocol versions this client offered.
    #[error(
        "the vp runner speaks no protocol version this client speaks (offered {offered:?}): {message} (hint: use a vp-ipc client as new as the runner, or a runner as new as the client)"
    )]
    NoCommonVersion {
        /// The versions this client offered, highest first.
        offered: Vec<u32>,
        /// The runner's last refusal.
        message: String,
    },
    /// Sending or receiving a frame failed.
    #[error("lost the connection to the vp runner: {0}")]
    Frame(#[from] FrameError),
    /// The runner closed the stream without answering.
    #[error(
        "the vp runner closed the connection without answering (hint: the task may have finished already)"
    )]
    Closed,
    /// The runner answered with a message that does not fit the request.
    #[error("the vp runner sent an unexpected answer to {request}: {answer}")]
    UnexpectedAnswer {
        /// Which request was sent.
        request: &'static str,
        /// The answer received, debug-formatted.
        answer: String,
    },
    /// A relative path could not be made absolute.
    #[error("cannot resolve relative path `{path}` against the current directory: {source}")]
    CurrentDir {
        /// The relative path.
        path: PathBuf,
        /// Why the current directory is unknown.
        #[source]
        source: io::Error,
    },
}

/// A channel to the vp runner that started this process (or an ancestor).
///
/// Cheap to create (nothing is connected until the first call), safe to
/// share between threads, and safe across `fork`.
#[derive(Debug)]
pub struct Client {
    broker: RawFd,
    token: String,
    name: String,
    /// Pid that opened `conn`. Read without the lock to detect a fork.
    owner: AtomicU32,
    conn: Mutex<Option<UnixStream>>,
    /// Versions to offer, highest first.
    versions: Vec<u32>,
    /// The version the runner accepted last (0: none yet): where the next
    /// connection of this process (or of a forked child) starts.
    negotiated: AtomicU32,
}

impl Client {
    /// Connects to the runner announced by `VP_IPC_FD` / `VP_IPC_TOKEN`.
    /// `name` is shown to the user next to this client's reports.
    pub fn from_env(name: impl Into<String>) -> Result<Client, Unavailable> {
        let Some(fd) = std::env::var_os(ENV_FD) else {
            return Err(Unavailable::NotUnderVp);
        };
        let fd = fd
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| Unavailable::BadEnv {
                var: ENV_FD,
                value: fd.to_string_lossy().into_owned(),
            })?;
        let token = std::env::var_os(ENV_TOKEN)
            .and_then(|t| t.into_string().ok())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Unavailable::BadEnv {
                var: ENV_TOKEN,
                value: std::env::var_os(ENV_TOKEN)
                    .map(|v| v.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            })?;
        Client::from_fd(fd, token, name)
    }

    /// Uses `fd` as the broker (after checking it is an open unix
    /// `SOCK_SEQPACKET` socket) with the given token. The fd is borrowed for
    /// the life of the process and never closed by the client.
    pub fn from_fd(
        fd: RawFd,
        token: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Client, Unavailable> {
        match sys::check_broker(fd) {
            FdCheck::Ok => {}
            FdCheck::Closed => return Err(Unavailable::FdClosed { fd }),
            FdCheck::NotASocket => return Err(Unavailable::NotASocket { fd }),
            FdCheck::WrongType(found) => return Err(Unavailable::WrongSocketType { fd, found }),
        }
        Ok(Client {
            broker: fd,
            token: token.into(),
            name: name.into(),
            owner: AtomicU32::new(sys::getpid()),
            conn: Mutex::new(None),
            versions: PROTOCOL_VERSIONS.to_vec(),
            negotiated: AtomicU32::new(0),
        })
    }

    /// Offers `versions` in the Hello instead of the ones this crate speaks
    /// (sorted highest first, duplicates dropped). Only for testing version
    /// negotiation against a runner: the requests are still encoded as this
    /// crate's version, so a real client must never claim another.
    #[doc(hidden)]
    pub fn offering_versions_for_test(mut self, versions: &[u32]) -> Client {
        let mut versions = versions.to_vec();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions.dedup();
        self.versions = versions;
        self
    }

    /// Reads under `path` (its whole subtree) are not inputs of this task.
    /// A relative path is resolved against the current directory.
    pub fn ignore_input(&self, path: impl AsRef<Path>) -> Result<(), CallError> {
        let path = absolute_bytes(path.as_ref())?;
        self.expect_ack("IgnoreInput", &Request::IgnoreInput { path })
    }

    /// Writes under `path` (its whole subtree) are not outputs of this task.
    /// A relative path is resolved against the current directory.
    pub fn ignore_output(&self, path: impl AsRef<Path>) -> Result<(), CallError> {
        let path = absolute_bytes(path.as_ref())?;
        self.expect_ack("IgnoreOutput", &Request::IgnoreOutput { path })
    }

    /// This run must not be stored in the cache.
    pub fn disable_cache(&self) -> Result<(), CallError> {
        self.expect_ack("DisableCache", &Request::DisableCache)
    }

    /// Reads `name` from the runner's full environment; with `tracked`, the
    /// value (or its absence) becomes part of the cache entry.
    pub fn get_env(
        &self,
        name: impl AsRef<OsStr>,
        tracked: bool,
    ) -> Result<Option<OsString>, CallError> {
        let req = Request::GetEnv {
            name: name.as_ref().as_bytes().to_vec(),
            tracked,
        };
        match self.request(&req)? {
            Response::Env { value } => Ok(value.map(OsString::from_vec)),
            other => Err(unexpected("GetEnv", other)),
        }
    }

    /// Reads every variable matching `query` from the runner's full
    /// environment; with `tracked`, the whole match-set becomes part of the
    /// cache entry.
    pub fn get_envs(
        &self,
        query: EnvQuery,
        tracked: bool,
    ) -> Result<BTreeMap<OsString, OsString>, CallError> {
        match self.request(&Request::GetEnvs { query, tracked })? {
            Response::Envs { map } => Ok(map
                .into_iter()
                .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
                .collect()),
            other => Err(unexpected("GetEnvs", other)),
        }
    }

    /// Sends one request and returns the runner's answer. An
    /// [`Response::Error`] answer is returned as [`CallError::Rejected`].
    pub fn request(&self, req: &Request) -> Result<Response, CallError> {
        let frame = frame::encode_frame(req)?;
        let pid = sys::getpid();
        let answer = if self.owner.load(Ordering::Acquire) == pid {
            let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            self.call_on(&mut conn, pid, &frame)
        } else {
            // We are a forked child. The lock may have been held at fork time
            // by a thread that does not exist here, so never block on it:
            // if it is busy, a one-shot stream is just as correct.
            match self.conn.try_lock() {
                Ok(mut conn) => self.call_on(&mut conn, pid, &frame),
                Err(TryLockError::Poisoned(p)) => self.call_on(&mut p.into_inner(), pid, &frame),
                Err(TryLockError::WouldBlock) => {
                    let mut stream = self.connect(pid)?;
                    exchange(&mut stream, &frame)
                }
            }
        }?;
        match answer {
            Response::Error { message } => Err(CallError::Rejected(message)),
            other => Ok(other),
        }
    }

    fn expect_ack(&self, request: &'static str, req: &Request) -> Result<(), CallError> {
        match self.request(req)? {
            Response::Ack => Ok(()),
            other => Err(unexpected(request, other)),
        }
    }

    fn call_on(
        &self,
        conn: &mut Option<UnixStream>,
        pid: u32,
        frame: &[u8],
    ) -> Result<Response, CallError> {
        if self.owner.load(Ordering::Acquire) != pid {
            // Closes only this process's copy of the parent's stream.
            *conn = None;
        }
        let stream = match conn {
            Some(stream) => stream,
            None => {
                let stream = self.connect(pid)?;
                self.owner.store(pid, Ordering::Release);
                conn.insert(stream)
            }
        };
        let answer = exchange(stream, frame);
        if answer.is_err() {
            // Never reuse a stream in an unknown state (half a frame read).
            *conn = None;
        }
        answer
    }

    /// Opens a private stream, negotiating the protocol version: offers the
    /// last accepted version (or the highest this client speaks) and, after
    /// an unsupported-version refusal, the highest lower version the runner
    /// said it speaks, each on a new stream.
    fn connect(&self, pid: u32) -> Result<UnixStream, CallError> {
        let Some(&highest) = self.versions.first() else {
            return Err(CallError::NoCommonVersion {
                offered: Vec::new(),
                message: "this client offers no protocol version".to_owned(),
            });
        };
        let mut version = match self.negotiated.load(Ordering::Acquire) {
            0 => highest,
            known => known,
        };
        loop {
            let message = match self.hello(pid, version) {
                Ok(stream) => {
                    self.negotiated.store(version, Ordering::Release);
                    return Ok(stream);
                }
                Err(CallError::Rejected(message)) => message,
                Err(other) => return Err(other),
            };
            let Some(runner_speaks) = refused_version_list(&message) else {
                return Err(CallError::Rejected(message));
            };
            // A runner that did not list its versions: try each lower one.
            let next =
                self.versions.iter().copied().find(|v| {
                    *v < version && (runner_speaks.is_empty() || runner_speaks.contains(v))
                });
            match next {
                Some(lower) => version = lower,
                None => {
                    return Err(CallError::NoCommonVersion {
                        offered: self.versions.clone(),
                        message,
                    });
                }
            }
        }
    }

    /// Sends one end of a new stream plus a Hello for `version` over the
    /// broker in a single message, then waits for the runner's verdict on
    /// the stream.
    fn hello(&self, pid: u32, version: u32) -> Result<UnixStream, CallError> {
        let (mine, theirs) = sys::stream_pair().map_err(CallError::Connect)?;
        let hello = frame::encode_frame(&Request::Hello {
            protocol: version,
            token: self.token.clone(),
            pid,
            client: self.name.clone(),
        })?;
        sys::send_with_fds(self.broker, &hello, &[theirs.as_raw_fd()])
            .map_err(CallError::Connect)?;
        drop(theirs);
        let mut stream = UnixStream::from(mine);
        match frame::read_frame::<Response>(&mut stream)? {
            Some(Response::Ack) => Ok(stream),
            Some(Response::Error { message }) => Err(CallError::Rejected(message)),
            Some(other) => Err(unexpected("Hello", other)),
            None => Err(CallError::Closed),
        }
    }
}

fn exchange(stream: &mut UnixStream, frame: &[u8]) -> Result<Response, CallError> {
    sys::send_all(stream.as_raw_fd(), frame).map_err(FrameError::Io)?;
    frame::read_frame::<Response>(stream)?.ok_or(CallError::Closed)
}

fn unexpected(request: &'static str, answer: Response) -> CallError {
    CallError::UnexpectedAnswer {
        request,
        answer: format!("{answer:?}"),
    }
}

fn absolute_bytes(path: &Path) -> Result<Vec<u8>, CallError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| CallError::CurrentDir {
                path: path.to_path_buf(),
                source,
            })?
            .join(path)
    };
    Ok(absolute.into_os_string().into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_made_absolute() {
        let cwd = std::env::current_dir().expect("cwd");
        let got = absolute_bytes(Path::new("dist")).expect("resolves");
        assert_eq!(got, cwd.join("dist").into_os_string().into_vec());
        assert_eq!(absolute_bytes(Path::new("/x")).expect("absolute"), b"/x");
    }

    #[test]
    fn a_non_socket_fd_is_unavailable() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        let err = Client::from_fd(file.as_raw_fd(), "t", "test").expect_err("not a socket");
        assert_eq!(
            err,
            Unavailable::NotASocket {
                fd: file.as_raw_fd()
            }
        );
        assert!(err.to_string().contains("not a unix socket"), "{err}");
    }

    #[test]
    fn a_closed_fd_is_unavailable() {
        let err = Client::from_fd(-5, "t", "test").expect_err("closed");
        assert!(matches!(err, Unavailable::FdClosed { fd: -5 }));
    }

    #[test]
    fn a_stream_socket_is_the_wrong_type() {
        let (a, _b) = sys::stream_pair().expect("socketpair");
        let err = Client::from_fd(a.as_raw_fd(), "t", "test").expect_err("wrong type");
        assert!(matches!(err, Unavailable::WrongSocketType { .. }), "{err}");
    }

    #[test]
    fn a_dead_runner_is_an_error_not_a_hang() {
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: fresh fds from socketpair.
        let (ours, runner) = unsafe {
            use std::os::fd::{FromRawFd, OwnedFd};
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let client = Client::from_fd(ours.as_raw_fd(), "t", "test").expect("valid broker");
        drop(runner);
        let err = client.disable_cache().expect_err("runner gone");
        assert!(matches!(err, CallError::Connect(_)), "{err}");
    }
}
