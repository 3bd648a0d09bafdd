//! Starting one process of a task and collecting its output and exit code.
//!
//! Children run in their own process group (so Ctrl-C can be forwarded to
//! the whole tree and a tool's own children are interrupted too), with piped
//! stdout/stderr that are forwarded chunk by chunk, in arrival order.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;

use futures_lite::io::AsyncReadExt;

use super::events::OutputStream;

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
    /// fd, tracer) before spawning.
    pub(crate) fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.interactive {
            cmd.stdin(Stdio::inherit());
        } else {
            cmd.stdin(Stdio::null());
            cmd.process_group(0);
        }
        cmd
    }
}

/// Process groups of running non-interactive children, for forwarding
/// signals on Ctrl-C. Lives on the event-loop thread only.
#[derive(Debug, Default, Clone)]
pub(crate) struct ChildRegistry {
    groups: Rc<RefCell<BTreeSet<i32>>>,
}

impl ChildRegistry {
    pub(crate) fn add(&self, pgid: i32) {
        self.groups.borrow_mut().insert(pgid);
    }
    pub(crate) fn remove(&self, pgid: i32) {
        self.groups.borrow_mut().remove(&pgid);
    }
    /// Sends `signal` to every registered process group.
    pub(crate) fn signal_all(&self, signal: i32) {
        for &pgid in self.groups.borrow().iter() {
            // SAFETY: kill(2) has no memory-safety preconditions; a group
            // that already exited yields ESRCH, which is fine to ignore.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

/// The exit code vp reports for a finished process: its own code, or
/// 128 + signal number when it was killed by a signal (shell convention).
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Waits for `child`, forwarding its output to `on_output` as it arrives.
pub(crate) async fn wait_with_output(
    mut child: async_process::Child,
    on_output: &dyn Fn(OutputStream, Vec<u8>),
) -> std::io::Result<std::process::ExitStatus> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
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
    let out = pump(stdout.map(|p| Box::new(p) as Box<dyn futures_lite::AsyncRead + Unpin>), OutputStream::Stdout);
    let err = pump(stderr.map(|p| Box::new(p) as Box<dyn futures_lite::AsyncRead + Unpin>), OutputStream::Stderr);
    let ((), ()) = futures_lite::future::zip(out, err).await;
    child.status().await
}
