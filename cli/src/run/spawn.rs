//! Starting one process of a task and collecting its output and exit code.
//!
//! Children run in their own process group (so Ctrl-C can be forwarded to
//! the whole tree and a tool's own children are interrupted too), with piped
//! stdout/stderr that are forwarded chunk by chunk, in arrival order. Each
//! child registers with the guard (`crate::guard`) before it execs, so it
//! and its process group die with vp if vp is killed.
//!
//! A command is finished when its main process has exited *and* every copy
//! of its output pipes is closed: a background process that inherited them
//! keeps vp reading (its output must not be lost). After a second of that,
//! the task's scope gets a `RunEvent::TaskWaiting` naming the processes.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::pin::pin;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Instant;

use async_io::Timer;
use futures_lite::future;
use futures_lite::io::AsyncReadExt;

use crate::events::{
    CANCELLED_GRACE, LeftRunning, OutputStream, RunEvent, TaskScope, WAIT_NOTICE_AFTER, WAIT_TICK,
    Waiting, WaitingFor,
};
use crate::guard;

/// Everything needed to start one process.
#[derive(Debug, Clone)]
pub(crate) struct ProcessSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(OsString, OsString)>,
    /// Interactive: inherit vp's stdin and stay in vp's process group (the
    /// terminal then delivers Ctrl-C to the child itself).
    pub(crate) interactive: bool,
}

impl ProcessSpec {
    /// The std command for this spec; the run module adds its hooks (bridge
    /// fd, tracer) before spawning. Its first `pre_exec` hook registers the
    /// child with the guard.
    pub(crate) fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let kind = if self.interactive {
            cmd.stdin(Stdio::inherit());
            guard::Kind::Process
        } else {
            cmd.stdin(Stdio::null());
            cmd.process_group(0);
            guard::Kind::Group
        };
        // The guard runs from the first task on (a run of cache hits
        // starts none). Spawned here on the event loop's thread, unlike
        // tasks: std's spawn waits for the child's exec, which a traced
        // child forked meanwhile could hold up (docs/architecture.md), but
        // this runs once, before the first task is forked.
        guard::ensure_started();
        // SAFETY: the hook only calls getpid and send (async-signal-safe)
        // on memory it owns.
        unsafe {
            cmd.pre_exec(move || {
                guard::register_self(kind);
                Ok(())
            });
        }
        cmd
    }
}

/// Process groups of running non-interactive children, for forwarding
/// signals on Ctrl-C. Lives on the event-loop thread only.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChildRegistry {
    groups: Rc<RefCell<BTreeSet<i32>>>,
    /// Interactive children: they stay in vp's process group (so the
    /// terminal's Ctrl-C reaches them directly) and are signalled by pid.
    interactive: Rc<RefCell<BTreeSet<i32>>>,
    /// The last signal `signal_all` sent: what a command registered after
    /// it gets (`signal_late`).
    sent: Rc<std::cell::Cell<Option<i32>>>,
}

