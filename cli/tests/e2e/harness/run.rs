//! Runs one program to completion and captures its exit status, stdout and stderr, with a
//! timeout so a hung `vp` fails its test instead of hanging the whole suite. Scenarios get a
//! `Run` from `Workspace::vp` / `Workspace::run` and chain `arg`/`env`/`cwd` before `output()`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Long enough for a cold `vite build` on a loaded 2-core machine, short enough to notice a hang.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// A program about to run: built by the `Workspace`, configured by chaining, run by `output()`.
#[must_use = "a Run does nothing until .output() is called"]
pub(crate) struct Run {
    command: Command,
    program: OsString,
    args: Vec<OsString>,
    cwd: PathBuf,
    timeout: Duration,
    pipe_grace: Duration,
}

impl Run {
    /// A run of `program` in `cwd` with the current environment and stdin from /dev/null.
    pub(crate) fn new(program: impl AsRef<OsStr>, cwd: &Path) -> Run {
        let mut command = Command::new(program.as_ref());
        command.current_dir(cwd).stdin(Stdio::null());
        Run {
            command,
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            cwd: cwd.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            pipe_grace: PIPE_GRACE,
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.command.arg(arg.as_ref());
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub(crate) fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Run {
        self.command.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: impl AsRef<OsStr>) -> Run {
        self.command.env_remove(key);
        self
    }

    /// Runs in `dir` instead (absolute, or relative to the current working directory of the run).
    pub(crate) fn cwd(mut self, dir: impl AsRef<Path>) -> Run {
        self.cwd = self.cwd.join(dir.as_ref());
        self.command.current_dir(&self.cwd);
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Run {
        self.timeout = timeout;
        self
    }

    /// How long stdout/stderr may stay open after the program exited (default 10 s).
    pub(crate) fn pipe_grace(mut self, grace: Duration) -> Run {
        self.pipe_grace = grace;
        self
    }

    /// The command line, for messages.
    pub(crate) fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for arg in &self.args {
            s.push(' ');
            s.push_str(&arg.to_string_lossy());
        }
        s
    }

    /// Runs to completion. Panics (failing the test) when the program cannot be started or
    /// outlives the timeout; a non-zero exit is NOT a panic, it is in the `Output`.
    #[track_caller]
    pub(crate) fn output(self) -> Output {
        self.spawn().wait()
    }

    /// Starts the program and returns at once, for scenarios that act while it runs (a second
    /// `vp` on the same workspace, Ctrl-C, `kill -9`, editing a file mid-run).
    #[track_caller]
    pub(crate) fn spawn(mut self) -> Running {
        let display = self.display();
        // Own process group: signal_group() reaches the whole tree, like a terminal's Ctrl-C,
        // and a timeout kills the tree, not only `vp`.
        self.command
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = match self.command.spawn() {
            Ok(child) => child,
            Err(err) => panic!(
                "could not start `{display}` in {}: {err} (is the program installed and on PATH?)",
                self.cwd.display()
            ),
        };
        let stdout_live = Arc::new(Mutex::new(Vec::new()));
        let stderr_live = Arc::new(Mutex::new(Vec::new()));
        let stdout = drain(child.stdout.take(), &stdout_live);
        let stderr = drain(child.stderr.take(), &stderr_live);
        Running {
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
            stdout_live,
            stderr_live,
            display,
            cwd: self.cwd,
            timeout: self.timeout,
            pipe_grace: self.pipe_grace,
            started,
        }
    }
}

/// How long a process's pipes may stay open after it exited: only something it started and
/// left behind can hold them, and a test should hear about such a leftover.
const PIPE_GRACE: Duration = Duration::from_secs(10);

/// A started program; `wait()` gives its `Output`. Dropped without waiting, it is killed with
/// its process group.
pub(crate) struct Running {
    /// Kept apart from `child` so it stays valid after `wait` took the child: a pid of 0 would
    /// make kill(2) signal the test's own process group.
    pid: u32,
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    /// What the program printed so far, while it runs.
    stdout_live: Arc<Mutex<Vec<u8>>>,
    stderr_live: Arc<Mutex<Vec<u8>>>,
    display: String,
    cwd: PathBuf,
    timeout: Duration,
    pipe_grace: Duration,
    started: Instant,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends `signal` to the program only (e.g. SIGINT to `vp`, which must forward it).
    #[track_caller]
    pub(crate) fn signal(&self, signal: Signal) {
        let pid = self.pid_t();
        kill(pid, signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {pid} ({}): {e}", self.display));
    }

    /// Sends `signal` to the program's process group, as a terminal does on Ctrl-C.
    #[track_caller]
    pub(crate) fn signal_group(&self, signal: Signal) {
        let pid = self.pid_t();
        killpg(pid, signal)
            .unwrap_or_else(|e| panic!("kill -{signal} -{pid} ({}): {e}", self.display));
    }

    fn pid_t(&self) -> Pid {
        // Child pids are positive and fit in pid_t; never let a conversion produce 0 or -1.
        Pid::from_raw(
            i32::try_from(self.pid)
                .ok()
                .filter(|p| *p > 0)
                .unwrap_or(i32::MAX),
        )
    }

    /// What the program wrote to stdout and stderr so far.
    pub(crate) fn output_so_far(&self) -> (String, String) {
        let text = |live: &Arc<Mutex<Vec<u8>>>| {
            let bytes = live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        };
        (text(&self.stdout_live), text(&self.stderr_live))
    }

    /// Waits until `done(stderr so far)` holds; panics with the output after `timeout`, or when
    /// the program exits first.
    #[track_caller]
    pub(crate) fn wait_for_stderr(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        let mut exited = false;
        let found = wait_until(deadline, || {
            if done(&self.output_so_far().1) {
                return true;
            }
            exited = self.has_exited();
            exited
        });
        if !found || exited && !done(&self.output_so_far().1) {
            let (stdout, stderr) = self.output_so_far();
            panic!(
                "`{}`: {what} did not happen within {timeout:?}{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                self.display,
                if exited { " (it exited)" } else { "" }
            );
        }
    }

    /// True once the program has exited (its output may still be coming).
    pub(crate) fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits for the program (up to the run's timeout, counted from the start) and collects its
    /// output. Panics if it times out, or if its pipes stay open long after it exited.
    #[track_caller]
    pub(crate) fn wait(mut self) -> Output {
        let Some(mut child) = self.child.take() else {
            panic!("`{}` was already waited for", self.display);
        };
        let deadline = self.started + self.timeout;
        let status = wait_until_deadline(&mut child, deadline);
        let elapsed = self.started.elapsed();
        let pipes_closed = wait_until(Instant::now() + self.pipe_grace, || {
            [&self.stdout, &self.stderr]
                .iter()
                .all(|h| h.as_ref().is_none_or(JoinHandle::is_finished))
        });
        if !pipes_closed {
            // Kill what is left in the group so the readers finish; a leftover in another
            // group keeps its pipe, and the reader thread is abandoned with it.
            let _ = killpg(self.pid_t(), Signal::SIGKILL);
            panic!(
                "`{}` exited, but a process it started still held its stdout/stderr open {:?} later (a leftover process?)",
                self.display, self.pipe_grace
            );
        }
        let stdout = join(self.stdout.take());
        let stderr = join(self.stderr.take());
        let Some(status) = status else {
            panic!(
                "`{}` in {} did not finish within {:?}; it was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
                self.display,
                self.cwd.display(),
                self.timeout
            );
        };
        Output {
            command: self.display.clone(),
            cwd: self.cwd.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` with a short, growing interval until it is true (returns true) or `deadline`
/// passes (returns false).
pub(crate) fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut interval = Duration::from_millis(1);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(20));
    }
}

/// True while `pid` exists and is not a zombie (an orphan may wait a moment to be reaped).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .is_some_and(|end| !stat[end + 1..].trim_start().starts_with(['Z', 'X']))
    })
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe; what was
/// read so far is in `live` (for scenarios that wait for a line while the program runs).
fn drain(
    pipe: Option<impl Read + Send + 'static>,
    live: &Arc<Mutex<Vec<u8>>>,
) -> Option<JoinHandle<String>> {
    let live = Arc::clone(live);
    pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            // A read error ends the capture; what was read so far is still worth showing.
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                live.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(&chunk[..n]);
            }
            let bytes = live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join(handle: Option<JoinHandle<String>>) -> String {
    handle
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| String::from("<output reader panicked>"))
        })
        .unwrap_or_default()
}

/// Waits for the child; `None` means the deadline passed and its process group was killed.
fn wait_until_deadline(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let mut status = None;
    let exited = wait_until(deadline, || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some(s);
            true
        }
        Ok(None) => false,
        Err(err) => panic!("waiting for child {} failed: {err}", child.id()),
    });
    if exited {
        return status;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // The group may already be gone; the wait below reaps the child either way.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) command: String,
    pub(crate) cwd: PathBuf,
    /// The exit code, `None` when a signal ended the program.
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Output {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the program exited 0.
    #[track_caller]
    pub(crate) fn assert_success(&self) -> &Output {
        assert!(self.success(), "expected success\n{self}");
        self
    }

    /// Panics with the whole output unless the program exited with `code`.
    #[track_caller]
    pub(crate) fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Panics unless stdout contains `needle`.
    #[track_caller]
    pub(crate) fn assert_stdout_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stdout.contains(needle),
            "expected stdout to contain {needle:?}\n{self}"
        );
        self
    }

    /// Panics unless stderr contains `needle`.
    #[track_caller]
    pub(crate) fn assert_stderr_contains(&self, needle: &str) -> &Output {
        assert!(
            self.stderr.contains(needle),
            "expected stderr to contain {needle:?}\n{self}"
        );
        self
    }

    /// stdout followed by stderr, for assertions that do not care which stream a line went to.
    pub(crate) fn combined(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => String::from("unknown status"),
        };
        writeln!(f, "command: {} (in {})", self.command, self.cwd.display())?;
        writeln!(f, "status: {status} after {:?}", self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir()
    }

    #[test]
    fn captures_both_streams_and_the_exit_code() {
        let out = Run::new("sh", &tmp())
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.success());
    }

    #[test]
    fn env_and_cwd_reach_the_program() {
        let out = Run::new("sh", &tmp())
            .args(["-c", "printf '%s %s' \"$E2E_X\" \"$(pwd)\""])
            .env("E2E_X", "value")
            .cwd("/")
            .output();
        out.assert_success();
        assert_eq!(out.stdout, "value /");
    }

    #[test]
    fn a_signal_is_reported_as_a_signal() {
        let out = Run::new("sh", &tmp()).args(["-c", "kill -9 $$"]).output();
        assert_eq!(out.code, None);
        assert_eq!(out.signal, Some(9));
    }

    #[test]
    fn a_hung_program_is_killed_with_its_children() {
        let result = std::panic::catch_unwind(|| {
            Run::new("sh", &tmp())
                .args(["-c", "sleep 30 & sleep 30"])
                .timeout(Duration::from_millis(200))
                .output()
        });
        let message = result.expect_err("the timeout must fail the run");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("did not finish within"), "{text}");
    }

    #[test]
    fn a_spawned_program_can_be_signalled() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'echo got-int; exit 7' INT; echo ready; : > '{}'; while :; do sleep 0.01; done",
            ready.display()
        );
        let running = Run::new("sh", &tmp()).args(["-c", &script]).spawn();
        assert!(running.pid() > 0);
        // The marker file is written after the trap is installed.
        assert!(wait_until(Instant::now() + Duration::from_secs(10), || {
            ready.exists()
        }));
        running.signal(Signal::SIGINT);
        let out = running.wait();
        assert_eq!(out.code, Some(7), "{out}");
        assert_eq!(out.stdout, "ready\ngot-int\n");
    }

    #[test]
    fn a_leftover_process_holding_the_pipes_is_reported() {
        // The background sleep is in another process group (setsid), so killing the group of
        // the shell does not reach it; it keeps stdout open after the shell exits.
        let result = std::panic::catch_unwind(|| {
            Run::new("sh", &tmp())
                .args(["-c", "setsid sleep 3 & exit 0"])
                .pipe_grace(Duration::from_millis(300))
                .output()
        });
        let message = result.expect_err("a leftover holding the pipe must fail the run");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("still held its stdout/stderr open"), "{text}");
    }

    #[test]
    fn wait_until_reports_success_and_timeout() {
        let start = Instant::now();
        assert!(wait_until(start + Duration::from_secs(5), || start
            .elapsed()
            > Duration::from_millis(20)));
        assert!(!wait_until(
            Instant::now() + Duration::from_millis(30),
            || false
        ));
    }

    #[test]
    fn a_missing_program_says_so() {
        let result =
            std::panic::catch_unwind(|| Run::new("vp-e2e-no-such-program", &tmp()).output());
        let message = result.expect_err("spawning a missing program must fail");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("could not start `vp-e2e-no-such-program`"),
            "{text}"
        );
    }
}
