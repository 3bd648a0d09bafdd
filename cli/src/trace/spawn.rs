//! Starting a command under the tracer: the one entry point the runner and
//! `vp trace` call. It installs the filter hook as the command's last
//! `pre_exec`, spawns on a blocking thread (std's `spawn` waits for the
//! child's `execve`, which itself waits for the supervisor), receives the
//! listener on the loop and starts the supervisor on a thread of its own,
//! awaited by a task of the caller's `LocalExecutor`.
//!
//! `Trace::finish` waits for the whole traced tree, daemons included (their
//! file accesses are served by this process). When that takes more than a
//! second, the task's scope is told which traced processes are still
//! running; in a cancelled run the wait ends once the task's process group
//! is empty.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::rc::Rc;
use std::sync::PoisonError;
use std::time::Instant;

use async_io::{Async, Timer};
use futures_lite::future;
use smol::channel::Receiver;
use smol::{LocalExecutor, Task};

use crate::events::{
    CANCELLED_GRACE, LeftRunning, RunEvent, TaskScope, WAIT_NOTICE_AFTER, WAIT_TICK, Waiting,
    WaitingFor,
};

use super::handshake::{self, Handshake, Status};
use super::in_process::{self, InProcessLog};
use super::log::AccessLog;
use super::supervisor::{SeenThreads, Supervisor};
use super::{filter, install, resolve};

/// The child's stdio. Needed separately because converting a
/// `std::process::Command` into an `async_process::Command` resets its stdio
/// to "inherit"; these are applied after the conversion.
#[derive(Debug)]
pub(crate) struct ChildStdio {
    pub(crate) stdin: Stdio,
    pub(crate) stdout: Stdio,
    pub(crate) stderr: Stdio,
}