impl ChildRegistry {
    pub(crate) fn add(&self, pgid: i32) {
        self.groups.borrow_mut().insert(pgid);
    }
    /// The command of `pgid` is over; the guard forgets the group too unless
    /// processes are left in it.
    pub(crate) fn remove(&self, pgid: i32) {
        self.groups.borrow_mut().remove(&pgid);
        guard::forget_group_if_empty(pgid);
    }
    /// Sends one command registered after the run was cancelled (its
    /// group, or the pid of an interactive one), which `signal_all` did not
    /// reach, what the others got: the forwarded signal, or SIGKILL after a
    /// second one. (An interactive command too: the terminal's Ctrl-C came
    /// before it existed.) SIGTERM if nothing was sent yet.
    pub(crate) fn signal_late(&self, pgid_or_pid: i32, interactive: bool) {
        let signal = self.sent.get().unwrap_or(libc::SIGTERM);
        let target = if interactive {
            pgid_or_pid
        } else {
            -pgid_or_pid
        };
        // SAFETY: kill(2) has no memory-safety preconditions; a process
        // that already exited yields ESRCH, which is fine to ignore.
        unsafe {
            libc::kill(target, signal);
        }
    }
    pub(crate) fn add_interactive(&self, pid: i32) {
        self.interactive.borrow_mut().insert(pid);
    }
    pub(crate) fn remove_interactive(&self, pid: i32) {
        self.interactive.borrow_mut().remove(&pid);
    }
    /// Sends `signal` to every registered process group, and to every
    /// interactive child, except a SIGINT while vp is in its terminal's
    /// foreground group: that is Ctrl-C, which the terminal sent to the
    /// whole group, so an interactive child already has it, and a second
    /// copy would look like a second Ctrl-C ("force quit") to tools that
    /// count them. Any other signal, and a SIGINT without such a terminal
    /// (`kill -INT` from an IDE's stop button or a process manager), reaches
    /// them only this way.
    pub(crate) fn signal_all(&self, signal: i32) {
        self.sent.set(Some(signal));
        for &pgid in self.groups.borrow().iter() {
            // SAFETY: kill(2) has no memory-safety preconditions; a group
            // that already exited yields ESRCH, which is fine to ignore.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
        if signal == libc::SIGINT && in_terminal_foreground() {
            return;
        }
        for &pid in self.interactive.borrow().iter() {
            // SAFETY: as above. The pid leaves the set right after the
            // command ended (as a group does), on the loop that signals.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// Whether vp's process group is the foreground group of its controlling
/// terminal: only then does Ctrl-C reach vp's whole group from the terminal.
fn in_terminal_foreground() -> bool {
    // SAFETY: open(2) of a constant path; the fd is closed below.
    let tty = unsafe {
        libc::open(
            c"/dev/tty".as_ptr(),
            libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if tty < 0 {
        // No controlling terminal (setsid, a daemon, an IDE without a pty).
        return false;
    }
    // SAFETY: tcgetpgrp and getpgrp on an fd we own; close it once.
    let foreground = unsafe { libc::tcgetpgrp(tty) == libc::getpgrp() };
    // SAFETY: closing the fd opened above, exactly once.
    unsafe { libc::close(tty) };
    foreground
}

/// The exit code vp reports for a finished process: its own code, or
/// 128 + signal number when it was killed by a signal (shell convention).
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Waits for `child`, forwarding its output to `on_output` as it arrives,
/// until it has exited and its output pipes are closed. When processes it
/// left behind hold the pipes past [`WAIT_NOTICE_AFTER`], the current
/// [`TaskScope`] is told which; in a cancelled run the pipes are abandoned
/// once the task's process group is empty (see [`CANCELLED_GRACE`]).
pub(crate) async fn wait_with_output(
    mut child: async_process::Child,
    on_output: &dyn Fn(OutputStream, Vec<u8>),
) -> std::io::Result<std::process::ExitStatus> {
    let scope = TaskScope::current();
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let inodes: Vec<u64> = [
        stdout.as_ref().map(AsRawFd::as_raw_fd),
        stderr.as_ref().map(AsRawFd::as_raw_fd),
    ]
    .into_iter()
    .flatten()
    .filter_map(pipe_inode)
    .collect();
    let pump = |pipe: Option<Box<dyn futures_lite::AsyncRead + Unpin>>, stream| async move {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => on_output(stream, buf[..n].to_vec()),
            }
        }
    };
    let out = pump(
        stdout.map(|p| Box::new(p) as Box<dyn futures_lite::AsyncRead + Unpin>),
        OutputStream::Stdout,
    );
    let err = pump(
        stderr.map(|p| Box::new(p) as Box<dyn futures_lite::AsyncRead + Unpin>),
        OutputStream::Stderr,
    );
    let mut pumps = pin!(future::zip(out, err));
    let status = {
        let mut exited = pin!(child.status());
        let first = future::or(async { Some(exited.as_mut().await) }, async {
            pumps.as_mut().await;
            None
        })
        .await;
        match first {
            Some(status) => status,
            // The pipes closed first; the exit follows.
            None => return finish(pid, exited.await),
        }
    };
    // The main process exited; whatever it started may still hold the pipes.
    let exited = Instant::now();
    let mut told = false;
    loop {
        let closed = future::or(
            async {
                pumps.as_mut().await;
                true
            },
            async {
                Timer::after(WAIT_TICK).await;
                false
            },
        )
        .await;
        if closed {
            break;
        }
        let Some(scope) = &scope else { continue };
        let waited = exited.elapsed();
        if scope.cancelled() && waited >= CANCELLED_GRACE && guard::group_is_empty(pgid(pid)) {
            // Only processes outside the task's group are left; the user
            // asked to stop and nothing of this run is stored.
            break;
        }
        if !told && waited >= WAIT_NOTICE_AFTER {
            told = true;
            let inodes = inodes.clone();
            let processes = blocking::unblock(move || pipe_holders(&inodes)).await;
            scope.emit(RunEvent::TaskWaiting {
                task: scope.task,
                waiting: Waiting {
                    what: WaitingFor::OutputPipes,
                    processes,
                },
            });
        }
    }
    finish(pid, status)
}

/// The child was reaped: if it was registered alone with the guard (an
/// interactive task), the guard forgets it before its pid can be reused.
fn finish(
    pid: u32,
    status: std::io::Result<std::process::ExitStatus>,
) -> std::io::Result<std::process::ExitStatus> {
    guard::forget_process(pgid(pid));
    status
}

fn pgid(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(0)
}

/// The inode of a pipe end, which names the pipe in `/proc/*/fd` links.
fn pipe_inode(fd: RawFd) -> Option<u64> {
    // SAFETY: fstat writes into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO)
        .then_some(st.st_ino)
}

/// Every other process with one of these pipes open (`/proc/<pid>/fd/*`
/// links to `pipe:[<inode>]`). Processes vp may not inspect are skipped.
pub(crate) fn pipe_holders(inodes: &[u64]) -> Vec<LeftRunning> {
    let wanted: Vec<OsString> = inodes
        .iter()
        .map(|i| OsString::from(format!("pipe:[{i}]")))
        .collect();
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w))
                })
            })
        })
        .collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(LeftRunning::of).collect()
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
