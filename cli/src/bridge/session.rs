//! [`BridgeSession`]: the bridge for one task execution. It creates the
//! broker pair, prepares the child (`configure_child`: env vars and a
//! `pre_exec` hook placing the broker at a fixed fd), then `serve`s every
//! client on a private executor until the task is done and the pending
//! requests are drained, and returns the [`BridgeReport`]. Called by the
//! runner's spawn path (`run/`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::pin::pin;
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;
use smol::LocalExecutor;
use smol::channel::{Receiver, Sender};
use vp_ipc::{ENV_FD, ENV_NODE_CLIENT_PATH, ENV_TOKEN, Response};

use super::broker::{self, BrokerMsg, RefusalKind};
use super::connection::{self, Ended};
use super::env_answer::{EnvSource, UntrackedPolicy};
use super::report::BridgeReport;

/// How long to keep listening after the task ended. Normally everything is
/// closed by then and the drain ends at once; this bounds the wait when a
/// daemonized grandchild keeps the broker or a stream open.
pub(crate) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// What a session needs from the runner.
#[derive(Clone)]
pub(crate) struct BridgeContext {
    /// The runner's full environment and the untracked-name policy.
    pub(crate) env: EnvSource,
    /// The materialized Node addon, exported as `VP_RUN_NODE_CLIENT_PATH`.
    pub(crate) addon_path: Option<PathBuf>,
    /// See [`DEFAULT_DRAIN_TIMEOUT`].
    pub(crate) drain_timeout: Duration,
}