impl ChildStdio {
    pub(crate) fn inherit() -> Self {
        Self {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("could not create the tracer's handshake socket for `{program}`")]
    Socket {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("could not start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("could not take over the file-access listener of `{program}`")]
    Handshake {
        program: String,
        #[source]
        source: io::Error,
    },
}

/// The result of tracing one process tree.
#[derive(Debug)]
pub(crate) enum TraceOutcome {
    /// The whole tree was observed (see `AccessLog::untraceable` for parts
    /// that could not be decoded).
    Traced(Box<AccessLog>),
    /// The filter could not be installed; the command ran unobserved. The
    /// reason is a sentence for the user; the run must not be auto-cached.
    Untraced { reason: String },
}

/// A running supervisor (or the note that there is none).
///
/// Dropping it without `finish` leaves the supervisor running until the
/// traced tree exits, so the tree never loses its supervisor mid-run.
#[derive(Debug)]
pub(crate) struct Trace {
    state: State,
}

#[derive(Debug)]
enum State {
    Running(Option<Task<AccessLog>>, Watch),
    Untraced(String),
}

/// What `finish` needs to say what it waits for.
#[derive(Debug)]
struct Watch {
    /// The command's main process, which leads its process group.
    pid: u32,
    /// Thread ids that made notified calls (from the supervisor).
    seen: SeenThreads,
    /// Set once no process uses the filter any more (the log is then only
    /// being resolved).
    tree_gone: Rc<Cell<bool>>,
}

impl Trace {
    fn untraced(reason: String) -> Self {
        Self {
            state: State::Untraced(reason),
        }
    }

    /// Waits until every process and thread of the traced tree is gone
    /// (including daemons it left behind), then resolves the recorded paths
    /// (`resolve::snapshot`, on a blocking thread) and returns the log.
    ///
    /// Within a task's [`TaskScope`]: after [`WAIT_NOTICE_AFTER`] it emits
    /// a `RunEvent::TaskWaiting` naming the traced processes still running,
    /// and in a cancelled run it stops waiting (`Untraced`, the supervisor
    /// keeps serving what is left) once the task's process group is empty.
    pub(crate) async fn finish(mut self) -> TraceOutcome {
        let (task, watch) = match &mut self.state {
            State::Running(task, watch) => (task.take(), watch),
            State::Untraced(reason) => {
                return TraceOutcome::Untraced {
                    reason: std::mem::take(reason),
                };
            }
        };
        let Some(mut task) = task else {
            return TraceOutcome::Untraced {
                reason: "the trace was already finished".to_owned(),
            };
        };
        let Some(scope) = TaskScope::current() else {
            return TraceOutcome::Traced(Box::new(task.await));
        };
        let started = Instant::now();
        let mut told = false;
        loop {
            let done = future::or(async { Some((&mut task).await) }, async {
                Timer::after(WAIT_TICK).await;
                None
            })
            .await;
            if let Some(log) = done {
                return TraceOutcome::Traced(Box::new(log));
            }
            if watch.tree_gone.get() {
                // Only resolving paths now: nothing left to wait for.
                continue;
            }
            let waited = started.elapsed();
            if scope.cancelled()
                && waited >= CANCELLED_GRACE
                && crate::guard::group_is_empty(i32::try_from(watch.pid).unwrap_or(0))
            {
                // Serving the leftovers goes on (detached) while vp lives.
                task.detach();
                return TraceOutcome::Untraced {
                    reason: "the run was cancelled while processes it started were still running"
                        .to_owned(),
                };
            }
            if !told && waited >= WAIT_NOTICE_AFTER {
                told = true;
                let tids: Vec<u32> = watch
                    .seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .copied()
                    .collect();
                let processes = blocking::unblock(move || traced_processes(tids)).await;
                scope.emit(RunEvent::TaskWaiting {
                    task: scope.task,
                    waiting: Waiting {
                        what: WaitingFor::TracedProcesses,
                        processes,
                    },
                });
            }
        }
    }
}

/// The processes among `tids`' thread groups that are still alive and under
/// a seccomp filter with `no_new_privs` (ours sets both; a reused pid of an
/// unrelated process normally has neither).
fn traced_processes(tids: Vec<u32>) -> Vec<LeftRunning> {
    let mut tgids = BTreeSet::new();
    for tid in tids {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        if field("State:").is_some_and(|s| s.starts_with(['Z', 'X'])) {
            continue;
        }
        if field("Seccomp:") != Some("2") || field("NoNewPrivs:") != Some("1") {
            continue;
        }
        if let Some(tgid) = field("Tgid:").and_then(|t| t.parse::<u32>().ok()) {
            tgids.insert(tgid);
        }
    }
    tgids.into_iter().filter_map(LeftRunning::of).collect()
}

impl Drop for Trace {
    fn drop(&mut self) {
        if let State::Running(task, _) = &mut self.state
            && let Some(task) = task.take()
        {
            task.detach();
        }
    }
}

/// Starts `supervisor` on a thread of its own (not a pool thread: it is
/// held for the traced tree's whole life, and a full pool would leave the
/// child's `execve` unanswered). Returns the thread ids it sees and where
/// its log arrives. If no thread can be started, the supervisor and its
/// listener are dropped: the child's notified calls then fail (ENOSYS).
fn start(supervisor: Supervisor) -> io::Result<(SeenThreads, Receiver<AccessLog>)> {
    let seen = supervisor.seen_threads();
    let (done, served) = smol::channel::bounded(1);
    std::thread::Builder::new()
        .name("vp-supervisor".to_owned())
        .spawn(move || {
            // The receiver is gone only if vp stopped caring about this log.
            supervisor.run(|log| {
                let _ = done.send_blocking(log);
            });
        })?;
    Ok((seen, served))
}

/// Spawns `cmd` with the file-access tracer.
///
/// Hooks the caller added with `pre_exec` (fd placement) run before the
/// filter is installed. The supervisor runs on a thread of its own (`start`),
/// awaited (and its log resolved) by a task on `ex`, the executor driving
/// the caller. If the filter cannot be installed the command still runs and the
/// trace is `Untraced`.
///
/// With `in_process`, the command's dynamically linked programs record
/// their read-only accesses in-process (`in_process.rs`); without it, or if
/// its log cannot be made, every access is notified, which is as complete
/// and slower. With `reads`, every file the command opens to read is sent
/// there as it happens.
pub(crate) async fn spawn_traced(
    ex: &LocalExecutor<'_>,
    mut cmd: std::process::Command,
    stdio: ChildStdio,
    in_process: Option<InProcess<'_>>,
    reads: Option<Reads>,
) -> Result<(async_process::Child, Trace), SpawnError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let socket_error = |source: io::Error| SpawnError::Socket {
        program: program.clone(),
        source,
    };
    let (parent_end, child_end) = crate::child_fd::seqpacket_pair().map_err(socket_error)?;
    let parent_end = Async::new(parent_end).map_err(socket_error)?;

    let in_process = in_process
        .and_then(|options| hand_in_process_log(&mut cmd, &options))
        .map(std::sync::Arc::new);
    let allowed_from = in_process.as_deref().map(InProcessLog::allowed_from);
    if let (Some(log), Some(reads)) = (&in_process, reads.clone()) {
        InProcessLog::start_tailing(log, reads);
    }
    // SAFETY: the hook only makes async-signal-safe system calls on memory
    // it owns (see install.rs).
    unsafe {
        cmd.pre_exec(install::hook(
            filter::program(allowed_from),
            child_end.as_raw_fd(),
        ))
    };
    let mut cmd = async_process::Command::from(cmd);
    cmd.stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    let spawning = blocking::unblock(move || {
        let child = cmd.spawn();
        // Closing our copy of the child's end lets the handshake see EOF if
        // the child died before sending anything.
        drop(cmd);
        drop(child_end);
        child
    });
    let spawn_error = |source: io::Error| SpawnError::Spawn {
        program: program.clone(),
        source,
    };

    let received = handshake::receive(&parent_end).await;
    drop(parent_end);
    match received {
        Ok(Handshake::Installed(listener)) => {
            match Supervisor::new(listener, in_process, reads).and_then(start) {
                Ok((seen, served)) => {
                    let tree_gone = Rc::new(Cell::new(false));
                    let gone = Rc::clone(&tree_gone);
                    let task = ex.spawn(async move {
                        let log = served.recv().await.unwrap_or_else(|_| {
                            let mut log = AccessLog::default();
                            log.mark_untraceable(
                                "the tracer's thread ended without its log".to_owned(),
                            );
                            log
                        });
                        gone.set(true);
                        blocking::unblock(move || resolve::snapshot(log)).await
                    });
                    // If the spawn fails the child is gone: the supervisor sees
                    // POLLHUP, and the task is dropped here.
                    let child = spawning.await.map_err(spawn_error)?;
                    let watch = Watch {
                        pid: child.id(),
                        seen,
                        tree_gone,
                    };
                    Ok((
                        child,
                        Trace {
                            state: State::Running(Some(task), watch),
                        },
                    ))
                }
                Err(source) => {
                    // The listener is closed: the child's exec fails with ENOSYS.
                    if let Ok(mut child) = spawning.await {
                        let _ = child.kill();
                    }
                    Err(SpawnError::Handshake { program, source })
                }
            }
        }
        Ok(Handshake::Refused { status, errno }) => {
            let child = spawning.await.map_err(spawn_error)?;
            Ok((child, Trace::untraced(refusal_reason(status, errno))))
        }
        Ok(Handshake::Closed) => {
            let child = spawning.await.map_err(spawn_error)?;
            Ok((
                child,
                Trace::untraced(
                    "the command started without reporting whether it could be traced".to_owned(),
                ),
            ))
        }
        Err(source) => {
            // Any listener in flight was dropped with our socket end, so the
            // child cannot be waiting on a supervisor that will never come.
            if let Ok(mut child) = spawning.await {
                let _ = child.kill();
            }
            Err(SpawnError::Handshake { program, source })
        }
    }
}

/// How a traced command records in-process.
#[derive(Debug)]
pub(crate) struct InProcess<'a> {
    /// The materialized preload library (`in_process::library_for_run`).
    pub(crate) library: &'a Path,
    /// Whether the command inherits vp's environment (`vp trace`), or has
    /// every variable set on it after `env_clear` (`vp run`): where the
    /// task's own `LD_PRELOAD` and `ASAN_OPTIONS` are found.
    pub(crate) inherits_env: bool,
}

/// Where to send, while a traced command runs, each file it opens to read
/// (for `cache::prehash`): from the supervisor for notified opens, from a
/// thread tailing the in-process log for the others. Bounded, and sent to
/// with `offer`, which never waits.
pub(crate) type Reads = std::sync::mpsc::SyncSender<std::path::PathBuf>;

/// Offers `path` to `reads`: dropped when the queue is full (storing hashes
/// it then). False once the receiver is gone.
pub(crate) fn offer(reads: &Reads, path: std::path::PathBuf) -> bool {
    !matches!(
        reads.try_send(path),
        Err(std::sync::mpsc::TrySendError::Disconnected(_))
    )
}

/// Creates the in-process log and gives `cmd` what its programs need to
/// write to it: the fd (inherited), `VP_TRACE_LOG` and `LD_PRELOAD`.
/// `None` (everything notified) when the log cannot be made or the
/// library's path cannot be put in `LD_PRELOAD`.
fn hand_in_process_log(
    cmd: &mut std::process::Command,
    options: &InProcess<'_>,
) -> Option<InProcessLog> {
    // The task's own value: set on the command, else vp's if inherited.
    let existing = |name: &str| {
        cmd.get_envs()
            .find(|(set, _)| *set == OsStr::new(name))
            .map(|(_, value)| value.map(OsStr::to_owned))
            .unwrap_or_else(|| {
                options
                    .inherits_env
                    .then(|| std::env::var_os(name))
                    .flatten()
            })
    };
    let preload = in_process::preload_value(options.library, existing("LD_PRELOAD").as_deref())?;
    let asan = in_process::asan_options_value(existing("ASAN_OPTIONS").as_deref());
    let log = InProcessLog::create().ok()?;
    let fd = log.raw_fd();
    cmd.env(in_process::LOG_VAR, log.env_value())
        .env("LD_PRELOAD", preload);
    if let Some(asan) = asan {
        cmd.env("ASAN_OPTIONS", asan);
    }
    // SAFETY: the hook only calls fcntl (async-signal-safe); `fd` stays
    // open in vp (and so in the forked child) until the log is dropped,
    // after the spawn.
    unsafe {
        cmd.pre_exec(move || crate::child_fd::place(fd, fd));
    }
    Some(log)
}

/// A sentence saying why the filter could not be installed.
fn refusal_reason(status: Status, errno: i32) -> String {
    let err = io::Error::from_raw_os_error(errno);
    match (status, errno) {
        (Status::SeccompFailed, libc::EBUSY) => format!(
            "this process tree already has a file-access tracer (an outer `vp`, or a sandbox using \
             seccomp user notification), and Linux allows only one ({err})"
        ),
        (Status::SeccompFailed, libc::EINVAL | libc::ENOSYS) => {
            format!(
                "this kernel does not support seccomp user notification, Linux 5.5 or newer is needed ({err})"
            )
        }
        (Status::SeccompFailed, libc::EACCES | libc::EPERM) => {
            format!("installing a seccomp filter is not permitted here ({err})")
        }
        (Status::SeccompFailed, _) => format!("installing the seccomp filter failed ({err})"),
        (Status::NoNewPrivsFailed, _) => {
            format!("setting no_new_privs failed, which seccomp requires ({err})")
        }
        (Status::Installed, _) => format!("the tracer reported an unexpected state ({err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_that_are_gone_are_not_traced_processes() {
        assert_eq!(traced_processes(vec![0, u32::MAX]), []);
    }

    #[test]
    fn refusal_reasons_name_the_cause() {
        assert!(
            refusal_reason(Status::SeccompFailed, libc::EBUSY)
                .contains("already has a file-access tracer")
        );
        assert!(refusal_reason(Status::SeccompFailed, libc::EINVAL).contains("does not support"));
        assert!(refusal_reason(Status::NoNewPrivsFailed, libc::EPERM).contains("no_new_privs"));
    }
}