impl BridgeContext {
    /// `full_env` is vp's own environment (not the stripped child env);
    /// `is_untracked` says which names configuration keeps untracked.
    pub(crate) fn new(
        full_env: Rc<BTreeMap<OsString, OsString>>,
        is_untracked: UntrackedPolicy,
        addon_path: Option<PathBuf>,
    ) -> Self {
        BridgeContext {
            env: EnvSource::new(full_env, is_untracked),
            addon_path,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// The bridge of one task execution. Lifecycle: `new` → `configure_child`
/// on the task's `Command` → spawn → drop the `Command` → `serve`.
pub(crate) struct BridgeSession {
    ctx: BridgeContext,
    token: String,
    server: OwnedFd,
    /// Moved into the `Command`'s `pre_exec` hook by `configure_child`.
    child_end: Option<OwnedFd>,
    child_fd: RawFd,
}

impl BridgeSession {
    /// Creates the broker pair and a fresh random token.
    pub(crate) fn new(ctx: BridgeContext) -> io::Result<BridgeSession> {
        let (server, child_end) = crate::child_fd::seqpacket_pair()?;
        Ok(BridgeSession {
            ctx,
            token: random_token()?,
            server,
            child_end: Some(child_end),
            child_fd: broker::child_fd_number(),
        })
    }

    /// Prepares `cmd` to talk to this session: sets `VP_IPC_FD`,
    /// `VP_IPC_TOKEN` and `VP_RUN_NODE_CLIENT_PATH`, and adds a `pre_exec`
    /// hook that installs the broker at the fixed fd without `FD_CLOEXEC`.
    ///
    /// Call it once, after the command's environment is final (`env_clear`
    /// afterwards would drop the variables). The runner's copy of the
    /// broker's child end moves into `cmd`: drop `cmd` (and any
    /// `async_process::Command` built from it) right after spawning, or the
    /// session cannot see the child end's close and waits for the drain
    /// timeout instead.
    pub(crate) fn configure_child(&mut self, cmd: &mut Command) {
        cmd.env(ENV_FD, self.child_fd.to_string());
        cmd.env(ENV_TOKEN, &self.token);
        if let Some(addon) = &self.ctx.addon_path {
            cmd.env(ENV_NODE_CLIENT_PATH, addon);
        }
        let Some(end) = self.child_end.take() else {
            debug_assert!(false, "configure_child called twice on one bridge session");
            return;
        };
        let target = self.child_fd;
        // SAFETY: the hook runs between fork and exec and only calls dup2 /
        // fcntl (async-signal-safe); it allocates nothing.
        unsafe {
            cmd.pre_exec(move || crate::child_fd::place(end.as_raw_fd(), target));
        }
    }

    /// Serves the task's clients until `task_done` resolves (the child, or
    /// better the whole traced process tree, has exited), then drains what
    /// is pending (bounded by the drain timeout) and returns the report.
    ///
    /// Must be polled while the task runs: a tool calling `getEnv` waits for
    /// the answer. Runs its connections on a private executor, so the caller
    /// only needs to poll this one future on its loop.
    #[cfg(test)]
    pub(crate) async fn serve(self, task_done: impl Future<Output = ()>) -> BridgeReport {
        self.serve_with(task_done).await.1
    }

    /// Like [`BridgeSession::serve`], but `task` is the future that waits
    /// for the task (e.g. `child.status()`); returns its output with the
    /// report.
    pub(crate) async fn serve_with<T>(
        mut self,
        task: impl Future<Output = T>,
    ) -> (T, BridgeReport) {
        // Any copy of the child end left here would keep the broker from
        // ever reporting EOF.
        self.child_end = None;
        let shared = Shared {
            env: self.ctx.env.clone(),
            token: self.token,
            report: RefCell::new(BridgeReport::default()),
            open: RefCell::new(BTreeMap::new()),
            next_id: Cell::new(0),
            negotiating: RefCell::new(BTreeMap::new()),
        };
        let broker = match Async::new(self.server) {
            Ok(broker) => broker,
            Err(err) => {
                shared
                    .report
                    .borrow_mut()
                    .protocol_errors
                    .push(format!("cannot watch the bridge socket: {err}"));
                let output = task.await;
                return (output, shared.report.into_inner());
            }
        };
        let ex = LocalExecutor::new();
        let output = ex
            .run(run_phases(
                &ex,
                &broker,
                &shared,
                task,
                self.ctx.drain_timeout,
            ))
            .await;
        // Cancels connections still open after the drain, closing their streams.
        drop(ex);
        let mut report = shared.report.into_inner();
        report.lingering_clients = shared.open.into_inner().into_values().collect();
        report.unnegotiated_clients = shared
            .negotiating
            .into_inner()
            .into_values()
            .map(|(label, version)| {
                format!(
                    "{label} asked for protocol version {version} and never connected with a version this vp speaks"
                )
            })
            .collect();
        (output, report)
    }

    /// The child end and token, for tests that act as the child in-process.
    #[cfg(test)]
    pub(crate) fn take_child_end_for_test(&mut self) -> Option<(OwnedFd, String)> {
        self.child_end.take().map(|end| (end, self.token.clone()))
    }
}

/// State shared by the accept loop and every connection of one session.
struct Shared {
    env: EnvSource,
    token: String,
    report: RefCell<BridgeReport>,
    /// Connections still being served: id → label.
    open: RefCell<BTreeMap<u64, String>>,
    next_id: Cell<u64>,
    /// Clients refused for an unsupported protocol version that have not
    /// connected since: pid → (label, version asked for). Their retry with a
    /// version this runner speaks removes them; any left at the end make
    /// the run not cacheable (what they meant to report is unknown).
    negotiating: RefCell<BTreeMap<u32, (String, u32)>>,
}

impl Shared {
    fn protocol_error(&self, message: String) {
        self.report.borrow_mut().protocol_errors.push(message);
    }
}

/// Phase 1: accept and serve while the task runs. Phase 2: once it is
/// done, keep going until the broker and every stream are closed, or the
/// drain timeout passes.
async fn run_phases<'a, T>(
    ex: &LocalExecutor<'a>,
    broker: &'a Async<OwnedFd>,
    shared: &'a Shared,
    task: impl Future<Output = T>,
    drain_timeout: Duration,
) -> T {
    // Every connection holds a sender; `idle` closes when the accept loop
    // and all connections are finished.
    let (busy, idle) = smol::channel::bounded::<()>(1);
    let mut accept = pin!(accept_loop(ex, broker, shared, busy));
    let mut task = pin!(task);
    let first = future::or(
        async {
            accept.as_mut().await;
            None
        },
        async { Some(task.as_mut().await) },
    )
    .await;
    let accept_done = first.is_none();
    let output = match first {
        Some(output) => output,
        None => task.as_mut().await,
    };
    let drain = async {
        if !accept_done {
            accept.as_mut().await;
        }
        wait_idle(&idle).await;
    };
    future::or(drain, async {
        Timer::after(drain_timeout).await;
    })
    .await;
    output
}

async fn wait_idle(idle: &Receiver<()>) {
    // Nothing is ever sent: recv returns once every sender is dropped.
    while idle.recv().await.is_ok() {}
}

/// Receives Hellos on the broker until every holder of the child end has
/// closed it, spawning one connection per accepted client.
async fn accept_loop<'a>(
    ex: &LocalExecutor<'a>,
    broker: &'a Async<OwnedFd>,
    shared: &'a Shared,
    busy: Sender<()>,
) {
    loop {
        let msg = match broker.read_with(|fd| broker::recv(fd.as_raw_fd())).await {
            Ok(msg) => msg,
            Err(err) => {
                shared.protocol_error(format!("reading the bridge broker failed: {err}"));
                return;
            }
        };
        let (data, fds, truncated) = match msg {
            BrokerMsg::Eof => return,
            BrokerMsg::Datagram {
                data,
                fds,
                truncated,
            } => (data, fds, truncated),
        };
        let accepted = match broker::accept(&data, fds, truncated, &shared.token) {
            Ok(accepted) => accepted,
            Err(refused) => {
                if let Some(stream) = refused.stream {
                    tell_and_close(stream, &refused.reason);
                }
                match refused.kind {
                    RefusalKind::ProtocolError => shared.protocol_error(refused.reason),
                    RefusalKind::UnsupportedVersion {
                        pid,
                        version,
                        label,
                    } => {
                        shared
                            .report
                            .borrow_mut()
                            .version_refusals
                            .push(format!("{label} asked for protocol version {version}"));
                        shared
                            .negotiating
                            .borrow_mut()
                            .insert(pid, (label, version));
                    }
                }
                continue;
            }
        };
        // A client that was refused a version has now negotiated one.
        shared.negotiating.borrow_mut().remove(&accepted.pid);
        let label = accepted.label;
        let stream = match Async::new(UnixStream::from(accepted.stream)) {
            Ok(stream) => stream,
            Err(err) => {
                shared.protocol_error(format!("{label}: cannot watch its stream: {err}"));
                continue;
            }
        };
        let id = shared.next_id.get();
        shared.next_id.set(id + 1);
        shared.open.borrow_mut().insert(id, label.clone());
        shared.report.borrow_mut().clients.push(label.clone());
        let busy = busy.clone();
        ex.spawn(async move {
            let ended = connection::serve(stream, &label, &shared.env, &shared.report).await;
            if let Ended::ProtocolError(message) = ended {
                shared.protocol_error(format!("{label}: {message}"));
            }
            shared.open.borrow_mut().remove(&id);
            drop(busy);
        })
        .detach();
    }
}

/// Best-effort `Error` answer on a refused stream (a fresh, empty socket
/// buffer takes a small frame without blocking), then close it.
fn tell_and_close(stream: OwnedFd, reason: &str) {
    let mut stream = UnixStream::from(stream);
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    if let Ok(frame) = vp_ipc::encode_frame(&Response::Error {
        message: reason.to_owned(),
    }) {
        let _ = stream.write_all(&frame);
    }
}

fn random_token() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("cannot generate the bridge token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
